//! JSON Schema (draft 2020-12) of the document, generated from the field tables.

use serde_json::{json, Map, Value};

use crate::schemas::SCHEMAS;
use crate::spec::{DefaultSpec, FieldSpec, SchemaSpec, Ty};

/// The JSON Schema of the configuration document (the `{registry, pull_policy?, push_policy?}`
/// form; a bare OCIRegistryConfig root, also accepted by the loader, is `$defs/OCIRegistryConfig`).
///
/// Every seed schema is in `$defs` with its types, literal enums, constant defaults, required
/// fields and `additionalProperties: false`. Notes: the loader also accepts `null` for any
/// non-required field (as "absent"), which this schema does not describe; the seed's `check`
/// rules are not expressed here (use `ocireg config validate`).
pub fn json_schema() -> Value {
    let mut defs = Map::new();
    for (name, spec) in SCHEMAS.iter().chain(crate::extensions::EXTENSION_SCHEMAS) {
        defs.insert((*name).to_string(), schema_def(&spec()));
    }
    defs.insert(
        "DocumentRegistry".into(),
        json!({
            "description": "The document's registry: an OCIRegistryConfig; with type \"zot\" it may carry zot_features (ZotRegistryConfig), with type \"harbor\" harbor_config (HarborRegistryConfig).",
            "if": {"type": "object", "properties": {"type": {"const": "zot"}}, "required": ["type"]},
            "then": {"$ref": "#/$defs/ZotRegistryConfig"},
            "else": {
                "if": {"type": "object", "properties": {"type": {"const": "harbor"}}, "required": ["type"]},
                "then": {"$ref": "#/$defs/HarborRegistryConfig"},
                "else": {"$ref": "#/$defs/OCIRegistryConfig"}
            }
        }),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ocireg configuration document",
        "description": "The OCI registry configuration of the provisioning platform (the KCL schemas of oci_registry.k). Optional pull_policy and push_policy take the seed's defaults when absent.",
        "type": "object",
        "properties": {
            "registry": {"$ref": "#/$defs/DocumentRegistry"},
            "pull_policy": {"$ref": "#/$defs/OCIPullPolicy"},
            "push_policy": {"$ref": "#/$defs/OCIPushPolicy"}
        },
        "required": ["registry"],
        "additionalProperties": false,
        "$defs": defs
    })
}

/// The JSON Schema of one seed schema (nested schemas as `$ref`s into `#/$defs`).
pub fn schema_def(spec: &SchemaSpec) -> Value {
    let mut props = Map::new();
    for field in &spec.fields {
        props.insert(field.key.to_string(), field_schema(field));
    }
    let required: Vec<&str> = spec
        .fields
        .iter()
        .filter(|f| f.required())
        .map(|f| f.key)
        .collect();
    let mut out = Map::new();
    out.insert("title".into(), Value::from(spec.name));
    out.insert("description".into(), Value::from(spec.description()));
    out.insert("type".into(), Value::from("object"));
    out.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        out.insert("required".into(), json!(required));
    }
    out.insert("additionalProperties".into(), Value::Bool(false));
    Value::Object(out)
}

fn field_schema(field: &FieldSpec) -> Value {
    let mut out = match ty_schema(&field.ty) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut description = field.description();
    match field.default {
        Some(DefaultSpec::Const(make)) => {
            out.insert("default".into(), make());
        }
        Some(DefaultSpec::Computed(_, how)) => {
            if !description.is_empty() {
                description.push_str(". ");
            }
            description.push_str(&format!("Default: {how}"));
        }
        None => {}
    }
    if !description.is_empty() {
        out.insert("description".into(), Value::from(description));
    }
    Value::Object(out)
}

fn ty_schema(ty: &Ty) -> Value {
    match ty {
        Ty::Str => json!({"type": "string"}),
        Ty::Int => json!({"type": "integer"}),
        Ty::Float => json!({"type": "number"}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Lit(values) => json!({"type": "string", "enum": values}),
        Ty::List(inner) => json!({"type": "array", "items": ty_schema(&inner())}),
        Ty::Dict(inner) => json!({"type": "object", "additionalProperties": ty_schema(&inner())}),
        Ty::Schema(spec) => json!({"$ref": format!("#/$defs/{}", spec().name)}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let s = json_schema();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["required"], json!(["registry"]));
        let defs = s["$defs"].as_object().unwrap();
        // 18 seed schemas, 6 extension schemas, DocumentRegistry.
        assert_eq!(defs.len(), 25);
        for (name, def) in defs {
            if name != "DocumentRegistry" {
                assert_eq!(def["additionalProperties"], false, "{name}");
                assert_eq!(def["title"], name.as_str());
            }
        }
        // Every $ref resolves.
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|x| refs(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&s, &mut all);
        assert!(all.len() > 20);
        for r in all {
            let name = r.strip_prefix("#/$defs/").unwrap();
            assert!(defs.contains_key(name), "{r}");
        }
    }

    #[test]
    fn fields() {
        let s = json_schema();
        let reg = &s["$defs"]["OCIRegistryConfig"];
        assert_eq!(
            reg["required"],
            json!(["deployment", "type", "endpoint", "namespaces"])
        );
        assert_eq!(
            reg["properties"]["port"],
            json!({"type": "integer", "default": 5000, "description": "Registry port (optional, defaults by type)"})
        );
        assert_eq!(
            reg["properties"]["deployment"]["enum"],
            json!(["local", "remote", "disabled"])
        );
        assert_eq!(reg["properties"]["local"]["$ref"], "#/$defs/LocalOCIConfig");
        assert!(reg["properties"].get("zot_features").is_none());
        let zot = &s["$defs"]["ZotRegistryConfig"];
        assert_eq!(zot["properties"]["type"]["enum"], json!(["zot"]));
        assert_eq!(zot["properties"]["type"]["default"], "zot");
        assert_eq!(
            zot["properties"]["zot_features"]["$ref"],
            "#/$defs/ZotFeatures"
        );
        assert_eq!(
            zot["required"],
            json!(["deployment", "endpoint", "namespaces"])
        );
        let local = &s["$defs"]["LocalOCIConfig"]["properties"]["log_file"];
        assert_eq!(
            local["description"],
            "Log file path. Default: \"${data_dir}/registry.log\""
        );
        assert!(local.get("default").is_none());
        let remote = &s["$defs"]["RemoteOCIConfig"]["properties"];
        assert_eq!(remote["retry_backoff"]["default"], 2.0);
        assert_eq!(
            remote["no_proxy"],
            json!({"type": "array", "items": {"type": "string"}, "description": "Hosts that bypass the proxy"})
        );
        let ns = &s["$defs"]["OCINamespaces"]["properties"]["custom"];
        assert_eq!(ns["additionalProperties"], json!({"type": "string"}));
        assert!(s["$defs"]["LocalOCIConfig"]["description"]
            .as_str()
            .unwrap()
            .starts_with("Local OCI registry deployment configuration\n\nUsed for:"));
    }
}
