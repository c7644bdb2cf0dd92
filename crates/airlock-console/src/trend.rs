//! The instances page's trend: how many instances each account has in each state, sampled once
//! a minute by the console holding the schedules lease from the account's shared listing
//! snapshot (so a sample costs at most one `DescribeInstances` per account, and none when a
//! listing just looked), kept a day, and shown summed over the accounts whose every instance
//! the reader may describe: a count is about instances, so a reader who may see only some of
//! an account's instances gets none of its counts.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::instances;
use crate::state::AppState;
use airlock_access::ops;
use airlock_api::instances::{InstanceTrend, TrendPoint};
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// How long samples are kept.
const HORIZON_MS: i64 = 24 * 60 * 60 * 1000;
/// The longest trend one request may ask for, in minutes (the horizon).
const MAX_MINUTES: i64 = 24 * 60;

/// The minute `now` falls in, epoch milliseconds.
pub(crate) fn minute_of(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(60) * 60_000
}

/// What was sampled last: its minute and the accounts there were.
#[derive(Debug, Default)]
pub(crate) struct Sampled {
    minute: Option<i64>,
    accounts: Vec<String>,
}

/// Records every account's instances by state for the minute of `now`, once a minute, and at
/// once when an account is added or removed (a new account's trend starts when it does). An
/// account that cannot be listed is skipped (and logged); the others are still sampled.
pub(crate) async fn sample_if_due(state: &AppState, now: DateTime<Utc>, last: &mut Sampled) {
    let minute = minute_of(now);
    let accounts = match state.store.accounts().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot sample instance states: the accounts cannot be read");
            return;
        }
    };
    let names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
    if last.minute == Some(minute) && last.accounts == names {
        return;
    }
    *last = Sampled {
        minute: Some(minute),
        accounts: names,
    };
    for account in accounts {
        let snapshot = match instances::describe_account(state, &account.name, &[], false).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(account = %account.name, error = %e, "cannot sample instance states");
                continue;
            }
        };
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for i in &snapshot.instances {
            *counts.entry(i.instance.state.clone()).or_default() += 1;
        }
        let counts: Vec<(String, i64)> = counts.into_iter().collect();
        let recorded = state
            .store
            .record_state_sample(&account.name, minute, &counts, minute - HORIZON_MS)
            .await;
        if let Err(e) = recorded {
            tracing::warn!(account = %account.name, error = %e, "cannot record instance states");
        }
    }
}

/// `?minutes=N` of `GET /v1/instances/trend`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendQuery {
    /// How far back, in minutes (1 to 1440; default 60)
    minutes: Option<i64>,
}

/// `GET /v1/instances/trend`.
#[utoipa::path(
    get,
    path = "/v1/instances/trend",
    summary = "Instances by state, one point a minute, summed over the accounts whose every instance you may describe (airlock:UseAccount and ec2:DescribeInstances on instance/*)",
    params(TrendQuery),
    responses(
        (status = 200, description = "The trend", body = InstanceTrend),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
) -> ApiResult<Json<InstanceTrend>> {
    // Parsed here so that a bad query is a JSON error naming it, as everywhere in the API.
    let Query(q) = Query::<TrendQuery>::try_from_uri(&uri)
        .map_err(|e| ApiError::field("query", e.body_text()))?;
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(ApiError::field(
            "minutes",
            format!("{minutes} is not between 1 and {MAX_MINUTES}"),
        ));
    }
    let accounts = countable_accounts(&state, &caller).await?;
    let since = minute_of(Utc::now()) - (minutes - 1) * 60_000;
    let mut points: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    for row in state.store.state_samples(&accounts, since).await? {
        *points
            .entry(row.at_ms)
            .or_default()
            .entry(row.state)
            .or_default() += row.count;
    }
    let samples = points
        .into_iter()
        .filter_map(|(at, counts)| {
            let at = DateTime::<Utc>::from_timestamp_millis(at)?;
            Some(TrendPoint {
                at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                counts,
            })
        })
        .collect::<Vec<_>>();
    instances::record_listing(
        &state,
        &caller,
        "ec2:DescribeInstances",
        &accounts,
        samples.len(),
    )
    .await;
    Ok(Json(InstanceTrend { accounts, samples }))
}

/// The accounts the caller may use and whose every instance they may describe.
async fn countable_accounts(state: &AppState, caller: &Caller) -> ApiResult<Vec<String>> {
    let policies = crate::authz::policies_of(state, &caller.user).await?;
    let principal = crate::authz::principal(caller);
    let may = |check: &airlock_access::Check| crate::authz::permits(&policies, &principal, check);
    Ok(state
        .store
        .accounts()
        .await?
        .into_iter()
        .filter(|a| {
            let scope = crate::accounts::scope_of(a);
            may(&ops::use_account(&a.name))
                && may(&ops::describe(
                    &scope,
                    "ec2:DescribeInstances",
                    "instance",
                    "*",
                    &[],
                ))
        })
        .map(|a| a.name)
        .collect())
}
