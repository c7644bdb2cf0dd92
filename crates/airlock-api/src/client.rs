//! The console's HTTP client, typed: one method per call the CLI, the agent's refresh and the
//! gateway's console follower make, the bodies of this crate on both sides, and one error
//! ([`ClientError`]) that keeps what went wrong apart — the transport, the HTTP status, the
//! console's own error body — so each caller decides what to retry and what to show.
//!
//! How the connection is made (trusted roots, proxy, timeouts, source address) is the caller's
//! [`Settings`]: the three callers differ there on purpose.

use crate::access_keys::{
    AccessKeyList, AccessKeyView, CreateAccessKeyRequest, NewAccessKeyView, UpdateAccessKeyRequest,
};
use crate::accounts::{AccountView, AddAccountRequest, RotateKeyResult};
use crate::audit::{AuditPage, Head, Verification};
use crate::commands::{CommandList, CommandView, SendCommandRequest};
use crate::deployments::{DeployRequest, DeploymentPolicy, DeploymentView, RevokeResult};
use crate::error::ErrorBody;
use crate::gateway::{
    DiscoverRequest, DiscoverResponse, GatewayConfigList, GatewayConfigView, GatewayHealthReport,
    PutGatewayConfigRequest, UpstreamList,
};
use crate::instances::TagsView;
use crate::instances::{InstanceActionRequest, InstanceActionResponse, InstanceList, TagRequest};
use crate::maintenance_windows::{
    CreateMaintenanceWindowRequest, ExecutionList, ExecutionView, MaintenanceWindowList,
    MaintenanceWindowView,
};
use crate::refresh::{RefreshRequest, RefreshResponse};
use crate::rolls::{RollRequest, RollView};
use crate::session::{LoginRequest, LoginResponse, Whoami};
use crate::snapshot_policies::{
    CreateSnapshotPolicyRequest, SnapshotPolicyList, SnapshotPolicyView, SnapshotRunView,
};
use crate::state::AccessKeyStatus;
use crate::users::UserView;
use crate::users::{AddUserRequest, AttachPolicyRequest, MfaEnabled, PolicyView, PutPolicyRequest};
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;

/// Which proxy requests go through.
#[derive(Clone, Default)]
pub enum Proxy {
    /// The one `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` name (the usual client behaviour).
    #[default]
    FromEnvironment,
    /// None at all, whatever the environment says.
    Never,
    /// Only this one, whatever the environment says.
    Only(Box<reqwest::Proxy>),
}

/// How to connect to the console.
#[derive(Clone, Default)]
pub struct Settings {
    /// Longest a call may take, answer included (`None`: no limit). The event stream has none.
    pub timeout: Option<Duration>,
    /// Longest the connection may take to open.
    pub connect_timeout: Option<Duration>,
    /// Certificate authorities trusted besides the built-in web roots (`--console-ca`).
    pub roots: Vec<reqwest::Certificate>,
    /// The proxy.
    pub proxy: Proxy,
    /// The address requests leave from.
    pub local_address: Option<IpAddr>,
}

/// Why a call to the console failed.
#[derive(Debug)]
pub enum ClientError {
    /// The HTTP client could not be built (a bad root certificate or proxy).
    Setup(reqwest::Error),
    /// The console did not answer at all (down, restarting, wrong URL, timed out).
    Unreachable {
        /// The console URL.
        url: String,
        /// What went wrong underneath.
        transport: reqwest::Error,
    },
    /// The console refused, with its error body.
    Console {
        /// HTTP status.
        status: u16,
        /// The console's error body.
        body: ErrorBody,
    },
    /// The console (or something in front of it) answered an error without the console's body.
    Status {
        /// HTTP status.
        status: u16,
    },
    /// The answer is not the body this call expects.
    UnexpectedBody {
        /// HTTP status.
        status: u16,
        /// Why it could not be read.
        cause: serde_json::Error,
    },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Setup(_) => f.write_str("cannot set up an HTTP client"),
            // reqwest's own message repeats the URL: the causes under it say what happened.
            ClientError::Unreachable { url, transport } => write!(
                f,
                "cannot reach the console at {url}: {}",
                transport_causes(transport)
            ),
            ClientError::Console { body, .. } => write!(f, "{body}"),
            ClientError::Status { status } => {
                write!(f, "the console answered {}", status_line(*status))
            }
            ClientError::UnexpectedBody { status, .. } => write!(
                f,
                "the console answered {} with an unexpected body",
                status_line(*status)
            ),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Setup(e) => Some(e),
            ClientError::UnexpectedBody { cause, .. } => Some(cause),
            // The transport's causes are in the message already.
            ClientError::Unreachable { .. }
            | ClientError::Console { .. }
            | ClientError::Status { .. } => None,
        }
    }
}

impl ClientError {
    /// The HTTP status, when the console answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Console { status, .. }
            | ClientError::Status { status }
            | ClientError::UnexpectedBody { status, .. } => Some(*status),
            ClientError::Setup(_) | ClientError::Unreachable { .. } => None,
        }
    }

    /// The console's error body, when it sent one.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Console { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The console's error code (`Forbidden`, `BadRequest`…, or AWS's), when it sent one.
    pub fn code(&self) -> Option<&str> {
        self.body().map(|b| b.error.code.as_str())
    }

    /// True when the console is not there right now (worth retrying while it restarts).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. }) || matches!(self.status(), Some(502 | 503))
    }
}

/// `403 Forbidden`, as reqwest prints a status.
fn status_line(status: u16) -> String {
    reqwest::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string())
}

/// What went wrong underneath a transport error.
pub fn transport_causes(e: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    }
}

/// A client for one console, with or without an API token.
#[derive(Clone)]
pub struct ConsoleClient {
    http: reqwest::Client,
    base: String,
    token: Option<SecretString>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for ConsoleClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConsoleClient({})", self.base)
    }
}

impl ConsoleClient {
    /// A client for the console at `base` (trailing `/` ignored).
    pub fn new(
        base: &str,
        token: Option<SecretString>,
        settings: &Settings,
    ) -> Result<ConsoleClient, ClientError> {
        // The console never redirects its API. Following one would resend the token, or a
        // refresh secret in a 307's body, to wherever the answer points.
        let mut builder = reqwest::Client::builder()
            .local_address(settings.local_address)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(t) = settings.connect_timeout {
            builder = builder.connect_timeout(t);
        }
        builder = match &settings.proxy {
            Proxy::FromEnvironment => builder,
            Proxy::Never => builder.no_proxy(),
            Proxy::Only(proxy) => builder.no_proxy().proxy(proxy.as_ref().clone()),
        };
        for root in &settings.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        Ok(ConsoleClient {
            http: builder.build().map_err(ClientError::Setup)?,
            base: base.trim_end_matches('/').to_owned(),
            token,
            timeout: settings.timeout,
        })
    }

    /// The console URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, url: String) -> RequestBuilder {
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose_secret());
        }
        req
    }

    fn call(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.request(method, format!("{}{path}", self.base));
        match self.timeout {
            Some(t) => req.timeout(t),
            None => req,
        }
    }

    /// Sends a request; an answer that is not a success is the error it stands for.
    async fn send(&self, req: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .send()
            .await
            .map_err(|transport| ClientError::Unreachable {
                url: self.base.clone(),
                transport,
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        let status = status.as_u16();
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => ClientError::Console { status, body },
            Err(_) => ClientError::Status { status },
        })
    }

    /// Sends a request and reads its JSON answer (an empty answer reads as `null`).
    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, ClientError> {
        let resp = self.send(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|transport| ClientError::Unreachable {
                url: self.base.clone(),
                transport,
            })?;
        let body = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes
        };
        serde_json::from_slice(body).map_err(|cause| ClientError::UnexpectedBody { status, cause })
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(self.call(Method::GET, path)).await
    }

    /// `GET path?query`.
    pub async fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        self.json(self.call(Method::GET, path).query(query)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.json(self.call(Method::POST, path).json(body)).await
    }

    /// `POST path` with the empty object `{}`: calls that take no body.
    async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.post(path, &serde_json::Map::new()).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.json(self.call(Method::PUT, path).json(body)).await
    }

    /// `DELETE path`, reading the answer.
    pub async fn delete_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(self.call(Method::DELETE, path)).await
    }

    /// `DELETE path`, whatever the answer's body.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send(self.call(Method::DELETE, path)).await.map(|_| ())
    }
}

/// Signing in and out.
impl ConsoleClient {
    /// `POST /v1/login`.
    pub async fn login(&self, req: &LoginRequest) -> Result<LoginResponse, ClientError> {
        self.post("/v1/login", req).await
    }

    /// `POST /v1/logout`: the token no longer works.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.post_empty::<serde_json::Value>("/v1/logout")
            .await
            .map(|_| ())
    }

    /// `GET /v1/whoami`.
    pub async fn whoami(&self) -> Result<Whoami, ClientError> {
        self.get("/v1/whoami").await
    }
}

/// Accounts.
impl ConsoleClient {
    /// `GET /v1/accounts`.
    pub async fn accounts(&self) -> Result<Vec<AccountView>, ClientError> {
        self.get("/v1/accounts").await
    }

    /// `POST /v1/accounts`.
    pub async fn add_account(&self, req: &AddAccountRequest) -> Result<AccountView, ClientError> {
        self.post("/v1/accounts", req).await
    }

    /// `POST /v1/accounts/{name}/verify`.
    pub async fn verify_account(&self, name: &str) -> Result<AccountView, ClientError> {
        self.post_empty(&format!("/v1/accounts/{name}/verify"))
            .await
    }

    /// `POST /v1/accounts/{name}/rotate-key`.
    pub async fn rotate_key(&self, name: &str) -> Result<RotateKeyResult, ClientError> {
        self.post_empty(&format!("/v1/accounts/{name}/rotate-key"))
            .await
    }

    /// `DELETE /v1/accounts/{name}`.
    pub async fn remove_account(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v1/accounts/{name}")).await
    }
}

/// Deployments and instances.
impl ConsoleClient {
    /// `POST /v1/deployments`.
    pub async fn deploy<Task: Serialize>(
        &self,
        req: &DeployRequest<Task>,
    ) -> Result<DeploymentView, ClientError> {
        self.post("/v1/deployments", req).await
    }

    /// `GET /v1/deployments`.
    pub async fn deployments(&self) -> Result<Vec<DeploymentView>, ClientError> {
        self.get("/v1/deployments").await
    }

    /// `GET /v1/deployments/{id}`.
    pub async fn deployment(&self, id: &str) -> Result<DeploymentView, ClientError> {
        self.get(&format!("/v1/deployments/{id}")).await
    }

    /// `POST /v1/deployments/{id}/scale`.
    pub async fn scale(&self, id: &str, count: u32) -> Result<DeploymentView, ClientError> {
        let req = crate::deployments::ScaleRequest { count };
        self.post(&format!("/v1/deployments/{id}/scale"), &req)
            .await
    }

    /// `GET /v1/deployments/{id}/policy`.
    pub async fn deployment_policy(&self, id: &str) -> Result<DeploymentPolicy, ClientError> {
        self.get(&format!("/v1/deployments/{id}/policy")).await
    }

    /// `POST /v1/deployments/{id}/revoke`.
    pub async fn revoke(&self, id: &str) -> Result<RevokeResult, ClientError> {
        self.post_empty(&format!("/v1/deployments/{id}/revoke"))
            .await
    }

    /// `GET /v1/instances` with the query (`account`, `deployment`, `tag`, `filter`, `status`).
    pub async fn instances(&self, query: &[(&str, String)]) -> Result<InstanceList, ClientError> {
        self.get_query("/v1/instances", query).await
    }

    /// `POST /v1/instances/{action}` (`start`, `stop`, `reboot`, `terminate`).
    pub async fn instance_action(
        &self,
        action: &str,
        req: &InstanceActionRequest,
    ) -> Result<InstanceActionResponse, ClientError> {
        self.post(&format!("/v1/instances/{action}"), req).await
    }

    /// `POST /v1/tags` (`remove`: `POST /v1/tags/remove`).
    pub async fn tag(&self, req: &TagRequest, remove: bool) -> Result<TagsView, ClientError> {
        let path = if remove {
            "/v1/tags/remove"
        } else {
            "/v1/tags"
        };
        self.post(path, req).await
    }

    /// `POST {url}`: an instance's refresh, at the refresh URL its payload names.
    pub async fn refresh(
        &self,
        url: &str,
        req: &RefreshRequest,
    ) -> Result<RefreshResponse, ClientError> {
        let mut call = self.request(Method::POST, url.to_owned()).json(req);
        if let Some(t) = self.timeout {
            call = call.timeout(t);
        }
        self.json(call).await
    }
}

/// Users and policies.
impl ConsoleClient {
    /// `GET /v1/users`.
    pub async fn users(&self) -> Result<Vec<UserView>, ClientError> {
        self.get("/v1/users").await
    }

    /// `POST /v1/users`.
    pub async fn add_user(&self, req: &AddUserRequest) -> Result<UserView, ClientError> {
        self.post("/v1/users", req).await
    }

    /// `DELETE /v1/users/{name}`.
    pub async fn remove_user(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v1/users/{name}")).await
    }

    /// `POST /v1/access-keys`: a new key, with its secret this once.
    pub async fn create_access_key(
        &self,
        req: &CreateAccessKeyRequest,
    ) -> Result<NewAccessKeyView, ClientError> {
        self.post("/v1/access-keys", req).await
    }

    /// `GET /v1/access-keys`: the keys of `user`, or of the caller.
    pub async fn access_keys(&self, user: Option<&str>) -> Result<AccessKeyList, ClientError> {
        let query: Vec<(&str, String)> = user.map(|u| ("user", u.to_owned())).into_iter().collect();
        self.get_query("/v1/access-keys", &query).await
    }

    /// `PUT /v1/access-keys/{id}/status`.
    pub async fn update_access_key(
        &self,
        id: &str,
        status: AccessKeyStatus,
    ) -> Result<AccessKeyView, ClientError> {
        let req = UpdateAccessKeyRequest { status };
        self.put(&format!("/v1/access-keys/{id}/status"), &req)
            .await
    }

    /// `DELETE /v1/access-keys/{id}`.
    pub async fn delete_access_key(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v1/access-keys/{id}")).await
    }

    /// `POST /v1/users/{user}/policies`.
    pub async fn attach_policy(&self, user: &str, policy: &str) -> Result<UserView, ClientError> {
        let req = AttachPolicyRequest {
            policy: policy.to_owned(),
        };
        self.post(&format!("/v1/users/{user}/policies"), &req).await
    }

    /// `DELETE /v1/users/{user}/policies/{policy}`.
    pub async fn detach_policy(&self, user: &str, policy: &str) -> Result<UserView, ClientError> {
        self.delete_json(&format!("/v1/users/{user}/policies/{policy}"))
            .await
    }

    /// `POST /v1/users/{user}/mfa`.
    pub async fn enable_mfa(&self, user: &str) -> Result<MfaEnabled, ClientError> {
        self.post_empty(&format!("/v1/users/{user}/mfa")).await
    }

    /// `GET /v1/policies`.
    pub async fn policies(&self) -> Result<Vec<PolicyView>, ClientError> {
        self.get("/v1/policies").await
    }

    /// `GET /v1/policies/{name}`.
    pub async fn policy(&self, name: &str) -> Result<PolicyView, ClientError> {
        self.get(&format!("/v1/policies/{name}")).await
    }

    /// `PUT /v1/policies/{name}`.
    pub async fn put_policy(&self, name: &str, document: &str) -> Result<PolicyView, ClientError> {
        let req = PutPolicyRequest {
            document: document.to_owned(),
        };
        self.put(&format!("/v1/policies/{name}"), &req).await
    }

    /// `DELETE /v1/policies/{name}`.
    pub async fn delete_policy(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v1/policies/{name}")).await
    }
}

/// The audit log.
impl ConsoleClient {
    /// `GET /v1/audit` with the query (`limit`, `user`, `since`, `cursor`).
    pub async fn audit_page(&self, query: &[(&str, String)]) -> Result<AuditPage, ClientError> {
        self.get_query("/v1/audit", query).await
    }

    /// `GET /v1/audit/verify` (with `anchor` when given).
    pub async fn audit_verify(&self, anchor: Option<String>) -> Result<Verification, ClientError> {
        let query: Vec<(&str, String)> = anchor.into_iter().map(|a| ("anchor", a)).collect();
        self.get_query("/v1/audit/verify", &query).await
    }

    /// `GET /v1/audit/head`.
    pub async fn audit_head(&self) -> Result<Head, ClientError> {
        self.get("/v1/audit/head").await
    }
}

/// Gateways.
impl ConsoleClient {
    /// `GET /v1/gateway/configs`.
    pub async fn gateway_configs(&self) -> Result<GatewayConfigList, ClientError> {
        self.get("/v1/gateway/configs").await
    }

    /// `POST /v1/gateway/health`: this gateway's endpoints and their health.
    pub async fn report_gateway_health(
        &self,
        report: &GatewayHealthReport,
    ) -> Result<(), ClientError> {
        let _: serde_json::Value = self.post("/v1/gateway/health", report).await?;
        Ok(())
    }

    /// `GET /v1/gateway/upstreams`.
    pub async fn gateway_upstreams(&self) -> Result<UpstreamList, ClientError> {
        self.get("/v1/gateway/upstreams").await
    }

    /// `GET /v1/gateway/configs/{name}`.
    pub async fn gateway_config(&self, name: &str) -> Result<GatewayConfigView, ClientError> {
        self.get(&format!("/v1/gateway/configs/{name}")).await
    }

    /// `PUT /v1/gateway/configs/{name}`.
    pub async fn put_gateway_config(
        &self,
        name: &str,
        yaml: String,
    ) -> Result<GatewayConfigView, ClientError> {
        let req = PutGatewayConfigRequest { yaml };
        self.put(&format!("/v1/gateway/configs/{name}"), &req).await
    }

    /// `DELETE /v1/gateway/configs/{name}`.
    pub async fn delete_gateway_config(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v1/gateway/configs/{name}")).await
    }

    /// `POST /v1/gateway/discover`.
    pub async fn discover(&self, req: &DiscoverRequest) -> Result<DiscoverResponse, ClientError> {
        self.post("/v1/gateway/discover", req).await
    }

    /// `POST /v1/snapshot-policies`.
    pub async fn create_snapshot_policy(
        &self,
        req: &CreateSnapshotPolicyRequest,
    ) -> Result<SnapshotPolicyView, ClientError> {
        self.post("/v1/snapshot-policies", req).await
    }

    /// `GET /v1/snapshot-policies`.
    pub async fn snapshot_policies(&self) -> Result<SnapshotPolicyList, ClientError> {
        self.get("/v1/snapshot-policies").await
    }

    /// `GET /v1/snapshot-policies/{name}`, with its latest runs.
    pub async fn snapshot_policy(&self, name: &str) -> Result<SnapshotPolicyView, ClientError> {
        self.get(&format!("/v1/snapshot-policies/{name}")).await
    }

    /// `DELETE /v1/snapshot-policies/{name}`.
    pub async fn delete_snapshot_policy(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v1/snapshot-policies/{name}")).await
    }

    /// `POST /v1/snapshot-policies/{name}/run`: one run now, answered when it is over.
    pub async fn run_snapshot_policy(&self, name: &str) -> Result<SnapshotRunView, ClientError> {
        self.post(
            &format!("/v1/snapshot-policies/{name}/run"),
            &serde_json::json!({}),
        )
        .await
    }

    /// `POST /v1/deployments/{id}/roll`.
    pub async fn roll(&self, id: &str, req: &RollRequest) -> Result<RollView, ClientError> {
        self.post(&format!("/v1/deployments/{id}/roll"), req).await
    }

    /// `GET /v1/deployments/{id}/roll`.
    pub async fn roll_status(&self, id: &str) -> Result<RollView, ClientError> {
        self.get(&format!("/v1/deployments/{id}/roll")).await
    }

    /// `POST /v1/deployments/{id}/roll/{action}` (`resume` or `abort`).
    pub async fn control_roll(&self, id: &str, action: &str) -> Result<RollView, ClientError> {
        self.post_empty(&format!("/v1/deployments/{id}/roll/{action}"))
            .await
    }

    /// `POST /v1/commands`.
    pub async fn send_command(&self, req: &SendCommandRequest) -> Result<CommandView, ClientError> {
        self.post("/v1/commands", req).await
    }

    /// `GET /v1/commands`.
    pub async fn commands(&self) -> Result<CommandList, ClientError> {
        self.get("/v1/commands").await
    }

    /// `GET /v1/commands/{id}`.
    pub async fn command(&self, id: &str) -> Result<CommandView, ClientError> {
        self.get(&format!("/v1/commands/{id}")).await
    }

    /// `POST /v1/maintenance-windows`.
    pub async fn create_maintenance_window(
        &self,
        req: &CreateMaintenanceWindowRequest,
    ) -> Result<MaintenanceWindowView, ClientError> {
        self.post("/v1/maintenance-windows", req).await
    }

    /// `GET /v1/maintenance-windows`.
    pub async fn maintenance_windows(&self) -> Result<MaintenanceWindowList, ClientError> {
        self.get("/v1/maintenance-windows").await
    }

    /// `GET /v1/maintenance-windows/{name}`.
    pub async fn maintenance_window(
        &self,
        name: &str,
    ) -> Result<MaintenanceWindowView, ClientError> {
        self.get(&format!("/v1/maintenance-windows/{name}")).await
    }

    /// `DELETE /v1/maintenance-windows/{name}`.
    pub async fn delete_maintenance_window(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v1/maintenance-windows/{name}"))
            .await
    }

    /// `GET /v1/maintenance-windows/{name}/executions`.
    pub async fn executions(&self, name: &str) -> Result<ExecutionList, ClientError> {
        self.get(&format!("/v1/maintenance-windows/{name}/executions"))
            .await
    }

    /// `POST /v1/maintenance-windows/{name}/run`: the execution, just opened.
    pub async fn run_maintenance_window(&self, name: &str) -> Result<ExecutionView, ClientError> {
        self.post_empty(&format!("/v1/maintenance-windows/{name}/run"))
            .await
    }

    /// `GET /v1/events`: the open Server-Sent Events stream, without a time limit (it stays
    /// open for as long as the console keeps it).
    pub async fn events(&self) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}/v1/events", self.base);
        self.send(
            self.request(Method::GET, url)
                .header("accept", "text/event-stream"),
        )
        .await
    }
}

#[cfg(test)]
mod tests;
