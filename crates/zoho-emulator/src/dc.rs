//! Zoho's data centres.
//!
//! One emulator poses as every DC: the accounts server of DC `xx` lives at `{base}/dc/xx`, and so
//! does its CRM API domain. A client and every token it gets belong to one DC; the others do not
//! know them, which is what lets a client probe DCs in turn (reference §1).

use std::fmt;

/// A Zoho data centre.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dc {
    /// United States (accounts.zoho.com).
    Us,
    /// Europe (accounts.zoho.eu).
    Eu,
    /// India (accounts.zoho.in).
    In,
    /// Australia (accounts.zoho.com.au).
    Au,
    /// Japan (accounts.zoho.jp).
    Jp,
    /// China (accounts.zoho.com.cn).
    Cn,
    /// Canada (accounts.zohocloud.ca).
    Ca,
    /// Saudi Arabia (accounts.zoho.sa).
    Sa,
}

impl Dc {
    /// Every DC the emulator serves.
    pub const ALL: [Dc; 8] = [
        Dc::Us,
        Dc::Eu,
        Dc::In,
        Dc::Au,
        Dc::Jp,
        Dc::Cn,
        Dc::Ca,
        Dc::Sa,
    ];

    /// Parses a DC code in any case (`"EU"`, `"eu"`).
    pub fn parse(code: &str) -> Option<Dc> {
        Dc::ALL
            .into_iter()
            .find(|dc| dc.code().eq_ignore_ascii_case(code.trim()))
    }

    /// The upper-case code (`"EU"`), as Zoho's SDKs name DCs.
    pub fn code(self) -> &'static str {
        match self {
            Dc::Us => "US",
            Dc::Eu => "EU",
            Dc::In => "IN",
            Dc::Au => "AU",
            Dc::Jp => "JP",
            Dc::Cn => "CN",
            Dc::Ca => "CA",
            Dc::Sa => "SA",
        }
    }

    /// The lower-case path segment under `/dc/` (`"eu"`).
    pub fn path(self) -> &'static str {
        match self {
            Dc::Us => "us",
            Dc::Eu => "eu",
            Dc::In => "in",
            Dc::Au => "au",
            Dc::Jp => "jp",
            Dc::Cn => "cn",
            Dc::Ca => "ca",
            Dc::Sa => "sa",
        }
    }
}

impl fmt::Display for Dc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_round_trips() {
        for dc in Dc::ALL {
            assert_eq!(Dc::parse(dc.code()), Some(dc));
            assert_eq!(Dc::parse(dc.path()), Some(dc));
        }
        assert_eq!(Dc::parse("uk"), None);
        assert_eq!(Dc::parse(""), None);
    }
}
