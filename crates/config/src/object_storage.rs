//! ocireg's object-storage extensions of `LocalStorageConfig`: the `s3` and `azure` blocks the
//! seed's `backend: "s3" | "azure"` needs (the seed names the backends but has no field for a
//! bucket or a container), and the cross-field check of the storage block.
//!
//! Credentials are never config fields: the object driver takes them from the environment
//! (`AWS_*`, `AZURE_STORAGE_*`) or the cloud's metadata service, so a config file can be shared
//! and committed without secrets.

use crate::error::FieldError;
use crate::normalize::View;
use crate::spec::schema;

type Errors = Vec<FieldError>;

schema! {
    /// S3 bucket of `backend: s3` (ocireg extension)
    ///
    /// AWS S3 or an S3-compatible service (MinIO, Ceph RGW, moto). Credentials come from the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or the
    /// instance's role, never from this block.
    LocalS3Config, checks = local_s3_config;
    fields {
        /// Bucket name (S3's naming rules; the bucket must exist)
        bucket: String = req;
        /// Region (unset: `us-east-1` with an endpoint, else `AWS_REGION` / `AWS_DEFAULT_REGION`)
        region: Option<String> = opt;
        /// Endpoint URL of an S3-compatible service (unset: AWS)
        endpoint: Option<String> = opt;
        /// Key prefix every object of the registry is stored under (no leading `/`)
        prefix: String = def("");
        /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted ones (unset: true with an endpoint, false for AWS)
        path_style: Option<bool> = opt;
        /// Allow an `http://` endpoint
        allow_http: bool = def(false);
    }
}

schema! {
    /// Azure Blob Storage container of `backend: azure` (ocireg extension)
    ///
    /// Credentials come from the environment (`AZURE_STORAGE_ACCOUNT_KEY`, a SAS token, or a
    /// service principal / managed identity), never from this block.
    LocalAzureConfig, checks = local_azure_config;
    fields {
        /// Storage account name
        account: String = req;
        /// Container name (Azure's naming rules; the container must exist)
        container: String = req;
        /// Blob service endpoint URL (unset: `https://<account>.blob.core.windows.net`; Azurite: `http://127.0.0.1:10000/<account>`)
        endpoint: Option<String> = opt;
        /// Blob name prefix every object of the registry is stored under (no leading `/`)
        prefix: String = def("");
    }
}

/// `LocalStorageConfig`: the seed has no check here; these are ocireg's. The block of the
/// selected backend must be there, a block for another backend is a mistake (it would be
/// ignored silently), and `rootdirectory` belongs to the filesystem.
pub(crate) fn local_storage_config(v: &View<'_>, e: &mut Errors) {
    let Some(backend) = v.str("backend") else {
        return;
    };
    match backend {
        "s3" if !v.defined("s3") => v.fail_at(
            e,
            &["s3", "bucket"],
            "backend \"s3\" needs the s3 block with the bucket name",
        ),
        "azure" if !v.defined("azure") => {
            for key in ["account", "container"] {
                v.fail_at(
                    e,
                    &["azure", key],
                    "backend \"azure\" needs the azure block with account and container",
                );
            }
        }
        _ => {}
    }
    for block in ["s3", "azure"] {
        if v.defined(block) && backend != block {
            v.fail_with_hint(
                e,
                block,
                &format!("The {block} block is used only with backend \"{block}\"; the selected backend is \"{backend}\""),
                &format!("set backend: {block}, or remove the {block} block"),
            );
        }
    }
    if backend != "filesystem" && v.defined("rootdirectory") {
        v.fail_with_hint(
            e,
            "rootdirectory",
            &format!(
                "rootdirectory is the filesystem backend's; backend \"{backend}\" does not use it"
            ),
            &format!("remove rootdirectory; objects go under {backend}.prefix"),
        );
    }
}

fn local_s3_config(v: &View<'_>, e: &mut Errors) {
    if let Some(bucket) = v.str("bucket") {
        if let Err(why) = s3_bucket_problem(bucket) {
            v.fail_with_hint(e, "bucket", "Invalid S3 bucket name", &why);
        }
    }
    if let Some(region) = v.str("region") {
        let ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            v.fail_with_hint(
                e,
                "region",
                "Invalid S3 region",
                "a region is lowercase letters, digits and \"-\", e.g. \"eu-west-1\"",
            );
        }
    }
    let http_endpoint = endpoint(v, e);
    if http_endpoint && v.bool("allow_http") == Some(false) {
        v.fail_with_hint(
            e,
            "endpoint",
            "An http:// endpoint needs allow_http: true",
            "requests, data and signatures then travel unencrypted; use https:// unless the service is local",
        );
    }
    prefix(v, e);
}

fn local_azure_config(v: &View<'_>, e: &mut Errors) {
    if let Some(account) = v.str("account") {
        let ok = (3..=24).contains(&account.len())
            && account
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            v.fail_with_hint(
                e,
                "account",
                "Invalid Azure storage account name",
                "an account name has 3 to 24 characters, lowercase letters and digits only",
            );
        }
    }
    if let Some(container) = v.str("container") {
        if let Err(why) = azure_container_problem(container) {
            v.fail_with_hint(e, "container", "Invalid Azure container name", &why);
        }
    }
    endpoint(v, e);
    prefix(v, e);
}

/// Checks `endpoint` (an absolute http(s) URL with a host); true when it is `http://`.
fn endpoint(v: &View<'_>, e: &mut Errors) -> bool {
    let Some(url) = v.str("endpoint") else {
        return false;
    };
    let split = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => Some((true, rest)),
        (_, Some(rest)) => Some((false, rest)),
        _ => None,
    };
    let valid = split.filter(|(_, rest)| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty()
            && !host.starts_with(':')
            && !host.contains('@')
            && !rest.chars().any(char::is_whitespace)
    });
    match valid {
        Some((http, _)) => http,
        None => {
            v.fail_with_hint(
                e,
                "endpoint",
                "Endpoint must be an http:// or https:// URL",
                "e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000",
            );
            false
        }
    }
}

/// Checks `prefix`: a relative key path, since every object key is `<prefix>/<path>`.
fn prefix(v: &View<'_>, e: &mut Errors) {
    let Some(prefix) = v.str("prefix") else {
        return;
    };
    if let Err(why) = prefix_problem(prefix) {
        v.fail_with_hint(e, "prefix", "Invalid prefix", why);
    }
}

/// Why `prefix` is not a usable key prefix (empty is fine: the bucket's top level).
pub(crate) fn prefix_problem(prefix: &str) -> Result<(), &'static str> {
    if prefix.starts_with('/') {
        return Err(
            "a prefix has no leading \"/\" (keys are relative to the bucket), e.g. \"registry\"",
        );
    }
    if prefix.contains('\\') || prefix.chars().any(char::is_control) {
        return Err("a prefix has no backslashes or control characters");
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if !trimmed.is_empty()
        && trimmed
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("a prefix has no empty, \".\" or \"..\" segments");
    }
    Ok(())
}

/// Why `name` is not a valid S3 (general purpose) bucket name.
pub(crate) fn s3_bucket_problem(name: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!("{why}; S3 bucket names have 3 to 63 characters (lowercase letters, digits, \".\" and \"-\") and start and end with a letter or digit"))
    };
    if !(3..=63).contains(&name.len()) {
        return bad("wrong length");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("a character S3 does not allow");
    }
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !name.bytes().next().is_some_and(edge_ok) || !name.bytes().last().is_some_and(edge_ok) {
        return bad("it must start and end with a letter or digit");
    }
    if name.contains("..") {
        return bad("two adjacent periods");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("it is formatted as an IP address");
    }
    let reserved_start = ["xn--", "sthree-", "amzn-s3-demo-"];
    let reserved_end = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    if reserved_start.iter().any(|p| name.starts_with(p))
        || reserved_end.iter().any(|s| name.ends_with(s))
    {
        return bad("a prefix or suffix AWS reserves");
    }
    Ok(())
}

/// Why `name` is not a valid Azure Blob container name.
pub(crate) fn azure_container_problem(name: &str) -> Result<(), String> {
    let rule = "container names have 3 to 63 characters (lowercase letters, digits and \"-\"), start with a letter or digit, and every \"-\" sits between letters or digits";
    let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| ok_char(b) || b == b'-')
        && name.bytes().next().is_some_and(ok_char)
        && name.bytes().last().is_some_and(ok_char)
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?}: Azure {rule}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_bucket_names_follow_s3_rules() {
        let (long, too_long) = ("a".repeat(63), "a".repeat(64));
        for good in ["abc", "my-bucket", "my.bucket.1", "0bucket9", long.as_str()] {
            assert!(s3_bucket_problem(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            too_long.as_str(),
            "My-Bucket",
            "my_bucket",
            "-bucket",
            "bucket-",
            "my..bucket",
            "192.168.5.4",
            "xn--bucket",
            "sthree-x",
            "bucket-s3alias",
            "bucket--ol-s3",
            "bucket.mrap",
        ] {
            assert!(s3_bucket_problem(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn azure_container_names_follow_azure_rules() {
        let (long, too_long) = ("a".repeat(63), "a".repeat(64));
        for good in ["abc", "my-container", "c0ntainer", long.as_str()] {
            assert!(azure_container_problem(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "a--b",
            "My",
            "a_b",
            "a.b",
            too_long.as_str(),
        ] {
            assert!(azure_container_problem(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_are_relative_key_paths() {
        for good in ["", "registry", "a/b", "a/b/", "team-1/reg"] {
            assert!(prefix_problem(good).is_ok(), "{good}");
        }
        for bad in ["/registry", "a//b", "a/../b", "..", "./a", "a\\b", "a\nb"] {
            assert!(prefix_problem(bad).is_err(), "{bad:?}");
        }
    }
}
