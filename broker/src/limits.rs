//! Rate limits at the gateway, in front of everything `/handle` does.
//!
//! Two limits, both in this process's memory (a broker replica counts for itself):
//! - **Per client**, every `/handle` request: GCRA (`governor`), `RATE_LIMIT_BURST` at once and
//!   `RATE_LIMIT_PER_MINUTE` sustained. Checked before the body is read.
//! - **Failed logins** (`auth`), against password guessing and credential stuffing: per email from
//!   one client, per client over all emails, and per email over all clients. Each has an allowance
//!   of free failures; past it every further failure doubles the wait before the next attempt
//!   (`AUTH_PENALTY_MS`, at most `AUTH_PENALTY_MAX_MS`), and the failures are forgotten after
//!   `AUTH_FAILURES_FORGOTTEN_MS` without one, so the real user is never locked out for good.
//!   Only failures count: a user who signs in again and again (the test page's Test Auth) is never
//!   slowed, and a guesser's attempts are failures until one succeeds. A client that signed in to
//!   an account lately is exempt from that account's per-email limit, which anyone can spend: an
//!   attack spread over many addresses holds back new clients, not the user's own. The per-client limit above
//!   bounds how often anyone makes bcrypt work; the authentication service's admission control
//!   (503) stays behind both.
//!
//! A refusal is a 429 with `Retry-After` (whole seconds, at least 1), the
//! draft-ietf-httpapi-ratelimit-headers-10 fields `RateLimit-Policy` (`"name";q=..;w=..`) and
//! `RateLimit` (`"name";r=0;t=..`), and the envelope naming the limit and when to retry.
//!
//! The client is the TCP peer, or, when the peer is one of `TRUSTED_PROXIES`, the address the
//! proxies put in `X-Forwarded-For` (the right-most one that is not itself a trusted proxy). A
//! client's IPv6 addresses count per /64, the block one host usually gets.
//!
//! Memory is bounded: the GCRA keys are swept with `retain_recent` every [`SWEEP_EVERY`] checks
//! (a key stays only while its client is still paying back a burst), and each failure book, like
//! the record of recent sign-ins, is an LRU of at most `RATE_LIMIT_MAX_KEYS` keys, so an attacker
//! cycling emails evicts old entries instead of growing memory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use lru::LruCache;
use serde::{Deserialize, Deserializer};
use service_kit::settings;

/// The limits and where clients come from; one section of the broker's `Settings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitSettings {
    /// `off` switches every limit off (behind a gateway that limits already); `on` by default.
    #[serde(rename = "RATE_LIMITS", deserialize_with = "service_kit::settings::on_off")]
    pub enabled: bool,
    /// Sustained `/handle` requests per minute from one client; 0 switches this limit off.
    #[serde(rename = "RATE_LIMIT_PER_MINUTE")]
    pub per_minute: u32,
    /// How many of them may come at once.
    #[serde(rename = "RATE_LIMIT_BURST", deserialize_with = "settings::count")]
    pub burst: u32,
    /// Free failed logins for one email from one client; 0 switches this limit off.
    #[serde(rename = "AUTH_FAILURES_PER_EMAIL_AND_CLIENT")]
    pub failures_per_email_and_client: u32,
    /// Free failed logins from one client, over all emails (one client trying many accounts).
    #[serde(rename = "AUTH_FAILURES_PER_CLIENT")]
    pub failures_per_client: u32,
    /// Free failed logins for one email, over all clients (many clients trying one account).
    /// Looser than the others, since anyone can spend it: it slows the real user down too.
    #[serde(rename = "AUTH_FAILURES_PER_EMAIL")]
    pub failures_per_email: u32,
    /// The wait after the allowance is spent; it doubles with each further failure.
    #[serde(rename = "AUTH_PENALTY_MS", deserialize_with = "settings::positive_millis")]
    pub penalty: Duration,
    #[serde(rename = "AUTH_PENALTY_MAX_MS", deserialize_with = "settings::positive_millis")]
    pub penalty_max: Duration,
    /// Failures are forgotten after this long without a new one (and so is any wait longer).
    #[serde(rename = "AUTH_FAILURES_FORGOTTEN_MS", deserialize_with = "settings::positive_millis")]
    pub forgotten_after: Duration,
    /// The most keys each failure book holds (least recently used ones go first).
    #[serde(rename = "RATE_LIMIT_MAX_KEYS", deserialize_with = "settings::count")]
    pub max_keys: usize,
    /// Proxies whose `X-Forwarded-For` is believed: IPs or CIDRs, comma-separated; none by default.
    #[serde(rename = "TRUSTED_PROXIES", deserialize_with = "proxies")]
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for LimitSettings {
    /// Far above what a person clicking the test page does (a click is one request; Test Auth
    /// signs in with the right password), close enough to stop a script.
    fn default() -> Self {
        Self {
            enabled: true,
            per_minute: 600,
            burst: 100,
            failures_per_email_and_client: 5,
            failures_per_client: 20,
            failures_per_email: 50,
            penalty: Duration::from_secs(1),
            penalty_max: Duration::from_secs(15 * 60),
            forgotten_after: Duration::from_secs(60 * 60),
            max_keys: 100_000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl LimitSettings {
    /// No limit at all: for tests that are about something else.
    pub fn off() -> Self {
        Self { enabled: false, ..Self::default() }
    }
}

fn proxies<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    settings::list(deserializer)?
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| serde::de::Error::custom(format!("{item:?} is neither an IP address nor a CIDR")))
        })
        .collect()
}

/// How often (in checks) the per-client limiter forgets the clients that are back to a full
/// burst. Between two sweeps at most this many new keys are added.
pub const SWEEP_EVERY: u64 = 4096;

/// A refusal: which limit, and when the caller may try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub policy: Policy,
    pub retry_after: Duration,
}

/// A limit as `RateLimit-Policy` describes it: `quota` units per `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The policy's name in both headers; also says which limit in the message.
    pub name: &'static str,
    pub quota: u32,
    pub window: Duration,
}

/// Whole seconds, rounded up, at least 1: a client told 0 would retry at once.
pub fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs_f64().ceil().max(1.0) as u64
}

impl Refusal {
    pub fn retry_after_secs(&self) -> u64 {
        whole_seconds(self.retry_after)
    }

    /// `"name";q=<quota>;w=<window seconds>`.
    pub fn policy_header(&self) -> String {
        format!(r#""{}";q={};w={}"#, self.policy.name, self.policy.quota, whole_seconds(self.policy.window))
    }

    /// `"name";r=0;t=<seconds until the next unit>`.
    pub fn state_header(&self) -> String {
        format!(r#""{}";r=0;t={}"#, self.policy.name, self.retry_after_secs())
    }

    /// Adds `Retry-After`, `RateLimit-Policy` and `RateLimit` to a 429.
    pub fn decorate(&self, response: &mut HttpResponse) {
        let headers = response.headers_mut();
        let pairs = [
            (header::RETRY_AFTER, self.retry_after_secs().to_string()),
            (HeaderName::from_static("ratelimit-policy"), self.policy_header()),
            (HeaderName::from_static("ratelimit"), self.state_header()),
        ];
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.policy.name {
            CLIENT_POLICY => "too many requests from your address",
            EMAIL_AND_CLIENT_POLICY => "too many failed logins for this email from your address",
            CLIENT_LOGIN_POLICY => "too many failed logins from your address",
            _ => "too many failed logins for this email",
        };
        write!(f, "{what} ({} limit); retry in {} s", self.policy.name, self.retry_after_secs())
    }
}

impl std::error::Error for Refusal {}

const CLIENT_POLICY: &str = "client";
const EMAIL_AND_CLIENT_POLICY: &str = "login-email-client";
const CLIENT_LOGIN_POLICY: &str = "login-client";
const EMAIL_POLICY: &str = "login-email";

/// The client a request comes from: the peer, or what trusted proxies say it is.
/// `forwarded_for` are the `X-Forwarded-For` values in the order they arrived.
pub fn client_address<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    let Some(peer) = peer.map(|peer| peer.to_canonical()) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    if !is_trusted(&peer) {
        return peer;
    }
    // Each proxy appends the address it got the request from: read from the right, and stop at
    // the first hop that is not one of ours (anything left of it the client could have written).
    let mut client = peer;
    for hop in forwarded_for.flat_map(|value| value.split(',')).rev() {
        match parse_hop(hop.trim()) {
            Some(address) if is_trusted(&address) => client = address,
            Some(address) => return address,
            // A proxy of ours wrote something unreadable: the last hop we could read stands.
            None => return client,
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let address =
        hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|socket| socket.ip()))?;
    Some(address.to_canonical())
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64.
pub fn bucket(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u64::MAX as u128))),
        v4 => v4,
    }
}

/// The wait before the next attempt after `failures` failures, `allowance` of them free: none
/// within the allowance, then `first`, doubled with each further failure, at most `max`.
pub fn penalty(failures: u32, allowance: u32, first: Duration, max: Duration) -> Duration {
    if failures < allowance {
        return Duration::ZERO;
    }
    let doublings = (failures - allowance).min(31);
    first.saturating_mul(1 << doublings).min(max)
}

/// The failures of one key.
#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// The failed logins of one kind of key (email and client, client, email), an LRU.
struct FailureBook<K: std::hash::Hash + Eq> {
    policy: Policy,
    entries: Mutex<LruCache<K, Record>>,
}

/// How the waits grow and end; shared by the three books.
#[derive(Debug, Clone, Copy)]
struct Penalties {
    first: Duration,
    max: Duration,
    forgotten_after: Duration,
}

impl<K: std::hash::Hash + Eq + Clone> FailureBook<K> {
    fn new(name: &'static str, allowance: u32, penalties: Penalties, max_keys: usize) -> Option<Self> {
        let allowance = NonZeroU32::new(allowance)?;
        let capacity = std::num::NonZeroUsize::new(max_keys)?;
        Some(Self {
            policy: Policy { name, quota: allowance.get(), window: penalties.forgotten_after },
            entries: Mutex::new(LruCache::new(capacity)),
        })
    }

    /// Counts an attempt as a failure in advance, unless the key must still wait. Counting
    /// before the answer is known keeps concurrent attempts from all passing one check.
    fn charge(&self, key: &K, now: Instant, penalties: Penalties) -> Result<(), Refusal> {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let record = entries.get_or_insert_mut(key.clone(), || Record { failures: 0, last: now });
        if now.duration_since(record.last) >= penalties.forgotten_after {
            record.failures = 0;
        }
        let wait = penalty(record.failures, self.policy.quota, penalties.first, penalties.max);
        let until = record.last + wait;
        if record.failures > 0 && now < until {
            return Err(Refusal { policy: self.policy.clone(), retry_after: until - now });
        }
        record.failures += 1;
        record.last = now;
        Ok(())
    }

    /// Takes back an advance charge (the attempt succeeded or got no answer).
    fn refund(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(record) = entries.peek_mut(key) {
            record.failures = record.failures.saturating_sub(1);
        }
    }

    fn forget(&self, key: &K) {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

/// The failed-login limits.
struct LoginLimits {
    penalties: Penalties,
    email_and_client: Option<FailureBook<(String, IpAddr)>>,
    client: Option<FailureBook<IpAddr>>,
    email: Option<FailureBook<String>>,
    /// When each (email, client) last signed in: such a client has shown it knows the password,
    /// so the per-email limit (which anyone can run into) does not hold it back.
    signed_in: Mutex<LruCache<(String, IpAddr), Instant>>,
}

impl LoginLimits {
    fn signed_in_lately(&self, pair: &(String, IpAddr), now: Instant) -> bool {
        let mut signed_in = self.signed_in.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        signed_in.get(pair).is_some_and(|at| now.duration_since(*at) < self.penalties.forgotten_after)
    }
}

/// All limits of one broker, built once from [`LimitSettings`].
pub struct Limits {
    trusted_proxies: Vec<IpNet>,
    /// `None` when switched off.
    per_client: Option<(DefaultKeyedRateLimiter<IpAddr>, Policy)>,
    checks: AtomicU64,
    login: LoginLimits,
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Self {
        let on = |allowance: u32| if settings.enabled { allowance } else { 0 };
        let per_client = NonZeroU32::new(on(settings.per_minute)).map(|per_minute| {
            let burst = NonZeroU32::new(settings.burst).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::per_minute(per_minute).allow_burst(burst);
            let policy = Policy { name: CLIENT_POLICY, quota: burst.get(), window: quota.burst_size_replenished_in() };
            (DefaultKeyedRateLimiter::keyed(quota), policy)
        });
        let penalties =
            Penalties { first: settings.penalty, max: settings.penalty_max, forgotten_after: settings.forgotten_after };
        let max_keys = settings.max_keys;
        Self {
            trusted_proxies: settings.trusted_proxies.clone(),
            per_client,
            checks: AtomicU64::new(0),
            login: LoginLimits {
                penalties,
                email_and_client: FailureBook::new(
                    EMAIL_AND_CLIENT_POLICY,
                    on(settings.failures_per_email_and_client),
                    penalties,
                    max_keys,
                ),
                client: FailureBook::new(CLIENT_LOGIN_POLICY, on(settings.failures_per_client), penalties, max_keys),
                email: FailureBook::new(EMAIL_POLICY, on(settings.failures_per_email), penalties, max_keys),
                signed_in: Mutex::new(LruCache::new(
                    std::num::NonZeroUsize::new(max_keys).unwrap_or(std::num::NonZeroUsize::MIN),
                )),
            },
        }
    }

    /// The client `request` comes from (see the module doc).
    pub fn client_of(&self, request: &HttpRequest) -> IpAddr {
        let forwarded = request.headers().get_all("x-forwarded-for").filter_map(|value| value.to_str().ok());
        let forwarded: Vec<&str> = forwarded.collect();
        client_address(request.peer_addr().map(|peer| peer.ip()), forwarded.into_iter(), &self.trusted_proxies)
    }

    /// One `/handle` request from `client`.
    pub fn check_request(&self, client: IpAddr) -> Result<(), Refusal> {
        let Some((limiter, policy)) = &self.per_client else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(&bucket(client)).map_err(|not_until| Refusal {
            policy: policy.clone(),
            retry_after: not_until.wait_time_from(limiter.clock().now()),
        })
    }

    /// Admits one login attempt for `email` from `client`, counted as a failure until
    /// [`LoginAttempt::succeeded`] (or dropping it unsettled) takes that back.
    pub fn admit_login(&self, email: &str, client: IpAddr) -> Result<LoginAttempt<'_>, Refusal> {
        let attempt = LoginAttempt {
            limits: &self.login,
            email: email.trim().to_lowercase(),
            client: bucket(client),
            charged: [false; 3],
            settled: false,
        };
        attempt.charge(Instant::now())
    }
}

/// A login attempt that was let through, charged as a failure in each book until settled.
pub struct LoginAttempt<'a> {
    limits: &'a LoginLimits,
    email: String,
    client: IpAddr,
    /// Which books were charged: email and client, client, email.
    charged: [bool; 3],
    settled: bool,
}

impl LoginAttempt<'_> {
    fn charge(mut self, now: Instant) -> Result<Self, Refusal> {
        let penalties = self.limits.penalties;
        let pair = (self.email.clone(), self.client);
        if let Some(book) = &self.limits.email_and_client {
            book.charge(&pair, now, penalties)?;
            self.charged[0] = true;
        }
        // A refusal below drops `self` unsettled, which refunds the books charged so far.
        if let Some(book) = &self.limits.client {
            book.charge(&self.client, now, penalties)?;
            self.charged[1] = true;
        }
        if let Some(book) = &self.limits.email
            && !self.limits.signed_in_lately(&pair, now)
        {
            book.charge(&self.email, now, penalties)?;
            self.charged[2] = true;
        }
        Ok(self)
    }

    /// The password was wrong: the failure stays counted.
    pub fn failed(mut self) {
        self.settled = true;
    }

    /// The password was right: nothing counts, this client's earlier failures for this email
    /// are forgiven, and the per-email limit no longer holds it back (it knows the password).
    pub fn succeeded(self) {
        let pair = (self.email.clone(), self.client);
        if let Some(book) = &self.limits.email_and_client {
            book.forget(&pair);
        }
        if self.limits.email.is_some() {
            let mut signed_in = self.limits.signed_in.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            signed_in.put(pair, Instant::now());
        }
        // Dropped unsettled: the other two charges are refunded.
    }
}

impl Drop for LoginAttempt<'_> {
    /// Unsettled (succeeded, no answer, the caller gone): the advance charges are taken back.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let (true, Some(book)) = (self.charged[0], &self.limits.email_and_client) {
            book.refund(&(self.email.clone(), self.client));
        }
        if let (true, Some(book)) = (self.charged[1], &self.limits.client) {
            book.refund(&self.client);
        }
        if let (true, Some(book)) = (self.charged[2], &self.limits.email) {
            book.refund(&self.email);
        }
    }
}

#[cfg(test)]
mod tests {
    use service_kit::settings::Env;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_penalty_is_free_within_the_allowance_then_doubles_up_to_the_maximum() {
        let max = Duration::from_secs(10);
        let waits: Vec<u64> = (0..10).map(|failures| penalty(failures, 3, SECOND, max).as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 10, 10, 10]);
        assert_eq!(penalty(u32::MAX, 1, SECOND, max), max, "no overflow");
    }

    fn penalties() -> Penalties {
        Penalties { first: SECOND, max: Duration::from_secs(8), forgotten_after: Duration::from_secs(60) }
    }

    #[test]
    fn a_book_refuses_past_the_allowance_until_the_penalty_passes_and_forgets_after_the_quiet_time() {
        let book = FailureBook::new("login-email", 2, penalties(), 10).unwrap();
        let start = Instant::now();
        book.charge(&"a", start, penalties()).unwrap();
        book.charge(&"a", start, penalties()).unwrap();
        let refused = book.charge(&"a", start, penalties()).unwrap_err();
        assert_eq!(refused.retry_after, SECOND);
        // After the wait one more attempt; its failure doubles the next wait.
        book.charge(&"a", start + SECOND, penalties()).unwrap();
        let refused = book.charge(&"a", start + SECOND, penalties()).unwrap_err();
        assert_eq!(refused.retry_after, 2 * SECOND);
        // Another key is not affected.
        book.charge(&"b", start, penalties()).unwrap();
        // A refunded attempt does not count; forgotten after the quiet time.
        book.refund(&"a");
        book.charge(&"a", start + 2 * SECOND, penalties()).unwrap();
        book.charge(&"a", start + Duration::from_secs(70), penalties()).unwrap();
        book.charge(&"a", start + Duration::from_secs(70), penalties()).unwrap();
    }

    #[test]
    fn a_book_holds_at_most_its_capacity() {
        let book = FailureBook::new("login-email", 5, penalties(), 100).unwrap();
        let now = Instant::now();
        for n in 0..10_000 {
            book.charge(&format!("user{n}@example.com"), now, penalties()).unwrap();
        }
        assert_eq!(book.len(), 100);
    }

    fn login_settings(per_pair: u32, per_client: u32, per_email: u32) -> LimitSettings {
        LimitSettings {
            failures_per_email_and_client: per_pair,
            failures_per_client: per_client,
            failures_per_email: per_email,
            ..LimitSettings::default()
        }
    }

    #[test]
    fn failed_logins_are_limited_per_email_and_client_and_successes_do_not_count() {
        let limits = Limits::new(&login_settings(3, 100, 100));
        let (one, other) = ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap());
        for _ in 0..3 {
            limits.admit_login("Admin@example.com", one).unwrap().failed();
        }
        let refused = limits.admit_login("admin@example.com ", one).err().expect("the fourth is refused");
        assert_eq!(refused.policy.name, "login-email-client");
        // Another client, or another email from this client, is not affected.
        limits.admit_login("admin@example.com", other).unwrap().succeeded();
        limits.admit_login("other@example.com", one).unwrap().failed();
        // Successes never count.
        for _ in 0..10 {
            limits.admit_login("admin@example.com", other).unwrap().succeeded();
        }
    }

    #[test]
    fn one_client_cycling_emails_hits_its_own_limit_and_a_refusal_refunds_the_books_already_charged() {
        let limits = Limits::new(&login_settings(5, 3, 100));
        let client = "198.51.100.7".parse().unwrap();
        for n in 0..3 {
            limits.admit_login(&format!("user{n}@example.com"), client).unwrap().failed();
        }
        let refused = limits.admit_login("user9@example.com", client).err().unwrap();
        assert_eq!(refused.policy.name, "login-client");
        // The refused attempt took nothing from user9's own allowance.
        let pair = limits.login.email_and_client.as_ref().unwrap();
        assert_eq!(pair.entries.lock().unwrap().peek(&("user9@example.com".to_owned(), client)).unwrap().failures, 0);
    }

    #[test]
    fn many_clients_failing_for_one_email_hold_back_new_clients_but_not_one_that_signed_in_before() {
        let limits = Limits::new(&login_settings(5, 100, 2));
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        limits.admit_login("admin@example.com", ip(1)).unwrap().succeeded();
        limits.admit_login("admin@example.com", ip(2)).unwrap().failed();
        limits.admit_login("admin@example.com", ip(3)).unwrap().failed();
        let refused = limits.admit_login("admin@example.com", ip(4)).err().expect("the email's allowance is spent");
        assert_eq!(refused.policy.name, "login-email");
        limits.admit_login("admin@example.com", ip(1)).unwrap().succeeded();
    }

    #[test]
    fn settings_switch_every_limit_off() {
        let limits = Limits::new(&LimitSettings { burst: 1, ..LimitSettings::off() });
        let client = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            limits.check_request(client).unwrap();
            limits.admit_login("a@example.com", client).unwrap().failed();
        }
    }

    #[test]
    fn a_burst_over_the_client_limit_is_refused_with_a_wait_of_one_replenish_interval() {
        let limits = Limits::new(&LimitSettings { per_minute: 60, burst: 2, ..LimitSettings::default() });
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        limits.check_request(client).unwrap();
        limits.check_request(client).unwrap();
        let refused = limits.check_request(client).unwrap_err();
        assert!(refused.retry_after <= SECOND && refused.retry_after > Duration::ZERO, "{refused:?}");
        assert_eq!(refused.policy_header(), r#""client";q=2;w=2"#);
        assert_eq!(refused.state_header(), r#""client";r=0;t=1"#);
        limits.check_request("192.0.2.2".parse().unwrap()).unwrap();
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        for (wait, secs) in [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (90_500, 91)] {
            assert_eq!(whole_seconds(Duration::from_millis(wait)), secs, "{wait} ms");
        }
        let refusal = Refusal {
            policy: Policy { name: "login-email", quota: 50, window: Duration::from_secs(3600) },
            retry_after: Duration::from_millis(2500),
        };
        assert_eq!(refusal.policy_header(), r#""login-email";q=50;w=3600"#);
        assert_eq!(refusal.state_header(), r#""login-email";r=0;t=3"#);
        assert!(refusal.to_string().contains("retry in 3 s"), "{refusal}");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let cases: [(&str, &[&str], &str, &str); 9] = [
            ("198.51.100.1", &["203.0.113.9"], "198.51.100.1", "an untrusted peer's header is ignored"),
            ("127.0.0.1", &[], "127.0.0.1", "a trusted peer without the header"),
            ("127.0.0.1", &["203.0.113.9"], "203.0.113.9", "one trusted proxy"),
            ("10.0.0.2", &["6.6.6.6, 203.0.113.9, 10.0.0.1"], "203.0.113.9", "the right-most untrusted hop"),
            ("10.0.0.2", &["6.6.6.6", "203.0.113.9"], "203.0.113.9", "several header lines"),
            ("10.0.0.2", &["10.0.0.5, 10.0.0.1"], "10.0.0.5", "every hop trusted: the left-most"),
            ("10.0.0.2", &["203.0.113.9:4711"], "203.0.113.9", "an address with a port"),
            ("10.0.0.2", &["6.6.6.6, garbage"], "10.0.0.2", "an unreadable hop: the last one read stands"),
            ("::ffff:127.0.0.1", &["[2001:db8::1]:80"], "2001:db8::1", "mapped IPv4 peer, bracketed IPv6 hop"),
        ];
        for (peer, headers, expected, why) in cases {
            assert_eq!(client_address(Some(ip(peer)), headers.iter().copied(), &trusted), ip(expected), "{why}");
        }
        assert_eq!(client_address(Some(ip("127.0.0.1")), ["203.0.113.9"].into_iter(), &[]), ip("127.0.0.1"));
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), bucket(ip("2001:db8:1:2:bbbb::2")));
        assert_ne!(bucket(ip("2001:db8:1:2::1")), bucket(ip("2001:db8:1:3::1")));
        assert_eq!(bucket(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn settings_are_read_and_bad_ones_named() {
        let defaults: LimitSettings = Env::default().read(0, &[]).unwrap();
        assert!(defaults.enabled && defaults.trusted_proxies.is_empty());
        assert_eq!((defaults.per_minute, defaults.burst, defaults.failures_per_email_and_client), (600, 100, 5));
        let read = Env::from_pairs([("RATE_LIMITS", "off"), ("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7")]);
        let read: LimitSettings = read.read(0, &[]).unwrap();
        assert!(!read.enabled);
        assert_eq!(read.trusted_proxies, ["10.0.0.0/8".parse::<IpNet>().unwrap(), "192.0.2.7/32".parse().unwrap()]);
        for (key, value) in [
            ("TRUSTED_PROXIES", "proxy.local"),
            ("RATE_LIMITS", "sometimes"),
            ("RATE_LIMIT_BURST", "0"),
            ("AUTH_PENALTY_MS", "0"),
        ] {
            let error = Env::from_pairs([(key, value)]).read::<LimitSettings>(0, &[]).unwrap_err();
            assert_eq!(error.key, key, "{value:?}");
        }
    }
}
