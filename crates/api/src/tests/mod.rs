//! Unit tests of the public API.

mod headers;
mod routes;
mod urls;
