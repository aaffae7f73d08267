//! The test page: rendered once at start-up from the embedded template.

use crate::settings::Settings;

/// The page's HTML with `{{broker_url}}` and `{{mailcatcher_url}}` placeholders.
const TEMPLATE: &str = include_str!("../assets/index.html");

/// The rendered page and the headers it is served with.
#[derive(Debug, Clone)]
pub struct Page {
    /// The HTML, with both URLs escaped into it.
    pub html: String,
    /// Scripts, styles and images only from the page itself; requests only to itself and the
    /// broker. No inline script, so an injected `<script>` could not run even if one slipped in.
    pub content_security_policy: String,
}

impl Page {
    pub fn render(settings: &Settings) -> Self {
        let html = TEMPLATE
            .replace("{{broker_url}}", &escape_html(settings.broker_url.as_str()))
            .replace("{{mailcatcher_url}}", &escape_html(settings.mailcatcher_url.as_str()));
        let content_security_policy = format!(
            "default-src 'self'; connect-src 'self' {broker}; img-src 'self' data:; style-src 'self'; \
             script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            broker = settings.broker_url.origin()
        );
        Self { html, content_security_policy }
    }
}

/// Escapes text for an HTML element or a quoted attribute value.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::PublicUrl;
    use service_kit::HttpSettings;

    fn settings(broker: &str) -> Settings {
        Settings {
            http: HttpSettings::ephemeral(),
            broker_url: PublicUrl::parse(broker).unwrap(),
            mailcatcher_url: PublicUrl::parse("http://localhost:8025").unwrap(),
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let page = Page::render(&settings("http://localhost:8080"));
        assert!(!page.html.contains("{{"), "a placeholder was left in the page");
        assert!(page.html.contains(r#"data-broker-url="http://localhost:8080""#));
        assert!(page.html.contains(r#"href="http://localhost:8025""#));
    }

    #[test]
    fn the_broker_url_cannot_break_out_of_its_attribute() {
        let page = Page::render(&settings(r#"http://localhost:8080/x"><script>alert(1)</script>'"#));
        assert!(!page.html.contains("<script>alert"), "raw markup reached the page");
        assert!(page.html.contains("/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39;"));
    }

    #[test]
    fn the_policy_lets_the_page_reach_the_broker_origin_only() {
        let page = Page::render(&settings("https://api.example.com/broker"));
        assert!(page.content_security_policy.contains("connect-src 'self' https://api.example.com;"));
        assert!(page.content_security_policy.contains("script-src 'self';"));
    }

    #[test]
    fn escaping_covers_the_five_special_characters() {
        assert_eq!(escape_html(r#"a&b<c>d"e'f"#), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
    }
}
