//! Connection timeouts with the seed's (Go's) meaning, which hyper does not offer as such:
//!
//! - `read_timeout`: a client gets this long to send a request head, counted from the
//!   connection's opening or from the first byte after an idle wait (the body has its own
//!   timer in the handler);
//! - `idle_timeout`: a keep-alive connection may wait this long for its next request;
//! - `write_timeout`: a response write may stall this long.
//!
//! Each connection has a [`Phase`], moved by its socket ([`TimedIo`]: first byte of a
//! request) and its handler ([`Conn::busy`]: a request being answered). [`Conn::expired`]
//! resolves when the phase has outlived its timeout; the server then drops the connection.
//! A handler at work is never cut off here.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub read: Duration,
    pub write: Duration,
    pub idle: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for, or receiving, a request head since this instant.
    Head(Instant),
    /// Handlers are answering this many requests (HTTP/2 runs several at once).
    Busy(u32),
    /// Between requests since this instant.
    Idle(Instant),
}

/// The timing state of one connection, shared by its socket, its handler and its watcher.
#[derive(Clone)]
pub struct Conn {
    shared: Arc<Shared>,
    timeouts: Timeouts,
}

struct Shared {
    phase: Mutex<Phase>,
    changed: Notify,
    /// HTTP/2: bytes between requests (PINGs, WINDOW_UPDATEs) start no request head.
    multiplexed: std::sync::atomic::AtomicBool,
}

impl Conn {
    pub fn new(timeouts: Timeouts) -> Conn {
        Conn {
            shared: Arc::new(Shared {
                phase: Mutex::new(Phase::Head(Instant::now())),
                changed: Notify::new(),
                multiplexed: std::sync::atomic::AtomicBool::new(false),
            }),
            timeouts,
        }
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.shared.phase.lock().unwrap();
        *phase = change(*phase);
        drop(phase);
        self.shared.changed.notify_one();
    }

    /// Marks a request as being handled until the guard drops.
    pub fn busy(&self) -> BusyGuard {
        self.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        BusyGuard(self.clone())
    }

    /// Resolves with the reason once the connection has been silent for longer than its
    /// phase allows.
    pub async fn expired(&self) -> &'static str {
        loop {
            let phase = *self.shared.phase.lock().unwrap();
            let (deadline, reason) = match phase {
                Phase::Busy(_) => {
                    self.shared.changed.notified().await;
                    continue;
                }
                Phase::Head(since) => (since + self.timeouts.read, "read timeout"),
                Phase::Idle(since) => (since + self.timeouts.idle, "idle timeout"),
            };
            tokio::select! {
                () = self.shared.changed.notified() => {}
                () = tokio::time::sleep_until(deadline) => {
                    if *self.shared.phase.lock().unwrap() == phase {
                        return reason;
                    }
                }
            }
        }
    }

    /// The connection speaks HTTP/2: from now on only requests end an idle wait.
    pub fn set_multiplexed(&self) {
        self.shared
            .multiplexed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The socket saw bytes: after an idle wait, a new request head has begun (HTTP/1).
    fn on_read(&self) {
        if self
            .shared
            .multiplexed
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let mut phase = self.shared.phase.lock().unwrap();
        if matches!(*phase, Phase::Idle(_)) {
            *phase = Phase::Head(Instant::now());
            drop(phase);
            self.shared.changed.notify_one();
        }
    }
}

/// Ends a request: with none left, the connection is idle from now on.
pub struct BusyGuard(Conn);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// The socket of a connection: reports reads to its [`Conn`] and fails a write that stalls
/// past the write timeout.
pub struct TimedIo<T> {
    inner: T,
    conn: Conn,
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> TimedIo<T> {
    pub fn new(inner: T, conn: Conn) -> Self {
        TimedIo {
            inner,
            conn,
            write_deadline: None,
        }
    }

    /// Pending until the current write has stalled for the write timeout, then `TimedOut`.
    fn poll_write_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let write_timeout = self.conn.timeouts.write;
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(write_timeout)));
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "write timeout",
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        if buf.filled().len() > before {
            this.conn.on_read();
        }
        Poll::Ready(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.write_deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_write_stall(cx).map_ok(|()| 0),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(result) => {
                this.write_deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_write_stall(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
