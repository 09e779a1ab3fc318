//! Reading the emulator console's record listing without holding every field of every record.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Reads `{"records": [{…}, …]}` keeping only `id` and `fields` of each record, so a million
/// records with every field never sit in memory whole.
pub fn parse(body: &[u8], fields: &[&str]) -> serde_json::Result<Vec<Map<String, Value>>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let records = Listing { fields }.deserialize(&mut de)?;
    de.end()?;
    Ok(records)
}

struct Listing<'f> {
    fields: &'f [&'f str],
}

impl<'de> DeserializeSeed<'de> for Listing<'_> {
    type Value = Vec<Map<String, Value>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Listing<'_> {
    type Value = Vec<Map<String, Value>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with a `records` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "records" {
                records = Some(map.next_value_seed(Records {
                    fields: self.fields,
                })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        records.ok_or_else(|| serde::de::Error::missing_field("records"))
    }
}

struct Records<'f> {
    fields: &'f [&'f str],
}

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = Vec<Map<String, Value>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = Vec<Map<String, Value>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(record) = seq.next_element_seed(Record {
            fields: self.fields,
        })? {
            out.push(record);
        }
        Ok(out)
    }
}

struct Record<'f> {
    fields: &'f [&'f str],
}

impl<'de> DeserializeSeed<'de> for Record<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut record = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "id" || self.fields.contains(&key.as_str()) {
                let value: Value = map.next_value()?;
                record.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listings_keep_only_the_requested_fields() {
        let body = br#"{"records":[
            {"id":"1","Email":"a@example.com","Description":"long text","Owner":{"name":"Ann","id":"9"},"Modified_Time":"2024-01-01T00:00:00+05:30"},
            {"Email":null,"id":"2","Tag":[{"name":"x"}]}
        ],"other":{"ignored":[1,2,3]}}"#;
        let records = parse(body, &["Email", "Owner", "Modified_Time"]).expect("parse");
        assert_eq!(records.len(), 2);
        assert_eq!(
            Value::Object(records[0].clone()),
            json!({"id":"1","Email":"a@example.com","Owner":{"name":"Ann","id":"9"},"Modified_Time":"2024-01-01T00:00:00+05:30"})
        );
        assert_eq!(
            Value::Object(records[1].clone()),
            json!({"id":"2","Email":null})
        );
    }

    #[test]
    fn a_listing_without_records_is_an_error() {
        assert!(parse(br#"{"data":[]}"#, &[]).is_err());
        assert!(parse(br#"{"records":[]} trailing"#, &[]).is_err());
        assert!(parse(br#"{"records":[]}"#, &[]).expect("empty").is_empty());
    }
}
