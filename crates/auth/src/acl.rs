//! Authorization: ordered rules over repository patterns, for users, groups, any authenticated
//! user and anonymous callers.
//!
//! Policy:
//! * Admins may do everything, everywhere.
//! * Otherwise the FIRST rule whose pattern matches the repository decides: the caller may read,
//!   write or delete when a principal of the matching list applies. `write` implies `read`.
//! * No rule matches: authenticated users read and write, anonymous callers nothing.

use std::collections::{BTreeMap, BTreeSet};

use ocireg_api::Action;

use crate::AuthError;

/// Who a rule list names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A user, by name.
    User(String),
    /// Every member of a group (`group:NAME`).
    Group(String),
    /// Any authenticated user (`*`).
    Authenticated,
    /// Anyone, authenticated or not (`anonymous`).
    Anonymous,
}

impl std::str::FromStr for Principal {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        let bad = |m: &str| AuthError::Rule(format!("principal {s:?}: {m}"));
        Ok(match s {
            "*" => Principal::Authenticated,
            "anonymous" => Principal::Anonymous,
            _ => match s.strip_prefix("group:") {
                Some("") => return Err(bad("empty group name")),
                Some(g) => Principal::Group(g.to_owned()),
                None if s.is_empty() => return Err(bad("empty user name")),
                None if s.contains(':') => return Err(bad("user names cannot contain `:`")),
                None => Principal::User(s.to_owned()),
            },
        })
    }
}

/// A repository name pattern: `*` matches within one path component, `**` matches anything
/// (slashes included). `ns/**` also matches `ns` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPattern(String);

impl RepoPattern {
    /// Parses a pattern (non-empty; only lowercase name characters, `/` and `*`).
    pub fn new(pattern: &str) -> Result<Self, AuthError> {
        let ok = !pattern.is_empty()
            && pattern
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*".contains(&b))
            && !pattern.contains("***");
        if ok {
            Ok(Self(pattern.to_owned()))
        } else {
            Err(AuthError::Rule(format!(
                "repository pattern {pattern:?}: only lowercase names, `/`, `*` and `**`"
            )))
        }
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `repo` matches.
    pub fn matches(&self, repo: &str) -> bool {
        if let Some(prefix) = self.0.strip_suffix("/**") {
            if glob(prefix.as_bytes(), repo.as_bytes()) {
                return true;
            }
        }
        glob(self.0.as_bytes(), repo.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let seg = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
            (0..=seg).any(|i| glob(rest, &s[i..]))
        }
        [c, rest @ ..] => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// One rule: the repositories it covers and who may read, write and delete there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Repository patterns (any matching one selects the rule).
    pub patterns: Vec<RepoPattern>,
    /// Who may pull.
    pub read: Vec<Principal>,
    /// Who may push (and pull).
    pub write: Vec<Principal>,
    /// Who may delete.
    pub delete: Vec<Principal>,
}

/// What a caller may do on one repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Perms {
    /// Pull.
    pub read: bool,
    /// Push.
    pub write: bool,
    /// Delete.
    pub delete: bool,
}

impl Perms {
    /// True when `action` is permitted (`Action::None` always is).
    pub fn allows(self, action: Action) -> bool {
        match action {
            Action::Pull => self.read,
            Action::Push => self.write,
            Action::Delete => self.delete,
            Action::None => true,
        }
    }

    /// The token-scope action names permitted (`pull`, `push`, `delete`).
    pub fn action_names(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.read {
            out.push("pull");
        }
        if self.write {
            out.push("push");
        }
        if self.delete {
            out.push("delete");
        }
        out
    }
}

/// Users, groups, admins and rules.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    rules: Vec<Rule>,
    /// user → groups.
    member_of: BTreeMap<String, BTreeSet<String>>,
    admins: BTreeSet<String>,
}

impl Acl {
    /// An ACL from rules, groups (name → members) and admin user names.
    pub fn new(
        rules: Vec<Rule>,
        groups: &BTreeMap<String, Vec<String>>,
        admins: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut member_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (group, members) in groups {
            for m in members {
                member_of
                    .entry(m.clone())
                    .or_default()
                    .insert(group.clone());
            }
        }
        Self {
            rules,
            member_of,
            admins: admins.into_iter().collect(),
        }
    }

    /// True when `user` is an admin.
    pub fn is_admin(&self, user: &str) -> bool {
        self.admins.contains(user)
    }

    fn applies(&self, p: &Principal, user: Option<&str>) -> bool {
        match (p, user) {
            (Principal::Anonymous, _) => true,
            (_, None) => false,
            (Principal::Authenticated, Some(_)) => true,
            (Principal::User(u), Some(name)) => u == name,
            (Principal::Group(g), Some(name)) => {
                self.member_of.get(name).is_some_and(|gs| gs.contains(g))
            }
        }
    }

    /// What `user` (`None` = anonymous) may do on `repo`.
    pub fn permissions(&self, user: Option<&str>, repo: &str) -> Perms {
        if user.is_some_and(|u| self.is_admin(u)) {
            return Perms {
                read: true,
                write: true,
                delete: true,
            };
        }
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.patterns.iter().any(|p| p.matches(repo)))
        else {
            let authed = user.is_some();
            return Perms {
                read: authed,
                write: authed,
                delete: false,
            };
        };
        let any = |list: &[Principal]| list.iter().any(|p| self.applies(p, user));
        let write = any(&rule.write);
        Perms {
            read: write || any(&rule.read),
            write,
            delete: any(&rule.delete),
        }
    }
}

impl Acl {
    /// Makes `user` an admin.
    pub fn add_admin(&mut self, user: &str) {
        self.admins.insert(user.to_owned());
    }
}
