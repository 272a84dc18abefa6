//! Where a session object's private state lives: beside it, under a dot-name (which no valid
//! key can name, so `list` and `walk` never show it and deleting a prefix removes it too).
//!
//! For the key `dir/name` the directory is `dir/.name.w/`, holding `state` (JSON, see
//! `state.rs`), `tail-<uuid>` objects and `seg-<uuid>` objects (completed multipart uploads).

/// The private directory of the session object `key` (no trailing `/`).
pub(crate) fn session_dir(key: &str) -> String {
    match key.rsplit_once('/') {
        Some((parent, name)) => format!("{parent}/.{name}.w"),
        None => format!(".{key}.w"),
    }
}

/// The state object of the session object `key`.
pub(crate) fn state_key(key: &str) -> String {
    format!("{}/state", session_dir(key))
}

/// A fresh private object name in the session directory of `key` (`kind`: `tail`, `seg`).
pub(crate) fn fresh(key: &str, kind: &str) -> String {
    format!(
        "{}/{kind}-{}",
        session_dir(key),
        uuid::Uuid::new_v4().simple()
    )
}

/// The session object whose state object is `key`, if `key` is one.
pub(crate) fn owner_of_state(key: &str) -> Option<String> {
    let dir = key.strip_suffix("/state")?;
    let (parent, hidden) = match dir.rsplit_once('/') {
        Some((parent, hidden)) => (Some(parent), hidden),
        None => (None, dir),
    };
    let name = hidden.strip_prefix('.')?.strip_suffix(".w")?;
    if name.is_empty() {
        return None;
    }
    Some(match parent {
        Some(parent) => format!("{parent}/{name}"),
        None => name.to_owned(),
    })
}

/// Whether any component of `key` is a dot-name (driver-private).
pub(crate) fn is_private(key: &str) -> bool {
    key.split('/').any(|c| c.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_keys_map_back_to_their_owner() {
        for key in ["a/b/c", "top", "repositories/x/_uploads/0123"] {
            let state = state_key(key);
            assert!(is_private(&state), "{state}");
            assert_eq!(owner_of_state(&state).as_deref(), Some(key));
            assert!(fresh(key, "tail").starts_with(&session_dir(key)));
        }
        assert_eq!(session_dir("a/b/c"), "a/b/.c.w");
        assert_eq!(owner_of_state("a/b/state"), None);
        assert_eq!(owner_of_state("a/.x.w/tail-1"), None);
        assert!(!is_private("a/b.c/d"));
    }
}
