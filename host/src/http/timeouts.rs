//! Connection timeouts with the Go guide's meaning (Go's net/http), which hyper does not
//! offer as such:
//!
//! - `read_timeout`: a client gets this long to send a request head, counted from the
//!   connection's opening or from the first byte after an idle wait (the body has its own
//!   timer in the handler);
//! - `idle_timeout`: a keep-alive connection may wait this long for its next request;
//! - `write_timeout`: a response write may stall this long.
//!
//! Each connection has a [`Phase`], moved by its socket ([`TimedIo`]: the first byte of a
//! request head) and its handler ([`Conn::busy`]: a request being answered).
//! [`Conn::expired`] resolves when the phase has outlived its timeout; the server then closes
//! the connection (an idle one gracefully, with a GOAWAY on HTTP/2). A handler at work is
//! never cut off here.
//!
//! On HTTP/1 any byte after an idle wait begins a request head. On HTTP/2 (told by the
//! client's preface, sent whether it chose HTTP/2 by ALPN or by prior knowledge) only a
//! HEADERS frame does, and its END_HEADERS ends it:
//! [`FrameScanner`] follows the frame boundaries, so PINGs, WINDOW_UPDATEs and SETTINGS
//! acknowledgements keep an idle connection idle, and a head left unfinished is cut at the
//! read timeout whichever request of the connection it is.

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
}

/// Why a connection is closed by its timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// A request head took longer than the read timeout: the connection is dropped.
    Read,
    /// No request came within the idle timeout: the connection is closed gracefully.
    Idle,
}

impl Expiry {
    pub fn reason(self) -> &'static str {
        match self {
            Expiry::Read => "read timeout",
            Expiry::Idle => "idle timeout",
        }
    }
}

impl Conn {
    pub fn new(timeouts: Timeouts) -> Conn {
        Conn {
            shared: Arc::new(Shared {
                phase: Mutex::new(Phase::Head(Instant::now())),
                changed: Notify::new(),
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

    pub fn read_timeout(&self) -> Duration {
        self.timeouts.read
    }

    /// Marks a request as being handled until the guard drops.
    pub fn busy(&self) -> BusyGuard {
        self.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        BusyGuard(self.clone())
    }

    /// Resolves once the connection has been silent for longer than its phase allows.
    pub async fn expired(&self) -> Expiry {
        loop {
            let phase = *self.shared.phase.lock().unwrap();
            let (deadline, reason) = match phase {
                Phase::Busy(_) => {
                    self.shared.changed.notified().await;
                    continue;
                }
                Phase::Head(since) => (since + self.timeouts.read, Expiry::Read),
                Phase::Idle(since) => (since + self.timeouts.idle, Expiry::Idle),
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

    /// A request head has begun: after an idle wait, the read timeout runs.
    fn head_started(&self) {
        let mut phase = self.shared.phase.lock().unwrap();
        if matches!(*phase, Phase::Idle(_)) {
            *phase = Phase::Head(Instant::now());
            drop(phase);
            self.shared.changed.notify_one();
        }
    }

    /// An HTTP/2 request head is complete; its handler takes over (or, for a stream the
    /// server refuses, nothing does and the connection is idle again).
    fn head_ended(&self) {
        let mut phase = self.shared.phase.lock().unwrap();
        if matches!(*phase, Phase::Head(_)) {
            *phase = Phase::Idle(Instant::now());
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

/// The client connection preface of HTTP/2 (RFC 9113 section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Follows the frames a client sends on an HTTP/2 connection, far enough to tell where a
/// request head (HEADERS and its CONTINUATIONs) begins and ends. It reads only frame
/// headers; hyper's h2 checks everything else.
#[derive(Default)]
struct FrameScanner {
    /// Preface bytes still to skip.
    preface_left: usize,
    header: [u8; FRAME_HEADER],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// The current frame carries END_HEADERS of a head.
    ends_head: bool,
}

impl FrameScanner {
    fn new() -> Self {
        FrameScanner {
            preface_left: H2_PREFACE.len(),
            ..FrameScanner::default()
        }
    }

    /// Feeds the bytes read from the client; tells `conn` when heads begin and end.
    fn scan(&mut self, mut bytes: &[u8], conn: &Conn) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
            } else if self.header_len < FRAME_HEADER {
                let n = (FRAME_HEADER - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                bytes = &bytes[n..];
                if self.header_len == FRAME_HEADER {
                    let [a, b, c, kind, flags, ..] = self.header;
                    self.payload_left = u32::from_be_bytes([0, a, b, c]) as usize;
                    let head = kind == HEADERS || kind == CONTINUATION;
                    if kind == HEADERS {
                        conn.head_started();
                    }
                    self.ends_head = head && flags & END_HEADERS != 0;
                    self.end_frame_if_done(conn);
                }
            } else {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
                self.end_frame_if_done(conn);
            }
        }
    }

    fn end_frame_if_done(&mut self, conn: &Conn) {
        if self.payload_left == 0 {
            self.header_len = 0;
            if std::mem::take(&mut self.ends_head) {
                conn.head_ended();
            }
        }
    }
}

/// How the bytes a client sends map to request heads.
enum Protocol {
    /// Not known yet: the first bytes tell HTTP/1 from HTTP/2's preface (which a client
    /// sends whether it chose HTTP/2 by ALPN or by prior knowledge).
    Unknown,
    Http1,
    Http2(FrameScanner),
    /// TLS records, under the decrypted stream that tracks the heads.
    Encrypted,
}

/// The socket of a connection: reports request heads to its [`Conn`] and fails a write that
/// stalls past the write timeout.
pub struct TimedIo<T> {
    inner: T,
    conn: Conn,
    protocol: Protocol,
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> TimedIo<T> {
    pub fn new(inner: T, conn: Conn) -> Self {
        TimedIo {
            inner,
            conn,
            protocol: Protocol::Unknown,
            write_deadline: None,
        }
    }

    /// The TCP stream under TLS: it bounds writes, while the TLS stream wrapped in a
    /// [`TimedIo::new`] of its own tracks the request heads.
    pub fn encrypted(inner: T, conn: Conn) -> Self {
        TimedIo {
            protocol: Protocol::Encrypted,
            ..TimedIo::new(inner, conn)
        }
    }

    fn on_read(&mut self, bytes: &[u8]) {
        if let Protocol::Unknown = self.protocol {
            let n = bytes.len().min(H2_PREFACE.len());
            self.protocol = if bytes[..n] == H2_PREFACE[..n] {
                Protocol::Http2(FrameScanner::new())
            } else {
                Protocol::Http1
            };
        }
        match &mut self.protocol {
            Protocol::Http2(scanner) => scanner.scan(bytes, &self.conn),
            Protocol::Http1 => self.conn.head_started(),
            Protocol::Unknown | Protocol::Encrypted => {}
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
            this.on_read(&buf.filled()[before..]);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload_len: usize) -> Vec<u8> {
        let len = (payload_len as u32).to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 1];
        frame.resize(FRAME_HEADER + payload_len, 0xAB);
        frame
    }

    /// A connection between requests, and a scanner past the preface.
    fn idle() -> (Conn, FrameScanner) {
        let conn = Conn::new(Timeouts {
            read: Duration::from_secs(1),
            write: Duration::from_secs(1),
            idle: Duration::from_secs(10),
        });
        drop(conn.busy());
        let mut scanner = FrameScanner::new();
        scanner.scan(H2_PREFACE, &conn);
        (conn, scanner)
    }

    fn phase(conn: &Conn) -> Phase {
        *conn.shared.phase.lock().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_headers_frame_begins_a_head_however_the_bytes_are_split() {
        let between_requests = [
            frame(0x4, 0x1, 0),   // SETTINGS ACK
            frame(0x6, 0x0, 8),   // PING
            frame(0x8, 0x0, 4),   // WINDOW_UPDATE
            frame(0x0, 0x1, 300), // DATA
        ]
        .concat();
        let unfinished_head = frame(HEADERS, 0x1, 20);
        let rest_of_head = frame(CONTINUATION, END_HEADERS, 7);
        for chunk in [1, 2, 5, 9, 10, 64, 4096] {
            let (conn, mut scanner) = idle();
            for piece in between_requests.chunks(chunk) {
                scanner.scan(piece, &conn);
            }
            assert!(matches!(phase(&conn), Phase::Idle(_)), "chunks of {chunk}");
            for piece in unfinished_head.chunks(chunk) {
                scanner.scan(piece, &conn);
            }
            assert!(matches!(phase(&conn), Phase::Head(_)), "chunks of {chunk}");
            for piece in rest_of_head.chunks(chunk) {
                scanner.scan(piece, &conn);
            }
            assert!(matches!(phase(&conn), Phase::Idle(_)), "chunks of {chunk}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_headers_frame_ends_its_head_at_its_last_byte() {
        let (conn, mut scanner) = idle();
        let head = frame(HEADERS, END_HEADERS, 30);
        scanner.scan(&head[..head.len() - 1], &conn);
        assert!(matches!(phase(&conn), Phase::Head(_)));
        scanner.scan(&head[head.len() - 1..], &conn);
        assert!(matches!(phase(&conn), Phase::Idle(_)));
    }
}
