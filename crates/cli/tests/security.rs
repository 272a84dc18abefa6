//! Registry security end to end, with the real binary: authentication (solo mode and htpasswd +
//! token service), authorization, the Docker token flow through skopeo and oras, token expiry,
//! TLS, timeouts, request limits and SIGHUP reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/raw.rs"]
#[allow(dead_code)]
mod raw;
#[path = "security/support.rs"]
mod support;

#[path = "security/acl.rs"]
mod acl;
#[path = "security/auth_flow.rs"]
mod auth_flow;
#[path = "security/limits.rs"]
mod limits;
#[path = "security/reload.rs"]
mod reload;
#[path = "security/timeouts.rs"]
mod timeouts;
#[path = "security/tls.rs"]
mod tls;
