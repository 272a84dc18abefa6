//! Fuzz entry points shared by `cargo fuzz` (`fuzz/fuzz_targets/*.rs`) and the corpus replay
//! test (`tests/corpus.rs`).
//!
//! Each target takes arbitrary bytes, drives one family of parsers and checks invariants on the
//! result (round-trips, bounds, consistency between parsers), not only "no panic". A violated
//! invariant panics, which libFuzzer records as a crash and the replay test as a failure.

mod api_path;
mod config;
mod digest_reference;
mod manifest;
mod range;

pub use api_path::api_path;
pub use config::config;
pub use digest_reference::digest_reference;
pub use manifest::manifest;
pub use range::range;

/// A fuzz target: bytes in, panics on a violated invariant.
pub type Target = fn(&[u8]);

/// Every target by name; the names are the `fuzz/fuzz_targets/<name>.rs` files and the
/// `fuzz/corpus/<name>/` directories.
pub const TARGETS: &[(&str, Target)] = &[
    ("api_path", api_path),
    ("digest_reference", digest_reference),
    ("manifest", manifest),
    ("range", range),
    ("config", config),
];

/// The input as text: invalid UTF-8 sequences become U+FFFD, so every input reaches the parsers.
pub(crate) fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
