//! Commands for users, policies, tags and the audit log; `policy validate` and
//! `policy simulate` run locally with the same evaluator the console uses.

use crate::cli::{
    AuditArgs, AuditCommand, Output, PolicyCommand, TagArgs, TagCommand, UserCommand,
};
use crate::client::Client;
use crate::commands::{account_or_only, read_stdin_line};
use crate::output::{or_dash, print};
use airlock_console::api::{MfaEnabled, PolicyView, TagsView, UserView};
use airlock_console::audit::Verification;
use airlock_policy::{Policy, Request};
use anyhow::{bail, Context, Result};
use secrecy::ExposeSecret;
use serde_json::json;
use std::path::Path;

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))
}

fn user_rows(users: &[UserView]) -> Vec<Vec<String>> {
    users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.policies.join(","),
                if u.mfa { "yes" } else { "no" }.into(),
            ]
        })
        .collect()
}

const USER_HEADERS: &[&str] = &["USER", "POLICIES", "MFA"];

pub async fn user(client: &Client, cmd: UserCommand, output: Output) -> Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            policy_files,
            attach,
            ..
        } => {
            let password = read_stdin_line("password")?;
            let mut policies = attach;
            for file in &policy_files {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_else(|| "policy".into());
                let policy_name = format!("{name}-{stem}");
                let document = read(file, "policy")?;
                Policy::parse(&file.display().to_string(), &document)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let _: PolicyView = client
                    .put(
                        &format!("/v1/policies/{policy_name}"),
                        &json!({"document": document}),
                    )
                    .await?;
                policies.push(policy_name);
            }
            let user: UserView = client
                .post(
                    "/v1/users",
                    &json!({"name": name, "password": password.expose_secret(), "policies": policies}),
                )
                .await?;
            print(output, &user, USER_HEADERS, || {
                user_rows(std::slice::from_ref(&user))
            })
        }
        UserCommand::List => {
            let users: Vec<UserView> = client.get("/v1/users").await?;
            print(output, &users, USER_HEADERS, || user_rows(&users))
        }
        UserCommand::Remove { name } => {
            client.delete(&format!("/v1/users/{name}")).await?;
            print(output, &json!({"removed": name}), &["REMOVED"], || {
                vec![vec![name.clone()]]
            })
        }
        UserCommand::AttachPolicy { user, policy } => {
            let u: UserView = client
                .post(
                    &format!("/v1/users/{user}/policies"),
                    &json!({"policy": policy}),
                )
                .await?;
            print(output, &u, USER_HEADERS, || {
                user_rows(std::slice::from_ref(&u))
            })
        }
        UserCommand::DetachPolicy { user, policy } => {
            let u: UserView = client
                .delete_json(&format!("/v1/users/{user}/policies/{policy}"))
                .await?;
            print(output, &u, USER_HEADERS, || {
                user_rows(std::slice::from_ref(&u))
            })
        }
        UserCommand::EnableMfa { user } => {
            let m: MfaEnabled = client
                .post(&format!("/v1/users/{user}/mfa"), &json!({}))
                .await?;
            print(
                output,
                &m,
                &["USER", "SECRET (shown once)", "OTPAUTH URL"],
                || {
                    vec![vec![
                        m.user.clone(),
                        m.secret.clone(),
                        m.otpauth_url.clone(),
                    ]]
                },
            )
        }
    }
}

fn decision_rows(resp: &airlock_policy::Response) -> Vec<Vec<String>> {
    let decision = serde_json::to_value(resp.decision)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let statements: Vec<String> = resp
        .matched_statements
        .iter()
        .map(ToString::to_string)
        .collect();
    vec![vec![
        decision,
        or_dash(&(!statements.is_empty()).then(|| statements.join(", "))),
        resp.errors.join("; "),
    ]]
}

/// `policy validate` and `policy simulate`: no console involved.
pub fn policy_local(cmd: &PolicyCommand, output: Output) -> Result<bool> {
    match cmd {
        PolicyCommand::Validate { file } => {
            let text = read(file, "policy")?;
            match Policy::parse(&file.display().to_string(), &text) {
                Ok(p) => {
                    print(
                        output,
                        &json!({"valid": true, "file": file, "statements": p.statement_count()}),
                        &["VALID", "STATEMENTS"],
                        || vec![vec!["yes".into(), p.statement_count().to_string()]],
                    )?;
                    Ok(true)
                }
                Err(e) => match output {
                    Output::Json => {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(
                                &json!({"valid": false, "file": file, "errors": e.errors()})
                            )?
                        );
                        bail!("{} is not a valid policy", file.display())
                    }
                    Output::Table => bail!("{e}"),
                },
            }
        }
        PolicyCommand::Simulate { policies, request } => {
            let mut parsed = Vec::new();
            for file in policies {
                let text = read(file, "policy")?;
                parsed.push(
                    Policy::parse(&file.display().to_string(), &text)
                        .map_err(|e| anyhow::anyhow!("{e}"))?,
                );
            }
            let text = read(request, "request")?;
            let req: Request = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a request: expected {{\"action\": …, \"resource\": …, \"context\": {{…}}}}", request.display()))?;
            let resp = airlock_policy::evaluate(&parsed, &req);
            print(output, &resp, &["DECISION", "STATEMENTS", "ERRORS"], || {
                decision_rows(&resp)
            })?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

pub async fn policy(client: &Client, cmd: PolicyCommand, output: Output) -> Result<()> {
    let rows = |p: &[PolicyView]| -> Vec<Vec<String>> {
        p.iter()
            .map(|p| vec![p.name.clone(), p.created_by.clone(), p.created_at.clone()])
            .collect()
    };
    match cmd {
        PolicyCommand::Create { name, file } => {
            let document = read(&file, "policy")?;
            Policy::parse(&file.display().to_string(), &document)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let p: PolicyView = client
                .put(
                    &format!("/v1/policies/{name}"),
                    &json!({"document": document}),
                )
                .await?;
            print(output, &p, &["POLICY", "CREATED BY", "CREATED"], || {
                rows(std::slice::from_ref(&p))
            })
        }
        PolicyCommand::List => {
            let list: Vec<PolicyView> = client.get("/v1/policies").await?;
            print(output, &list, &["POLICY", "CREATED BY", "CREATED"], || {
                rows(&list)
            })
        }
        PolicyCommand::Show { name } => {
            let p: PolicyView = client.get(&format!("/v1/policies/{name}")).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&p)?),
                Output::Table => {
                    let pretty = serde_json::from_str::<serde_json::Value>(&p.document)
                        .and_then(|v| serde_json::to_string_pretty(&v))
                        .unwrap_or(p.document.clone());
                    println!("{pretty}");
                }
            }
            Ok(())
        }
        PolicyCommand::Delete { name } => {
            client.delete(&format!("/v1/policies/{name}")).await?;
            print(output, &json!({"deleted": name}), &["DELETED"], || {
                vec![vec![name.clone()]]
            })
        }
        PolicyCommand::Validate { .. } | PolicyCommand::Simulate { .. } => {
            unreachable!("validate and simulate run locally")
        }
    }
}

pub async fn tag(client: &Client, cmd: TagCommand, output: Output) -> Result<()> {
    let (path, args, remove): (&str, TagArgs, bool) = match cmd {
        TagCommand::Add(a) => ("/v1/tags", a, false),
        TagCommand::Remove(a) => ("/v1/tags/remove", a, true),
    };
    let mut tags = Vec::new();
    for t in &args.tags {
        match t.split_once('=') {
            Some((k, v)) if !k.is_empty() => tags.push(json!({"key": k, "value": v})),
            None if remove && !t.is_empty() => tags.push(json!({"key": t, "value": ""})),
            _ => bail!("{t:?} is not KEY=VALUE"),
        }
    }
    let account = account_or_only(client, args.account).await?;
    let view: TagsView = client
        .post(
            path,
            &json!({"account": account, "resource_id": args.resource, "tags": tags}),
        )
        .await?;
    print(output, &view, &["RESOURCE", "TAGS"], || {
        let tags: Vec<String> = view
            .tags
            .iter()
            .map(|t| format!("{}={}", t.key, t.value))
            .collect();
        vec![vec![view.resource_id.clone(), tags.join(",")]]
    })
}

pub async fn audit(client: &Client, args: AuditArgs, output: Output) -> Result<()> {
    if let Some(AuditCommand::Verify) = args.verify {
        let v: Verification = client.get("/v1/audit/verify").await?;
        print(
            output,
            &v,
            &["RECORDS", "INTACT", "FIRST BROKEN", "PROBLEM"],
            || {
                vec![vec![
                    v.records.to_string(),
                    if v.intact { "yes" } else { "no" }.into(),
                    v.first_broken
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    or_dash(&v.problem),
                ]]
            },
        )?;
        if !v.intact {
            bail!(
                "the audit log was changed: record {} {}",
                v.first_broken.unwrap_or(0),
                v.problem.unwrap_or_default()
            );
        }
        return Ok(());
    }
    let mut query = Vec::new();
    if let Some(u) = args.user {
        query.push(("user", u));
    }
    if let Some(s) = args.since {
        query.push(("since", s));
    }
    let rows: Vec<airlock_store::AuditRow> = client.get_query("/v1/audit", &query).await?;
    print(
        output,
        &rows,
        &[
            "SEQ",
            "TIME",
            "USER",
            "ACTION",
            "DECISION",
            "OUTCOME",
            "AWS REQUEST ID",
            "DETAIL",
        ],
        || {
            rows.iter()
                .map(|r| {
                    vec![
                        r.seq.to_string(),
                        r.at.clone(),
                        r.user_name.clone(),
                        r.action.clone(),
                        r.decision.clone(),
                        r.outcome.clone(),
                        or_dash(&r.aws_request_id),
                        or_dash(&r.detail),
                    ]
                })
                .collect()
        },
    )
}
