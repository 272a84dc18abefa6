//! The local settings of a registry config, resolved once: paths with `~` expanded, the listen
//! and probe addresses, TLS and auth files. Shared by the renderers and the lifecycle.

use std::path::{Path, PathBuf};

use ocireg_config::{
    LocalHTTPConfig, LocalStorageConfig, OCIRegistryConfig, RegistryType, StorageBackend,
    SOLO_DATA_DIR,
};

use crate::error::DeployError;

/// A registry this crate can render a native config for and start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NativeKind {
    /// CNCF Distribution (`registry` / Debian's `docker-registry`), YAML config.
    Distribution,
    /// zot, JSON config.
    Zot,
}

impl NativeKind {
    /// The seed's name of this type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Distribution => "distribution",
            Self::Zot => "zot",
        }
    }

    /// The usual executable names, looked up on PATH in this order.
    pub fn binary_names(self) -> &'static [&'static str] {
        match self {
            Self::Distribution => &["registry", "docker-registry"],
            Self::Zot => &["zot"],
        }
    }

    /// The native kind of a seed registry type (`None` for Harbor and Artifactory).
    pub fn from_type(t: RegistryType) -> Option<Self> {
        match t {
            RegistryType::Distribution => Some(Self::Distribution),
            RegistryType::Zot => Some(Self::Zot),
            RegistryType::Harbor | RegistryType::Artifactory => None,
        }
    }
}

impl std::fmt::Display for NativeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How paths are resolved.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// What `~` expands to; `None` means `$HOME` (golden tests pin it).
    pub home: Option<PathBuf>,
}

impl RenderOptions {
    /// Expands a leading `~` (alone or followed by `/`).
    pub fn expand(&self, path: &str) -> PathBuf {
        match &self.home {
            Some(home) => match path.strip_prefix('~') {
                Some("") => home.clone(),
                Some(rest) if rest.starts_with('/') => home.join(rest.trim_start_matches('/')),
                _ => PathBuf::from(path),
            },
            None => ocireg_config::expand_home(path),
        }
    }
}

/// TLS certificate and key files of a local registry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TlsFiles {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// htpasswd (Basic) authentication of a local registry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuthSettings {
    /// The one user.
    pub username: String,
    /// File holding the user's password (plain text, first line), if configured.
    pub password_file: Option<PathBuf>,
    /// The htpasswd file the registry reads (generated at `up`).
    pub htpasswd_file: PathBuf,
}

/// Everything about a local registry, resolved from the config.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LocalSettings {
    /// Which registry.
    pub kind: NativeKind,
    /// `local.data_dir`.
    pub data_dir: PathBuf,
    /// `local.config_path`: where the native config is written.
    pub config_path: PathBuf,
    /// `local.log_file`.
    pub log_file: PathBuf,
    /// The JSON state file (pid, type, endpoint, start time) under `data_dir`.
    pub state_file: PathBuf,
    /// `local.binary_path`.
    pub binary_path: Option<PathBuf>,
    /// `local.auto_start`.
    pub auto_start: bool,
    /// Storage root: `storage_config.rootdirectory`, else `<data_dir>/storage`.
    pub root_dir: PathBuf,
    /// Listen host (`http_config.listen_address`, else `127.0.0.1`).
    pub listen_host: String,
    /// Listen port (`http_config.listen_port`, else `registry.port`).
    pub listen_port: u16,
    /// Client-facing `endpoint:port`.
    pub endpoint: String,
    /// `http(s)://host:port/v2/` where this machine reaches the registry (wildcard listen
    /// addresses probed on loopback).
    pub probe_url: String,
    /// TLS files when `tls_enabled` (and both are set).
    pub tls: Option<TlsFiles>,
    /// htpasswd auth when `auth_required` and a username is set.
    pub auth: Option<AuthSettings>,
    /// `auth_required` but no username: no htpasswd user can be made.
    pub auth_without_user: bool,
    /// The effective HTTP settings.
    pub http: LocalHTTPConfig,
    /// The effective storage settings.
    pub storage: LocalStorageConfig,
}

impl LocalSettings {
    /// The listen address as `host:port` (IPv6 hosts bracketed).
    pub fn listen_addr(&self) -> String {
        host_port(&self.listen_host, self.listen_port)
    }
}

/// `host:port`, bracketing IPv6 literals.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn schema_defaults<T: serde::de::DeserializeOwned>(name: &str) -> Result<T, DeployError> {
    let internal = |m: String| DeployError::config(name, format!("internal error: {m}"));
    let value = ocireg_config::validate_schema(name, serde_json::json!({}))
        .map_err(|e| internal(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| internal(e.to_string()))
}

fn port(value: i64, field: &str) -> Result<u16, DeployError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| DeployError::config(field, format!("port {value} is not 1-65535")))
}

/// Resolves the local settings of `reg` for `kind`. Lenient where rendering can still produce
/// something useful (no `local` section: the solo defaults; TLS without files: off), each such
/// case noted in `warnings`.
pub fn resolve(
    reg: &OCIRegistryConfig,
    kind: NativeKind,
    opts: &RenderOptions,
    warnings: &mut Vec<String>,
) -> Result<LocalSettings, DeployError> {
    let (data_dir, config_path, log_file, binary_path, auto_start, http, storage) = match &reg.local
    {
        Some(l) => (
            l.data_dir.clone(),
            l.config_path.clone(),
            Some(l.log_file.clone()),
            l.binary_path.clone(),
            l.auto_start,
            l.http_config.clone(),
            l.storage_config.clone(),
        ),
        None => {
            warnings.push(format!(
                    "registry.local: not set; rendered with the solo defaults (data_dir {SOLO_DATA_DIR})"
                ));
            let name = match kind {
                NativeKind::Zot => "config.json",
                NativeKind::Distribution => "config.yml",
            };
            (
                SOLO_DATA_DIR.to_string(),
                format!("{SOLO_DATA_DIR}/{name}"),
                None,
                None,
                false,
                None,
                None,
            )
        }
    };
    let http_given = http.is_some();
    let http = match http {
        Some(h) => h,
        None => {
            let mut h: LocalHTTPConfig = schema_defaults("LocalHTTPConfig")?;
            h.listen_port = reg.port;
            h
        }
    };
    let storage = match storage {
        Some(s) => s,
        None => schema_defaults("LocalStorageConfig")?,
    };
    if storage.backend != StorageBackend::Filesystem {
        return Err(DeployError::config(
            "registry.local.storage_config.backend",
            format!(
                "{:?} needs bucket and credential settings the schema does not have; a local registry uses \"filesystem\"",
                storage.backend.as_str()
            ),
        ));
    }
    let listen_port = port(http.listen_port, "registry.local.http_config.listen_port")?;
    let client_port = port(reg.port, "registry.port")?;
    if http_given && listen_port != client_port {
        warnings.push(format!(
            "registry.port: {client_port} differs from registry.local.http_config.listen_port {listen_port}; the registry listens on {listen_port}, clients connect to {client_port}"
        ));
    }
    let data_dir = opts.expand(&data_dir);
    let log_file = match log_file {
        Some(l) => opts.expand(&l),
        None => data_dir.join("registry.log"),
    };
    let root_dir = match &storage.rootdirectory {
        Some(r) => opts.expand(r),
        None => data_dir.join("storage"),
    };
    let tls = match (reg.tls_enabled, &reg.tls_cert_path, &reg.tls_key_path) {
        (true, Some(cert), Some(key)) => Some(TlsFiles {
            cert: opts.expand(cert),
            key: opts.expand(key),
        }),
        (true, _, _) => {
            warnings.push(
                "registry.tls_enabled: no tls_cert_path/tls_key_path; the local registry is rendered without TLS".into(),
            );
            None
        }
        (false, _, _) => None,
    };
    let auth = match (reg.auth_required, &reg.username) {
        (true, Some(user)) => Some(AuthSettings {
            username: user.clone(),
            password_file: reg.password_path.as_deref().map(|p| opts.expand(p)),
            htpasswd_file: data_dir.join("htpasswd"),
        }),
        _ => None,
    };
    let auth_without_user = reg.auth_required && auth.is_none();
    if auth_without_user {
        warnings.push(
            "registry.auth_required: no username; a local registry serves htpasswd (Basic) auth only, so auth is left off".into(),
        );
    }
    let probe_host = match http.listen_address.as_str() {
        "0.0.0.0" | "" => "127.0.0.1".to_string(),
        "::" | "[::]" => "::1".to_string(),
        other => other.to_string(),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    Ok(LocalSettings {
        kind,
        state_file: data_dir.join("registry-state.json"),
        config_path: opts.expand(&config_path),
        log_file,
        binary_path: binary_path.as_deref().map(|p| opts.expand(p)),
        auto_start,
        root_dir,
        listen_host: http.listen_address.clone(),
        listen_port,
        endpoint: host_port(&reg.endpoint, client_port),
        probe_url: format!("{scheme}://{}/v2/", host_port(&probe_host, listen_port)),
        tls,
        auth,
        auth_without_user,
        http,
        storage,
        data_dir,
    })
}

/// Is `path` an executable regular file?
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The first of `names` found as an executable in the directories of `path_var` (`$PATH`).
pub fn find_on_path(names: &[&str], path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let path_var = path_var?;
    for name in names {
        for dir in std::env::split_paths(path_var) {
            if dir.as_os_str().is_empty() {
                continue;
            }
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(yaml: &str) -> OCIRegistryConfig {
        ocireg_config::load_str(yaml, ocireg_config::Format::Yaml)
            .unwrap()
            .registry
    }

    #[test]
    fn wildcard_listen_is_probed_on_loopback_and_ipv6_is_bracketed() {
        let r = reg(
            "registry: {deployment: local, type: zot, endpoint: reg.test, port: 6000, \
                     local: {data_dir: /d, config_path: /d/c.json, \
                     http_config: {listen_address: 0.0.0.0, listen_port: 6001}}, namespaces: {}}",
        );
        let mut w = Vec::new();
        let s = resolve(&r, NativeKind::Zot, &RenderOptions::default(), &mut w).unwrap();
        assert_eq!(s.probe_url, "http://127.0.0.1:6001/v2/");
        assert_eq!(s.endpoint, "reg.test:6000");
        assert_eq!(s.root_dir, PathBuf::from("/d/storage"));
        assert_eq!(s.log_file, PathBuf::from("/d/registry.log"));
        assert!(w.iter().any(|m| m.starts_with("registry.port")), "{w:?}");
        assert_eq!(host_port("::1", 5000), "[::1]:5000");
        assert_eq!(host_port("localhost", 5000), "localhost:5000");
    }

    #[test]
    fn without_http_config_the_registry_port_is_the_listen_port() {
        let r = reg(
            "registry: {deployment: local, type: distribution, endpoint: localhost, port: 5123, \
                     local: {data_dir: ~/d, config_path: ~/d/c.yml}, namespaces: {}}",
        );
        let opts = RenderOptions {
            home: Some(PathBuf::from("/h")),
        };
        let mut w = Vec::new();
        let s = resolve(&r, NativeKind::Distribution, &opts, &mut w).unwrap();
        assert_eq!(s.listen_addr(), "127.0.0.1:5123");
        assert_eq!(s.config_path, PathBuf::from("/h/d/c.yml"));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn object_storage_backends_are_refused() {
        let r = reg("registry: {deployment: local, type: zot, endpoint: localhost, \
                     local: {data_dir: /d, config_path: /d/c.json, storage_config: {backend: s3}}, namespaces: {}}");
        let err = resolve(
            &r,
            NativeKind::Zot,
            &RenderOptions::default(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("storage_config.backend"), "{err}");
    }

    #[test]
    fn path_lookup_finds_executables_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("registry");
        std::fs::write(&plain, "").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        assert_eq!(find_on_path(&["registry"], Some(&path)), None);
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_on_path(&["registry"], Some(&path)), Some(plain));
        assert_eq!(find_on_path(&["zot"], Some(&path)), None);
    }
}
