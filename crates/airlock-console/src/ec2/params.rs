//! EC2 Query API parameters into the operations the console models.
//!
//! Parsing is an allow-list: each supported action takes the parameters it names and nothing
//! else, so a parameter the authorization does not model (an instance profile, a network
//! interface, a block device…) cannot ride along unchecked. A parameter given twice is refused
//! rather than guessed at, so the console and EC2 can never read one request two ways, and what
//! EC2 receives is [`Params::encode`] of exactly what was parsed and decided.

use airlock_cloud::{StateAction, Tag};
use airlock_fleet::FleetRequest;
use std::collections::BTreeMap;

/// Parameters one request may carry at most, and the longest a value may be (user data, which
/// EC2 limits to 16 KiB before base64, is the longest).
pub const MAX_PARAMS: usize = 1000;
const MAX_VALUE: usize = 64 * 1024;
/// The highest `.N` index accepted in a list parameter.
const MAX_INDEX: usize = 1000;

/// Why a request cannot be taken as it is; [`QueryError::code`] is EC2's word for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No `Action`.
    #[error("the request names no Action")]
    MissingAction,
    /// An action the console cannot yet authorize precisely.
    #[error("{0} is not supported by the console's EC2 endpoint: the console cannot yet authorize it precisely")]
    Unsupported(String),
    /// A parameter the action's authorization does not model.
    #[error("parameter {name} is not supported by the console's EC2 endpoint for {action}: the console cannot authorize it")]
    UnsupportedParameter {
        /// The action.
        action: String,
        /// The parameter.
        name: String,
    },
    /// A required parameter is missing.
    #[error("the request must contain the parameter {0}")]
    Missing(String),
    /// A parameter's value is wrong.
    #[error("invalid value for parameter {name}: {why}")]
    Invalid {
        /// The parameter.
        name: String,
        /// Why.
        why: String,
    },
    /// The body is not a form, a name repeats, or it is too big.
    #[error("malformed request: {0}")]
    Malformed(String),
}

impl QueryError {
    /// EC2's error code for it.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::MissingAction => "MissingAction",
            QueryError::Unsupported(_) | QueryError::UnsupportedParameter { .. } => {
                "UnsupportedOperation"
            }
            QueryError::Missing(_) => "MissingParameter",
            QueryError::Invalid { .. } => "InvalidParameterValue",
            QueryError::Malformed(_) => "MalformedQueryString",
        }
    }
}

fn invalid(name: &str, why: impl Into<String>) -> QueryError {
    QueryError::Invalid {
        name: name.to_owned(),
        why: why.into(),
    }
}

/// A request's parameters, each name once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// The parameters of a form body or query string; `X-Amz-*` (a presigned request's
    /// signature) are not EC2's and are left out.
    pub fn from_form(form: &[u8]) -> Result<Params, QueryError> {
        let mut out = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(form) {
            if name.starts_with("X-Amz-") {
                continue;
            }
            if out.len() >= MAX_PARAMS {
                return Err(QueryError::Malformed(format!(
                    "more than {MAX_PARAMS} parameters"
                )));
            }
            if value.len() > MAX_VALUE {
                return Err(invalid(&name, format!("longer than {MAX_VALUE} bytes")));
            }
            if out.insert(name.to_string(), value.to_string()).is_some() {
                return Err(QueryError::Malformed(format!(
                    "parameter {name} is given twice"
                )));
            }
        }
        Ok(Params(out))
    }

    /// Adds the parameters of `other` (a query string beside a form body); a name in both is
    /// refused.
    pub fn merge(&mut self, other: Params) -> Result<(), QueryError> {
        for (name, value) in other.0 {
            if self.0.len() >= MAX_PARAMS {
                return Err(QueryError::Malformed(format!(
                    "more than {MAX_PARAMS} parameters"
                )));
            }
            if self.0.insert(name.clone(), value).is_some() {
                return Err(QueryError::Malformed(format!(
                    "parameter {name} is given twice"
                )));
            }
        }
        Ok(())
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets a parameter (what the console adds, e.g. IMDSv2 on a launch).
    pub fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), value.to_owned());
    }

    /// The form body EC2 receives: exactly these parameters.
    pub fn encode(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }

    /// The action named.
    pub fn action(&self) -> Result<&str, QueryError> {
        match self.get("Action") {
            Some(a) if !a.is_empty() => Ok(a),
            _ => Err(QueryError::MissingAction),
        }
    }
}

/// What a request asks, as the console authorizes it.
#[derive(Debug, Clone)]
pub enum Operation {
    /// A `Describe*` action: reads only, decided on `Resource *`.
    Describe(String),
    /// Start, stop, reboot or terminate instances.
    ChangeState(StateAction, Vec<String>),
    /// `CreateTags` (true) or `DeleteTags` on resources.
    Tags {
        /// `CreateTags`.
        add: bool,
        /// The resources.
        resource_ids: Vec<String>,
        /// The tags.
        tags: Vec<Tag>,
    },
    /// `RunInstances`.
    Run(Launch),
    /// A fleet operation the console models (volumes, snapshots, key pairs, addresses).
    Fleet(Box<FleetRequest>),
}

/// A `RunInstances` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// `ImageId`.
    pub image_id: String,
    /// `InstanceType`.
    pub instance_type: String,
    /// `SubnetId`.
    pub subnet_id: Option<String>,
    /// `SecurityGroupId.N`.
    pub security_group_ids: Vec<String>,
    /// `KeyName`.
    pub key_name: Option<String>,
    /// Tags on creation (the instance's, which the volumes get too).
    pub tags: Vec<Tag>,
    /// `MetadataOptions.HttpPutResponseHopLimit`.
    pub hop_limit: u8,
}

/// Consumes the parameters an action takes; what is left at the end was not modelled.
struct Taker {
    action: String,
    params: BTreeMap<String, String>,
}

impl Taker {
    fn new(params: &Params) -> Taker {
        let mut params = params.0.clone();
        let action = params.remove("Action").unwrap_or_default();
        params.remove("Version");
        // A dry run changes nothing: EC2 answers whether the call would be allowed.
        params.remove("DryRun");
        Taker { action, params }
    }

    fn opt(&mut self, name: &str) -> Option<String> {
        self.params.remove(name)
    }

    fn req(&mut self, name: &str) -> Result<String, QueryError> {
        self.opt(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| QueryError::Missing(name.to_owned()))
    }

    /// `Name.1`, `Name.2`, … in order; a gap ends nothing, a too-large index is refused.
    fn list(&mut self, name: &str) -> Result<Vec<String>, QueryError> {
        let prefix = format!("{name}.");
        let mut found = BTreeMap::new();
        let keys: Vec<String> = self
            .params
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for key in keys {
            let index = index_of(&key, &prefix)?;
            if let Some(v) = self.params.remove(&key) {
                found.insert(index, v);
            }
        }
        Ok(found.into_values().collect())
    }

    /// `Tag.N.Key` / `Tag.N.Value` under `prefix` (e.g. `Tag.` or `TagSpecification.1.Tag.`).
    fn tags(&mut self, prefix: &str) -> Result<Vec<Tag>, QueryError> {
        let mut keys: BTreeMap<usize, String> = BTreeMap::new();
        let mut values: BTreeMap<usize, String> = BTreeMap::new();
        let names: Vec<String> = self
            .params
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for name in names {
            let rest = name.get(prefix.len()..).unwrap_or_default();
            let (n, field) = rest
                .split_once('.')
                .ok_or_else(|| invalid(&name, "expected .Key or .Value"))?;
            let index = index_of(n, "")?;
            let value = self.params.remove(&name).unwrap_or_default();
            match field {
                "Key" => keys.insert(index, value),
                "Value" => values.insert(index, value),
                _ => return Err(invalid(&name, "expected .Key or .Value")),
            };
        }
        let mut out = Vec::new();
        for (index, key) in keys {
            let value = values.remove(&index).unwrap_or_default();
            out.push(Tag { key, value });
        }
        if let Some((index, _)) = values.into_iter().next() {
            return Err(QueryError::Missing(format!("{prefix}{index}.Key")));
        }
        Ok(out)
    }

    /// The tags of `TagSpecification.N` for each resource type; a type the action does not
    /// create is refused.
    fn tag_specifications(
        &mut self,
        types: &[&str],
    ) -> Result<BTreeMap<String, Vec<Tag>>, QueryError> {
        let mut out = BTreeMap::new();
        for n in 1..=MAX_INDEX {
            let base = format!("TagSpecification.{n}.");
            if !self.params.keys().any(|k| k.starts_with(&base)) {
                break;
            }
            let type_name = format!("{base}ResourceType");
            let kind = self.req(&type_name)?;
            if !types.contains(&kind.as_str()) {
                return Err(invalid(
                    &type_name,
                    format!("{} does not create a {kind}", self.action),
                ));
            }
            let tags = self.tags(&format!("{base}Tag."))?;
            if out.insert(kind.clone(), tags).is_some() {
                return Err(invalid(&type_name, format!("{kind} is given twice")));
            }
        }
        Ok(out)
    }

    /// Refuses whatever parameter is left.
    fn done(self) -> Result<(), QueryError> {
        match self.params.into_keys().next() {
            None => Ok(()),
            Some(name) => Err(QueryError::UnsupportedParameter {
                action: self.action,
                name,
            }),
        }
    }
}

fn index_of(key: &str, prefix: &str) -> Result<usize, QueryError> {
    let n = key.get(prefix.len()..).unwrap_or_default();
    match n.parse::<usize>() {
        Ok(i) if (1..=MAX_INDEX).contains(&i) && !n.starts_with('0') => Ok(i),
        _ => Err(invalid(
            key,
            format!("expected an index from 1 to {MAX_INDEX}"),
        )),
    }
}

/// The operation a request asks for, or why the console cannot authorize it.
pub fn operation(params: &Params) -> Result<Operation, QueryError> {
    let action = params.action()?.to_owned();
    let mut t = Taker::new(params);
    let op = match action.as_str() {
        a if a.starts_with("Describe") => {
            // Filters, ids and paging only narrow what is read.
            t.params.clear();
            Operation::Describe(a.to_owned())
        }
        "StartInstances" | "StopInstances" | "RebootInstances" | "TerminateInstances" => {
            change_state(&mut t, &action)?
        }
        "CreateTags" | "DeleteTags" => Operation::Tags {
            add: action == "CreateTags",
            resource_ids: non_empty(t.list("ResourceId")?, "ResourceId.1")?,
            tags: t.tags("Tag.")?,
        },
        "RunInstances" => Operation::Run(launch(&mut t)?),
        other => match fleet_table(other) {
            Some(entry) => Operation::Fleet(Box::new(fleet(&mut t, entry)?)),
            None => return Err(QueryError::Unsupported(other.to_owned())),
        },
    };
    t.done()?;
    Ok(op)
}

fn non_empty(items: Vec<String>, first: &str) -> Result<Vec<String>, QueryError> {
    if items.is_empty() {
        return Err(QueryError::Missing(first.to_owned()));
    }
    Ok(items)
}

fn change_state(t: &mut Taker, action: &str) -> Result<Operation, QueryError> {
    let act = match action {
        "StartInstances" => StateAction::Start,
        "StopInstances" => {
            // Force and Hibernate change how, not what: the same action on the same instances.
            t.opt("Force");
            t.opt("Hibernate");
            StateAction::Stop
        }
        "RebootInstances" => StateAction::Reboot,
        _ => StateAction::Terminate,
    };
    Ok(Operation::ChangeState(
        act,
        non_empty(t.list("InstanceId")?, "InstanceId.1")?,
    ))
}

fn launch(t: &mut Taker) -> Result<Launch, QueryError> {
    for count in ["MinCount", "MaxCount"] {
        let n = t.req(count)?;
        if !matches!(n.parse::<u32>(), Ok(1..=1000)) {
            return Err(invalid(count, "expected a count from 1 to 1000"));
        }
    }
    // The user's own; EC2 reads them only on the instance.
    t.opt("UserData");
    t.opt("ClientToken");
    let tokens = t.opt("MetadataOptions.HttpTokens");
    if tokens.as_deref().is_some_and(|v| v != "required") {
        return Err(invalid(
            "MetadataOptions.HttpTokens",
            "the console launches with IMDSv2 only (required)",
        ));
    }
    let hop_limit = match t.opt("MetadataOptions.HttpPutResponseHopLimit").as_deref() {
        None | Some("1") => 1,
        Some("2") => 2,
        Some(_) => {
            return Err(invalid(
                "MetadataOptions.HttpPutResponseHopLimit",
                "expected 1 or 2",
            ))
        }
    };
    let mut specs = t.tag_specifications(&["instance", "volume"])?;
    let tags = specs.remove("instance").unwrap_or_default();
    if specs.remove("volume").is_some_and(|v| v != tags) {
        return Err(invalid(
            "TagSpecification",
            "the console tags an instance's volumes as the instance: give them the same tags",
        ));
    }
    Ok(Launch {
        image_id: t.req("ImageId")?,
        instance_type: t.req("InstanceType")?,
        subnet_id: t.opt("SubnetId"),
        security_group_ids: t.list("SecurityGroupId")?,
        key_name: t.opt("KeyName"),
        tags,
        hop_limit,
    })
}

/// How one query parameter becomes a field of a fleet request's JSON body.
#[derive(Clone, Copy)]
enum Field {
    /// A string.
    Text(&'static str, &'static str),
    /// An integer.
    Int(&'static str, &'static str),
    /// `true` / `false`.
    Bool(&'static str, &'static str),
    /// Base64 (EC2's blobs) decoded into text.
    Base64Text(&'static str, &'static str),
    /// A parameter EC2 takes whose only value the console models (e.g. `Domain=vpc`).
    Only(&'static str, &'static str),
}

/// A fleet action: its family and verb in the console's API, the resource type its tags on
/// creation name (if any), and its parameters.
struct FleetEntry {
    family: &'static str,
    verb: &'static str,
    tagged: Option<&'static str>,
    fields: &'static [Field],
}

/// The fleet actions the endpoint takes. A table, so what each action may carry is one line.
#[rustfmt::skip]
fn fleet_table(action: &str) -> Option<FleetEntry> {
    use Field::*;
    let e = |family, verb, tagged, fields| FleetEntry { family, verb, tagged, fields };
    Some(match action {
        "CreateSnapshot" => e("snapshots", "create", Some("snapshot"), &[Text("VolumeId", "volume_id"), Text("Description", "description")]),
        "DeleteSnapshot" => e("snapshots", "delete", None, &[Text("SnapshotId", "snapshot_id")]),
        "CreateVolume" => e("volumes", "create", Some("volume"), &[
            Text("AvailabilityZone", "availability_zone"), Int("Size", "size_gib"), Text("VolumeType", "volume_type"),
            Int("Iops", "iops"), Bool("Encrypted", "encrypted"), Text("SnapshotId", "snapshot_id")]),
        "AttachVolume" => e("volumes", "attach", None, &[Text("VolumeId", "volume_id"), Text("InstanceId", "instance_id"), Text("Device", "device")]),
        "DetachVolume" => e("volumes", "detach", None, &[Text("VolumeId", "volume_id"), Bool("Force", "force")]),
        "DeleteVolume" => e("volumes", "delete", None, &[Text("VolumeId", "volume_id")]),
        "CreateKeyPair" => e("key-pairs", "create", Some("key-pair"), &[Text("KeyName", "key_name"), Text("KeyType", "key_type")]),
        "ImportKeyPair" => e("key-pairs", "import", Some("key-pair"), &[Text("KeyName", "key_name"), Base64Text("PublicKeyMaterial", "public_key")]),
        "DeleteKeyPair" => e("key-pairs", "delete", None, &[Text("KeyName", "key_name")]),
        "AllocateAddress" => e("addresses", "allocate", Some("elastic-ip"), &[Only("Domain", "vpc")]),
        "ReleaseAddress" => e("addresses", "release", None, &[Text("AllocationId", "allocation_id")]),
        "AssociateAddress" => e("addresses", "associate", None, &[
            Text("AllocationId", "allocation_id"), Text("InstanceId", "instance_id"),
            Text("NetworkInterfaceId", "network_interface_id"), Text("PrivateIpAddress", "private_ip"),
            Bool("AllowReassociation", "allow_reassociation")]),
        _ => return None,
    })
}

/// The fleet request an action's parameters make, through the same parsing and validation as
/// the console's own `POST /v1/{family}/{verb}`.
fn fleet(t: &mut Taker, entry: FleetEntry) -> Result<FleetRequest, QueryError> {
    let mut body = serde_json::Map::new();
    for field in entry.fields {
        let (name, value) = match *field {
            Field::Text(q, j) => (j, t.opt(q).map(serde_json::Value::String)),
            Field::Int(q, j) => (j, t.opt(q).map(|v| int(q, &v)).transpose()?),
            Field::Bool(q, j) => (j, t.opt(q).map(|v| boolean(q, &v)).transpose()?),
            Field::Base64Text(q, j) => (j, t.opt(q).map(|v| base64_text(q, &v)).transpose()?),
            Field::Only(q, only) => {
                if t.opt(q).is_some_and(|v| v != only) {
                    return Err(invalid(q, format!("the console supports only {only}")));
                }
                continue;
            }
        };
        if let Some(value) = value {
            body.insert(name.to_owned(), value);
        }
    }
    if let Some(kind) = entry.tagged {
        let mut specs = t.tag_specifications(&[kind])?;
        let tags = specs.remove(kind).unwrap_or_default();
        let tags =
            serde_json::to_value(tags).map_err(|e| invalid("TagSpecification", e.to_string()))?;
        body.insert("tags".into(), tags);
    }
    let mut request = FleetRequest::parse(entry.family, entry.verb, body.into())
        .map_err(|e| invalid(&e.field, e.message))?
        .ok_or_else(|| QueryError::Unsupported(t.action.clone()))?;
    request
        .validate()
        .map_err(|e| invalid(&e.field, e.message))?;
    Ok(request)
}

fn int(name: &str, v: &str) -> Result<serde_json::Value, QueryError> {
    v.parse::<i64>()
        .map(serde_json::Value::from)
        .map_err(|_| invalid(name, "expected an integer"))
}

fn boolean(name: &str, v: &str) -> Result<serde_json::Value, QueryError> {
    match v {
        "true" => Ok(true.into()),
        "false" => Ok(false.into()),
        _ => Err(invalid(name, "expected true or false")),
    }
}

fn base64_text(name: &str, v: &str) -> Result<serde_json::Value, QueryError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v)
        .map_err(|_| invalid(name, "expected base64"))?;
    String::from_utf8(bytes)
        .map(serde_json::Value::String)
        .map_err(|_| invalid(name, "expected text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(form: &str) -> Params {
        Params::from_form(form.as_bytes()).unwrap()
    }

    fn op(form: &str) -> Result<Operation, QueryError> {
        operation(&params(form))
    }

    #[test]
    fn a_parameter_given_twice_is_refused_rather_than_guessed_at() {
        let e = Params::from_form(b"Action=TerminateInstances&InstanceId.1=i-a&InstanceId.1=i-b")
            .unwrap_err();
        assert_eq!(e.code(), "MalformedQueryString");
        assert!(e.to_string().contains("InstanceId.1"), "{e}");
        let mut body = params("Action=DescribeInstances");
        let e = body.merge(params("Action=TerminateInstances")).unwrap_err();
        assert!(e.to_string().contains("Action"), "{e}");
    }

    #[test]
    fn presigned_parameters_are_not_ec2_parameters() {
        let p = params("Action=DescribeInstances&X-Amz-Signature=ab&X-Amz-Date=1");
        assert_eq!(p.encode(), "Action=DescribeInstances");
    }

    #[test]
    fn what_ec2_receives_is_exactly_what_was_parsed() {
        let p = params("Version=2016-11-15&Action=CreateTags&ResourceId.1=i-1&Tag.1.Key=a%20b&Tag.1.Value=c%26d");
        let again = Params::from_form(p.encode().as_bytes()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let form: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("P{i}=x")).collect();
        let e = Params::from_form(form.join("&").as_bytes()).unwrap_err();
        assert_eq!(e.code(), "MalformedQueryString");
    }

    #[test]
    fn describe_actions_are_read_only_whatever_their_filters() {
        let o = op("Action=DescribeInstances&Filter.1.Name=tag:team&Filter.1.Value.1=red").unwrap();
        assert!(matches!(o, Operation::Describe(a) if a == "DescribeInstances"));
    }

    #[test]
    fn an_action_the_console_does_not_model_is_unsupported_by_name() {
        let e = op("Action=CreateVpc&CidrBlock=10.0.0.0/16").unwrap_err();
        assert_eq!(e.code(), "UnsupportedOperation");
        assert!(e.to_string().contains("CreateVpc"), "{e}");
        assert_eq!(op("Version=1").unwrap_err(), QueryError::MissingAction);
    }

    #[test]
    fn a_launch_parameter_no_check_covers_is_refused_by_name() {
        for extra in [
            "IamInstanceProfile.Name=admin",
            "NetworkInterface.1.SubnetId=subnet-1",
            "BlockDeviceMapping.1.Ebs.SnapshotId=snap-1",
            "Placement.Tenancy=host",
        ] {
            let form = format!("Action=RunInstances&ImageId=ami-1&InstanceType=t3.micro&MinCount=1&MaxCount=1&{extra}");
            let e = op(&form).unwrap_err();
            assert_eq!(e.code(), "UnsupportedOperation", "{extra}");
            let name = extra.split('=').next().unwrap();
            assert!(e.to_string().contains(name), "{extra}: {e}");
        }
    }

    #[test]
    fn a_launch_takes_its_tags_groups_and_imds_options() {
        let form = "Action=RunInstances&ImageId=ami-1&InstanceType=t3.micro&MinCount=1&MaxCount=2\
            &SubnetId=subnet-1&SecurityGroupId.2=sg-2&SecurityGroupId.1=sg-1&KeyName=k&UserData=eA%3D%3D\
            &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=team&TagSpecification.1.Tag.1.Value=red\
            &TagSpecification.2.ResourceType=volume&TagSpecification.2.Tag.1.Key=team&TagSpecification.2.Tag.1.Value=red\
            &MetadataOptions.HttpPutResponseHopLimit=2";
        let Operation::Run(launch) = op(form).unwrap() else {
            panic!("not a launch");
        };
        assert_eq!(launch.security_group_ids, ["sg-1", "sg-2"]);
        assert_eq!(
            launch.tags,
            [Tag {
                key: "team".into(),
                value: "red".into()
            }]
        );
        assert_eq!(launch.hop_limit, 2);
        assert_eq!(launch.subnet_id.as_deref(), Some("subnet-1"));
    }

    #[test]
    fn a_launch_without_imdsv2_or_with_volume_tags_of_its_own_is_refused() {
        let base = "Action=RunInstances&ImageId=ami-1&InstanceType=t3.micro&MinCount=1&MaxCount=1";
        let e = op(&format!("{base}&MetadataOptions.HttpTokens=optional")).unwrap_err();
        assert!(e.to_string().contains("MetadataOptions.HttpTokens"), "{e}");
        let e = op(&format!(
            "{base}&MetadataOptions.HttpPutResponseHopLimit=64"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("HopLimit"), "{e}");
        let e = op(&format!(
            "{base}&TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Key=team&TagSpecification.1.Tag.1.Value=red"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("TagSpecification"), "{e}");
        let e = op(&format!("{base}&TagSpecification.1.ResourceType=snapshot")).unwrap_err();
        assert!(e.to_string().contains("snapshot"), "{e}");
        let e = op("Action=RunInstances&ImageId=ami-1&InstanceType=t3.micro&MinCount=1&MaxCount=0")
            .unwrap_err();
        assert!(e.to_string().contains("MaxCount"), "{e}");
    }

    #[test]
    fn state_changes_and_tags_name_their_resources() {
        let Operation::ChangeState(act, ids) =
            op("Action=StopInstances&InstanceId.2=i-b&InstanceId.1=i-a&Force=true").unwrap()
        else {
            panic!("not a state change");
        };
        assert_eq!(act, StateAction::Stop);
        assert_eq!(ids, ["i-a", "i-b"]);
        let e = op("Action=TerminateInstances").unwrap_err();
        assert_eq!(e, QueryError::Missing("InstanceId.1".into()));
        let Operation::Tags {
            add,
            resource_ids,
            tags,
        } = op("Action=DeleteTags&ResourceId.1=i-a&Tag.1.Key=team").unwrap()
        else {
            panic!("not tags");
        };
        assert!(!add);
        assert_eq!(resource_ids, ["i-a"]);
        assert_eq!(
            tags,
            [Tag {
                key: "team".into(),
                value: String::new()
            }]
        );
    }

    #[test]
    fn an_index_out_of_range_or_a_value_without_key_is_refused() {
        for form in [
            "Action=TerminateInstances&InstanceId.0=i-a",
            "Action=TerminateInstances&InstanceId.01=i-a",
            "Action=TerminateInstances&InstanceId.1001=i-a",
            "Action=TerminateInstances&InstanceId.x=i-a",
        ] {
            assert_eq!(
                op(form).unwrap_err().code(),
                "InvalidParameterValue",
                "{form}"
            );
        }
        let e = op("Action=CreateTags&ResourceId.1=i-a&Tag.1.Value=red").unwrap_err();
        assert_eq!(e, QueryError::Missing("Tag.1.Key".into()));
    }

    #[test]
    fn fleet_actions_become_the_console_s_own_requests() {
        let o = op("Action=CreateSnapshot&VolumeId=vol-1&Description=d\
            &TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=User&TagSpecification.1.Tag.1.Value=alice")
        .unwrap();
        let Operation::Fleet(request) = o else {
            panic!("not a fleet operation");
        };
        assert_eq!(request.action(), "ec2:CreateSnapshot");
        assert_eq!(
            request.tags(),
            [Tag {
                key: "User".into(),
                value: "alice".into()
            }]
        );
        let e = op("Action=CreateSnapshot&VolumeId=vol-1&OutpostArn=x").unwrap_err();
        assert!(e.to_string().contains("OutpostArn"), "{e}");
        let e = op("Action=AllocateAddress&Domain=standard").unwrap_err();
        assert!(e.to_string().contains("Domain"), "{e}");
        let e = op("Action=CreateVolume&AvailabilityZone=us-east-1a&Size=big").unwrap_err();
        assert!(e.to_string().contains("Size"), "{e}");
        let e = op("Action=ImportKeyPair&KeyName=k&PublicKeyMaterial=%%%").unwrap_err();
        assert!(e.to_string().contains("PublicKeyMaterial"), "{e}");
    }
}
