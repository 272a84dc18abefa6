//! Who is asking and what they may do: anonymous callers, the seed's single user (password or
//! static token), htpasswd users (bcrypt), bearer tokens of the Docker token-auth flow, and
//! authorization by repository pattern × action (see [`acl`] for the policy).
//!
//! The server asks [`Auth::authenticate`] for the [`Caller`] of each request, then
//! [`Auth::authorize`] for the accesses the request needs; a [`Refusal`] says how to answer
//! (401 with [`Auth::challenge`], 403 `DENIED`, 429). Secrets are wrapped in [`Secret`], whose
//! `Debug` is redacted.

pub mod acl;
mod header;
mod htpasswd;
mod limiter;
mod secret;
mod session;
mod token;

pub use acl::{Acl, Perms, Principal, RepoPattern, Rule};
pub use header::{basic_challenge, bearer_challenge, Credentials};
pub use htpasswd::Htpasswd;
pub use limiter::LoginLimiter;
pub use secret::Secret;
pub use session::{Auth, AuthOptions, Caller, Refusal, SingleUser};
pub use token::{Claims, IssuedToken, ResourceActions, TokenKey, TokenOptions, TokenService};

use std::path::PathBuf;

/// The one error type of this crate: bad auth settings or files.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file could not be read.
    #[error("reading {what} {path}: {source}")]
    Read {
        /// What the file is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A malformed htpasswd line (parsed from text).
    #[error("htpasswd line {line}: {message}")]
    Htpasswd {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A malformed htpasswd line (parsed from a file).
    #[error("{}: line {line}: {message}", path.display())]
    HtpasswdFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A bad access rule, principal or pattern.
    #[error("access rule: {0}")]
    Rule(String),
    /// An unusable token signing key.
    #[error("token key: {0}")]
    Key(String),
    /// A token that does not verify (bad signature, expired, wrong audience...).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// Inconsistent settings.
    #[error("auth settings: {0}")]
    Settings(String),
}
