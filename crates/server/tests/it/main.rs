//! The server's in-process tests (the app driven without a socket) in one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod common;
mod events;
mod gc;
mod metrics;
mod search;
mod usage_scrub;
