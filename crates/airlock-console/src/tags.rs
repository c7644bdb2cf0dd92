//! Tag changes, authorized like everything else: `ec2:CreateTags` / `ec2:DeleteTags` with the
//! requested tags and the resource's current ones, so nobody escapes a tag-based policy by
//! re-tagging a resource.

use crate::accounts;
use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize, precheck};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_access::ops;
use airlock_api::instances::{TagRequest, TagsView};
use axum::extract::State;
use axum::Json;

/// The ARN resource type of an EC2 id, from its prefix.
pub fn resource_kind(id: &str) -> Option<&'static str> {
    let (prefix, rest) = id.split_once('-')?;
    if rest.is_empty() {
        return None;
    }
    Some(match prefix {
        "i" => "instance",
        "vol" => "volume",
        "snap" => "snapshot",
        "ami" => "image",
        "sg" => "security-group",
        "subnet" => "subnet",
        "vpc" => "vpc",
        "eni" => "network-interface",
        "eipalloc" => "elastic-ip",
        "key" => "key-pair",
        _ => return None,
    })
}

async fn change(
    state: AppState,
    caller: Caller,
    req: TagRequest,
    add: bool,
) -> ApiResult<Json<TagsView>> {
    let kind = resource_kind(&req.resource_id).ok_or_else(|| {
        ApiError::field(
            "resource_id",
            format!("{:?} is not an EC2 resource id that can be tagged (i-, vol-, snap-, ami-, sg-, subnet-, vpc-, eni-, eipalloc-, key-)", req.resource_id),
        )
    })?;
    if req.tags.is_empty() {
        return Err(ApiError::field("tags", "give at least one tag"));
    }
    if add {
        validate::tags("tags", &req.tags, 0)?;
    } else {
        airlock_access::tags::refuse_reserved("tags", &req.tags)?;
    }
    precheck(&state, &caller, vec![ops::use_account(&req.account)]).await?;
    let (account, target) = accounts::target_for_request(&state, &req.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let ids = vec![req.resource_id.clone()];
    state.tags.forget(&account.name, &ids);
    let current = state.tags.tags(ec2.as_ref(), &account.name, &ids).await?;
    let current = current.get(&req.resource_id).cloned().unwrap_or_default();
    let check = ops::change_tags(
        &accounts::scope_of(&account),
        add,
        kind,
        &req.resource_id,
        &current,
        &req.tags,
    );
    let (action, arn) = (check.action.clone(), check.resource.clone());
    authorize(
        &state,
        &caller,
        vec![ops::use_account(&account.name), check],
    )
    .await?;
    let result = if add {
        ec2.create_tags(&ids, &req.tags).await
    } else {
        ec2.delete_tags(&ids, &req.tags).await
    };
    audit::record_call(
        &state,
        Entry::for_caller(&caller, &action, vec![arn]),
        &result,
        |id| id.clone(),
    )
    .await;
    let request_id = result?;
    state.tags.forget(&account.name, &ids);
    let now = state.tags.tags(ec2.as_ref(), &account.name, &ids).await?;
    Ok(Json(TagsView {
        resource_id: req.resource_id.clone(),
        tags: now.get(&req.resource_id).cloned().unwrap_or_default(),
        aws_request_id: request_id,
    }))
}

/// `POST /v1/tags`: add or overwrite tags.
#[utoipa::path(
    post,
    path = "/v1/tags",
    summary = "Add or overwrite tags of an EC2 resource (ec2:CreateTags with aws:RequestTag, aws:TagKeys and the resource's current tags)",
    request_body = airlock_api::instances::TagRequest,
    responses(
        (status = 200, description = "Tags now", body = airlock_api::instances::TagsView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<TagRequest>,
) -> ApiResult<Json<TagsView>> {
    change(state, caller, req, true).await
}

/// `POST /v1/tags/remove`: remove tags (an empty value removes the key whatever its value).
#[utoipa::path(
    post,
    path = "/v1/tags/remove",
    summary = "Remove tags (an empty value removes the key whatever its value); ec2:DeleteTags",
    request_body = airlock_api::instances::TagRequest,
    responses(
        (status = 200, description = "Tags now", body = airlock_api::instances::TagsView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<TagRequest>,
) -> ApiResult<Json<TagsView>> {
    change(state, caller, req, false).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn kinds_from_ids() {
        assert_eq!(super::resource_kind("i-0abc"), Some("instance"));
        assert_eq!(super::resource_kind("ami-1"), Some("image"));
        assert_eq!(super::resource_kind("snap-1"), Some("snapshot"));
        assert_eq!(super::resource_kind("i-"), None);
        assert_eq!(super::resource_kind("bogus"), None);
    }
}
