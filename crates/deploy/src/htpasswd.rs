//! The htpasswd file a local registry checks Basic credentials against (bcrypt, the only hash
//! Distribution and zot accept), made from `username` and the password in `password_path`.

use std::path::Path;

use crate::error::DeployError;
use crate::settings::AuthSettings;
use crate::state::write_atomic;

/// bcrypt cost of generated entries.
const COST: u32 = 10;

/// Writes `path` with one bcrypt entry for `user` (mode 0600, atomically).
pub fn write_htpasswd(path: &Path, user: &str, password: &str) -> Result<(), DeployError> {
    if user.is_empty() || user.contains(':') || user.contains('\n') {
        return Err(DeployError::config(
            "registry.username",
            "an htpasswd user name must be non-empty without ':' or newlines",
        ));
    }
    let hash = bcrypt::hash(password, COST).map_err(|e| DeployError::Htpasswd {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, format!("{user}:{hash}\n").as_bytes(), Some(0o600))
}

/// Reads a secret file: its first line, without the line ending.
pub fn read_secret(path: &Path) -> Result<String, DeployError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| DeployError::io("reading secret", path, e))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// Does `path` already hold an entry for `user` matching `password`?
fn current(path: &Path, user: &str, password: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.len() == 1
        && lines[0]
            .split_once(':')
            .is_some_and(|(u, h)| u == user && bcrypt::verify(password, h).unwrap_or(false))
}

/// Makes sure the htpasswd file matches the configured user and password file. Without a
/// password file an existing htpasswd file is used as is (returns a note saying so).
pub(crate) fn prepare(auth: &AuthSettings) -> Result<Option<String>, DeployError> {
    match &auth.password_file {
        Some(file) => {
            let password = read_secret(file)?;
            if !current(&auth.htpasswd_file, &auth.username, &password) {
                write_htpasswd(&auth.htpasswd_file, &auth.username, &password)?;
            }
            Ok(None)
        }
        None if auth.htpasswd_file.is_file() => Ok(Some(format!(
            "registry.password_path is not set: using the existing {}",
            auth.htpasswd_file.display()
        ))),
        None => Err(DeployError::config(
            "registry.password_path",
            format!(
                "required to create {} for local htpasswd auth (or create that file yourself)",
                auth.htpasswd_file.display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_entry_verifies_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        write_htpasswd(&path, "alice", "s3cret").unwrap();
        assert!(current(&path, "alice", "s3cret"));
        assert!(!current(&path, "alice", "other"));
        assert!(!current(&path, "bob", "s3cret"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_htpasswd(&path, "a:b", "x").is_err());
    }

    #[test]
    fn prepare_needs_a_password_or_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut auth = AuthSettings {
            username: "u".into(),
            password_file: None,
            htpasswd_file: dir.path().join("htpasswd"),
        };
        assert!(prepare(&auth).is_err());
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "hunter2\n").unwrap();
        auth.password_file = Some(pw);
        assert_eq!(prepare(&auth).unwrap(), None);
        assert!(current(&auth.htpasswd_file, "u", "hunter2"));
        auth.password_file = None;
        assert!(prepare(&auth).unwrap().is_some());
    }
}
