//! In-process requests to an axum router: no socket, the peer address set as the connection
//! layer would set it, the whole response body collected.

use std::net::SocketAddr;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The peer address requests come from unless [`Call::peer`] says otherwise.
pub const DEFAULT_PEER: &str = "127.0.0.1:40000";

/// A response with its body read.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Resp {
    /// The status as a number.
    pub fn code(&self) -> u16 {
        self.status.as_u16()
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header as a string (`None` if absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One request, built up and then sent with [`Call::send`].
pub struct Call {
    req: http::request::Builder,
    host: Option<String>,
    peer: Option<SocketAddr>,
    body: Body,
}

/// Starts a request `METHOD path` with `host: reg.test:5000` from [`DEFAULT_PEER`].
pub fn call(method: &str, path: &str) -> Call {
    Call {
        req: Request::builder().method(method).uri(path),
        host: Some("reg.test:5000".into()),
        peer: Some(DEFAULT_PEER.parse().unwrap()),
        body: Body::empty(),
    }
}

impl Call {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.req = self.req.header(name, value);
        self
    }

    /// Adds a header when there is a value.
    pub fn header_opt(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.header(name, v),
            None => self,
        }
    }

    /// The `host` header (`None`: none at all).
    pub fn host(mut self, host: Option<&str>) -> Self {
        self.host = host.map(str::to_owned);
        self
    }

    /// The peer address (`None`: no connection info at all).
    pub fn peer(mut self, peer: Option<&str>) -> Self {
        self.peer = peer.map(|p| p.parse().unwrap());
        self
    }

    /// The body.
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends it through `app` and collects the response.
    pub async fn send(self, app: &axum::Router) -> Resp {
        let mut b = self.req;
        if let Some(h) = &self.host {
            b = b.header("host", h);
        }
        let mut req = b.body(self.body).unwrap();
        if let Some(p) = self.peer {
            req.extensions_mut().insert(p);
        }
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }
}
