//! Unit tests of the public API.

mod digest;
mod errors;
mod manifest;
mod name;
mod reference;
