//! Email addresses as audience keys: normalised, and usable for mailing.
//!
//! The key of a member within an audience is its normalised email, so that the same person typed
//! as `Ada@Example.com ` in one record and `ada@example.com` in another (or a Lead converted into
//! a Contact) stays one member. Normalising is trimming and lower-casing; nothing else (no
//! removal of dots or `+tags`: providers differ on whether those matter, and a wrong merge of
//! two people is worse than a duplicate).
//!
//! Only ASCII addresses are accepted. The database checks `email = lower(btrim(email))` with
//! PostgreSQL's own `lower()`, whose idea of lower case for non-ASCII letters depends on the
//! server's collation; an address Rust lower-cased differently would fail the whole batch. The
//! emulator's and real CRMs' data is overwhelmingly ASCII; an internationalised address is
//! skipped as `invalid_email` and counted, not lost silently.

use std::fmt;

/// The longest address SMTP can carry (RFC 5321 path limit minus the angle brackets).
const MAX_LEN: usize = 254;
/// The longest local part (before the `@`) RFC 5321 allows.
const MAX_LOCAL_LEN: usize = 64;
/// The longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// A trimmed, lower-cased, plausibly deliverable email address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

/// Why a text is not a usable address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing there: empty or only whitespace.
    #[error("the email is empty")]
    Empty,
    /// Something there, but not an address one could send to.
    #[error("the email is not a usable address")]
    Invalid,
}

impl Email {
    /// Trims, lower-cases and validates `text`: one `@`, a local part of the characters an
    /// unquoted address may hold, a domain of at least two dot-separated DNS labels, no spaces,
    /// at most 254 characters.
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if !trimmed.is_ascii() || trimmed.len() > MAX_LEN {
            return Err(EmailError::Invalid);
        }
        let email = trimmed.to_ascii_lowercase();
        let (local, domain) = email.split_once('@').ok_or(EmailError::Invalid)?;
        if valid_local(local) && valid_domain(domain) {
            Ok(Self(email))
        } else {
            Err(EmailError::Invalid)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An unquoted (dot-atom) local part: RFC 5322 `atext` separated by single dots. Quoted local
/// parts are legal but practically never real, and they may hold spaces and `@`.
fn valid_local(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= MAX_LOCAL_LEN
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// A domain name of at least two labels, each 1 to 63 letters, digits or inner hyphens, with a
/// top-level label that is not all digits (so that `1.2.3.4` is not taken for a domain). Address
/// literals (`user@[192.0.2.1]`) are refused: nobody subscribes with one.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let well_formed = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    well_formed
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(text: &str) -> String {
        Email::parse(text)
            .map(Email::into_string)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            ok("  Ada.Lovelace@Example.COM "),
            "ada.lovelace@example.com"
        );
        assert_eq!(ok("\tBOB@MAIL.EXAMPLE\n"), "bob@mail.example");
        assert_eq!(
            ok("o'brien+pledge@backers.test"),
            "o'brien+pledge@backers.test"
        );
        assert_eq!(ok("x@a-b.xn--p1ai"), "x@a-b.xn--p1ai");
    }

    #[test]
    fn blank_is_empty_not_invalid() {
        assert_eq!(Email::parse(""), Err(EmailError::Empty));
        assert_eq!(Email::parse("   \t"), Err(EmailError::Empty));
    }

    #[test]
    fn what_people_type_wrong_is_invalid() {
        // The emulator's malformed samples, and more.
        for text in [
            "bob@",
            "not-an-email",
            "@example.com",
            "jane.doe@@example.com",
            "first last@example.com",
            "mary@example",
            "joe.example.com",
            "n/a",
            "-",
            "a@b@example.com",
            ".ada@example.com",
            "ada.@example.com",
            "ada..l@example.com",
            "ada@example..com",
            "ada@.example.com",
            "ada@example.com.",
            "ada@-example.com",
            "ada@example-.com",
            "ada@exa_mple.com",
            "ada@1.2.3.4",
            "ada@[192.0.2.1]",
            "\"ada\"@example.com",
            "ada(comment)@example.com",
            "müller@example.com",
            "ada@müller.de",
            "ada\u{0}@example.com",
            "ada@exam\nple.com",
        ] {
            assert_eq!(Email::parse(text), Err(EmailError::Invalid), "{text:?}");
        }
    }

    #[test]
    fn lengths_are_bounded() {
        let local = "a".repeat(64);
        assert!(Email::parse(&format!("{local}@example.com")).is_ok());
        assert_eq!(
            Email::parse(&format!("{local}a@example.com")),
            Err(EmailError::Invalid)
        );
        let label = "b".repeat(63);
        assert!(Email::parse(&format!("a@{label}.com")).is_ok());
        assert_eq!(
            Email::parse(&format!("a@{label}b.com")),
            Err(EmailError::Invalid)
        );
        let long_domain = format!("{label}.{label}.{label}.{}.com", "c".repeat(60));
        assert_eq!(
            Email::parse(&format!("a@{long_domain}")),
            Err(EmailError::Invalid)
        );
    }

    proptest! {
        #[test]
        fn a_parsed_address_is_what_the_database_accepts(text in "\\PC{0,80}") {
            if let Ok(email) = Email::parse(&text) {
                let s = email.as_str();
                prop_assert!(!s.is_empty() && s.len() <= MAX_LEN);
                prop_assert_eq!(s, s.trim());
                prop_assert_eq!(s.to_string(), s.to_lowercase());
                prop_assert!(!s.contains(char::is_whitespace) && !s.contains('\0'));
                prop_assert_eq!(s.matches('@').count(), 1);
                // Parsing is idempotent: a normalised key normalises to itself.
                prop_assert_eq!(Email::parse(s).ok(), Some(email.clone()));
            }
        }

        #[test]
        fn case_and_padding_never_split_a_member(
            local in "[a-z0-9]{1,20}", domain in "[a-z]{1,20}", tld in "[a-z]{2,6}", pad in " {0,3}"
        ) {
            let canonical = format!("{local}@{domain}.{tld}");
            let sloppy = format!("{pad}{}{pad}", canonical.to_uppercase());
            prop_assert_eq!(Email::parse(&sloppy).ok().map(Email::into_string), Some(canonical));
        }
    }
}
