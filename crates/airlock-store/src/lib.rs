//! Airlock's database: SQLite embedded by default, PostgreSQL when several console nodes share
//! one store.
//!
//! Both speak the same schema through `sqlx`'s `Any` driver; migrations are embedded in the
//! binary and applied at start. The store keeps only sealed secrets (see `airlock-vault`): it
//! never sees a plaintext key, password or token.

#![warn(missing_docs)]

mod access_keys;
mod authz;
mod cluster;
mod commands;
mod credentials;
mod gateway;
mod limits;
mod maintenance_windows;
mod records;
mod rolls;
mod snapshot_policies;
mod trend;

pub use access_keys::*;
pub use authz::*;
pub use cluster::*;
pub use commands::*;
pub use credentials::*;
pub use gateway::*;
pub use limits::*;
pub use maintenance_windows::*;
pub use records::*;
pub use rolls::*;
pub use snapshot_policies::*;
pub use trend::*;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::path::Path;

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one the store understands.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// The SQLite file could not be created with private permissions.
    #[error("cannot create the database file {path}: {source}")]
    CreateFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A migration failed.
    #[error("cannot apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A row that should be unique already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// A stored value could not be decoded.
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt {
        /// Which value.
        what: String,
        /// Why it cannot be read.
        reason: String,
    },
}

/// Which database engine backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A connection pool and the queries the console needs.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Where the store was opened, for connections outside the pool (PostgreSQL listeners).
    url: String,
}

impl std::fmt::Debug for Store {
    // Not the URL: it may hold the database password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    ///
    /// `sqlite://PATH` creates the file with mode 0600; `postgres://…` connects to a server.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, connect_url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::UnsupportedUrl(url.to_owned()));
            }
            create_private_file(Path::new(path))?;
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Foreign keys are off by default in SQLite; the schema relies on them.
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&connect_url)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        // On PostgreSQL the migrator holds an advisory lock while it applies: of several
        // consoles starting at once on an empty database, one applies and the others wait.
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            backend,
            url: connect_url,
        })
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::CreateFile {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(err(e)),
    }
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    Ok(row.try_get(column)?)
}

/// A column holding one of the API's states, as its stored word.
pub(crate) fn get_state<T>(row: &AnyRow, column: &str) -> Result<T, StoreError>
where
    T: std::str::FromStr<Err = airlock_api::state::UnknownState>,
{
    let word: String = get(row, column)?;
    word.parse()
        .map_err(|e: airlock_api::state::UnknownState| StoreError::Corrupt {
            what: column.to_owned(),
            reason: e.to_string(),
        })
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
