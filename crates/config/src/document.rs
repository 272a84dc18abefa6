//! The configuration document: `{ registry, pull_policy?, push_policy? }` (or a bare
//! OCIRegistryConfig), validated in one pass that reports every error.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ConfigError, FieldError};
use crate::normalize::{join_key, kind, normalize_schema};
use crate::schemas::{
    schema_spec, HarborRegistryConfig, OCIPullPolicy, OCIPushPolicy, OCIRegistryConfig,
    ZotRegistryConfig,
};
use crate::spec::SchemaSpec;

/// A validated configuration document with every default and computed field filled in.
///
/// `pull_policy` and `push_policy` always hold a value (the seed's defaults when the source
/// left them out); `pull_policy_given` / `push_policy_given` say whether the source had them.
/// The registry's `zot_features` is only ever set with `type = "zot"` and `harbor_config` only
/// with `type = "harbor"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The registry (an OCIRegistryConfig, or its Zot / Harbor sub-schema).
    pub registry: OCIRegistryConfig,
    /// Pull policy (defaults when absent from the source).
    pub pull_policy: OCIPullPolicy,
    /// Push policy (defaults when absent from the source).
    pub push_policy: OCIPushPolicy,
    /// The source had a `pull_policy` section.
    pub pull_policy_given: bool,
    /// The source had a `push_policy` section.
    pub push_policy_given: bool,
    /// The source was a bare OCIRegistryConfig (no `registry` key).
    pub bare_root: bool,
}

const DOCUMENT_KEYS: &[&str] = &["registry", "pull_policy", "push_policy"];
const BARE_MARKERS: &[&str] = &["deployment", "type", "endpoint"];

/// Is this root a bare OCIRegistryConfig (`deployment`/`type`/`endpoint` and no `registry`)?
pub fn is_bare_registry(root: &Map<String, Value>) -> bool {
    !root.contains_key("registry") && BARE_MARKERS.iter().any(|k| root.contains_key(*k))
}

/// Validates a parsed document; on success returns it with every default filled in.
pub fn document_from_value(root: &Value) -> Result<Document, ConfigError> {
    let mut errors = Vec::new();
    let Value::Object(map) = root else {
        return Err(ConfigError::Invalid(vec![FieldError::new(
            "",
            format!(
                "the document root must be a map with a `registry` key, got {}",
                kind(root)
            ),
        )]));
    };
    if is_bare_registry(map) {
        let registry = normalize_registry(root, "", &mut errors);
        let registry = finish(registry, &mut errors)?;
        return Ok(Document {
            registry: typed(registry, "")?,
            pull_policy: default_section(OCIPullPolicy::spec())?,
            push_policy: default_section(OCIPushPolicy::spec())?,
            pull_policy_given: false,
            push_policy_given: false,
            bare_root: true,
        });
    }
    for key in map.keys() {
        if !DOCUMENT_KEYS.contains(&key.as_str()) {
            let hint = crate::suggest::did_you_mean(key, DOCUMENT_KEYS.iter().copied());
            errors.push(FieldError::new(
                join_key("", key),
                format!("unknown field{hint}"),
            ));
        }
    }
    let registry = match map.get("registry").filter(|v| !v.is_null()) {
        Some(v) => normalize_registry(v, "registry", &mut errors),
        None => {
            errors.push(FieldError::new("registry", "required field missing"));
            None
        }
    };
    let pull = section(map, "pull_policy", OCIPullPolicy::spec(), &mut errors);
    let push = section(map, "push_policy", OCIPushPolicy::spec(), &mut errors);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    let (Some(registry), Some(pull), Some(push)) = (registry, pull, push) else {
        return Err(internal("a section failed without an error"));
    };
    Ok(Document {
        registry: typed(registry, "registry")?,
        pull_policy: typed(pull, "pull_policy")?,
        push_policy: typed(push, "push_policy")?,
        pull_policy_given: is_given(map, "pull_policy"),
        push_policy_given: is_given(map, "push_policy"),
        bare_root: false,
    })
}

fn is_given(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_some_and(|v| !v.is_null())
}

fn section(
    map: &Map<String, Value>,
    key: &str,
    spec: SchemaSpec,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    let empty = Value::Object(Map::new());
    let value = map.get(key).filter(|v| !v.is_null()).unwrap_or(&empty);
    normalize_schema(&spec, value, key, errors)
}

fn default_section<T: DeserializeOwned>(spec: SchemaSpec) -> Result<T, ConfigError> {
    let mut errors = Vec::new();
    let value = normalize_schema(&spec, &Value::Object(Map::new()), "", &mut errors);
    typed(finish(value, &mut errors)?, "")
}

/// The registry: validated as ZotRegistryConfig when `type` is `zot`, HarborRegistryConfig
/// when `harbor`, else OCIRegistryConfig; the other sub-schema's extra key is an error.
fn normalize_registry(value: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Value> {
    let Value::Object(map) = value else {
        return normalize_schema(&OCIRegistryConfig::spec(), value, path, errors);
    };
    let ty = map.get("type").and_then(Value::as_str);
    let mut stripped = map.clone();
    for (key, only) in [("zot_features", "zot"), ("harbor_config", "harbor")] {
        if ty != Some(only) && stripped.remove(key).is_some_and(|v| !v.is_null()) {
            errors.push(FieldError::new(
                join_key(path, key),
                format!("only allowed when type is \"{only}\""),
            ));
        }
    }
    let spec = match ty {
        Some("zot") => ZotRegistryConfig::spec(),
        Some("harbor") => HarborRegistryConfig::spec(),
        _ => OCIRegistryConfig::spec(),
    };
    normalize_schema(&spec, &Value::Object(stripped), path, errors)
}

fn finish(value: Option<Value>, errors: &mut Vec<FieldError>) -> Result<Value, ConfigError> {
    match value {
        Some(v) if errors.is_empty() => Ok(v),
        _ if !errors.is_empty() => Err(ConfigError::Invalid(std::mem::take(errors))),
        _ => Err(internal("validation failed without an error")),
    }
}

fn internal(message: &str) -> ConfigError {
    ConfigError::Invalid(vec![FieldError::new(
        "",
        format!("internal error: {message}"),
    )])
}

fn typed<T: DeserializeOwned>(value: Value, path: &str) -> Result<T, ConfigError> {
    serde_json::from_value(value).map_err(|e| {
        ConfigError::Invalid(vec![FieldError::new(path, format!("internal error: {e}"))])
    })
}

/// Validates `value` as an instance of the seed schema `name`; returns the effective instance
/// (defaults and computed fields filled in, seed order). Paths are relative to the instance.
pub fn validate_schema(name: &str, value: Value) -> Result<Value, ConfigError> {
    let spec = schema_spec(name).ok_or_else(|| ConfigError::UnknownSchema {
        name: name.to_string(),
    })?;
    let mut errors = Vec::new();
    let out = normalize_schema(&spec, &value, "", &mut errors);
    finish(out, &mut errors)
}

/// The effective document as JSON: `registry`, `pull_policy`, `push_policy`, every default and
/// computed field filled in, fields in the seed's order, absent optionals left out.
pub fn to_json_value(doc: &Document) -> Value {
    let mut map = Map::new();
    map.insert("registry".into(), to_value(&doc.registry));
    map.insert("pull_policy".into(), to_value(&doc.pull_policy));
    map.insert("push_policy".into(), to_value(&doc.push_policy));
    Value::Object(map)
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    // Plain structs of strings, numbers, bools, lists and string-keyed maps always serialize.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Document {
    /// Re-validates this document (e.g. after code changed fields) through the same checks.
    pub fn validate(&self) -> Result<Document, ConfigError> {
        let mut doc = document_from_value(&to_json_value(self))?;
        doc.pull_policy_given = self.pull_policy_given;
        doc.push_policy_given = self.push_policy_given;
        doc.bare_root = self.bare_root;
        Ok(doc)
    }
}
