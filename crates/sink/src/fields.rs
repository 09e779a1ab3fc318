//! Reading a record's fields in one pass over the JSON text Zoho wrote.
//!
//! The fields that fill a member's columns are read as plain scalars, borrowed from the text where
//! no escape forces a copy; the fields that become attributes are written straight into the
//! attributes' JSON text ([`AttributesWriter`]), each value built only for as long as it takes to
//! reduce it. Building a whole map of every record first, then picking the columns out of it, was
//! most of a sink's CPU. What the mapping sees is exactly what a map of the record holds: a key
//! that appears twice counts with its last value, as `serde_json::Map` keeps it. Zoho never sends
//! a key twice, so such a record (or one with a NUL in a key) has its attributes read again the
//! slow way, into a map.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use pledgesync_core::record::RawRecord;
use pledgesync_store::{Attributes, AttributesWriter};

/// The value of a column field, reduced to what the mapping distinguishes.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Scalar<'a> {
    /// The key is not in the record.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A string.
    Text(Cow<'a, str>),
    /// `true` or `false`.
    Bool(bool),
    /// A number, an object or an array: the wrong type for every column.
    Other,
}

impl Scalar<'_> {
    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// Which column a key fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Id,
    Email,
    FirstName,
    LastName,
    Phone,
    Mobile,
    Country,
    OptOut,
    ModifiedTime,
}

/// A record's column fields and its attributes.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    /// `id`: the Zoho record id.
    pub id: Scalar<'a>,
    /// `Email`: the member's key.
    pub email: Scalar<'a>,
    /// `First_Name`.
    pub first_name: Scalar<'a>,
    /// `Last_Name`.
    pub last_name: Scalar<'a>,
    /// `Phone`.
    pub phone: Scalar<'a>,
    /// `Mobile` stands in for a missing `Phone`, and is also kept as an attribute.
    pub mobile: Scalar<'a>,
    /// The module's country field ([`Reading::country_field`]).
    pub country: Scalar<'a>,
    /// `Email_Opt_Out`.
    pub opt_out: Scalar<'a>,
    /// `Modified_Time`: orders versions of a record.
    pub modified_time: Scalar<'a>,
    /// Every other field that is neither a system key (`$…`) nor null, as [`Reading`] makes it.
    pub attributes: Attributes,
}

/// How attributes are read: which key holds the country, and what becomes of a kept value.
pub struct Reading<'m> {
    /// `Mailing_Country` for Contacts, `Country` for Leads.
    pub country_field: &'m str,
    /// Turns a kept field's value into the attribute's (lookups into names, NULs out).
    pub value: fn(Value) -> Value,
    /// Turns a kept field's key into the attribute's (NULs out); only keys with a NUL are
    /// passed, the others are kept as they are.
    pub key: fn(String) -> String,
}

impl Reading<'_> {
    /// Whether `key` fills a column (and is not an attribute, except `Mobile`, which is both).
    pub fn is_column(&self, key: &str) -> bool {
        self.column(key).is_some()
    }

    fn column(&self, key: &str) -> Option<Column> {
        Some(match key {
            "id" => Column::Id,
            "Email" => Column::Email,
            "First_Name" => Column::FirstName,
            "Last_Name" => Column::LastName,
            "Phone" => Column::Phone,
            "Mobile" => Column::Mobile,
            "Email_Opt_Out" => Column::OptOut,
            "Modified_Time" => Column::ModifiedTime,
            _ if key == self.country_field => Column::Country,
            _ => return None,
        })
    }

    /// Reads `record`. Fails only past the JSON reader's nesting limit.
    pub fn read<'a>(&self, record: &'a RawRecord) -> Result<Fields<'a>, serde_json::Error> {
        let mut reader = serde_json::Deserializer::from_str(record.json());
        let (mut fields, irregular) = reader.deserialize_map(FieldsVisitor { reading: self })?;
        if irregular {
            let mut reader = serde_json::Deserializer::from_str(record.json());
            let map = reader.deserialize_map(AttributesMapVisitor { reading: self })?;
            fields.attributes = Attributes::from_map(&map);
        }
        Ok(fields)
    }

    /// Whether `key` is kept as an attribute (unless its value is null).
    fn is_attribute(&self, column: Option<Column>, key: &str) -> bool {
        matches!(column, Some(Column::Mobile) | None) && !key.starts_with('$')
    }
}

/// Reads the columns and writes the attributes; says whether the record was irregular (a key
/// twice, or a NUL in a key), in which case its attributes must be read again into a map.
struct FieldsVisitor<'r, 'm> {
    reading: &'r Reading<'m>,
}

impl<'de> Visitor<'de> for FieldsVisitor<'_, '_> {
    type Value = (Fields<'de>, bool);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Zoho record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(Fields<'de>, bool), A::Error> {
        let mut fields = Fields::default();
        let mut attributes = AttributesWriter::new();
        let mut kept_keys: Vec<Cow<'de, str>> = Vec::new();
        let mut irregular = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let column = self.reading.column(&key);
            let slot = match column {
                Some(Column::Id) => &mut fields.id,
                Some(Column::Email) => &mut fields.email,
                Some(Column::FirstName) => &mut fields.first_name,
                Some(Column::LastName) => &mut fields.last_name,
                Some(Column::Phone) => &mut fields.phone,
                Some(Column::Country) => &mut fields.country,
                Some(Column::OptOut) => &mut fields.opt_out,
                Some(Column::ModifiedTime) => &mut fields.modified_time,
                Some(Column::Mobile) | None => {
                    if !self.reading.is_attribute(column, &key) {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let value: Value = map.next_value()?;
                    if column == Some(Column::Mobile) {
                        fields.mobile = match &value {
                            Value::Null => Scalar::Null,
                            Value::String(text) => Scalar::Text(Cow::Owned(text.clone())),
                            Value::Bool(flag) => Scalar::Bool(*flag),
                            _ => Scalar::Other,
                        };
                    }
                    irregular = irregular || key.contains('\0') || kept_keys.contains(&key);
                    if !irregular && !value.is_null() {
                        attributes.push(&key, &(self.reading.value)(value));
                    }
                    kept_keys.push(key);
                    continue;
                }
            };
            *slot = map.next_value_seed(ScalarSeed)?;
        }
        fields.attributes = attributes.finish();
        Ok((fields, irregular))
    }
}

/// The attributes of an irregular record, as a map keeps them: a key that comes again replaces
/// its earlier value, and a later null removes it.
struct AttributesMapVisitor<'r, 'm> {
    reading: &'r Reading<'m>,
}

impl<'de> Visitor<'de> for AttributesMapVisitor<'_, '_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Zoho record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Map<String, Value>, A::Error> {
        let mut attributes = Map::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if !self.reading.is_attribute(self.reading.column(&key), &key) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: Value = map.next_value()?;
            if value.is_null() {
                attributes.remove(key.as_ref());
            } else {
                let key = if key.contains('\0') {
                    (self.reading.key)(key.into_owned())
                } else {
                    key.into_owned()
                };
                attributes.insert(key, (self.reading.value)(value));
            }
        }
        Ok(attributes)
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Scalar<'de>, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(flag))
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Owned(text)))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONTACTS: Reading<'static> = Reading {
        country_field: "Mailing_Country",
        value: |value| value,
        key: |key| key,
    };

    fn raw(value: Value) -> RawRecord {
        match value {
            Value::Object(map) => RawRecord::from_map(&map),
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn columns_are_scalars_and_the_rest_attributes() {
        let record = raw(json!({
            "id": "17", "Email": "a@x.io", "Phone": 5, "Email_Opt_Out": true,
            "Mobile": "+1", "Country": "kept", "Mailing_Country": "column",
            "$state": {"x": 1}, "Description": null, "Owner": {"name": "N"},
        }));
        let fields = CONTACTS.read(&record).expect("reads");
        assert_eq!(fields.id.as_str(), Some("17"));
        assert_eq!(fields.email.as_str(), Some("a@x.io"));
        assert_eq!(fields.phone, Scalar::Other);
        assert_eq!(fields.opt_out, Scalar::Bool(true));
        assert_eq!(fields.mobile.as_str(), Some("+1"));
        assert_eq!(fields.country.as_str(), Some("column"));
        assert_eq!(fields.first_name, Scalar::Absent);
        let expected = json!({"Mobile": "+1", "Country": "kept", "Owner": {"name": "N"}});
        assert_eq!(Value::Object(fields.attributes.to_map()), expected);
    }

    #[test]
    fn escaped_strings_are_read_unescaped() {
        let text = r#"{"Email":"a\u0040x.io","First_Name":"tab\there"}"#;
        let record: RawRecord = serde_json::from_str(text).expect("an object");
        let fields = CONTACTS.read(&record).expect("reads");
        assert_eq!(fields.email.as_str(), Some("a@x.io"));
        assert_eq!(fields.first_name.as_str(), Some("tab\there"));
    }

    #[test]
    fn a_repeated_key_counts_with_its_last_value() {
        let text = r#"{"Email":"first@x.io","Email":"last@x.io","Lead_Source":"Web","Lead_Source":null,"Tag":null,"Tag":"t"}"#;
        let record: RawRecord = serde_json::from_str(text).expect("an object");
        let fields = CONTACTS.read(&record).expect("reads");
        assert_eq!(fields.email.as_str(), Some("last@x.io"));
        assert_eq!(
            Value::Object(fields.attributes.to_map()),
            json!({"Tag": "t"})
        );
    }
}
