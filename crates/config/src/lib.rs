//! The seed's KCL schemas (`oci_registry.k`) as Rust types: defaults, every check with field
//! paths, YAML/TOML/JSON/KCL loaders, effective-config rendering, JSON Schema, and the typed,
//! fully defaulted settings each consumer reads (`LocalView`, `ServeSettings`, `ClientView`).
//!
//! Each schema is described once (in `schemas.rs`); the Rust struct, its field table, the
//! generic validation pass, the defaults and the JSON Schema all come from that description.
//! Validation reports every error at once as `path: message`, e.g.
//! `registry.local.http_config.listen_port: Port must be 1-65535`.
//!
//! ```
//! let doc = ocireg_config::load_str(
//!     "registry: {deployment: disabled, type: zot, endpoint: localhost, namespaces: {}}",
//!     ocireg_config::Format::Yaml,
//! ).unwrap();
//! assert_eq!(doc.registry.port, 5000);
//! ```

mod checks;
mod document;
mod effective;
mod error;
mod extensions;
mod format;
mod init;
mod json;
mod jsonschema;
mod load;
mod normalize;
mod object_storage;
mod reference;
mod schemas;
pub mod spec;
mod suggest;
mod yaml;

#[cfg(test)]
mod tests_checks;
#[cfg(test)]
mod tests_checks_nested;
#[cfg(test)]
mod tests_document;
#[cfg(test)]
mod tests_hints;

pub use document::{
    document_from_value, is_bare_registry, to_json_value, validate_schema, Document,
};
pub use effective::{
    host_port, listen_port, parse_duration, AccessRuleView, AuthView, ClientEndpoint, ClientView,
    EngineBinary, GcView, HttpView, LimitsView, ListenAddr, LocalView, MultiUserView,
    NamespaceQuotaView, QuotaView, RateView, RemoteView, ScrubView, ServeSettings, ServeTls,
    StorageBackendView, StorageView, TlsPaths, TokenView, WebhookView, BUILTIN_BINARY,
    DEFAULT_S3_REGION,
};
pub use error::{ConfigError, FieldError};
pub use extensions::{
    AccessRule, LocalAuthConfig, LocalLimitsConfig, LocalOpsConfig, EXTENSION_SCHEMAS,
};
pub use format::{parse_text, render, Format, OutputFormat};
pub use init::{default_document, init_template, InitOptions, SOLO_DATA_DIR};
pub use jsonschema::{json_schema, schema_def};
pub use load::{
    evaluate_kcl, expand_home, expand_home_in, load_path, load_reader, load_str, read_value,
    read_value_from, resolve_config_path, CONFIG_ENV, DEFAULT_CONFIG_PATH,
};
pub use normalize::View;
pub use object_storage::{LocalAzureConfig, LocalS3Config};
pub use reference::{digest_problem, parse_artifact_reference};
pub use schemas::{
    schema_spec, Deployment, HarborConfig, HarborRegistryConfig, LocalHTTPConfig, LocalOCIConfig,
    LocalStorageConfig, NamespaceQuota, OCIArtifactReference, OCINamespaces, OCIPullPolicy,
    OCIPushPolicy, OCIRegistryConfig, OCIRegistryFeatures, PullPolicy, QuotaConfig,
    RateLimitConfig, RegistryType, RemoteOCIConfig, ReplicationTarget, ReplicationType,
    ScannerType, Severity, SigningMethod, StorageBackend, ZotFeatures, ZotRegistryConfig, SCHEMAS,
};

/// The 18 schema names accepted by [`validate_schema`], in the seed's order.
pub const SCHEMA_NAMES: &[&str] = &[
    "OCIRegistryConfig",
    "LocalOCIConfig",
    "LocalHTTPConfig",
    "LocalStorageConfig",
    "RemoteOCIConfig",
    "RateLimitConfig",
    "OCINamespaces",
    "OCIRegistryFeatures",
    "ReplicationTarget",
    "QuotaConfig",
    "NamespaceQuota",
    "OCIArtifactReference",
    "OCIPullPolicy",
    "OCIPushPolicy",
    "ZotRegistryConfig",
    "ZotFeatures",
    "HarborRegistryConfig",
    "HarborConfig",
];

/// Renders the effective document (see [`to_json_value`]) in the given format.
pub fn render_document(doc: &Document, format: OutputFormat) -> Result<String, ConfigError> {
    render(&to_json_value(doc), format)
}
