//! Registry security end to end, with the real binary: authentication (solo mode and htpasswd +
//! token service), authorization, the Docker token flow through skopeo and oras, token expiry,
//! TLS, timeouts, request limits and SIGHUP reload.

mod acl;
mod auth_flow;
mod limits;
mod reload;
mod timeouts;
mod tls;
