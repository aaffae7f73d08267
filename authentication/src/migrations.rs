//! Schema migrations, run at start-up by every replica.
//!
//! All of them run in one transaction that first takes a transaction-scoped advisory lock, so
//! replicas that start together apply them one after the other: the first one applies what is
//! missing, the others then find every version recorded and do nothing. A failure rolls the
//! whole transaction back, and the lock goes with it. The SQL itself is idempotent too
//! (`IF NOT EXISTS`, `ON CONFLICT DO NOTHING`), so a database created by the Go original,
//! which has the table but no record of versions, is taken over as it is.

use tokio_postgres::Client;

/// The advisory lock that serialises migrations ("authmigr" in ASCII). Advisory locks are
/// per database, so services on other databases never wait for it.
const LOCK_KEY: i64 = 0x6175_7468_6d69_6772;

const CREATE_VERSIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// One step of the schema's history; versions only ever grow.
struct Migration {
    version: i32,
    name: &'static str,
    sql: Sql,
}

enum Sql {
    /// Statements without parameters.
    Batch(&'static str),
    /// The seed user's insert; its one parameter is the password hash.
    SeedAdmin(&'static str),
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "create users",
        sql: Sql::Batch(include_str!("../migrations/0001_create_users.sql")),
    },
    Migration {
        version: 2,
        name: "seed admin user",
        sql: Sql::SeedAdmin(include_str!("../migrations/0002_seed_admin.sql")),
    },
];

/// The address of the demo user that the seed migration creates.
pub const SEED_EMAIL: &str = "admin@example.com";
/// Its password, as in the Go original's demo.
pub const SEED_PASSWORD: &str = "verysecret";

/// Applies the migrations `client`'s database does not have yet; returns how many it applied.
/// `admin_password_hash` is the bcrypt hash of [`SEED_PASSWORD`].
pub async fn run(client: &mut Client, admin_password_hash: &str) -> Result<usize, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await?;
    transaction.batch_execute(CREATE_VERSIONS).await?;
    let applied: Vec<i32> =
        transaction.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|row| row.get(0)).collect();
    let mut count = 0;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        match migration.sql {
            Sql::Batch(sql) => transaction.batch_execute(sql).await?,
            Sql::SeedAdmin(sql) => {
                transaction.execute(sql, &[&admin_password_hash]).await?;
            }
        }
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await?;
        tracing::info!(version = migration.version, name = migration.name, "migration applied");
        count += 1;
    }
    transaction.commit().await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_unique_and_increasing() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|pair| pair[0] < pair[1]), "{versions:?}");
    }
}
