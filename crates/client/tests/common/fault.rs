//! A fault-injecting HTTP proxy (reverse proxy in front of a registry) and a forward proxy
//! (`CONNECT` tunnels and absolute-form requests), both on loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, BodyStream, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::AbortOnDrop;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// What to do to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `Retry-After`) without asking the registry.
    Status(u16, Option<String>),
    /// Forward this many request-body bytes, then drop the connection (no answer).
    DropRequestAfter(u64),
    /// Forward the answer's headers and this many body bytes, then drop the connection.
    DropResponseAfter(u64),
    /// Flip one bit of the first body byte of the answer.
    Corrupt,
    /// Add a header to the registry's answer.
    AddHeader(&'static str, String),
}

/// When a fault fires: requests matching `method` and containing `path` in their path; the
/// first `skip` matches pass, the next `times` get the fault.
#[derive(Clone, Debug)]
pub struct Rule {
    /// HTTP method (any when `None`).
    pub method: Option<&'static str>,
    /// Substring of the path.
    pub path: String,
    /// Matches let through before firing.
    pub skip: usize,
    /// How many times to fire.
    pub times: usize,
    /// The fault.
    pub fault: Fault,
    seen: usize,
}

impl Rule {
    /// A rule firing on the first `times` matches.
    pub fn new(method: Option<&'static str>, path: &str, times: usize, fault: Fault) -> Rule {
        Rule {
            method,
            path: path.to_owned(),
            skip: 0,
            times,
            fault,
            seen: 0,
        }
    }

    /// Lets `skip` matches through first.
    pub fn after(mut self, skip: usize) -> Rule {
        self.skip = skip;
        self
    }
}

/// One request seen by the proxy.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Its `Range` header.
    pub range: Option<String>,
    /// Its `Content-Range` header.
    pub content_range: Option<String>,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
    request_body_bytes: u64,
}

/// The fault-injecting reverse proxy.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
    _task: AbortOnDrop,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (st, client, upstream) = (st.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, st.clone(), client.clone(), upstream.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        FaultProxy {
            url: format!("http://{addr}"),
            state,
            _task: AbortOnDrop(task),
        }
    }

    /// Adds a rule.
    pub fn add(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Removes all rules.
    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests seen so far with this method.
    pub fn seen_method(&self, method: &str) -> Vec<Seen> {
        let mut seen = self.seen();
        seen.retain(|s| s.method == method);
        seen
    }

    /// Request-body bytes forwarded to the registry so far.
    pub fn request_body_bytes(&self) -> u64 {
        self.state.lock().unwrap().request_body_bytes
    }
}

fn full(status: u16, retry_after: Option<String>) -> Response<ProxyBody> {
    let mut b = Response::builder().status(status);
    if let Some(r) = retry_after {
        b = b.header("Retry-After", r);
    }
    let body =
        format!(r#"{{"errors":[{{"code":"TOOMANYREQUESTS","message":"injected {status}"}}]}}"#);
    b.header("Content-Type", "application/json")
        .body(
            http_body_util::Full::new(Bytes::from(body))
                .map_err(|e: Infallible| match e {})
                .boxed(),
        )
        .unwrap()
}

/// Hop-by-hop headers, not forwarded. `Host` is forwarded, so a registry that answers with
/// absolute `Location` URLs (Distribution) points the client back at the proxy.
const HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
];

/// Finds the first rule that fires for this request (counting it) and records the request.
fn match_and_record(
    st: &Mutex<State>,
    req: &Request<Incoming>,
    method: &str,
    uri: &str,
) -> Option<Fault> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut s = st.lock().unwrap();
    let mut fired = None;
    for r in s.rules.iter_mut() {
        let m = r.method.is_none_or(|m| m == method) && uri.contains(&r.path);
        if m {
            r.seen += 1;
            if r.seen > r.skip && r.seen <= r.skip + r.times {
                fired = Some(r.fault.clone());
                break;
            }
        }
    }
    s.seen.push(Seen {
        at: Instant::now(),
        method: method.to_owned(),
        uri: uri.to_owned(),
        range: header("range"),
        content_range: header("content-range"),
        fault: fired.clone(),
    });
    fired
}

/// The request body forwarded upstream, counted; with a `limit`, cut after that many bytes
/// and then failed.
fn forwarded_body(body: Incoming, limit: Option<u64>, counter: Arc<Mutex<State>>) -> reqwest::Body {
    let mut sent: u64 = 0;
    let body = BodyStream::new(body)
        .try_filter_map(|f| async move { Ok(f.into_data().ok()) })
        .map_err(|e| -> BoxError { Box::new(e) })
        .map(move |item| -> Result<Bytes, BoxError> {
            let mut data = item?;
            if let Some(n) = limit {
                if sent >= n {
                    return Err("injected request drop".into());
                }
                if sent + data.len() as u64 > n {
                    data.truncate((n - sent) as usize);
                }
            }
            sent += data.len() as u64;
            counter.lock().unwrap().request_body_bytes += data.len() as u64;
            Ok(data)
        });
    match limit {
        // After the allowed bytes, the stream fails even if the client sent nothing more.
        Some(_) => reqwest::Body::wrap_stream(body.chain(stream::once(async {
            Err::<Bytes, BoxError>("injected request drop".into())
        }))),
        None => reqwest::Body::wrap_stream(body),
    }
}

/// The upstream response passed back, with the response-side fault applied.
fn faulty_response(resp: reqwest::Response, fault: Option<Fault>) -> Response<ProxyBody> {
    let mut out = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if !HOP.contains(&k.as_str()) {
            out = out.header(k, v);
        }
    }
    if let Some(Fault::AddHeader(k, v)) = &fault {
        out = out.header(*k, v.as_str());
    }
    let drop_after = match &fault {
        Some(Fault::DropResponseAfter(n)) => Some(*n),
        _ => None,
    };
    let corrupt = matches!(fault, Some(Fault::Corrupt));
    let mut passed: u64 = 0;
    let mut first = true;
    let s = resp
        .bytes_stream()
        .map_err(|e| -> BoxError { Box::new(e) })
        .map(move |item| -> Result<Frame<Bytes>, BoxError> {
            let data = item?;
            if let Some(n) = drop_after {
                if passed >= n {
                    return Err("injected response drop".into());
                }
                let take = (n - passed).min(data.len() as u64) as usize;
                passed += take as u64;
                return Ok(Frame::data(data.slice(..take)));
            }
            if corrupt && first && !data.is_empty() {
                first = false;
                let mut v = data.to_vec();
                v[0] ^= 0x01;
                return Ok(Frame::data(Bytes::from(v)));
            }
            Ok(Frame::data(data))
        });
    let s = s.chain(stream::iter(drop_after.map(|_| {
        Err::<Frame<Bytes>, BoxError>("injected response drop".into())
    })));
    out.body(BodyExt::boxed(StreamBody::new(s))).unwrap()
}

async fn handle(
    req: Request<Incoming>,
    st: Arc<Mutex<State>>,
    client: reqwest::Client,
    upstream: String,
) -> Result<Response<ProxyBody>, BoxError> {
    let method = req.method().as_str().to_owned();
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let fault = match_and_record(&st, &req, &method, &uri);
    if let Some(Fault::Status(code, ra)) = &fault {
        // Read and discard the body so the connection stays usable.
        let _ = req.into_body().collect().await;
        return Ok(full(*code, ra.clone()));
    }
    let mut fwd = client.request(req.method().clone(), format!("{upstream}{uri}"));
    for (k, v) in req.headers() {
        if !HOP.contains(&k.as_str()) {
            fwd = fwd.header(k, v);
        }
    }
    let limit = match &fault {
        Some(Fault::DropRequestAfter(n)) => Some(*n),
        _ => None,
    };
    let body = forwarded_body(req.into_body(), limit, st.clone());
    let resp = fwd.body(body).send().await?;
    if limit.is_some() {
        return Err("injected request drop".into());
    }
    Ok(faulty_response(resp, fault))
}

/// A forward proxy: `CONNECT host:port` tunnels and absolute-form `http://` requests, to
/// loopback targets only. Records each target.
pub struct ForwardProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    targets: Arc<Mutex<Vec<String>>>,
    _task: AbortOnDrop,
}

impl ForwardProxy {
    /// Starts the proxy.
    pub async fn start() -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let t = targets.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let t = t.clone();
                tokio::spawn(async move {
                    let _ = forward(sock, t).await;
                });
            }
        });
        ForwardProxy {
            url: format!("http://{addr}"),
            targets,
            _task: AbortOnDrop(task),
        }
    }

    /// What was asked for: `CONNECT 127.0.0.1:PORT` or `GET http://...` request lines.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

async fn forward(mut sock: TcpStream, targets: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if sock.read(&mut byte).await? == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or("").to_owned();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    targets.lock().unwrap().push(format!("{method} {target}"));
    let host_port = if method == "CONNECT" {
        target.to_owned()
    } else {
        let rest = target.strip_prefix("http://").unwrap_or("");
        rest.split('/').next().unwrap_or("").to_owned()
    };
    let addr: SocketAddr = match host_port.parse() {
        Ok(a) => a,
        Err(_) => {
            sock.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await?;
            return Ok(());
        }
    };
    if !addr.ip().is_loopback() {
        sock.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let mut up = TcpStream::connect(addr).await?;
    if method == "CONNECT" {
        sock.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
    } else {
        up.write_all(&head).await?;
    }
    tokio::io::copy_bidirectional(&mut sock, &mut up).await?;
    Ok(())
}
