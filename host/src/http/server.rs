//! Accepting connections and shutting down gracefully: on SIGINT or SIGTERM the listener
//! closes, in-flight requests finish (up to the shutdown timeout), then the process exits.
//!
//! Each connection speaks HTTP/1.1 or HTTP/2 (by ALPN over TLS, by its preface in the
//! clear), over TLS when `server.tls` is on. The TLS handshake counts against the read
//! timeout like a request head does.

use super::routes::{handle, App, Peer};
use super::timeouts::{Conn, TimedIo, Timeouts};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at most
/// `drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<Arc<rustls::ServerConfig>>,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().keep_alive(true).max_buf_size(64 * 1024);
    http.http2()
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024);
    let http = Arc::new(http);
    let tls = tls.map(TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn::new(timeouts);
        let io = TimedIo::new(stream, conn.clone());
        let (app, http, tls, watcher) =
            (app.clone(), http.clone(), tls.clone(), graceful.watcher());
        tokio::spawn(async move {
            let session = async {
                match tls {
                    None => {
                        let peer = Peer {
                            addr,
                            client_cert: false,
                        };
                        connection(io, peer, app, &http, &conn, watcher).await
                    }
                    Some(tls) => match tls.accept(io).await {
                        Ok(stream) => {
                            let session = stream.get_ref().1;
                            if session.alpn_protocol() == Some(b"h2") {
                                conn.set_multiplexed();
                            }
                            let client_cert = session.peer_certificates().is_some();
                            let peer = Peer { addr, client_cert };
                            connection(stream, peer, app, &http, &conn, watcher).await
                        }
                        Err(e) => tracing::debug!(%addr, "TLS handshake failed: {e}"),
                    },
                }
            };
            tokio::select! {
                () = session => {}
                // Dropping the connection closes it; no handler is running at this point.
                reason = conn.expired() => tracing::debug!(%addr, "connection closed: {reason}"),
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("connections still open after {drain_timeout:?}; exiting anyway")
        }
    }
}

/// Serves the requests of one connection until it ends.
async fn connection<I>(
    io: I,
    peer: Peer,
    app: Arc<App>,
    http: &auto::Builder<TokioExecutor>,
    conn: &Conn,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handler_conn = conn.clone();
    let service = service_fn(move |req| {
        let guard = handler_conn.busy();
        let app = app.clone();
        async move {
            let response = handle(app, peer, req).await;
            drop(guard);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = http.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(addr = %peer.addr, "connection ended: {e}");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
        _ = term.recv() => tracing::info!("received SIGTERM"),
    }
}
