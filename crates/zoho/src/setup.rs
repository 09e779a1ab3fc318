//! Setting an integration up: turn what the creator pasted into a refresh token, find the data
//! centre, check the scopes and read the org — or say exactly what to do.
//!
//! The pasted value is tried as a grant code first; Zoho answers `invalid_code` for expired, used
//! and unknown codes alike, so it is then tried as a refresh token (a creator may paste one). Data
//! centre detection probes the accounts servers in turn: `invalid_client` means "not this one";
//! the first that knows the client is the one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pledgesync_core::DataCenter;
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::accounts::{Accounts, AccountsError};
use crate::crm::wire::{self, ApiRequest, OrgInfo};
use crate::crm::CrmError;
use crate::oauth::{Refusal, Scopes, TokenGrant, TokenReply, REQUIRED_SCOPES};
use crate::retry::{now_ms, Backoff};
use crate::secret::{fingerprint, AccessToken, ClientId, ClientSecret, RefreshToken};

/// Where to generate a new code, said the same way in every message.
const NEW_CODE: &str = "generate a new one in the Zoho API Console (Self Client → Generate Code) and paste it within 10 minutes";

/// A failed set-up, with the message shown to the creator.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SetupError {
    /// A field was left empty.
    #[error("The {0} is empty: copy it from your Self Client in the Zoho API Console and paste it here.")]
    Empty(&'static str),
    /// `invalid_code` for a code this service did not see exchanged: expired, used elsewhere or unknown.
    #[error("The grant code has expired or was already used. Grant codes live 10 minutes and work once: {NEW_CODE}.")]
    CodeExpiredOrUsed,
    /// `invalid_code` for a code this service exchanged before.
    #[error("The grant code was already used: a grant code works only once. To connect again, {NEW_CODE}.")]
    CodeAlreadyUsed,
    /// `invalid_client` at the chosen data centre, or at every one.
    #[error("{}", wrong_client(*data_center))]
    WrongClient {
        /// The data centre the creator chose, or `None` when every one was tried.
        data_center: Option<DataCenter>,
    },
    /// `invalid_client_secret`.
    #[error("The Client Secret does not match the Client ID: copy the Client Secret of the same Self Client from the Zoho API Console (Self Client → Client Secret) and try again with a new grant code.")]
    WrongSecret,
    /// The grant lacks scopes the sync needs.
    #[error("The grant code's scope lacks {}; generate a new code with the scope ZohoCRM.modules.ALL,ZohoCRM.org.READ", missing.join(" and "))]
    MissingScope {
        /// The required scopes that were not granted.
        missing: Vec<&'static str>,
    },
    /// Zoho returned tokens but no refresh token.
    #[error("Zoho returned no refresh token for this grant code; {NEW_CODE}.")]
    NoRefreshToken,
    /// Zoho throttled the token endpoint for this client.
    #[error("Zoho is refusing new tokens for this Self Client because too many were requested recently; wait 10 minutes, then generate a new grant code and try again.")]
    Throttled,
    /// Zoho refused with an error this service does not know.
    #[error("Zoho refused the grant code with `{0}`; {NEW_CODE}. If this keeps happening, contact support with this message.")]
    Refused(String),
    /// Zoho could not be reached or answered nonsense: worth retrying.
    #[error("Zoho could not be reached ({0}); try again in a minute — the grant code stays valid for 10 minutes.")]
    Unavailable(String),
    /// Reading the org failed for a reason other than scope.
    #[error("Zoho accepted the grant code but reading the organisation failed ({0}). Try again in a few minutes with a new grant code (Self Client → Generate Code).")]
    Crm(CrmError),
}

fn wrong_client(dc: Option<DataCenter>) -> String {
    match dc {
        None => "The Client ID was not found in any Zoho data centre: copy the Client ID of your Self Client from the Zoho API Console (Self Client → Client Secret) and try again.".to_owned(),
        Some(dc) => format!("The Client ID was not found in the {dc} data centre; check the data centre or leave it on detect."),
    }
}

impl SetupError {
    /// Whether the same request may succeed if simply repeated (the creator need not act).
    pub fn is_retryable(&self) -> bool {
        // After the exchange the code is spent, so only failures before it are worth repeating.
        matches!(self, SetupError::Unavailable(_))
    }
}

/// A connected integration, ready to be stored (encrypt the refresh token).
#[derive(Clone, Debug)]
pub struct Authorization {
    /// The integration's refresh token (minted from the code, or the pasted one).
    pub refresh_token: RefreshToken,
    /// The CRM API domain Zoho returned, if any (store it; the token store uses it).
    pub api_domain: Option<Url>,
    /// The data centre that knows the client.
    pub data_center: DataCenter,
    /// The granted scopes (the required ones when Zoho did not list them and probing proved them).
    pub scopes: Scopes,
    /// The org the token reads.
    pub org: OrgInfo,
    /// The access token minted on the way, so the first sync need not refresh.
    pub access_token: AccessToken,
    /// Its lifetime.
    pub access_token_lifetime: Duration,
    /// When it was requested (Unix ms); expiry is this plus the lifetime.
    pub access_token_minted_at_ms: i64,
    /// Whether the pasted value was a grant code (false: it was a refresh token).
    pub from_grant_code: bool,
}

/// Grant codes this process exchanged (fingerprints only), to tell "already used" apart.
#[derive(Debug, Default)]
pub(crate) struct UsedCodes(Mutex<HashMap<String, Instant>>);

/// Grant codes live at most 10 minutes; remembering them a little longer is enough.
const USED_CODE_MEMORY: Duration = Duration::from_secs(15 * 60);

impl UsedCodes {
    fn remember(&self, code: &str) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, at| at.elapsed() < USED_CODE_MEMORY);
        map.insert(fingerprint(code), Instant::now());
    }

    fn seen(&self, code: &str) -> bool {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&fingerprint(code))
            .is_some_and(|at| at.elapsed() < USED_CODE_MEMORY)
    }
}

impl From<AccountsError> for SetupError {
    fn from(e: AccountsError) -> Self {
        SetupError::Unavailable(e.to_string())
    }
}

impl Accounts {
    /// Connects an integration from what the creator pasted. `data_center: None` detects it.
    pub async fn authorize(
        &self,
        client_id: &ClientId,
        client_secret: &ClientSecret,
        pasted: &SecretString,
        data_center: Option<DataCenter>,
    ) -> Result<Authorization, SetupError> {
        let pasted = pasted.expose_secret().trim();
        if client_id.as_str().is_empty() {
            return Err(SetupError::Empty("Client ID"));
        }
        if client_secret.expose().trim().is_empty() {
            return Err(SetupError::Empty("Client Secret"));
        }
        if pasted.is_empty() {
            return Err(SetupError::Empty("grant code"));
        }
        let candidates: Vec<DataCenter> =
            data_center.map_or_else(|| DataCenter::ALL.to_vec(), |dc| vec![dc]);
        let mut unreachable = None;
        for dc in candidates {
            let minted_at_ms = now_ms();
            let reply = match self
                .exchange_code(dc, client_id, client_secret, pasted)
                .await
            {
                Ok(reply) => reply,
                Err(e) => {
                    // An unreachable data centre might be the client's; keep looking, but do not
                    // claim the client is unknown if none answered yes.
                    tracing::warn!(data_center = %dc, error = %e, "accounts server unreachable during set-up");
                    unreachable = Some(e);
                    continue;
                }
            };
            match reply {
                TokenReply::Granted(grant) => {
                    self.used_codes.remember(pasted);
                    return self.finish(dc, grant, None, minted_at_ms).await;
                }
                TokenReply::Refused(Refusal::InvalidClient) => continue,
                TokenReply::Refused(Refusal::InvalidCode) => {
                    return self
                        .as_refresh_token(dc, client_id, client_secret, pasted)
                        .await
                }
                TokenReply::Refused(refusal) => return Err(refused(refusal)),
            }
        }
        match unreachable {
            Some(e) => Err(e.into()),
            None => Err(SetupError::WrongClient { data_center }),
        }
    }

    /// The pasted value was not a live grant code: maybe it is a refresh token.
    async fn as_refresh_token(
        &self,
        dc: DataCenter,
        client_id: &ClientId,
        client_secret: &ClientSecret,
        pasted: &str,
    ) -> Result<Authorization, SetupError> {
        let refresh_token = RefreshToken::new(pasted);
        let minted_at_ms = now_ms();
        match self
            .refresh(dc, client_id, client_secret, &refresh_token)
            .await?
        {
            TokenReply::Granted(grant) => {
                self.finish(dc, grant, Some(refresh_token), minted_at_ms)
                    .await
            }
            TokenReply::Refused(Refusal::InvalidCode) if self.used_codes.seen(pasted) => {
                Err(SetupError::CodeAlreadyUsed)
            }
            TokenReply::Refused(Refusal::InvalidCode) => Err(SetupError::CodeExpiredOrUsed),
            TokenReply::Refused(refusal) => Err(refused(refusal)),
        }
    }

    /// Checks scopes and reads the org with a fresh grant.
    async fn finish(
        &self,
        dc: DataCenter,
        grant: TokenGrant,
        pasted_refresh: Option<RefreshToken>,
        minted_at_ms: i64,
    ) -> Result<Authorization, SetupError> {
        let from_grant_code = pasted_refresh.is_none();
        let refresh_token = match (grant.refresh_token, pasted_refresh) {
            (_, Some(pasted)) => pasted,
            (Some(minted), None) => minted,
            (None, None) => return Err(SetupError::NoRefreshToken),
        };
        // A refresh token that cannot be used only counts against Zoho's 20-per-user cap, and the
        // creator will paste a new code anyway: give a minted one back before failing.
        let abandon = |error: SetupError| async {
            if from_grant_code {
                if let Err(e) = self.revoke(dc, &refresh_token).await {
                    tracing::warn!(error = %e, "could not revoke the refresh token of a failed set-up");
                }
            }
            Err(error)
        };
        let missing = |scope: &'static str| SetupError::MissingScope {
            missing: vec![scope],
        };
        if let Some(missing) = grant
            .scopes
            .as_ref()
            .map(Scopes::missing)
            .filter(|m| !m.is_empty())
        {
            return abandon(SetupError::MissingScope { missing }).await;
        }
        let base = self.endpoints.api(dc, grant.api_domain.as_ref());
        let token = &grant.access_token;
        let org = match self.probe(&base, token, "org", "/crm/v8/org").await {
            Ok(reply) => match wire::parse_org(reply) {
                Ok(org) => org,
                Err(e) => return abandon(SetupError::Crm(e)).await,
            },
            Err(CrmError::ScopeMismatch { .. }) => {
                return abandon(missing("ZohoCRM.org.READ")).await
            }
            Err(e) => return abandon(SetupError::Crm(e)).await,
        };
        let scopes = match grant.scopes {
            Some(scopes) => scopes,
            None => {
                // Zoho listed no scopes (a refresh answer): prove the modules scope by using it.
                let count = "/crm/v8/Contacts/actions/count";
                match self.probe(&base, token, "count", count).await {
                    Ok(_) => Scopes::parse(&REQUIRED_SCOPES.join(",")),
                    Err(CrmError::ScopeMismatch { .. }) => {
                        return abandon(missing("ZohoCRM.modules.ALL")).await
                    }
                    Err(e) => return abandon(SetupError::Crm(e)).await,
                }
            }
        };
        tracing::info!(data_center = %dc, org_id = %org.id, from_grant_code, "Zoho integration authorised");
        Ok(Authorization {
            refresh_token,
            api_domain: grant.api_domain,
            data_center: dc,
            scopes,
            org,
            access_token: grant.access_token,
            access_token_lifetime: grant.lifetime,
            access_token_minted_at_ms: minted_at_ms,
            from_grant_code,
        })
    }

    /// One set-up call with the fresh token, retried a few times: the grant code is spent by
    /// now, so a passing outage must not cost the creator a new code.
    async fn probe(
        &self,
        base: &str,
        token: &AccessToken,
        endpoint: &'static str,
        path: &str,
    ) -> Result<wire::Reply, CrmError> {
        const ATTEMPTS: u32 = 3;
        let request = ApiRequest {
            endpoint,
            module: String::new(),
            path: path.to_owned(),
            query: Vec::new(),
            if_modified_since: None,
        };
        let backoff = Backoff {
            base: Duration::from_millis(self.settings.retry_base_ms),
            max: Duration::from_millis(self.settings.retry_max_ms),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let timeout = self.settings.request_timeout();
            match wire::send(&self.http, base, token, &request, timeout)
                .await
                .result
            {
                Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                    tokio::time::sleep(backoff.delay(attempt)).await;
                }
                result => return result,
            }
        }
    }
}

fn refused(refusal: Refusal) -> SetupError {
    match refusal {
        Refusal::InvalidClientSecret => SetupError::WrongSecret,
        Refusal::Throttled => SetupError::Throttled,
        Refusal::InvalidCode => SetupError::CodeExpiredOrUsed,
        Refusal::InvalidClient => SetupError::WrongClient { data_center: None },
        Refusal::Other(code) => SetupError::Refused(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_exact() {
        assert_eq!(
            SetupError::CodeExpiredOrUsed.to_string(),
            "The grant code has expired or was already used. Grant codes live 10 minutes and work once: generate a new one in the Zoho API Console (Self Client → Generate Code) and paste it within 10 minutes."
        );
        assert_eq!(
            SetupError::WrongClient { data_center: Some(DataCenter::Eu) }.to_string(),
            "The Client ID was not found in the EU data centre; check the data centre or leave it on detect."
        );
        assert_eq!(
            SetupError::MissingScope { missing: vec!["ZohoCRM.modules.ALL", "ZohoCRM.org.READ"] }.to_string(),
            "The grant code's scope lacks ZohoCRM.modules.ALL and ZohoCRM.org.READ; generate a new code with the scope ZohoCRM.modules.ALL,ZohoCRM.org.READ"
        );
        assert!(SetupError::Unavailable("x".into()).is_retryable());
        assert!(!SetupError::WrongSecret.is_retryable());
    }

    #[test]
    fn used_codes_are_remembered_by_fingerprint() {
        let used = UsedCodes::default();
        used.remember("1000.code");
        assert!(used.seen("1000.code"));
        assert!(!used.seen("1000.other"));
        let held = used.0.lock().expect("lock");
        assert!(held.keys().all(|k| !k.contains("1000")));
    }
}
