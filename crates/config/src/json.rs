//! JSON parsing that rejects a key repeated in an object, as the YAML and TOML loaders do
//! (`serde_json` alone keeps the last value silently).

use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::ConfigError;

const DUPLICATE: &str = "duplicate key ";

/// Parses JSON text into a value; a repeated key is [`ConfigError::DuplicateKey`].
pub(crate) fn parse(text: &str, origin: &str) -> Result<Value, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = UniqueKeys
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    value.map_err(|e| {
        let message = strip_location(&e);
        let key = message
            .strip_prefix(DUPLICATE)
            .and_then(|k| serde_json::from_str::<String>(k).ok());
        match key {
            Some(key) => ConfigError::DuplicateKey {
                format: "JSON",
                origin: origin.to_string(),
                key,
                line: e.line(),
                first_line: None,
            },
            None => ConfigError::Parse {
                format: "JSON",
                origin: origin.to_string(),
                line: Some(e.line()),
                column: Some(e.column()),
                message,
            },
        }
    })
}

/// The error's message without serde_json's ` at line L column C` suffix.
fn strip_location(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Builds a [`Value`] as serde_json does, failing on a repeated object key.
struct UniqueKeys;

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(UniqueKeys)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format!("{DUPLICATE}{}", Value::from(key))));
            }
            let value = map.next_value_seed(UniqueKeys)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_those_of_serde_json() {
        let text = r#"{"b": [1, -2, 2.5, 18446744073709551615, true, null, "s"], "a": {"x": {}}}"#;
        let want: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse(text, "-").unwrap(), want);
        let keys: Vec<&String> = want.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["b", "a"], "order kept");
    }

    #[test]
    fn a_repeated_key_is_named() {
        let e = parse("{\n  \"a\": {\"p\": 1,\n  \"p\": 2}\n}", "c.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "JSON error in c.json: duplicate key \"p\" at line 3; each key may appear once in a map"
        );
        let e = parse("{\"a\": 1} x", "c.json").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "JSON syntax error in c.json at line 1, column 10: trailing characters"
            ),
            "{e}"
        );
    }
}
