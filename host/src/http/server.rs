//! Accepting connections and shutting down gracefully: on SIGINT or SIGTERM the listener
//! closes, in-flight requests finish (up to the shutdown timeout), then the process exits.
//!
//! Each connection speaks HTTP/1.1 or HTTP/2 (by ALPN over TLS, by its preface in the
//! clear), over TLS when `server.tls` is on. The TLS handshake counts against the read
//! timeout like a request head does.

use super::routes::{handle, App, Listener, Peer};
use super::timeouts::{Conn, Expiry, TimedIo, Timeouts};
use super::tls::Tls;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// Serves `app` on `listener` (the routes of `kind`) until `shutdown` resolves, then drains
/// for at most `drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    kind: Listener,
    app: Arc<App>,
    tls: Option<Tls>,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().keep_alive(true).max_buf_size(64 * 1024);
    http.http2()
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024);
    let http = Arc::new(http);
    let tls = tls.map(|tls| (TlsAcceptor::from(tls.config.clone()), Arc::new(tls)));
    // Every connection watches `stop`, and holds a `live` sender until it ends: once ours
    // is dropped, the channel closes when the last connection has (as in mini-redis).
    let (stop_tx, stop) = watch::channel(false);
    let (live_tx, mut live) = mpsc::channel::<()>(1);
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
        let (app, http, tls, stop, live) = (
            app.clone(),
            http.clone(),
            tls.clone(),
            stop.clone(),
            live_tx.clone(),
        );
        tokio::spawn(async move {
            let _live = live;
            let mut peer = Peer {
                addr,
                tls: false,
                client_cert: None,
                listener: kind,
            };
            let Some((acceptor, tls)) = tls else {
                let io = TimedIo::new(stream, conn.clone());
                return connection(io, peer, app, &http, &conn, stop).await;
            };
            // The handshake counts against the read timeout, like a request head.
            let handshake = tokio::select! {
                handshake = acceptor.accept(TimedIo::encrypted(stream, conn.clone())) => handshake,
                expiry = conn.expired() => {
                    tracing::debug!(%addr, "connection closed: {}", expiry.reason());
                    return;
                }
            };
            match handshake {
                Ok(stream) => {
                    peer.tls = true;
                    peer.client_cert = tls.client_cert(stream.get_ref().1);
                    let io = TimedIo::new(stream, conn.clone());
                    connection(io, peer, app, &http, &conn, stop).await
                }
                Err(e) => tracing::debug!(%addr, "TLS handshake failed: {e}"),
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    drop(live_tx);
    tokio::select! {
        _ = live.recv() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("connections still open after {drain_timeout:?}; exiting anyway")
        }
    }
}

/// Serves the requests of one connection until it ends. A connection idle past its timeout,
/// or open when the server stops, is closed gracefully (HTTP/2: GOAWAY, then the streams in
/// flight finish), within the read timeout; one whose request head stalls is dropped.
async fn connection<I>(
    io: I,
    peer: Peer,
    app: Arc<App>,
    http: &auto::Builder<TokioExecutor>,
    conn: &Conn,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handler_conn = conn.clone();
    let addr = peer.addr;
    let service = service_fn(move |req| {
        let guard = handler_conn.busy();
        let app = app.clone();
        let peer = peer.clone();
        async move {
            let response = handle(app, peer, req).await;
            drop(guard);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut closing: Option<Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%addr, "connection ended: {e}");
                }
                return;
            }
            expiry = conn.expired(), if closing.is_none() => {
                tracing::debug!(%addr, "connection closed: {}", expiry.reason());
                match expiry {
                    Expiry::Read => return,
                    Expiry::Idle => connection.as_mut().graceful_shutdown(),
                }
                closing = Some(Instant::now() + conn.read_timeout());
            }
            _ = stop.wait_for(|stop| *stop), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                // In-flight requests get the whole drain; the server's drain timeout ends it.
                closing = Some(Instant::now() + Duration::from_secs(24 * 3600));
            }
            () = tokio::time::sleep_until(closing.unwrap_or_else(Instant::now)), if closing.is_some() => {
                tracing::debug!(%addr, "connection dropped: it did not close in time");
                return;
            }
        }
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
