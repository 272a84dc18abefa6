//! The `ocireg` binary end to end: every test starts the real binary (and, where a test compares,
//! CNCF Distribution or real clients) on loopback ports. One test binary; each module is one
//! area, e.g. `cargo test -p ocireg --test it spec::` runs the spec conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client_support;
mod common;
mod local_env;
mod support;
mod tampering;

mod cli_flags;
mod client_cli;
mod completion;
mod config_cli;
mod crash;
mod cred_helpers;
mod e2e_clients;
mod engine_pin;
mod full_disk;
mod gc_race;
mod hostile;
mod interrupt;
mod json_errors;
mod kcl_diff;
mod lifecycle;
mod metrics_search;
mod more_commands;
mod object_backend;
mod oci_layout;
mod quota_scrub;
mod replicas;
mod security;
mod spec;
mod stale_uploads;
mod webhooks;
mod zero_copy;
