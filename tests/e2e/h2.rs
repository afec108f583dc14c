//! HTTP/2 spoken frame by frame, in the clear or over TLS, so a test can send what a real
//! client sends between requests (PINGs, WINDOW_UPDATEs, SETTINGS acknowledgements) and
//! stop half-way through a request head.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const HEADERS: u8 = 0x1;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

pub struct Frame {
    pub kind: u8,
    pub stream: u32,
}

pub struct Client<S>(S);

/// A TCP stream to `addr` whose reads give up after 20 s.
pub fn plain(addr: &str) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp
}

/// A TLS stream to `addr` that trusts the CA in `ca_pem` and offers only `h2` by ALPN.
pub fn tls(addr: &str, ca_pem: &Path) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(connection, plain(addr))
}

impl<S: Read + Write> Client<S> {
    /// Sends the preface and empty SETTINGS on `stream` (reads on it should time out).
    pub fn connect(stream: S) -> Client<S> {
        let mut client = Client(stream);
        let _ = client.0.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        client.send(SETTINGS, 0, 0, &[]);
        client
    }

    pub fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = (payload.len() as u32).to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, flags];
        frame.extend((stream & 0x7fff_ffff).to_be_bytes());
        frame.extend(payload);
        // The server may have closed the connection: the next read says so.
        let _ = self.0.write_all(&frame);
        let _ = self.0.flush();
    }

    /// `GET /health/live` on `stream`; with `finished: false` the head is left without
    /// END_HEADERS, as a client that stalls mid-head would.
    pub fn get(&mut self, stream: u32, finished: bool) {
        // HPACK: :method GET, :scheme http (static table), :path and :authority literal.
        let mut block = vec![0x82, 0x86, 0x04, 12];
        block.extend(b"/health/live");
        block.extend([0x01, 0x01, b'x']);
        let flags = END_STREAM | if finished { END_HEADERS } else { 0 };
        self.send(HEADERS, flags, stream, &block);
    }

    /// The next frame from the server, or none once it closed the connection.
    pub fn next(&mut self) -> Option<Frame> {
        let mut header = [0u8; 9];
        self.0.read_exact(&mut header).ok()?;
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        self.0.read_exact(&mut payload).ok()?;
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        Some(Frame {
            kind: header[3],
            stream: stream & 0x7fff_ffff,
        })
    }

    /// Reads until the response HEADERS of `stream`; panics if the connection closes.
    pub fn response(&mut self, stream: u32) {
        loop {
            let frame = self
                .next()
                .expect("the connection closed before the response");
            if frame.kind == HEADERS && frame.stream == stream {
                return;
            }
        }
    }
}
