//! `airlock gateway-config`: the gateway configurations a console stores (Gloo Upstream and
//! VirtualService YAML, validated by the console with the gateway's own parser) and that
//! `airlock gateway --console URL` loads and follows; and how the gateway finds its console
//! token.

use crate::cli::{ConsoleArgs, GatewayConfigCommand, Output};
use crate::client::{config_dir, Client, SavedLogin};
use crate::output::print;
use airlock_console::gateway::{GatewayConfigList, GatewayConfigView};
use airlock_gateway::console::ConsoleLink;
use anyhow::{anyhow, Context, Result};
use secrecy::SecretString;
use serde_json::json;

/// The console `airlock gateway` follows, with its token: `AIRLOCK_TOKEN`, else the login
/// `airlock login` saved for that console. `None` without `--console` / `AIRLOCK_CONSOLE`.
pub fn console_link(console: &ConsoleArgs) -> Result<Option<ConsoleLink>> {
    let Some(url) = console.url() else {
        return Ok(None);
    };
    let url = url.trim_end_matches('/').to_owned();
    let token = match std::env::var("AIRLOCK_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        Some(t) => t,
        None => {
            let path = config_dir()?.join("login.json");
            let saved: Option<SavedLogin> = match std::fs::read(&path) {
                Ok(bytes) => Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("{} is corrupt; run `airlock login` again", path.display())
                })?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            };
            saved
                .filter(|s| s.console.trim_end_matches('/') == url)
                .map(|s| s.token)
                .ok_or_else(|| {
                    anyhow!("no API token for the console {url}: set AIRLOCK_TOKEN or run `airlock login`")
                })?
        }
    };
    Ok(Some(ConsoleLink {
        url,
        token: SecretString::from(token),
        roots: crate::client::console_roots(console.console_ca.as_deref())?,
    }))
}

fn path(name: &str) -> String {
    format!("/v1/gateway/configs/{name}")
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
            let stored: GatewayConfigView =
                client.put(&path(&name), &json!({"yaml": yaml})).await?;
            print(output, &stored, &headers, || vec![row(&stored)])
        }
        GatewayConfigCommand::Get { name } => {
            let stored: GatewayConfigView = client.get(&path(&name)).await?;
            match output {
                Output::Json => print(output, &stored, &headers, Vec::new),
                Output::Table => {
                    print!("{}", stored.yaml);
                    Ok(())
                }
            }
        }
        GatewayConfigCommand::List => {
            let list: GatewayConfigList = client.get("/v1/gateway/configs").await?;
            print(output, &list.configs, &headers, || {
                list.configs.iter().map(row).collect()
            })
        }
        GatewayConfigCommand::Delete { name } => {
            client.delete(&path(&name)).await?;
            if output == Output::Table {
                println!("deleted gateway configuration {name}");
            }
            Ok(())
        }
    }
}
