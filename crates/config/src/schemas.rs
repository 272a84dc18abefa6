//! The seed's 18 schemas (`oci_registry.k`), each described once.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::checks;
use crate::extensions::{LocalAuthConfig, LocalLimitsConfig, LocalOpsConfig};
use crate::object_storage::{LocalAzureConfig, LocalS3Config};
use crate::spec::{literal_enum, schema, DefaultSpec, FieldSpec, SchemaSpec, Ty};

literal_enum! {
    /// `OCIRegistryConfig.deployment`.
    Deployment { Local = "local", Remote = "remote", Disabled = "disabled" }
}
literal_enum! {
    /// `OCIRegistryConfig.type`: the registry implementation.
    RegistryType { Distribution = "distribution", Zot = "zot", Harbor = "harbor", Artifactory = "artifactory" }
}
literal_enum! {
    /// `LocalStorageConfig.backend`.
    StorageBackend { Filesystem = "filesystem", S3 = "s3", Azure = "azure" }
}
literal_enum! {
    /// `OCIRegistryFeatures.scanner_type`.
    ScannerType { Trivy = "trivy", Clair = "clair", Anchore = "anchore" }
}
literal_enum! {
    /// `OCIRegistryFeatures.signing_method`.
    SigningMethod { Notary = "notary", Cosign = "cosign" }
}
literal_enum! {
    /// `ReplicationTarget.type`.
    ReplicationType { Harbor = "harbor", DockerHub = "docker-hub", AwsEcr = "aws-ecr", AzureAcr = "azure-acr", GoogleGcr = "google-gcr" }
}
literal_enum! {
    /// `OCIPullPolicy.policy`.
    PullPolicy { Always = "always", IfNotPresent = "if-not-present", Never = "never" }
}
literal_enum! {
    /// `HarborConfig.severity_threshold`.
    Severity { Critical = "critical", High = "high", Medium = "medium", Low = "low" }
}

schema! {
    /// OCI registry configuration for artifact and image distribution
    OCIRegistryConfig, checks = checks::oci_registry_config;
    fields {
        /// Deployment type
        deployment: Deployment = req;
        /// Registry implementation type
        r#type["type"]: RegistryType = req;
        /// Registry endpoint (hostname or IP)
        endpoint: String = req;
        /// Registry port (optional, defaults by type)
        port: i64 = opt_def(5000);
        /// TLS/SSL configuration
        tls_enabled: bool = def(false);
        /// TLS certificate path
        tls_cert_path: Option<String> = opt;
        /// TLS key path
        tls_key_path: Option<String> = opt;
        /// CA certificate path
        ca_cert_path: Option<String> = opt;
        /// Authentication
        auth_required: bool = def(false);
        /// Username
        username: Option<String> = opt;
        /// Path to password file
        password_path: Option<String> = opt;
        /// Path to auth token
        auth_token_path: Option<String> = opt;
        /// Local deployment configuration
        local: Option<LocalOCIConfig> = opt;
        /// Remote connection configuration
        remote: Option<RemoteOCIConfig> = opt;
        /// Artifact namespaces/repositories
        namespaces: OCINamespaces = req;
        /// Registry-specific features
        features: Option<OCIRegistryFeatures> = opt;
    }
    extra {
        /// Zot-specific features (only with `type = "zot"`, as in `ZotRegistryConfig`)
        zot_features: ZotFeatures;
        /// Harbor-specific configuration (only with `type = "harbor"`, as in `HarborRegistryConfig`)
        harbor_config: HarborConfig;
    }
}

schema! {
    /// Local OCI registry deployment configuration
    ///
    /// Used for:
    /// - Solo mode development
    /// - Testing OCI artifact distribution
    /// - Offline extension development
    LocalOCIConfig, checks = checks::local_oci_config;
    fields {
        /// Data storage directory
        data_dir: String = req;
        /// Registry configuration file path
        config_path: String = req;
        /// Auto-start registry on provisioning startup
        auto_start: bool = def(false);
        /// Binary path (optional, uses PATH if not specified)
        binary_path: Option<String> = opt;
        /// Log file path
        log_file: String = opt_computed(log_file_default, "\"${data_dir}/registry.log\"");
        /// HTTP configuration
        http_config: Option<LocalHTTPConfig> = opt;
        /// Storage configuration
        storage_config: Option<LocalStorageConfig> = opt;
        /// ocireg extension: registry authentication and authorization
        auth_config: Option<LocalAuthConfig> = opt;
        /// ocireg extension: request and upload-session limits
        limits_config: Option<LocalLimitsConfig> = opt;
        /// ocireg extension: GC, scrub, metrics and webhook settings
        ops_config: Option<LocalOpsConfig> = opt;
    }
}

fn log_file_default(values: &Map<String, Value>) -> Option<Value> {
    let data_dir = values.get("data_dir")?.as_str()?;
    Some(Value::from(format!("{data_dir}/registry.log")))
}

schema! {
    /// HTTP configuration for local registry
    LocalHTTPConfig, checks = checks::local_http_config;
    fields {
        /// Listen address
        listen_address: String = def("127.0.0.1");
        /// Listen port
        listen_port: i64 = def(5000);
        /// seconds
        read_timeout: i64 = def(60);
        /// seconds
        write_timeout: i64 = def(60);
        /// seconds
        idle_timeout: i64 = def(120);
    }
}

schema! {
    /// Storage configuration for local registry
    LocalStorageConfig, checks = crate::object_storage::local_storage_config;
    fields {
        /// Storage backend
        backend: StorageBackend = def("filesystem");
        /// Filesystem storage
        rootdirectory: Option<String> = opt;
        /// Garbage collection
        gc_enabled: bool = def(true);
        /// seconds
        gc_interval: i64 = def(3600);
        /// Deduplication
        dedupe_enabled: bool = def(true);
        /// ocireg extension: the S3 bucket of backend "s3"
        s3: Option<LocalS3Config> = opt;
        /// ocireg extension: the Azure Blob container of backend "azure"
        azure: Option<LocalAzureConfig> = opt;
    }
}

schema! {
    /// Remote OCI registry connection configuration
    ///
    /// Used for:
    /// - Multi-user shared registry
    /// - CI/CD artifact registry
    /// - Enterprise production registry
    RemoteOCIConfig, checks = checks::remote_oci_config;
    fields {
        /// Connection timeout (seconds)
        timeout: i64 = def(30);
        /// Retry configuration
        retries: i64 = def(3);
        /// seconds
        retry_delay: i64 = def(5);
        /// exponential backoff multiplier
        retry_backoff: f64 = def(2.0);
        /// SSL/TLS verification
        verify_ssl: bool = def(true);
        /// Proxy configuration (optional)
        http_proxy: Option<String> = opt;
        /// HTTPS proxy
        https_proxy: Option<String> = opt;
        /// Hosts that bypass the proxy
        no_proxy: Option<Vec<String>> = opt;
        /// Rate limiting
        rate_limit: Option<RateLimitConfig> = opt;
    }
}

schema! {
    /// Rate limiting configuration for remote registry
    RateLimitConfig, checks = checks::rate_limit_config;
    fields {
        /// Requests per second
        requests_per_second: i64 = def(10);
        /// Burst size
        burst: i64 = def(20);
        /// Per-operation limits (optional)
        pull_limit: Option<i64> = opt;
        /// Push limit
        push_limit: Option<i64> = opt;
    }
}

schema! {
    /// OCI registry namespaces for different artifact types
    ///
    /// Namespaces organize artifacts by purpose and allow
    /// different access control policies per namespace.
    OCINamespaces, checks = checks::oci_namespaces;
    fields {
        /// Extension artifacts (providers, taskservs, clusters)
        extensions: String = def("provisioning-extensions");
        /// KCL package artifacts
        kcl_packages: String = def("provisioning-kcl");
        /// Platform service images (orchestrator, control-center)
        platform_images: String = def("provisioning-platform");
        /// Test environment images
        test_images: String = def("provisioning-test");
        /// Custom user-defined namespaces
        custom: Option<IndexMap<String, String>> = opt;
    }
}

schema! {
    /// Registry-specific feature configuration
    ///
    /// Different registry implementations support different features.
    /// This schema allows enabling/disabling features based on
    /// registry capabilities.
    OCIRegistryFeatures, checks = checks::oci_registry_features;
    fields {
        /// Vulnerability scanning (Harbor, Artifactory)
        vulnerability_scanning: bool = def(false);
        /// Scanner
        scanner_type: Option<ScannerType> = opt;
        /// Image signing/verification (Notary, Cosign)
        image_signing: bool = def(false);
        /// Signing method
        signing_method: Option<SigningMethod> = opt;
        /// Replication (Harbor)
        replication_enabled: bool = def(false);
        /// Replication targets
        replication_targets: Option<Vec<ReplicationTarget>> = opt;
        /// Quota management
        quota_enabled: bool = def(false);
        /// Quota configuration
        quota_config: Option<QuotaConfig> = opt;
        /// Webhook notifications
        webhook_enabled: bool = def(false);
        /// Webhook endpoints
        webhook_endpoints: Option<Vec<String>> = opt;
        /// Garbage collection
        gc_enabled: bool = def(true);
        /// Daily at 2 AM
        gc_schedule: String = opt_def("0 2 * * *");
    }
}

schema! {
    /// Harbor replication target configuration
    ReplicationTarget, checks = checks::replication_target;
    fields {
        /// Target name
        name: String = req;
        /// Target kind
        r#type["type"]: ReplicationType = req;
        /// Target endpoint
        endpoint: String = req;
        /// Path to credentials file
        credentials: Option<String> = opt;
        /// Verify the target's TLS certificate
        verify_ssl: bool = def(true);
    }
}

schema! {
    /// Registry quota configuration
    QuotaConfig, checks = checks::quota_config;
    fields {
        /// Storage quota (GB)
        storage_limit_gb: i64 = def(100);
        /// Artifact count limit
        artifact_limit: i64 = opt_def(10000);
        /// Per-namespace quotas
        namespace_quotas: Option<IndexMap<String, NamespaceQuota>> = opt;
    }
}

schema! {
    /// Per-namespace quota configuration
    NamespaceQuota, checks = checks::namespace_quota;
    fields {
        /// Storage quota (GB)
        storage_limit_gb: i64 = def(50);
        /// Artifact count limit
        artifact_limit: i64 = def(1000);
    }
}

schema! {
    /// OCI artifact reference for pulling/pushing artifacts
    ///
    /// Format: <registry>/<namespace>/<repository>:<tag>@<digest>
    OCIArtifactReference, checks = checks::oci_artifact_reference;
    fields {
        /// Registry endpoint
        registry: String = req;
        /// Namespace/project
        namespace: String = req;
        /// Repository name
        repository: String = req;
        /// Tag (optional, defaults to "latest")
        tag: String = def("latest");
        /// Digest (optional, for content-addressable pulls)
        digest: Option<String> = opt;
        /// Computed full reference
        full_reference: String = computed(full_reference_default, "\"${registry}/${namespace}/${repository}:${tag}\"");
    }
}

fn full_reference_default(values: &Map<String, Value>) -> Option<Value> {
    let get = |k: &str| values.get(k).and_then(Value::as_str);
    Some(Value::from(format!(
        "{}/{}/{}:{}",
        get("registry")?,
        get("namespace")?,
        get("repository")?,
        get("tag")?
    )))
}

schema! {
    /// OCI artifact pull policy configuration
    ///
    /// Defines caching and pull behavior for artifacts
    OCIPullPolicy, checks = checks::oci_pull_policy;
    fields {
        /// Pull policy
        policy: PullPolicy = def("if-not-present");
        /// Cache TTL (seconds)
        cache_ttl: i64 = def(3600);
        /// Verify digest on cached artifacts
        verify_cached: bool = def(true);
        /// Allow insecure registries (development only)
        allow_insecure: bool = def(false);
    }
}

schema! {
    /// OCI artifact push policy configuration
    ///
    /// Defines pushing behavior and constraints
    OCIPushPolicy, checks = checks::oci_push_policy;
    fields {
        /// Allow overwriting existing tags
        allow_overwrite: bool = def(false);
        /// Require tag signing before push
        require_signing: bool = def(false);
        /// Automatic tagging strategy
        auto_tag: bool = def(true);
        /// Tag format
        tag_format: String = opt_def("v{version}-{timestamp}");
        /// Compression
        compression_enabled: bool = def(true);
        /// 0-9
        compression_level: i64 = def(6);
    }
}

schema! {
    /// Zot-specific features
    ZotFeatures, checks = checks::none;
    fields {
        /// Enable search API
        search_enabled: bool = def(true);
        /// Enable metrics endpoint
        metrics_enabled: bool = def(true);
        /// Metrics port
        metrics_port: i64 = def(9090);
        /// Enable sync (pull-through cache)
        sync_enabled: bool = def(false);
        /// Registries to sync from
        sync_registries: Option<Vec<String>> = opt;
        /// Enable scrub (background verification)
        scrub_enabled: bool = def(true);
        /// Scrub interval
        scrub_interval: String = def("24h");
    }
}

schema! {
    /// Harbor-specific configuration
    HarborConfig, checks = checks::harbor_config;
    fields {
        /// Harbor project (namespace)
        project: String = req;
        /// Project visibility
        public_project: bool = def(false);
        /// Content trust (Notary)
        content_trust: bool = def(false);
        /// Auto-scan on push
        auto_scan: bool = def(true);
        /// Prevent vulnerable images
        prevent_vulnerable: bool = def(true);
        /// Severity threshold
        severity_threshold: Severity = def("high");
    }
}

/// `ZotRegistryConfig(OCIRegistryConfig)`: `type: "zot" = "zot"` plus `zot_features?`.
///
/// In Rust it is the registry config itself (whose `zot_features` field holds the extra);
/// validation through [`ZotRegistryConfig::spec`] guarantees `type` is `zot` and no
/// `harbor_config` is set.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ZotRegistryConfig(pub OCIRegistryConfig);

/// `HarborRegistryConfig(OCIRegistryConfig)`: `type: "harbor" = "harbor"` plus `harbor_config?`.
///
/// In Rust it is the registry config itself (whose `harbor_config` field holds the extra).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct HarborRegistryConfig(pub OCIRegistryConfig);

impl std::ops::Deref for ZotRegistryConfig {
    type Target = OCIRegistryConfig;
    fn deref(&self) -> &OCIRegistryConfig {
        &self.0
    }
}

impl std::ops::Deref for HarborRegistryConfig {
    type Target = OCIRegistryConfig;
    fn deref(&self) -> &OCIRegistryConfig {
        &self.0
    }
}

const ZOT: &[&str] = &["zot"];
const HARBOR: &[&str] = &["harbor"];

/// A sub-schema of OCIRegistryConfig: `type` narrowed to one literal with that default,
/// plus one optional extra field.
fn registry_subschema(
    name: &'static str,
    doc: &'static str,
    only: &'static [&'static str],
    make_type: fn() -> Value,
    extra: FieldSpec,
) -> SchemaSpec {
    let mut spec = OCIRegistryConfig::spec();
    spec.name = name;
    spec.doc = doc;
    for field in &mut spec.fields {
        if field.key == "type" {
            field.ty = Ty::Lit(only);
            field.default = Some(DefaultSpec::Const(make_type));
        }
    }
    spec.fields.push(extra);
    spec
}

impl ZotRegistryConfig {
    /// The field table: OCIRegistryConfig with `type: "zot" = "zot"` and `zot_features?`.
    pub fn spec() -> SchemaSpec {
        registry_subschema(
            "ZotRegistryConfig",
            " Zot registry specific configuration\n\n Zot is a lightweight, cloud-native OCI registry focused on\n minimal resource usage and developer experience.\n",
            ZOT,
            || Value::from("zot"),
            FieldSpec {
                key: "zot_features",
                ty: Ty::Schema(ZotFeatures::spec),
                optional: true,
                default: None,
                doc: " Zot-specific features\n",
            },
        )
    }
}

impl HarborRegistryConfig {
    /// The field table: OCIRegistryConfig with `type: "harbor" = "harbor"` and `harbor_config?`.
    pub fn spec() -> SchemaSpec {
        registry_subschema(
            "HarborRegistryConfig",
            " Harbor registry specific configuration\n\n Harbor is an enterprise-grade container registry with\n security scanning, replication, and RBAC.\n",
            HARBOR,
            || Value::from("harbor"),
            FieldSpec {
                key: "harbor_config",
                ty: Ty::Schema(HarborConfig::spec),
                optional: true,
                default: None,
                doc: " Harbor-specific configuration\n",
            },
        )
    }
}

/// A schema's field-table constructor.
pub type SpecFn = fn() -> SchemaSpec;

/// The 18 schema names, in the seed's order, with their field tables.
pub const SCHEMAS: &[(&str, SpecFn)] = &[
    ("OCIRegistryConfig", OCIRegistryConfig::spec),
    ("LocalOCIConfig", LocalOCIConfig::spec),
    ("LocalHTTPConfig", LocalHTTPConfig::spec),
    ("LocalStorageConfig", LocalStorageConfig::spec),
    ("RemoteOCIConfig", RemoteOCIConfig::spec),
    ("RateLimitConfig", RateLimitConfig::spec),
    ("OCINamespaces", OCINamespaces::spec),
    ("OCIRegistryFeatures", OCIRegistryFeatures::spec),
    ("ReplicationTarget", ReplicationTarget::spec),
    ("QuotaConfig", QuotaConfig::spec),
    ("NamespaceQuota", NamespaceQuota::spec),
    ("OCIArtifactReference", OCIArtifactReference::spec),
    ("OCIPullPolicy", OCIPullPolicy::spec),
    ("OCIPushPolicy", OCIPushPolicy::spec),
    ("ZotRegistryConfig", ZotRegistryConfig::spec),
    ("ZotFeatures", ZotFeatures::spec),
    ("HarborRegistryConfig", HarborRegistryConfig::spec),
    ("HarborConfig", HarborConfig::spec),
];

/// The field table of the schema called `name`.
pub fn schema_spec(name: &str) -> Option<SchemaSpec> {
    SCHEMAS
        .iter()
        .chain(crate::extensions::EXTENSION_SCHEMAS)
        .find(|(n, _)| *n == name)
        .map(|(_, f)| f())
}
