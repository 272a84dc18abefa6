//! The hint after each seed check whose rule its message leaves unsaid: the seed's message
//! stays word for word, the hint comes on its own line.

use serde_json::{json, Value};

use crate::tests_checks::reg;
use crate::validate_schema;

/// (message, hint) of each error.
fn hinted(schema: &str, v: Value) -> Vec<(String, Option<String>)> {
    match validate_schema(schema, v) {
        Ok(ok) => panic!("{schema} unexpectedly valid: {ok}"),
        Err(e) => e
            .field_errors()
            .iter()
            .map(|f| (f.to_string(), f.hint.clone()))
            .collect(),
    }
}

fn one(schema: &str, v: Value, message: &str, hint: &str) {
    assert_eq!(
        hinted(schema, v),
        [(message.to_string(), Some(hint.to_string()))]
    );
}

#[test]
fn pattern_checks_spell_out_their_pattern() {
    let namespace = "a namespace has at least 2 characters, only a-z, 0-9 and \"-\", and starts \
                     and ends with a letter or digit, e.g. \"provisioning-extensions\"";
    one(
        "OCINamespaces",
        json!({"extensions": "a"}),
        "extensions: Extensions namespace must be lowercase alphanumeric with hyphens",
        namespace,
    );
    one(
        "OCINamespaces",
        json!({"kcl_packages": "KCL"}),
        "kcl_packages: KCL packages namespace must be lowercase alphanumeric with hyphens",
        namespace,
    );
    one(
        "LocalOCIConfig",
        json!({"data_dir": "data", "config_path": "c"}),
        "data_dir: Data dir must be absolute or home-relative path",
        "start it with \"/\" (absolute) or \"~\" (home-relative), e.g. ~/.provisioning/oci-registry",
    );
    one(
        "OCIArtifactReference",
        json!({"registry": "r", "namespace": "n", "repository": "p", "tag": "-x"}),
        "tag: Invalid tag format",
        "a tag has 1 to 128 characters (letters, digits, \"_\", \".\" and \"-\") and does not \
         start with \".\" or \"-\"",
    );
}

#[test]
fn conditional_checks_name_what_to_set() {
    one(
        "OCIRegistryConfig",
        reg(json!({"deployment": "local"})),
        "local: Config must match deployment type",
        "deployment \"local\" needs a `local` block with data_dir and config_path",
    );
    one(
        "OCIRegistryConfig",
        reg(json!({"deployment": "remote"})),
        "remote: Config must match deployment type",
        "deployment \"remote\" needs a `remote` block (`remote: {}` takes every default)",
    );
    one(
        "OCIRegistryConfig",
        reg(json!({"auth_required": true})),
        "auth_required: Authentication config required when auth enabled",
        "with auth_required: true, set username (and password_path) or auth_token_path",
    );
    one(
        "OCIRegistryConfig",
        reg(json!({"tls_enabled": true, "tls_cert_path": "c"})),
        "tls_enabled: TLS cert/key required for local TLS",
        "with tls_enabled: true, set both tls_cert_path and tls_key_path (only a remote \
         deployment may leave them out)",
    );
    one(
        "OCIRegistryFeatures",
        json!({"vulnerability_scanning": true}),
        "scanner_type: Scanner type required when vulnerability scanning enabled",
        "set scanner_type to \"trivy\", \"clair\" or \"anchore\", or vulnerability_scanning: false",
    );
    one(
        "OCIRegistryFeatures",
        json!({"image_signing": true}),
        "signing_method: Signing method required when image signing enabled",
        "set signing_method to \"notary\" or \"cosign\", or image_signing: false",
    );
}

#[test]
fn an_empty_string_is_said_to_be_one_and_plain_checks_have_no_hint() {
    one(
        "HarborConfig",
        json!({"project": ""}),
        "project: Harbor project required",
        "it is set to the empty string \"\"",
    );
    assert_eq!(
        hinted("LocalHTTPConfig", json!({"listen_port": 0})),
        [("listen_port: Port must be 1-65535".to_string(), None)]
    );
}
