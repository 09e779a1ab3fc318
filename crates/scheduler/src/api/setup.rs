//! Connecting to Zoho on behalf of the creator: what they pasted becomes an [`Authorization`], its
//! secrets become ciphertexts for one integration row, and every [`SetupError`] becomes a 422
//! with a stable code, the Zoho crate's message and the input it is about.

use axum::http::StatusCode;
use pledgesync_core::{DataCenter, IntegrationId};
use pledgesync_store::{Ciphertext, ZohoCredentials};
use pledgesync_zoho::secret::{ClientId, ClientSecret, RefreshToken};
use pledgesync_zoho::setup::{Authorization, SetupError};
use secrecy::{ExposeSecret, SecretString};

use crate::api::error::ApiError;
use crate::crypto::{SecretColumn, SecretSlot};
use crate::state::AppState;

/// The API's name for each input of the setup form.
pub mod field {
    pub const CLIENT_ID: &str = "client_id";
    pub const CLIENT_SECRET: &str = "client_secret";
    pub const REFRESH_TOKEN: &str = "refresh_token";
    pub const DATA_CENTER: &str = "data_center";
}

/// What the creator pasted, checked for shape (Zoho checks the rest).
pub struct Pasted {
    /// The Self Client's Client ID.
    pub client_id: ClientId,
    /// The Self Client's Client Secret.
    pub client_secret: ClientSecret,
    /// The "Refresh Token" field: a grant code, or a refresh token.
    pub grant: SecretString,
    /// The data centre chosen, or `None` to detect it.
    pub data_center: Option<DataCenter>,
}

/// Reads the optional data centre: blank or absent means "detect it".
pub fn parse_data_center(raw: Option<&str>) -> Result<Option<DataCenter>, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(code) => {
            code.parse()
                .map(Some)
                .map_err(|e: pledgesync_core::datacenter::UnknownDataCenter| {
                    ApiError::invalid(field::DATA_CENTER, e.to_string())
                })
        }
    }
}

/// A pasted credential must be non-blank, printable and of a sane length.
pub fn check_pasted(
    field: &'static str,
    label: &str,
    value: &str,
    max: usize,
) -> Result<(), ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field}: the {label} is empty; copy it from your Self Client in the Zoho API Console"),
        ));
    }
    if value.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("{field}: the {label} is longer than {max} characters; paste only the value"),
        ));
    }
    if value.chars().any(char::is_control) || value.contains(char::is_whitespace) {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field}: the {label} contains spaces or control characters; paste only the value"
            ),
        ));
    }
    Ok(())
}

/// Maps a failed set-up to the API error shown next to the right field.
pub fn setup_error(error: SetupError) -> ApiError {
    use field::*;
    let message = error.to_string();
    let (code, field): (&'static str, Option<&'static str>) = match &error {
        SetupError::Empty(what) => (
            "zoho_empty_field",
            Some(match *what {
                "Client ID" => CLIENT_ID,
                "Client Secret" => CLIENT_SECRET,
                _ => REFRESH_TOKEN,
            }),
        ),
        SetupError::CodeExpiredOrUsed => ("zoho_code_expired", Some(REFRESH_TOKEN)),
        SetupError::CodeAlreadyUsed => ("zoho_code_used", Some(REFRESH_TOKEN)),
        SetupError::WrongClient {
            data_center: Some(_),
        } => ("zoho_wrong_data_center", Some(DATA_CENTER)),
        SetupError::WrongClient { data_center: None } => ("zoho_unknown_client", Some(CLIENT_ID)),
        SetupError::WrongSecret => ("zoho_wrong_secret", Some(CLIENT_SECRET)),
        SetupError::MissingScope { .. } => ("zoho_missing_scope", Some(REFRESH_TOKEN)),
        SetupError::NoRefreshToken => ("zoho_no_refresh_token", Some(REFRESH_TOKEN)),
        SetupError::Throttled => ("zoho_throttled", Some(REFRESH_TOKEN)),
        SetupError::Refused(_) => ("zoho_refused", Some(REFRESH_TOKEN)),
        SetupError::Unavailable(_) => ("zoho_unavailable", None),
        SetupError::Crm(_) => ("zoho_org_unreadable", None),
    };
    metrics::counter!("pledgesync_api_setup_failures_total", "code" => code).increment(1);
    // Zoho being unreachable is not the creator's input: say so with a 503 the app may retry.
    let status = if error.is_retryable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let api = ApiError::new(status, code, message);
    match field {
        Some(field) => api.with_field(field),
        None => api,
    }
}

impl AppState {
    /// Exchanges what the creator pasted at Zoho (at once: a grant code dies in minutes).
    pub async fn authorize(&self, pasted: &Pasted) -> Result<Authorization, ApiError> {
        self.accounts
            .authorize(
                &pasted.client_id,
                &pasted.client_secret,
                &pasted.grant,
                pasted.data_center,
            )
            .await
            .map_err(setup_error)
    }

    /// Encrypts the integration's secrets for its row, under the current key.
    pub fn seal_credentials(
        &self,
        id: IntegrationId,
        client_id: &ClientId,
        client_secret: &ClientSecret,
        auth: &Authorization,
    ) -> Result<ZohoCredentials, ApiError> {
        let secret = self
            .keyring
            .seal(
                client_secret.expose(),
                SecretSlot::new(id, SecretColumn::ClientSecret),
            )
            .map_err(|e| ApiError::internal(&e))?;
        let refresh = self
            .keyring
            .seal(
                auth.refresh_token.expose(),
                SecretSlot::new(id, SecretColumn::RefreshToken),
            )
            .map_err(|e| ApiError::internal(&e))?;
        let api_domain = match &auth.api_domain {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => auth.data_center.api_url().to_owned(),
        };
        Ok(ZohoCredentials {
            data_center: auth.data_center,
            api_domain,
            client_id: client_id.as_str().to_owned(),
            client_secret: Ciphertext(secret.bytes),
            refresh_token: Ciphertext(refresh.bytes),
            encryption_key_id: secret.key_id,
            scopes: auth.scopes.as_slice().to_vec(),
        })
    }

    /// Decrypts a stored secret of an integration.
    pub fn open_secret(
        &self,
        id: IntegrationId,
        column: SecretColumn,
        key_id: &str,
        bytes: &[u8],
    ) -> Result<SecretString, ApiError> {
        self.keyring
            .open(key_id, bytes, SecretSlot::new(id, column))
            .map_err(|e| ApiError::internal(&e))
    }

    /// Seeds the shared token cache with the access token minted during set-up, so the first
    /// sync does not spend one of Zoho's few refreshes. Best effort: Redis may be down.
    pub async fn offer_access_token(&self, id: IntegrationId, auth: &Authorization) {
        if let Err(error) = self
            .tokens
            .offer(
                id,
                auth.access_token.clone(),
                auth.access_token_lifetime,
                auth.access_token_minted_at_ms,
            )
            .await
        {
            tracing::warn!(integration_id = %id, %error, "could not cache the set-up access token; the first sync will refresh");
        }
    }

    /// Revokes a refresh token at Zoho, best effort; true if Zoho confirmed.
    pub async fn revoke(
        &self,
        id: Option<IntegrationId>,
        data_center: DataCenter,
        token: &RefreshToken,
    ) -> bool {
        match self.accounts.revoke(data_center, token).await {
            Ok(revoked) => {
                metrics::counter!("pledgesync_api_revocations_total", "outcome" => if revoked { "revoked" } else { "already_invalid" })
                    .increment(1);
                revoked
            }
            Err(error) => {
                metrics::counter!("pledgesync_api_revocations_total", "outcome" => "failed")
                    .increment(1);
                tracing::warn!(integration_id = ?id, %error, "could not revoke a refresh token at Zoho; the creator can remove it in the API Console");
                false
            }
        }
    }
}

/// The secret of a pasted string, exposed only to check its shape.
pub fn exposed(secret: &SecretString) -> &str {
    secret.expose_secret()
}
