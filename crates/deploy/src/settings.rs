//! The local settings of a registry config, resolved once: the config crate's [`LocalView`]
//! (paths with `~` expanded, the listen and probe addresses, typed HTTP and storage settings)
//! plus what the lifecycle adds (the native kind, the state file, htpasswd auth). Shared by the
//! renderers and the lifecycle.

use std::path::{Path, PathBuf};

use ocireg_config::{LocalView, OCIRegistryConfig, RegistryType, SOLO_DATA_DIR};

pub use ocireg_config::{host_port, TlsPaths as TlsFiles};

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

    /// The file name of its native config.
    fn config_name(self) -> &'static str {
        match self {
            Self::Zot => "config.json",
            Self::Distribution => "config.yml",
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
        ocireg_config::expand_home_in(path, self.home.as_deref())
    }
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

/// Everything about a local registry, resolved from the config: the config crate's view of
/// the local registry plus what the lifecycle adds.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LocalSettings {
    /// Which registry.
    pub kind: NativeKind,
    /// Paths, HTTP, storage, TLS files and metrics port, as the config crate resolves them
    /// (without a `local` block, `config_path` is `<data_dir>/` + the kind's native name).
    pub view: LocalView,
    /// The JSON state file (pid, type, endpoint, start time) under `data_dir`.
    pub state_file: PathBuf,
    /// Client-facing `endpoint:port` (the listen port).
    pub endpoint: String,
    /// `http(s)://host:port/v2/` where this machine reaches the registry (wildcard listen
    /// addresses probed on loopback).
    pub probe_url: String,
    /// htpasswd auth when `auth_required` and a username is set.
    pub auth: Option<AuthSettings>,
    /// `auth_required` but no username: no htpasswd user can be made.
    pub auth_without_user: bool,
    /// The storage root directory (the lifecycle manages filesystem storage only).
    root: PathBuf,
}

impl LocalSettings {
    /// Storage root: `storage_config.rootdirectory`, else `<data_dir>/storage`.
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// Listen host (`http_config.listen_address`, else `127.0.0.1`).
    pub fn listen_host(&self) -> &str {
        &self.view.http.listen.host
    }

    /// Listen port (see `ocireg_config::listen_port` for which field wins).
    pub fn listen_port(&self) -> u16 {
        self.view.http.listen.port
    }

    /// The listen address as `host:port` (IPv6 hosts bracketed).
    pub fn listen_addr(&self) -> String {
        host_port(self.listen_host(), self.listen_port())
    }
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
    let mut view = LocalView::resolve(reg, opts.home.as_deref())?;
    if !view.given {
        warnings.push(format!(
            "registry.local: not set; rendered with the solo defaults (data_dir {SOLO_DATA_DIR})"
        ));
        view.config_path = view.data_dir.join(kind.config_name());
    }
    let root = filesystem_root(&view)?;
    let listen_port = view.http.listen.port;
    if view.http.given && i64::from(listen_port) != reg.port {
        warnings.push(format!(
            "registry.port: {} is ignored for a local deployment: the registry listens on, and clients connect to, registry.local.http_config.listen_port {listen_port}",
            reg.port
        ));
    }
    if reg.tls_enabled && view.tls.is_none() {
        warnings.push(
            "registry.tls_enabled: no tls_cert_path/tls_key_path; the local registry is rendered without TLS".into(),
        );
    }
    let auth = auth(reg, &view, opts);
    let auth_without_user = reg.auth_required && auth.is_none();
    if auth_without_user {
        warnings.push(
            "registry.auth_required: no username; a local registry serves htpasswd (Basic) auth only, so auth is left off".into(),
        );
    }
    Ok(LocalSettings {
        kind,
        state_file: view.data_dir.join("registry-state.json"),
        probe_url: view.probe_url(),
        endpoint: host_port(&reg.endpoint, listen_port),
        auth,
        auth_without_user,
        root,
        view,
    })
}

/// The storage root of a filesystem backend. The lifecycle (`up`, `down`, `status`, `logs`,
/// `config render`) manages one registry over a local directory (`ocireg status` reports a
/// registry on object storage without this plan); a bucket is served by
/// `ocireg serve` processes the user runs (one per replica), and zot's and Distribution's
/// native configs are rendered for filesystem storage only.
fn filesystem_root(view: &LocalView) -> Result<PathBuf, DeployError> {
    match view.storage.root() {
        Some(root) => Ok(root.to_path_buf()),
        None => Err(DeployError::config(
            "registry.local.storage_config.backend",
            format!(
                "{:?} ({}): `ocireg up`, `down`, `logs` and `config render` manage a registry on a local directory; \
                 run the built-in engine on object storage with `ocireg serve` (one process per replica), see docs/operations.md",
                view.storage.backend.kind().as_str(),
                view.storage.backend.location()
            ),
        )),
    }
}

/// htpasswd auth when `auth_required` and a username is set.
fn auth(reg: &OCIRegistryConfig, view: &LocalView, opts: &RenderOptions) -> Option<AuthSettings> {
    match (reg.auth_required, &reg.username) {
        (true, Some(user)) => Some(AuthSettings {
            username: user.clone(),
            password_file: reg.password_path.as_deref().map(|p| opts.expand(p)),
            htpasswd_file: view.data_dir.join("htpasswd"),
        }),
        _ => None,
    }
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
pub(crate) mod tests {
    use super::*;

    /// The registry section of a YAML document (the unit tests' fixture loader).
    pub(crate) fn reg(yaml: &str) -> OCIRegistryConfig {
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
        // The listen port wins: local clients connect where the registry listens.
        assert_eq!(s.endpoint, "reg.test:6001");
        assert_eq!(s.root_dir(), Path::new("/d/storage"));
        assert_eq!(s.view.log_file, PathBuf::from("/d/registry.log"));
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
        assert_eq!(s.view.config_path, PathBuf::from("/h/d/c.yml"));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn object_storage_backends_are_refused() {
        let r = reg("registry: {deployment: local, type: zot, endpoint: localhost, \
                     local: {data_dir: /d, config_path: /d/c.json, storage_config: {backend: s3, s3: {bucket: reg}}}, namespaces: {}}");
        let err = resolve(
            &r,
            NativeKind::Zot,
            &RenderOptions::default(),
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string();
        for want in [
            "storage_config.backend",
            "\"s3\" (s3://reg)",
            "ocireg serve",
        ] {
            assert!(err.contains(want), "{want:?} in {err}");
        }
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
