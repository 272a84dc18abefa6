//! Metrics of the in-process app: known operations, then the exposition (checked by a strict
//! text-format parser) must show exactly those counts and byte totals; the `/metrics` listener
//! over a real socket.

use ocireg_test_support::prom;

use crate::common;
use ocireg_test_support::router;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use ocireg_server::{app, serve_metrics, Metrics, ServerOptions};
use ocireg_store::{MemoryDriver, Store, StoreOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use common::sha;

async fn setup() -> (axum::Router, Metrics, Store) {
    let metrics = Metrics::new();
    let opts = ServerOptions {
        metrics: Some(metrics.clone()),
        ..ServerOptions::default()
    };
    let (app, store) = common::memory_app(opts).await;
    (app, metrics, store)
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: Body,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let r = router::call(method, path)
        .host(None)
        .header_opt("content-type", ctype)
        .body(body)
        .send(app)
        .await;
    (r.status, r.headers, r.body)
}

fn manifest(config: &[u8], layer: &[u8], n: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha(layer), "size": layer.len()}],
        "annotations": {"n": n.to_string()},
    }))
    .unwrap()
}

fn parse(m: &Metrics, store: &Store) -> prom::Exposition {
    let text = m.render(Some(store), None);
    prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn req_count(e: &prom::Exposition, ep: &str, method: &str, status: &str) -> f64 {
    e.value(
        "ocireg_http_requests_total",
        &[("endpoint", ep), ("method", method), ("status", status)],
    )
    .unwrap_or(0.0)
}

/// `GET path` with no body.
async fn get(app: &axum::Router, path: &str) -> (StatusCode, Bytes) {
    let (s, _, b) = call(app, "GET", path, None, Body::empty()).await;
    (s, b)
}

/// A chunked upload of `layer` with a streamed body: POST, PATCH in 3 frames, PUT.
async fn push_in_chunks(app: &axum::Router, repo: &str, layer: &[u8]) {
    let start = format!("/v2/{repo}/blobs/uploads/");
    let (s, h, _) = call(app, "POST", &start, None, Body::empty()).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let location = h["location"].to_str().unwrap().to_owned();
    let chunks: Vec<Result<Bytes, std::io::Error>> = layer
        .chunks(20_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    let (s, h, _) = call(
        app,
        "PATCH",
        &location,
        Some("application/octet-stream"),
        Body::from_stream(stream),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let location = h["location"].to_str().unwrap().to_owned();
    let sep = if location.contains('?') { '&' } else { '?' };
    let done = format!("{location}{sep}digest={}", sha(layer));
    let (s, _, _) = call(app, "PUT", &done, None, Body::empty()).await;
    assert_eq!(s, StatusCode::CREATED);
}

/// Pushes the config monolithically, the layer in chunks and 3 manifests over them; returns
/// the manifests' bytes.
async fn push_image(app: &axum::Router, repo: &str, config: &[u8], layer: &[u8]) -> usize {
    let path = format!("/v2/{repo}/blobs/uploads/?digest={}", sha(config));
    let (s, _, _) = call(app, "POST", &path, None, Body::from(config.to_vec())).await;
    assert_eq!(s, StatusCode::CREATED);
    push_in_chunks(app, repo, layer).await;
    let mut manifest_bytes = 0;
    for n in 0..3 {
        let body = manifest(config, layer, n);
        manifest_bytes += body.len();
        let (s, _, _) = call(
            app,
            "PUT",
            &format!("/v2/{repo}/manifests/v{n}"),
            Some("application/vnd.oci.image.manifest.v1+json"),
            Body::from(body),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    manifest_bytes
}

/// 4 blob GETs of the layer and 1 HEAD, then 404s: 2 unknown manifests, 1 unknown blob,
/// 1 invalid path; returns the bytes of the two manifest 404 answers.
async fn pull_and_miss(app: &axum::Router, repo: &str, layer: &[u8]) -> usize {
    let blob = format!("/v2/{repo}/blobs/{}", sha(layer));
    for _ in 0..4 {
        let (s, b) = get(app, &blob).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b.len(), layer.len());
    }
    let (s, _, _) = call(app, "HEAD", &blob, None, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let mut not_found_bytes = 0;
    for t in ["nope", "gone"] {
        let (s, b) = get(app, &format!("/v2/{repo}/manifests/{t}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        not_found_bytes += b.len();
    }
    let (s, _) = get(app, &format!("/v2/{repo}/blobs/{}", sha(b"missing"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(app, "/v3/whatever").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    not_found_bytes
}

/// The request counter and the duration histogram hold exactly the requests of
/// [`known_operations_show_up_exactly`].
fn assert_request_counts(e: &prom::Exposition) {
    assert_eq!(e.kind("ocireg_http_requests_total"), Some("counter"));
    assert_eq!(
        e.kind("ocireg_http_request_duration_seconds"),
        Some("histogram")
    );
    let expected = [
        ("base", "GET", "200", 2.0),
        ("upload", "POST", "201", 1.0),
        ("upload", "POST", "202", 2.0),
        ("upload", "PATCH", "202", 1.0),
        ("upload", "PUT", "201", 1.0),
        ("manifest", "PUT", "201", 3.0),
        ("blob", "GET", "200", 4.0),
        ("blob", "HEAD", "200", 1.0),
        ("manifest", "GET", "404", 2.0),
        ("blob", "GET", "404", 1.0),
        ("invalid", "GET", "404", 1.0),
    ];
    for (ep, method, status, n) in expected {
        assert_eq!(
            req_count(e, ep, method, status),
            n,
            "{ep} {method} {status}"
        );
    }
    // Nothing else was counted.
    assert_eq!(e.sum("ocireg_http_requests_total", &[]), 19.0);
    // The histogram counted the same requests.
    let h = "ocireg_http_request_duration_seconds_count";
    assert_eq!(
        e.value(h, &[("endpoint", "manifest"), ("method", "PUT")]),
        Some(3.0)
    );
    assert_eq!(
        e.value(h, &[("endpoint", "blob"), ("method", "GET")]),
        Some(5.0)
    );
    assert_eq!(e.sum(h, &[]), 19.0);
}

#[tokio::test]
async fn known_operations_show_up_exactly() {
    let (app, m, store) = setup().await;
    let repo = "team/app";
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();

    // Base: 2 GETs.
    for _ in 0..2 {
        let (s, _) = get(&app, "/v2/").await;
        assert_eq!(s, StatusCode::OK);
    }
    let manifest_bytes = push_image(&app, repo, &config, &layer).await;
    let not_found_bytes = pull_and_miss(&app, repo, &layer).await;
    // One upload session left open.
    let start = "/v2/other/blobs/uploads/";
    let (s, _, _) = call(&app, "POST", start, None, Body::empty()).await;
    assert_eq!(s, StatusCode::ACCEPTED);

    let e = parse(&m, &store);
    assert_request_counts(&e);
    // Body bytes: what went in and out, per endpoint.
    let bytes = |name: &str, ep: &str| e.value(name, &[("endpoint", ep)]).unwrap();
    let rq = "ocireg_http_request_bytes_total";
    let rs = "ocireg_http_response_bytes_total";
    assert_eq!(bytes(rq, "upload"), (config.len() + layer.len()) as f64);
    assert_eq!(bytes(rq, "manifest"), manifest_bytes as f64);
    assert_eq!(bytes(rq, "blob"), 0.0);
    assert_eq!(
        bytes(rs, "blob") as usize,
        4 * layer.len() + {
            // The 404 error envelope of the missing blob.
            let (_, b) = get(&app, &format!("/v2/{repo}/blobs/{}", sha(b"missing"))).await;
            b.len()
        }
    );
    assert_eq!(bytes(rs, "manifest") as usize, not_found_bytes);
    assert_eq!(bytes(rs, "base"), 4.0); // "{}" twice
                                        // Gauges from the store.
    let usage = store.usage();
    assert_eq!(e.value("ocireg_repositories", &[]), Some(1.0));
    assert_eq!(e.value("ocireg_upload_sessions", &[]), Some(1.0));
    assert_eq!(e.value("ocireg_artifacts", &[]), Some(3.0));
    assert_eq!(
        e.value("ocireg_storage_bytes", &[]),
        Some(usage.total_bytes as f64)
    );
    assert!(usage.total_bytes >= (config.len() + layer.len() + manifest_bytes) as u64);
    assert_eq!(
        e.value("ocireg_namespace_artifacts", &[("namespace", "team")]),
        Some(3.0)
    );
    assert_eq!(
        e.value("ocireg_namespace_storage_bytes", &[("namespace", "team")]),
        Some(usage.namespaces["team"].bytes as f64)
    );
    assert_eq!(e.value("ocireg_gc_runs_total", &[]), Some(0.0));
    assert_eq!(e.value("ocireg_scrub_mismatches_total", &[]), Some(0.0));
}

#[tokio::test]
async fn a_download_cut_short_still_counts_what_was_sent() {
    let (app, m, store) = setup().await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let (s, _, _) = call(
        &app,
        "POST",
        &format!("/v2/r/blobs/uploads/?digest={}", sha(&data)),
        None,
        Body::from(data.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let req = Request::get(format!("/v2/r/blobs/{}", sha(&data)))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Nothing is recorded until the body ends or is dropped.
    let e = parse(&m, &store);
    assert_eq!(req_count(&e, "blob", "GET", "200"), 0.0);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(!first.is_empty() && first.len() < data.len());
    drop(body);
    let e = parse(&m, &store);
    assert_eq!(req_count(&e, "blob", "GET", "200"), 1.0);
    let sent = e
        .value("ocireg_http_response_bytes_total", &[("endpoint", "blob")])
        .unwrap();
    assert_eq!(sent as usize, first.len());
}

#[tokio::test]
async fn metrics_off_records_nothing_and_changes_nothing() {
    let store = Store::open(Arc::new(MemoryDriver::new()), StoreOptions::default())
        .await
        .unwrap();
    let unused = Metrics::new();
    let app = app(store.clone(), ServerOptions::default());
    let (s, h, b) = call(&app, "GET", "/v2/", None, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&b[..], b"{}");
    assert!(h.get("x-request-id").is_some());
    let e = prom::parse(&unused.render(None, None)).unwrap();
    assert_eq!(e.sum("ocireg_http_requests_total", &[]), 0.0);
    // Without a store there are no store gauges.
    assert!(!e.families.contains_key("ocireg_repositories"));
}

async fn raw_get(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, ctype, body.to_owned())
}

#[tokio::test]
async fn the_metrics_listener_serves_the_exposition() {
    let (app, m, store) = setup().await;
    let (s, _, _) = call(&app, "GET", "/v2/_catalog", None, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_metrics(listener, m.clone(), store.clone(), async {
        let _ = stopped.await;
    }));
    let (status, ctype, body) = raw_get(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    let e = prom::parse(&body).unwrap_or_else(|err| panic!("{err}\n{body}"));
    assert_eq!(req_count(&e, "catalog", "GET", "200"), 1.0);
    assert_eq!(e.value("ocireg_repositories", &[]), Some(0.0));
    // Scrapes are not counted as API requests.
    let (_, _, body) = raw_get(addr, "GET", "/metrics").await;
    let e = prom::parse(&body).unwrap();
    assert_eq!(e.sum("ocireg_http_requests_total", &[]), 1.0);
    let (status, _, _) = raw_get(addr, "GET", "/other").await;
    assert_eq!(status, 404);
    let (status, _, _) = raw_get(addr, "POST", "/metrics").await;
    assert_eq!(status, 405);
    let (status, ctype, body) = raw_get(addr, "HEAD", "/metrics").await;
    assert_eq!(
        (status, ctype.as_str(), body.as_str()),
        (200, "text/plain; version=0.0.4; charset=utf-8", "")
    );
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("metrics server stops on shutdown")
        .unwrap()
        .unwrap();
}
