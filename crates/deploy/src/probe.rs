//! Health probes of a local registry: `GET /v2/` answering 200 or 401 means it serves.
//!
//! HTTP runs on reqwest's blocking client inside a helper thread, so these functions work both
//! from plain code and from inside an async runtime.

use std::process::Child;
use std::time::{Duration, Instant};

/// What `GET /v2/` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A registry answered (200 or 401), with its `Docker-Distribution-API-Version` header.
    Registry {
        /// HTTP status.
        status: u16,
        /// API version header.
        api_version: Option<String>,
        /// `Server` header.
        server: Option<String>,
    },
    /// Something answered, but not like a registry.
    Other(u16),
    /// No answer (refused, timed out, TLS failure, ...).
    None(String),
}

impl Answer {
    /// Did a registry answer?
    pub(crate) fn is_registry(&self) -> bool {
        matches!(self, Self::Registry { .. })
    }
}

/// Runs `f` on a helper thread and returns its result (reqwest's blocking client must not be
/// built or dropped on an async runtime's thread).
pub(crate) fn off_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A client for loopback probes: short timeouts, no proxy, any certificate (liveness only).
fn local_client() -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| e.to_string())
}

fn ask(client: &reqwest::blocking::Client, url: &str) -> Answer {
    match client.get(url).send() {
        Ok(resp) => {
            let status = resp.status().as_u16();
            if status == 200 || status == 401 {
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                Answer::Registry {
                    status,
                    api_version: header("docker-distribution-api-version"),
                    server: header("server"),
                }
            } else {
                Answer::Other(status)
            }
        }
        Err(e) => Answer::None(error_chain(&e)),
    }
}

/// One probe of `url`.
pub(crate) fn probe(url: &str) -> Answer {
    off_thread(|| match local_client() {
        Ok(client) => ask(&client, url),
        Err(e) => Answer::None(e),
    })
}

/// The HTTP status of `GET url`, `None` without an answer.
pub(crate) fn status_of(url: &str) -> Option<u16> {
    off_thread(|| {
        let client = local_client().ok()?;
        client.get(url).send().ok().map(|r| r.status().as_u16())
    })
}

/// How waiting for a started registry ended.
#[derive(Debug)]
pub(crate) enum Ready {
    /// It answers.
    Yes,
    /// The process exited first (exit status description).
    Exited(String),
    /// It did not answer in time.
    Timeout,
}

/// Polls `url` until a registry answers, `child` exits, or `timeout` passes.
pub(crate) fn wait_ready(url: &str, child: &mut Child, timeout: Duration) -> Ready {
    off_thread(|| {
        let client = match local_client() {
            Ok(c) => c,
            Err(_) => return Ready::Timeout,
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Ready::Exited(status.to_string());
            }
            if ask(&client, url).is_registry() {
                return Ready::Yes;
            }
            if Instant::now() >= deadline {
                return Ready::Timeout;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    })
}

/// An error with its sources, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
