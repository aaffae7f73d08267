use contract::ValidationError;
use contract::validate::EmailAddress;
use lettre::Address;

/// A contract [`EmailAddress`] as lettre's [`Address`]. The contract's rule includes lettre's
/// (the `email_address` crate's checks of the local part and the domain, or an IP address), so
/// the conversion checks nothing again; the tests hold the two rules together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAddress(Address);

impl MailAddress {
    /// An address from the settings (the wire's come parsed); `field` names it in the error.
    pub fn parse(field: &str, value: &str) -> Result<Self, ValidationError> {
        EmailAddress::parse(value.to_owned()).map(Self::from).map_err(|problem| problem.at(field))
    }

    pub fn into_inner(self) -> Address {
        self.0
    }
}

impl From<EmailAddress> for MailAddress {
    fn from(address: EmailAddress) -> Self {
        let (user, domain) = address.parts();
        // Unchecked by lettre because the contract's rule already is lettre's (see the tests).
        Self(Address::new_dangerous(user, domain))
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
    fn every_address_the_contract_accepts_lettre_accepts_as_the_same_address() {
        let cases = [
            ("a@b.c", "the shortest"),
            ("john.smith@example.com", "dotted"),
            ("first+tag@sub.example.org", "a tag"),
            ("o'hara@example.com", "an apostrophe"),
            ("\"quoted\"@example.com", "a quoted local part"),
            ("grüße@bücher.de", "non-ASCII"),
            ("me@127.0.0.1", "an IPv4 domain"),
            ("me@[127.0.0.1]", "a bracketed IPv4 domain"),
            ("me@[::1]", "a bracketed IPv6 domain"),
            ("x@xn--bcher-kva.de", "punycode"),
        ];
        for (given, why) in cases {
            let address = MailAddress::parse("to", given).unwrap_or_else(|e| panic!("{why}: {e}"));
            let by_lettre: Address = given.parse().unwrap_or_else(|e| panic!("{why}: lettre refuses {given:?}: {e}"));
            assert_eq!(address.into_inner(), by_lettre, "{why}");
        }
    }

    #[test]
    fn what_lettre_refuses_the_contract_refuses_naming_the_field() {
        let too_long = format!("{}@example.com", "x".repeat(300));
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
            (too_long.as_str(), "too long"),
        ];
        for (bad, why) in cases {
            assert_eq!(MailAddress::parse("to", bad).expect_err(why).field, "to", "{why}");
        }
    }
}
