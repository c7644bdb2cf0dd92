//! `airlock access-key`: Airlock access keys for the `aws` CLI, SDKs and Terraform, which sign
//! requests to the console's EC2 endpoint (`CONSOLE_URL/ec2/ACCOUNT`) and act as their user.

use crate::cli::Output;
use crate::client::Client;
use crate::output::{or_dash, print};
use airlock_api::access_keys::{AccessKeyView, CreateAccessKeyRequest};
use airlock_api::state::AccessKeyStatus;
use anyhow::Result;
use clap::Subcommand;
use secrecy::ExposeSecret;
use serde_json::json;

/// `airlock access-key …`.
#[derive(Subcommand, Debug)]
pub enum AccessKeyCommand {
    /// Create a key; its secret is printed this once (`--output json` gives
    /// `access_key_id` and `secret_access_key`).
    Create {
        /// The user the key acts as (airlock:CreateAccessKey on it); yourself by default.
        #[arg(long)]
        user: Option<String>,
        /// Days until the key stops working; it never expires by default.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3650))]
        expires_in_days: Option<u64>,
    },
    /// List the keys of a user (yourself by default), without their secrets.
    List {
        /// Whose keys (airlock:ListAccessKeys on the user).
        #[arg(long)]
        user: Option<String>,
    },
    /// Disable (`--status Inactive`) or enable again (`--status Active`) a key.
    Update {
        /// The key's id.
        access_key_id: String,
        /// The new status.
        #[arg(long, value_parser = parse_status)]
        status: AccessKeyStatus,
    },
    /// Delete a key and its sealed secret; requests signed with it are refused at once.
    Delete {
        /// The key's id.
        access_key_id: String,
    },
}

fn parse_status(word: &str) -> Result<AccessKeyStatus, String> {
    word.parse()
        .map_err(|e: airlock_api::state::UnknownState| format!("{e}: use Active or Inactive"))
}

const HEADERS: &[&str] = &[
    "ACCESS KEY ID",
    "USER",
    "STATUS",
    "CREATED",
    "EXPIRES",
    "LAST USED",
];

fn rows(keys: &[AccessKeyView]) -> Vec<Vec<String>> {
    keys.iter()
        .map(|k| {
            vec![
                k.access_key_id.clone(),
                k.user.clone(),
                k.status.to_string(),
                k.created_at.clone(),
                or_dash(&k.expires_at),
                or_dash(&k.last_used_at),
            ]
        })
        .collect()
}

/// Runs one `access-key` command.
pub async fn run(client: &Client, cmd: AccessKeyCommand, output: Output) -> Result<()> {
    match cmd {
        AccessKeyCommand::Create {
            user,
            expires_in_days,
        } => {
            let req = CreateAccessKeyRequest {
                user,
                expires_in_seconds: expires_in_days.map(|d| d * 24 * 3600),
            };
            let new = client.create_access_key(&req).await?;
            print(
                output,
                &new,
                &[
                    "ACCESS KEY ID",
                    "USER",
                    "SECRET ACCESS KEY (shown once)",
                    "EXPIRES",
                ],
                || {
                    vec![vec![
                        new.key.access_key_id.clone(),
                        new.key.user.clone(),
                        new.secret_access_key.expose_secret().to_owned(),
                        or_dash(&new.key.expires_at),
                    ]]
                },
            )
        }
        AccessKeyCommand::List { user } => {
            let list = client.access_keys(user.as_deref()).await?;
            print(output, &list, HEADERS, || rows(&list.access_keys))
        }
        AccessKeyCommand::Update {
            access_key_id,
            status,
        } => {
            let key = client.update_access_key(&access_key_id, status).await?;
            print(output, &key, HEADERS, || rows(std::slice::from_ref(&key)))
        }
        AccessKeyCommand::Delete { access_key_id } => {
            client.delete_access_key(&access_key_id).await?;
            print(
                output,
                &json!({"deleted": access_key_id}),
                &["DELETED"],
                || vec![vec![access_key_id.clone()]],
            )
        }
    }
}
