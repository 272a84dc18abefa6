//! Building the HTTP client (rustls, extra roots, verification switch, explicit proxies) and
//! the insecure-connection rule (plain HTTP or unverified TLS only for loopback hosts or with
//! `allow_insecure`).

use std::net::Ipv4Addr;

use url::{Host, Url};

use crate::error::ClientError;
use crate::options::ClientOptions;
use crate::retry;

/// True for `localhost` (and `*.localhost`), 127.0.0.0/8 and `::1`.
pub(crate) fn is_loopback_host(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4: Ipv4Addr| v4.is_loopback())
        }
        None => false,
    }
}

/// Checks the insecure-connection rule for a registry base URL.
pub(crate) fn check_security(base: &Url, opts: &ClientOptions) -> Result<(), ClientError> {
    if opts.allow_insecure || is_loopback_host(base.host()) {
        return Ok(());
    }
    let host = base.host_str().unwrap_or("").to_owned();
    if base.scheme() == "http" {
        return Err(ClientError::Insecure {
            host,
            what: "plain HTTP".into(),
        });
    }
    if !opts.verify_ssl {
        return Err(ClientError::Insecure {
            host,
            what: "TLS without certificate verification".into(),
        });
    }
    Ok(())
}

fn proxy(
    kind: &str,
    url: &str,
    no_proxy: &Option<reqwest::NoProxy>,
) -> Result<reqwest::Proxy, ClientError> {
    let p = match kind {
        "http" => reqwest::Proxy::http(url),
        _ => reqwest::Proxy::https(url),
    }
    .map_err(|e| ClientError::Options(format!("{kind}_proxy {url:?}: {e}")))?;
    Ok(p.no_proxy(no_proxy.clone()))
}

/// Builds the reqwest client: rustls, extra roots, verification switch, explicit proxies only
/// (environment proxy variables are not read), connect timeout.
pub(crate) fn build_http(opts: &ClientOptions) -> Result<reqwest::Client, ClientError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(opts.user_agent.clone())
        .connect_timeout(opts.timeout)
        .redirect(reqwest::redirect::Policy::limited(10));
    if let Some(path) = &opts.ca_cert_path {
        let pem = std::fs::read(path)
            .map_err(|e| ClientError::Options(format!("ca_cert_path {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            ClientError::Options(format!(
                "ca_cert_path {}: not PEM certificates: {e}",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(ClientError::Options(format!(
                "ca_cert_path {}: no certificate found",
                path.display()
            )));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if !opts.verify_ssl {
        b = b.danger_accept_invalid_certs(true);
    }
    if opts.http_proxy.is_none() && opts.https_proxy.is_none() {
        b = b.no_proxy();
    } else {
        let list: Vec<&str> = opts
            .no_proxy
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        let np = if list.is_empty() {
            None
        } else {
            reqwest::NoProxy::from_string(&list.join(","))
        };
        if let Some(u) = &opts.http_proxy {
            b = b.proxy(proxy("http", u, &np)?);
        }
        if let Some(u) = &opts.https_proxy {
            b = b.proxy(proxy("https", u, &np)?);
        }
    }
    b.build().map_err(|e| {
        ClientError::Options(format!("building the HTTP client: {}", retry::chain(&e)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn loopback_hosts() {
        for u in [
            "http://localhost:5000",
            "http://LOCALHOST",
            "http://registry.localhost",
            "http://127.0.0.1:1",
            "http://127.9.9.9",
            "http://[::1]:5000",
            "http://[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback_host(url(u).host()), "{u}");
        }
        for u in [
            "http://example.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://[::2]",
        ] {
            assert!(!is_loopback_host(url(u).host()), "{u}");
        }
    }

    #[test]
    fn insecure_rule() {
        let o = ClientOptions::default();
        assert!(check_security(&url("https://example.com"), &o).is_ok());
        assert!(check_security(&url("http://127.0.0.1:5000"), &o).is_ok());
        let e = check_security(&url("http://example.com"), &o).unwrap_err();
        assert!(matches!(e, ClientError::Insecure { .. }), "{e}");
        assert!(e.to_string().contains("plain HTTP"), "{e}");
        let no_verify = ClientOptions {
            verify_ssl: false,
            ..ClientOptions::default()
        };
        assert!(check_security(&url("https://localhost"), &no_verify).is_ok());
        assert!(check_security(&url("https://example.com"), &no_verify).is_err());
        let allowed = ClientOptions {
            verify_ssl: false,
            allow_insecure: true,
            ..ClientOptions::default()
        };
        assert!(check_security(&url("http://example.com"), &allowed).is_ok());
        assert!(check_security(&url("https://example.com"), &allowed).is_ok());
    }
}
