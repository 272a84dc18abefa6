//! Unit tests of the public API.

mod headers;
mod reads;
mod routes;
mod urls;
