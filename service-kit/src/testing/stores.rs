//! Databases of a test's own on the shared Postgres and MongoDB servers, and what the logger
//! stored in one.

use mongodb::bson::Document;

use super::{TEST_PG_URL, block_on_side, mongo_url, pg_admin_url, unique_name};
use crate::wiring;

/// A Postgres database of its own for one test; dropped (with its connections) on drop.
pub struct TestPostgres {
    /// The database's name.
    pub name: String,
    /// A URL that connects to it.
    pub url: String,
    admin_url: String,
}

impl TestPostgres {
    pub async fn create() -> Self {
        let admin_url = pg_admin_url();
        let name = unique_name("test").replace('-', "_");
        let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach Postgres at {admin_url} (run `project/infra.sh up`): {e}"));
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create the test database");
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("{TEST_PG_URL} must end with /<database>"),
        };
        Self { name, url, admin_url }
    }

    /// A plain client connected to the test database, for assertions.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        client
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        block_on_side(async move {
            if let Ok((client, connection)) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await {
                tokio::spawn(connection);
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
            }
        });
    }
}

/// A MongoDB database of its own for one test; dropped on drop.
pub struct TestMongo {
    pub url: String,
    pub name: String,
}

impl TestMongo {
    pub fn new() -> Self {
        Self { url: mongo_url(), name: unique_name("test").replace('-', "_") }
    }

    pub async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(&self.url).await.expect("a MongoDB client")
    }
}

impl Default for TestMongo {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestMongo {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        block_on_side(async move {
            if let Ok(client) = mongodb::Client::with_uri_str(&url).await {
                let _ = client.database(&name).drop().await;
            }
        });
    }
}

impl TestMongo {
    /// The test's database.
    pub async fn database(&self) -> mongodb::Database {
        self.client().await.database(&self.name)
    }

    /// Every entry the logger stored in the test's database.
    pub async fn stored_logs(&self) -> Vec<Document> {
        stored_logs(&self.database().await, Document::new()).await
    }
}

/// The log entries matching `filter` in `database`'s log collection, as MongoDB stores them
/// (in natural order).
pub async fn stored_logs(database: &mongodb::Database, filter: Document) -> Vec<Document> {
    let logs = database.collection::<Document>(wiring::MONGO_COLLECTION);
    let mut cursor = logs.find(filter).await.expect("query the log store");
    let mut found = Vec::new();
    while cursor.advance().await.expect("read the log store") {
        found.push(cursor.deserialize_current().expect("a stored document"));
    }
    found
}
