//! Harness shared by the workspace's tests; a dev-dependency only, never linked into a
//! shipped binary. A test fails by panicking, so the helpers here panic (with the process log
//! where there is one) instead of returning errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bin;
pub mod digest;
pub mod distribution;
pub mod haproxy;
pub mod net;
pub mod objstore;
pub mod prom;
pub mod replicas;
pub mod router;
pub mod serve;
pub mod tls;
pub mod tmux;
pub mod xorshift;

pub use bin::{ocireg_bin, output_with_stdin};
pub use digest::{sha256_hex, sha256_str};
pub use distribution::{Distribution, DistributionBuilder, TokenAuth};
pub use haproxy::Haproxy;
pub use net::{free_port, wait_port, Listening};
pub use serve::{Serve, ServeBuilder};
pub use tls::TlsFiles;
