//! Commands for users, policies, tags and the audit log; `policy validate` and
//! `policy simulate` run locally with the same evaluator the console uses.

use crate::cli::{
    AuditArgs, AuditCommand, Output, PolicyCommand, TagArgs, TagCommand, UserCommand,
};
use crate::client::Client;
use crate::commands::{account_or_only, read_stdin_line};
use crate::output::{or_dash, print, table};
use airlock_api::audit::AuditRecord;
use airlock_api::instances::TagRequest;
use airlock_api::users::{AddUserRequest, UserView};
use airlock_cloud::Tag;
use airlock_console::audit::Anchor;
use airlock_policy::{Policy, Request};
use anyhow::{bail, Context, Result};
use secrecy::SecretString;
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

/// `user add`: the password from standard input, each policy file stored (checked here first)
/// as `USER-STEM` and attached with the named ones.
async fn user_add(
    client: &Client,
    name: String,
    policy_files: &[std::path::PathBuf],
    attach: Vec<String>,
) -> Result<UserView> {
    let password: SecretString = read_stdin_line("password")?;
    let mut policies = attach;
    for file in policy_files {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "policy".into());
        let policy_name = format!("{name}-{stem}");
        let document = read(file, "policy")?;
        Policy::parse(&file.display().to_string(), &document)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        client.put_policy(&policy_name, &document).await?;
        policies.push(policy_name);
    }
    let request = AddUserRequest {
        name,
        password,
        policies,
    };
    Ok(client.add_user(&request).await?)
}

pub async fn user(client: &Client, cmd: UserCommand, output: Output) -> Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            policy_files,
            attach,
            ..
        } => {
            let user = user_add(client, name, &policy_files, attach).await?;
            print(output, &user, USER_HEADERS, || {
                user_rows(std::slice::from_ref(&user))
            })
        }
        UserCommand::List => {
            let users = client.users().await?;
            print(output, &users, USER_HEADERS, || user_rows(&users))
        }
        UserCommand::Remove { name } => {
            client.remove_user(&name).await?;
            print(output, &json!({"removed": name}), &["REMOVED"], || {
                vec![vec![name.clone()]]
            })
        }
        UserCommand::AttachPolicy { user, policy } => {
            let u = client.attach_policy(&user, &policy).await?;
            print(output, &u, USER_HEADERS, || {
                user_rows(std::slice::from_ref(&u))
            })
        }
        UserCommand::DetachPolicy { user, policy } => {
            let u = client.detach_policy(&user, &policy).await?;
            print(output, &u, USER_HEADERS, || {
                user_rows(std::slice::from_ref(&u))
            })
        }
        UserCommand::EnableMfa { user } => {
            let m = client.enable_mfa(&user).await?;
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
    let rows = |p: &[airlock_api::users::PolicyView]| -> Vec<Vec<String>> {
        p.iter()
            .map(|p| vec![p.name.clone(), p.created_by.clone(), p.created_at.clone()])
            .collect()
    };
    match cmd {
        PolicyCommand::Create { name, file } => {
            let document = read(&file, "policy")?;
            Policy::parse(&file.display().to_string(), &document)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let p = client.put_policy(&name, &document).await?;
            print(output, &p, &["POLICY", "CREATED BY", "CREATED"], || {
                rows(std::slice::from_ref(&p))
            })
        }
        PolicyCommand::List => {
            let list = client.policies().await?;
            print(output, &list, &["POLICY", "CREATED BY", "CREATED"], || {
                rows(&list)
            })
        }
        PolicyCommand::Show { name } => {
            let p = client.policy(&name).await?;
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
            client.delete_policy(&name).await?;
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
    let (args, remove): (TagArgs, bool) = match cmd {
        TagCommand::Add(a) => (a, false),
        TagCommand::Remove(a) => (a, true),
    };
    let mut tags = Vec::new();
    for t in &args.tags {
        match t.split_once('=') {
            Some((k, v)) if !k.is_empty() => tags.push(Tag::new(k, v)),
            None if remove && !t.is_empty() => tags.push(Tag::new(t, "")),
            _ => bail!("{t:?} is not KEY=VALUE"),
        }
    }
    let request = TagRequest {
        account: account_or_only(client, args.account).await?,
        resource_id: args.resource,
        tags,
    };
    let view = client.tag(&request, remove).await?;
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
    match args.command {
        Some(AuditCommand::Verify { anchor }) => audit_verify(client, anchor, output).await,
        Some(AuditCommand::Head) => {
            let head = client.audit_head().await?;
            print(output, &head, &["SEQ", "TIME", "HASH"], || {
                vec![vec![
                    head.seq.to_string(),
                    head.at.clone(),
                    head.hash.clone(),
                ]]
            })
        }
        None => audit_pages(client, &args, output).await,
    }
}

async fn audit_verify(client: &Client, anchor: Option<Anchor>, output: Output) -> Result<()> {
    let v = client
        .audit_verify(anchor.as_ref().map(ToString::to_string))
        .await?;
    print(
        output,
        &v,
        &[
            "RECORDS",
            "CHECKED",
            "UNKEYED",
            "INTACT",
            "FIRST BROKEN",
            "PROBLEM",
            "HEAD",
        ],
        || {
            vec![vec![
                v.records.to_string(),
                v.checked.to_string(),
                v.unkeyed.to_string(),
                if v.intact { "yes" } else { "no" }.into(),
                v.first_broken
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                or_dash(&v.problem),
                v.head
                    .as_ref()
                    .map(|h| format!("{}:{}", h.seq, h.hash))
                    .unwrap_or_else(|| "-".into()),
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
    Ok(())
}

/// The query of one page: the filters, the page size and where it starts.
fn page_query(args: &AuditArgs, cursor: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = vec![("limit", args.limit.to_string())];
    query.extend(args.user.clone().map(|u| ("user", u)));
    query.extend(args.since.clone().map(|s| ("since", s)));
    query.extend(cursor.map(|c| ("cursor", c.to_owned())));
    query
}

/// The command that prints the page after the one shown.
fn next_page_command(args: &AuditArgs, cursor: &str) -> String {
    let mut command = "airlock audit".to_owned();
    for (flag, value) in page_query(args, Some(cursor)) {
        if flag == "limit" && args.limit == airlock_console::audit::DEFAULT_LIMIT {
            continue;
        }
        command.push_str(&format!(" --{flag} {value}"));
    }
    command
}

const AUDIT_HEADERS: [&str; 8] = [
    "SEQ",
    "TIME",
    "USER",
    "ACTION",
    "DECISION",
    "OUTCOME",
    "AWS REQUEST ID",
    "DETAIL",
];

fn audit_rows(records: &[AuditRecord]) -> Vec<Vec<String>> {
    records
        .iter()
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
}

/// Prints one page, or (`--all`) pages as they come: one table heading, JSON a record a line.
async fn audit_pages(client: &Client, args: &AuditArgs, output: Output) -> Result<()> {
    let mut cursor = args.cursor.clone();
    let mut first = true;
    loop {
        let page = client
            .audit_page(&page_query(args, cursor.as_deref()))
            .await?;
        match (output, args.all) {
            (Output::Json, false) => println!("{}", serde_json::to_string_pretty(&page)?),
            (Output::Json, true) => {
                for record in &page.records {
                    println!("{}", serde_json::to_string(record)?);
                }
            }
            (Output::Table, _) => {
                let text = table(&AUDIT_HEADERS, &audit_rows(&page.records));
                // Later pages go on under the first one's heading.
                let body = if first {
                    &text[..]
                } else {
                    text.split_once('\n').map_or("", |(_, rows)| rows)
                };
                print!("{body}");
            }
        }
        first = false;
        match page.next_cursor {
            Some(next) if args.all => cursor = Some(next),
            Some(next) => {
                eprintln!(
                    "more records follow: {} (or --all for every page)",
                    next_page_command(args, &next)
                );
                return Ok(());
            }
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn audit_args(argv: &[&str]) -> AuditArgs {
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            crate::cli::Command::Audit(args) => args,
            other => panic!("not audit: {other:?}"),
        }
    }

    #[test]
    fn the_next_page_keeps_the_filters_and_the_page_size() {
        let args = audit_args(&["airlock", "audit", "--user", "bob", "--limit", "5"]);
        assert_eq!(
            next_page_command(&args, "QUJD"),
            "airlock audit --limit 5 --user bob --cursor QUJD"
        );
        let args = audit_args(&["airlock", "audit", "--cursor", "old"]);
        assert_eq!(
            next_page_command(&args, "new"),
            "airlock audit --cursor new"
        );
    }

    #[test]
    fn a_page_larger_than_the_console_gives_is_refused_before_asking() {
        for bad in ["0", "1001", "1000000"] {
            assert!(crate::cli::Cli::try_parse_from(["airlock", "audit", "--limit", bad]).is_err());
        }
        assert_eq!(audit_args(&["airlock", "audit"]).limit, 100);
    }

    #[test]
    fn an_anchor_is_read_before_asking() {
        assert!(crate::cli::Cli::try_parse_from([
            "airlock", "audit", "verify", "--anchor", "5:zz"
        ])
        .is_err());
        let hash = "a".repeat(64);
        let args = audit_args(&[
            "airlock",
            "audit",
            "verify",
            "--anchor",
            &format!("5:{hash}"),
        ]);
        assert!(matches!(
            args.command,
            Some(AuditCommand::Verify {
                anchor: Some(Anchor { seq: 5, .. })
            })
        ));
    }
}
