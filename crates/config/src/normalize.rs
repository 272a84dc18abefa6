//! The generic validation pass: walks a `serde_json::Value` along a schema's field table,
//! collecting every shape error (unknown key, wrong type, missing field) with its path, filling
//! defaults and computed fields, and running each schema's checks on its defaulted instance.
//!
//! Explicit `null` counts as absent (see docs/config.md, "Deviations from KCL").

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::spec::{DefaultSpec, SchemaSpec, Ty};
use crate::suggest::did_you_mean;

/// A defaulted schema instance as its checks see it: typed accessors return `None` when the
/// field is absent or was invalid (its error is already reported, so the check is skipped).
pub struct View<'a> {
    path: &'a str,
    values: &'a Map<String, Value>,
    given: &'a HashSet<&'static str>,
}

impl<'a> View<'a> {
    /// A string field's value.
    pub fn str(&self, key: &str) -> Option<&'a str> {
        self.values.get(key).and_then(Value::as_str)
    }

    /// An int field's value.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.values.get(key).and_then(Value::as_i64)
    }

    /// A float field's value.
    pub fn float(&self, key: &str) -> Option<f64> {
        self.values.get(key).and_then(Value::as_f64)
    }

    /// A bool field's value.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.values.get(key).and_then(Value::as_bool)
    }

    /// A `[str]` field's items (`None` when absent or not a list; non-strings skipped).
    pub fn strs(&self, key: &str) -> Option<Vec<&'a str>> {
        self.values
            .get(key)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
    }

    /// KCL's `key != Undefined`: given (even if invalid) or defaulted.
    pub fn defined(&self, key: &str) -> bool {
        self.given.contains(key) || self.values.contains_key(key)
    }

    /// Records a failed check against field `key` of this instance.
    pub fn fail(&self, errors: &mut Vec<FieldError>, key: &str, message: &str) {
        errors.push(FieldError::new(join_key(self.path, key), message));
    }

    /// Records a failed check against a field nested below this instance (`keys` joined as a
    /// path), for a rule about a block that may be absent.
    pub fn fail_at(&self, errors: &mut Vec<FieldError>, keys: &[&str], message: &str) {
        let path = keys
            .iter()
            .fold(self.path.to_string(), |p, k| join_key(&p, k));
        errors.push(FieldError::new(path, message));
    }

    /// [`View::fail`] with a hint that spells out the rule behind `message`.
    pub fn fail_with_hint(
        &self,
        errors: &mut Vec<FieldError>,
        key: &str,
        message: &str,
        hint: &str,
    ) {
        errors.push(FieldError::new(join_key(self.path, key), message).with_hint(hint));
    }
}

/// Joins a field name onto a path (`a` + `b` → `a.b`).
pub(crate) fn join_key(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::from(key)),
    }
}

fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// A JSON value's kind with the value itself (containers by kind only), for "expected X, got
/// Y": `string "80a"`, `float 5.5`, `bool true`, `list`.
pub(crate) fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Number(n) if n.is_f64() => format!("float {n}"),
        Value::Number(n) => format!("int {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "list".into(),
        Value::Object(_) => "map".into(),
    }
}

fn type_error(errors: &mut Vec<FieldError>, path: &str, ty: &Ty, value: &Value) {
    let suggestion = match (ty, value) {
        (Ty::Lit(allowed), Value::String(s)) => did_you_mean(s, allowed.iter().copied()),
        _ => String::new(),
    };
    errors.push(FieldError::new(
        path,
        format!("expected {ty}, got {}{suggestion}", kind(value)),
    ));
}

/// An integer the `int` type cannot hold: beyond 64 bits signed, read as an unsigned integer or
/// (past 64 bits) as a whole float by the parsers; `None` for any other number.
fn out_of_range_int(n: &serde_json::Number) -> Option<String> {
    if let Some(u) = n.as_u64().filter(|u| i64::try_from(*u).is_err()) {
        return Some(u.to_string());
    }
    let f = n.as_f64().filter(|f| f.fract() == 0.0)?;
    // 2^63: the smallest whole float magnitude an i64 cannot hold (-2^63 itself can).
    let limit = 9_223_372_036_854_775_808.0_f64;
    (f >= limit || f < -limit).then(|| format!("about {f:e}"))
}

/// Validates `value` as an instance of `spec` at `path`; returns the defaulted instance when
/// it (and everything inside it) is valid. Errors are appended to `errors`.
pub fn normalize_schema(
    spec: &SchemaSpec,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    let Value::Object(input) = value else {
        let message = format!("expected {}, got {}", spec.name, kind(value));
        errors.push(FieldError::new(path, message));
        return None;
    };
    let before = errors.len();
    for key in input.keys() {
        if spec.field(key).is_none() {
            let hint = did_you_mean(key, spec.fields.iter().map(|f| f.key));
            errors.push(FieldError::new(
                join_key(path, key),
                format!("unknown field{hint}"),
            ));
        }
    }
    let mut values = Map::new();
    let mut given: HashSet<&'static str> = HashSet::new();
    for field in &spec.fields {
        match input.get(field.key).filter(|v| !v.is_null()) {
            Some(v) => {
                given.insert(field.key);
                if let Some(nv) = normalize_ty(&field.ty, v, &join_key(path, field.key), errors) {
                    values.insert(field.key.to_string(), nv);
                }
            }
            None => match field.default {
                Some(DefaultSpec::Const(make)) => {
                    values.insert(field.key.to_string(), make());
                }
                Some(DefaultSpec::Computed(..)) => {}
                None if !field.optional => {
                    errors.push(FieldError::new(
                        join_key(path, field.key),
                        "required field missing",
                    ));
                }
                None => {}
            },
        }
    }
    // Computed defaults see every other field already defaulted; then restore seed order.
    let mut out = Map::new();
    for field in &spec.fields {
        if let Some(v) = values.get(field.key) {
            out.insert(field.key.to_string(), v.clone());
        } else if let (false, Some(DefaultSpec::Computed(compute, _))) =
            (given.contains(field.key), field.default)
        {
            if let Some(v) = compute(&values) {
                out.insert(field.key.to_string(), v);
            }
        }
    }
    let view = View {
        path,
        values: &out,
        given: &given,
    };
    (spec.checks)(&view, errors);
    (errors.len() == before).then_some(Value::Object(out))
}

/// Validates one value against a type; returns the normalized value when valid.
pub fn normalize_ty(
    ty: &Ty,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    match (ty, value) {
        (Ty::Str, Value::String(_)) | (Ty::Bool, Value::Bool(_)) => Some(value.clone()),
        (Ty::Int, Value::Number(n)) if n.is_i64() => Some(value.clone()),
        (Ty::Int, Value::Number(n)) if out_of_range_int(n).is_some() => {
            let got = out_of_range_int(n).unwrap_or_default();
            errors.push(FieldError::new(
                path,
                format!(
                    "out of range for int: got {got}; an int is 64-bit signed ({} to {})",
                    i64::MIN,
                    i64::MAX
                ),
            ));
            None
        }
        (Ty::Float, Value::Number(n)) => n.as_f64().map(Value::from),
        (Ty::Lit(allowed), Value::String(s)) if allowed.contains(&s.as_str()) => {
            Some(value.clone())
        }
        (Ty::List(inner), Value::Array(items)) => {
            let inner = inner();
            let mut out = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match normalize_ty(&inner, item, &join_index(path, i), errors) {
                    Some(v) => out.push(v),
                    None => ok = false,
                }
            }
            ok.then_some(Value::Array(out))
        }
        (Ty::Dict(inner), Value::Object(entries)) => {
            let inner = inner();
            let mut out = Map::new();
            let mut ok = true;
            for (k, item) in entries {
                match normalize_ty(&inner, item, &join_key(path, k), errors) {
                    Some(v) => {
                        out.insert(k.clone(), v);
                    }
                    None => ok = false,
                }
            }
            ok.then_some(Value::Object(out))
        }
        (Ty::Schema(spec), _) => normalize_schema(&spec(), value, path, errors),
        _ => {
            type_error(errors, path, ty, value);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(join_key("", "a"), "a");
        assert_eq!(join_key("a", "b-c_1"), "a.b-c_1");
        assert_eq!(join_key("a", "x.y"), "a[\"x.y\"]");
        assert_eq!(join_index("a", 2), "a[2]");
    }

    #[test]
    fn type_errors() {
        let mut e = Vec::new();
        assert!(normalize_ty(&Ty::Int, &Value::from(5.5), "p", &mut e).is_none());
        assert!(normalize_ty(&Ty::Int, &Value::from(true), "p", &mut e).is_none());
        assert!(normalize_ty(&Ty::Int, &Value::from("80a"), "p", &mut e).is_none());
        assert!(normalize_ty(&Ty::Int, &Value::from(u64::MAX), "p", &mut e).is_none());
        assert!(normalize_ty(&Ty::Int, &Value::from(1e20), "p", &mut e).is_none());
        assert!(normalize_ty(&Ty::Int, &Value::from(-1e19), "p", &mut e).is_none());
        assert!(normalize_ty(&Ty::Int, &Value::from(5.0), "p", &mut e).is_none());
        assert!(normalize_ty(&Ty::Str, &Value::Null, "p", &mut e).is_none());
        assert!(normalize_ty(&Ty::Str, &Value::from(7), "p", &mut e).is_none());
        assert!(normalize_ty(&Ty::Bool, &serde_json::json!([1]), "p", &mut e).is_none());
        let range = "an int is 64-bit signed (-9223372036854775808 to 9223372036854775807)";
        let msgs: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "p: expected int, got float 5.5".to_string(),
                "p: expected int, got bool true".to_string(),
                "p: expected int, got string \"80a\"".to_string(),
                format!("p: out of range for int: got 18446744073709551615; {range}"),
                format!("p: out of range for int: got about 1e20; {range}"),
                format!("p: out of range for int: got about -1e19; {range}"),
                "p: expected int, got float 5.0".to_string(),
                "p: expected str, got null".to_string(),
                "p: expected str, got int 7".to_string(),
                "p: expected bool, got list".to_string(),
            ]
        );
        let mut e = Vec::new();
        let min = Value::from(i64::MIN);
        assert_eq!(normalize_ty(&Ty::Int, &min, "p", &mut e), Some(min));
        assert!(e.is_empty());
    }

    #[test]
    fn unknown_fields_and_literals_suggest_the_closest_name() {
        let spec = crate::schemas::LocalHTTPConfig::spec();
        let mut e = Vec::new();
        let v = serde_json::json!({"listen-port": 80, "listen_adress": "x", "colour": 1});
        assert!(normalize_schema(&spec, &v, "http", &mut e).is_none());
        let msgs: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "http.listen-port: unknown field; did you mean \"listen_port\"?",
                "http.listen_adress: unknown field; did you mean \"listen_address\"?",
                "http.colour: unknown field",
            ]
        );
        let mut e = Vec::new();
        assert!(normalize_ty(
            &Ty::Lit(&["zot", "harbor"]),
            &Value::from("zott"),
            "t",
            &mut e
        )
        .is_none());
        assert_eq!(
            e[0].to_string(),
            "t: expected \"zot\" | \"harbor\", got string \"zott\"; did you mean \"zot\"?"
        );
    }

    #[test]
    fn float_accepts_int_and_literal_reports_value() {
        let mut e = Vec::new();
        assert_eq!(
            normalize_ty(&Ty::Float, &Value::from(2), "p", &mut e),
            Some(Value::from(2.0))
        );
        assert!(normalize_ty(&Ty::Lit(&["a", "b"]), &Value::from("c"), "p", &mut e).is_none());
        assert_eq!(
            e[0].to_string(),
            "p: expected \"a\" | \"b\", got string \"c\""
        );
    }
}
