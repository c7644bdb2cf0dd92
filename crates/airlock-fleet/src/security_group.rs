//! Security groups: create, authorize and revoke rules (SSH and RDP open to the world only when
//! asked for), delete. Everything a security group operation is (its request, validation,
//! look-ups and EC2 calls) is here, so adding one touches this file only.

use crate::facts::Facts;
use crate::request::body;
use crate::run::{none, FleetError, Outcome, Recorder};
use crate::validate::{self as v, Checked, FieldError};
use airlock_cloud::{
    CreateSecurityGroupInput, Direction, Ec2, Filter, SecurityGroup, SecurityGroupRule, Tag,
};
use serde::{Deserialize, Serialize};

/// `CreateSecurityGroup`, tagged on creation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecurityGroup {
    /// Name, unique in the VPC.
    pub group_name: String,
    /// Description (EC2 requires one).
    pub description: String,
    /// The VPC (default: the default VPC).
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `Authorize…` or `RevokeSecurityGroupIngress/Egress`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupRules {
    /// The group (`sg-…`).
    pub group_id: String,
    /// Inbound or outbound rules.
    pub direction: Direction,
    /// The rules.
    pub rules: Vec<SecurityGroupRule>,
    /// Allow SSH or RDP from the whole internet.
    #[serde(default)]
    pub allow_world: bool,
}

/// `DeleteSecurityGroup`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteSecurityGroup {
    /// The group (`sg-…`).
    pub group_id: String,
}

/// A security group operation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum SecurityGroupRequest {
    Create(CreateSecurityGroup),
    Authorize(SecurityGroupRules),
    Revoke(SecurityGroupRules),
    Delete(DeleteSecurityGroup),
}

impl SecurityGroupRequest {
    /// The operation `verb` with its JSON body; `Ok(None)` when there is no such verb.
    pub fn parse(verb: &str, value: serde_json::Value) -> Checked<Option<Self>> {
        Ok(Some(match verb {
            "create" => Self::Create(body(value)?),
            "authorize" => Self::Authorize(body(value)?),
            "revoke" => Self::Revoke(body(value)?),
            "delete" => Self::Delete(body(value)?),
            _ => return Ok(None),
        }))
    }

    /// The verb in the operation's path.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Authorize(_) => "authorize",
            Self::Revoke(_) => "revoke",
            Self::Delete(_) => "delete",
        }
    }

    /// The EC2 action the operation is known by; a rule change names its direction.
    pub fn action(&self) -> String {
        match self {
            Self::Create(_) => "ec2:CreateSecurityGroup".to_owned(),
            Self::Authorize(r) => format!("ec2:AuthorizeSecurityGroup{}", r.direction.api_name()),
            Self::Revoke(r) => format!("ec2:RevokeSecurityGroup{}", r.direction.api_name()),
            Self::Delete(_) => "ec2:DeleteSecurityGroup".to_owned(),
        }
    }

    /// The tags applied on creation.
    pub fn tags(&self) -> &[Tag] {
        match self {
            Self::Create(r) => &r.tags,
            _ => &[],
        }
    }

    pub(crate) fn validate(&mut self) -> Checked {
        match self {
            Self::Create(r) => r.validate(),
            Self::Authorize(r) | Self::Revoke(r) => r.validate(),
            Self::Delete(r) => v::ec2_id("group_id", &r.group_id, "sg-"),
        }
    }

    pub(crate) async fn prepare(&self, ec2: &dyn Ec2, f: &mut Facts) -> Result<(), FleetError> {
        match self {
            Self::Create(r) => match &r.vpc_id {
                Some(vpc) => f.load_other_tags(ec2, std::slice::from_ref(vpc)).await,
                None => Ok(()),
            },
            Self::Authorize(SecurityGroupRules { group_id, .. })
            | Self::Revoke(SecurityGroupRules { group_id, .. })
            | Self::Delete(DeleteSecurityGroup { group_id }) => {
                f.load_security_groups(ec2, std::slice::from_ref(group_id))
                    .await
            }
        }
    }

    pub(crate) async fn run(
        &self,
        ec2: &dyn Ec2,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        match self {
            Self::Create(r) => r.run(ec2, rec).await,
            Self::Authorize(r) => r.run(ec2, rec, true).await,
            Self::Revoke(r) => r.run(ec2, rec, false).await,
            Self::Delete(r) => {
                let out = ec2.delete_security_group(&r.group_id).await;
                let message = format!("deleted {}", r.group_id);
                rec.changed(
                    "DeleteSecurityGroup",
                    &[("security-group", &r.group_id)],
                    out,
                    message,
                )
            }
        }
    }
}

/// The account's security groups that match `filters`.
pub async fn list(ec2: &dyn Ec2, filters: &[Filter]) -> Result<Vec<SecurityGroup>, FleetError> {
    Ok(ec2.describe_security_groups(filters, &[]).await?)
}

impl CreateSecurityGroup {
    fn validate(&self) -> Checked {
        v::group_name("group_name", &self.group_name)?;
        if self.description.trim().is_empty() {
            return Err(FieldError::new("description", "EC2 requires a description"));
        }
        v::description("description", &self.description)?;
        if let Some(vpc) = &self.vpc_id {
            v::ec2_id("vpc_id", vpc, "vpc-")?;
        }
        Ok(())
    }

    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let out = ec2
            .create_security_group(&CreateSecurityGroupInput {
                group_name: self.group_name.clone(),
                description: self.description.clone(),
                vpc_id: self.vpc_id.clone(),
                tags: self.tags.clone(),
            })
            .await;
        let id = rec.call("CreateSecurityGroup", &[("security-group", "*")], out, none)?;
        let message = format!("created {id} ({})", self.group_name);
        Ok(Outcome::created(message, &id))
    }
}

impl SecurityGroupRules {
    /// Checks the group and every rule, and puts each rule in EC2's canonical form.
    fn validate(&mut self) -> Checked {
        v::ec2_id("group_id", &self.group_id, "sg-")?;
        if self.rules.is_empty() {
            return Err(FieldError::new("rules", "give at least one rule"));
        }
        let allow_world = self.allow_world;
        for (i, rule) in self.rules.iter_mut().enumerate() {
            *rule = v::rule(&format!("rules[{i}]"), rule, allow_world)?;
        }
        Ok(())
    }

    /// Adds (`authorize`) or removes the rules.
    async fn run(
        &self,
        ec2: &dyn Ec2,
        rec: &mut Recorder<'_>,
        authorize: bool,
    ) -> Result<Outcome, FleetError> {
        let (direction, group) = (self.direction, &self.group_id);
        let out = if authorize {
            ec2.authorize_security_group(direction, group, &self.rules)
                .await
        } else {
            ec2.revoke_security_group(direction, group, &self.rules)
                .await
        };
        let verb = if authorize { "Authorize" } else { "Revoke" };
        let message = format!(
            "{} {} {} rule(s) of {group}",
            if authorize { "added" } else { "removed" },
            self.rules.len(),
            direction.api_name().to_lowercase(),
        );
        rec.changed(
            &format!("{verb}SecurityGroup{}", direction.api_name()),
            &[("security-group", group)],
            out,
            message,
        )
    }
}
