use std::collections::HashSet;

use contract::log::{Level, LogEntry, LogError, MAX_BATCH, MAX_RECENT};
use contract::validate::{MAX_LOG_DATA_CHARS, MAX_LOG_NAME_CHARS};
use futures::future::join_all;
use service_kit::logger_client::RpcError;
use uuid::Uuid;

use crate::helpers::{entry, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_entry_written_over_rpc_reads_back_by_id_with_both_timestamps() {
    let app = spawn_app().await;
    let written = LogEntry { level: Level::Error, sub: Some("7".into()), ..entry("payment", "card declined") };

    let id = app.rpc.write_log(written.clone()).await.unwrap();
    let stored = app.rpc.get(id.clone()).await.unwrap();

    assert_eq!(stored.id, id);
    assert_eq!((stored.name.as_str(), stored.data.as_str(), stored.level), ("payment", "card declined", Level::Error));
    assert_eq!(stored.event_id, None);
    assert_eq!(stored.sub.as_deref(), Some("7"), "the token subject it was written with");
    assert_eq!(stored.created_at, stored.updated_at);
    assert!((chrono::Utc::now() - stored.created_at).num_seconds().abs() < 60, "{}", stored.created_at);
    let docs = app.stored().await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].get_str("level").unwrap(), "ERROR");
    assert_eq!(docs[0].get_str("sub").unwrap(), "7");
    assert!(docs[0].get_datetime("created_at").is_ok() && docs[0].get_datetime("updated_at").is_ok());
}

#[tokio::test]
async fn write_many_returns_one_id_per_entry_in_order() {
    let app = spawn_app().await;
    let entries: Vec<LogEntry> = (0..5).map(|i| entry(&format!("bulk-{i}"), "d")).collect();

    let ids = app.rpc.write_many(entries).await.unwrap();

    assert_eq!(ids.len(), 5);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(app.rpc.get(id.clone()).await.unwrap().name, format!("bulk-{i}"));
    }
    assert_eq!(app.stored_count().await, 5);
}

#[tokio::test]
async fn recent_lists_newest_first_and_pages_with_before() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.rpc.write_log(entry(&format!("e{i}"), "")).await.unwrap());
    }
    let names = |page: Vec<contract::log::StoredEntry>| page.into_iter().map(|e| e.name).collect::<Vec<_>>();

    assert_eq!(names(app.rpc.recent(2, None, None).await.unwrap()), ["e4", "e3"]);
    assert_eq!(names(app.rpc.recent(2, Some(ids[3].clone()), None).await.unwrap()), ["e2", "e1"]);
    assert_eq!(names(app.rpc.recent(2, Some(ids[1].clone()), None).await.unwrap()), ["e0"]);
    assert!(app.rpc.recent(2, Some(ids[0].clone()), None).await.unwrap().is_empty());
}

#[tokio::test]
async fn recent_caps_the_limit_at_the_maximum() {
    let app = spawn_app().await;
    let count = MAX_RECENT as usize + 5;
    app.rpc.write_many((0..count).map(|i| entry(&format!("e{i}"), "")).collect()).await.unwrap();

    let page = app.rpc.recent(10_000, None, None).await.unwrap();

    assert_eq!(page.len(), MAX_RECENT as usize);
    assert_eq!(page[0].name, format!("e{}", count - 1), "newest first");
}

#[tokio::test]
async fn two_hundred_concurrent_callers_get_two_hundred_distinct_ids_and_documents() {
    let app = spawn_app().await;

    let results = join_all((0..200).map(|i| {
        let rpc = app.rpc.clone();
        async move { rpc.write_log(entry(&format!("c{i}"), "x")).await }
    }))
    .await;

    let ids: HashSet<String> = results.into_iter().map(|r| r.expect("every write succeeds")).collect();
    assert_eq!(ids.len(), 200, "every caller gets its own id");
    let stored: HashSet<String> = app.stored().await.iter().map(|d| d.get_object_id("_id").unwrap().to_hex()).collect();
    assert_eq!(stored, ids, "exactly the 200 documents the callers were told about");
    let (inserts, entries) = (app.logger.write_stats.inserts(), app.logger.write_stats.entries());
    println!("200 concurrent writes took {inserts} insert_many calls");
    assert_eq!(entries, 200);
    assert!(inserts < 100, "the writes were grouped: {inserts} inserts for 200 entries");
}

#[tokio::test]
async fn writes_without_grouping_give_the_same_results() {
    let app = spawn_app_with(|s| s.batch.max_entries = 1).await;
    let event = Uuid::new_v4();
    let with_event = LogEntry { event_id: Some(event), ..entry("event", "d") };

    let results = join_all((0..50).map(|i| {
        let rpc = app.rpc.clone();
        async move { rpc.write_log(entry(&format!("c{i}"), "x")).await }
    }))
    .await;
    let first = app.rpc.write_log(with_event.clone()).await.unwrap();
    let again = app.rpc.write_log(with_event).await.unwrap();
    let over_http = app.post_log(&serde_json::json!({"name": "http", "data": ""})).await;

    assert_eq!(results.into_iter().map(Result::unwrap).collect::<HashSet<_>>().len(), 50);
    assert_eq!(first, again);
    assert_eq!(over_http.status, 202);
    assert_eq!(app.stored_count().await, 52);
    assert_eq!(app.logger.write_stats.inserts(), 53, "one insert per write, the duplicate included");
}

#[tokio::test]
async fn an_event_id_is_stored_once_and_a_redelivery_gets_the_same_id() {
    let app = spawn_app().await;
    let event = Uuid::new_v4();
    let delivery = LogEntry { event_id: Some(event), ..entry("event", "first") };

    let first = app.rpc.write_log(delivery.clone()).await.unwrap();
    let redelivered = app.rpc.write_log(LogEntry { data: "second".into(), ..delivery }).await.unwrap();

    assert_eq!(first, redelivered);
    let docs = app.stored().await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].get_str("event_id").unwrap(), event.hyphenated().to_string());
    assert_eq!(docs[0].get_str("data").unwrap(), "first", "the first delivery wins");
    assert_eq!(app.rpc.get(first).await.unwrap().event_id, Some(event));
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_share_one_entry_without_failing_the_others() {
    let app = spawn_app().await;
    let event = Uuid::new_v4();

    // Same event 20 times and 20 plain entries, all at once: they land in the same groups.
    let duplicates = (0..20).map(|_| {
        let rpc = app.rpc.clone();
        async move { rpc.write_log(LogEntry { event_id: Some(event), ..entry("event", "d") }).await }
    });
    let others = (0..20).map(|i| {
        let rpc = app.rpc.clone();
        async move { rpc.write_log(entry(&format!("other-{i}"), "d")).await }
    });
    let (duplicates, others) = futures::join!(join_all(duplicates), join_all(others));

    let duplicate_ids: HashSet<String> = duplicates.into_iter().map(|r| r.expect("a duplicate is no error")).collect();
    assert_eq!(duplicate_ids.len(), 1, "every delivery gets the one entry's id");
    assert!(others.iter().all(Result::is_ok), "{others:?}");
    assert_eq!(app.stored_count().await, 21);
}

#[tokio::test]
async fn write_many_with_a_known_event_id_returns_the_existing_id_in_its_place() {
    let app = spawn_app().await;
    let event = Uuid::new_v4();
    let known = app.rpc.write_log(LogEntry { event_id: Some(event), ..entry("event", "d") }).await.unwrap();

    let ids = app
        .rpc
        .write_many(vec![entry("a", ""), LogEntry { event_id: Some(event), ..entry("event", "d") }, entry("b", "")])
        .await
        .unwrap();

    assert_eq!(ids.len(), 3);
    assert_eq!(ids[1], known);
    assert_eq!(app.stored_count().await, 3);
}

#[tokio::test]
async fn invalid_requests_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let too_many: Vec<LogEntry> = (0..=MAX_BATCH).map(|_| entry("n", "")).collect();
    let cases: Vec<(&str, Result<(), RpcError>, &str)> = vec![
        ("empty name", app.rpc.write_log(entry("", "d")).await.map(drop), "`name`: must not be empty"),
        ("blank name", app.rpc.write_log(entry("  ", "d")).await.map(drop), "`name`: must not be empty"),
        (
            "name over the limit",
            app.rpc.write_log(entry(&"n".repeat(MAX_LOG_NAME_CHARS + 1), "d")).await.map(drop),
            "`name`: must be at most 256 characters",
        ),
        (
            "data over the limit",
            app.rpc.write_log(entry("n", &"d".repeat(MAX_LOG_DATA_CHARS + 1))).await.map(drop),
            "`data`: must be at most 65536 characters",
        ),
        (
            "one bad entry in a batch",
            app.rpc.write_many(vec![entry("ok", ""), entry("", "")]).await.map(drop),
            "entries[1]",
        ),
        ("a batch over the limit", app.rpc.write_many(too_many).await.map(drop), "at most 1000 entries"),
        ("limit zero", app.rpc.recent(0, None, None).await.map(drop), "`limit`: must be at least 1"),
        ("malformed before", app.rpc.recent(5, Some("nope".into()), None).await.map(drop), "24 hex digits"),
        ("malformed id", app.rpc.get("12345".into()).await.map(drop), "24 hex digits"),
    ];
    for (why, result, expected) in cases {
        match result {
            Err(RpcError::Logger(LogError::Invalid(message))) => {
                assert!(message.contains(expected), "{why}: {message:?} should contain {expected:?}")
            }
            other => panic!("{why}: expected an invalid-entry error, got {other:?}"),
        }
    }
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn an_unknown_id_is_not_found() {
    let app = spawn_app().await;
    let error = app.rpc.get("65f1c0ffee0000000000abcd".into()).await.unwrap_err();
    assert!(matches!(error, RpcError::Logger(LogError::NotFound(_))), "{error:?}");
    // A page after an entry that does not exist: not found either, rather than an empty page.
    let error = app.rpc.recent(5, Some("65f1c0ffee0000000000abcd".into()), None).await.unwrap_err();
    assert!(matches!(&error, RpcError::Logger(LogError::NotFound(id)) if id.contains("`before`")), "{error:?}");
}

#[tokio::test]
async fn ping_succeeds_when_mongodb_answers() {
    let app = spawn_app().await;
    app.rpc.ping().await.unwrap();
}
