//! The frontend's settings: where it listens and the two URLs the page links to.

use std::fmt;

use serde::Deserialize;
use service_kit::settings::{Env, HttpSettings, SettingsError};
use service_kit::wiring;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub http: HttpSettings,
    /// Where the page's script sends its requests (`BROKER_URL`, as the browser reaches the
    /// broker); also the only origin besides the page's own that the Content-Security-Policy
    /// lets it connect to.
    #[serde(rename = "BROKER_URL")]
    pub broker_url: PublicUrl,
    /// Where the "mail catcher" link points (`MAILCATCHER_URL`, the SMTP catcher's web UI).
    #[serde(rename = "MAILCATCHER_URL")]
    pub mailcatcher_url: PublicUrl,
}

impl Default for Settings {
    fn default() -> Self {
        let public = |url| PublicUrl::parse(url).expect("the wiring's public URLs are valid");
        Self {
            http: HttpSettings::on_port(wiring::FRONTEND_PORT),
            broker_url: public(wiring::BROKER_PUBLIC_URL),
            mailcatcher_url: public(wiring::MAILCATCHER_PUBLIC_URL),
        }
    }
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        env.read(wiring::FRONTEND_PORT, &[])
    }
}

/// An absolute `http(s)://host[:port][/path]` URL without a trailing slash, as a browser uses it.
///
/// The origin part is restricted to characters that are safe inside a Content-Security-Policy
/// header; the path may hold anything printable, since the page escapes it where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(value: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = value.trim().split_once("://") else {
            return Err("must be an absolute URL such as http://localhost:8080".into());
        };
        let rest = rest.trim_end_matches('/');
        if !matches!(scheme, "http" | "https") {
            return Err(format!("scheme must be http or https, not {scheme:?}"));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err("has no host".into());
        }
        if !authority.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')) {
            return Err(format!("host {authority:?} may only contain letters, digits, '.', '-', ':' and brackets"));
        }
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        Ok(Self(format!("{scheme}://{rest}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]`: what a Content-Security-Policy source names.
    pub fn origin(&self) -> &str {
        let after_scheme = self.0.find("://").map_or(0, |i| i + 3);
        let end = self.0[after_scheme..].find(['/', '?', '#']).map_or(self.0.len(), |i| after_scheme + i);
        &self.0[..end]
    }
}

impl TryFrom<String> for PublicUrl {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_at_the_local_stack() {
        let settings = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(settings.http.port, 8081);
        assert_eq!(settings.broker_url.as_str(), "http://localhost:8080");
        assert_eq!(settings.mailcatcher_url.as_str(), "http://localhost:8025");
    }

    #[test]
    fn urls_lose_their_trailing_slash_and_keep_their_path() {
        let url = PublicUrl::parse(" https://example.com:8443/api/broker/ ").unwrap();
        assert_eq!(url.as_str(), "https://example.com:8443/api/broker");
        assert_eq!(url.origin(), "https://example.com:8443");
        assert_eq!(PublicUrl::parse("http://[::1]:8080").unwrap().origin(), "http://[::1]:8080");
        assert_eq!(PublicUrl::parse("http://localhost:8080?x=1").unwrap().origin(), "http://localhost:8080");
    }

    #[test]
    fn a_path_may_hold_characters_that_the_page_must_escape() {
        let url = PublicUrl::parse(r#"http://localhost:8080/a"<b>&'c"#).unwrap();
        assert_eq!(url.origin(), "http://localhost:8080");
    }

    #[test]
    fn unusable_urls_are_refused_with_a_reason() {
        let cases = [
            ("localhost:8080", "absolute URL", "no scheme"),
            ("ftp://localhost", "scheme must be http or https", "another scheme"),
            ("http://", "has no host", "no host"),
            ("http:///path", "has no host", "empty host"),
            ("http://evil.com;script-src *", "may only contain", "CSP injection through the host"),
            ("http://user@host", "may only contain", "credentials in the URL"),
            ("http://localhost/a b", "spaces", "a space in the path"),
            ("http://localhost/a\nb", "control", "a newline in the path"),
        ];
        for (value, expected, why) in cases {
            let reason = PublicUrl::parse(value).unwrap_err();
            assert!(reason.contains(expected), "{why}: {value:?} gave {reason:?}, expected {expected:?}");
        }
    }

    #[test]
    fn a_bad_broker_url_is_a_settings_error_that_names_the_variable() {
        let env = Env::from_pairs([("BROKER_URL", "localhost:8080")]);
        let error = Settings::from_env(&env).unwrap_err();
        assert_eq!(error.key, "BROKER_URL");
        assert!(
            error.to_string().contains("BROKER_URL=\"localhost:8080\" is invalid: must be an absolute URL"),
            "{error}"
        );
    }
}
