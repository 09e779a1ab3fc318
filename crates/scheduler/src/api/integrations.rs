//! Integrations once connected: read, list, change schedule and modules, enable/disable, map an
//! audience, delete (revoking at Zoho). Connecting (create, reconnect) is in [`super::connect`].

use axum::extract::State;
use axum::Json;
use pledgesync_core::{AccountId, AudienceId, IntegrationId, Module};
use pledgesync_store::{Integration, IntegrationStatus, Schedule, StoreError};
use pledgesync_zoho::secret::RefreshToken;
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiQuery, IdPath};
use crate::api::views::IntegrationView;
use crate::crypto::SecretColumn;
use crate::state::AppState;

/// Longest accepted name of an integration or audience.
pub const MAX_NAME: usize = 200;

/// Intervals a request may set; absent ones keep their value (or the default).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    #[serde(default)]
    interval_secs: Option<u32>,
    #[serde(default)]
    full_sync_interval_secs: Option<u32>,
}

/// `PATCH /v1/integrations/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateIntegration {
    #[serde(default)]
    modules: Option<Vec<Module>>,
    #[serde(default)]
    schedule: Option<ScheduleInput>,
}

/// `PUT /v1/integrations/{id}/audience`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapAudience {
    audience_id: AudienceId,
}

/// `?account_id=` of the list endpoints.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    pub account_id: AccountId,
}

/// The list answer.
#[derive(Serialize)]
pub struct IntegrationList {
    integrations: Vec<IntegrationView>,
}

/// The delete answer.
#[derive(Serialize)]
pub struct Deleted {
    id: IntegrationId,
    deleted: bool,
    /// Whether Zoho confirmed the refresh token is revoked.
    zoho_token_revoked: bool,
}

pub fn check_name(name: &str) -> Result<String, ApiError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid("name", "name must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME || trimmed.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            format!("name must be at most {MAX_NAME} characters, without control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Applies a request's modules and intervals to `base`, with messages naming the field.
pub(crate) fn merge_schedule(
    base: Schedule,
    modules: Option<Vec<Module>>,
    input: Option<ScheduleInput>,
) -> Result<Schedule, ApiError> {
    let mut schedule = base;
    if let Some(mut modules) = modules {
        modules.sort();
        modules.dedup();
        if modules.is_empty() {
            return Err(ApiError::invalid(
                "modules",
                "modules must name at least one of \"Contacts\" and \"Leads\"",
            ));
        }
        schedule.modules = modules;
    }
    let input = input.unwrap_or_default();
    if let Some(secs) = input.interval_secs {
        if !(60..=i32::MAX as u32).contains(&secs) {
            return Err(ApiError::invalid(
                "schedule.interval_secs",
                "schedule.interval_secs must be at least 60 seconds",
            ));
        }
        schedule.sync_interval_secs = secs;
    }
    if let Some(secs) = input.full_sync_interval_secs {
        if !(3600..=i32::MAX as u32).contains(&secs) {
            return Err(ApiError::invalid(
                "schedule.full_sync_interval_secs",
                "schedule.full_sync_interval_secs must be at least 3600 seconds",
            ));
        }
        schedule.full_sync_interval_secs = secs;
    }
    Ok(schedule)
}

impl AppState {
    /// The integration, or 404 if it never existed or was deleted.
    pub async fn live_integration(&self, id: IntegrationId) -> Result<Integration, ApiError> {
        let integration = self.store.get_integration(id).await?;
        if integration.deleted_at.is_some() {
            return Err(ApiError::not_found(format!("integration {id} was deleted")));
        }
        Ok(integration)
    }

    pub(crate) async fn view(&self, integration: Integration) -> Result<IntegrationView, ApiError> {
        let last = self
            .store
            .list_runs(integration.id, 1, None)
            .await?
            .into_iter()
            .next();
        Ok(IntegrationView::new(integration, last))
    }

    pub(crate) fn default_schedule(&self) -> Schedule {
        Schedule {
            modules: Module::ALL.to_vec(),
            sync_interval_secs: u32::try_from(self.schedule.default_interval_secs).unwrap_or(3600),
            full_sync_interval_secs: u32::try_from(self.schedule.full_sync_interval_secs)
                .unwrap_or(604_800),
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AccountQuery>,
) -> Result<Json<IntegrationList>, ApiError> {
    let mut integrations = Vec::new();
    for integration in state.store.list_integrations(&query.account_id).await? {
        integrations.push(state.view(integration).await?);
    }
    Ok(Json(IntegrationList { integrations }))
}

pub async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath<IntegrationId>,
) -> Result<Json<IntegrationView>, ApiError> {
    let integration = state.live_integration(id).await?;
    Ok(Json(state.view(integration).await?))
}

pub async fn update(
    State(state): State<AppState>,
    IdPath(id): IdPath<IntegrationId>,
    ApiJson(body): ApiJson<UpdateIntegration>,
) -> Result<Json<IntegrationView>, ApiError> {
    let integration = state.live_integration(id).await?;
    let schedule = merge_schedule(integration.schedule.clone(), body.modules, body.schedule)?;
    let updated = if schedule == integration.schedule {
        integration
    } else {
        state.store.update_schedule(id, &schedule).await?
    };
    Ok(Json(state.view(updated).await?))
}

pub async fn disable(
    State(state): State<AppState>,
    IdPath(id): IdPath<IntegrationId>,
) -> Result<Json<IntegrationView>, ApiError> {
    state.live_integration(id).await?;
    let integration = state
        .store
        .set_integration_status(
            id,
            IntegrationStatus::Disabled,
            Some("disabled by the creator"),
        )
        .await?;
    Ok(Json(state.view(integration).await?))
}

pub async fn enable(
    State(state): State<AppState>,
    IdPath(id): IdPath<IntegrationId>,
) -> Result<Json<IntegrationView>, ApiError> {
    let integration = state.live_integration(id).await?;
    let integration = match integration.status {
        IntegrationStatus::Active => integration,
        IntegrationStatus::NeedsReauth => {
            return Err(ApiError::conflict(
                "needs_reauth",
                "Zoho no longer accepts this integration's credentials: reconnect it with a new grant code \
                 (PUT /v1/integrations/{id}/credentials), which also enables it",
            ))
        }
        IntegrationStatus::Disabled => state.store.set_integration_status(id, IntegrationStatus::Active, None).await?,
    };
    Ok(Json(state.view(integration).await?))
}

pub async fn map_audience(
    State(state): State<AppState>,
    IdPath(id): IdPath<IntegrationId>,
    ApiJson(body): ApiJson<MapAudience>,
) -> Result<Json<IntegrationView>, ApiError> {
    let integration = state.live_integration(id).await?;
    let audience = match state.store.get_audience(body.audience_id).await {
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::not_found(format!(
                "audience {} does not exist; create it first",
                body.audience_id
            ))
            .with_field("audience_id"))
        }
        other => other?,
    };
    if audience.account_id != integration.account_id {
        return Err(ApiError::conflict(
            "audience_other_account",
            "the audience belongs to another PledgeBox account; map one of this integration's account's audiences",
        )
        .with_field("audience_id"));
    }
    let integration = state.store.set_audience(id, Some(audience.id)).await?;
    tracing::info!(integration_id = %id, audience_id = %audience.id, "audience mapped");
    Ok(Json(state.view(integration).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    IdPath(id): IdPath<IntegrationId>,
) -> Result<Json<Deleted>, ApiError> {
    let integration = state.store.get_integration(id).await?;
    if integration.deleted_at.is_some() {
        return Ok(Json(Deleted {
            id,
            deleted: true,
            zoho_token_revoked: false,
        }));
    }
    let stored = state.store.integration_credentials(id).await?.credentials;
    // Deleted first, so no run starts with a token that is about to die.
    state.store.delete_integration(id).await?;
    let revoked = match state.open_secret(
        id,
        SecretColumn::RefreshToken,
        &stored.encryption_key_id,
        &stored.refresh_token.0,
    ) {
        Ok(token) => {
            state
                .revoke(Some(id), stored.data_center, &RefreshToken::from(token))
                .await
        }
        Err(_) => false,
    };
    if let Err(error) = state.tokens.forget(id).await {
        tracing::warn!(integration_id = %id, %error, "could not clear the cached tokens of a deleted integration");
    }
    tracing::info!(integration_id = %id, zoho_token_revoked = revoked, "integration deleted");
    Ok(Json(Deleted {
        id,
        deleted: true,
        zoho_token_revoked: revoked,
    }))
}
