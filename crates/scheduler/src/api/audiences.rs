//! Audiences: create and list per PledgeBox account, read one, page through its members.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use pledgesync_core::{AccountId, AudienceId, IntegrationId, Module};
use pledgesync_store::{Member, MemberOrigin, MemberSource};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiQuery, IdPath};
use crate::api::integrations::{check_name, AccountQuery};
use crate::api::views::AudienceView;
use crate::state::AppState;

/// Members per page when `limit` is not given, and the most a page may hold.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;
/// Cursors are base64 of an email; emails are at most 254 bytes.
const MAX_CURSOR: usize = 400;

/// `POST /v1/audiences`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAudience {
    account_id: AccountId,
    name: String,
}

/// `?limit=&cursor=` of the members list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

/// The audiences of an account.
#[derive(Serialize)]
pub struct AudienceList {
    audiences: Vec<AudienceView>,
}

/// A record that brought a member.
#[derive(Serialize)]
pub struct SourceView {
    integration_id: IntegrationId,
    zoho_module: Module,
    zoho_id: String,
}

/// A member of an audience.
#[derive(Serialize)]
pub struct MemberView {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    country: Option<String>,
    /// Opted out in Zoho (Email_Opt_Out): never mail them.
    unsubscribed: bool,
    /// The module of the record that brought the member (the first live source), if synced.
    zoho_module: Option<Module>,
    /// That record's Zoho id.
    zoho_id: Option<String>,
    /// Every live record that brought the member.
    sources: Vec<SourceView>,
    /// `sync` or `external`.
    origin: &'static str,
    attributes: serde_json::Map<String, serde_json::Value>,
    source_modified_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A page of members, by email.
#[derive(Serialize)]
pub struct MemberList {
    members: Vec<MemberView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

impl MemberView {
    fn new(member: Member, sources: Vec<MemberSource>) -> Self {
        let live: Vec<SourceView> = sources
            .into_iter()
            .filter(|s| s.removed_at.is_none())
            .map(|s| SourceView {
                integration_id: s.integration_id,
                zoho_module: s.module,
                zoho_id: s.zoho_id.to_string(),
            })
            .collect();
        Self {
            zoho_module: live.first().map(|s| s.zoho_module),
            zoho_id: live.first().map(|s| s.zoho_id.clone()),
            sources: live,
            email: member.email,
            first_name: member.first_name,
            last_name: member.last_name,
            phone: member.phone,
            country: member.country,
            unsubscribed: member.unsubscribed,
            origin: match member.origin {
                MemberOrigin::Sync => "sync",
                MemberOrigin::External => "external",
            },
            attributes: member.attributes,
            source_modified_at: member.source_modified_at,
            created_at: member.created_at,
            updated_at: member.updated_at,
        }
    }
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_query",
            "cursor is not one this API returned; start again without it",
        )
        .with_field("cursor")
    };
    if cursor.len() > MAX_CURSOR {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    // Emails never hold control characters, and PostgreSQL refuses a NUL in text outright.
    String::from_utf8(bytes)
        .ok()
        .filter(|email| !email.chars().any(char::is_control))
        .ok_or_else(invalid)
}

fn encode_cursor(email: &str) -> String {
    URL_SAFE_NO_PAD.encode(email.as_bytes())
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateAudience>,
) -> Result<(StatusCode, Json<AudienceView>), ApiError> {
    let name = check_name(&body.name)?;
    let audience = state.store.create_audience(&body.account_id, &name).await?;
    tracing::info!(audience_id = %audience.id, account_id = %audience.account_id, "audience created");
    Ok((StatusCode::CREATED, Json(audience.into())))
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AccountQuery>,
) -> Result<Json<AudienceList>, ApiError> {
    let audiences = state.store.list_audiences(&query.account_id).await?;
    Ok(Json(AudienceList {
        audiences: audiences.into_iter().map(AudienceView::from).collect(),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath<AudienceId>,
) -> Result<Json<AudienceView>, ApiError> {
    Ok(Json(state.store.get_audience(id).await?.into()))
}

pub async fn members(
    State(state): State<AppState>,
    IdPath(id): IdPath<AudienceId>,
    ApiQuery(query): ApiQuery<MembersQuery>,
) -> Result<Json<MemberList>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        )
        .with_field("limit"));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    state.store.get_audience(id).await?;
    let page = state
        .store
        .list_members(id, limit, after.as_deref())
        .await?;
    let sources = futures::future::try_join_all(
        page.members
            .iter()
            .map(|m| state.store.member_sources(id, &m.email)),
    )
    .await?;
    let members = page
        .members
        .into_iter()
        .zip(sources)
        .map(|(m, s)| MemberView::new(m, s))
        .collect();
    Ok(Json(MemberList {
        members,
        next_cursor: page.next_after.as_deref().map(encode_cursor),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor("ada@example.com");
        assert_eq!(
            decode_cursor(&cursor).ok().as_deref(),
            Some("ada@example.com")
        );
        for bad in ["!!!", "%%", &"A".repeat(MAX_CURSOR + 4)] {
            let err = decode_cursor(bad).expect_err("refused");
            assert_eq!(
                (err.status, err.field.as_deref()),
                (StatusCode::BAD_REQUEST, Some("cursor"))
            );
        }
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode([0xff, 0xfe])).is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("a\0b")).is_err());
    }
}
