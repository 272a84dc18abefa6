//! One catch-all route: the path is parsed once by `ocireg-api` into an endpoint, then dispatched
//! by (endpoint, method) to the handler of that resource.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ocireg_api::Endpoint;

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
}

/// The parts of a request the handlers need.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) query: Option<String>,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: Body,
    /// Who sent it (`None` when auth is off).
    pub(crate) caller: Option<ocireg_auth::Caller>,
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
    let (parts, body) = req.into_parts();
    let endpoint = ocireg_api::parse_path(parts.uri.path());
    let metrics_label = parts
        .extensions
        .get::<crate::metrics::WantsEndpoint>()
        .map(|_| crate::metrics::EndpointLabel::of(&endpoint));
    let peer = parts.extensions.get::<SocketAddr>().copied();
    let mut req = Req {
        method: parts.method,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        caller: None,
    };
    let result = match endpoint {
        Ok(ep) => match st.opts.auth.clone() {
            None => route(&st, ep, req).await,
            Some(auth) => match &ep {
                Endpoint::Extension { path } if path == auth::TOKEN_PATH => {
                    let q = req.query.as_deref();
                    auth::token(&st, &auth, &req.method, q, &req.headers, peer).await
                }
                _ => {
                    let q = req.query.as_deref();
                    match auth::gate(&st, &auth, &ep, &req.method, q, &req.headers, peer).await {
                        Ok(caller) => {
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
    if let Some(label) = metrics_label {
        resp.extensions_mut().insert(label);
    }
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
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
    let mut resp = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from("{}"))
    };
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
