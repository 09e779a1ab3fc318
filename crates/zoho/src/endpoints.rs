//! Where each data centre's accounts server and CRM API are: Zoho's hosts, or the configured
//! override (the emulator in tests and the demo).
//!
//! An override may hold a `{dc}` placeholder, replaced by the lower-case DC code, so that one
//! emulator can pose as every data centre (`http://127.0.0.1:PORT/dc/{dc}`). `Url` percent-encodes
//! the braces in a path (`%7Bdc%7D`), so both spellings are replaced. Without a placeholder every
//! data centre maps to the same URL.

use pledgesync_core::settings::ZohoSettings;
use pledgesync_core::DataCenter;
use url::Url;

/// The placeholder spellings an override may carry.
const PLACEHOLDERS: [&str; 3] = ["{dc}", "%7Bdc%7D", "%7bdc%7d"];

/// Resolves hosts per data centre.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    /// Overrides every DC's accounts server.
    accounts: Option<String>,
    /// Overrides every DC's CRM API domain (and the `api_domain` Zoho returns).
    api: Option<String>,
}

impl Endpoints {
    /// Endpoints honouring the `zoho` configuration section.
    pub fn new(settings: &ZohoSettings) -> Self {
        Self {
            accounts: settings.accounts_url.as_ref().map(|u| trimmed(u.as_str())),
            api: settings.api_url.as_ref().map(|u| trimmed(u.as_str())),
        }
    }

    /// The accounts server of `dc`, without a trailing slash.
    pub fn accounts(&self, dc: DataCenter) -> String {
        match &self.accounts {
            Some(template) => fill(template, dc),
            None => dc.accounts_url().to_owned(),
        }
    }

    /// `POST` target for token requests at `dc`.
    pub fn token_url(&self, dc: DataCenter) -> String {
        format!("{}/oauth/v2/token", self.accounts(dc))
    }

    /// `POST` target for revoking a refresh token at `dc` (the token goes in the query).
    pub fn revoke_url(&self, dc: DataCenter) -> String {
        format!("{}/oauth/v2/token/revoke", self.accounts(dc))
    }

    /// The CRM API base of an integration: the override if configured, else the `api_domain`
    /// Zoho returned, else the data centre's production domain. Never a trailing slash.
    pub fn api(&self, dc: DataCenter, api_domain: Option<&Url>) -> String {
        match (&self.api, api_domain) {
            (Some(template), _) => fill(template, dc),
            (None, Some(domain)) => trimmed(domain.as_str()),
            (None, None) => dc.api_url().to_owned(),
        }
    }
}

fn trimmed(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

fn fill(template: &str, dc: DataCenter) -> String {
    let code = dc.code().to_ascii_lowercase();
    PLACEHOLDERS
        .iter()
        .fold(template.to_owned(), |acc, placeholder| {
            acc.replace(placeholder, &code)
        })
}

/// Parses an `api_domain` from Zoho, accepting only http(s) URLs.
pub(crate) fn parse_api_domain(text: &str) -> Option<Url> {
    Url::parse(text.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(accounts: Option<&str>, api: Option<&str>) -> ZohoSettings {
        ZohoSettings {
            accounts_url: accounts.map(|u| Url::parse(u).expect("url")),
            api_url: api.map(|u| Url::parse(u).expect("url")),
        }
    }

    #[test]
    fn real_hosts_without_override() {
        let e = Endpoints::new(&ZohoSettings::default());
        assert_eq!(
            e.token_url(DataCenter::Eu),
            "https://accounts.zoho.eu/oauth/v2/token"
        );
        assert_eq!(e.accounts(DataCenter::Ca), "https://accounts.zohocloud.ca");
        let domain = Url::parse("https://www.zohoapis.com.au").expect("url");
        assert_eq!(
            e.api(DataCenter::Au, Some(&domain)),
            "https://www.zohoapis.com.au"
        );
        assert_eq!(e.api(DataCenter::Jp, None), "https://www.zohoapis.jp");
    }

    #[test]
    fn placeholder_is_replaced_even_when_percent_encoded() {
        let s = settings(
            Some("http://127.0.0.1:9999/dc/{dc}"),
            Some("http://127.0.0.1:9999/dc/{dc}/"),
        );
        // Url encodes the braces; the template must still work.
        assert!(s
            .accounts_url
            .as_ref()
            .map(|u| u.as_str().contains("%7Bdc%7D"))
            .unwrap_or(false));
        let e = Endpoints::new(&s);
        assert_eq!(
            e.token_url(DataCenter::Eu),
            "http://127.0.0.1:9999/dc/eu/oauth/v2/token"
        );
        assert_eq!(
            e.revoke_url(DataCenter::Us),
            "http://127.0.0.1:9999/dc/us/oauth/v2/token/revoke"
        );
        let domain = Url::parse("https://www.zohoapis.eu").expect("url");
        assert_eq!(
            e.api(DataCenter::Eu, Some(&domain)),
            "http://127.0.0.1:9999/dc/eu"
        );
    }

    #[test]
    fn override_without_placeholder_is_shared_by_all() {
        let e = Endpoints::new(&settings(Some("http://127.0.0.1:1/"), None));
        for dc in DataCenter::ALL {
            assert_eq!(e.accounts(dc), "http://127.0.0.1:1");
        }
        let domain = parse_api_domain("http://127.0.0.1:1/dc/eu").expect("domain");
        assert_eq!(
            e.api(DataCenter::Eu, Some(&domain)),
            "http://127.0.0.1:1/dc/eu"
        );
    }

    #[test]
    fn api_domains_must_be_http() {
        assert!(parse_api_domain("https://www.zohoapis.com").is_some());
        assert!(parse_api_domain("javascript:alert(1)").is_none());
        assert!(parse_api_domain("not a url").is_none());
    }
}
