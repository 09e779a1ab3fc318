//! Connecting an integration to Zoho: create it from what the creator pasted (the grant code is
//! exchanged at once), and reconnect it with a new code after Zoho rejected its refresh token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use pledgesync_core::{AccountId, IntegrationId, Module};
use pledgesync_store::{Integration, NewIntegration, Schedule, StoreError};
use pledgesync_zoho::secret::{ClientId, ClientSecret, RefreshToken};
use secrecy::SecretString;
use serde::Deserialize;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, IdPath};
use crate::api::integrations::{check_name, merge_schedule, ScheduleInput};
use crate::api::setup::{check_pasted, exposed, field, parse_data_center, Pasted};
use crate::api::views::IntegrationView;
use crate::crypto::SecretColumn;
use crate::state::AppState;

/// Longest accepted pasted values: far beyond Zoho's, short enough to refuse garbage early.
const MAX_CLIENT_ID: usize = 256;
const MAX_CLIENT_SECRET: usize = 512;
const MAX_GRANT: usize = 2048;

/// `POST /v1/integrations`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIntegration {
    account_id: AccountId,
    name: String,
    client_id: String,
    client_secret: SecretString,
    /// The grant code (first set-up) or a refresh token.
    refresh_token: SecretString,
    #[serde(default)]
    data_center: Option<String>,
    #[serde(default)]
    modules: Option<Vec<Module>>,
    #[serde(default)]
    schedule: Option<ScheduleInput>,
}

/// `PUT /v1/integrations/{id}/credentials`: reconnect with a new grant code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    refresh_token: SecretString,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<SecretString>,
    #[serde(default)]
    data_center: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateIntegration>,
) -> Result<(StatusCode, Json<IntegrationView>), ApiError> {
    let name = check_name(&body.name)?;
    check_pasted(
        field::CLIENT_ID,
        "Client ID",
        &body.client_id,
        MAX_CLIENT_ID,
    )?;
    check_pasted(
        field::CLIENT_SECRET,
        "Client Secret",
        exposed(&body.client_secret),
        MAX_CLIENT_SECRET,
    )?;
    check_pasted(
        field::REFRESH_TOKEN,
        "grant code",
        exposed(&body.refresh_token),
        MAX_GRANT,
    )?;
    let data_center = parse_data_center(body.data_center.as_deref())?;
    let schedule = merge_schedule(state.default_schedule(), body.modules, body.schedule)?;
    // The grant code works once: refuse what the store would refuse before spending it.
    let taken = state
        .store
        .list_integrations(&body.account_id)
        .await?
        .into_iter()
        .any(|i| i.name == name);
    if taken {
        return Err(ApiError::conflict(
            "conflict",
            format!(
                "an integration named {name:?} in this account already exists; choose another name"
            ),
        )
        .with_field("name"));
    }
    let pasted = Pasted {
        client_id: ClientId::new(body.client_id),
        client_secret: ClientSecret::new(exposed(&body.client_secret).trim()),
        grant: body.refresh_token,
        data_center,
    };
    let auth = state.authorize(&pasted).await?;
    let integration = match store_new_integration(
        &state,
        body.account_id,
        name,
        schedule,
        &pasted,
        &auth,
    )
    .await
    {
        Ok(integration) => integration,
        Err(error) => {
            // The token would otherwise stay alive at Zoho, counting against the user's cap.
            if auth.from_grant_code {
                state
                    .revoke(None, auth.data_center, &auth.refresh_token)
                    .await;
            }
            return Err(error);
        }
    };
    let id = integration.id;
    state.offer_access_token(id, &auth).await;
    metrics::counter!("pledgesync_api_integrations_created_total").increment(1);
    tracing::info!(integration_id = %id, account_id = %integration.account_id, org_id = %integration.zoho_org_id, "integration created");
    Ok((
        StatusCode::CREATED,
        Json(IntegrationView::new(integration, None)),
    ))
}

/// Inserts the integration with its secrets encrypted for its own row.
///
/// The ciphertexts' associated data names the integration id, which the store assigns on
/// insert. So the row is first written with ciphertexts sealed for a provisional id, then at once
/// re-sealed for the real one; if that second write fails, the row (whose secrets could never be
/// decrypted) is deleted again. The store taking the id from the caller would make this one write.
async fn store_new_integration(
    state: &AppState,
    account_id: AccountId,
    name: String,
    schedule: Schedule,
    pasted: &Pasted,
    auth: &pledgesync_zoho::Authorization,
) -> Result<Integration, ApiError> {
    let provisional = IntegrationId::new();
    let new = NewIntegration {
        account_id,
        name,
        credentials: state.seal_credentials(
            provisional,
            &pasted.client_id,
            &pasted.client_secret,
            auth,
        )?,
        zoho_org_id: auth.org.id.clone(),
        zoho_org_name: Some(auth.org.name.clone()),
        zoho_time_zone: Some(auth.org.time_zone.clone()),
        audience_id: None,
        schedule,
    };
    let inserted = state.store.insert_integration(&new).await?;
    let id = inserted.id;
    let credentials = state.seal_credentials(id, &pasted.client_id, &pasted.client_secret, auth)?;
    match state
        .store
        .replace_credentials(id, &credentials, &auth.org.id)
        .await
    {
        Ok(integration) => Ok(integration),
        Err(error) => {
            if let Err(cleanup) = state.store.delete_integration(id).await {
                tracing::error!(integration_id = %id, error = %cleanup, "an integration whose secrets were not re-sealed could not be deleted; delete it by hand");
            }
            Err(error.into())
        }
    }
}

pub async fn reconnect(
    State(state): State<AppState>,
    IdPath(id): IdPath<IntegrationId>,
    ApiJson(body): ApiJson<Reconnect>,
) -> Result<Json<IntegrationView>, ApiError> {
    check_pasted(
        field::REFRESH_TOKEN,
        "grant code",
        exposed(&body.refresh_token),
        MAX_GRANT,
    )?;
    if let Some(client_id) = &body.client_id {
        check_pasted(field::CLIENT_ID, "Client ID", client_id, MAX_CLIENT_ID)?;
    }
    if let Some(secret) = &body.client_secret {
        check_pasted(
            field::CLIENT_SECRET,
            "Client Secret",
            exposed(secret),
            MAX_CLIENT_SECRET,
        )?;
    }
    let requested_dc = parse_data_center(body.data_center.as_deref())?;
    let integration = state.live_integration(id).await?;
    let stored = state.store.integration_credentials(id).await?.credentials;
    let client_secret = match &body.client_secret {
        Some(secret) => ClientSecret::new(exposed(secret).trim()),
        None if body.client_id.is_some() => {
            return Err(ApiError::invalid(
                field::CLIENT_SECRET,
                "client_secret: a new client_id needs its client_secret too",
            ))
        }
        None => ClientSecret::from(state.open_secret(
            id,
            SecretColumn::ClientSecret,
            &stored.encryption_key_id,
            &stored.client_secret.0,
        )?),
    };
    let old_token = state
        .open_secret(
            id,
            SecretColumn::RefreshToken,
            &stored.encryption_key_id,
            &stored.refresh_token.0,
        )
        .ok()
        .map(RefreshToken::from);
    let pasted = Pasted {
        client_id: ClientId::new(
            body.client_id
                .unwrap_or_else(|| integration.client_id.clone()),
        ),
        client_secret,
        grant: body.refresh_token,
        data_center: requested_dc.or(Some(integration.data_center)),
    };
    let auth = state.authorize(&pasted).await?;
    let credentials =
        state.seal_credentials(id, &pasted.client_id, &pasted.client_secret, &auth)?;
    let updated = match state
        .store
        .replace_credentials(id, &credentials, &auth.org.id)
        .await
    {
        Ok(updated) => updated,
        Err(error) => {
            if auth.from_grant_code {
                state
                    .revoke(Some(id), auth.data_center, &auth.refresh_token)
                    .await;
            }
            return Err(match error {
                StoreError::Rejected(message) => ApiError::conflict("zoho_org_mismatch", message)
                    .with_field(field::REFRESH_TOKEN),
                other => other.into(),
            });
        }
    };
    if let Err(error) = state.tokens.forget(id).await {
        tracing::warn!(integration_id = %id, %error, "could not clear the cached tokens of a reconnected integration");
    }
    state.offer_access_token(id, &auth).await;
    if let Some(old) = old_token.filter(|old| *old != auth.refresh_token) {
        state.revoke(Some(id), integration.data_center, &old).await;
    }
    tracing::info!(integration_id = %id, "integration reconnected");
    Ok(Json(state.view(updated).await?))
}
