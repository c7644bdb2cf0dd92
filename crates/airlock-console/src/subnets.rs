//! `GET /v1/subnets`: where a launch can go. The deploy page picks a subnet by its zone and the
//! addresses it has left instead of asking for an id; each subnet is shown only if the caller
//! may describe it (`ec2:DescribeSubnets`, with its tags), as the fleet families are.

use crate::api::FleetList;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::fleet::visible;
use crate::instances::RawQuery;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;

/// The IAM action subnets are listed with.
const DESCRIBE: &str = "ec2:DescribeSubnets";

/// `GET /v1/subnets`: the subnets of one account or all, with EC2 filters
/// (`availability-zone=…`, `vpc-id=…`, `tag:K=V`), each with its account.
#[utoipa::path(
    get,
    path = "/v1/subnets",
    params(crate::openapi::Listing),
    responses(
        (status = 200, description = "The subnets, each with its account", body = FleetList),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
        (status = 503, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<FleetList>> {
    let items = visible(
        &state,
        &caller,
        &q,
        DESCRIBE,
        |ec2, filters| async move {
            let subnets = ec2.describe_subnets(&filters).await?;
            Ok(subnets
                .into_iter()
                .filter_map(|s| serde_json::to_value(s).ok())
                .collect())
        },
        |scope, item| {
            airlock_access::fleet::describe_listed(scope, DESCRIBE, "subnet", "subnet_id", item)
        },
    )
    .await?;
    Ok(Json(FleetList { items }))
}
