//! The store of the configured backend: a directory through the filesystem driver, an S3
//! bucket or an Azure container through the object driver. The one place the engine maps the
//! effective storage settings onto a driver.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ocireg_config::{ServeSettings, StorageBackendView};
use ocireg_store::{Driver, Store};

use crate::{options, EngineError};

/// What the engine serves from: a directory, or an object store named by its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageTarget {
    /// A storage root directory (created when missing).
    Directory(PathBuf),
    /// A bucket or container, e.g. `s3://bucket/prefix`.
    Object(String),
}

impl StorageTarget {
    /// The storage root directory, when the backend is the filesystem.
    pub fn root(&self) -> Option<&Path> {
        match self {
            Self::Directory(root) => Some(root),
            Self::Object(_) => None,
        }
    }

    /// Where the content is, for logs and messages.
    pub fn location(&self) -> String {
        match self {
            Self::Directory(root) => root.display().to_string(),
            Self::Object(location) => location.clone(),
        }
    }
}

/// Where `settings` (with the `--root` override) store their content. `--root` names a
/// directory, so it contradicts an object-storage backend rather than silently replacing it.
pub fn target(
    settings: &ServeSettings,
    root_override: Option<&Path>,
) -> Result<StorageTarget, EngineError> {
    let backend = settings.storage();
    match (backend, root_override) {
        (StorageBackendView::Filesystem { root }, over) => Ok(StorageTarget::Directory(
            over.map_or_else(|| root.clone(), Path::to_path_buf),
        )),
        (_, Some(root)) => Err(EngineError::Invalid(format!(
            "--root {} names a directory, but registry.local.storage_config.backend is {:?} ({}); \
             drop --root, or set backend: filesystem",
            root.display(),
            backend.kind().as_str(),
            backend.location()
        ))),
        (_, None) => Ok(StorageTarget::Object(backend.location())),
    }
}

/// Opens the store of `target` with the settings' store options.
pub(crate) async fn open(
    settings: &ServeSettings,
    target: &StorageTarget,
) -> Result<Store, EngineError> {
    let opened = |source| EngineError::Store {
        what: format!("opening storage at {}", target.location()),
        source: Box::new(source),
    };
    let driver: Arc<dyn Driver> = match target {
        StorageTarget::Directory(root) => {
            std::fs::create_dir_all(root).map_err(|e| {
                EngineError::io(format!("creating storage root {}", root.display()), e)
            })?;
            let driver = ocireg_store::FsDriver::open(root).await.map_err(opened)?;
            Arc::new(driver)
        }
        StorageTarget::Object(_) => object_driver(settings.storage()).await?,
    };
    Store::open(driver, options::store(settings))
        .await
        .map_err(opened)
}

/// The object driver of an S3 or Azure backend.
async fn object_driver(backend: &StorageBackendView) -> Result<Arc<dyn Driver>, EngineError> {
    use ocireg_store::driver::object::{AzureOptions, ObjectBackend, ObjectDriver, S3Options};
    let spec = match backend {
        StorageBackendView::S3 {
            bucket,
            region,
            endpoint,
            prefix,
            path_style,
            allow_http,
        } => ObjectBackend::S3(S3Options {
            bucket: bucket.clone(),
            region: region.clone(),
            endpoint: endpoint.clone(),
            prefix: prefix.clone(),
            path_style: *path_style,
            allow_http: *allow_http,
        }),
        StorageBackendView::Azure {
            account,
            container,
            endpoint,
            prefix,
        } => ObjectBackend::Azure(AzureOptions {
            account: account.clone(),
            container: container.clone(),
            endpoint: endpoint.clone(),
            prefix: prefix.clone(),
        }),
        StorageBackendView::Filesystem { root } => {
            return Err(EngineError::Invalid(format!(
                "{} is a directory, not an object store",
                root.display()
            )))
        }
    };
    let driver = ObjectDriver::open(&spec)
        .await
        .map_err(|source| EngineError::Store {
            what: format!("opening storage at {}", backend.location()),
            source: Box::new(source),
        })?;
    Ok(Arc::new(driver))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(storage: &str) -> ServeSettings {
        let yaml = format!("registry:\n  deployment: local\n  type: zot\n  endpoint: localhost\n  namespaces: {{}}\n  local:\n    data_dir: /tmp/x\n    config_path: /tmp/x/c.yml\n    storage_config: {storage}\n");
        let doc = ocireg_config::load_str(&yaml, ocireg_config::Format::Yaml).unwrap();
        ServeSettings::resolve(&doc).unwrap()
    }

    #[test]
    fn the_target_is_the_backend_and_root_overrides_only_a_directory() {
        let fs = settings("{rootdirectory: /srv/reg}");
        assert_eq!(
            target(&fs, None).unwrap(),
            StorageTarget::Directory("/srv/reg".into())
        );
        let over = target(&fs, Some(Path::new("/other"))).unwrap();
        assert_eq!(over.root(), Some(Path::new("/other")));
        let s3 = settings("{backend: s3, s3: {bucket: reg, prefix: team}}");
        let t = target(&s3, None).unwrap();
        assert_eq!(
            (t.root(), t.location()),
            (None, "s3://reg/team".to_string())
        );
        let err = target(&s3, Some(Path::new("/other")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--root /other names a directory")
                && err.contains("\"s3\" (s3://reg/team)"),
            "{err}"
        );
    }
}
