//! `LOG_RETENTION`: a TTL index on `created_at` that the store enforces, made to match the
//! setting at every start.

use std::time::Duration;

use contract::log::LogError;
use futures::TryStreamExt;
use logger::store::{COLLECTION, RETENTION_INDEX};
use logger::testing::TestLogger;
use mongodb::IndexModel;
use service_kit::logger_client::{LoggerRpc, RpcError};
use service_kit::testing::{TestMongo, eventually};

use crate::helpers::{OwnMongo, RPC_TIMEOUT, entry, spawn_app_with};

/// The store's indexes by name, and the TTL of each.
async fn indexes(database: &mongodb::Database) -> Vec<(String, Option<Duration>)> {
    let listed = database.collection::<mongodb::bson::Document>(COLLECTION).list_indexes().await.expect("list indexes");
    let listed: Vec<IndexModel> = listed.try_collect().await.expect("read the indexes");
    listed
        .into_iter()
        .filter_map(|index| index.options)
        .map(|options| (options.name.unwrap_or_default(), options.expire_after))
        .collect()
}

/// The retention index's TTL, or `None` when there is no such index.
async fn retention_index(database: &mongodb::Database) -> Option<Option<Duration>> {
    indexes(database).await.into_iter().find(|(name, _)| name == RETENTION_INDEX).map(|(_, ttl)| ttl)
}

#[tokio::test]
async fn an_entry_older_than_the_retention_disappears_within_the_ttl_monitor_period() {
    // SecantusDB (like mongod) runs its TTL monitor every 60 s; this one every second.
    let own = OwnMongo::start_with_ttl_sweep(Duration::from_secs(1)).await;
    let app = spawn_app_with(|s| {
        s.mongo.url = own.url().into();
        s.mongo.retention = Some(Duration::from_secs(1));
    })
    .await;
    let id = app.rpc.write_log(entry("short-lived", "")).await.expect("stored");
    app.rpc.get(id.clone()).await.expect("there at first");

    // Older than 1 s at the first sweep after that: gone within a few sweeps.
    eventually("the entry expires", Duration::from_secs(15), || async {
        match app.rpc.get(id.clone()).await {
            Err(RpcError::Logger(LogError::NotFound(_))) => Some(()),
            Ok(_) => None,
            Err(error) => panic!("the store should answer: {error:?}"),
        }
    })
    .await;
    let database = mongodb::Client::with_uri_str(own.url()).await.unwrap().database(&app.logger.mongo.name);
    assert_eq!(retention_index(&database).await, Some(Some(Duration::from_secs(1))));
    app.logger.stop().await;
}

#[tokio::test]
async fn a_changed_retention_retunes_the_index_and_off_drops_it() {
    let mut mongo = TestMongo::new();
    let cases = [
        (Some(Duration::from_secs(30 * 86_400)), "the default: created"),
        (Some(Duration::from_secs(3_600)), "shorter: retuned in place, the start does not fail"),
        (Some(Duration::from_secs(3_600)), "unchanged"),
        (None, "off: dropped"),
        (None, "off again: nothing to drop"),
        (Some(Duration::from_secs(7_200)), "on again: created"),
    ];
    for (retention, why) in cases {
        let logger = TestLogger::spawn_with(mongo, |s| s.mongo.retention = retention).await;
        let rpc = LoggerRpc::new(logger.rpc_addr.clone(), RPC_TIMEOUT);
        rpc.write_log(entry("n", why)).await.unwrap_or_else(|error| panic!("{why}: writes work: {error:?}"));
        let database = logger.mongo.database().await;
        assert_eq!(retention_index(&database).await, retention.map(Some), "{why}");
        let names: Vec<String> = indexes(&database).await.into_iter().map(|(name, _)| name).collect();
        for kept in ["created_at", "event_id"] {
            assert!(names.iter().any(|name| name == kept), "{why}: the {kept} index stays: {names:?}");
        }
        mongo = logger.stop().await;
    }
    assert_eq!(mongo.stored_logs().await.len(), cases.len(), "every entry is younger than any retention");
}
