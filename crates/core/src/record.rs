//! One Zoho record carried as the JSON text Zoho wrote, from the Zoho client through the fetcher
//! and RabbitMQ to the sink.
//!
//! Only the sink needs a record's fields, so nothing before it builds a tree of a record: the
//! client cuts each record out of the page, the fetcher puts the text into a batch unchanged,
//! and the sink reads the fields it maps. Building and dropping a tree of every record, then
//! writing it out again, was most of a fetcher's CPU.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A JSON object as Zoho wrote it (a record, or an entry of the deleted-records API).
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct RawRecord(Box<RawValue>);

/// A JSON value that is not an object where a record was expected.
#[derive(Debug, thiserror::Error)]
#[error("a record is not a JSON object")]
pub struct NotAnObject;

impl RawRecord {
    /// Takes `json` if it is an object.
    pub fn new(json: Box<RawValue>) -> Result<Self, NotAnObject> {
        // A RawValue is valid JSON that starts at its first token.
        if json.get().starts_with('{') {
            Ok(Self(json))
        } else {
            Err(NotAnObject)
        }
    }

    /// The record of `object`; for tests, fakes and bulk loads that start from a tree.
    pub fn from_map(object: &Map<String, Value>) -> Self {
        // Writing a map of JSON values cannot fail: its keys are strings.
        match serde_json::value::to_raw_value(object) {
            Ok(json) => Self(json),
            Err(_) => unreachable!("serde_json could not write a JSON object"),
        }
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The record as a tree. Fails only past serde_json's nesting limit, which the text was
    /// already checked against when it was read; callers count a failure as a malformed record.
    pub fn to_map(&self) -> Result<Map<String, Value>, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl<'de> Deserialize<'de> for RawRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        Self::new(json).map_err(serde::de::Error::custom)
    }
}

/// Two records are equal when Zoho wrote the same text.
impl PartialEq for RawRecord {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl fmt::Debug for RawRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_keeps_the_text_it_came_with() {
        let text = r#"{"id":"42","Email":"a\u0040x.io","n":1.50}"#;
        let record: RawRecord = serde_json::from_str(text).expect("an object");
        assert_eq!(record.json(), text);
        assert_eq!(serde_json::to_string(&record).expect("writes"), text);
        assert_eq!(record.to_map().expect("parses")["Email"], json!("a@x.io"));
    }

    #[test]
    fn only_objects_are_records() {
        for text in ["[]", "\"x\"", "null", "1"] {
            assert!(serde_json::from_str::<RawRecord>(text).is_err(), "{text}");
        }
        assert!(serde_json::from_str::<RawRecord>(" {} ").is_ok());
    }

    #[test]
    fn a_tree_round_trips() {
        let mut map = Map::new();
        map.insert("id".into(), json!("7"));
        assert_eq!(RawRecord::from_map(&map).to_map().expect("parses"), map);
    }
}
