//! One catch-all route: the path is parsed once by `ocireg-api` into an endpoint (by the
//! outermost layer, so metrics, limits and auth see it too), then dispatched by (endpoint,
//! method) to the handler of that resource.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use ocireg_api::{ApiError, Endpoint};

use crate::error::{Failure, Result};
use crate::{auth, blobs, listing, manifests, trace, uploads, AppState};

pub(crate) fn router(state: AppState) -> Router {
    let metrics = state.opts.metrics.clone();
    Router::new()
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::enforce,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn(trace::request_span))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::record,
        ))
        .layer(axum::middleware::from_fn(parse))
}

/// The request path parsed into an endpoint, put in the request's extensions by [`parse`].
#[derive(Debug, Clone)]
pub(crate) struct Parsed(pub(crate) std::result::Result<Endpoint, ApiError>);

/// The outermost layer: parses the path, once per request.
async fn parse(mut req: Request, next: Next) -> Response {
    let parsed = Parsed(ocireg_api::parse_request(req.method(), req.uri().path()));
    req.extensions_mut().insert(parsed);
    next.run(req).await
}

/// The parts of a request the handlers need.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) query: Option<String>,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: Body,
    /// Who sent it (`None` when auth is off).
    pub(crate) caller: Option<ocireg_auth::Caller>,
    /// The client's address, when the connection has one.
    pub(crate) peer: Option<SocketAddr>,
    /// Set when the connection can send file-backed bodies (see `zero_copy`).
    pub(crate) zero_copy: Option<crate::zero_copy::ZeroCopy>,
}

impl Req {
    /// A header as text, if present and valid.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn query_param(&self, key: &str) -> Option<String> {
        ocireg_api::query_param(self.query.as_deref(), key)
    }
}

async fn dispatch(State(st): State<AppState>, req: Request) -> Response {
    let st = st.current();
    let (mut parts, body) = req.into_parts();
    let endpoint = match parts.extensions.remove::<Parsed>() {
        Some(Parsed(endpoint)) => endpoint,
        None => ocireg_api::parse_request(&parts.method, parts.uri.path()),
    };
    let mut req = Req {
        method: parts.method,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        caller: None,
        peer: parts.extensions.get::<SocketAddr>().copied(),
        zero_copy: parts.extensions.remove::<crate::zero_copy::ZeroCopy>(),
    };
    let mut user = None;
    let result = match endpoint {
        Ok(ep) => match st.opts.auth.clone() {
            None => route(&st, ep, req).await,
            Some(auth) => match &ep {
                Endpoint::Extension { path } if path == auth::TOKEN_PATH => {
                    let head = req.head();
                    auth::token(&st, &auth, head).await
                }
                _ => {
                    let head = req.head();
                    match auth::gate(&st, &auth, &ep, head).await {
                        Ok(caller) => {
                            let name = caller.user().unwrap_or("anonymous");
                            user = Some(trace::AnsweredUser(name.to_owned()));
                            req.caller = Some(caller);
                            route(&st, ep, req).await
                        }
                        Err(refusal) => Err(refusal),
                    }
                }
            },
        },
        Err(err) => Err(Failure::from(err)),
    };
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(user) = user {
        resp.extensions_mut().insert(user);
    }
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    // Names the engine, so `ocireg status` can tell it from another registry on the port.
    resp.headers_mut().insert(
        axum::http::header::SERVER,
        HeaderValue::from_static(concat!("ocireg/", env!("CARGO_PKG_VERSION"))),
    );
    resp
}

async fn route(st: &AppState, ep: Endpoint, req: Req) -> Result<Response> {
    let head = req.method == Method::HEAD;
    match (ep, &req.method) {
        (Endpoint::Base, &Method::GET | &Method::HEAD) => Ok(base(head)),
        (Endpoint::Catalog, &Method::GET) => listing::catalog(st, req).await,
        (Endpoint::Tags { repo }, &Method::GET) => listing::tags(st, &repo, req).await,
        (Endpoint::Referrers { repo, digest }, &Method::GET) => {
            listing::referrers(st, &repo, &digest, req).await
        }
        (Endpoint::Blob { repo, digest }, &Method::GET | &Method::HEAD) => {
            blobs::get(st, &repo, &digest, req, head).await
        }
        (Endpoint::Blob { repo, digest }, &Method::DELETE) => {
            blobs::delete(st, &repo, &digest).await
        }
        (Endpoint::UploadStart { repo }, &Method::POST) => uploads::start(st, &repo, req).await,
        (Endpoint::Upload { repo, session }, &Method::GET) => {
            uploads::status(st, &repo, &session).await
        }
        (Endpoint::Upload { repo, session }, &Method::PATCH) => {
            uploads::patch(st, &repo, &session, req).await
        }
        (Endpoint::Upload { repo, session }, &Method::PUT) => {
            uploads::finish(st, &repo, &session, req).await
        }
        (Endpoint::Upload { repo, session }, &Method::DELETE) => {
            uploads::cancel(st, &repo, &session).await
        }
        (Endpoint::Manifest { repo, reference }, &Method::GET | &Method::HEAD) => {
            manifests::get(st, &repo, &reference, head).await
        }
        (Endpoint::Manifest { repo, reference }, &Method::PUT) => {
            manifests::put(st, &repo, &reference, req).await
        }
        (Endpoint::Manifest { repo, reference }, &Method::DELETE) => {
            manifests::delete(st, &repo, &reference, req.caller.as_ref()).await
        }
        (Endpoint::Extension { path }, _) => crate::ext::route(st, &path, req).await,
        _ => Err(Failure::unsupported_method()),
    }
}

/// `GET /v2/`: the API version check.
fn base(head: bool) -> Response {
    json_response(if head {
        Body::empty()
    } else {
        Body::from("{}")
    })
}

/// A `200 OK` carrying `body` as `content_type`.
pub(crate) fn typed_response(body: impl Into<Body>, content_type: &'static str) -> Response {
    let mut resp = Response::new(body.into());
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    resp
}

/// A `200 OK` carrying `body` as `application/json`.
pub(crate) fn json_response(body: impl Into<Body>) -> Response {
    typed_response(body, "application/json")
}
