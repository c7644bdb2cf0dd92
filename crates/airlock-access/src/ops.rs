//! The checks of each console operation that is not a fleet operation: console objects,
//! launches, instance lifecycle, tag changes, listings and gateway configurations. Each turns
//! the request and the facts the caller looked up into what AWS (or the console, for its own
//! objects) would authorize.

use crate::check::{console_arn, Check, ScopeChecks};
use airlock_cloud::{Instance, Placement, Scope, Tag};
use airlock_gateway_config::config::Upstream;

/// `airlock:UseAccount`: the caller may use a console account's key for EC2 calls. Decided on
/// the name alone, before the account is looked up, so a refusal says nothing of whether it
/// exists.
pub fn use_account(name: &str) -> Check {
    Check::new("airlock:UseAccount", console_arn("account", name))
}

/// An action on a console object (`arn:airlock:console:::KIND/NAME`).
pub fn console(action: &str, kind: &str, name: &str) -> Check {
    Check::new(action, console_arn(kind, name))
}

/// An action on a deployment, with who made it (`airlock:DeployedBy`) and its account
/// (`airlock:Account`) when known, so a policy can grant "my own deployments".
pub fn deployment(
    action: &str,
    id: &str,
    account: Option<&str>,
    deployed_by: Option<&str>,
) -> Check {
    console(action, "deployment", id)
        .with_some("airlock:Account", account)
        .with_some("airlock:DeployedBy", deployed_by)
}

/// What a launch asks EC2 for.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// The image.
    pub image_id: &'a str,
    /// The instance type.
    pub instance_type: &'a str,
    /// The subnet, or the default one.
    pub subnet_id: Option<&'a str>,
    /// Security groups (none: the default group).
    pub security_group_ids: &'a [String],
    /// The key pair.
    pub key_name: Option<&'a str>,
    /// The user's tags on creation (the console's own are not the user's request).
    pub tags: &'a [Tag],
    /// The IMDSv2 hop limit (`ec2:MetadataHttpPutResponseHopLimit`).
    pub metadata_hop_limit: u8,
    /// Where EC2 puts the instances (`ec2:AvailabilityZone`, `ec2:Tenancy`,
    /// `ec2:PlacementGroup`).
    pub placement: &'a Placement,
}

impl Launch<'_> {
    /// The existing resources whose current tags a policy may read.
    pub fn existing_ids(&self) -> Vec<String> {
        let mut ids = vec![self.image_id.to_owned()];
        ids.extend(self.subnet_id.map(str::to_owned));
        ids.extend(self.security_group_ids.iter().cloned());
        ids
    }
}

/// What AWS checks for `RunInstances` with tags on creation: the image, subnet, security groups
/// and key pair (with their current tags), the new instances and volumes (with the requested
/// tags and instance type), the network interface, and `ec2:CreateTags` with
/// `ec2:CreateAction` on the instances and volumes.
pub fn run_instances(
    scope: &Scope,
    launch: &Launch<'_>,
    tags_of: &dyn Fn(&str) -> Vec<Tag>,
) -> Vec<Check> {
    let run = "ec2:RunInstances";
    let s = scope;
    let mut checks = vec![s.existing(run, "image", launch.image_id, &tags_of(launch.image_id))];
    checks.push(match launch.subnet_id {
        Some(id) => s.existing(run, "subnet", id, &tags_of(id)),
        None => s.existing(run, "subnet", "*", &[]),
    });
    if launch.security_group_ids.is_empty() {
        checks.push(s.existing(run, "security-group", "*", &[]));
    }
    for sg in launch.security_group_ids {
        checks.push(s.existing(run, "security-group", sg, &tags_of(sg)));
    }
    if let Some(key) = launch.key_name {
        checks.push(
            s.existing(run, "key-pair", key, &[])
                .with("ec2:KeyPairName", key),
        );
    }
    let placement = launch.placement;
    let group_arn = placement
        .group_name
        .as_deref()
        .map(|name| crate::arn(&s.region, &s.account_id, "placement-group", name));
    if let Some(name) = placement.group_name.as_deref() {
        // Named, not by id: the group's tags are not looked up.
        checks.push(s.existing(run, "placement-group", name, &[]));
    }
    // Every launch requires IMDSv2 (`HttpTokens=required`), as the context says.
    checks.push(
        s.created(run, "instance", "*", launch.tags)
            .with("ec2:InstanceType", launch.instance_type)
            .with("ec2:MetadataHttpTokens", "required")
            .with(
                "ec2:MetadataHttpPutResponseHopLimit",
                launch.metadata_hop_limit.to_string(),
            )
            .with_some(
                "ec2:AvailabilityZone",
                placement.availability_zone.as_deref(),
            )
            .with(
                "ec2:Tenancy",
                placement
                    .tenancy
                    .unwrap_or(airlock_cloud::Tenancy::Default)
                    .as_str(),
            )
            .with_some("ec2:PlacementGroup", group_arn.as_deref()),
    );
    checks.push(s.created(run, "volume", "*", launch.tags));
    checks.push(s.created(run, "network-interface", "*", &[]));
    for kind in ["instance", "volume"] {
        checks.extend(s.tagging("RunInstances", kind, "*", launch.tags));
    }
    checks
}

/// An action on an existing instance, with its current tags and type.
pub fn instance(scope: &Scope, action: &str, instance: &Instance) -> Check {
    scope
        .existing(action, "instance", &instance.instance_id, &instance.tags)
        .with_some("ec2:InstanceType", instance.instance_type.as_deref())
}

/// `airlock:SendCommand` on a running instance, with its current tags: whether a command may
/// be sent to it.
pub fn send_command(scope: &Scope, instance: &Instance) -> Check {
    self::instance(scope, "airlock:SendCommand", instance)
}

/// `airlock:ReadCommandOutput` on an instance, with its tags as they were when the command was
/// sent (so re-tagging it later neither hides nor reveals what it printed).
pub fn read_command_output(scope: &Scope, instance_id: &str, tags: &[Tag]) -> Check {
    scope.existing("airlock:ReadCommandOutput", "instance", instance_id, tags)
}

/// One node of a rolling replacement, as looked up before the roll starts.
#[derive(Debug, Clone, Copy)]
pub struct RollNode<'a> {
    /// The instance being replaced.
    pub old: &'a Instance,
    /// Its secondary interfaces, with their tags.
    pub interfaces: &'a [(String, Vec<Tag>)],
    /// Its data volumes, with their tags.
    pub volumes: &'a [(String, Vec<Tag>)],
    /// Its Elastic IP.
    pub allocation_id: Option<&'a str>,
    /// The tags the replacement launches with.
    pub new_tags: &'a [Tag],
}

/// Every call a rolling replacement of one node may make, as AWS authorizes each: stop, start
/// and terminate the old instance; terminate the replacement (on failure); detach and attach
/// each interface and volume, on the old instance and the replacement (both ways, for the roll
/// back); associate the Elastic IP with either. The replacement does not exist yet: it is
/// `instance/*` with the tags it launches with.
pub fn roll_node(scope: &Scope, node: &RollNode<'_>) -> Vec<Check> {
    let old = node.old;
    let new = |action: &str| scope.existing(action, "instance", "*", node.new_tags);
    let mut checks: Vec<Check> = [
        "ec2:StopInstances",
        "ec2:StartInstances",
        "ec2:TerminateInstances",
    ]
    .into_iter()
    .map(|a| instance(scope, a, old))
    .collect();
    checks.push(new("ec2:TerminateInstances"));
    let moves = [
        ("network-interface", "NetworkInterface", node.interfaces),
        ("volume", "Volume", node.volumes),
    ];
    for (kind, name, pieces) in moves {
        for (id, tags) in pieces {
            for verb in ["Detach", "Attach"] {
                let action = format!("ec2:{verb}{name}");
                checks.push(scope.existing(&action, kind, id, tags));
                checks.push(instance(scope, &action, old));
                checks.push(new(&action));
            }
        }
    }
    if let Some(allocation) = node.allocation_id {
        checks.push(scope.existing("ec2:AssociateAddress", "elastic-ip", allocation, &[]));
        checks.push(instance(scope, "ec2:AssociateAddress", old));
        checks.push(new("ec2:AssociateAddress"));
    }
    checks
}

/// An action on an instance EC2 does not know: decided as one with no tags, so that whoever
/// may not act on an untagged instance cannot tell a missing one from a forbidden one.
pub fn unknown_instance(scope: &Scope, action: &str, id: &str) -> Check {
    scope.existing(action, "instance", id, &[])
}

/// `ec2:CreateTags` (`add`) or `ec2:DeleteTags` on a resource, with the requested tags and the
/// resource's current ones: re-tagging cannot move a resource out of (or into) a tag-based
/// policy.
pub fn change_tags(
    scope: &Scope,
    add: bool,
    kind: &str,
    id: &str,
    current: &[Tag],
    requested: &[Tag],
) -> Check {
    let action = if add {
        "ec2:CreateTags"
    } else {
        "ec2:DeleteTags"
    };
    scope
        .existing(action, kind, id, current)
        .with_request_tags(requested)
}

/// Whether the caller may see one listed resource: the family's describe action on its ARN,
/// with its tags.
pub fn describe(scope: &Scope, action: &str, kind: &str, id: &str, tags: &[Tag]) -> Check {
    scope.existing(action, kind, id, tags)
}

/// The resource naming a gateway's own credentials: a Secret of its `--secrets` file, or its
/// default credential chain.
pub fn gateway_credentials_arn(upstream: &Upstream) -> String {
    match &upstream.secret_ref {
        Some(r) => console_arn(
            "gateway-credentials",
            &format!("{}/{}", r.namespace, r.name),
        ),
        None => console_arn("gateway-credentials", "default"),
    }
}

/// What storing an upstream lets every gateway do with its own rights, so the writer must hold
/// those rights: listing through a console account needs `airlock:UseAccount` on it and
/// `ec2:DescribeInstances` in the upstream's region; a role needs `airlock:UseGatewayRole` on
/// the role's ARN; the gateway's own keys (a local Secret or its default chain) need
/// `airlock:UseGatewayCredentials`.
pub fn gateway_upstream(upstream: &Upstream) -> Vec<Check> {
    let mut checks = Vec::new();
    match upstream.console_account() {
        Some(account) => {
            checks.push(use_account(account));
            checks.push(
                Check::new("ec2:DescribeInstances", "*")
                    .with("ec2:Region", upstream.region.as_str()),
            );
        }
        None => checks.push(
            Check::new(
                "airlock:UseGatewayCredentials",
                gateway_credentials_arn(upstream),
            )
            .with("ec2:Region", upstream.region.as_str()),
        ),
    }
    if let Some(role) = &upstream.role_arn {
        checks.push(Check::new("airlock:UseGatewayRole", role.as_str()));
    }
    checks
}

/// Whether a watcher of the event stream may be told that instances changed in a region:
/// what listing them would need. Events carry ids, never tags.
pub fn see_instance_event(region: Option<&str>) -> Check {
    Check::new("ec2:DescribeInstances", "*").with_some("ec2:Region", region)
}

/// Whether a watcher may be told a gateway configuration changed: what reading them needs.
pub fn see_gateway_config_event() -> Check {
    console("airlock:ListGatewayConfigs", "gateway-config", "*")
}

/// A gateway reporting its endpoints' health under its name.
pub fn report_gateway_health(gateway: &str) -> Check {
    console("airlock:ReportGatewayHealth", "gateway", gateway)
}

/// Attaching (`airlock:AttachUserPolicy`) or detaching a policy, with `airlock:PolicyName`.
pub fn user_policy(action: &str, user: &str, policy: &str) -> Check {
    console(action, "user", user).with("airlock:PolicyName", policy)
}

/// Listing a region's instances through a console account (gateway discovery).
pub fn discover(region: &str) -> Check {
    Check::new("ec2:DescribeInstances", "*").with("ec2:Region", region)
}

/// A `Describe*` call through the console's EC2 endpoint: the action on `*` in the region, as
/// AWS decides describe calls (they support no resource-level permissions).
pub fn describe_call(action: &str, region: &str) -> Check {
    Check::new(&format!("ec2:{action}"), "*").with("ec2:Region", region)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::decide::allows;
    use crate::Principal;
    use airlock_policy::Policy;

    fn scope() -> Scope {
        Scope {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        }
    }

    #[test]
    fn a_launch_is_checked_on_every_resource_with_its_metadata_options() {
        let groups = vec!["sg-1".to_owned()];
        let tags = vec![Tag::new("owner", "bob")];
        let launch = Launch {
            image_id: "ami-1",
            instance_type: "t3.micro",
            subnet_id: Some("subnet-1"),
            security_group_ids: &groups,
            key_name: Some("deploy"),
            tags: &tags,
            metadata_hop_limit: 2,
            placement: &Placement::default(),
        };
        let checks = run_instances(&scope(), &launch, &|_| Vec::new());
        let resources: Vec<&str> = checks.iter().map(|c| c.resource.as_str()).collect();
        assert!(resources.contains(&"arn:aws:ec2:us-east-1::image/ami-1"));
        assert!(resources.contains(&"arn:aws:ec2:us-east-1:123456789012:key-pair/deploy"));
        assert_eq!(
            checks
                .iter()
                .filter(|c| c.action == "ec2:CreateTags")
                .count(),
            2
        );
        // A guardrail on the hop limit holds: containers may not reach the metadata service.
        let guard = Policy::parse(
            "p",
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"*","Resource":"*"},
                {"Effect":"Deny","Action":"ec2:RunInstances","Resource":"arn:aws:ec2:*:*:instance/*",
                 "Condition":{"NumericGreaterThan":{"ec2:MetadataHttpPutResponseHopLimit":"1"}}}]}"#,
        )
        .unwrap();
        let bob = Principal::new("bob", false, None);
        let instance = checks
            .iter()
            .find(|c| c.resource.ends_with(":instance/*") && c.action == "ec2:RunInstances")
            .unwrap();
        assert!(!allows(std::slice::from_ref(&guard), &bob, instance));
        let one = Launch {
            metadata_hop_limit: 1,
            ..launch
        };
        let checks = run_instances(&scope(), &one, &|_| Vec::new());
        assert!(checks
            .iter()
            .all(|c| allows(std::slice::from_ref(&guard), &bob, c)));
    }

    #[test]
    fn a_launch_carries_its_placement_as_aws_does() {
        let placement = Placement {
            availability_zone: Some("us-east-1b".into()),
            tenancy: Some(airlock_cloud::Tenancy::Dedicated),
            group_name: Some("ring".into()),
        };
        let launch = Launch {
            image_id: "ami-1",
            instance_type: "t3.micro",
            subnet_id: None,
            security_group_ids: &[],
            key_name: None,
            tags: &[],
            metadata_hop_limit: 1,
            placement: &placement,
        };
        let checks = run_instances(&scope(), &launch, &|_| Vec::new());
        assert!(checks
            .iter()
            .any(|c| c.resource == "arn:aws:ec2:us-east-1:123456789012:placement-group/ring"));
        // Only shared hardware: a dedicated launch is refused, a default one allowed.
        let shared_only = Policy::parse(
            "p",
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"*","Resource":"*"},
                {"Effect":"Deny","Action":"ec2:RunInstances","Resource":"*",
                 "Condition":{"StringEquals":{"ec2:Tenancy":"dedicated"}}}]}"#,
        )
        .unwrap();
        let bob = Principal::new("bob", false, None);
        let allowed = |checks: &[Check]| {
            checks
                .iter()
                .all(|c| allows(std::slice::from_ref(&shared_only), &bob, c))
        };
        assert!(!allowed(&checks));
        let shared = Placement {
            tenancy: None,
            ..placement.clone()
        };
        let default = Launch {
            placement: &shared,
            ..launch
        };
        assert!(allowed(&run_instances(&scope(), &default, &|_| Vec::new())));
    }

    #[test]
    fn an_unknown_instance_is_decided_as_an_untagged_one() {
        let owner_only = Policy::parse(
            "p",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*",
                "Condition":{"StringEquals":{"ec2:ResourceTag/owner":"${aws:username}"}}}]}"#,
        )
        .unwrap();
        let bob = Principal::new("bob", false, None);
        let missing = unknown_instance(&scope(), "ec2:StopInstances", "i-0123456789abcdef0");
        assert!(!allows(std::slice::from_ref(&owner_only), &bob, &missing));
    }
}
