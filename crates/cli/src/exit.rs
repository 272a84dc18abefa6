//! The exit codes of `ocireg` (the table in docs/cli.md) and the one mapping of errors to them.
//!
//! A command either returns `Ok(code)` after printing its own message, or an error; the error's
//! code is taken from a [`Coded`] wrapper anywhere in its chain, else from the library error it
//! carries ([`code_of`]), else [`Exit::Failed`].

use ocireg_client::ClientError;
use ocireg_config::ConfigError;

/// The documented exit codes. Values never change once released: scripts test them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// A failure no other code describes (a server error, local I/O, content that does not
    /// verify).
    Failed = 1,
    /// The command line is wrong: unknown flag, missing or malformed argument or reference.
    Usage = 2,
    /// The config (or another input document) is empty, does not parse or fails a check.
    Invalid = 3,
    /// A file the command must read does not exist or cannot be read.
    Unreadable = 4,
    /// The registry has no such repository, tag, manifest or blob.
    NotFound = 5,
    /// The registry refused the credentials, or needs some and none are configured.
    AuthRefused = 6,
    /// No registry answers on a loopback or `local` address.
    NotRunning = 7,
    /// A remote registry could not be reached (network, TLS, timeouts) after the retries.
    Unreachable = 8,
    /// The operation would replace or mix what is there: a tag holding other content, a
    /// storage root another engine wrote, a destination that exists.
    Conflict = 9,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The code's name, as `--json` errors report it (`error.code`).
    pub fn name(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Failed => "failed",
            Exit::Usage => "usage",
            Exit::Invalid => "invalid",
            Exit::Unreadable => "unreadable",
            Exit::NotFound => "not_found",
            Exit::AuthRefused => "auth_refused",
            Exit::NotRunning => "not_running",
            Exit::Unreachable => "unreachable",
            Exit::Conflict => "conflict",
            Exit::Interrupted => "interrupted",
        }
    }
}

/// An error that decides its own exit code.
#[derive(Debug)]
pub struct Coded {
    /// The exit code.
    pub exit: Exit,
    /// The message, with its causes.
    pub error: anyhow::Error,
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `{:#}` keeps the causes on one line, as `main` prints every error.
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Coded {}

/// Wraps `error` so that it exits with `exit`.
pub fn coded(exit: Exit, error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        exit,
        error: error.into(),
    })
}

/// The exit code for an error: a [`Coded`] wrapper wins, then the first library error in the
/// chain that names a cause, then [`Exit::Failed`].
pub fn code_of(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(coded) = cause.downcast_ref::<Coded>() {
            return coded.exit;
        }
        if let Some(config) = cause.downcast_ref::<ConfigError>() {
            return config_exit(config);
        }
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            if let Some(exit) = client_exit(client) {
                return exit;
            }
        }
    }
    Exit::Failed
}

/// The exit code a config error stands for.
pub fn config_exit(err: &ConfigError) -> Exit {
    match err {
        ConfigError::Io { .. } | ConfigError::KclUnavailable { .. } => Exit::Unreadable,
        ConfigError::Empty { .. }
        | ConfigError::DuplicateKey { .. }
        | ConfigError::TooLarge { .. }
        | ConfigError::Parse { .. }
        | ConfigError::UnknownFormat { .. }
        | ConfigError::Kcl { .. }
        | ConfigError::Invalid(_) => Exit::Invalid,
        ConfigError::UnknownSchema { .. } | ConfigError::Reference { .. } => Exit::Usage,
        ConfigError::Render { .. } => Exit::Failed,
    }
}

/// The exit code a client error stands for, `None` when only its cause can tell.
fn client_exit(err: &ClientError) -> Option<Exit> {
    Some(match err {
        ClientError::NotRunning { .. } => Exit::NotRunning,
        ClientError::Connection { .. } | ClientError::Timeout { .. } | ClientError::Tls { .. } => {
            Exit::Unreachable
        }
        ClientError::Auth(_) => Exit::AuthRefused,
        ClientError::Registry(reg) => match reg.status {
            401 | 403 => Exit::AuthRefused,
            404 => Exit::NotFound,
            409 => Exit::Conflict,
            _ => Exit::Failed,
        },
        ClientError::TagInUse { .. } | ClientError::DestinationNotEmpty(_) => Exit::Conflict,
        ClientError::NotInLayout { .. } => Exit::NotFound,
        ClientError::InvalidKind(_)
        | ClientError::UnknownCustomNamespace { .. }
        | ClientError::Options(_)
        | ClientError::InvalidOption(_)
        | ClientError::Insecure { .. } => Exit::Usage,
        ClientError::NotCached { .. } | ClientError::CacheExpired { .. } => Exit::NotFound,
        ClientError::SigningUnsupported | ClientError::UnsupportedSource { .. } => Exit::Invalid,
        ClientError::Io { source, .. } | ClientError::LocalIo { source, .. } => io_exit(source)?,
        ClientError::Context { source, .. } => return client_exit(source),
        _ => return None,
    })
}

/// A local file that is missing or may not be read is [`Exit::Unreadable`]; other I/O errors
/// are plain failures (the caller decides).
fn io_exit(err: &std::io::Error) -> Option<Exit> {
    matches!(
        err.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    )
    .then_some(Exit::Unreadable)
}

/// The messages of an error and its causes, outermost first, each once: a cause whose text
/// the message before it already contains is left out. A [`Coded`] wrapper is looked through.
pub fn messages(err: &anyhow::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    collect(err, &mut out);
    out
}

fn collect(err: &anyhow::Error, out: &mut Vec<String>) {
    for cause in err.chain() {
        if let Some(coded) = cause.downcast_ref::<Coded>() {
            collect(&coded.error, out);
            continue;
        }
        let text = cause.to_string();
        if out.last().is_some_and(|prev| prev.contains(&text)) {
            continue;
        }
        out.push(text);
    }
}

/// The `--json` form of an error: `{"error": {"code", "exit", "message", "causes"}}`.
pub fn json_error(err: &anyhow::Error) -> serde_json::Value {
    let exit = code_of(err);
    let mut all = messages(err);
    let message = if all.is_empty() {
        String::new()
    } else {
        all.remove(0)
    };
    serde_json::json!({
        "error": {
            "code": exit.name(),
            "exit": exit.code(),
            "message": message,
            "causes": all,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coded_wrapper_wins_over_the_library_error_inside() {
        let inner = anyhow::Error::new(ClientError::NotRunning {
            addr: "127.0.0.1:5000".into(),
        });
        assert_eq!(code_of(&inner), Exit::NotRunning);
        let wrapped = coded(Exit::Conflict, inner);
        assert_eq!(code_of(&wrapped), Exit::Conflict);
        assert_eq!(code_of(&wrapped.context("while copying")), Exit::Conflict);
    }

    #[test]
    fn client_errors_map_through_their_context() {
        let err = anyhow::Error::new(ClientError::Context {
            context: "pulling".into(),
            source: Box::new(ClientError::Auth("denied".into())),
        });
        assert_eq!(code_of(&err), Exit::AuthRefused);
        assert_eq!(code_of(&anyhow::anyhow!("plain")), Exit::Failed);
        let missing = anyhow::Error::new(ClientError::Io {
            context: "reading ./x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(code_of(&missing), Exit::Unreadable);
        let cache = anyhow::Error::new(ClientError::NotCached { what: "r".into() });
        assert_eq!(code_of(&cache), Exit::NotFound);
    }

    #[test]
    fn json_errors_name_the_code_and_each_cause_once() {
        let inner = anyhow::anyhow!("no registry answers on 127.0.0.1:9").context("listing tags");
        let err = coded(Exit::NotRunning, inner).context("tags of ns/r");
        let v = json_error(&err);
        assert_eq!(v["error"]["code"], "not_running");
        assert_eq!(v["error"]["exit"], 7);
        assert_eq!(v["error"]["message"], "tags of ns/r");
        assert_eq!(
            v["error"]["causes"],
            serde_json::json!(["listing tags", "no registry answers on 127.0.0.1:9"])
        );
    }

    #[test]
    fn config_errors_map_to_invalid_or_unreadable() {
        let empty = anyhow::Error::new(ConfigError::Empty {
            origin: "c.yaml".into(),
        });
        assert_eq!(code_of(&empty.context("loading")), Exit::Invalid);
        let missing = anyhow::Error::new(ConfigError::Io {
            path: "c.yaml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(code_of(&missing), Exit::Unreadable);
        let schema = ConfigError::UnknownSchema { name: "X".into() };
        assert_eq!(config_exit(&schema), Exit::Usage);
    }
}
