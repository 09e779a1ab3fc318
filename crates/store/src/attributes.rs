//! A member's further fields as the sink hands them over: one JSON object, rendered once.
//!
//! A sink maps thousands of records a second, and building each record's attributes as a map of
//! JSON values, then serialising that map again for PostgreSQL, was about a seventh of its CPU.
//! So a sink writes the object's text as it reads the record ([`AttributesWriter`]), and the store
//! passes that text to PostgreSQL as it is. The rare paths that need the values (merging two
//! records that share an email, tests) read them back with [`Attributes::to_map`].

use std::fmt;

use serde_json::{Map, Value};

/// A JSON object of attributes, as text, with unique keys. A sink's never holds a null;
/// [`Attributes::from_map`] keeps what the map holds, and the store strips nulls in SQL.
#[derive(Clone)]
pub struct Attributes(String);

impl Attributes {
    /// The attributes of `map`.
    pub fn from_map(map: &Map<String, Value>) -> Self {
        let mut writer = AttributesWriter::new();
        for (key, value) in map {
            writer.push(key, value);
        }
        writer.finish()
    }

    /// The attributes as a map of values.
    pub fn to_map(&self) -> Map<String, Value> {
        // Only this module builds the text, always as an object of valid values.
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// The object's JSON text.
    pub fn json(&self) -> &str {
        &self.0
    }

    /// Whether the object has no key.
    pub fn is_empty(&self) -> bool {
        self.0 == "{}"
    }
}

impl Default for Attributes {
    fn default() -> Self {
        AttributesWriter::new().finish()
    }
}

/// Equal when they hold the same keys and values, whatever the order they were written in.
impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || self.to_map() == other.to_map()
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Writes an attributes object key by key. The caller keeps keys unique: a repeated key would
/// reach PostgreSQL, which keeps its last value, where a map keeps its last insert.
pub struct AttributesWriter {
    text: Vec<u8>,
}

impl AttributesWriter {
    pub fn new() -> Self {
        let mut text = Vec::with_capacity(256);
        text.push(b'{');
        Self { text }
    }

    /// Adds `key` with `value`.
    pub fn push(&mut self, key: &str, value: &Value) {
        if self.text.len() > 1 {
            self.text.push(b',');
        }
        // Serialising a `str` or a `Value` into memory cannot fail: no I/O, and a `Value`'s maps
        // have string keys.
        let _ = serde_json::to_writer(&mut self.text, key);
        self.text.push(b':');
        let _ = serde_json::to_writer(&mut self.text, value);
    }

    /// The object written.
    pub fn finish(mut self) -> Attributes {
        self.text.push(b'}');
        // serde_json writes UTF-8 only.
        Attributes(String::from_utf8(self.text).unwrap_or_else(|_| "{}".to_owned()))
    }
}

impl Default for AttributesWriter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn written_attributes_read_back_as_the_same_map() {
        let expected = map(json!({
            "Owner": "Patricia Boyle", "Tag": ["a", "b"], "quote\"d": "tab\there",
            "n": 1.5, "nested": {"x": [1, {"y": true}]}, "ünï": "códe",
        }));
        let written = Attributes::from_map(&expected);
        assert_eq!(written.to_map(), expected);
        let parsed: Value = serde_json::from_str(written.json()).expect("valid JSON");
        assert_eq!(parsed, Value::Object(expected));
    }

    #[test]
    fn order_does_not_make_attributes_differ() {
        let mut one = AttributesWriter::new();
        one.push("b", &json!(2));
        one.push("a", &json!("x"));
        let other = Attributes::from_map(&map(json!({"a": "x", "b": 2})));
        assert_eq!(one.finish(), other);
        assert_ne!(other, Attributes::default());
    }

    #[test]
    fn empty_attributes_are_an_empty_object() {
        let empty = Attributes::default();
        assert!(empty.is_empty());
        assert_eq!(empty.json(), "{}");
        assert!(empty.to_map().is_empty());
        assert!(!Attributes::from_map(&map(json!({"a": 1}))).is_empty());
    }
}
