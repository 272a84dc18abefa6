//! OCI registry client: auth challenges, retries with backoff, rate limits, proxies, TLS, streaming push/pull, artifact packing, pull cache
//!
//! [`Registry`] is a handle on one registry: `ping`, blobs (`blob_exists`, `push_blob` —
//! monolithic or chunked and resumable —, `push_blob_streaming` for content hashed while it is
//! produced, `mount_blob`, `pull_blob` verified while streaming and
//! resumable), manifests (`put`/`get`/`head`/`delete`), `tags`, `catalog` and `referrers`
//! (with the tag-schema fallback). Under it: Basic and Bearer auth from `WWW-Authenticate`
//! challenges with per-scope token caching, retries with exponential backoff and `Retry-After`,
//! token-bucket rate limits, proxies and TLS (rustls), all set by [`ClientOptions`].
//!
//! [`workflow`] holds the artifact workflows built on it (push with the overwrite rule, pull
//! through the policy and cache, copy, generic and attached artifacts, tagging, repository
//! deletion, copies to and from OCI image layout directories, whose format is [`layout`]), for
//! the cli and any other program.

pub mod artifact;
pub mod layout;
pub mod workflow;

mod auth;
mod connect;
mod error;
mod listing;
mod options;
mod pull;
mod push;
mod push_stream;
mod ratelimit;
mod referrers;
mod registry;
mod retry;
mod search;
mod source;
mod transport;

pub use error::{BoxError, ClientError, RegistryError, Result};
pub use ocireg_config::RateView;
pub use options::{ClientOptions, Credentials, DEFAULT_CHUNK_SIZE};
pub use push::PushOutcome;
pub use referrers::referrers_tag;
pub use registry::{Manifest, ManifestInfo, Registry, DEFAULT_MANIFEST_ACCEPT};
pub use search::{SearchHit, SearchPage, SearchQuery};
pub use source::BlobSource;
