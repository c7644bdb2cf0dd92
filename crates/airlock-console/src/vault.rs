//! The console's side of the vault: which master keys it holds, sealing and opening stored
//! records, proving at start that the key opens this database, and rotating the master key.
//!
//! Rotation re-wraps data keys record by record while consoles keep serving: a console that meets
//! a record wrapped by a key it does not hold re-reads its master key file once and tries again.

use airlock_store::{Store, VaultRow};
use airlock_vault::{Keyring, Sealed, VaultError};
use std::path::PathBuf;
use std::sync::RwLock;

/// A plaintext opened from the vault, wiped when dropped.
pub type Plain = zeroize::Zeroizing<Vec<u8>>;

/// Where the master keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A key file (one key per line, current first), re-read when a record needs a newer key.
    File(PathBuf),
    /// `AIRLOCK_MASTER_KEY`: fixed for the life of the process.
    Environment,
}

/// Id of the record that proves a master key belongs to this database.
const CHECK_RECORD: &str = "vault:check";
const CHECK_TEXT: &[u8] = b"airlock vault check v1";

/// Why the vault could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultOpenError {
    /// The key does not open this database's records.
    #[error("the master key does not open this vault: {0} (check --master-key-file or AIRLOCK_MASTER_KEY)")]
    WrongKey(VaultError),
    /// The database could not be read.
    #[error("cannot read the vault records: {0}")]
    Store(#[from] airlock_store::StoreError),
    /// Any other vault failure.
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
}

/// Sealed storage of secrets in the console's database.
#[derive(Debug)]
pub struct Vault {
    source: KeySource,
    keyring: RwLock<Keyring>,
    store: Store,
}

impl Vault {
    /// Opens the vault, checking (or, on a new database, creating) the record that proves the key.
    pub async fn open(
        store: Store,
        source: KeySource,
        keyring: Keyring,
    ) -> Result<Vault, VaultOpenError> {
        let vault = Vault {
            source,
            keyring: RwLock::new(keyring),
            store,
        };
        match vault.store.sealed(CHECK_RECORD).await? {
            Some(row) => {
                vault.open_row(&row).map_err(VaultOpenError::WrongKey)?;
            }
            None => {
                let row = vault.seal(CHECK_RECORD, CHECK_TEXT)?;
                vault.store.put_sealed(&row).await?;
            }
        }
        Ok(vault)
    }

    /// Seals `plaintext` as record `id` under the current master key (not yet stored).
    pub fn seal(&self, id: &str, plaintext: &[u8]) -> Result<VaultRow, VaultError> {
        let sealed = airlock_vault::seal(&self.keyring(), id, plaintext)?;
        Ok(row(id, &sealed))
    }

    /// Seals and stores a record.
    pub async fn put(&self, id: &str, plaintext: &[u8]) -> Result<(), crate::ApiError> {
        let row = self.seal(id, plaintext)?;
        self.store.put_sealed(&row).await?;
        Ok(())
    }

    /// Seals and stores a record unless one with its id exists; returns whether it stored.
    pub async fn create(&self, id: &str, plaintext: &[u8]) -> Result<bool, crate::ApiError> {
        let row = self.seal(id, plaintext)?;
        Ok(self.store.insert_sealed(&row).await?)
    }

    /// Reads and opens a stored record; `None` if there is no such record.
    pub async fn get(&self, id: &str) -> Result<Option<Plain>, crate::ApiError> {
        let Some(row) = self.store.sealed(id).await? else {
            return Ok(None);
        };
        Ok(Some(self.open_row(&row)?))
    }

    /// Opens a sealed record, wherever it was stored (a row of `vault_records`, or a sealed
    /// column of another table with the record id it was sealed under).
    pub fn open_row(&self, row: &VaultRow) -> Result<Plain, VaultError> {
        let sealed = Sealed::decode(&row.sealed)?;
        match airlock_vault::open(&self.keyring(), &row.id, &sealed) {
            Err(VaultError::UnknownKey { .. }) if self.reload()? => {
                airlock_vault::open(&self.keyring(), &row.id, &sealed)
            }
            other => other,
        }
    }

    /// Re-reads the key file; true if the keyring changed.
    fn reload(&self) -> Result<bool, VaultError> {
        let KeySource::File(path) = &self.source else {
            return Ok(false);
        };
        let (fresh, _) = airlock_vault::file::load_or_create_key_file(path)?;
        let mut current = self
            .keyring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if fresh.ids() == current.ids() {
            return Ok(false);
        }
        tracing::info!(keys = ?fresh.ids(), "master key file changed; reloaded");
        *current = fresh;
        Ok(true)
    }

    fn keyring(&self) -> Keyring {
        self.keyring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

fn row(id: &str, sealed: &Sealed) -> VaultRow {
    VaultRow {
        id: id.to_owned(),
        key_id: sealed.key_id.clone(),
        sealed: sealed.encode(),
    }
}

/// What a rotation did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RotationReport {
    /// The new current master key id.
    pub new_key_id: String,
    /// Records re-wrapped under it.
    pub rewrapped: usize,
    /// Records already under it.
    pub already_current: usize,
}

/// Re-wraps every record of `store` under the current key of `both`, opening them with any key
/// of it.
///
/// Each record is replaced with a compare-and-swap, so a secret written meanwhile is never lost;
/// it is simply already sealed under whichever key its writer held and is retried.
pub async fn rotate(store: &Store, both: &Keyring) -> Result<RotationReport, VaultOpenError> {
    let new_id = both.current().id().to_owned();
    let mut report = RotationReport {
        new_key_id: new_id.clone(),
        ..RotationReport::default()
    };
    for mut record in store.all_sealed().await? {
        for attempt in 0..3 {
            if record.key_id == new_id {
                report.already_current += 1;
                break;
            }
            let sealed = Sealed::decode(&record.sealed)?;
            let rewrapped = airlock_vault::rewrap(both, &record.id, &sealed)
                .map_err(VaultOpenError::WrongKey)?;
            if store
                .replace_sealed(&record, &row(&record.id, &rewrapped))
                .await?
            {
                report.rewrapped += 1;
                break;
            }
            if attempt == 2 {
                return Err(VaultOpenError::Vault(VaultError::Malformed(format!(
                    "record {} kept changing during rotation; run the rotation again",
                    record.id
                ))));
            }
            match store.sealed(&record.id).await? {
                Some(fresh) => record = fresh,
                None => break,
            }
        }
    }
    Ok(report)
}
