//! What the audience must hold, computed from the emulator's records with the documented mapping
//! rules (crates/sink/src/mapping.rs), independently of the code under test — except the email
//! syntax check, which is the sink's own `Email::parse` (its rules are unit-tested there).
//!
//! Rules checked: a record with a usable `Email` becomes a member keyed by the trimmed,
//! lower-cased address; records sharing an address collapse into one member carrying the values
//! of the newest `Modified_Time` (a null there may leave an older record's value in place: a null
//! never wipes); `First_Name`, `Last_Name`, `Phone` (else `Mobile`), `Mailing_Country` (Contacts)
//! or `Country` (Leads), and `Email_Opt_Out` as `unsubscribed`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use pledgesync_sink::email::Email;
use serde_json::Value;

/// One record's version of a member.
#[derive(Clone, Debug)]
struct Version {
    modified: DateTime<Utc>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    country: Option<String>,
    unsubscribed: Option<bool>,
    source: String,
}

fn text(record: &Value, field: &str) -> Option<String> {
    record[field]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn version(module: &str, record: &Value) -> Option<(String, Version)> {
    let email = Email::parse(record["Email"].as_str()?).ok()?;
    let modified = DateTime::parse_from_rfc3339(record["Modified_Time"].as_str()?)
        .ok()?
        .with_timezone(&Utc);
    let country_field = if module == "Contacts" {
        "Mailing_Country"
    } else {
        "Country"
    };
    Some((
        email.as_str().to_owned(),
        Version {
            modified,
            first_name: text(record, "First_Name"),
            last_name: text(record, "Last_Name"),
            phone: text(record, "Phone").or_else(|| text(record, "Mobile")),
            country: text(record, country_field),
            unsubscribed: record["Email_Opt_Out"].as_bool(),
            source: format!("{module}/{}", record["id"].as_str().unwrap_or_default()),
        },
    ))
}

/// The members the records of each module must produce, by email.
pub struct Expected {
    by_email: BTreeMap<String, Vec<Version>>,
}

impl Expected {
    pub fn from_records(modules: &[(&str, &[Value])]) -> Self {
        let mut by_email: BTreeMap<String, Vec<Version>> = BTreeMap::new();
        for (module, records) in modules {
            for record in *records {
                if let Some((email, version)) = version(module, record) {
                    by_email.entry(email).or_default().push(version);
                }
            }
        }
        for versions in by_email.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(v.modified));
        }
        Self { by_email }
    }

    pub fn len(&self) -> usize {
        self.by_email.len()
    }

    /// Compares the synced members of an audience with the records, field by field. Members
    /// whose email is in `ignore` (added from elsewhere) are left out.
    pub fn check(&self, members: &[Value], ignore: &BTreeSet<String>) -> Result<(), String> {
        let mut problems = Vec::new();
        let actual: BTreeMap<String, &Value> = members
            .iter()
            .filter_map(|m| Some((m["email"].as_str()?.to_owned(), m)))
            .filter(|(email, _)| !ignore.contains(email))
            .collect();
        for email in self.by_email.keys().filter(|e| !actual.contains_key(*e)) {
            problems.push(format!(
                "missing member {email} (from {})",
                self.by_email[email][0].source
            ));
        }
        for email in actual.keys().filter(|e| !self.by_email.contains_key(*e)) {
            problems.push(format!("member {email} has no live record in Zoho"));
        }
        for (email, member) in &actual {
            let Some(versions) = self.by_email.get(email) else {
                continue;
            };
            check_member(email, member, versions, &mut problems);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            let count = problems.len();
            problems.truncate(20);
            Err(format!(
                "{count} differences, e.g.:\n{}",
                problems.join("\n")
            ))
        }
    }
}

/// The values a field may hold: the newest version's, or when that is null, null or any older
/// version's value (a null never wipes, and the order in which versions were applied decides).
fn allowed<T: Clone + PartialEq>(
    versions: &[Version],
    field: impl Fn(&Version) -> Option<T>,
) -> Vec<Option<T>> {
    let newest = versions[0].modified;
    let tied: Vec<Option<T>> = versions
        .iter()
        .filter(|v| v.modified == newest)
        .map(&field)
        .collect();
    if tied.iter().any(Option::is_some) && tied.iter().all(Option::is_some) {
        return tied;
    }
    let mut options = tied;
    options.push(None);
    options.extend(versions.iter().map(&field).filter(Option::is_some));
    options
}

fn check_member(email: &str, member: &Value, versions: &[Version], problems: &mut Vec<String>) {
    let string = |key: &str| member[key].as_str().map(str::to_owned);
    type Field<'a> = (&'a str, Option<String>, Vec<Option<String>>);
    let fields: [Field; 4] = [
        (
            "first_name",
            string("first_name"),
            allowed(versions, |v| v.first_name.clone()),
        ),
        (
            "last_name",
            string("last_name"),
            allowed(versions, |v| v.last_name.clone()),
        ),
        (
            "phone",
            string("phone"),
            allowed(versions, |v| v.phone.clone()),
        ),
        (
            "country",
            string("country"),
            allowed(versions, |v| v.country.clone()),
        ),
    ];
    for (name, actual, options) in fields {
        if !options.contains(&actual) {
            problems.push(format!(
                "{email}: {name} is {actual:?}, expected one of {options:?} (newest {})",
                versions[0].source
            ));
        }
    }
    // A null opt-out keeps what was there; the default is subscribed.
    let unsubscribed = member["unsubscribed"].as_bool();
    let mut options: Vec<Option<bool>> = allowed(versions, |v| v.unsubscribed)
        .into_iter()
        .map(|o| o.or(Some(false)))
        .collect();
    options.dedup();
    if !options.contains(&unsubscribed) {
        problems.push(format!(
            "{email}: unsubscribed is {unsubscribed:?}, expected one of {options:?}"
        ));
    }
    if member["origin"] != "sync" {
        problems.push(format!(
            "{email}: origin is {}, expected sync",
            member["origin"]
        ));
    }
}
