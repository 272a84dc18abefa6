//! A webhook receiver for the tests: axum on 127.0.0.1, records every request, answers per a
//! switchable mode, verifies the HMAC signature, closes every connection after its response (so
//! stopping it really refuses new deliveries).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ocireg_webhook::{Envelope, Url};

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 200 to everything.
    Ok,
    /// This status to everything.
    Fail(u16),
    /// 500 to the first n requests, then 200.
    FailFirst(usize),
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Hit {
    pub at: Instant,
    pub id: String,
    pub attempt: u32,
    /// `None` without a secret; else whether the signature header verified.
    pub sig_ok: Option<bool>,
    pub env: Envelope,
    pub status: u16,
}

struct Inner {
    hits: Mutex<Vec<Hit>>,
    mode: Mutex<Mode>,
    secret: Option<Vec<u8>>,
    delay: Duration,
    count: AtomicUsize,
}

/// A running receiver, stopped on drop.
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(State(rx): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    if !rx.delay.is_zero() {
        tokio::time::sleep(rx.delay).await;
    }
    let n = rx.count.fetch_add(1, Ordering::SeqCst);
    let status = match *rx.mode.lock().unwrap() {
        Mode::Ok => 200,
        Mode::Fail(s) => s,
        Mode::FailFirst(k) => {
            if n < k {
                500
            } else {
                200
            }
        }
    };
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(h("content-type").as_deref(), Some("application/json"));
    let sig_ok = rx
        .secret
        .as_ref()
        .map(|key| h("x-ocireg-signature").is_some_and(|s| ocireg_webhook::verify(key, &body, &s)));
    let env = Envelope::from_body(&body).expect("valid envelope");
    let id = h("x-ocireg-event-id").expect("event id header");
    assert_eq!(id, env.event.id.to_string(), "header id = body id");
    rx.hits.lock().unwrap().push(Hit {
        at: Instant::now(),
        id,
        attempt: h("x-ocireg-delivery-attempt").unwrap().parse().unwrap(),
        sig_ok,
        env,
        status,
    });
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONNECTION, "close")],
        "",
    )
        .into_response()
}

impl Receiver {
    /// Starts on `port` (0 = any free port).
    pub async fn start(port: u16, mode: Mode, secret: Option<&[u8]>, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            hits: Mutex::new(Vec::new()),
            mode: Mutex::new(mode),
            secret: secret.map(<[u8]>::to_vec),
            delay,
            count: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, inner, task }
    }

    /// The endpoint URL.
    pub fn url(&self) -> Url {
        Url::parse(&format!("http://{}/hook", self.addr)).unwrap()
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = mode;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().unwrap().clone()
    }

    /// Ids of the acknowledged (2xx) requests, in arrival order (duplicates kept).
    pub fn acked(&self) -> Vec<String> {
        self.hits()
            .into_iter()
            .filter(|h| (200..300).contains(&h.status))
            .map(|h| h.id)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub use ocireg_test_support::free_port;

/// Polls `cond` every 20 ms until true; panics with `what` after `timeout`.
pub async fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `ids` without repeats, keeping the first occurrence (what a receiver deduplicating by id sees).
pub fn dedup(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .filter(|i| seen.insert((*i).clone()))
        .cloned()
        .collect()
}
