//! The exit codes of `ocireg` (the table in docs/cli.md) and the one mapping of errors to them.
//!
//! A command either returns `Ok(code)` after printing its own message, or an error; the error's
//! code is taken from a [`Coded`] wrapper anywhere in its chain, else from the library error it
//! carries ([`code_of`]), else [`Exit::Failed`].

use ocireg_client::ClientError;

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
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            if let Some(exit) = client_exit(client) {
                return exit;
            }
        }
    }
    Exit::Failed
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
            _ => Exit::Failed,
        },
        ClientError::TagInUse { .. } | ClientError::DestinationNotEmpty(_) => Exit::Conflict,
        ClientError::NotInLayout { .. } => Exit::NotFound,
        ClientError::InvalidKind(_) | ClientError::UnknownCustomNamespace { .. } => Exit::Usage,
        ClientError::Context { source, .. } => return client_exit(source),
        _ => return None,
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
    }
}
