//! `airlock security-group`: security groups and their rules. Each operation's arguments and
//! the request they make, and `show`, which prints one group's rules.

use super::listing::text;
use super::{Change, ListArgs, NewTags, Plan, Where};
use crate::cli::Output;
use crate::output::{or_dash, table};
use airlock_cloud::{Direction, SecurityGroupRule};
use airlock_fleet::security_group::*;
use airlock_fleet::FleetFamily;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum SecurityGroupCommand {
    /// List security groups.
    List(ListArgs),
    /// Show one group's rules.
    Show(Show),
    /// CreateSecurityGroup, tagged on creation.
    Create(Create),
    /// Add a rule (AuthorizeSecurityGroupIngress/Egress).
    Authorize(RuleArgs),
    /// Remove a rule (RevokeSecurityGroupIngress/Egress).
    Revoke(RuleArgs),
    /// DeleteSecurityGroup.
    Delete(Delete),
}

impl SecurityGroupCommand {
    pub(super) fn plan(self) -> Result<Plan> {
        Ok(match self {
            Self::List(a) => Plan::list(FleetFamily::SecurityGroups, a),
            Self::Show(a) => a.into(),
            Self::Create(a) => Change::from(a).into(),
            Self::Authorize(a) => a.change(SecurityGroupRequest::Authorize)?.into(),
            Self::Revoke(a) => a.change(SecurityGroupRequest::Revoke)?.into(),
            Self::Delete(a) => Change::from(a).into(),
        })
    }
}

#[derive(Debug, Args)]
pub struct Show {
    /// The group (sg-…).
    group_id: String,
    #[command(flatten)]
    at: Where,
}

impl From<Show> for Plan {
    fn from(a: Show) -> Plan {
        Plan::List {
            family: FleetFamily::SecurityGroups,
            args: ListArgs {
                at: a.at,
                deployment: None,
                tags: Vec::new(),
                filters: vec![format!("group-id={}", a.group_id)],
            },
            only: Some(a.group_id),
        }
    }
}

#[derive(Debug, Args)]
pub struct Create {
    /// The group's name.
    name: String,
    /// Description (EC2 requires one).
    #[arg(long)]
    description: String,
    /// The VPC (default: the default VPC).
    #[arg(long)]
    vpc: Option<String>,
    #[command(flatten)]
    tags: NewTags,
    #[command(flatten)]
    at: Where,
}

impl From<Create> for Change {
    fn from(a: Create) -> Change {
        let request = CreateSecurityGroup {
            group_name: a.name,
            description: a.description,
            vpc_id: a.vpc,
            tags: a.tags.tags(),
        };
        Change::new(a.at, SecurityGroupRequest::Create(request))
    }
}

/// One security group rule.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// The group (sg-…).
    pub group_id: String,
    /// An outbound rule (default: inbound).
    #[arg(long)]
    pub egress: bool,
    /// tcp, udp, icmp, icmpv6, all, or a protocol number.
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Port N or range A-B (ICMP: type-code).
    #[arg(long)]
    pub port: Option<String>,
    /// Source (or destination) CIDR block.
    #[arg(long, required_unless_present = "source_group")]
    pub cidr: Option<String>,
    /// Source (or destination) security group.
    #[arg(long, conflicts_with = "cidr")]
    pub source_group: Option<String>,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// Allow SSH or RDP from the whole internet.
    #[arg(long)]
    pub allow_world: bool,
    #[command(flatten)]
    pub at: Where,
}

impl RuleArgs {
    /// The rule added or removed as `request` (authorize or revoke) says.
    fn change(self, request: fn(SecurityGroupRules) -> SecurityGroupRequest) -> Result<Change> {
        let rule = self.rule()?;
        let rules = SecurityGroupRules {
            group_id: self.group_id,
            direction: if self.egress {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            rules: vec![rule],
            allow_world: self.allow_world,
        };
        Ok(Change::new(self.at, request(rules)))
    }

    fn rule(&self) -> Result<SecurityGroupRule> {
        let (from_port, to_port) = match self.port.as_deref() {
            None => (None, None),
            Some(p) => {
                let (a, b) = p.split_once('-').unwrap_or((p, p));
                let parse = |s: &str| {
                    s.parse::<i32>()
                        .with_context(|| format!("--port {p:?} is not N or A-B"))
                };
                (Some(parse(a)?), Some(parse(b)?))
            }
        };
        Ok(SecurityGroupRule {
            protocol: self.protocol.clone(),
            from_port,
            to_port,
            cidr: self.cidr.clone(),
            group_id: self.source_group.clone(),
            description: self.description.clone(),
        })
    }
}

#[derive(Debug, Args)]
pub struct Delete {
    /// The group (sg-…).
    group_id: String,
    #[command(flatten)]
    at: Where,
}

impl From<Delete> for Change {
    fn from(a: Delete) -> Change {
        let request = DeleteSecurityGroup {
            group_id: a.group_id,
        };
        Change::new(a.at, SecurityGroupRequest::Delete(request))
    }
}

/// Prints one group and its rules (`security-group show`).
pub(super) fn show_group(group: &Value, output: Output) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(group)?);
        return Ok(());
    }
    println!(
        "{} {} ({}) in {}",
        text(group, "group_id"),
        text(group, "group_name"),
        text(group, "description"),
        text(group, "vpc_id")
    );
    let mut rows = Vec::new();
    for direction in ["ingress", "egress"] {
        let rules: Vec<SecurityGroupRule> = group
            .get(direction)
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        rows.extend(rules.iter().map(|r| rule_row(direction, r)));
    }
    print!(
        "{}",
        table(
            &["DIRECTION", "PROTOCOL", "PORTS", "SOURCE", "DESCRIPTION"],
            &rows
        )
    );
    Ok(())
}

fn rule_row(direction: &str, r: &SecurityGroupRule) -> Vec<String> {
    let ports = match (r.from_port, r.to_port) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "all".into(),
    };
    vec![
        direction.to_owned(),
        if r.protocol == "-1" {
            "all".into()
        } else {
            r.protocol.clone()
        },
        ports,
        r.cidr.clone().or(r.group_id.clone()).unwrap_or_default(),
        or_dash(&r.description),
    ]
}
