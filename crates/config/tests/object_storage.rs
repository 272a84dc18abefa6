#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `storage_config.s3` / `storage_config.azure` extensions: validated with field paths like
//! every other block, absent from the output of documents that do not use them, and in the
//! JSON Schema.

use ocireg_config::{load_str, render_document, Format, OutputFormat};

const BASE: &str = "registry:\n  deployment: local\n  type: zot\n  endpoint: localhost\n  namespaces: {}\n  local:\n    data_dir: /tmp/x\n    config_path: /tmp/x/c.yml\n";

fn with_storage(storage: &str) -> String {
    format!("{BASE}    storage_config: {storage}\n")
}

/// Every error of the document, one per line.
fn errors(storage: &str) -> String {
    load_str(&with_storage(storage), Format::Yaml)
        .unwrap_err()
        .to_string()
}

fn assert_has(err: &str, wants: &[&str]) {
    for want in wants {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

const PATH: &str = "registry.local.storage_config";

#[test]
fn valid_blocks_load_and_absent_ones_render_nothing_new() {
    for storage in [
        "{backend: s3, s3: {bucket: my-registry, region: eu-west-1}}",
        "{backend: s3, s3: {bucket: reg, endpoint: 'http://127.0.0.1:9000', allow_http: true, prefix: a/b, path_style: true}}",
        "{backend: azure, azure: {account: devstoreaccount1, container: registry, prefix: reg}}",
        "{backend: filesystem, rootdirectory: /srv/reg}",
    ] {
        let doc = load_str(&with_storage(storage), Format::Yaml)
            .unwrap_or_else(|e| panic!("{storage}: {e}"));
        let out = render_document(&doc, OutputFormat::Json).unwrap();
        let object = storage.contains("s3:") || storage.contains("azure:");
        assert_eq!(out.contains("\"s3\"") || out.contains("\"azure\""), object, "{out}");
    }
    let doc = load_str(
        &with_storage("{backend: s3, s3: {bucket: reg}}"),
        Format::Yaml,
    )
    .unwrap();
    let s3 = doc
        .registry
        .local
        .unwrap()
        .storage_config
        .unwrap()
        .s3
        .unwrap();
    assert_eq!(
        (s3.prefix.as_str(), s3.allow_http, s3.path_style),
        ("", false, None)
    );
}

#[test]
fn the_selected_backend_needs_its_block() {
    let err = errors("{backend: s3}");
    assert_has(
        &err,
        &[&format!(
            "{PATH}.s3.bucket: backend \"s3\" needs the s3 block"
        )],
    );
    let err = errors("{backend: s3, s3: {region: us-east-1}}");
    assert_has(
        &err,
        &[&format!("{PATH}.s3.bucket: required field missing")],
    );
    let err = errors("{backend: azure}");
    assert_has(
        &err,
        &[
            &format!("{PATH}.azure.account: backend \"azure\" needs"),
            &format!("{PATH}.azure.container: backend \"azure\" needs"),
        ],
    );
}

#[test]
fn a_block_for_another_backend_is_refused_naming_the_selected_one() {
    let err = errors("{s3: {bucket: reg}}");
    assert_has(
        &err,
        &[&format!(
            "{PATH}.s3: The s3 block is used only with backend \"s3\"; the selected backend is \"filesystem\""
        )],
    );
    let err = errors("{backend: s3, s3: {bucket: reg}, azure: {account: acct, container: reg}}");
    assert_has(
        &err,
        &[&format!("{PATH}.azure: The azure block is used only with backend \"azure\"; the selected backend is \"s3\"")],
    );
    let err =
        errors("{backend: azure, rootdirectory: /srv, azure: {account: acct, container: reg}}");
    assert_has(
        &err,
        &[&format!(
            "{PATH}.rootdirectory: rootdirectory is the filesystem backend's"
        )],
    );
}

#[test]
fn names_endpoints_and_prefixes_are_checked_with_paths() {
    let err = errors(
        "{backend: s3, s3: {bucket: My_Bucket, region: 'EU west', endpoint: 'http://minio:9000', prefix: /reg}}",
    );
    assert_has(
        &err,
        &[
            &format!("{PATH}.s3.bucket: Invalid S3 bucket name"),
            &format!("{PATH}.s3.region: Invalid S3 region"),
            &format!("{PATH}.s3.endpoint: An http:// endpoint needs allow_http: true"),
            &format!("{PATH}.s3.prefix: Invalid prefix"),
        ],
    );
    for bad in [
        "ftp://host",
        "minio:9000",
        "https://",
        "http://:9000/x",
        "https://a b",
    ] {
        let err = errors(&format!(
            "{{backend: s3, s3: {{bucket: reg, allow_http: true, endpoint: '{bad}'}}}}"
        ));
        assert_has(
            &err,
            &[&format!(
                "{PATH}.s3.endpoint: Endpoint must be an http:// or https:// URL"
            )],
        );
    }
    let err = errors(
        "{backend: azure, azure: {account: Dev-Account, container: a--b, endpoint: 'tcp://x', prefix: 'a/../b'}}",
    );
    assert_has(
        &err,
        &[
            &format!("{PATH}.azure.account: Invalid Azure storage account name"),
            &format!("{PATH}.azure.container: Invalid Azure container name"),
            &format!("{PATH}.azure.endpoint: Endpoint must be an http:// or https:// URL"),
            &format!("{PATH}.azure.prefix: Invalid prefix"),
        ],
    );
    let err = errors("{backend: s3, s3: {bucket: reg, secret_key: x}}");
    assert_has(&err, &[&format!("{PATH}.s3.secret_key: unknown field")]);
}

#[test]
fn the_json_schema_describes_both_blocks() {
    let schema = ocireg_config::json_schema();
    let defs = &schema["$defs"];
    assert_eq!(
        defs["LocalS3Config"]["required"],
        serde_json::json!(["bucket"])
    );
    assert_eq!(
        defs["LocalAzureConfig"]["required"],
        serde_json::json!(["account", "container"])
    );
    let storage = &defs["LocalStorageConfig"]["properties"];
    assert_eq!(storage["s3"]["$ref"], "#/$defs/LocalS3Config");
    assert_eq!(storage["azure"]["$ref"], "#/$defs/LocalAzureConfig");
}
