//! Rendering a mail's two parts from the templates in `mailer/templates/`.
//!
//! The templates are compiled into the binary (`include_str!`), so the service does not depend
//! on its working directory. The HTML template is autoescaped (its name ends in `.html.jinja`):
//! the caller's message is text, never markup. Its `<style>` block is then inlined into `style`
//! attributes, because many mail clients drop `<style>`; the inliner never loads stylesheets
//! from the network or the disk.

use css_inline::CSSInliner;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};

use crate::domain::NewMail;

const HTML: &str = "mail.html.jinja";
const PLAIN: &str = "mail.plain.jinja";

/// The compiled templates and the CSS inliner, built once at start-up.
pub struct Renderer {
    /// Both templates, parsed once.
    templates: Environment<'static>,
    /// Moves the HTML template's `<style>` rules into `style` attributes.
    inliner: CSSInliner<'static>,
}

/// The two bodies of a `multipart/alternative` mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub plain: String,
    /// A whole document, CSS inlined.
    pub html: String,
}

/// A template or the CSS inliner failed: a bug in the templates, never the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot render the {template} template")]
    Template {
        template: &'static str,
        #[source]
        source: minijinja::Error,
    },
    #[error("cannot inline the HTML part's CSS")]
    Inline(#[from] css_inline::InlineError),
}

impl Renderer {
    /// Parses the templates; fails only if a template is broken.
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut templates = Environment::new();
        templates.set_undefined_behavior(UndefinedBehavior::Strict);
        templates.set_auto_escape_callback(|name| {
            if name.ends_with(".html.jinja") { AutoEscape::Html } else { AutoEscape::None }
        });
        templates.add_template(HTML, include_str!("../templates/mail.html.jinja"))?;
        templates.add_template(PLAIN, include_str!("../templates/mail.plain.jinja"))?;
        let inliner = CSSInliner::options().load_remote_stylesheets(false).keep_style_tags(false).build();
        Ok(Self { templates, inliner })
    }

    /// Both parts of `mail`.
    pub fn render(&self, mail: &NewMail) -> Result<RenderedMail, RenderError> {
        let paragraphs: Vec<Value> = mail
            .message
            .paragraphs()
            .into_iter()
            .map(|lines| Value::from(lines.into_iter().map(Value::from).collect::<Vec<_>>()))
            .collect();
        let ctx = context! {
            subject => mail.subject.as_ref(),
            message => mail.message.as_ref(),
            paragraphs => paragraphs,
        };
        let plain = self.render_template(PLAIN, &ctx)?;
        let html = self.inliner.inline(&self.render_template(HTML, &ctx)?)?;
        Ok(RenderedMail { plain, html })
    }

    fn render_template(&self, template: &'static str, ctx: &Value) -> Result<String, RenderError> {
        self.templates
            .get_template(template)
            .and_then(|t| t.render(ctx))
            .map_err(|source| RenderError::Template { template, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::mail::MailPayload;

    fn mail(message: &str) -> NewMail {
        let payload = MailPayload {
            from: None,
            to: "you@there.com".parse().unwrap(),
            subject: "Test <email>".parse().unwrap(),
            message: message.parse().unwrap(),
        };
        NewMail::new(payload, &"John Smith <john.smith@example.com>".parse().unwrap())
    }

    fn parts(mail: &NewMail) -> (String, String) {
        let RenderedMail { plain, html } = Renderer::new().unwrap().render(mail).unwrap();
        (plain, html)
    }

    #[test]
    fn the_message_is_escaped_in_html_and_verbatim_in_plain_text() {
        let (plain, html) = parts(&mail("<script>alert('x')</script> & more"));
        assert_eq!(plain.trim_end(), "<script>alert('x')</script> & more");
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; more"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("<title>Test &lt;email&gt;</title>"), "{html}");
    }

    #[test]
    fn the_css_is_inlined_and_the_style_block_removed() {
        let (_, html) = parts(&mail("Hello"));
        assert!(!html.contains("<style"), "{html}");
        assert!(html.contains(r#"<p style="margin: 0 0 16px 0;"#), "{html}");
        assert!(html.contains(r#"class="content" style="max-width: 600px;"#), "{html}");
    }

    #[test]
    fn paragraphs_and_line_breaks_stay_readable() {
        let (plain, html) = parts(&mail("Dear you,\n\nline one\nline two\n\nBye"));
        assert_eq!(plain.trim_end(), "Dear you,\n\nline one\nline two\n\nBye");
        assert_eq!(html.matches("<p ").count(), 3, "{html}");
        assert!(html.contains("line one<br>line two</p>"), "{html}");
    }
}
