use contract::validate::{self, ValidationError};

/// The message body as the caller wrote it: not blank, at most [`validate::MAX_MESSAGE_BYTES`].
/// It is text, never markup: the HTML template escapes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(value: String) -> Result<Self, ValidationError> {
        validate::bounded("message", &value, validate::MAX_MESSAGE_BYTES)?;
        Ok(Self(value.replace("\r\n", "\n")))
    }

    /// Paragraphs (separated by blank lines), each a list of lines, for the HTML template.
    pub fn paragraphs(&self) -> Vec<Vec<&str>> {
        let mut paragraphs = Vec::new();
        let mut current = Vec::new();
        for line in self.0.lines() {
            if line.trim().is_empty() {
                if !current.is_empty() {
                    paragraphs.push(std::mem::take(&mut current));
                }
            } else {
                current.push(line.trim_end());
            }
        }
        if !current.is_empty() {
            paragraphs.push(current);
        }
        paragraphs
    }
}

impl AsRef<str> for MessageText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_oversized_messages_are_refused() {
        for (bad, why) in [
            (String::new(), "empty"),
            (" \n\t".to_owned(), "blank"),
            ("m".repeat(validate::MAX_MESSAGE_BYTES + 1), "too big"),
        ] {
            assert_eq!(MessageText::parse(bad).expect_err(why).field, "message", "{why}");
        }
        assert!(MessageText::parse("m".repeat(validate::MAX_MESSAGE_BYTES)).is_ok());
    }

    #[test]
    fn blank_lines_separate_paragraphs() {
        let text = MessageText::parse("Hello,\r\n\r\nline one\nline two  \n\n\n\nBye".to_owned()).unwrap();
        assert_eq!(text.paragraphs(), vec![vec!["Hello,"], vec!["line one", "line two"], vec!["Bye"]]);
    }
}
