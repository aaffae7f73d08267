use contract::mail;

/// The message body for the templates: the contract's [`mail::MessageText`], line endings
/// made `\n`. It is text, never markup: the HTML template escapes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl From<mail::MessageText> for MessageText {
    fn from(text: mail::MessageText) -> Self {
        Self(text.into_inner().replace("\r\n", "\n"))
    }
}

impl MessageText {
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

    fn text(message: &str) -> MessageText {
        MessageText::from(message.parse::<mail::MessageText>().unwrap())
    }

    #[test]
    fn line_endings_become_line_feeds() {
        assert_eq!(text("a\r\nb\nc").as_ref(), "a\nb\nc");
    }

    #[test]
    fn blank_lines_separate_paragraphs() {
        let text = text("Hello,\r\n\r\nline one\nline two  \n\n\n\nBye");
        assert_eq!(text.paragraphs(), vec![vec!["Hello,"], vec!["line one", "line two"], vec!["Bye"]]);
    }
}
