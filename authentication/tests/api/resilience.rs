use std::net::SocketAddr;
use std::time::{Duration, Instant};

use authentication::DatabaseSettings;
use authentication::store::{StoreError, UserStore};
use futures::future::join_all;
use service_kit::testing::proxy::{Mode, Proxy};
use service_kit::testing::{TestPostgres, closed_port, eventually};

use crate::helpers::{SEED_EMAIL, SEED_PASSWORD, TEST_COST, TestApp, settings, spawn_app, spawn_with};

/// What "quickly" means for a failing database: well under a client's patience.
const QUICKLY: Duration = Duration::from_secs(3);

#[tokio::test]
async fn the_service_recovers_by_itself_after_its_database_sessions_are_terminated() {
    let app = spawn_app().await;
    // Several logins at once leave several connections in the pool.
    let logins = join_all((0..4).map(|_| app.authenticate(SEED_EMAIL, SEED_PASSWORD))).await;
    assert!(logins.iter().all(|r| r.status == 202));

    let admin = app.db.client().await;
    let terminated = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&app.db.name],
        )
        .await
        .unwrap();
    assert!(!terminated.is_empty(), "the service had open sessions");

    // No restart, no waiting: the very next requests get fresh connections.
    let logins = join_all((0..4).map(|_| app.authenticate(SEED_EMAIL, SEED_PASSWORD))).await;
    for login in logins {
        let (status, body) = login.status_and_envelope();
        assert_eq!(status, 202, "{body:?}");
    }
    assert_eq!(app.get("/ready").await.status, 200);
}

/// The service reaching its database through a proxy the test controls.
async fn spawn_behind_proxy() -> (TestApp, Proxy) {
    let db = TestPostgres::create().await;
    let config: tokio_postgres::Config = db.url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the test database must be reached over TCP, not {other:?}"),
    };
    let upstream: SocketAddr = tokio::net::lookup_host((host.as_str(), config.get_ports()[0]))
        .await
        .unwrap()
        .next()
        .expect("an address for the Postgres host");
    let proxy = Proxy::forward(upstream).await;
    let password = config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
    let dsn = format!(
        "host=127.0.0.1 port={} user={} password='{}' dbname={}",
        proxy.addr.port(),
        config.get_user().unwrap_or("postgres"),
        password,
        db.name
    );
    (spawn_with(settings(&dsn, TEST_COST), db).await, proxy)
}

/// Asks `/ready` and `/authenticate` at once; both must fail with a 503 quickly.
async fn assert_unavailable_quickly(app: &TestApp, why: &str) {
    let started = Instant::now();
    let (ready, login) = tokio::join!(app.get("/ready"), app.authenticate(SEED_EMAIL, SEED_PASSWORD));
    let elapsed = started.elapsed();
    let (ready_status, ready_body) = ready.status_and_envelope();
    assert_eq!(ready_status, 503, "{why}: /ready {ready_body:?}");
    assert_ne!(ready_body.data.unwrap()["postgres"], "ok", "{why}");
    assert_eq!(login.header("retry-after"), Some("1"), "{why}");
    let (login_status, login_body) = login.status_and_envelope();
    assert_eq!(login_status, 503, "{why}: /authenticate {login_body:?}");
    assert_eq!(login_body.message, "the user database is unavailable, try again shortly", "{why}");
    assert!(elapsed < QUICKLY, "{why}: answered after {elapsed:?}");
}

async fn wait_for_recovery(app: &TestApp) {
    eventually("a login once Postgres is back", Duration::from_secs(5), || async {
        (app.authenticate(SEED_EMAIL, SEED_PASSWORD).await.status == 202).then_some(())
    })
    .await;
    assert_eq!(app.get("/ready").await.status, 200);
}

#[tokio::test]
async fn with_postgres_refusing_connections_requests_get_a_503_quickly_and_recover_when_it_returns() {
    let (app, proxy) = spawn_behind_proxy().await;
    assert_eq!(app.authenticate(SEED_EMAIL, SEED_PASSWORD).await.status, 202);

    proxy.set(Mode::Down);
    assert_unavailable_quickly(&app, "connections refused").await;

    proxy.set(Mode::Up);
    wait_for_recovery(&app).await;
}

#[tokio::test]
async fn with_postgres_hanging_requests_get_a_503_quickly_and_recover_when_it_answers_again() {
    let (app, proxy) = spawn_behind_proxy().await;
    assert_eq!(app.authenticate(SEED_EMAIL, SEED_PASSWORD).await.status, 202);

    proxy.set(Mode::Hung);
    assert_unavailable_quickly(&app, "server hanging").await;

    proxy.set(Mode::Up);
    wait_for_recovery(&app).await;
}

#[tokio::test]
async fn a_pool_pointed_at_a_closed_port_reports_unavailable_quickly() {
    let port = closed_port();
    let store = UserStore::new(&DatabaseSettings::new(format!("postgres://postgres@127.0.0.1:{port}/users"))).unwrap();

    let started = Instant::now();
    let ping = store.ping().await;
    let lookup = store.find_by_email("a@b.c").await;

    assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");
    assert!(matches!(lookup, Err(StoreError::Unavailable(_))), "{:?}", lookup.err());
    assert!(started.elapsed() < QUICKLY, "{:?}", started.elapsed());
}

#[tokio::test]
async fn settings_that_can_never_work_stop_the_start_at_once() {
    let cases = [
        (settings("postgres://[not a host", TEST_COST), "DSN"),
        (settings("postgres://postgres@127.0.0.1:1/users", 3), "BCRYPT_COST"),
    ];
    for (settings, named) in cases {
        let started = Instant::now();
        let error = authentication::Application::build(settings).await.err().expect("the start fails");
        assert!(format!("{error:#}").contains(named), "{error:#}");
        assert!(started.elapsed() < QUICKLY, "{named}: gave up after {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_body_short_of_its_content_length_gets_a_408_envelope_within_the_body_timeout() {
    let db = TestPostgres::create().await;
    let mut settings = settings(&db.url, TEST_COST);
    settings.http.body_timeout = Duration::from_millis(300);
    let app = spawn_with(settings, db).await;
    service_kit::testing::assert_short_body_refused(&app.address, "/authenticate", Duration::from_millis(300)).await;
}
