//! The Zoho accounts server: the token endpoint (code exchange, refresh) and revocation.
//!
//! Parameters travel in the form body, never in the URL, so that no transport error (which may
//! print its URL) can carry a secret. Revocation is the exception Zoho imposes (`?token=`): its
//! errors are stripped of the URL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pledgesync_core::settings::ZohoSettings;
use pledgesync_core::DataCenter;
use tracing::Instrument as _;

use crate::endpoints::Endpoints;
use crate::oauth::{parse_token_reply, TokenReply, UnreadableReply};
use crate::secret::{ClientId, ClientSecret, RefreshToken};
use crate::settings::ZohoClientSettings;
use crate::telemetry;

/// Why a token-endpoint call produced no answer to act on. Always worth retrying later.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AccountsError {
    /// No connection, a dropped connection, or the call ran past its timeout.
    #[error("the Zoho accounts server could not be reached: {0}")]
    Transport(String),
    /// An answer that is neither tokens nor a Zoho refusal (an outage page, a 5xx).
    #[error(transparent)]
    Unreadable(#[from] UnreadableReply),
}

/// Why the HTTP client could not be built (the TLS backend failed to initialise).
#[derive(Debug, thiserror::Error)]
#[error("the HTTP client for Zoho could not be built: {0}; check the TLS set-up of this host")]
pub struct ClientBuildError(String);

/// Builds the one `reqwest` client a process uses for Zoho: pooled connections, bounded times.
pub fn http_client(settings: &ZohoClientSettings) -> Result<reqwest::Client, ClientBuildError> {
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout())
        .timeout(settings.request_timeout())
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("pledgesync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientBuildError(e.without_url().to_string()))
}

/// A client of every data centre's accounts server.
#[derive(Clone, Debug)]
pub struct Accounts {
    /// Shared connection pool.
    pub(crate) http: reqwest::Client,
    /// Hosts per data centre.
    pub(crate) endpoints: Endpoints,
    /// Timeouts and margins.
    pub(crate) settings: Arc<ZohoClientSettings>,
    /// Grant codes this process has exchanged, to tell "already used" from "expired".
    pub(crate) used_codes: Arc<crate::setup::UsedCodes>,
}

impl Accounts {
    /// A client for the configured (or real) Zoho hosts.
    pub fn new(
        zoho: &ZohoSettings,
        settings: ZohoClientSettings,
    ) -> Result<Self, ClientBuildError> {
        let http = http_client(&settings)?;
        Ok(Self::with_http(http, zoho, settings))
    }

    /// A client sharing an existing HTTP client.
    pub fn with_http(
        http: reqwest::Client,
        zoho: &ZohoSettings,
        settings: ZohoClientSettings,
    ) -> Self {
        Self {
            http,
            endpoints: Endpoints::new(zoho),
            settings: Arc::new(settings),
            used_codes: Arc::new(crate::setup::UsedCodes::default()),
        }
    }

    /// Hosts per data centre, as configured.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The settings this client runs with.
    pub fn settings(&self) -> &ZohoClientSettings {
        &self.settings
    }

    /// Exchanges a grant code at `dc` (`grant_type=authorization_code`).
    pub async fn exchange_code(
        &self,
        dc: DataCenter,
        client_id: &ClientId,
        client_secret: &ClientSecret,
        code: &str,
    ) -> Result<TokenReply, AccountsError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.expose()),
            ("code", code.trim()),
        ];
        self.token_call(dc, "authorization_code", &form).await
    }

    /// Asks `dc` for a new access token (`grant_type=refresh_token`).
    pub async fn refresh(
        &self,
        dc: DataCenter,
        client_id: &ClientId,
        client_secret: &ClientSecret,
        refresh_token: &RefreshToken,
    ) -> Result<TokenReply, AccountsError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.expose()),
            ("refresh_token", refresh_token.expose()),
        ];
        self.token_call(dc, "refresh_token", &form).await
    }

    /// Revokes a refresh token (and with it its access tokens). Best effort for callers: an
    /// already-revoked token answers HTTP 400, which is reported as `Ok(false)`.
    pub async fn revoke(
        &self,
        dc: DataCenter,
        refresh_token: &RefreshToken,
    ) -> Result<bool, AccountsError> {
        let span = tracing::info_span!("zoho.call", endpoint = "revoke", data_center = %dc, status = tracing::field::Empty);
        async {
            let started = Instant::now();
            let sent = self
                .http
                .post(self.endpoints.revoke_url(dc))
                .query(&[("token", refresh_token.expose())])
                .timeout(self.settings.refresh_timeout())
                .send()
                .await;
            let response = sent.map_err(|e| {
                telemetry::record_call("revoke", "transport", started);
                AccountsError::Transport(e.without_url().to_string())
            })?;
            let status = response.status().as_u16();
            tracing::Span::current().record("status", status);
            telemetry::record_call("revoke", &status.to_string(), started);
            if response.status().is_server_error() {
                return Err(UnreadableReply {
                    status,
                    what: "server error",
                }
                .into());
            }
            Ok(response.status().is_success())
        }
        .instrument(span)
        .await
    }

    async fn token_call(
        &self,
        dc: DataCenter,
        grant: &'static str,
        form: &[(&str, &str)],
    ) -> Result<TokenReply, AccountsError> {
        let span = tracing::info_span!(
            "zoho.call",
            endpoint = "token",
            grant_type = grant,
            data_center = %dc,
            status = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        async {
            let started = Instant::now();
            let result = self.post_form(dc, form).await;
            let label = match &result {
                Ok((status, TokenReply::Granted(_))) => status.to_string(),
                Ok((_, TokenReply::Refused(refusal))) => format!("refused:{refusal}"),
                Err(AccountsError::Transport(_)) => "transport".to_owned(),
                Err(AccountsError::Unreadable(u)) => u.status.to_string(),
            };
            tracing::Span::current().record("outcome", label.as_str());
            telemetry::record_call("token", &label, started);
            result.map(|(_, reply)| reply)
        }
        .instrument(span)
        .await
    }

    async fn post_form(
        &self,
        dc: DataCenter,
        form: &[(&str, &str)],
    ) -> Result<(u16, TokenReply), AccountsError> {
        let request = self
            .http
            .post(self.endpoints.token_url(dc))
            .form(form)
            .timeout(self.settings.refresh_timeout())
            .send();
        // The request timeout bounds each phase; this bounds the whole call, body included.
        let response = tokio::time::timeout(self.settings.refresh_timeout(), async {
            let response = request.await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        })
        .await;
        let (status, body) = match response {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(AccountsError::Transport(e.without_url().to_string())),
            Err(_) => {
                return Err(AccountsError::Transport(format!(
                    "no answer within {} ms",
                    self.settings.refresh_timeout_ms
                )))
            }
        };
        tracing::Span::current().record("status", status);
        let reply = parse_token_reply(status, &body)?;
        if (500..600).contains(&status)
            && matches!(reply, TokenReply::Refused(crate::oauth::Refusal::Other(_)))
        {
            return Err(UnreadableReply {
                status,
                what: "server error",
            }
            .into());
        }
        Ok((status, reply))
    }
}
