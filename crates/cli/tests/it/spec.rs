//! OCI Distribution Spec v1.1 conformance suite over raw HTTP (reqwest, not ocireg's client).
//!
//! Runs against `ocireg serve` by default, or the reference registry (CNCF Distribution 2.8.2)
//! with `OCIREG_TEST_TARGET=distribution`. Tests of features Distribution 2.8 lacks (spec v1.1
//! additions such as the referrers API and sha512, or options the spec leaves open that ocireg
//! promises) are skipped only for the reference target, never for ocireg.

mod blobs;
mod discovery;
mod hostile;
mod hostile_bodies;
mod manifests;
mod not_found;
mod referrers;
mod uploads;
