use contract::validate::{self, ValidationError};
use lettre::Address;

/// An address lettre accepts and the contract's checks pass (no display name, no line break,
/// nothing that could smuggle a second recipient or a header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAddress(Address);

impl MailAddress {
    /// `field` names the JSON field in the error.
    pub fn parse(field: &str, value: &str) -> Result<Self, ValidationError> {
        validate::email(field, value)?;
        value
            .trim()
            .parse::<Address>()
            .map(Self)
            .map_err(|e| ValidationError::new(field, format!("must be an e-mail address like name@example.com ({e})")))
    }

    pub fn into_inner(self) -> Address {
        self.0
    }
}

impl AsRef<str> for MailAddress {
    fn as_ref(&self) -> &str {
        self.0.as_ref()
    }
}

impl std::fmt::Display for MailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_are_accepted_and_trimmed() {
        for good in ["a@b.c", "john.smith@example.com", " me@there.com ", "first+tag@sub.example.org"] {
            let parsed = MailAddress::parse("to", good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
            assert_eq!(parsed.as_ref(), good.trim());
        }
    }

    #[test]
    fn anything_else_is_refused_naming_the_field() {
        let cases = [
            ("", "empty"),
            ("plain", "no @"),
            ("a@b.c\r\nBcc: x@y.z", "header injection"),
            ("a@b.c\nBcc: x@y.z", "bare LF"),
            ("Someone <a@b.c>", "a display name"),
            ("a@b.c, x@y.z", "two recipients"),
            ("a@b..c", "empty domain label"),
            ("a@-b.c", "domain label starting with a hyphen"),
            ("a\"b@c.d", "a quote in the local part"),
            (&format!("{}@example.com", "x".repeat(300)), "too long"),
        ];
        for (bad, why) in cases {
            let error = MailAddress::parse("to", bad).expect_err(why);
            assert_eq!(error.field, "to", "{why}");
        }
    }
}
