//! OCI Distribution Spec v1.1 conformance suite over raw HTTP (reqwest, not ocireg's client).
//!
//! Runs against `ocireg serve` by default, or the reference registry (CNCF Distribution 2.8.2)
//! with `OCIREG_TEST_TARGET=distribution`. Tests of features Distribution 2.8 lacks (spec v1.1
//! additions such as the referrers API and sha512, or options the spec leaves open that ocireg
//! promises) are skipped only for the reference target, never for ocireg.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "spec/blobs.rs"]
mod blobs;
#[path = "spec/discovery.rs"]
mod discovery;
#[path = "spec/hostile.rs"]
mod hostile;
#[path = "spec/hostile_bodies.rs"]
mod hostile_bodies;
#[path = "spec/manifests.rs"]
mod manifests;
#[path = "spec/referrers.rs"]
mod referrers;
#[path = "spec/uploads.rs"]
mod uploads;
