//! Zoho records as audience members: the one place that knows which Zoho field means what.
//!
//! A record (a JSON object as Zoho returned it for the requested fields) either maps to a
//! [`MemberUpsert`] or is skipped with a [`SkipReason`]; nothing a record can hold makes the
//! mapping panic or produce a value PostgreSQL would refuse (NUL characters are removed, because
//! neither `text` nor `jsonb` can store them and one would fail the whole batch).
//!
//! The rules:
//! - `id` must be a string of digits (`missing_id`, `invalid_id`).
//! - `Email` is the key: trimmed, lower-cased, validated by [`Email::parse`] (`missing_email`,
//!   `invalid_email`). `Secondary_Email` is never used instead: the key must stay the same when a
//!   record is edited, and filling a blank `Email` later would otherwise move the member; nor is
//!   `Email_Opt_Out` known to cover the secondary address. It is kept as an attribute.
//! - `Modified_Time` must be an ISO-8601 time with an offset (`missing_modified_time`,
//!   `invalid_modified_time`): without it newest-wins cannot order versions of a record.
//! - `First_Name`, `Last_Name`, `Phone` (else `Mobile`), and `Mailing_Country` (Contacts) or
//!   `Country` (Leads) fill the member's columns, trimmed; `Email_Opt_Out: true` unsubscribes,
//!   `false` resubscribes.
//! - A null, a blank string or a value of the wrong type is `None`, never an empty string: the
//!   store keeps what it has for `None`, so a null from Zoho never wipes a value.
//! - Every other field is kept in `attributes`: `$`-prefixed system keys are dropped, nulls are
//!   dropped (so they cannot wipe a stored attribute), lookups (`Owner`, `Account_Name`, ...)
//!   become their `name`, lists of lookups (`Tag`) a list of names.
//!
//! Delete batches hold entries of Zoho's deleted-records API (`{id, deleted_time, type, ...}`);
//! each becomes a [`SourceDeletion`] (`missing_id`, `invalid_id`, `invalid_deleted_time` when
//! skipped). A missing `deleted_time` is allowed: a fetcher that confirmed a record gone by
//! reading it by id has no time to give.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use pledgesync_core::record::RawRecord;
use pledgesync_core::{Module, ZohoRecordId};
use pledgesync_store::{MemberUpsert, SourceDeletion};
use serde_json::{Map, Value};

use crate::email::{Email, EmailError};
use crate::fields::{Fields, Reading, Scalar};

/// A Zoho record, read from the text a `RecordBatch` carries ([`RawRecord`]).
pub type Record = Map<String, Value>;

/// Why a record did not become a member (or a deletion). The labels are what the run's
/// `skipped_by_reason` and the `reason` label of `pledgesync_records_skipped_total` show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// No `id`.
    MissingId,
    /// An `id` that is not a string of digits.
    InvalidId,
    /// No `Email`, a null one, or only whitespace.
    MissingEmail,
    /// An `Email` nobody could send to.
    InvalidEmail,
    /// No `Modified_Time` (the fetcher must request it).
    MissingModifiedTime,
    /// A `Modified_Time` that is not ISO-8601 with an offset.
    InvalidModifiedTime,
    /// A deleted-records entry whose `deleted_time` is not ISO-8601 with an offset.
    InvalidDeletedTime,
    /// A record whose JSON cannot be read (nested deeper than the JSON reader allows).
    MalformedRecord,
}

impl SkipReason {
    pub const ALL: [SkipReason; 8] = [
        SkipReason::MissingId,
        SkipReason::InvalidId,
        SkipReason::MissingEmail,
        SkipReason::InvalidEmail,
        SkipReason::MissingModifiedTime,
        SkipReason::InvalidModifiedTime,
        SkipReason::InvalidDeletedTime,
        SkipReason::MalformedRecord,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::MissingId => "missing_id",
            SkipReason::InvalidId => "invalid_id",
            SkipReason::MissingEmail => "missing_email",
            SkipReason::InvalidEmail => "invalid_email",
            SkipReason::MissingModifiedTime => "missing_modified_time",
            SkipReason::InvalidModifiedTime => "invalid_modified_time",
            SkipReason::InvalidDeletedTime => "invalid_deleted_time",
            SkipReason::MalformedRecord => "malformed_record",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Skipped records counted by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkipCounts(BTreeMap<SkipReason, u32>);

impl SkipCounts {
    pub fn add(&mut self, reason: SkipReason) {
        *self.0.entry(reason).or_default() += 1;
    }

    /// How many were skipped for `reason`.
    pub fn get(&self, reason: SkipReason) -> u32 {
        self.0.get(&reason).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u32 {
        self.0.values().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (SkipReason, u32)> + '_ {
        self.0.iter().map(|(reason, n)| (*reason, *n))
    }

    /// The shape the store's ledger keeps.
    pub fn to_ledger(&self) -> BTreeMap<String, u32> {
        self.0
            .iter()
            .map(|(reason, n)| (reason.as_str().to_owned(), *n))
            .collect()
    }
}

/// An upsert batch's records, mapped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MappedUpserts {
    /// The records that became members, in batch order.
    pub members: Vec<MemberUpsert>,
    /// The records that did not, by reason.
    pub skipped: SkipCounts,
}

/// A delete batch's entries, mapped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappedDeletions {
    /// The records Zoho reports deleted.
    pub deletions: Vec<SourceDeletion>,
    /// The entries that could not be read, by reason.
    pub skipped: SkipCounts,
}

/// Maps every record of an upsert batch from `module`.
pub fn map_upserts(module: Module, records: &[RawRecord]) -> MappedUpserts {
    let reading = reading(module);
    let mut mapped = MappedUpserts::default();
    for record in records {
        let read = reading
            .read(record)
            .map_err(|_| SkipReason::MalformedRecord);
        match read.and_then(map_fields) {
            Ok(member) => mapped.members.push(member),
            Err(reason) => mapped.skipped.add(reason),
        }
    }
    mapped
}

/// Maps one Zoho record of `module` into a member, or says why it cannot be one. Checked in the
/// order id, email, Modified_Time: a record is counted once, under the first reason found.
pub fn map_record(module: Module, record: &Record) -> Result<MemberUpsert, SkipReason> {
    let record = RawRecord::from_map(record);
    let fields = reading(module)
        .read(&record)
        .map_err(|_| SkipReason::MalformedRecord)?;
    map_fields(fields)
}

/// How `module`'s records are read: its country field, and attributes as [`attribute`] makes them.
fn reading(module: Module) -> Reading<'static> {
    Reading {
        country_field: country_field(module),
        value: attribute,
        key: without_nul,
    }
}

fn map_fields(fields: Fields<'_>) -> Result<MemberUpsert, SkipReason> {
    let zoho_id = match &fields.id {
        Scalar::Absent | Scalar::Null => return Err(SkipReason::MissingId),
        Scalar::Text(id) => ZohoRecordId::parse(id.trim()).map_err(|_| SkipReason::InvalidId)?,
        Scalar::Bool(_) | Scalar::Other => return Err(SkipReason::InvalidId),
    };
    let email = match &fields.email {
        Scalar::Absent | Scalar::Null => return Err(SkipReason::MissingEmail),
        Scalar::Text(text) => Email::parse(text).map_err(|error| match error {
            EmailError::Empty => SkipReason::MissingEmail,
            EmailError::Invalid => SkipReason::InvalidEmail,
        })?,
        Scalar::Bool(_) | Scalar::Other => return Err(SkipReason::InvalidEmail),
    };
    let modified_at = match &fields.modified_time {
        Scalar::Absent | Scalar::Null => return Err(SkipReason::MissingModifiedTime),
        value => value
            .as_str()
            .and_then(timestamp)
            .ok_or(SkipReason::InvalidModifiedTime)?,
    };
    Ok(MemberUpsert {
        zoho_id,
        email: email.into_string(),
        first_name: text(&fields.first_name),
        last_name: text(&fields.last_name),
        phone: text(&fields.phone).or_else(|| text(&fields.mobile)),
        country: text(&fields.country),
        unsubscribed: match fields.opt_out {
            Scalar::Bool(flag) => Some(flag),
            _ => None,
        },
        attributes: fields.attributes,
        modified_at,
    })
}

/// Maps every entry of a delete batch.
pub fn map_deletions(entries: &[RawRecord]) -> MappedDeletions {
    let mut mapped = MappedDeletions::default();
    for entry in entries {
        let read = entry.to_map().map_err(|_| SkipReason::MalformedRecord);
        match read.and_then(|entry| map_deletion(&entry)) {
            Ok(deletion) => mapped.deletions.push(deletion),
            Err(reason) => mapped.skipped.add(reason),
        }
    }
    mapped
}

/// Maps one entry of Zoho's deleted-records API.
pub fn map_deletion(entry: &Record) -> Result<SourceDeletion, SkipReason> {
    let zoho_id = record_id(entry)?;
    let deleted_at = match entry.get("deleted_time") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_str()
                .and_then(timestamp)
                .ok_or(SkipReason::InvalidDeletedTime)?,
        ),
    };
    Ok(SourceDeletion {
        zoho_id,
        deleted_at,
    })
}

/// The field holding the country: Contacts have a mailing address, Leads a plain one.
pub fn country_field(module: Module) -> &'static str {
    match module {
        Module::Contacts => "Mailing_Country",
        Module::Leads => "Country",
    }
}

fn record_id(record: &Record) -> Result<ZohoRecordId, SkipReason> {
    match record.get("id") {
        None | Some(Value::Null) => Err(SkipReason::MissingId),
        Some(Value::String(id)) => {
            ZohoRecordId::parse(id.trim()).map_err(|_| SkipReason::InvalidId)
        }
        Some(_) => Err(SkipReason::InvalidId),
    }
}

/// Zoho's `2023-10-15T14:20:00+05:30` (RFC 3339), in UTC.
fn timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A trimmed, non-empty string field; anything else is `None`.
fn text(value: &Scalar<'_>) -> Option<String> {
    let value = value.as_str()?.trim();
    let cleaned = if value.contains('\0') {
        Cow::Owned(value.replace('\0', ""))
    } else {
        Cow::Borrowed(value)
    };
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

/// A kept field's value with lookups reduced to their names.
fn attribute(value: Value) -> Value {
    match value {
        Value::Object(mut object) => match object.remove("name") {
            Some(Value::String(name)) => Value::String(without_nul(name)),
            name => {
                if let Some(name) = name {
                    object.insert("name".to_owned(), name);
                }
                Value::Object(
                    object
                        .into_iter()
                        .filter(|(key, _)| !key.starts_with('$'))
                        .map(|(key, value)| (without_nul(key), attribute(value)))
                        .collect(),
                )
            }
        },
        Value::Array(items) => Value::Array(items.into_iter().map(attribute).collect()),
        Value::String(text) => Value::String(without_nul(text)),
        other => other,
    }
}

/// PostgreSQL stores no NUL character in `text` or `jsonb`.
fn without_nul(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
