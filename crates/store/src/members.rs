//! Audience members and the sources that brought them: the record shape a sink hands over, the
//! one upsert statement that writes members (shared by [`Store::apply_batch`] and the COPY bulk
//! path), and the reads the API and the fetcher need.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use pledgesync_core::{AudienceId, IntegrationId, Module, RunId, ZohoRecordId};
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::attributes::Attributes;
use crate::codec::parse_module;
use crate::db::Store;
use crate::error::StoreError;

/// Removal reasons a sync writes. Only members removed for one of these come back when a live
/// record brings them again; a removal by anyone else (the PledgeBox app) is left alone.
pub const REMOVED_DELETED_IN_ZOHO: &str = "deleted_in_zoho";
/// The record that brought the member now has another email.
pub const REMOVED_EMAIL_CHANGED: &str = "email_changed_in_zoho";

/// The skip reason the store adds for records older than what it already holds for them.
pub const SKIPPED_SUPERSEDED: &str = "superseded";
/// The skip reason the store adds for records whose email is not usable as a member key.
pub const SKIPPED_INVALID_EMAIL: &str = "invalid_email";

/// Lower-cases and trims an email into the member key; `None` when nothing usable is left (empty,
/// no `@`, inner whitespace or control characters, longer than 320 characters). An email that is
/// already a key is borrowed: a sink hands over normalised emails, and the store checks each one
/// on its way in, so copying them was a share of a sink's CPU for nothing.
pub fn normalize_email(raw: &str) -> Option<Cow<'_, str>> {
    let bytes = raw.as_bytes();
    // Printable ASCII other than upper-case letters: trimming and lower-casing change nothing,
    // and nothing in it is whitespace or a control character.
    let already_key = !bytes.is_empty()
        && bytes.len() <= 320
        && bytes
            .iter()
            .all(|b| matches!(b, 0x21..=0x7e) && !b.is_ascii_uppercase())
        && bytes.contains(&b'@');
    if already_key {
        return Some(Cow::Borrowed(raw));
    }
    normalize_by_copy(raw).map(Cow::Owned)
}

/// The rule itself, on a copy.
fn normalize_by_copy(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let usable = !email.is_empty()
        && email.len() <= 320
        && email.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    usable.then_some(email)
}

/// One Zoho record mapped into a member, as a sink hands it over.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberUpsert {
    /// The Zoho record it came from (the source key with the batch's integration and module).
    pub zoho_id: ZohoRecordId,
    /// The email; normalised by the store as well ([`normalize_email`]).
    pub email: String,
    /// First name; `None` (Zoho's null) never wipes a stored value.
    pub first_name: Option<String>,
    /// Last name; `None` never wipes.
    pub last_name: Option<String>,
    /// Phone; `None` never wipes.
    pub phone: Option<String>,
    /// Country; `None` never wipes.
    pub country: Option<String>,
    /// Zoho's Email_Opt_Out; `None` keeps the stored value (a new member starts subscribed).
    pub unsubscribed: Option<bool>,
    /// Further fields for PledgeBox; keys whose value is null never wipe a stored key.
    pub attributes: Attributes,
    /// Zoho's Modified_Time: the newest version of a member wins (promise 3).
    pub modified_at: DateTime<Utc>,
}

/// Who created a member row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberOrigin {
    /// A sync created it; a sync may remove it when its last source is gone.
    Sync,
    /// Someone else did (the PledgeBox app); a sync never removes it.
    External,
}

/// A member of an audience.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The audience.
    pub audience_id: AudienceId,
    /// The normalised email (the key within the audience).
    pub email: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Opted out of email (Zoho's Email_Opt_Out): never mail them.
    pub unsubscribed: bool,
    /// Further fields.
    pub attributes: Map<String, Value>,
    /// Modified_Time of the newest record applied; `None` for rows from elsewhere never synced.
    pub source_modified_at: Option<DateTime<Utc>>,
    /// Who created the row.
    pub origin: MemberOrigin,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was removed from the audience; `None` while it is a member.
    pub removed_at: Option<DateTime<Utc>>,
    /// Why it was removed.
    pub removed_reason: Option<String>,
}

/// One record that brought a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSource {
    /// The integration that read it.
    pub integration_id: IntegrationId,
    /// Its module.
    pub module: Module,
    /// Its Zoho id.
    pub zoho_id: ZohoRecordId,
    /// Modified_Time of its newest version applied.
    pub modified_at: Option<DateTime<Utc>>,
    /// The last run that saw it.
    pub last_seen_run_id: Option<RunId>,
    /// When it stopped counting (deleted in Zoho, email changed, integration deleted).
    pub removed_at: Option<DateTime<Utc>>,
    /// Why.
    pub removed_reason: Option<String>,
}

/// A page of members.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberPage {
    /// Members ordered by email.
    pub members: Vec<Member>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_after: Option<String>,
}

impl Member {
    fn from_row(row: &PgRow) -> Result<Self, StoreError> {
        let origin: String = row.try_get("origin")?;
        let attributes: Value = row.try_get("attributes")?;
        Ok(Member {
            audience_id: AudienceId(row.try_get("audience_id")?),
            email: row.try_get("email")?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            phone: row.try_get("phone")?,
            country: row.try_get("country")?,
            unsubscribed: row.try_get("unsubscribed")?,
            attributes: match attributes {
                Value::Object(map) => map,
                other => {
                    return Err(StoreError::corrupt(format!(
                        "member attributes are not an object: {other}"
                    )))
                }
            },
            source_modified_at: row.try_get("source_modified_at")?,
            origin: if origin == "sync" {
                MemberOrigin::Sync
            } else {
                MemberOrigin::External
            },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            removed_at: row.try_get("removed_at")?,
            removed_reason: row.try_get("removed_reason")?,
        })
    }
}

const MEMBER_COLUMNS: &str =
    "audience_id, email, first_name, last_name, phone, country, unsubscribed, attributes, \
    source_modified_at, origin, created_at, updated_at, removed_at, removed_reason";

impl Store {
    /// A page of the audience's current members (removed ones left out), by email: keyset
    /// paging, so deep pages cost the same as the first.
    pub async fn list_members(
        &self,
        audience: AudienceId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<MemberPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let rows = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM audience_members \
             WHERE audience_id = $1 AND removed_at IS NULL AND ($2::text IS NULL OR email > $2) \
             ORDER BY email LIMIT $3"
        ))
        .bind(audience.0)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let members: Vec<Member> = rows
            .iter()
            .map(Member::from_row)
            .collect::<Result<_, _>>()?;
        let next_after = if members.len() == limit as usize {
            members.last().map(|m| m.email.clone())
        } else {
            None
        };
        Ok(MemberPage {
            members,
            next_after,
        })
    }

    /// How many current members the audience has.
    pub async fn count_members(&self, audience: AudienceId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audience_members WHERE audience_id = $1 AND removed_at IS NULL",
        )
        .bind(audience.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One member by email (normalised here), removed or not.
    pub async fn get_member(
        &self,
        audience: AudienceId,
        email: &str,
    ) -> Result<Option<Member>, StoreError> {
        let Some(email) = normalize_email(email) else {
            return Ok(None);
        };
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM audience_members WHERE audience_id = $1 AND email = $2"
        ))
        .bind(audience.0)
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Member::from_row).transpose()
    }

    /// The records that brought a member (live and removed), for "where did this come from?".
    pub async fn member_sources(
        &self,
        audience: AudienceId,
        email: &str,
    ) -> Result<Vec<MemberSource>, StoreError> {
        let Some(email) = normalize_email(email) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT integration_id, zoho_module, zoho_id, modified_at, last_seen_run_id, removed_at, removed_reason \
             FROM member_sources WHERE audience_id = $1 AND email = $2 ORDER BY integration_id, zoho_module, zoho_id",
        )
        .bind(audience.0)
        .bind(email)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let module: String = row.try_get("zoho_module")?;
                let zoho_id: String = row.try_get("zoho_id")?;
                Ok(MemberSource {
                    integration_id: IntegrationId(row.try_get("integration_id")?),
                    module: parse_module(&module)?,
                    zoho_id: ZohoRecordId::parse(zoho_id)
                        .map_err(|e| StoreError::corrupt(format!("zoho_id: {e}")))?,
                    modified_at: row.try_get("modified_at")?,
                    last_seen_run_id: row
                        .try_get::<Option<uuid::Uuid>, _>("last_seen_run_id")?
                        .map(RunId),
                    removed_at: row.try_get("removed_at")?,
                    removed_reason: row.try_get("removed_reason")?,
                })
            })
            .collect()
    }

    /// For a full run's deletion check: the Zoho ids of this integration's live sources in
    /// `module` that the run did not see, by id, `limit` at a time after `after`. Call it only
    /// once every upsert batch of the run is applied (no outstanding batches). These are only
    /// candidates: confirm with Zoho that they are gone before publishing a Delete batch —
    /// absence from paging is not proof.
    pub async fn members_unseen_by_run(
        &self,
        integration: IntegrationId,
        run: RunId,
        module: Module,
        after: Option<&ZohoRecordId>,
        limit: u32,
    ) -> Result<Vec<ZohoRecordId>, StoreError> {
        let unseen = self
            .unseen_sources_with_versions(integration, run, module, after, limit)
            .await?;
        Ok(unseen.into_iter().map(|(id, _)| id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            normalize_email("  Ada@Example.COM "),
            Some("ada@example.com".into())
        );
        assert_eq!(normalize_email("   "), None);
        assert_eq!(normalize_email("no-at-sign"), None);
        assert_eq!(normalize_email("a b@example.com"), None);
    }

    #[test]
    fn borrowing_an_email_that_is_already_a_key_changes_no_answer() {
        let long = format!("{}@x.io", "a".repeat(315));
        let longer = format!("{}@x.io", "a".repeat(316));
        let cases = [
            "ada@example.com",
            "Ada@example.com",
            " ada@example.com",
            "ada@example.com\t",
            "ada@exa\u{7f}mple.com",
            "ada@exa\u{1}mple.com",
            "ÄDA@example.com",
            "ada@ex\u{a0}ample.com",
            "ada@",
            "@",
            "ada",
            "",
            "a@b@c",
            "ada@example.com\u{2028}",
            "İ@x.io",
            "~!#$%&'*+/=?^_`{|}@x.io",
            &long,
            &longer,
        ];
        for case in cases {
            let fast = normalize_email(case);
            assert_eq!(
                fast.as_deref(),
                normalize_by_copy(case).as_deref(),
                "{case:?}"
            );
            if let Some(Cow::Borrowed(key)) = fast {
                assert_eq!(key, case);
            }
        }
        assert!(matches!(
            normalize_email("ada@example.com"),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(long.len(), 320);
        assert_eq!(normalize_email(&longer), None);
    }
}
