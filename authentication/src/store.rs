//! The user table, reached through a `deadpool-postgres` pool with prepared statements.
//!
//! Every operation is bounded by `query_timeout`, and every failure to reach Postgres becomes
//! [`StoreError::Unavailable`] (a 503). The pool checks an idle connection with a round trip
//! before handing it out and replaces it when the check fails, so connections lost to a
//! Postgres restart or `pg_terminate_backend` are replaced at the next request, without a
//! restart of the service.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use contract::auth::User;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use service_kit::ExposeSecret;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use crate::settings::DatabaseSettings;

const FIND_BY_EMAIL: &str = "SELECT id, email, first_name, last_name, user_active, created_at, updated_at, password \
     FROM users WHERE lower(email) = $1";
const INSERT_USER: &str = "INSERT INTO users (email, first_name, last_name, password, user_active) \
     VALUES ($1, $2, $3, $4, $5) \
     RETURNING id, email, first_name, last_name, user_active, created_at, updated_at";

/// The pool of connections to the user database; cheap to clone.
#[derive(Clone)]
pub struct UserStore {
    /// Connections, created on demand and checked before reuse.
    pool: Pool,
    /// Upper bound of one operation, connection included.
    query_timeout: Duration,
}

/// A user with the hash a login checks against; the hash never leaves the service.
pub struct StoredUser {
    pub user: User,
    pub password_hash: String,
}

/// A user to insert; the password is already hashed.
pub struct UserRecord<'a> {
    /// Trimmed and lower-cased.
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub password_hash: &'a str,
    pub active: bool,
}

#[derive(thiserror::Error)]
pub enum StoreError {
    /// Postgres cannot be reached, refused the connection, or did not answer in time.
    #[error("the user database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The e-mail address belongs to another user already.
    #[error("a user with this e-mail address already exists")]
    Duplicate,
    /// Postgres answered with an error that retrying will not fix.
    #[error("the user database refused the query")]
    Query(#[source] tokio_postgres::Error),
}

impl std::fmt::Debug for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        service_kit::http::error_chain_fmt(self, f)
    }
}

impl From<PoolError> for StoreError {
    fn from(error: PoolError) -> Self {
        StoreError::Unavailable(anyhow::Error::new(error).context("no connection to Postgres"))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        if is_unavailable(&error) {
            StoreError::Unavailable(anyhow::Error::new(error))
        } else if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::Duplicate
        } else {
            StoreError::Query(error)
        }
    }
}

/// A failure of the connection rather than of the statement: closed, broken, or the server
/// shutting down or terminating sessions (SQLSTATE classes 08 and 57P).
fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    let io_failure = std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>());
    let class = error.code().map(SqlState::code).unwrap_or_default();
    error.is_closed() || io_failure || class.starts_with("08") || class.starts_with("57P")
}

impl UserStore {
    /// Builds the pool; connects lazily, so this succeeds while Postgres is down.
    pub fn new(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let mut pg_config: tokio_postgres::Config =
            settings.dsn.expose_secret().parse().context("DSN is not a valid Postgres URL")?;
        pg_config.connect_timeout(settings.connect_timeout);
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("authentication");
        }
        let manager =
            Manager::from_config(pg_config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Verified });
        let pool = Pool::builder(manager)
            .max_size(settings.pool_max_size)
            .wait_timeout(Some(settings.wait_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.recycle_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .context("cannot build the Postgres pool")?;
        Ok(Self { pool, query_timeout: settings.query_timeout })
    }

    /// Applies the schema migrations (see [`crate::migrations`]).
    pub async fn migrate(&self, admin_password_hash: &str) -> Result<usize, StoreError> {
        // Migrations may wait for another replica's lock: a longer bound than one query.
        self.bounded(self.query_timeout * 5, async {
            let mut client = self.pool.get().await?;
            Ok(crate::migrations::run(&mut client, admin_password_hash).await?)
        })
        .await
    }

    /// `SELECT 1` through the pool: what `/ready` asks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(self.query_timeout, async {
            let client = self.pool.get().await?;
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    /// The user with this address, compared case-insensitively; `email` is already lower-case.
    #[tracing::instrument(name = "find user by email", skip(self))]
    pub async fn find_by_email(&self, email: &str) -> Result<Option<StoredUser>, StoreError> {
        let attempt = || async {
            let client = self.pool.get().await?;
            let statement = client.prepare_cached(FIND_BY_EMAIL).await?;
            let row = client.query_opt(&statement, &[&email]).await?;
            row.map(|row| stored_user(&row)).transpose()
        };
        // A connection can die between its check and its use; a read is safe to try again once,
        // within the same time bound.
        self.bounded(self.query_timeout, async {
            match attempt().await {
                Err(StoreError::Unavailable(error)) => {
                    tracing::warn!(error = %format!("{error:#}"), "database connection failed, trying once more");
                    attempt().await
                }
                outcome => outcome,
            }
        })
        .await
    }

    /// Inserts a user; [`StoreError::Duplicate`] when the address is taken.
    #[tracing::instrument(name = "insert user", skip_all, fields(email = record.email))]
    pub async fn insert(&self, record: &UserRecord<'_>) -> Result<User, StoreError> {
        self.bounded(self.query_timeout, async {
            let client = self.pool.get().await?;
            let statement = client.prepare_cached(INSERT_USER).await?;
            let active = i32::from(record.active);
            let row = client
                .query_one(
                    &statement,
                    &[&record.email, &record.first_name, &record.last_name, &record.password_hash, &active],
                )
                .await?;
            user(&row)
        })
        .await
    }

    async fn bounded<T>(
        &self,
        limit: Duration,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(limit, operation).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!("Postgres did not answer within {limit:?}"))),
        }
    }
}

/// Reading a row fails only when the table does not have the expected shape.
fn user(row: &Row) -> Result<User, StoreError> {
    user_columns(row).map_err(StoreError::Query)
}

fn user_columns(row: &Row) -> Result<User, tokio_postgres::Error> {
    let active: i32 = row.try_get("user_active")?;
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    let updated_at: DateTime<Utc> = row.try_get("updated_at")?;
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        active: active != 0,
        created_at,
        updated_at,
    })
}

fn stored_user(row: &Row) -> Result<StoredUser, StoreError> {
    Ok(StoredUser { user: user(row)?, password_hash: row.try_get("password").map_err(StoreError::Query)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsn_that_does_not_parse_is_refused_at_start() {
        let error = UserStore::new(&DatabaseSettings::new("postgres://[not a host")).err().expect("an error");
        assert!(error.to_string().contains("DSN"), "{error}");
    }

    #[tokio::test]
    async fn building_the_pool_does_not_connect() {
        // Port 1 is closed: only using the pool would fail.
        assert!(UserStore::new(&DatabaseSettings::new("postgres://postgres@127.0.0.1:1/users")).is_ok());
    }
}
