//! Writing members: the one upsert statement and the two ways of feeding it — `unnest` arrays for
//! a sink's batch, and COPY into a temporary table for bulk loads (the benchmark's ceiling).
//! Both feed the same SQL, so both keep the same promises.

use std::borrow::Cow;
use std::fmt::Write as _;

use pledgesync_core::AudienceId;
use sqlx::PgConnection;

use crate::attributes::Attributes;
use crate::db::Store;
use crate::error::StoreError;
use crate::members::{normalize_email, MemberUpsert};

/// The shared member upsert. Reads relation `incoming(email, first_name, last_name, phone,
/// country, unsubscribed, attributes, modified_at)` with unique emails, and `$1` = audience.
/// Newest Modified_Time wins field by field; a NULL never wipes a value (the inserted row cannot
/// hold a NULL Email_Opt_Out, so the emails whose opt-out is unknown are looked up in `incoming`:
/// an uncorrelated `IN`, which PostgreSQL hashes once per statement, where a correlated lookup
/// scanned all of `incoming` for every conflicting row — quadratic in the group on a re-sync,
/// where every row conflicts); a member a sync removed
/// comes back when a live record brings it again. Rows are written in byte order of the email
/// (`COLLATE "C"`), the order in which [`crate::apply`] locks existing members (sorted in Rust),
/// so that concurrent transactions take row locks in one order: under the database's collation
/// (which may rank `.` and `_` differently, or ignore them) the two orders differed and
/// transactions deadlocked.
pub(crate) const UPSERT_MEMBERS_SQL: &str = "\
INSERT INTO audience_members AS m (audience_id, email, first_name, last_name, phone, country, unsubscribed, \
    attributes, source_modified_at, origin) \
SELECT $1, i.email, i.first_name, i.last_name, i.phone, i.country, COALESCE(i.unsubscribed, false), \
    jsonb_strip_nulls(i.attributes), i.modified_at, 'sync' FROM incoming i ORDER BY i.email COLLATE \"C\" \
ON CONFLICT (audience_id, email) DO UPDATE SET \
    first_name = CASE WHEN (m.source_modified_at IS NULL OR EXCLUDED.source_modified_at >= m.source_modified_at) \
        THEN COALESCE(EXCLUDED.first_name, m.first_name) ELSE m.first_name END, \
    last_name = CASE WHEN (m.source_modified_at IS NULL OR EXCLUDED.source_modified_at >= m.source_modified_at) \
        THEN COALESCE(EXCLUDED.last_name, m.last_name) ELSE m.last_name END, \
    phone = CASE WHEN (m.source_modified_at IS NULL OR EXCLUDED.source_modified_at >= m.source_modified_at) \
        THEN COALESCE(EXCLUDED.phone, m.phone) ELSE m.phone END, \
    country = CASE WHEN (m.source_modified_at IS NULL OR EXCLUDED.source_modified_at >= m.source_modified_at) \
        THEN COALESCE(EXCLUDED.country, m.country) ELSE m.country END, \
    unsubscribed = CASE WHEN (m.source_modified_at IS NULL OR EXCLUDED.source_modified_at >= m.source_modified_at) \
        THEN CASE WHEN EXCLUDED.email IN (SELECT u.email FROM incoming u WHERE u.unsubscribed IS NULL) \
            THEN m.unsubscribed ELSE EXCLUDED.unsubscribed END \
        ELSE m.unsubscribed END, \
    attributes = CASE WHEN (m.source_modified_at IS NULL OR EXCLUDED.source_modified_at >= m.source_modified_at) \
        THEN m.attributes || EXCLUDED.attributes ELSE m.attributes END, \
    source_modified_at = GREATEST(m.source_modified_at, EXCLUDED.source_modified_at), \
    removed_at = CASE WHEN m.removed_reason IN ('deleted_in_zoho', 'email_changed_in_zoho') THEN NULL \
        ELSE m.removed_at END, \
    removed_reason = CASE WHEN m.removed_reason IN ('deleted_in_zoho', 'email_changed_in_zoho') THEN NULL \
        ELSE m.removed_reason END, \
    updated_at = now() \
WHERE (m.source_modified_at IS NULL OR EXCLUDED.source_modified_at >= m.source_modified_at) \
    OR m.removed_reason IN ('deleted_in_zoho', 'email_changed_in_zoho')";

/// Merges records that share an email into one row per email, as if applied one after another
/// oldest first: a newer non-null value wins, a null never wipes. Invalid emails are dropped
/// (the caller counts them). The result is sorted by email. A record that is alone with its
/// email, already normalised (the sink's always are), is borrowed, not copied.
pub(crate) fn merge_by_email<'a>(
    records: impl IntoIterator<Item = &'a MemberUpsert>,
) -> Vec<Cow<'a, MemberUpsert>> {
    let mut keyed: Vec<(Cow<'a, str>, &MemberUpsert)> = records
        .into_iter()
        .filter_map(|r| {
            normalize_email(&r.email).map(|email| match email {
                Cow::Owned(email) if email != r.email => (Cow::Owned(email), r),
                _ => (Cow::Borrowed(r.email.as_str()), r),
            })
        })
        .collect();
    // Stable: equal Modified_Times keep batch order, so the later record wins the tie.
    keyed.sort_by(|(a, ra), (b, rb)| a.cmp(b).then(ra.modified_at.cmp(&rb.modified_at)));
    let mut merged: Vec<Cow<'a, MemberUpsert>> = Vec::with_capacity(keyed.len());
    for (email, record) in keyed {
        match merged.last_mut() {
            Some(last) if last.email == *email => {
                let last = last.to_mut();
                last.zoho_id = record.zoho_id.clone();
                overlay(&mut last.first_name, &record.first_name);
                overlay(&mut last.last_name, &record.last_name);
                overlay(&mut last.phone, &record.phone);
                overlay(&mut last.country, &record.country);
                if record.unsubscribed.is_some() {
                    last.unsubscribed = record.unsubscribed;
                }
                if !record.attributes.is_empty() {
                    let mut attributes = last.attributes.to_map();
                    for (key, value) in record.attributes.to_map() {
                        if !value.is_null() {
                            attributes.insert(key, value);
                        }
                    }
                    last.attributes = Attributes::from_map(&attributes);
                }
                last.modified_at = last.modified_at.max(record.modified_at);
            }
            _ => merged.push(match email {
                Cow::Borrowed(_) => Cow::Borrowed(record),
                Cow::Owned(email) => Cow::Owned(MemberUpsert {
                    email,
                    ..record.clone()
                }),
            }),
        }
    }
    merged
}

fn overlay(slot: &mut Option<String>, newer: &Option<String>) {
    if newer.is_some() {
        slot.clone_from(newer);
    }
}

/// The `incoming` relation of a batch, from arrays bound as `$2`..`$9`. The attributes come as
/// the JSON text the sink wrote ([`Attributes`]) and are parsed here, as a `jsonb` parameter's
/// would have been.
const INCOMING_FROM_ARRAYS: &str =
    "WITH incoming AS MATERIALIZED (SELECT email, first_name, last_name, phone, country, \
    unsubscribed, attributes_text::jsonb AS attributes, modified_at FROM unnest($2::text[], $3::text[], \
    $4::text[], $5::text[], $6::text[], $7::boolean[], $8::text[], $9::timestamptz[]) \
    AS t(email, first_name, last_name, phone, country, unsubscribed, attributes_text, modified_at)) ";

/// Writes merged members (unique, normalised emails) into the audience with one statement.
/// Returns how many rows were inserted or changed.
pub(crate) async fn upsert_members(
    conn: &mut PgConnection,
    audience: AudienceId,
    merged: &[Cow<'_, MemberUpsert>],
) -> Result<u64, StoreError> {
    if merged.is_empty() {
        return Ok(0);
    }
    let emails: Vec<&str> = merged.iter().map(|m| m.email.as_str()).collect();
    let first: Vec<Option<&str>> = merged.iter().map(|m| m.first_name.as_deref()).collect();
    let last: Vec<Option<&str>> = merged.iter().map(|m| m.last_name.as_deref()).collect();
    let phone: Vec<Option<&str>> = merged.iter().map(|m| m.phone.as_deref()).collect();
    let country: Vec<Option<&str>> = merged.iter().map(|m| m.country.as_deref()).collect();
    let unsubscribed: Vec<Option<bool>> = merged.iter().map(|m| m.unsubscribed).collect();
    let attributes: Vec<&str> = merged.iter().map(|m| m.attributes.json()).collect();
    let modified: Vec<chrono::DateTime<chrono::Utc>> =
        merged.iter().map(|m| m.modified_at).collect();
    let written = sqlx::query(&format!("{INCOMING_FROM_ARRAYS}{UPSERT_MEMBERS_SQL}"))
        .bind(audience.0)
        .bind(emails)
        .bind(first)
        .bind(last)
        .bind(phone)
        .bind(country)
        .bind(unsubscribed)
        .bind(attributes)
        .bind(modified)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(written)
}

impl Store {
    /// Bulk-loads members straight into an audience (no sources, no ledger): COPY into a
    /// temporary table, then the same upsert as [`Store::apply_batch`]. The fastest way in; used
    /// to measure the ceiling a sink's batch path is compared against. Returns rows written.
    #[tracing::instrument(name = "store.upsert_members_copy", skip(self, members), fields(members = members.len()), err)]
    pub async fn upsert_members_copy(
        &self,
        audience: AudienceId,
        members: &[MemberUpsert],
    ) -> Result<u64, StoreError> {
        let merged = merge_by_email(members);
        if merged.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "CREATE TEMP TABLE incoming (email text PRIMARY KEY, first_name text, last_name text, phone text, \
               country text, unsubscribed boolean, attributes jsonb, modified_at timestamptz) ON COMMIT DROP",
        )
        .execute(&mut *tx)
        .await?;
        let mut copy = tx
            .copy_in_raw(
                "COPY incoming (email, first_name, last_name, phone, country, unsubscribed, attributes, modified_at) \
                 FROM STDIN (FORMAT text)",
            )
            .await?;
        let mut chunk = String::with_capacity(64 * 1024);
        for member in &merged {
            copy_row(&mut chunk, member);
            if chunk.len() >= 60 * 1024 {
                copy.send(chunk.as_bytes()).await?;
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            copy.send(chunk.as_bytes()).await?;
        }
        copy.finish().await?;
        let written = sqlx::query(UPSERT_MEMBERS_SQL)
            .bind(audience.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(written)
    }
}

/// One member as a line of COPY's text format.
fn copy_row(out: &mut String, m: &MemberUpsert) {
    copy_field(out, Some(&m.email));
    for value in [&m.first_name, &m.last_name, &m.phone, &m.country] {
        out.push('\t');
        copy_field(out, value.as_deref());
    }
    out.push('\t');
    copy_field(out, m.unsubscribed.map(|u| if u { "t" } else { "f" }));
    out.push('\t');
    copy_field(out, Some(m.attributes.json()));
    out.push('\t');
    let _ = write!(out, "{}", m.modified_at.to_rfc3339());
    out.push('\n');
}

/// COPY text format: `\N` is NULL; backslash, tab, newline and carriage return are escaped.
fn copy_field(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use pledgesync_core::ZohoRecordId;

    fn record(id: &str, email: &str, minute: u32, first: Option<&str>) -> MemberUpsert {
        MemberUpsert {
            zoho_id: ZohoRecordId::parse(id).expect("id"),
            email: email.into(),
            first_name: first.map(str::to_owned),
            last_name: None,
            phone: None,
            country: None,
            unsubscribed: None,
            attributes: Default::default(),
            modified_at: Utc
                .with_ymd_and_hms(2024, 1, 1, 0, minute, 0)
                .single()
                .expect("time"),
        }
    }

    #[test]
    fn merging_keeps_newest_values_and_never_wipes_with_null() {
        let records = [
            record("2", "ADA@example.com", 5, None),
            record("1", "ada@example.com", 1, Some("Ada")),
            record("3", "bob@example.com", 1, Some("Bob")),
            record("4", "not an email", 1, Some("X")),
        ];
        let merged = merge_by_email(&records);
        assert_eq!(merged.len(), 2);
        assert!(matches!(merged[0], Cow::Owned(_)), "merged rows are new");
        assert!(
            matches!(merged[1], Cow::Borrowed(_)),
            "a record alone with its normalised email is not copied"
        );
        assert_eq!(merged[0].email, "ada@example.com");
        assert_eq!(merged[0].first_name.as_deref(), Some("Ada"));
        assert_eq!(merged[0].zoho_id.as_str(), "2");
        assert_eq!(merged[0].modified_at.format("%M").to_string(), "05");
        assert_eq!(merged[1].email, "bob@example.com");
    }

    #[test]
    fn attributes_merge_key_by_key_and_a_null_wipes_none() {
        let with = |id, minute, object: serde_json::Value| {
            let mut r = record(id, "a@x.io", minute, None);
            if let serde_json::Value::Object(map) = object {
                r.attributes = Attributes::from_map(&map);
            }
            r
        };
        let records = [
            with("1", 1, serde_json::json!({"a": 1, "b": 2})),
            with("2", 5, serde_json::json!({"b": 3, "c": null})),
        ];
        let merged = merge_by_email(&records);
        assert_eq!(merged.len(), 1);
        assert_eq!(
            serde_json::Value::Object(merged[0].attributes.to_map()),
            serde_json::json!({"a": 1, "b": 3})
        );
    }

    #[test]
    fn a_newer_value_wins_the_merge() {
        let records = [
            record("1", "a@x.io", 9, Some("New")),
            record("2", "a@x.io", 1, Some("Old")),
        ];
        let merged = merge_by_email(&records);
        assert_eq!(merged[0].first_name.as_deref(), Some("New"));
    }
    #[test]
    fn copy_rows_escape_what_copy_would_misread() {
        let mut member = record("1", "a@x.io", 1, Some("Tab\there\\back"));
        member.last_name = Some("line\nbreak".into());
        member.unsubscribed = Some(true);
        let mut line = String::new();
        copy_row(&mut line, &member);
        assert!(line.starts_with("a@x.io\tTab\\there\\\\back\tline\\nbreak\t\\N\t\\N\tt\t{}\t2024-01-01T00:01:00+00:00\n"), "{line}");
        assert_eq!(line.matches('\n').count(), 1);
    }
}
