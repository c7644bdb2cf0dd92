//! Instance access keys (credential mode `proxy`): the instances of a proxy deployment never
//! hold AWS credentials. Each refresh issues the instance an Airlock access key instead, acting
//! as the deploying user, usable only from the address the refresh came from and only within
//! the deployment's session policy, and deletes the key it replaces; revoking the deployment
//! or its instances deletes their keys.
//!
//! The key is decided at the EC2 endpoint like any other, with the session policy generated
//! again from the deployer's policies at each request ([`bound`]), so narrower policies narrow
//! what the instances may do at once rather than at the next refresh.

use crate::access_keys::{new_id, new_secret};
use crate::audit::{self, Entry};
use crate::authz::{console_arn, SessionBound};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use airlock_api::state::AccessKeyStatus;
use airlock_cloud::{AccessKey, SessionCredentials};
use airlock_store::{secret_record, AccessKeyRow, DeploymentRow, InstanceBinding};
use secrecy::ExposeSecret;
use std::net::IpAddr;

/// A new key for `instance_id` of `row`, from `source`, for `duration` seconds, in the shape
/// the refresh exchange hands out (no session token). Audited as the console's
/// `airlock:CreateAccessKey` for the instance.
pub async fn issue(
    state: &AppState,
    row: &DeploymentRow,
    instance_id: &str,
    source: IpAddr,
    duration: u32,
) -> ApiResult<SessionCredentials> {
    let expiration = chrono::Utc::now() + chrono::Duration::seconds(i64::from(duration));
    let key = AccessKeyRow {
        access_key_id: new_id(),
        user_name: row.created_by.clone(),
        status: AccessKeyStatus::Active,
        created_at: crate::now(),
        expires_at: Some(expiration.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        last_used_at: None,
        instance: Some(InstanceBinding {
            deployment_id: row.id.clone(),
            instance_id: instance_id.to_owned(),
            source_ip: source.to_string(),
        }),
    };
    let secret = new_secret();
    let sealed = state.vault.seal(
        &secret_record(&key.access_key_id),
        secret.expose_secret().as_bytes(),
    )?;
    state.store.insert_instance_key(&key, &sealed).await?;
    let entry = Entry {
        user: format!("instance/{instance_id}"),
        source_ip: Some(source.to_string()),
        action: "airlock:CreateAccessKey".into(),
        resources: vec![
            console_arn("deployment", &row.id),
            console_arn("user", &row.created_by),
        ],
        ..Entry::default()
    };
    let detail = format!(
        "key {} for instance {instance_id}, usable from {source} until {}",
        key.access_key_id,
        expiration.to_rfc3339()
    );
    audit::record_ok(state, entry, Some(detail)).await;
    Ok(SessionCredentials {
        key: AccessKey {
            access_key_id: key.access_key_id,
            secret_access_key: secret,
            session_token: None,
        },
        expiration,
    })
}

/// After the exchange: the instance keeps only the key it was answered with (`kept`), the one
/// it was issued this time when the exchange failed being deleted with the rest.
pub async fn settle(
    state: &AppState,
    deployment_id: &str,
    instance_id: &str,
    issued: &str,
    kept: Option<&str>,
) {
    let deleted = match kept {
        Some(kept) => {
            state
                .store
                .delete_instance_keys(deployment_id, Some(&[instance_id.to_owned()]), Some(kept))
                .await
        }
        None => state.store.delete_access_key(issued).await.map(u64::from),
    };
    match deleted {
        Ok(n) => {
            tracing::info!(deployment = %deployment_id, instance = %instance_id, deleted = n, "instance keys rotated")
        }
        Err(e) => {
            tracing::error!(deployment = %deployment_id, instance = %instance_id, error = %e, "cannot delete replaced instance keys")
        }
    }
}

/// Deletes the keys of a deployment's instances: all of them, or those of `instances`.
pub async fn revoke(
    state: &AppState,
    deployment_id: &str,
    instances: Option<&[String]>,
) -> ApiResult<u64> {
    let deleted = state
        .store
        .delete_instance_keys(deployment_id, instances, None)
        .await?;
    if deleted > 0 {
        tracing::info!(deployment = %deployment_id, instances = ?instances, deleted, "instance access keys deleted");
    }
    Ok(deleted)
}

/// Why an instance key may not sign a request, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unbound {
    /// The request does not come from the instance's address.
    Elsewhere(String),
    /// The deployment's session policy cannot be had (deployment or deployer gone, policies
    /// no longer allowing it).
    NoPolicy(String),
}

impl std::fmt::Display for Unbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unbound::Elsewhere(why) | Unbound::NoPolicy(why) => f.write_str(why),
        }
    }
}

/// What holds an instance key used from `source`: the instance's address, then the
/// deployment's session policy as generated now from the deployer's policies.
pub async fn bound(
    state: &AppState,
    binding: &InstanceBinding,
    source: Option<IpAddr>,
) -> ApiResult<Result<SessionBound, Unbound>> {
    let from = source.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    if from != binding.source_ip {
        return Ok(Err(Unbound::Elsewhere(format!(
            "instance {}'s key used from {from}, not from the instance's address {}",
            binding.instance_id, binding.source_ip
        ))));
    }
    let Some(row) = state.store.deployment(&binding.deployment_id).await? else {
        return Ok(Err(Unbound::NoPolicy(format!(
            "deployment {} no longer exists",
            binding.deployment_id
        ))));
    };
    let spec = crate::deployments::stored_spec(&row)?;
    let account = crate::accounts::row(state, &row.account).await?;
    let policy = match crate::refresh::current_policy(state, &row, &spec, &account).await? {
        Ok(p) => p,
        Err(why) => return Ok(Err(Unbound::NoPolicy(why))),
    };
    let name = format!("session policy of {}", row.id);
    let policy = airlock_policy::Policy::parse(&name, &policy)
        .map_err(|e| ApiError::Internal(format!("the generated {name} does not parse: {e}")))?;
    Ok(Ok(SessionBound {
        deployment_id: row.id,
        account: row.account,
        policy,
    }))
}
