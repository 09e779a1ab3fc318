//! Records as stored, and their field values as the CRM API renders them.
//!
//! A stored record is an id, two timestamps, its generation index and, only if the console touched
//! it, a sparse map of overriding values. Everything else is computed from the generator when a
//! page is rendered, straight into the response writer (no intermediate `serde_json::Value`).

use std::borrow::Cow;
use std::fmt;

use chrono::FixedOffset;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::clock::{format_ts, format_ts_into, TS_LEN};
use crate::data::{decimal, tag_id, Generator};
use crate::schema::{FieldDef, Kind, Module};

/// `Record::gen` of a record the console created from explicit values (nothing is generated).
pub const NO_GEN: u32 = u32::MAX;

/// `Record::flags` bit: a lead that was converted.
pub const CONVERTED: u8 = 1;

/// One live record.
#[derive(Clone, Debug)]
pub struct Record {
    /// Zoho record id (rendered as a 19-digit string).
    pub id: u64,
    /// `Created_Time`, Unix seconds.
    pub created: i64,
    /// `Modified_Time`, Unix seconds.
    pub modified: i64,
    /// Generation index for computed values, or [`NO_GEN`].
    pub gen: u32,
    /// Bit flags ([`CONVERTED`]).
    pub flags: u8,
    /// Values set through the console; they win over generated ones. `None` for untouched records
    /// so that a million of them stay small.
    pub extra: Option<Box<Map<String, Value>>>,
}

/// A CRM user (record owner, creator of self clients).
#[derive(Clone, Debug)]
pub struct User {
    /// User id (19 digits).
    pub id: u64,
    /// Zoho user id (ZUID) of the person.
    pub zuid: u64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email address.
    pub email: String,
}

impl User {
    /// `first last`.
    pub fn full_name(&self) -> String {
        FullName(self).to_string()
    }
}

/// A user's `first last`, written straight into a serializer (see [`Rendered`]).
struct FullName<'a>(&'a User);

impl fmt::Display for FullName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.first_name)?;
        f.write_str(" ")?;
        f.write_str(&self.0.last_name)
    }
}

impl Serialize for FullName<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `collect_str` streams the pieces (escaped) into serde_json's output, where
        // `full_name()` would allocate a string per lookup, and a record has three.
        s.collect_str(self)
    }
}

/// An id, rendered as Zoho does: a JSON string of its decimal digits.
struct IdStr(u64);

impl Serialize for IdStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Digits on the stack rather than `to_string()`: a record carries up to six ids.
        s.serialize_str(decimal(self.0, &mut [0; 20]))
    }
}

/// A field a request names: one of the module's own, or a custom one created by the console.
#[derive(Clone, Copy, Debug)]
pub enum FieldRef<'a> {
    /// A built-in field.
    Std(&'static FieldDef),
    /// A custom field (`Pledge_Tier__c`), known to the module store.
    Custom(&'a str),
}

impl FieldRef<'_> {
    /// The API name.
    pub fn api_name(&self) -> &str {
        match self {
            FieldRef::Std(def) => def.api_name,
            FieldRef::Custom(name) => name,
        }
    }
}

/// One field value, borrowed where possible.
#[derive(Debug)]
pub enum Val<'a> {
    /// JSON `null` (Zoho's rendering of an empty field).
    Null,
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(Cow<'a, str>),
    /// A timestamp, Unix seconds, rendered in the org's offset.
    Time(i64),
    /// A user lookup `{name,id,email}`.
    User(&'a User),
    /// A record lookup `{name,id}`.
    Lookup(&'static str, u64),
    /// A tag array with one tag.
    Tag(&'static str),
    /// A value the console stored.
    Json(&'a Value),
}

impl<'a> Val<'a> {
    /// The value as text if it is a string (generated or stored), borrowed where it was.
    fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            Val::Str(s) => Some(s),
            Val::Json(Value::String(s)) => Some(Cow::Borrowed(s)),
            _ => None,
        }
    }
}

/// What value computation needs besides the record: the generator and the org's users.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The module's generator.
    pub gen: &'a Generator,
    /// The org's users; index 0 is the org's admin (the console's acting user).
    pub users: &'a [User],
    /// The org's UTC offset for timestamps.
    pub offset: FixedOffset,
}

impl<'a> Ctx<'a> {
    /// The value of `field` on `rec`.
    pub fn value(&self, rec: &'a Record, field: FieldRef<'_>) -> Val<'a> {
        if let Some(v) = rec.extra.as_ref().and_then(|m| m.get(field.api_name())) {
            return Val::Json(v);
        }
        let def = match field {
            FieldRef::Std(def) => def,
            FieldRef::Custom(_) => return Val::Null,
        };
        let g = rec.gen;
        let generated = g != NO_GEN;
        let owner = || {
            let index = if generated {
                self.gen.owner(g, self.users.len())
            } else {
                0
            };
            self.users.get(index).map_or(Val::Null, Val::User)
        };
        let opt = |v: Option<&'static str>| v.map_or(Val::Null, |s| Val::Str(Cow::Borrowed(s)));
        let owned = |v: Option<String>| v.map_or(Val::Null, |s| Val::Str(Cow::Owned(s)));
        match def.kind {
            Kind::CreatedTime => Val::Time(rec.created),
            Kind::ModifiedTime => Val::Time(rec.modified),
            Kind::Converted | Kind::DollarConverted => Val::Bool(rec.flags & CONVERTED != 0),
            Kind::Approved | Kind::Editable => Val::Bool(true),
            Kind::ApprovalState => Val::Str(Cow::Borrowed("approved")),
            Kind::Owner | Kind::CreatedBy => owner(),
            Kind::ModifiedBy if rec.extra.is_some() || !generated => {
                self.users.first().map_or(Val::Null, Val::User)
            }
            Kind::ModifiedBy => owner(),
            Kind::FullName => self.full_name(rec),
            Kind::OptOut => Val::Bool(generated && self.gen.opt_out(g)),
            _ if !generated => Val::Null,
            Kind::FirstName => opt(self.gen.first_name(g)),
            Kind::LastName => Val::Str(Cow::Borrowed(self.gen.last_name(g))),
            Kind::Email => owned(self.gen.email(g)),
            Kind::SecondaryEmail => owned(self.gen.secondary_email(g)),
            Kind::Phone => owned(self.gen.phone(g)),
            Kind::Mobile => owned(self.gen.mobile(g)),
            Kind::Country => opt(self.gen.country(g)),
            Kind::Company => Val::Str(Cow::Borrowed(self.gen.company(g))),
            Kind::AccountName => self
                .gen
                .account(g)
                .map_or(Val::Null, |(n, id)| Val::Lookup(n, id)),
            Kind::LeadSource => opt(self.gen.lead_source(g)),
            Kind::LeadStatus => Val::Str(Cow::Borrowed(self.gen.lead_status(g))),
            Kind::Description => opt(self.gen.description(g)),
            Kind::Tag => self.gen.tag(g).map_or(Val::Null, Val::Tag),
            Kind::LastActivityTime if self.gen.has_activity(g) => Val::Time(rec.modified),
            Kind::LastActivityTime | Kind::ConvertedTime => Val::Null,
        }
    }

    /// `Full_Name`, derived from the (possibly overridden) first and last names.
    ///
    /// The non-empty names joined by a space; a lone name is passed through without copying and
    /// two are joined into a single allocation (this runs for every record of a page).
    fn full_name(&self, rec: &'a Record) -> Val<'a> {
        let part = |name: &str| self.text_cow(rec, name).filter(|s| !s.is_empty());
        match (part("First_Name"), part("Last_Name")) {
            (Some(first), Some(last)) => {
                let mut joined = String::with_capacity(first.len() + 1 + last.len());
                joined.push_str(&first);
                joined.push(' ');
                joined.push_str(&last);
                Val::Str(Cow::Owned(joined))
            }
            (Some(one), None) | (None, Some(one)) => Val::Str(one),
            (None, None) => Val::Null,
        }
    }

    /// The value of `field` as a plain string, for filters and display names.
    pub fn text(&self, rec: &'a Record, field: &str) -> Option<String> {
        self.text_cow(rec, field).map(Cow::into_owned)
    }

    /// [`Ctx::text`], borrowed where the value is.
    fn text_cow(&self, rec: &'a Record, field: &str) -> Option<Cow<'a, str>> {
        let def = self.gen.module.field(field)?;
        self.value(rec, FieldRef::Std(def)).into_text()
    }
}

/// A value with the offset needed to render timestamps.
struct Rendered<'a>(&'a Val<'a>, FixedOffset);

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Val::Null => s.serialize_none(),
            Val::Bool(b) => s.serialize_bool(*b),
            Val::Str(text) => s.serialize_str(text),
            Val::Time(secs) => {
                let mut buf = [0; TS_LEN];
                match format_ts_into(*secs, self.1, &mut buf) {
                    Some(text) => s.serialize_str(text),
                    None => s.serialize_str(&format_ts(*secs, self.1)),
                }
            }
            Val::User(user) => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("name", &FullName(user))?;
                m.serialize_entry("id", &IdStr(user.id))?;
                m.serialize_entry("email", &user.email)?;
                m.end()
            }
            Val::Lookup(name, id) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("id", &IdStr(*id))?;
                m.end()
            }
            Val::Tag(name) => {
                let mut seq = s.serialize_seq(Some(1))?;
                seq.serialize_element(&TagJson(name))?;
                seq.end()
            }
            Val::Json(v) => v.serialize(s),
        }
    }
}

/// One tag object `{name,id,color_code}`.
struct TagJson<'a>(&'a str);

impl Serialize for TagJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("name", self.0)?;
        m.serialize_entry("id", &IdStr(tag_id(self.0)))?;
        m.serialize_entry("color_code", "#57B1FD")?;
        m.end()
    }
}

/// A record rendered with `id` plus the given fields, as Get Records answers.
pub struct View<'a> {
    /// How to compute values.
    pub ctx: Ctx<'a>,
    /// The record.
    pub rec: &'a Record,
    /// The fields to include, in order (`id` is always first and never repeated).
    pub fields: &'a [FieldRef<'a>],
}

impl Serialize for View<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.fields.len() + 1))?;
        m.serialize_entry("id", &IdStr(self.rec.id))?;
        for field in self.fields {
            let value = self.ctx.value(self.rec, *field);
            m.serialize_entry(field.api_name(), &Rendered(&value, self.ctx.offset))?;
        }
        m.end()
    }
}

/// Every field of a module (built-in ones, then custom ones), for "all fields" answers.
pub fn all_fields<'a>(module: Module, custom: &'a [String]) -> Vec<FieldRef<'a>> {
    module
        .fields()
        .iter()
        .map(FieldRef::Std)
        .chain(custom.iter().map(|c| FieldRef::Custom(c.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Vec<User> {
        vec![User {
            id: 4_150_868_000_000_002_175,
            zuid: 700_001,
            first_name: "Patricia".into(),
            last_name: "Boyle".into(),
            email: "patricia@example.com".into(),
        }]
    }

    #[test]
    fn ids_render_as_their_decimal_strings() {
        let mut ids = vec![0, 7, 10, 4_150_868_000_000_002_175, u64::MAX];
        ids.extend((0..64).map(|bit| (1u64 << bit) - 1));
        for id in ids {
            let expected = format!("\"{id}\"");
            assert_eq!(serde_json::to_string(&IdStr(id)).expect("json"), expected);
            let value = serde_json::to_value(IdStr(id)).expect("value");
            assert_eq!(value, Value::String(id.to_string()));
        }
        let users = users();
        let json = serde_json::to_string(&Rendered(
            &Val::User(&users[0]),
            FixedOffset::east_opt(0).expect("offset"),
        ))
        .expect("json");
        assert_eq!(
            json,
            r#"{"name":"Patricia Boyle","id":"4150868000000002175","email":"patricia@example.com"}"#
        );
        let lookup = Val::Lookup("Globex", 4_150_868_000_000_900_001);
        let json = serde_json::to_string(&Rendered(
            &lookup,
            FixedOffset::east_opt(0).expect("offset"),
        ))
        .expect("json");
        assert_eq!(json, r#"{"name":"Globex","id":"4150868000000900001"}"#);
        let json = serde_json::to_string(&TagJson("VIP")).expect("json");
        assert_eq!(
            json,
            format!(
                r##"{{"name":"VIP","id":"{}","color_code":"#57B1FD"}}"##,
                tag_id("VIP")
            )
        );
    }

    #[test]
    fn user_names_render_escaped_like_full_name() {
        let user = User {
            id: 1,
            zuid: 2,
            first_name: "Zoë \"Q\"".into(),
            last_name: "back\\slash\n翔太".into(),
            email: String::new(),
        };
        let reference = format!("{} {}", user.first_name, user.last_name);
        assert_eq!(user.full_name(), reference);
        let expected = serde_json::to_string(&reference).expect("json");
        assert_eq!(expected, r#""Zoë \"Q\" back\\slash\n翔太""#);
        assert_eq!(
            serde_json::to_string(&FullName(&user)).expect("json"),
            expected
        );
        assert_eq!(
            serde_json::to_value(FullName(&user)).expect("value"),
            Value::String(reference)
        );
    }

    #[test]
    fn renders_only_requested_fields_with_nulls_and_overrides() {
        let gen = Generator {
            seed: 42,
            module: Module::Contacts,
            size: 10,
            contacts: 10,
        };
        let users = users();
        let ctx = Ctx {
            gen: &gen,
            users: &users,
            offset: FixedOffset::east_opt(19_800).expect("offset"),
        };
        let mut extra = Map::new();
        extra.insert("Email".into(), Value::Null);
        extra.insert("First_Name".into(), Value::String("Zoë".into()));
        let rec = Record {
            id: 7,
            created: 0,
            modified: 60,
            gen: 3,
            flags: 0,
            extra: Some(Box::new(extra)),
        };
        let fields = [
            FieldRef::Std(Module::Contacts.field("Email").expect("field")),
            FieldRef::Std(Module::Contacts.field("Full_Name").expect("field")),
            FieldRef::Std(Module::Contacts.field("Modified_Time").expect("field")),
            FieldRef::Custom("Pledge_Tier__c"),
        ];
        let json = serde_json::to_value(View {
            ctx,
            rec: &rec,
            fields: &fields,
        })
        .expect("serializes");
        assert_eq!(json["id"], "7");
        assert_eq!(json["Email"], Value::Null);
        assert_eq!(json["Modified_Time"], "1970-01-01T05:31:00+05:30");
        assert_eq!(json["Pledge_Tier__c"], Value::Null);
        let full = json["Full_Name"].as_str().expect("string");
        assert!(full.starts_with("Zoë "), "{full}");
        assert_eq!(json.as_object().map(|o| o.len()), Some(5));
    }
}
