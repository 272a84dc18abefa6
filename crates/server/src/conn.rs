//! Accepting connections: hyper (HTTP/1.1 and h2c) over [`TimedIo`], one task per connection,
//! graceful shutdown that lets in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Version;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::timed_io::{InFlight, TimedIo, Timeouts};
use crate::tls::Reloading;
use crate::zero_copy::stream::SendfileStream;
use crate::zero_copy::{Regions, ZeroCopy};
use crate::{ServerError, ServerOptions};

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish (at most `opts.shutdown_grace`) and returns.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    opts: &ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listener {
            addr: ([0, 0, 0, 0], 0).into(),
            source,
        })?;
    let timeouts = Timeouts {
        read: opts.read_timeout,
        write: opts.write_timeout,
        idle: opts.idle_timeout,
    };
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.read_timeout)
        .keep_alive(true)
        // Body frames are queued and written as buffers of their own, never copied into hyper's
        // buffer: file-backed frames reach `SendfileStream` as themselves (see `zero_copy`).
        .writev(true)
        // hyper's read buffer; a head larger than this is answered 431 by hyper itself, smaller
        // heads over `max_header_bytes` by the limits layer (see `limits::READ_BUFFER_BYTES`).
        .max_buf_size(head_limit(opts));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(head_limit(opts)).unwrap_or(u32::MAX));
    let tls = opts
        .tls
        .clone()
        .map(|tls| Reloading::new(tls, opts.reload.tls_generation()))
        .transpose()?
        .map(Arc::new);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) if is_transient(&err) => {
                    tracing::warn!(%err, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(source) => return Err(ServerError::Listener { addr, source }),
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            builder: builder.clone(),
            graceful: graceful.watcher(),
            app: app.clone(),
            timeouts,
            peer,
            zero_copy: None,
        };
        match &tls {
            None => {
                let regions = Regions::default();
                let stream = SendfileStream::new(stream, regions.clone());
                Conn {
                    zero_copy: Some(ZeroCopy(regions)),
                    ..conn
                }
                .serve(stream);
            }
            Some(tls) => {
                let config = tls.current();
                tokio::spawn(async move {
                    if let Some(stream) = handshake(stream, config, timeouts.read, peer).await {
                        conn.serve(stream);
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(opts.shutdown_grace) => {
            tracing::warn!(grace = ?opts.shutdown_grace, "grace period over; dropping connections");
        }
    }
    Ok(())
}

/// One accepted connection, ready to be served over any stream.
struct Conn {
    builder: Builder<TokioExecutor>,
    graceful: Watcher,
    app: axum::Router,
    timeouts: Timeouts,
    peer: SocketAddr,
    /// Set on plain-TCP connections: their HTTP/1.x requests may answer with file-backed
    /// bodies.
    zero_copy: Option<ZeroCopy>,
}

impl Conn {
    fn serve<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            builder,
            graceful,
            app,
            timeouts,
            peer,
            zero_copy,
        } = self;
        let in_flight = InFlight::default();
        let io = TokioIo::new(TimedIo::new(stream, timeouts, in_flight.clone()));
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = in_flight.start();
            let app = app.clone();
            // HTTP/2 frames its own data: its requests keep the buffered bodies.
            let zero_copy = zero_copy
                .clone()
                .filter(|_| matches!(req.version(), Version::HTTP_10 | Version::HTTP_11));
            async move {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(peer);
                if let Some(zero_copy) = zero_copy {
                    req.extensions_mut().insert(zero_copy);
                }
                let resp = app.oneshot(req).await;
                // The request stays "in flight" (read timeout, not idle) until its response body
                // is done.
                resp.map(|r| {
                    r.map(move |body| {
                        Body::new(body.map_frame(move |frame| {
                            let _still_in_flight = &guard;
                            frame
                        }))
                    })
                })
            }
        });
        let conn = builder.serve_connection(io, service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%peer, err = %err, "connection ended with an error");
            }
        });
    }
}

/// The TLS handshake (bounded by the read timeout). A plain-HTTP request gets a plain `400`.
async fn handshake(
    mut stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    limit: Duration,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(limit, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return None,
    }
    if first[0].is_ascii_alphabetic() {
        tracing::debug!(%peer, "plain HTTP on the TLS port");
        let _ = tokio::time::timeout(limit, async {
            stream.write_all(crate::tls::PLAIN_HTTP_ANSWER).await?;
            stream.shutdown().await
        })
        .await;
        return None;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(err)) => {
            tracing::debug!(%peer, %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// The request-head limit (hyper refuses buffers under 8 KiB).
fn head_limit(opts: &ServerOptions) -> usize {
    opts.limits
        .max_header_bytes
        .max(crate::limits::MIN_HEADER_BYTES)
        .max(crate::limits::READ_BUFFER_BYTES)
}

fn is_transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || err.raw_os_error() == Some(24) // EMFILE: too many open files, back off
        || err.raw_os_error() == Some(23)
}
