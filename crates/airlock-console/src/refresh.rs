//! Scoped instance credentials: issuing them at launch, refreshing them for instances, and
//! revoking the secrets instances refresh with.
//!
//! A launch of a scoped deployment carries an enrolment secret in its user data (one for all
//! the instances of that launch, since EC2 gives them the same user data). The first refresh
//! of each instance exchanges it for a secret of that instance alone; every later refresh
//! exchanges that secret for the next. Each secret works once: presenting a used one again is
//! a replay, refused and raised in the audit log. Before issuing anything the console checks,
//! in EC2, that the instance belongs to the deployment, is running and is where the request
//! comes from.

use crate::accounts;
use crate::audit::{self, AuditDecision, AuditOutcome, Entry};
use crate::auth::{random_secret, token_hash, Caller};
use crate::authz::{console_arn, ec2_arn};
use crate::deployments::DEPLOYMENT_TAG;
use crate::error::{ApiError, ApiResult};
use crate::instance_keys;
use crate::json::Body;
use crate::refresh_guard::RefusalRecord;
use crate::refresh_retry::ExchangeKey;
use crate::state::AppState;
use airlock_access::session;
use airlock_api::deployments::{CredentialMode, DeploymentSpec, RevokeResult};
use airlock_api::refresh::{RefreshRequest, RefreshResponse, AGENT_TOKEN_PREFIX};
use airlock_api::state::{RefreshSecretKind, RefreshSecretState};
use airlock_cloud::{Instance, ScopedSessionRequest, SessionCredentials, Target};
use airlock_store::{AccountRow, AgentTokenRow, DeploymentRow, Exchange, RefreshSecretRow};
use axum::extract::{ConnectInfo, Path, State};
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Prefix of refresh secrets, so a leaked one is recognisable by secret scanners.
pub const REFRESH_PREFIX: &str = "alr_";

/// How long a bootstrap token may wait for its instances to boot.
pub const BOOTSTRAP_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// Default lifetime of scoped credentials.
pub const DEFAULT_DURATION: u32 = 3600;

/// What a launch puts in the user data for the agent to get and renew credentials.
pub struct LaunchCredentials {
    /// Credentials to start with (`None` in bootstrap mode).
    pub credentials: Option<airlock_payload::Credentials>,
    /// The enrolment secret.
    pub refresh_secret: SecretString,
    /// Where to present it.
    pub refresh_url: String,
    /// In `proxy` mode, the console's EC2 endpoint for the deployment's account: where the
    /// instances' keys work.
    pub proxy_endpoint: Option<String>,
}

/// The lifetime of a deployment's credentials, checked against STS's limits for how they are
/// obtained (AssumeRole when the account names a role, GetFederationToken otherwise).
pub fn duration_of(spec: &DeploymentSpec, account: &AccountRow) -> ApiResult<u32> {
    let seconds = spec
        .credentials_duration_seconds
        .unwrap_or(DEFAULT_DURATION);
    let (max, how) = if account.role_arn.is_some() {
        (
            43_200,
            "AssumeRole allows 900 to 43200 (and at most the role's maximum session duration)",
        )
    } else {
        (129_600, "GetFederationToken allows 900 to 129600")
    };
    if !(900..=max).contains(&seconds) {
        return Err(ApiError::field(
            "credentials_duration_seconds",
            format!("{seconds} s is outside STS's limits: {how}"),
        ));
    }
    Ok(seconds)
}

/// The STS session or federated-user name: who deployed, and which deployment.
fn session_name(row: &DeploymentRow, account: &AccountRow) -> String {
    let max = if account.role_arn.is_some() { 64 } else { 32 };
    session::session_name(&row.created_by, &row.id, max)
}

/// Scoped credentials from STS for a deployment, audited as the console's call on behalf of
/// `actor`.
async fn issue(
    state: &AppState,
    row: &DeploymentRow,
    account: &AccountRow,
    target: &Target,
    policy: String,
    duration: u32,
    mut actor: Entry,
) -> ApiResult<SessionCredentials> {
    let request = ScopedSessionRequest {
        session_name: session_name(row, account),
        policy,
        duration_seconds: duration,
    };
    let issued = state.cloud.scoped_credentials(target, &request).await;
    actor.action = if account.role_arn.is_some() {
        "sts:AssumeRole"
    } else {
        "sts:GetFederationToken"
    }
    .into();
    actor.resources = vec![console_arn("deployment", &row.id)];
    if actor.detail.is_none() {
        actor.detail = Some(format!("session {}", request.session_name));
    }
    audit::record_call(state, actor, &issued, |_| None).await;
    Ok(issued?)
}

/// The session policy credentials of a deployment get now: generated again from the deploying
/// user's current policies. `Err` says why none may be issued (the deployer is gone, or their
/// policies no longer allow the extra statements).
pub async fn current_policy(
    state: &AppState,
    row: &DeploymentRow,
    spec: &DeploymentSpec,
    account: &AccountRow,
) -> ApiResult<Result<String, String>> {
    if state.store.user(&row.created_by).await?.is_none() {
        return Ok(Err(format!(
            "the deploying user {:?} no longer exists",
            row.created_by
        )));
    }
    let policies = crate::authz::policies_of(state, &row.created_by).await?;
    let principal = airlock_access::Principal::new(row.created_by.as_str(), false, None);
    let deployer = session::Deployer {
        policies: &policies,
        principal: &principal,
    };
    let scope = crate::deployments::session_scope(&row.id, account);
    Ok(
        match session::session_policy(&scope, &spec.policy_statements, &deployer) {
            Ok(p) if p.len() > session::MAX_SESSION_POLICY => Err(format!(
                "the session policy would be {} characters, more than STS accepts",
                p.len()
            )),
            Ok(p) => Ok(p),
            Err(refused) => Err(refused
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")),
        },
    )
}

fn payload_credentials(s: SessionCredentials) -> airlock_payload::Credentials {
    airlock_payload::Credentials {
        access_key_id: s.key.access_key_id,
        secret_access_key: s.key.secret_access_key,
        session_token: s.key.session_token,
        expiration: Some(s.expiration),
    }
}

/// The refresh URL written into payloads.
pub fn refresh_url(state: &AppState) -> String {
    format!(
        "{}/v1/refresh",
        state.config.public_url.trim_end_matches('/')
    )
}

/// The console's EC2 endpoint for an account, as instances reach it.
pub fn proxy_endpoint(state: &AppState, account: &str) -> String {
    format!(
        "{}/ec2/{account}",
        state.config.public_url.trim_end_matches('/')
    )
}

/// What one launch of a scoped, bootstrap or proxy deployment hands its instances: the enrolment
/// secret is stored (hashed) before it is returned.
pub async fn for_launch(
    state: &AppState,
    row: &DeploymentRow,
    spec: &DeploymentSpec,
    account: &AccountRow,
    target: &Target,
    actor: &Entry,
) -> ApiResult<LaunchCredentials> {
    let duration = duration_of(spec, account)?;
    let (credentials, expires_at) = match spec.credentials {
        CredentialMode::Scoped => {
            let policy = current_policy(state, row, spec, account)
                .await?
                .map_err(|why| {
                    ApiError::Forbidden(format!(
                        "no credentials can be issued for deployment {}: {why}",
                        row.id
                    ))
                })?;
            let issued =
                issue(state, row, account, target, policy, duration, actor.clone()).await?;
            let expires = issued.expiration;
            (Some(payload_credentials(issued)), expires)
        }
        CredentialMode::Bootstrap | CredentialMode::Proxy => {
            (None, chrono::Utc::now() + BOOTSTRAP_TTL)
        }
        other => {
            return Err(ApiError::Internal(format!(
                "{} deployments get no refresh secret",
                other.as_str()
            )))
        }
    };
    let secret = random_secret(REFRESH_PREFIX);
    state
        .store
        .insert_refresh_secret(&RefreshSecretRow {
            secret_hash: token_hash(secret.expose_secret()),
            deployment_id: row.id.clone(),
            instance_id: None,
            kind: RefreshSecretKind::Enrolment,
            state: RefreshSecretState::Active,
            expires_at: Some(expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            created_at: crate::now(),
            used_at: None,
        })
        .await?;
    Ok(LaunchCredentials {
        credentials,
        refresh_secret: secret,
        refresh_url: refresh_url(state),
        proxy_endpoint: (spec.credentials == CredentialMode::Proxy)
            .then(|| proxy_endpoint(state, &row.account)),
    })
}

/// The largest refresh request body: three short fields.
pub const MAX_BODY: usize = 4096;

/// Checks the ids' form and length before anything is looked up or written, so an
/// unauthenticated caller cannot put its own strings into the database.
fn check_request(req: &RefreshRequest) -> ApiResult<()> {
    let hex_after = |text: &str, prefix: &str, lengths: &[usize]| {
        text.strip_prefix(prefix).is_some_and(|rest| {
            lengths.contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_hexdigit())
        })
    };
    if !hex_after(&req.deployment_id, "dep-", &[16]) {
        return Err(ApiError::field(
            "deployment_id",
            "not a deployment id (dep- and 16 hexadecimal digits)",
        ));
    }
    if !hex_after(&req.instance_id, "i-", &[8, 17]) {
        return Err(ApiError::field(
            "instance_id",
            "not an instance id (i- and 8 or 17 hexadecimal digits)",
        ));
    }
    let secret = req.refresh_secret.expose_secret();
    if !secret.starts_with(REFRESH_PREFIX) || secret.len() > 128 {
        return Err(ApiError::field(
            "refresh_secret",
            "not a refresh secret (alr_…)",
        ));
    }
    Ok(())
}

/// Records a refusal, unless its source was already refused in this window (then it is only
/// counted, and the count is recorded when the source's next window opens). Replays are
/// always recorded: they are alerts.
async fn record_refusal(state: &AppState, source: IpAddr, entry: Entry) {
    metrics::counter!("airlock_refreshes_total", "outcome" => entry.decision.as_str()).increment(1);
    let always = entry.decision == AuditDecision::Replay;
    let record = if always {
        RefusalRecord::Record {
            earlier_unrecorded: 0,
        }
    } else {
        state.refreshes.refusal(source, Instant::now())
    };
    let RefusalRecord::Record { earlier_unrecorded } = record else {
        return;
    };
    if earlier_unrecorded > 0 {
        let summary = Entry {
            user: "instance/*".into(),
            source_ip: entry.source_ip.clone(),
            action: entry.action.clone(),
            decision: AuditDecision::ImplicitDeny,
            outcome: AuditOutcome::Denied,
            detail: Some(format!(
                "{earlier_unrecorded} more refusals from this address in the minute after its last recorded one"
            )),
            ..Entry::default()
        };
        audit::record(state, summary).await;
    }
    audit::record(state, entry).await;
}

/// The answer an exchange gave, when this is the same instance asking again from the same
/// address (its answer was lost) and it has not used the secret it was given.
async fn retried(
    state: &AppState,
    key: &ExchangeKey,
    source: IpAddr,
) -> ApiResult<Option<RefreshResponse>> {
    let Some(answer) = crate::refresh_retry::answer(state, key, source).await? else {
        return Ok(None);
    };
    let given = token_hash(answer.refresh_secret.expose_secret());
    let unused = state
        .store
        .refresh_secret(&given)
        .await?
        .is_some_and(|row| row.state == RefreshSecretState::Active);
    Ok(unused.then_some(answer))
}

/// The answer of a concurrent copy of this request that won the exchange this one lost. The
/// winner keeps it in the store just after winning, perhaps at another console, so it is looked
/// for a few times before the race is taken for a replay.
async fn raced(
    state: &AppState,
    key: &ExchangeKey,
    source: IpAddr,
) -> ApiResult<Option<RefreshResponse>> {
    const LOOKS: u32 = 10;
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
    for look in 1..=LOOKS {
        if let Some(answer) = retried(state, key, source).await? {
            return Ok(Some(answer));
        }
        if look < LOOKS {
            tokio::time::sleep(PAUSE).await;
        }
    }
    Ok(None)
}

/// Why a refresh is refused. The instance learns only this sentence; the audit log has more.
fn refused(why: &str) -> ApiError {
    ApiError::Forbidden(format!("credential refresh refused: {why}"))
}

/// `POST /v1/refresh`: an instance of a scoped deployment exchanges its secret for fresh
/// credentials and the next secret. No console login: the secret and the instance's place in
/// EC2 are the proof.
///
/// Every check on the secret is made before the account's key is unsealed, and every check on
/// the instance before credentials are issued.
#[utoipa::path(
    post,
    path = "/v1/refresh",
    summary = "An instance of a scoped or bootstrap deployment exchanges its refresh secret for fresh credentials and the next secret. No console login: the secret, the instance's membership and state in EC2, and the request's source address are checked. The one response that carries credentials.",
    request_body = airlock_api::refresh::RefreshRequest,
    responses(
        (status = 200, description = "Credentials and the next secret", body = airlock_api::refresh::RefreshResponse),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
    ),
)]
pub async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Body(req): Body<RefreshRequest>,
) -> ApiResult<Json<RefreshResponse>> {
    let source = peer.ip().to_canonical();
    let nodes = state.cluster.live_nodes();
    if let Err(wait) = state.refreshes.admit(source, Instant::now(), nodes) {
        return Err(ApiError::TooManyRequests {
            message: "too many refresh requests from this address: try again later".into(),
            retry_after: wait,
        });
    }
    check_request(&req)?;
    let mut attempt = Attempt::new(&state, &req, source);
    let secret = attempt.find_secret().await?;
    if secret.state != RefreshSecretState::Revoked {
        if let Some(answer) = retried(&state, &attempt.key, source).await? {
            audit::record_ok(&state, attempt.entry, Some(retry_detail())).await;
            return Ok(Json(answer));
        }
    }
    attempt.check_secret(&secret).await?;
    let row = attempt.find_deployment().await?;
    let spec = crate::deployments::stored_spec(&row)?;
    let (account, target) = accounts::target(&state, &row.account).await?;
    attempt.check_instance(&row, &account, &target).await?;
    let duration = duration_of(&spec, &account)?;
    let policy = attempt.policy(&row, &spec, &account).await?;
    if spec.credentials == CredentialMode::Proxy {
        let issued = instance_keys::issue(&state, &row, &req.instance_id, source, duration).await?;
        let issued_id = issued.key.access_key_id.clone();
        let answer = attempt.exchange(&row, &secret, issued).await;
        let kept = answer
            .as_ref()
            .ok()
            .map(|a| a.credentials.access_key_id.as_str());
        instance_keys::settle(&state, &row.id, &req.instance_id, &issued_id, kept).await;
        return answer.map(Json);
    }
    let mut actor = attempt.entry.clone();
    actor.detail = Some(format!("for instance {}", req.instance_id));
    let issued = issue(&state, &row, &account, &target, policy, duration, actor).await?;
    attempt.exchange(&row, &secret, issued).await.map(Json)
}

/// One refresh request on its way through the checks: what was presented, from where, and
/// the audit entry its refusal or success is recorded with.
struct Attempt<'a> {
    state: &'a AppState,
    req: &'a RefreshRequest,
    source: IpAddr,
    /// The presented secret's hash, and the instance presenting it.
    key: ExchangeKey,
    entry: Entry,
}

impl<'a> Attempt<'a> {
    fn new(state: &'a AppState, req: &'a RefreshRequest, source: IpAddr) -> Attempt<'a> {
        let entry = Entry {
            user: format!("instance/{}", req.instance_id),
            source_ip: Some(source.to_string()),
            action: "airlock:RefreshCredentials".into(),
            resources: vec![console_arn("deployment", &req.deployment_id)],
            ..Entry::default()
        };
        let key = ExchangeKey {
            presented_hash: token_hash(req.refresh_secret.expose_secret()),
            instance_id: req.instance_id.clone(),
        };
        Attempt {
            state,
            req,
            source,
            key,
            entry,
        }
    }

    /// Records a refusal (`detail` for the audit log) and the answer the instance gets.
    async fn deny(&self, decision: AuditDecision, detail: String, answer: &str) -> ApiError {
        let mut entry = self.entry.clone();
        entry.decision = decision;
        entry.outcome = AuditOutcome::Denied;
        entry.detail = Some(detail);
        record_refusal(self.state, self.source, entry).await;
        refused(answer)
    }

    /// The presented secret, if it is one of the named deployment's.
    async fn find_secret(&self) -> ApiResult<RefreshSecretRow> {
        let secret = self
            .state
            .store
            .refresh_secret(&self.key.presented_hash)
            .await?;
        match secret.filter(|s| s.deployment_id == self.req.deployment_id) {
            Some(secret) => Ok(secret),
            None => Err(self
                .deny(
                    AuditDecision::ImplicitDeny,
                    "unknown refresh secret".into(),
                    "the refresh secret is not valid",
                )
                .await),
        }
    }

    /// Whether the secret may be exchanged now, by this instance; a replay is raised.
    async fn check_secret(&self, secret: &RefreshSecretRow) -> ApiResult<()> {
        let (req, source) = (self.req, self.source);
        let expired = secret
            .expires_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t < chrono::Utc::now());
        let (decision, detail, answer): (_, String, &str) = match (secret.kind, secret.state) {
            (_, RefreshSecretState::Revoked) => (
                AuditDecision::ExplicitDeny,
                "refresh secret revoked".into(),
                "the refresh secret was revoked (instance terminated or deployment revoked)",
            ),
            (RefreshSecretKind::Instance, RefreshSecretState::Used) => {
                tracing::warn!(deployment = %req.deployment_id, instance = %req.instance_id, source_ip = %source, "ALERT: a used refresh secret was presented again");
                (AuditDecision::Replay, "ALERT: a refresh secret that was already exchanged was presented again; someone may hold a copy of this instance's secret".into(), "the refresh secret was already used")
            }
            (RefreshSecretKind::Instance, _)
                if secret.instance_id.as_deref() != Some(req.instance_id.as_str()) =>
            {
                (
                    AuditDecision::ImplicitDeny,
                    format!(
                        "the secret belongs to instance {}",
                        secret.instance_id.as_deref().unwrap_or("-")
                    ),
                    "the refresh secret is not this instance's",
                )
            }
            (RefreshSecretKind::Enrolment, _) if expired => (
                AuditDecision::ImplicitDeny,
                "enrolment secret expired".into(),
                "the enrolment secret has expired",
            ),
            (RefreshSecretKind::Enrolment, _)
                if self.state.store.instance_enrolled(&req.instance_id).await? =>
            {
                tracing::warn!(deployment = %req.deployment_id, instance = %req.instance_id, source_ip = %source, "ALERT: an enrolment secret was presented again for an enrolled instance");
                (AuditDecision::Replay, "ALERT: the enrolment secret was presented again for an instance that already exchanged it".into(), "this instance has already exchanged its enrolment secret")
            }
            _ => return Ok(()),
        };
        Err(self.deny(decision, detail, answer).await)
    }

    async fn find_deployment(&self) -> ApiResult<DeploymentRow> {
        match self.state.store.deployment(&self.req.deployment_id).await? {
            Some(row) => Ok(row),
            None => Err(self
                .deny(
                    AuditDecision::ImplicitDeny,
                    "unknown deployment".into(),
                    "unknown deployment",
                )
                .await),
        }
    }

    /// Whether EC2 shows the instance in the deployment, running, at the request's address.
    /// From here on the audit entry names the instance.
    async fn check_instance(
        &mut self,
        row: &DeploymentRow,
        account: &AccountRow,
        target: &Target,
    ) -> ApiResult<()> {
        let instance_id = &self.req.instance_id;
        let ec2 = self.state.cloud.ec2(target).await?;
        let found = self
            .state
            .lookups
            .instances(&account.name, ec2, std::slice::from_ref(instance_id))
            .await;
        self.entry.resources.push(ec2_arn(
            &account.region,
            &account.aws_account_id,
            "instance",
            instance_id,
        ));
        let instance = match found {
            Ok(list) => list.into_iter().next(),
            // EC2 answers an unknown id with an error rather than an empty list.
            Err(e) if e.code.as_deref() == Some("InvalidInstanceID.NotFound") => None,
            Err(e) => return Err(e.into()),
        };
        let Some(instance) = instance else {
            return Err(self
                .deny(
                    AuditDecision::ImplicitDeny,
                    "no such instance in EC2".into(),
                    "no such instance",
                )
                .await);
        };
        match self.instance_refusal(row, &instance) {
            None => Ok(()),
            Some((detail, answer)) => Err(self
                .deny(AuditDecision::ImplicitDeny, detail, &answer)
                .await),
        }
    }

    /// Why the instance EC2 shows may not refresh, for the audit log and for the instance.
    fn instance_refusal(
        &self,
        row: &DeploymentRow,
        instance: &Instance,
    ) -> Option<(String, String)> {
        let belongs = instance
            .tags
            .iter()
            .any(|t| t.key == DEPLOYMENT_TAG && t.value == row.id);
        if !belongs {
            return Some((
                format!("the instance is not tagged {DEPLOYMENT_TAG}={}", row.id),
                "the instance does not belong to the deployment".into(),
            ));
        }
        if instance.state != "running" {
            let why = format!("the instance is {}", instance.state);
            return Some((why.clone(), why));
        }
        let source = self.source.to_string();
        let from_instance = [&instance.private_ip, &instance.public_ip]
            .into_iter()
            .flatten()
            .any(|ip| *ip == source);
        (!from_instance).then(|| {
            (
                format!("request from {source}, which is not one of the instance's addresses"),
                "the request does not come from the instance's address".into(),
            )
        })
    }

    /// The session policy of the credentials issued now. The deployer's policies as they are
    /// now bound it: narrower policies narrow the next credentials, a deployer who is gone (or
    /// no longer allowed what was asked) gets their instances nothing.
    async fn policy(
        &self,
        row: &DeploymentRow,
        spec: &DeploymentSpec,
        account: &AccountRow,
    ) -> ApiResult<String> {
        let policy = match current_policy(self.state, row, spec, account).await? {
            Ok(p) => p,
            Err(why) => {
                return Err(self
                    .deny(
                        AuditDecision::ImplicitDeny,
                        format!("the deployer's policies no longer allow these credentials: {why}"),
                        "the deployment's credentials are no longer allowed",
                    )
                    .await)
            }
        };
        if spec.credentials != CredentialMode::Bootstrap {
            return Ok(policy);
        }
        let scope = crate::deployments::session_scope(&row.id, account);
        session::for_instance(&policy, &scope, &self.req.instance_id).map_err(ApiError::Internal)
    }

    /// Exchanges the presented secret for the next one and answers with the issued
    /// credentials. They were issued first and are handed out only if this request wins the
    /// exchange, so two requests with one secret never both get an answer.
    async fn exchange(
        self,
        row: &DeploymentRow,
        secret: &RefreshSecretRow,
        issued: SessionCredentials,
    ) -> ApiResult<RefreshResponse> {
        let (state, req, source) = (self.state, self.req, self.source);
        let next = random_secret(REFRESH_PREFIX);
        let at = crate::now();
        let next_row = RefreshSecretRow {
            secret_hash: token_hash(next.expose_secret()),
            deployment_id: row.id.clone(),
            instance_id: Some(req.instance_id.clone()),
            kind: RefreshSecretKind::Instance,
            state: RefreshSecretState::Active,
            expires_at: None,
            created_at: at.clone(),
            used_at: None,
        };
        let agent_token = self.agent_token(row, issued.expiration).await?;
        let answer = RefreshResponse {
            credentials: payload_credentials(issued.clone()),
            refresh_secret: next,
            agent_token: Some(agent_token),
        };
        // Kept with the exchange, in its transaction, before it is sent. If it cannot be
        // sealed, the answer is still given (a lost one is then taken for a replay, as a retry
        // could not be recognised).
        let kept = crate::refresh_retry::sealed(state, &self.key, source, &answer)
            .inspect_err(|e| tracing::error!(deployment = %row.id, instance = %req.instance_id, error = %e, "cannot keep the refresh answer for a retry"))
            .ok();
        let keep = kept.as_ref().map(crate::refresh_retry::keeping);
        let exchanged = match secret.kind {
            RefreshSecretKind::Enrolment => {
                state
                    .store
                    .enrol_instance(&req.instance_id, &next_row, &at, keep.as_ref())
                    .await?
            }
            RefreshSecretKind::Instance => {
                let presented = &self.key.presented_hash;
                state
                    .store
                    .rotate_refresh_secret(presented, &next_row, &at, keep.as_ref())
                    .await?
            }
        };
        if exchanged != Exchange::Done {
            return self.lost_race(row).await;
        }
        let done = match secret.kind {
            RefreshSecretKind::Enrolment => "enrolled",
            RefreshSecretKind::Instance => "refreshed",
        };
        let detail = format!("{done} until {}", issued.expiration.to_rfc3339());
        metrics::counter!("airlock_refreshes_total", "outcome" => done).increment(1);
        audit::record_ok(state, self.entry, Some(detail)).await;
        tracing::info!(deployment = %row.id, instance = %req.instance_id, key = %issued.key.access_key_id, expires = %issued.expiration, "instance credentials issued");
        Ok(answer)
    }
}

impl Attempt<'_> {
    /// A new agent token for the instance, working from this request's address until the
    /// credentials it comes with expire. Stored before it is handed out; one that is never
    /// handed out (the exchange lost a race) is never known to anyone and expires.
    async fn agent_token(
        &self,
        row: &DeploymentRow,
        until: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<SecretString> {
        let token = random_secret(AGENT_TOKEN_PREFIX);
        self.state
            .store
            .insert_agent_token(&AgentTokenRow {
                token_hash: token_hash(token.expose_secret()),
                deployment_id: row.id.clone(),
                instance_id: self.req.instance_id.clone(),
                source_ip: self.source.to_string(),
                expires_at_ms: until.timestamp_millis(),
                created_at: crate::now(),
            })
            .await?;
        Ok(token)
    }

    /// Another request exchanged the presented secret first: if it was a copy of this one
    /// (same instance, same address), its answer is this one's; otherwise the secret was
    /// replayed, which is refused and raised.
    async fn lost_race(self, row: &DeploymentRow) -> ApiResult<RefreshResponse> {
        let (state, source) = (self.state, self.source);
        if let Some(answer) = raced(state, &self.key, source).await? {
            audit::record_ok(state, self.entry, Some(retry_detail())).await;
            return Ok(answer);
        }
        tracing::warn!(deployment = %row.id, instance = %self.req.instance_id, source_ip = %source, "ALERT: two requests raced with one refresh secret");
        Err(self
            .deny(
                AuditDecision::Replay,
                "ALERT: the refresh secret was exchanged by a concurrent request".into(),
                "the refresh secret was already used",
            )
            .await)
    }
}

fn retry_detail() -> String {
    format!(
        "the same answer again: a retry of this instance's exchange within {} s, from the same address",
        crate::refresh_retry::RETRY_WINDOW.as_secs()
    )
}

/// Revokes the refresh secrets of instances leaving a deployment (terminated or scaled away),
/// and deletes their access keys (`proxy` mode).
///
/// Secrets first, keys then: a refresh racing the revocation either exchanged its secret before
/// (and its new key is deleted here) or fails to (and deletes the key it was issued).
pub async fn revoke_instances(state: &AppState, deployment_id: &str, instance_ids: &[String]) {
    match state
        .store
        .revoke_refresh_secrets(deployment_id, Some(instance_ids), &crate::now())
        .await
    {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(deployment = %deployment_id, instances = ?instance_ids, revoked = n, "refresh secrets revoked")
        }
        Err(e) => {
            tracing::error!(deployment = %deployment_id, error = %e, "cannot revoke refresh secrets")
        }
    }
    if let Err(e) = instance_keys::revoke(state, deployment_id, Some(instance_ids)).await {
        tracing::error!(deployment = %deployment_id, error = %e, "cannot delete instance access keys");
    }
}

/// `POST /v1/deployments/{id}/revoke`: every refresh secret of the deployment, at once.
#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/revoke",
    summary = "Revoke every refresh secret of the deployment: its instances get no new credentials",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Revoked", body = airlock_api::deployments::RevokeResult),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokeResult>> {
    let arn = console_arn("deployment", &id);
    crate::deployments::find_for(&state, &caller, "airlock:RevokeDeployment", &id).await?;
    let revoked = state
        .store
        .revoke_refresh_secrets(&id, None, &crate::now())
        .await?;
    let deleted_keys = instance_keys::revoke(&state, &id, None).await?;
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:RevokeDeployment", vec![arn]),
        Some(format!(
            "{revoked} refresh secrets revoked, {deleted_keys} instance access keys deleted"
        )),
    )
    .await;
    tracing::info!(deployment = %id, user = %caller.user, revoked, deleted_keys, "deployment's refresh secrets revoked");
    Ok(Json(RevokeResult {
        deployment_id: id,
        revoked,
        deleted_keys,
    }))
}
