//! Events in the Go original's format, accepted beside ours so that this listener can replace
//! the original's while the original's broker still publishes.
//!
//! The original's broker publishes `{"name", "data"}` (and nothing else) to `logs_topic` with
//! routing key `log.<LEVEL>`, content type `text/plain`, no message id, no timestamp, transient.
//! An event read from such a message gets:
//! - its level from the routing key (`log.WARNING` → WARNING); a key that names no level
//!   (`log.DEBUG`) cannot be stored as anything true and is dead-lettered;
//! - its id by [`event_id`], from the AMQP `message_id` property when the publisher set one;
//! - its `created_at` from the AMQP `timestamp` property, or else the time it arrived.
//!
//! The body decides the format, not the content type: the original sends `text/plain`, other
//! publishers send none, ours `application/json`, and none of them is wrong about the body. A
//! body with any of our own fields (`id`, `level`, `created_at`) claims our format and is held to
//! it, so a half-written event of ours is still dead-lettered rather than guessed at; an object
//! with `name` and `data` and none of them is the original's. Other fields are ignored, as the
//! original's `json.Unmarshal` ignores them.
//!
//! **Events named `auth` are stored like any other.** The original's listener drops them (its
//! `case "auth":` is an empty placeholder for an authentication step it never wrote) after
//! auto-acking, so they are lost without a trace. That is a stub, not a rule anyone relies on:
//! nothing of the original's publishes `auth` events by itself (its logins are logged as
//! `authentication`), so the only ones are those a caller sent on purpose through the `event`
//! action, and the safe side of a lost-or-kept choice is kept: a stored event can be ignored, a
//! dropped one cannot be recovered.

use chrono::{DateTime, Utc};
use contract::event::{LogEvent, level_of_routing_key};
use lapin::BasicProperties;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

/// The namespace of ids derived from message ids that are not UUIDs (a UUID v5 namespace of
/// this system's own; changing it would let a redelivery across versions be stored twice).
pub const MESSAGE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c0f_2b53_9a4e_4d0e_8f1b_7d3c_2a91_e5b4);

/// What a delivery carries besides its body, as the event decoding needs it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub routing_key: &'a str,
    /// The AMQP `message_id` property, if set.
    pub message_id: Option<&'a str>,
    /// The AMQP `timestamp` property (seconds since the epoch), if set.
    pub timestamp: Option<u64>,
    /// When the listener received it.
    pub arrived: DateTime<Utc>,
}

impl<'a> Origin<'a> {
    /// The origin of a delivery with `properties`, received now.
    pub fn of(routing_key: &'a str, properties: &'a BasicProperties) -> Self {
        Self {
            routing_key,
            message_id: properties.message_id().as_ref().map(|id| id.as_str()),
            timestamp: *properties.timestamp(),
            arrived: Utc::now(),
        }
    }
}

/// The original's body: `name` and `data`, and whether any field of ours is there too.
#[derive(Deserialize)]
struct OriginalBody {
    name: String,
    data: String,
    #[serde(default, deserialize_with = "present")]
    id: bool,
    #[serde(default, deserialize_with = "present")]
    level: bool,
    #[serde(default, deserialize_with = "present")]
    created_at: bool,
}

/// True for a field that is there, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// The event in a body of the original's format, or `None` when the body is not one (then it
/// is ours, well-formed or not). `Some(Err)` names why an event of that format cannot be stored.
pub fn parse(body: &[u8], origin: &Origin<'_>) -> Option<Result<LogEvent, String>> {
    // An object only: serde would also fill the struct from an array, by position.
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let body: OriginalBody = serde_json::from_slice(body).ok()?;
    if body.id || body.level || body.created_at {
        return None;
    }
    Some(into_event(body, origin))
}

fn into_event(body: OriginalBody, origin: &Origin<'_>) -> Result<LogEvent, String> {
    let level = level_of_routing_key(origin.routing_key).ok_or_else(|| {
        let key = contract::validate::quote(origin.routing_key);
        format!("an event in the Go original's format whose routing key {key} names no level")
    })?;
    let created_at = origin
        .timestamp
        .and_then(|seconds| DateTime::from_timestamp(i64::try_from(seconds).ok()?, 0))
        .unwrap_or(origin.arrived);
    // The Go original's tokenless publishers: no subject.
    let event =
        LogEvent { id: event_id(origin.message_id), name: body.name, data: body.data, level, created_at, sub: None };
    event.validate().map_err(|e| format!("invalid log event: {e}"))?;
    Ok(event)
}

/// The id of an event in the original's format; the logger stores an id at most once.
///
/// - A `message_id` that is a UUID is the id: every delivery of that message, a redelivery
///   included, is stored once. (Ours publish with `message_id` = the event id.)
/// - Any other non-blank `message_id` gives a UUID v5 of it, the same in every replica and
///   every version: stored once too. A publisher that gives two different events the same
///   message id gets one of them stored; that is what a message id means.
/// - No `message_id` (the original's broker never sets one): a fresh id per delivery, so a
///   redelivery (a lost ack, a listener killed between the write and the ack) may be stored
///   twice. That cannot be avoided soundly: AMQP gives a message no identity of its own that
///   survives redelivery (delivery tags are per channel and change), and an id derived from the
///   content would merge genuinely separate events: the original's test page sends the very same
///   `{"name":"event","data":"Some kind of data"}` on every click, and its `timestamp` property,
///   when set at all, has one-second resolution. A rare duplicate is the lesser harm than
///   silently lost events; a publisher that wants exactly-once sets `message_id`.
pub fn event_id(message_id: Option<&str>) -> Uuid {
    match message_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => Uuid::parse_str(id).unwrap_or_else(|_| Uuid::new_v5(&MESSAGE_ID_NAMESPACE, id.as_bytes())),
        None => Uuid::new_v4(),
    }
}

#[cfg(test)]
mod tests {
    use contract::log::Level;

    use super::*;

    fn origin(routing_key: &str) -> Origin<'_> {
        Origin { routing_key, message_id: None, timestamp: None, arrived: Utc::now() }
    }

    #[test]
    fn the_originals_event_reads_with_the_level_of_its_routing_key() {
        let fixture = contract::go_original::event();
        for (key, level) in [("log.INFO", Level::Info), ("log.WARNING", Level::Warning), ("log.ERROR", Level::Error)] {
            let event = parse(fixture.body.as_bytes(), &origin(key)).expect("the original's format").unwrap();
            assert_eq!((event.name.as_str(), event.data.as_str(), event.level), ("event", "Some kind of data", level));
        }
    }

    #[test]
    fn created_at_comes_from_the_timestamp_property_or_the_arrival() {
        let arrived = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let body = br#"{"name":"n","data":"d"}"#;
        let stamped = Origin { timestamp: Some(1_650_000_000), arrived, ..origin("log.INFO") };
        assert_eq!(parse(body, &stamped).unwrap().unwrap().created_at.timestamp(), 1_650_000_000);
        let unstamped = Origin { arrived, ..origin("log.INFO") };
        assert_eq!(parse(body, &unstamped).unwrap().unwrap().created_at, arrived);
    }

    #[test]
    fn only_name_and_data_without_any_field_of_ours_is_the_originals_format() {
        let cases: [(&[u8], &str); 6] = [
            (br#"{"id":"67e55044-10b1-426f-9247-bb680e5fe0c8","name":"n","data":"d"}"#, "an id: ours"),
            (br#"{"name":"n","data":"d","level":"INFO","created_at":"2024-05-01T12:00:00Z"}"#, "ours without its id"),
            (br#"{"name":"n","data":"d","id":null}"#, "a null id is still an id"),
            (br#"{"name":"n"}"#, "no data"),
            (br#"not json"#, "not JSON"),
            (br#"["n","d"]"#, "not an object"),
        ];
        for (body, why) in cases {
            assert!(parse(body, &origin("log.INFO")).is_none(), "{why}");
        }
        let extra = parse(br#"{"name":"n","data":"d","trace":"x"}"#, &origin("log.INFO"));
        assert!(matches!(extra, Some(Ok(_))), "other fields are ignored, as Go ignores them");
    }

    #[test]
    fn an_event_of_the_originals_format_that_cannot_be_stored_says_why() {
        let cases = [
            (r#"{"name":"n","data":"d"}"#, "log.DEBUG", "names no level"),
            (r#"{"name":"n","data":"d"}"#, "audit", "names no level"),
            (r#"{"name":"","data":"d"}"#, "log.INFO", "invalid log event"),
        ];
        for (body, key, expected) in cases {
            let reason = parse(body.as_bytes(), &origin(key)).expect("the original's format").unwrap_err();
            assert!(reason.contains(expected), "{body} {key}: {reason}");
        }
    }

    #[test]
    fn an_event_named_auth_is_kept() {
        let event = parse(br#"{"name":"auth","data":"d"}"#, &origin("log.INFO")).unwrap().unwrap();
        assert_eq!(event.name, "auth");
    }

    #[test]
    fn ids_follow_the_message_id_and_are_fresh_without_one() {
        let uuid = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(event_id(Some(uuid)).to_string(), uuid);
        assert_eq!(event_id(Some("order-17")), event_id(Some(" order-17 ")), "derived, stable");
        assert_ne!(event_id(Some("order-17")), event_id(Some("order-18")));
        assert_eq!(event_id(Some("order-17")).get_version_num(), 5, "never equal to a random (v4) id");
        assert_ne!(event_id(None), event_id(None), "no message id: a fresh id per delivery");
        assert_ne!(event_id(Some("  ")), event_id(Some("  ")), "a blank message id is none");
    }
}
