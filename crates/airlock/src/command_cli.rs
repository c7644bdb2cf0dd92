//! `airlock command`: run a command line on the instances a tag selects, through their agents
//! (docs/commands.md).

use crate::cli::{CommandCommand, Output};
use crate::client::Client;
use crate::output::print;
use airlock_api::commands::{CommandResultView, CommandView, SendCommandRequest};
use airlock_api::state::InvocationStatus;
use anyhow::{bail, Context, Result};
use std::time::Duration;

const HEADERS: [&str; 6] = ["INSTANCE", "STATUS", "EXIT", "STARTED", "ENDED", "OUTPUT"];
const LIST_HEADERS: [&str; 6] = [
    "COMMAND",
    "STATUS",
    "ACCOUNT",
    "INSTANCES",
    "CREATED BY",
    "RUN",
];
/// How much of the output's first line a table shows.
const PREVIEW: usize = 60;

fn preview(r: &CommandResultView) -> String {
    let text = match (&r.output, &r.error_output) {
        _ if !r.status.is_final() => return "-".into(),
        (None, None) => return "(not readable)".into(),
        (Some(out), _) if !out.trim().is_empty() => out,
        (_, Some(err)) => err,
        (Some(out), None) => out,
    };
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut shown: String = first.chars().take(PREVIEW).collect();
    if first.chars().count() > PREVIEW || r.truncated {
        shown.push('…');
    }
    shown
}

fn row(r: &CommandResultView) -> Vec<String> {
    vec![
        r.instance_id.clone(),
        r.status.as_str().to_owned(),
        r.exit_code.map_or("-".into(), |c| c.to_string()),
        r.started_at.clone().unwrap_or_else(|| "-".into()),
        r.ended_at.clone().unwrap_or_else(|| "-".into()),
        preview(r),
    ]
}

fn list_row(c: &CommandView) -> Vec<String> {
    vec![
        c.id.clone(),
        c.status.as_str().to_owned(),
        c.account.clone(),
        c.results.len().to_string(),
        c.created_by.clone(),
        c.command.join(" ").chars().take(PREVIEW).collect(),
    ]
}

/// Prints a command: its results as a table, then each readable output in full.
fn show(output: Output, command: &CommandView) -> Result<()> {
    print(output, command, &HEADERS, || {
        command.results.iter().map(row).collect()
    })?;
    if output == Output::Table {
        for r in &command.results {
            for (name, text) in [("output", &r.output), ("error output", &r.error_output)] {
                if let Some(text) = text.as_deref().filter(|t| !t.is_empty()) {
                    println!("\n--- {} {name}:", r.instance_id);
                    print!("{text}");
                    if !text.ends_with('\n') {
                        println!();
                    }
                }
            }
            if r.truncated {
                println!("--- {}: output truncated at the limit", r.instance_id);
            }
        }
    }
    Ok(())
}

/// Runs a `command` subcommand.
pub async fn run(client: &Client, cmd: CommandCommand, output: Output) -> Result<()> {
    match cmd {
        CommandCommand::Run {
            account,
            targets,
            instances,
            max_concurrency,
            max_errors,
            timeout,
            wait,
            file,
            command,
        } => {
            let command = match file {
                Some(path) => {
                    let script = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read --file {}", path.display()))?;
                    vec!["sh".to_owned(), "-c".to_owned(), script]
                }
                None if command.is_empty() => {
                    bail!("name the command after `--` (e.g. -- uptime), or give --file")
                }
                None => command,
            };
            let req = SendCommandRequest {
                account,
                targets,
                instance_ids: instances,
                command,
                timeout_seconds: timeout,
                max_concurrency: Some(max_concurrency),
                max_errors: Some(max_errors),
            };
            let sent = client.send_command(&req).await?;
            if !wait {
                if output == Output::Table {
                    eprintln!(
                        "sent {} to {} instances; see `airlock command show {}`",
                        sent.id,
                        sent.results.len(),
                        sent.id
                    );
                }
                return show(output, &sent);
            }
            let done = wait_done(client, &sent.id).await?;
            show(output, &done)?;
            if done.status == InvocationStatus::Success {
                Ok(())
            } else {
                bail!("command {} ended {}", done.id, done.status.as_str())
            }
        }
        CommandCommand::List => {
            let list = client.commands().await?;
            print(output, &list.commands, &LIST_HEADERS, || {
                list.commands.iter().map(list_row).collect()
            })
        }
        CommandCommand::Show { id } => {
            let command = client.command(&id).await?;
            show(output, &command)
        }
    }
}

/// Waits until no instance is pending or running, saying how many are done when it changes.
async fn wait_done(client: &Client, id: &str) -> Result<CommandView> {
    let mut said = None;
    loop {
        let now = client.command(id).await?;
        let done = now.results.iter().filter(|r| r.status.is_final()).count();
        if said != Some(done) {
            eprintln!("{id}: {done}/{} instances done", now.results.len());
            said = Some(done);
        }
        if now.status != InvocationStatus::InProgress {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
