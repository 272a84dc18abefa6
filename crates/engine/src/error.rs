//! The one error type of this crate.

/// What can go wrong assembling or running the engine. Each variant with a source displays what
/// was being done; the source carries the cause (print the chain to see both).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The settings cannot be resolved from the config (the message names the field).
    #[error(transparent)]
    Settings(#[from] ocireg_config::ConfigError),
    /// A setting is unusable (a cron schedule, a webhook endpoint, an empty key file).
    #[error("{0}")]
    Invalid(String),
    /// A file, directory or socket operation failed.
    #[error("{what}")]
    Io {
        /// What was being done, e.g. `listening on 127.0.0.1:5000`.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Opening the storage failed.
    #[error("{what}")]
    Store {
        /// What was being done.
        what: String,
        /// The cause (boxed: store errors are large).
        #[source]
        source: Box<ocireg_store::StoreError>,
    },
    /// Authentication could not be set up (users file, token key, access rules).
    #[error("{what}")]
    Auth {
        /// What was being set up.
        what: String,
        /// The cause.
        #[source]
        source: ocireg_auth::AuthError,
    },
    /// The webhook queue could not be opened.
    #[error("{what}")]
    Webhook {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: ocireg_webhook::WebhookError,
    },
    /// The server failed.
    #[error(transparent)]
    Server(#[from] ocireg_server::ServerError),
}

impl EngineError {
    /// An I/O error while doing `what`.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    /// An auth set-up error while doing `what`.
    pub(crate) fn auth(what: impl Into<String>, source: ocireg_auth::AuthError) -> Self {
        Self::Auth {
            what: what.into(),
            source,
        }
    }

    /// This error and its causes on one line, `a: b: c`.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }
}
