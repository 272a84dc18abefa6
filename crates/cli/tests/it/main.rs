//! The `ocireg` binary end to end: every test starts the real binary (and, where a test compares,
//! CNCF Distribution or real clients) on loopback ports. One test binary; each module is one
//! area, e.g. `cargo test -p ocireg --test it spec::` runs the spec conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client_support;
mod common;
mod support;
mod tampering;

mod client_cli;
mod completion;
mod crash;
mod e2e_clients;
mod full_disk;
mod gc_race;
mod hostile;
mod interrupt;
mod kcl_diff;
mod lifecycle;
mod metrics_search;
mod quota_scrub;
mod security;
mod spec;
mod webhooks;
mod zero_copy;
