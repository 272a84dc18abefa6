//! Integration tests for ocireg-store (one test binary).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod blobs;
mod common;
mod drivers;
mod gc;
mod journal;
mod manifests;
mod quota;
mod scrub;
mod search;
