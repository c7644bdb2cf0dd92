//! `airlock gateway-config`: the gateway configurations a console stores (Gloo Upstream and
//! VirtualService YAML, validated by the console with the gateway's own parser) and that
//! `airlock gateway --console URL` loads and follows; and how the gateway finds its console
//! token.

use crate::cli::{ConsoleArgs, GatewayConfigCommand, Output};
use crate::client::{saved_login, token_for, Client};
use crate::output::print;
use airlock_api::gateway::GatewayConfigView;
use airlock_gateway::console::ConsoleLink;
use anyhow::{anyhow, Context, Result};

/// The console `airlock gateway` follows, with its token: `AIRLOCK_TOKEN`, else the login
/// `airlock login` saved for that console. `None` without `--console` / `AIRLOCK_CONSOLE`.
pub fn console_link(console: &ConsoleArgs) -> Result<Option<ConsoleLink>> {
    let Some(url) = console.url() else {
        return Ok(None);
    };
    let url = url.trim_end_matches('/').to_owned();
    // The saved login is read only when AIRLOCK_TOKEN is not set.
    let saved = match std::env::var("AIRLOCK_TOKEN") {
        Ok(t) if !t.is_empty() => None,
        _ => saved_login()?,
    };
    let token = token_for(&url, saved).ok_or_else(|| {
        anyhow!("no API token for the console {url}: set AIRLOCK_TOKEN or run `airlock login`")
    })?;
    Ok(Some(ConsoleLink {
        url,
        token,
        roots: crate::client::console_roots(console.console_ca.as_deref())?,
    }))
}

/// Runs a `gateway-config` subcommand.
pub async fn run(client: &Client, cmd: GatewayConfigCommand, output: Output) -> Result<()> {
    let row = |c: &GatewayConfigView| {
        vec![
            c.name.clone(),
            c.updated_by.clone(),
            c.updated_at.clone(),
            c.yaml.matches("kind:").count().to_string(),
        ]
    };
    let headers = ["NAME", "UPDATED BY", "UPDATED AT", "DOCUMENTS"];
    match cmd {
        GatewayConfigCommand::Put { name, file } => {
            let yaml = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let stored = client.put_gateway_config(&name, yaml).await?;
            print(output, &stored, &headers, || vec![row(&stored)])
        }
        GatewayConfigCommand::Get { name } => {
            let stored = client.gateway_config(&name).await?;
            match output {
                Output::Json => print(output, &stored, &headers, Vec::new),
                Output::Table => {
                    print!("{}", stored.yaml);
                    Ok(())
                }
            }
        }
        GatewayConfigCommand::List => {
            let list = client.gateway_configs().await?;
            print(output, &list.configs, &headers, || {
                list.configs.iter().map(row).collect()
            })
        }
        GatewayConfigCommand::Upstreams => {
            let list = client.gateway_upstreams().await?;
            if let Some(error) = &list.error {
                anyhow::bail!("the stored configurations cannot be read together: {error}");
            }
            let headers = ["UPSTREAM", "ACCOUNT", "FILTERS", "ROUTED TO", "NOT ROUTED"];
            print(output, &list, &headers, || {
                list.upstreams.iter().map(upstream_row).collect()
            })
        }
        GatewayConfigCommand::Delete { name } => {
            client.delete_gateway_config(&name).await?;
            if output == Output::Table {
                println!("deleted gateway configuration {name}");
            }
            Ok(())
        }
    }
}

/// One upstream for people: where it routes, or why the console cannot say.
fn upstream_row(u: &airlock_api::gateway::UpstreamView) -> Vec<String> {
    let routed = match &u.note {
        Some(note) => note.clone(),
        None if u.members.is_empty() => "nothing".into(),
        None => u
            .members
            .iter()
            .map(|m| format!("{} {}", m.instance_id, m.address))
            .collect::<Vec<_>>()
            .join(", "),
    };
    vec![
        format!("{}/{}", u.namespace, u.name),
        u.account.clone().unwrap_or_else(|| "-".into()),
        u.filters.join(" "),
        routed,
        u.excluded_total.to_string(),
    ]
}
