//! `airlock key-pair`: key pairs. Each operation's arguments and the request they make; a
//! created key's private half is saved to a new file or printed, once.

use super::{Change, ListArgs, NewTags, Plan, Where};
use airlock_fleet::key_pair::*;
use airlock_fleet::FleetFamily;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum KeyPairCommand {
    /// List key pairs.
    List(ListArgs),
    /// CreateKeyPair: the private key is shown (or saved) this once and never stored.
    Create(Create),
    /// ImportKeyPair of an OpenSSH public key.
    Import(Import),
    /// DeleteKeyPair.
    Delete(Delete),
}

impl KeyPairCommand {
    pub(super) fn plan(self) -> Result<Plan> {
        Ok(match self {
            Self::List(a) => Plan::list(FleetFamily::KeyPairs, a),
            Self::Create(a) => Change::try_from(a)?.into(),
            Self::Import(a) => Change::try_from(a)?.into(),
            Self::Delete(a) => Change::from(a).into(),
        })
    }
}

#[derive(Debug, Args)]
pub struct Create {
    /// The key pair's name.
    name: String,
    /// ed25519 or rsa.
    #[arg(long, default_value = "ed25519")]
    key_type: String,
    /// Write the private key to this new file (mode 0600) instead of printing it.
    #[arg(long)]
    private_key_file: Option<PathBuf>,
    #[command(flatten)]
    tags: NewTags,
    #[command(flatten)]
    at: Where,
}

impl TryFrom<Create> for Change {
    type Error = anyhow::Error;

    fn try_from(a: Create) -> Result<Change> {
        if let Some(path) = &a.private_key_file {
            if path.exists() {
                bail!(
                    "--private-key-file {} exists; choose a new file (a private key is never overwritten)",
                    path.display()
                );
            }
        }
        let request = CreateKeyPair {
            key_name: a.name,
            key_type: a.key_type,
            tags: a.tags.tags(),
        };
        let mut change = Change::new(a.at, KeyPairRequest::Create(request));
        change.private_key_file = a.private_key_file;
        Ok(change)
    }
}

#[derive(Debug, Args)]
pub struct Import {
    /// The key pair's name.
    name: String,
    /// The public key file (e.g. ~/.ssh/id_ed25519.pub).
    #[arg(long)]
    public_key_file: PathBuf,
    #[command(flatten)]
    tags: NewTags,
    #[command(flatten)]
    at: Where,
}

impl TryFrom<Import> for Change {
    type Error = anyhow::Error;

    fn try_from(a: Import) -> Result<Change> {
        let public_key = std::fs::read_to_string(&a.public_key_file).with_context(|| {
            format!(
                "cannot read --public-key-file {}",
                a.public_key_file.display()
            )
        })?;
        let request = ImportKeyPair {
            key_name: a.name,
            public_key: public_key.trim().to_owned(),
            tags: a.tags.tags(),
        };
        Ok(Change::new(a.at, KeyPairRequest::Import(request)))
    }
}

#[derive(Debug, Args)]
pub struct Delete {
    /// The key pair's name.
    name: String,
    #[command(flatten)]
    at: Where,
}

impl From<Delete> for Change {
    fn from(a: Delete) -> Change {
        let request = DeleteKeyPair { key_name: a.name };
        Change::new(a.at, KeyPairRequest::Delete(request))
    }
}
