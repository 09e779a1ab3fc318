//! Typed ids, so that a run id can never be passed where an integration id belongs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUID v7), so that rows inserted together sit together.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }
    };
}

uuid_id!(
    /// A creator's connection of one Zoho org to pledgesync.
    IntegrationId
);
uuid_id!(
    /// One sync run of an integration, from Sync Now or the schedule until it ends.
    RunId
);
uuid_id!(
    /// A PledgeBox audience that members are synced into.
    AudienceId
);

/// A PledgeBox account (the owner of audiences and integrations), as the PledgeBox app names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

/// Why a string is not an account id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("account_id must be 1 to 128 characters of letters, digits, '-', '_' or '.'")]
pub struct InvalidAccountId;

impl AccountId {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidAccountId> {
        let value = value.into();
        let valid = !value.is_empty()
            && value.len() <= 128
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(Self(value))
        } else {
            Err(InvalidAccountId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = InvalidAccountId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<AccountId> for String {
    fn from(value: AccountId) -> Self {
        value.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Zoho record id: a string of digits (Zoho sends ~19 digits as a JSON string).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ZohoRecordId(String);

/// Why a string is not a Zoho record id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a Zoho record id is 1 to 32 decimal digits")]
pub struct InvalidZohoRecordId;

impl ZohoRecordId {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidZohoRecordId> {
        let value = value.into();
        if !value.is_empty() && value.len() <= 32 && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(value))
        } else {
            Err(InvalidZohoRecordId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ZohoRecordId {
    type Error = InvalidZohoRecordId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<ZohoRecordId> for String {
    fn from(value: ZohoRecordId) -> Self {
        value.0
    }
}

impl fmt::Display for ZohoRecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Zoho CRM modules pledgesync reads. Serialized with Zoho's API names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Module {
    Contacts,
    Leads,
}

/// Why a string is not a module pledgesync reads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown module {0:?}: pledgesync syncs \"Contacts\" and \"Leads\"")]
pub struct UnknownModule(pub String);

impl Module {
    pub const ALL: [Module; 2] = [Module::Contacts, Module::Leads];

    /// Zoho's API name, as it appears in `/crm/v8/{module}`.
    pub fn api_name(self) -> &'static str {
        match self {
            Module::Contacts => "Contacts",
            Module::Leads => "Leads",
        }
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_name())
    }
}

impl FromStr for Module {
    type Err = UnknownModule;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Module::ALL
            .into_iter()
            .find(|m| m.api_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownModule(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_validated() {
        assert!(AccountId::parse("acct_42").is_ok());
        assert_eq!(AccountId::parse(""), Err(InvalidAccountId));
        assert_eq!(AccountId::parse("a b"), Err(InvalidAccountId));
        assert_eq!(AccountId::parse("x".repeat(129)), Err(InvalidAccountId));
    }

    #[test]
    fn record_ids_are_digits() {
        assert!(ZohoRecordId::parse("4150868000000002175").is_ok());
        assert!(ZohoRecordId::parse("41x").is_err());
        assert!(serde_json::from_str::<ZohoRecordId>("\"12\"").is_ok());
        assert!(serde_json::from_str::<ZohoRecordId>("\"\"").is_err());
    }

    #[test]
    fn modules_parse_case_insensitively() {
        assert_eq!("contacts".parse::<Module>(), Ok(Module::Contacts));
        assert_eq!("Leads".parse::<Module>(), Ok(Module::Leads));
        assert!("Deals".parse::<Module>().is_err());
    }
}
