use contract::validate::{self, ValidationError};

/// A subject that fits one header line: not empty, no CR/LF or other control characters
/// (header injection), at most [`validate::MAX_SUBJECT_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        validate::bounded("subject", value, validate::MAX_SUBJECT_CHARS * 4)?;
        validate::single_line("subject", value)?;
        if value.chars().count() > validate::MAX_SUBJECT_CHARS {
            return Err(ValidationError::new(
                "subject",
                format!("must be at most {} characters", validate::MAX_SUBJECT_CHARS),
            ));
        }
        Ok(Self(value.trim().to_owned()))
    }
}

impl AsRef<str> for Subject {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_line_subject_is_accepted() {
        assert_eq!(Subject::parse(" Test email ").unwrap().as_ref(), "Test email");
        assert!(Subject::parse("Grüße ✓").is_ok());
        assert!(Subject::parse(&"é".repeat(validate::MAX_SUBJECT_CHARS)).is_ok());
    }

    #[test]
    fn header_injection_and_bad_lengths_are_refused() {
        let cases = [
            ("", "empty"),
            ("   ", "blank"),
            ("Hi\r\nBcc: x@y.z", "CRLF"),
            ("Hi\nBcc: x@y.z", "LF"),
            ("Hi\rBcc: x@y.z", "CR"),
            ("Hi\u{0}there", "NUL"),
            (&"s".repeat(validate::MAX_SUBJECT_CHARS + 1), "too long"),
        ];
        for (bad, why) in cases {
            assert_eq!(Subject::parse(bad).expect_err(why).field, "subject", "{why}");
        }
    }
}
