//! Running a fleet operation against EC2: first [`prepare`] looks up the resources it touches
//! (their tags decide authorization, their state decides what to do), then [`execute`] makes
//! the calls and reports each one, so every EC2 call can be audited, even in a multi-step move
//! that fails half-way. Each family module holds its own look-ups and calls; this is what they
//! share: the outcome, the record of calls, and the dispatch.
//!
//! Nothing here needs the console: the same functions run with an instance's own credentials.

use crate::facts::Facts;
use crate::request::FleetRequest;
use airlock_cloud::Scope;
use airlock_cloud::{
    Address, CloudError, Ec2, KeyPair, NetworkInterface, RequestId, Snapshot, Volume,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Why a fleet operation could not go on.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// EC2 refused a call (AWS's code and message).
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// A resource the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The resource is not in a state the operation needs.
    #[error("{0}")]
    Conflict(String),
}

/// Looks up, in EC2, every existing resource the request names; a missing one is an error
/// before any change.
pub async fn prepare(ec2: &dyn Ec2, request: &FleetRequest) -> Result<Facts, FleetError> {
    use FleetRequest as R;
    let mut f = Facts::default();
    match request {
        R::Address(r) => r.prepare(ec2, &mut f).await?,
        R::Interface(r) => r.prepare(ec2, &mut f).await?,
        R::SecurityGroup(r) => r.prepare(ec2, &mut f).await?,
        R::KeyPair(r) => r.prepare(ec2, &mut f).await?,
        R::Volume(r) => r.prepare(ec2, &mut f).await?,
        R::Snapshot(r) => r.prepare(ec2, &mut f).await?,
        R::Image(r) => r.prepare(ec2, &mut f).await?,
    }
    Ok(f)
}

/// A private key EC2 returned once: serialized for the caller, redacted everywhere else.
#[derive(Clone)]
pub struct PrivateKey(pub SecretString);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

impl Serialize for PrivateKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose_secret())
    }
}

impl<'de> Deserialize<'de> for PrivateKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| PrivateKey(s.into()))
    }
}

/// What a fleet operation did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Outcome {
    /// The operation, as its console path (`addresses/move`).
    pub operation: String,
    /// A one-line summary for people.
    pub message: String,
    /// The resource created or changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The last AWS request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_request_id: Option<String>,
    /// An address association id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub association_id: Option<String>,
    /// A network interface attachment id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    /// The address, after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// The network interface, after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface: Option<NetworkInterface>,
    /// The new volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<Volume>,
    /// The new snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// The new key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pair: Option<KeyPair>,
    /// The new key pair's private key: in this response only, never stored or logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub private_key: Option<PrivateKey>,
}

/// One EC2 call an operation made, for the audit log.
#[derive(Debug)]
pub struct Call {
    /// e.g. `ec2:DetachNetworkInterface`.
    pub action: String,
    /// ARNs of the resources it acted on.
    pub resources: Vec<String>,
    /// AWS's request id, or its error.
    pub result: Result<RequestId, CloudError>,
}

/// Every call an operation made, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// The calls, in order.
    pub calls: Vec<Call>,
    /// The outcome, or why it stopped.
    pub result: Result<Outcome, FleetError>,
}

impl Outcome {
    /// The outcome of a creation whose answer is the new resource's id.
    pub(crate) fn created(message: String, resource_id: &str) -> Outcome {
        Outcome {
            message,
            resource_id: Some(resource_id.to_owned()),
            ..Outcome::default()
        }
    }
}

/// The calls an operation made so far, each named by ARN in the scope.
pub(crate) struct Recorder<'a> {
    pub(crate) scope: &'a Scope,
    calls: Vec<Call>,
}

impl Recorder<'_> {
    /// Records one call and passes its result on.
    pub(crate) fn call<T>(
        &mut self,
        action: &str,
        resources: &[(&str, &str)],
        result: Result<T, CloudError>,
        request_id: impl FnOnce(&T) -> RequestId,
    ) -> Result<T, CloudError> {
        self.calls.push(Call {
            action: format!("ec2:{action}"),
            resources: resources
                .iter()
                .map(|(kind, id)| self.scope.arn(kind, id))
                .collect(),
            result: match &result {
                Ok(v) => Ok(request_id(v)),
                Err(e) => Err(e.clone()),
            },
        });
        result
    }

    /// Records a call that changes `resources` (the first is the one changed, the others
    /// take part) and answers with AWS's request id only.
    pub(crate) fn changed(
        &mut self,
        action: &str,
        resources: &[(&str, &str)],
        result: Result<RequestId, CloudError>,
        message: String,
    ) -> Result<Outcome, FleetError> {
        let aws_request_id = self.call(action, resources, result, same)?;
        Ok(Outcome {
            message,
            resource_id: resources.first().map(|(_, id)| (*id).to_owned()),
            aws_request_id,
            ..Outcome::default()
        })
    }
}

/// The request id of a call whose answer does not carry one.
pub(crate) fn none<T>(_: &T) -> RequestId {
    None
}

/// The request id of a call that answers with nothing else.
pub(crate) fn same(id: &RequestId) -> RequestId {
    id.clone()
}

/// Runs the request: the EC2 calls it needs, in order, each recorded. `copy_to` is the client of
/// the destination region for `CopySnapshot` (EC2 copies from the destination's side).
pub async fn execute(
    ec2: &dyn Ec2,
    copy_to: Option<&dyn Ec2>,
    request: &FleetRequest,
    facts: &Facts,
    scope: &Scope,
) -> Run {
    use FleetRequest as R;
    let mut rec = Recorder {
        scope,
        calls: Vec::new(),
    };
    let result = match request {
        R::Address(r) => r.run(ec2, facts, &mut rec).await,
        R::Interface(r) => r.run(ec2, facts, &mut rec).await,
        R::SecurityGroup(r) => r.run(ec2, &mut rec).await,
        R::KeyPair(r) => r.run(ec2, &mut rec).await,
        R::Volume(r) => r.run(ec2, facts, &mut rec).await,
        R::Snapshot(r) => r.run(ec2, copy_to, &mut rec).await,
        R::Image(r) => r.run(ec2, &mut rec).await,
    };
    let result = result.map(|mut o| {
        o.operation = request.path();
        o
    });
    Run {
        calls: rec.calls,
        result,
    }
}
