//! htpasswd users files, bcrypt entries only (`htpasswd -B`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::AuthError;

/// The users of an htpasswd file: name → bcrypt hash. `Debug` lists names only.
#[derive(Clone, Default)]
pub struct Htpasswd {
    users: BTreeMap<String, String>,
}

impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Htpasswd {
    /// Parses htpasswd text: one `user:hash` per line, `#` comments and blank lines ignored.
    /// Only bcrypt hashes (`$2a$`, `$2b$`, `$2x$`, `$2y$`) are accepted; any other line is an
    /// error naming its (1-based) line number.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let mut users = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim_end_matches('\r').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: &str| AuthError::Htpasswd {
                line: line_no,
                message: message.to_owned(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected `user:bcrypt-hash`"))?;
            if user.is_empty() {
                return Err(bad("empty user name"));
            }
            if !is_bcrypt(hash) {
                return Err(bad(
                    "not a bcrypt hash (only bcrypt entries are supported: `htpasswd -B`)",
                ));
            }
            if users.insert(user.to_owned(), hash.to_owned()).is_some() {
                return Err(bad(&format!("user {user:?} listed twice")));
            }
        }
        Ok(Self { users })
    }

    /// Reads and parses an htpasswd file.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            what: "htpasswd file",
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            AuthError::Htpasswd { line, message } => AuthError::HtpasswdFile {
                path: path.to_owned(),
                line,
                message,
            },
            other => other,
        })
    }

    /// True when `user` is listed.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file lists no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks `password` against `user`'s hash (bcrypt: slow on purpose).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => false,
        }
    }
}

fn is_bcrypt(hash: &str) -> bool {
    let prefix_ok = ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| hash.starts_with(p));
    // $2y$NN$ + 53 characters of salt and hash.
    prefix_ok
        && hash.len() == 60
        && hash.as_bytes()[4..6].iter().all(u8::is_ascii_digit)
        && hash.as_bytes()[6] == b'$'
}
