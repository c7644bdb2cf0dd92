//! What a request to the EC2 endpoint is decided on: the same checks, built by the
//! authorization core from the same facts, as the console's own operation would make.
//! Nothing here reaches a changing EC2 endpoint; it only describes and decides.

use super::answer::Ec2Error;
use super::params::{Launch, Operation, Params};
use crate::auth::Caller;
use crate::authz::{authorize, Check};
use crate::error::ApiError;
use crate::fleet::On;
use crate::instances;
use crate::state::AppState;
use crate::tags::resource_kind;
use crate::validate;
use airlock_access::ops;
use airlock_cloud::{Ec2, Instance, Scope, StateAction};
use airlock_store::AccountRow;

/// A request that may go on, and what its audit record and aftermath need.
#[derive(Debug, Default)]
pub struct Decided {
    /// `ec2:ACTION`.
    pub action: String,
    /// The resources decided on.
    pub resources: Vec<String>,
    /// Resources whose tags the call may change (the tag cache forgets them).
    pub touched: Vec<String>,
    /// The instances a terminate ends (a scoped deployment's may never refresh again).
    pub terminated: Vec<Instance>,
}

/// Where a request runs: one account, in the signature's region.
pub struct Context<'a> {
    /// The console's state.
    pub state: &'a AppState,
    /// Whose key signed.
    pub caller: &'a Caller,
    /// The account.
    pub account: &'a AccountRow,
    /// The account in the request's region.
    pub scope: &'a Scope,
    /// EC2 there, for looking up what the request touches.
    pub ec2: &'a dyn Ec2,
}

impl Context<'_> {
    async fn allow(&self, checks: Vec<Check>) -> Result<Vec<String>, Ec2Error> {
        let resources = checks
            .iter()
            .filter(|c| !c.action.starts_with("airlock:"))
            .map(|c| c.resource.clone())
            .collect();
        authorize(self.state, self.caller, checks).await?;
        Ok(resources)
    }

    fn use_account(&self) -> Check {
        ops::use_account(&self.account.name)
    }
}

/// Decides `op`; on a launch, `params` gets the metadata options the checks assumed, so EC2
/// launches exactly what was decided.
pub async fn decide(
    cx: &Context<'_>,
    op: &Operation,
    params: &mut Params,
) -> Result<Decided, Ec2Error> {
    match op {
        Operation::Describe(action) => {
            let checks = vec![
                ops::describe_call(action, &cx.scope.region),
                cx.use_account(),
            ];
            Ok(Decided {
                action: format!("ec2:{action}"),
                resources: cx.allow(checks).await?,
                ..Decided::default()
            })
        }
        Operation::ChangeState(act, ids) => change_state(cx, *act, ids).await,
        Operation::Tags {
            add,
            resource_ids,
            tags,
        } => change_tags(cx, *add, resource_ids, tags).await,
        Operation::Run(launch) => {
            let decided = run(cx, launch).await?;
            params.set("MetadataOptions.HttpTokens", "required");
            params.set(
                "MetadataOptions.HttpPutResponseHopLimit",
                &launch.hop_limit.to_string(),
            );
            Ok(decided)
        }
        Operation::Fleet(request) => {
            validate::tags("TagSpecification", request.tags(), 0)?;
            let on = On {
                state: cx.state,
                caller: cx.caller,
                account: cx.account,
                scope: cx.scope,
            };
            let facts = on.authorize(cx.ec2, request).await?;
            let resources = airlock_access::fleet::checks(request, &facts, cx.scope)
                .into_iter()
                .map(|c| c.resource)
                .collect();
            Ok(Decided {
                action: request.action(),
                resources,
                ..Decided::default()
            })
        }
    }
}

async fn change_state(
    cx: &Context<'_>,
    act: StateAction,
    ids: &[String],
) -> Result<Decided, Ec2Error> {
    for (i, id) in ids.iter().enumerate() {
        validate::ec2_id(&format!("InstanceId.{}", i + 1), id, "i-")?;
    }
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let action = format!("ec2:{}", act.api_name());
    let described =
        instances::state_change(cx.ec2, cx.scope, &cx.account.name, &action, &ids).await?;
    let resources = described.resources();
    // The call's own action first: the audit record of the decision is filed under it.
    let mut checks = described.checks;
    checks.rotate_left(1);
    authorize(cx.state, cx.caller, checks).await?;
    if let Some(e) = described.not_found {
        return Err(ApiError::Aws(e).into());
    }
    let terminated = if act == StateAction::Terminate {
        described.found
    } else {
        Vec::new()
    };
    Ok(Decided {
        action,
        resources,
        touched: Vec::new(),
        terminated,
    })
}

async fn change_tags(
    cx: &Context<'_>,
    add: bool,
    ids: &[String],
    tags: &[airlock_cloud::Tag],
) -> Result<Decided, Ec2Error> {
    // Without tags, DeleteTags removes every tag, the console's own included.
    if tags.is_empty() {
        return Err(ApiError::field("Tag.1.Key", "give at least one tag").into());
    }
    if add {
        validate::tags("Tag", tags, 0)?;
    } else {
        airlock_access::tags::refuse_reserved("Tag", tags).map_err(ApiError::from)?;
    }
    let mut kinds = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let kind = resource_kind(id).ok_or_else(|| {
            ApiError::field(
                format!("ResourceId.{}", i + 1),
                format!("{id:?} is not an EC2 resource id the console can tag"),
            )
        })?;
        kinds.push(kind);
    }
    cx.state.tags.forget(&cx.account.name, ids);
    let current = cx.state.tags.tags(cx.ec2, &cx.account.name, ids).await?;
    let mut checks: Vec<Check> = ids
        .iter()
        .zip(kinds)
        .map(|(id, kind)| {
            let now = current.get(id).cloned().unwrap_or_default();
            ops::change_tags(cx.scope, add, kind, id, &now, tags)
        })
        .collect();
    checks.push(cx.use_account());
    Ok(Decided {
        action: if add {
            "ec2:CreateTags"
        } else {
            "ec2:DeleteTags"
        }
        .to_owned(),
        resources: cx.allow(checks).await?,
        touched: ids.to_vec(),
        terminated: Vec::new(),
    })
}

async fn run(cx: &Context<'_>, launch: &Launch) -> Result<Decided, Ec2Error> {
    validate::tags("TagSpecification", &launch.tags, 0)?;
    let decided = ops::Launch {
        image_id: &launch.image_id,
        instance_type: &launch.instance_type,
        subnet_id: launch.subnet_id.as_deref(),
        security_group_ids: &launch.security_group_ids,
        key_name: launch.key_name.as_deref(),
        tags: &launch.tags,
        metadata_hop_limit: launch.hop_limit,
        placement: &airlock_cloud::Placement::default(),
    };
    let tags = cx
        .state
        .tags
        .tags(cx.ec2, &cx.account.name, &decided.existing_ids())
        .await?;
    let tags_of = |id: &str| tags.get(id).cloned().unwrap_or_default();
    let mut checks = ops::run_instances(cx.scope, &decided, &tags_of);
    checks.push(cx.use_account());
    Ok(Decided {
        action: "ec2:RunInstances".to_owned(),
        resources: cx.allow(checks).await?,
        ..Decided::default()
    })
}
