//! The session policy of a scoped deployment: what its instances' temporary credentials may do.
//!
//! The policy is generated from the deployment (Describe in its region; changes only to
//! resources tagged `airlock:deployment=<id>`; new resources only when tagged so on creation;
//! the console's own tags never changed) plus any extra statements the deployment asks for.
//! Every Allow in it must be *provably* within the deploying user's policies as they are now
//! ([`airlock_policy::uncovered`]): no Deny of theirs may overlap it, whatever the Deny's
//! conditions, and a conditional Allow of theirs covers it only when the statement carries the
//! same conditions. A generated action that cannot be proved is left out; an extra statement
//! that cannot be proved refuses the deployment. The console generates it again for every
//! refresh, so credentials follow the deployer's policies. Everything here is pure.

use crate::principal::Principal;
use crate::tags::DEPLOYMENT_TAG;
use airlock_policy::{Policy, UncoveredReason};
use serde_json::{json, Value};

/// STS's limit on a session policy's plain text (AssumeRole and GetFederationToken).
pub const MAX_SESSION_POLICY: usize = 2048;

/// Read-only actions the credentials get on the deployment's region (when the user has them).
pub const DESCRIBE_ACTIONS: [&str; 8] = [
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeTags",
    "ec2:DescribeVolumes",
    "ec2:DescribeSnapshots",
    "ec2:DescribeAddresses",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeImages",
];

/// Changes allowed on resources already tagged with the deployment, and the resource kind each
/// is checked against in the user's policies.
pub const OWN_RESOURCE_ACTIONS: [(&str, &str); 16] = [
    ("ec2:StartInstances", "instance"),
    ("ec2:StopInstances", "instance"),
    ("ec2:RebootInstances", "instance"),
    ("ec2:TerminateInstances", "instance"),
    ("ec2:CreateTags", "instance"),
    ("ec2:DeleteTags", "instance"),
    ("ec2:AttachVolume", "volume"),
    ("ec2:DetachVolume", "volume"),
    ("ec2:DeleteVolume", "volume"),
    ("ec2:CreateSnapshot", "volume"),
    ("ec2:DeleteSnapshot", "snapshot"),
    ("ec2:AssociateAddress", "elastic-ip"),
    ("ec2:DisassociateAddress", "elastic-ip"),
    ("ec2:ReleaseAddress", "elastic-ip"),
    ("ec2:AttachNetworkInterface", "network-interface"),
    ("ec2:DetachNetworkInterface", "network-interface"),
];

/// Creations allowed when the new resource is tagged with the deployment on creation.
pub const CREATE_ACTIONS: [(&str, &str); 4] = [
    ("ec2:CreateVolume", "volume"),
    ("ec2:CreateSnapshot", "snapshot"),
    ("ec2:AllocateAddress", "elastic-ip"),
    ("ec2:CreateNetworkInterface", "network-interface"),
];

/// Instance lifecycle actions that bootstrap-mode credentials may take on their own instance
/// only.
const SELF_ONLY_ACTIONS: [&str; 4] = [
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:RebootInstances",
    "ec2:TerminateInstances",
];

/// What the generated policy is about.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// The deployment id.
    pub deployment_id: &'a str,
    /// Its region.
    pub region: &'a str,
    /// The 12-digit account id.
    pub account_id: &'a str,
}

impl Scope<'_> {
    /// Every resource of one kind in the deployment's account and region. Snapshots and
    /// images carry no account in their ARN; a policy written with one would never match what
    /// AWS evaluates.
    fn arn(&self, kind: &str) -> String {
        airlock_cloud::arn(self.region, self.account_id, kind, "*")
    }

    #[cfg(test)]
    fn tagged(&self) -> airlock_cloud::Tag {
        airlock_cloud::Tag::new(DEPLOYMENT_TAG, self.deployment_id)
    }
}

/// An extra statement the user could not make, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The statement's `Sid` (or `Extra<N>`).
    pub sid: String,
    /// The action the user's policies do not provably allow.
    pub action: String,
    /// The resource.
    pub resource: String,
    /// Why: the deployer's Deny that overlaps, or that nothing of theirs allows it as written.
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "statement {} asks for {} on {}, {}",
            self.sid, self.action, self.resource, self.reason
        )
    }
}

/// The deploying user, whose policies bound the credentials.
#[derive(Debug, Clone, Copy)]
pub struct Deployer<'a> {
    /// Their policies as they are now.
    pub policies: &'a [Policy],
    /// Who they are (for `${aws:username}` in their policies).
    pub principal: &'a Principal,
}

impl Deployer<'_> {
    /// What of `statement` (a JSON statement named `sid`) is not provably within the
    /// deployer's policies.
    fn unproved(&self, sid: &str, statement: &Value) -> Vec<Refused> {
        let refused = |action: String, resource: String, reason: String| Refused {
            sid: sid.to_owned(),
            action,
            resource,
            reason,
        };
        let document = json!({"Version": "2012-10-17", "Statement": [statement]}).to_string();
        let session = match Policy::parse("session", &document) {
            Ok(p) => p,
            Err(e) => {
                return vec![refused(
                    String::new(),
                    String::new(),
                    format!("which does not parse: {e}"),
                )]
            }
        };
        airlock_policy::uncovered(&session, self.policies, &self.principal.variables())
            .into_iter()
            .map(|u| {
                let why = match u.reason {
                    UncoveredReason::DeniedBy(d) => {
                        format!("which your statement {d} denies (under some conditions)")
                    }
                    UncoveredReason::NotAllowed => {
                        "which no statement of your policies allows with the conditions given"
                            .to_owned()
                    }
                    UncoveredReason::NotProvable(why) => {
                        format!("which cannot be proved within your policies: {why}")
                    }
                };
                refused(u.action, u.resource, why)
            })
            .collect()
    }

    /// Whether one generated statement is provably within the deployer's policies.
    fn proves(&self, statement: &Value) -> bool {
        self.unproved("", statement).is_empty()
    }
}

/// Why extra statements cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ExtraError {
    /// Which statement and field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Checks the shape of extra statements: objects with `Effect`, `Action` and `Resource`
/// (not `NotAction`/`NotResource`, which cannot be intersected with the user's policies).
pub fn validate_extra(extra: &[Value]) -> Result<(), ExtraError> {
    if extra.is_empty() {
        return Ok(());
    }
    for (i, statement) in extra.iter().enumerate() {
        let field = |name: &str| format!("policy_statements[{i}]{name}");
        let Some(object) = statement.as_object() else {
            return Err(ExtraError {
                field: field(""),
                message: "a statement is a JSON object".into(),
            });
        };
        for key in ["NotAction", "NotResource", "NotPrincipal", "Principal"] {
            if object.contains_key(key) {
                return Err(ExtraError {
                    field: field(&format!(".{key}")),
                    message: format!(
                        "{key} is not accepted in a session policy statement: name actions and resources"
                    ),
                });
            }
        }
        match object.get("Effect").and_then(Value::as_str) {
            Some("Allow" | "Deny") => {}
            _ => {
                return Err(ExtraError {
                    field: field(".Effect"),
                    message: "Effect is \"Allow\" or \"Deny\"".into(),
                })
            }
        }
        for key in ["Action", "Resource"] {
            if strings(object.get(key)).is_empty() {
                return Err(ExtraError {
                    field: field(&format!(".{key}")),
                    message: format!("{key} is a string or a list of strings"),
                });
            }
        }
    }
    let document = json!({"Version": "2012-10-17", "Statement": extra});
    airlock_policy::Policy::parse("policy_statements", &document.to_string()).map_err(|e| {
        ExtraError {
            field: "policy_statements".into(),
            message: e.to_string(),
        }
    })?;
    Ok(())
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// A generated grant: actions allowed on a resource under a condition, with a name.
struct Grant {
    sid: &'static str,
    actions: Vec<&'static str>,
    resource: String,
    condition: Option<Value>,
}

impl Grant {
    fn statement(&self, actions: &[&str], resource: &str) -> Value {
        self.named(self.sid.to_owned(), actions, resource)
    }

    /// The grant's statement for one resource kind, named after it (Sids are unique).
    fn for_kind(&self, kind: &str, actions: &[&str], resource: &str) -> Value {
        let suffix: String = kind
            .split('-')
            .flat_map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase())
                    .into_iter()
                    .chain(c)
            })
            .collect();
        self.named(format!("{}{suffix}", self.sid), actions, resource)
    }

    fn named(&self, sid: String, actions: &[&str], resource: &str) -> Value {
        let mut st =
            json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource});
        if let (Some(c), Some(st)) = (&self.condition, st.as_object_mut()) {
            st.insert("Condition".into(), c.clone());
        }
        st
    }
}

/// Keeps the actions of a grant the deployer provably has: first on the grant's resource (`*`,
/// bound by the deployment tag; temporary credentials act in their own account only), else on
/// the resource kind in the deployment's account and region, else not at all. STS allows 2,048
/// characters, so the longer per-kind statements are used only when the deployer's own grants
/// are per kind.
fn proved(
    deployer: &Deployer<'_>,
    scope: &Scope<'_>,
    grant: &Grant,
    kind_of: &dyn Fn(&str) -> Option<&'static str>,
) -> Vec<Value> {
    let mut wide = Vec::new();
    let mut by_kind: Vec<(&str, Vec<&str>)> = Vec::new();
    for action in &grant.actions {
        if deployer.proves(&grant.statement(&[action], &grant.resource)) {
            wide.push(*action);
            continue;
        }
        let Some(kind) = kind_of(action) else {
            continue;
        };
        if deployer.proves(&grant.statement(&[action], &scope.arn(kind))) {
            match by_kind.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, list)) => list.push(action),
                None => by_kind.push((kind, vec![action])),
            }
        }
    }
    let mut out = Vec::new();
    if !wide.is_empty() {
        out.push(grant.statement(&wide, &grant.resource));
    }
    for (kind, actions) in by_kind {
        out.push(grant.for_kind(kind, &actions, &scope.arn(kind)));
    }
    out
}

fn kind_in(
    table: &'static [(&'static str, &'static str)],
) -> impl Fn(&str) -> Option<&'static str> {
    move |action| table.iter().find(|(a, _)| *a == action).map(|(_, k)| *k)
}

/// The session policy for a deployment: the generated grants the deployer provably has, the
/// reserved-tag guard, and the extra statements, each of which must be provably within the
/// deployer's policies (otherwise the refusals name them). The result is compact JSON, as STS
/// measures it.
pub fn session_policy(
    scope: &Scope<'_>,
    extra: &[Value],
    deployer: &Deployer<'_>,
) -> Result<String, Vec<Refused>> {
    let refused = refusals(extra, deployer);
    if !refused.is_empty() {
        return Err(refused);
    }
    let own =
        json!({"StringEquals": {format!("aws:ResourceTag/{DEPLOYMENT_TAG}"): scope.deployment_id}});
    let tagged =
        json!({"StringEquals": {format!("aws:RequestTag/{DEPLOYMENT_TAG}"): scope.deployment_id}});
    let describe = Grant {
        sid: "Describe",
        actions: DESCRIBE_ACTIONS.to_vec(),
        resource: "*".into(),
        condition: Some(json!({"StringEquals": {"ec2:Region": scope.region}})),
    };
    let changes = Grant {
        sid: "OwnResources",
        actions: OWN_RESOURCE_ACTIONS.iter().map(|(a, _)| *a).collect(),
        resource: "*".into(),
        condition: Some(own),
    };
    let creates = Grant {
        sid: "CreateTagged",
        actions: CREATE_ACTIONS.iter().map(|(a, _)| *a).collect(),
        resource: "*".into(),
        condition: Some(tagged.clone()),
    };
    let mut statements = proved(deployer, scope, &describe, &|_| None);
    statements.extend(proved(
        deployer,
        scope,
        &changes,
        &kind_in(&OWN_RESOURCE_ACTIONS),
    ));
    let created = proved(deployer, scope, &creates, &kind_in(&CREATE_ACTIONS));
    let may_create: Vec<&str> = CREATE_ACTIONS
        .iter()
        .map(|(a, _)| *a)
        .filter(|a| created.iter().any(|st| mentions(st, a)))
        .collect();
    statements.extend(created);
    // A new interface also names its subnet and security groups, which the deployment does not
    // own; the interface itself must still be tagged (CreateTagged).
    if may_create.contains(&"ec2:CreateNetworkInterface") {
        let network = json!({"Sid": "InterfacesInNetwork", "Effect": "Allow",
            "Action": "ec2:CreateNetworkInterface",
            "Resource": [scope.arn("subnet"), scope.arn("security-group")]});
        if deployer.proves(&network) {
            statements.push(network);
        }
    }
    if !may_create.is_empty() {
        let mut condition = tagged;
        let create_actions: Vec<&str> = may_create.iter().map(|a| create_action(a)).collect();
        if let Some(equals) = condition
            .get_mut("StringEquals")
            .and_then(Value::as_object_mut)
        {
            equals.insert("ec2:CreateAction".into(), json!(create_actions));
        }
        let tag_on_create = json!({"Sid": "TagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags",
            "Resource": "*", "Condition": condition});
        if deployer.proves(&tag_on_create) {
            statements.push(tag_on_create);
        }
    }
    statements.push(keep_reserved_tags());
    statements.extend(extra.iter().cloned());
    Ok(json!({"Version": "2012-10-17", "Statement": statements}).to_string())
}

/// Outside tag-on-create, no tag of the console's can be set or removed: that would move a
/// resource into or out of a deployment, or into a gateway's traffic. AWS's `StringLike` is
/// case-sensitive, so the usual spellings are named; Airlock itself reads its tags only in the
/// lower-case spelling.
fn keep_reserved_tags() -> Value {
    json!({
        "Sid": "KeepAirlockTags",
        "Effect": "Deny",
        "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
        "Resource": "*",
        "Condition": {
            "ForAnyValue:StringLike": {"aws:TagKeys": ["airlock:*", "Airlock:*", "AIRLOCK:*"]},
            "Null": {"ec2:CreateAction": "true"},
        },
    })
}

fn mentions(statement: &Value, action: &str) -> bool {
    match &statement["Action"] {
        Value::String(a) => a == action,
        Value::Array(list) => list.iter().any(|a| a == action),
        _ => false,
    }
}

/// The extra Allow statements' actions and resources that are not provably within the
/// deployer's policies.
fn refusals(extra: &[Value], deployer: &Deployer<'_>) -> Vec<Refused> {
    let mut refused = Vec::new();
    for (i, statement) in extra.iter().enumerate() {
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let sid = statement
            .get("Sid")
            .and_then(Value::as_str)
            .map_or_else(|| format!("Extra{}", i + 1), str::to_owned);
        refused.extend(deployer.unproved(&sid, statement));
    }
    refused
}

/// The deployment's policy narrowed to one instance (bootstrap mode): lifecycle actions only
/// on the instance that exchanged the token.
pub fn for_instance(policy: &str, scope: &Scope<'_>, instance_id: &str) -> Result<String, String> {
    let mut document: Value =
        serde_json::from_str(policy).map_err(|e| format!("stored session policy: {e}"))?;
    let own = format!(
        "arn:aws:ec2:{}:{}:instance/{instance_id}",
        scope.region, scope.account_id
    );
    let Some(statements) = document.get_mut("Statement").and_then(Value::as_array_mut) else {
        return Err("stored session policy has no statements".into());
    };
    statements.push(json!({
        "Sid": "OnlyThisInstance",
        "Effect": "Deny",
        "Action": SELF_ONLY_ACTIONS,
        "NotResource": own,
    }));
    Ok(document.to_string())
}

/// `ec2:CreateAction` is the API name without the service prefix.
fn create_action(action: &str) -> &str {
    action.strip_prefix("ec2:").unwrap_or(action)
}

/// An STS session (or federated user) name carrying who deployed and which deployment, in the
/// characters STS accepts and at most `max` of them (64 for AssumeRole, 32 for
/// GetFederationToken). The deployment id is kept whole; the user name is shortened.
pub fn session_name(user: &str, deployment_id: &str, max: usize) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let deployment = clean(deployment_id);
    let room = max.saturating_sub(deployment.len() + 1);
    let user: String = clean(user).chars().take(room).collect();
    let name = if user.is_empty() {
        deployment
    } else {
        format!("{user}@{deployment}")
    };
    name.chars().take(max).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::check::Check;
    use airlock_policy::{Decision, Request};

    const ADMIN: &str =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

    fn generated(policies: &[&str], extra: &[Value]) -> Result<String, Vec<Refused>> {
        let policies: Vec<Policy> = policies
            .iter()
            .enumerate()
            .map(|(i, p)| Policy::parse(&format!("p{i}"), p).unwrap())
            .collect();
        let principal = Principal::new("bob", false, None);
        session_policy(
            &SCOPE,
            extra,
            &Deployer {
                policies: &policies,
                principal: &principal,
            },
        )
    }

    const SCOPE: Scope<'static> = Scope {
        deployment_id: "dep-0123456789abcdef",
        region: "us-east-1",
        account_id: "123456789012",
    };

    fn evaluate(policy: &str, action: &str, resource: &str, tags: &[(&str, &str)]) -> Decision {
        let policy = Policy::parse("session", policy).unwrap();
        let mut check = Check::new(action, resource)
            .with("aws:RequestedRegion", "us-east-1")
            .with("ec2:Region", "us-east-1");
        let tags: Vec<airlock_cloud::Tag> = tags
            .iter()
            .map(|(k, v)| airlock_cloud::Tag::new(*k, *v))
            .collect();
        check = check.with_resource_tags(&tags);
        airlock_policy::evaluate(
            &[policy],
            &Request {
                action: action.into(),
                resource: resource.into(),
                context: check.context,
            },
        )
        .decision
    }

    #[test]
    fn allows_own_resources_and_denies_others() {
        let policy = generated(&[ADMIN], &[]).unwrap();
        let own = [(DEPLOYMENT_TAG, SCOPE.deployment_id)];
        let other = [(DEPLOYMENT_TAG, "dep-ffffffffffffffff")];
        let arn = "arn:aws:ec2:us-east-1:123456789012:instance/i-1";
        assert_eq!(
            evaluate(&policy, "ec2:StopInstances", arn, &own),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&policy, "ec2:StopInstances", arn, &other),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&policy, "ec2:StopInstances", arn, &[]),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&policy, "ec2:DescribeInstances", "*", &[]),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&policy, "iam:CreateUser", "*", &own),
            Decision::ImplicitDeny
        );
        assert!(policy.len() <= MAX_SESSION_POLICY, "{} bytes", policy.len());
    }

    /// Two instances, an address, an interface, a volume and a snapshot, all tagged with the
    /// scope's deployment.
    fn own_facts() -> airlock_fleet::Facts {
        use airlock_cloud::{
            Address, Instance, InterfaceAttachment, NetworkInterface, Snapshot, Volume,
        };
        use airlock_fleet::Facts;
        let own = vec![SCOPE.tagged()];
        let instance = |id: &str| Instance {
            instance_id: id.into(),
            image_id: None,
            instance_type: Some("t3.micro".into()),
            state: "running".into(),
            private_ip: None,
            public_ip: None,
            subnet_id: None,
            vpc_id: None,
            launch_time: None,
            tags: own.clone(),
            availability_zone: None,
            root_device_name: None,
        };
        Facts {
            instances: vec![instance("i-a"), instance("i-b")],
            addresses: vec![Address {
                allocation_id: Some("eipalloc-1".into()),
                public_ip: Some("198.51.100.7".into()),
                instance_id: Some("i-a".into()),
                association_id: Some("eipassoc-1".into()),
                network_interface_id: None,
                private_ip: None,
                tags: own.clone(),
            }],
            interfaces: vec![NetworkInterface {
                network_interface_id: "eni-1".into(),
                subnet_id: Some("subnet-1".into()),
                vpc_id: Some("vpc-1".into()),
                availability_zone: Some("us-east-1a".into()),
                private_ip: Some("10.0.0.9".into()),
                status: Some("in-use".into()),
                description: None,
                security_group_ids: vec![],
                attachment: Some(InterfaceAttachment {
                    attachment_id: Some("eni-attach-1".into()),
                    instance_id: Some("i-a".into()),
                    device_index: Some(1),
                    status: Some("attached".into()),
                }),
                tags: own.clone(),
            }],
            volumes: vec![Volume {
                volume_id: "vol-1".into(),
                attached_to: vec!["i-a".into()],
                tags: own.clone(),
                state: Some("in-use".into()),
                availability_zone: Some("us-east-1a".into()),
                size_gib: Some(8),
                volume_type: Some("gp3".into()),
                iops: None,
                encrypted: Some(false),
                snapshot_id: None,
                attachments: vec![],
            }],
            snapshots: vec![Snapshot {
                snapshot_id: "snap-1".into(),
                volume_id: Some("vol-1".into()),
                state: Some("completed".into()),
                progress: None,
                volume_size_gib: Some(8),
                description: None,
                encrypted: Some(false),
                owner_id: Some("123456789012".into()),
                start_time: None,
                tags: own.clone(),
            }],
            ..Facts::default()
        }
    }

    /// What the session `policy` decides for each check of a fleet request: (action, resource,
    /// decision).
    fn fleet_decisions(
        policy: &Policy,
        facts: &airlock_fleet::Facts,
        (family, verb, body): (&str, &str, Value),
    ) -> Vec<(String, String, Decision)> {
        let scope = airlock_cloud::Scope {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        };
        let request = airlock_fleet::FleetRequest::parse(family, verb, body)
            .unwrap()
            .unwrap();
        crate::fleet::checks(&request, facts, &scope)
            .into_iter()
            .map(|c| {
                let r = Request {
                    action: c.action.clone(),
                    resource: c.resource.clone(),
                    context: c.context,
                };
                (
                    c.action,
                    c.resource,
                    airlock_policy::evaluate(std::slice::from_ref(policy), &r).decision,
                )
            })
            .collect()
    }

    /// Fleet operations an instance runs with its scoped credentials, on its deployment's own
    /// resources, decided exactly as the console decides them.
    #[test]
    fn instances_can_run_fleet_operations_on_their_own_resources() {
        let policy = Policy::parse("s", &generated(&[ADMIN], &[]).unwrap()).unwrap();
        let facts = own_facts();
        let tagged = json!([{"key": DEPLOYMENT_TAG, "value": SCOPE.deployment_id}]);
        let decide = |family: &str, verb: &str, body: Value| {
            fleet_decisions(&policy, &facts, (family, verb, body))
        };
        let allowed = [
            ("addresses", "allocate", json!({"tags": tagged})),
            (
                "addresses",
                "move",
                json!({"allocation_id": "eipalloc-1", "to_instance_id": "i-b"}),
            ),
            (
                "addresses",
                "disassociate",
                json!({"allocation_id": "eipalloc-1"}),
            ),
            (
                "network-interfaces",
                "create",
                json!({"subnet_id": "subnet-1", "private_ip": "10.0.0.10", "tags": tagged}),
            ),
            (
                "network-interfaces",
                "move",
                json!({"network_interface_id": "eni-1", "to_instance_id": "i-b"}),
            ),
            (
                "volumes",
                "create",
                json!({"availability_zone": "us-east-1a", "size_gib": 8, "tags": tagged}),
            ),
            ("volumes", "detach", json!({"volume_id": "vol-1"})),
            (
                "snapshots",
                "create",
                json!({"volume_id": "vol-1", "tags": tagged}),
            ),
            ("snapshots", "delete", json!({"snapshot_id": "snap-1"})),
        ];
        for (family, verb, body) in allowed {
            for (action, resource, decision) in decide(family, verb, body) {
                assert_eq!(
                    decision,
                    Decision::Allowed,
                    "{family} {verb}: {action} on {resource}"
                );
            }
        }
        // Untagged creations are not theirs to make.
        let untagged = decide(
            "volumes",
            "create",
            json!({"availability_zone": "us-east-1a", "size_gib": 8}),
        );
        assert!(untagged.iter().any(|(_, _, d)| *d != Decision::Allowed));
    }

    #[test]
    fn the_deployment_tag_cannot_be_moved() {
        let policy = Policy::parse("s", &generated(&[ADMIN], &[]).unwrap()).unwrap();
        let arn = "arn:aws:ec2:us-east-1:123456789012:instance/i-1";
        let retag = Check::new("ec2:CreateTags", arn)
            .with_resource_tags(&[SCOPE.tagged()])
            .with_request_tags(&[airlock_cloud::Tag::new(DEPLOYMENT_TAG, "dep-other")]);
        let decide = |c: Check| {
            airlock_policy::evaluate(
                std::slice::from_ref(&policy),
                &Request {
                    action: c.action.clone(),
                    resource: c.resource.clone(),
                    context: c.context,
                },
            )
            .decision
        };
        assert_eq!(decide(retag), Decision::ExplicitDeny);
        // Nor any other of the console's tags, in the spellings AWS compares.
        for key in ["airlock:upstream", "Airlock:port", "AIRLOCK:deployed-by"] {
            let into_traffic = Check::new("ec2:CreateTags", arn)
                .with_resource_tags(&[SCOPE.tagged()])
                .with_request_tags(&[airlock_cloud::Tag::new(key, "web")]);
            assert_eq!(decide(into_traffic), Decision::ExplicitDeny, "{key}");
        }
        let plain_tag = Check::new("ec2:CreateTags", arn)
            .with_resource_tags(&[SCOPE.tagged()])
            .with_request_tags(&[airlock_cloud::Tag::new("port", "8080")]);
        assert_eq!(decide(plain_tag), Decision::Allowed);
        let on_create = Check::new("ec2:CreateTags", "arn:aws:ec2:us-east-1::snapshot/*")
            .with_request_tags(&[SCOPE.tagged()])
            .with("ec2:CreateAction", "CreateSnapshot");
        assert_eq!(decide(on_create), Decision::Allowed);
        let untagged_create = Check::new("ec2:CreateSnapshot", "arn:aws:ec2:us-east-1::snapshot/*");
        assert_eq!(decide(untagged_create), Decision::ImplicitDeny);
    }

    #[test]
    fn intersects_with_the_users_policies() {
        let no_terminate = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"ec2:*","Resource":"*"},
            {"Sid":"Prod","Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*",
             "Condition":{"StringEquals":{"ec2:ResourceTag/env":"prod"}}}]}"#;
        let policy = generated(&[no_terminate], &[]).unwrap();
        assert!(!policy.contains("ec2:TerminateInstances"), "{policy}");
        assert!(policy.contains("ec2:StopInstances"));
        let extra = vec![
            json!({"Sid": "Logs", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::logs/*"}),
        ];
        let refused = generated(&[no_terminate], &extra).unwrap_err();
        assert_eq!(refused[0].sid, "Logs");
        assert_eq!(refused[0].action, "s3:PutObject");
        let granted = generated(&[ADMIN], &extra).unwrap();
        assert!(granted.contains("arn:aws:s3:::logs/*"));
    }

    /// The escape: a deployer denied terminating prod instances asks their instances for
    /// `TerminateInstances` on everything. The Deny's condition does not make it go away.
    #[test]
    fn session_policy_escape_is_refused() {
        let no_terminate = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"ec2:*","Resource":"*"},
            {"Sid":"Prod","Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*",
             "Condition":{"StringEquals":{"ec2:ResourceTag/env":"prod"}}}]}"#;
        let extra =
            vec![json!({"Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "*"})];
        let refused = generated(&[no_terminate], &extra).unwrap_err();
        assert_eq!(refused[0].sid, "Extra1");
        assert!(refused[0].reason.contains("p0#1 (Prod)"), "{}", refused[0]);
        let wildcard =
            vec![json!({"Effect": "Allow", "Action": "ec2:Terminate*", "Resource": "*"})];
        assert!(generated(&[no_terminate], &wildcard).is_err());
    }

    /// A conditional Allow covers an extra statement only when the statement carries its
    /// conditions, resolved for the deployer.
    #[test]
    fn conditional_allows_need_their_conditions_carried() {
        let owner = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*",
             "Condition":{"StringEquals":{"ec2:ResourceTag/owner":"${aws:username}"}}}]}"#;
        let bare = vec![json!({"Effect": "Allow", "Action": "ec2:StopInstances", "Resource": "*"})];
        assert!(generated(&[owner], &bare).is_err());
        let carried = vec![
            json!({"Effect": "Allow", "Action": "ec2:StopInstances", "Resource": "*",
            "Condition": {"StringEquals": {"ec2:ResourceTag/owner": "bob"}}}),
        ];
        assert!(generated(&[owner], &carried).is_ok());
    }

    #[test]
    fn extra_statements_are_checked_for_shape() {
        assert!(validate_extra(&[]).is_ok());
        assert!(validate_extra(&[
            json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
        ])
        .is_ok());
        let err =
            validate_extra(&[json!({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"})])
                .unwrap_err();
        assert_eq!(err.field, "policy_statements[0].NotAction");
        let err = validate_extra(&[json!({"Effect": "Maybe", "Action": "s3:*", "Resource": "*"})])
            .unwrap_err();
        assert_eq!(err.field, "policy_statements[0].Effect");
        let err = validate_extra(&[json!({"Effect": "Allow", "Action": "s3:*"})]).unwrap_err();
        assert_eq!(err.field, "policy_statements[0].Resource");
    }

    #[test]
    fn bootstrap_policy_keeps_lifecycle_to_one_instance() {
        let base = generated(&[ADMIN], &[]).unwrap();
        let policy = for_instance(&base, &SCOPE, "i-own").unwrap();
        let own = [(DEPLOYMENT_TAG, SCOPE.deployment_id)];
        let arn = |id: &str| format!("arn:aws:ec2:us-east-1:123456789012:instance/{id}");
        assert_eq!(
            evaluate(&policy, "ec2:StopInstances", &arn("i-own"), &own),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&policy, "ec2:StopInstances", &arn("i-sibling"), &own),
            Decision::ExplicitDeny
        );
        assert!(policy.len() <= MAX_SESSION_POLICY);
    }

    #[test]
    fn session_names_fit_sts_limits() {
        let name = session_name("ana.maria+ops@example.com", "dep-0123456789abcdef", 32);
        assert!(name.len() <= 32, "{name}");
        assert!(name.ends_with("@dep-0123456789abcdef"), "{name}");
        let name = session_name("bob smith/x", "dep-0123456789abcdef", 64);
        assert_eq!(name, "bob-smith-x@dep-0123456789abcdef");
    }
}
