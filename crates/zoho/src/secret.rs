//! Credentials as types: a client secret, a refresh token or an access token can be moved around
//! and stored, but printing one (Debug, Display, a log field, an error message) shows a redaction.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// What every secret prints instead of itself.
pub const REDACTED: &str = "[REDACTED]";

macro_rules! secret_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The raw value, for the one place that must send it to Zoho or Redis.
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }

            /// A short, stable, one-way fingerprint (hex of SHA-256's first 12 bytes): lets Redis
            /// and logs refer to "this token" without holding the token.
            pub fn fingerprint(&self) -> String {
                fingerprint(self.expose())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), REDACTED)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }

        impl From<SecretString> for $name {
            fn from(value: SecretString) -> Self {
                Self(value)
            }
        }

        impl PartialEq for $name {
            // Equality on secrets is needed for compare-and-delete; it does not leak the value.
            fn eq(&self, other: &Self) -> bool {
                self.expose() == other.expose()
            }
        }

        impl Eq for $name {}
    };
}

secret_newtype!(
    /// The Client Secret of a creator's Zoho Self Client.
    ClientSecret
);
secret_newtype!(
    /// A Zoho refresh token: never expires until revoked, so it is the integration's key.
    RefreshToken
);
secret_newtype!(
    /// A Zoho access token (`Zoho-oauthtoken …`), valid for about an hour.
    AccessToken
);

/// The Client ID of a Self Client: not a secret (it appears in URLs of the API Console).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl ClientId {
    /// Wraps a client id, trimming the whitespace a paste tends to bring.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().trim().to_owned())
    }

    /// The id as Zoho knows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hex of the first 12 bytes of SHA-256 of `value`: 96 bits is plenty to tell tokens apart and
/// says nothing usable about the token.
pub(crate) fn fingerprint(value: &str) -> String {
    Sha256::digest(value.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_a_redaction() {
        let secret = ClientSecret::new("s3cr3t-value");
        let refresh = RefreshToken::new("1000.refresh.value");
        let access = AccessToken::new("1000.access.value");
        assert_eq!(format!("{secret:?}"), "ClientSecret([REDACTED])");
        assert_eq!(
            format!("{refresh:?} {refresh}"),
            "RefreshToken([REDACTED]) [REDACTED]"
        );
        assert_eq!(
            format!("{access:?} {access}"),
            "AccessToken([REDACTED]) [REDACTED]"
        );
        assert_eq!(
            format!("{:?}", Some(&access)),
            "Some(AccessToken([REDACTED]))"
        );
        assert_eq!(access.expose(), "1000.access.value");
    }

    #[test]
    fn fingerprints_are_stable_short_and_distinct() {
        let a = RefreshToken::new("1000.a");
        assert_eq!(a.fingerprint(), RefreshToken::new("1000.a").fingerprint());
        assert_ne!(a.fingerprint(), RefreshToken::new("1000.b").fingerprint());
        assert_eq!(a.fingerprint().len(), 24);
        assert!(!a.fingerprint().contains("1000"));
    }

    #[test]
    fn client_ids_are_trimmed() {
        assert_eq!(ClientId::new("  1000.ABC \n").as_str(), "1000.ABC");
    }
}
