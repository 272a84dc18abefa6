//! `registry.local.storage_config`, typed: which backend holds the registry's content, with
//! every default of the `s3` / `azure` blocks applied here and nowhere else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ConfigError;
use crate::schemas::{LocalStorageConfig, StorageBackend};

use super::{invalid, positive_seconds, STORAGE};

/// The region an S3 client signs for when an endpoint is given without one: what
/// S3-compatible services (MinIO, moto, Ceph) accept, and what Distribution users write.
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// Where a local registry keeps its content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum StorageBackendView {
    /// A directory: `rootdirectory`, else `<data_dir>/storage`.
    Filesystem {
        /// The storage root.
        root: PathBuf,
    },
    /// An S3 bucket (`storage_config.s3`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Region: as given; `us-east-1` when only an endpoint is given; `None` lets the
        /// driver read `AWS_REGION` / `AWS_DEFAULT_REGION`.
        region: Option<String>,
        /// Endpoint URL of an S3-compatible service (without a trailing `/`); `None` = AWS.
        endpoint: Option<String>,
        /// Key prefix without a trailing `/` (empty = the bucket's top level).
        prefix: String,
        /// Path-style requests: as given, else true exactly when an endpoint is set.
        path_style: bool,
        /// `http://` endpoints allowed.
        allow_http: bool,
    },
    /// An Azure Blob Storage container (`storage_config.azure`).
    Azure {
        /// Storage account name.
        account: String,
        /// Container name.
        container: String,
        /// Blob service endpoint URL (without a trailing `/`); `None` = Azure's public cloud.
        endpoint: Option<String>,
        /// Blob name prefix without a trailing `/` (empty = the container's top level).
        prefix: String,
    },
}

impl StorageBackendView {
    /// The seed's backend name of this view.
    pub fn kind(&self) -> StorageBackend {
        match self {
            Self::Filesystem { .. } => StorageBackend::Filesystem,
            Self::S3 { .. } => StorageBackend::S3,
            Self::Azure { .. } => StorageBackend::Azure,
        }
    }

    /// The storage root directory, for the filesystem backend only.
    pub fn root(&self) -> Option<&Path> {
        match self {
            Self::Filesystem { root } => Some(root),
            Self::S3 { .. } | Self::Azure { .. } => None,
        }
    }

    /// Is the content in an object store (shared by every replica that names it)?
    pub fn is_object_store(&self) -> bool {
        !matches!(self, Self::Filesystem { .. })
    }

    /// Where the content is, for messages and logs: the directory, `s3://bucket/prefix`
    /// (with ` at ENDPOINT` for a non-AWS service) or `azure://account/container/prefix`.
    pub fn location(&self) -> String {
        let join = |base: String, prefix: &str| {
            if prefix.is_empty() {
                base
            } else {
                format!("{base}/{prefix}")
            }
        };
        let at = |endpoint: &Option<String>| {
            endpoint
                .as_ref()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        };
        match self {
            Self::Filesystem { root } => root.display().to_string(),
            Self::S3 {
                bucket,
                endpoint,
                prefix,
                ..
            } => format!("{}{}", join(format!("s3://{bucket}"), prefix), at(endpoint)),
            Self::Azure {
                account,
                container,
                endpoint,
                prefix,
            } => format!(
                "{}{}",
                join(format!("azure://{account}/{container}"), prefix),
                at(endpoint)
            ),
        }
    }
}

/// `registry.local.storage_config`, typed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StorageView {
    /// Where the content is kept.
    pub backend: StorageBackendView,
    /// Pause between interval GC runs, when `gc_enabled`.
    pub gc_interval: Option<Duration>,
    /// Deduplication.
    pub dedupe: bool,
}

impl StorageView {
    /// The storage root directory (filesystem backend only).
    pub fn root(&self) -> Option<&Path> {
        self.backend.root()
    }

    /// Resolves the block; `root` is the filesystem root (`rootdirectory` with `~` expanded,
    /// else `<data_dir>/storage`).
    pub(crate) fn resolve(
        storage: &LocalStorageConfig,
        root: PathBuf,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            backend: backend(storage, root)?,
            gc_interval: storage
                .gc_enabled
                .then(|| positive_seconds(storage.gc_interval, &format!("{STORAGE}.gc_interval")))
                .transpose()?,
            dedupe: storage.dedupe_enabled,
        })
    }
}

fn trim_slash(s: &str) -> String {
    s.trim_end_matches('/').to_owned()
}

fn backend(storage: &LocalStorageConfig, root: PathBuf) -> Result<StorageBackendView, ConfigError> {
    match storage.backend {
        StorageBackend::Filesystem => Ok(StorageBackendView::Filesystem { root }),
        StorageBackend::S3 => {
            let s3 = storage.s3.as_ref().ok_or_else(|| {
                invalid(
                    format!("{STORAGE}.s3.bucket"),
                    "backend \"s3\" needs the s3 block with the bucket name",
                )
            })?;
            let endpoint = s3.endpoint.as_deref().map(trim_slash);
            let region = s3
                .region
                .clone()
                .or_else(|| endpoint.as_ref().map(|_| DEFAULT_S3_REGION.to_owned()));
            Ok(StorageBackendView::S3 {
                bucket: s3.bucket.clone(),
                region,
                path_style: s3.path_style.unwrap_or(endpoint.is_some()),
                endpoint,
                prefix: trim_slash(&s3.prefix),
                allow_http: s3.allow_http,
            })
        }
        StorageBackend::Azure => {
            let az = storage.azure.as_ref().ok_or_else(|| {
                invalid(
                    format!("{STORAGE}.azure"),
                    "backend \"azure\" needs the azure block with account and container",
                )
            })?;
            Ok(StorageBackendView::Azure {
                account: az.account.clone(),
                container: az.container.clone(),
                endpoint: az.endpoint.as_deref().map(trim_slash),
                prefix: trim_slash(&az.prefix),
            })
        }
    }
}
