//! Calls an ocireg extension endpoint (`/v2/_ocireg/<path>`) of the local built-in registry
//! that the config describes, with the configured admin credentials. Used by the on-demand
//! maintenance commands (`ocireg gc`, `ocireg scrub`): when the server runs they ask it (it
//! owns the storage and its in-memory index); when nothing listens they run in-process.
//!
//! Address: where this machine reaches `registry.local` (its listen address, a wildcard probed
//! on loopback). A registry on object storage (S3, Azure) is only ever served by running
//! `ocireg serve` processes, which own the bucket's index: there the operation must run in one
//! of them, and without an answer the command says so instead of opening the bucket itself.
//! Credentials: `registry.username` + `password_path`, else `auth_token_path`,
//! else the login store (`ocireg login`), as the client commands find them. TLS: https when
//! `registry.tls_enabled`, trusting `registry.ca_cert_path` (and `verify_ssl`). Proxies are
//! never used for this local call.

use std::time::Duration;

use anyhow::{bail, Context};
use ocireg_client::Credentials;
use ocireg_config::{ClientView, Document, ServeSettings, StorageView};
use serde_json::Value;

use crate::client_cmd::{creds, settings};

/// How long to wait for the TCP connection to the local server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The local registry's extension URL for `path` (after `/v2/_ocireg/`) and its credentials.
struct Target {
    url: reqwest::Url,
    credentials: Credentials,
}

/// The local registry these commands work on: where this machine reaches it and where it
/// stores its content.
struct Local {
    /// `http(s)://host:port/v2/`.
    probe_url: String,
    /// Its storage.
    storage: StorageView,
}

/// The local registry of `doc`: the address `up` and `status` use is the one this call
/// reaches. A registry on object storage has no lifecycle plan; its address is the one
/// `ocireg serve` listens on.
fn local(doc: &Document) -> anyhow::Result<Local> {
    let plan = ocireg_deploy::LocalPlan::from_registry(
        &doc.registry,
        &ocireg_deploy::RenderOptions::default(),
    );
    match plan {
        Ok(plan) => Ok(Local {
            probe_url: plan.settings.probe_url,
            storage: plan.settings.view.storage,
        }),
        Err(e) => match ServeSettings::resolve(doc) {
            Ok(s) if s.storage().is_object_store() => Ok(Local {
                probe_url: s.local.probe_url(),
                storage: s.local.storage,
            }),
            _ => Err(e).context(
                "this command works on the local registry (registry.deployment = \"local\")",
            ),
        },
    }
}

/// `<probe URL of the local registry>/v2/_ocireg/<path>?<query>`.
pub(crate) fn extension_url(
    doc: &Document,
    path: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<reqwest::Url> {
    let local = local(doc)?;
    let probe = reqwest::Url::parse(&local.probe_url)
        .with_context(|| format!("local registry URL {:?}", local.probe_url))?;
    let mut url = probe
        .join(&format!("/v2/_ocireg/{path}"))
        .with_context(|| format!("extension path {path:?}"))?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query.iter().copied());
    }
    Ok(url)
}

fn target(doc: &Document, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Target> {
    let url = extension_url(doc, path, query)?;
    let view = ClientView::resolve(doc)?;
    let credentials = creds::lookup(doc, &settings::configured(&view).host, true)?;
    Ok(Target { url, credentials })
}

fn http_client(doc: &Document) -> anyhow::Result<reqwest::Client> {
    let options = settings::client_options(&ClientView::resolve(doc)?);
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = &options.ca_cert_path {
        let pem = std::fs::read(ca)
            .with_context(|| format!("reading registry.ca_cert_path {}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem).with_context(|| {
            format!(
                "registry.ca_cert_path {} is not a PEM certificate",
                ca.display()
            )
        })?;
        b = b.add_root_certificate(cert);
    }
    if !options.verify_ssl {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().context("building the HTTP client")
}

/// True when the error is "nothing listens there" (connection refused), the only failure that
/// means "no server": anything else (TLS, timeouts, resets) is reported, never taken as absence.
fn is_refused(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = e.source();
    }
    false
}

async fn call(
    doc: &Document,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<Option<Value>> {
    let t = target(doc, path, query)?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .with_context(|| format!("HTTP method {method:?}"))?;
    let mut req = http_client(doc)?.request(method.clone(), t.url.clone());
    req = match &t.credentials {
        Credentials::Basic { username, password } => req.basic_auth(username, Some(password)),
        Credentials::Bearer(token) => req.bearer_auth(token),
        _ => req,
    };
    let resp = match req.header("Content-Length", "0").send().await {
        Ok(resp) => resp,
        Err(e) if is_refused(&e) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{method} {}", t.url)),
    };
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("reading the answer of {method} {}", t.url))?;
    let text = || String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
    match status.as_u16() {
        200..=299 => serde_json::from_slice(&body)
            .map(Some)
            .with_context(|| format!("{method} {}: the answer is not JSON: {}", t.url, text())),
        401 | 403 => bail!(
            "{method} {}: {status}: needs an administrator (set registry.username + password_path, or `ocireg login`): {}",
            t.url,
            text()
        ),
        404 => bail!(
            "{method} {}: 404: the registry listening there does not serve ocireg's extension endpoints (not the built-in engine?)",
            t.url
        ),
        _ => bail!("{method} {}: {status}: {}", t.url, text()),
    }
}

/// Calls `method /v2/_ocireg/<path>?<query>` on the local built-in registry with the configured
/// admin credentials and returns its JSON answer; `Ok(None)` when no server answers there
/// (connection refused). Call from synchronous code (it runs its own small runtime).
pub(crate) fn call_local(
    doc: &Document,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<Option<Value>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(call(doc, method, path, query))
}

/// True when both paths name the same directory (compared canonically when both exist).
fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Runs an on-demand maintenance operation (`gc`, `scrub`) where it belongs: in the running
/// local server (`POST /v2/_ocireg/<path>` with `query`; its JSON answer is the report) unless
/// `root` names another directory than the configured storage root; otherwise, or when nothing
/// listens, in-process on `root` (else the configured root) with `op`. A configured bucket is
/// never opened in-process: without a server the call fails saying one is needed. Returns the
/// report and a phrase saying where it ran.
pub(crate) fn run_operation<T, F, Fut>(
    doc: &Document,
    root: Option<&std::path::Path>,
    path: &str,
    query: &[(&str, &str)],
    op: F,
) -> anyhow::Result<(T, String)>
where
    T: serde::de::DeserializeOwned,
    F: FnOnce(ocireg_store::Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let local = local(doc);
    let configured_root = local
        .as_ref()
        .ok()
        .and_then(|l| l.storage.root().map(std::path::Path::to_path_buf));
    let ask_server = match (root, &configured_root) {
        (Some(root), Some(conf)) => same_dir(root, conf),
        (Some(_), None) => false,
        (None, _) => true,
    };
    if ask_server {
        if let Some(answer) = call_local(doc, "POST", path, query)? {
            let report: T = serde_json::from_value(answer)
                .with_context(|| format!("the server's {path} report has an unexpected shape"))?;
            let url = local
                .as_ref()
                .map(|l| l.probe_url.trim_end_matches("/v2/").to_owned())
                .unwrap_or_default();
            return Ok((report, format!("the running registry at {url}")));
        }
    }
    if let (None, Ok(l)) = (root, &local) {
        if l.storage.backend.is_object_store() {
            bail!(
                "nothing answers at {}: `ocireg {path}` on {} runs in a running `ocireg serve` of that storage \
                 (any replica), which owns its index; start one, or pass --root DIR for a directory",
                l.probe_url.trim_end_matches("/v2/"),
                l.storage.backend.location()
            );
        }
    }
    let root = match (root, &configured_root) {
        (Some(r), _) => r.to_path_buf(),
        (None, Some(r)) => r.clone(),
        (None, None) => bail!("no storage root: pass --root DIR"),
    };
    if !root.is_dir() {
        bail!("storage root {} does not exist", root.display());
    }
    let dedupe = local.as_ref().map_or(true, |l| l.storage.dedupe);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let opts = ocireg_store::StoreOptions {
            dedupe,
            ..ocireg_store::StoreOptions::default()
        };
        let store = ocireg_store::Store::open_filesystem(&root, opts)
            .await
            .with_context(|| format!("opening storage at {}", root.display()))?;
        op(store).await
    })?;
    Ok((report, format!("storage {} (in-process)", root.display())))
}

/// Prints a maintenance report: as JSON with `--json`, else through `human`.
pub(crate) fn print_report<T: serde::Serialize>(
    report: &T,
    json: bool,
    human: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        human(report);
    }
    Ok(())
}
