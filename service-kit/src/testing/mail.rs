//! The SMTP catcher's HTTP API (maildev): the mails a test sent, found by their recipient.

use std::time::Duration;

use serde::Deserialize;

use super::{eventually, mailcatcher_url, unique_name};

/// An address in a caught mail.
#[derive(Debug, Clone, Deserialize)]
pub struct CaughtAddress {
    pub address: String,
    #[serde(default)]
    pub name: String,
}

/// A mail as the catcher (maildev) shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct CaughtMail {
    pub id: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub from: Vec<CaughtAddress>,
    #[serde(default)]
    pub to: Vec<CaughtAddress>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    /// Header names in lower case.
    #[serde(default)]
    pub headers: serde_json::Value,
}

/// The SMTP catcher's HTTP API. Tests use a unique recipient each, so they never need to
/// clear the shared mailbox.
#[derive(Debug, Clone)]
pub struct MailCatcher {
    pub base_url: String,
    http: reqwest::Client,
}

impl MailCatcher {
    pub fn new() -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
        Self { base_url: mailcatcher_url(), http }
    }

    /// A recipient address no other test uses.
    pub fn unique_address() -> String {
        format!("{}@example.com", unique_name("rcpt"))
    }

    /// Every mail caught so far whose recipients include `to` (exact address, as sent).
    /// The catcher filters on its side, so a long-lived catcher full of mail stays fast.
    pub async fn mails_to(&self, to: &str) -> Vec<CaughtMail> {
        let url = format!("{}/email", self.base_url);
        let response = self
            .http
            .get(&url)
            .query(&[("to.address", to)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot reach {url}: {e}"));
        let mails: Vec<CaughtMail> = response.json().await.expect("the catcher answers a JSON list");
        mails.into_iter().filter(|m| m.to.iter().any(|a| a.address.eq_ignore_ascii_case(to))).collect()
    }

    /// Waits until a mail to `to` has arrived and returns it.
    pub async fn wait_for_mail_to(&self, to: &str, timeout: Duration) -> CaughtMail {
        eventually(&format!("a mail to {to}"), timeout, || async { self.mails_to(to).await.into_iter().next() }).await
    }
}

impl Default for MailCatcher {
    fn default() -> Self {
        Self::new()
    }
}
