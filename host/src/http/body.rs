//! Reading a request body within a size limit and a time limit.
//!
//! An oversized body is still read and thrown away up to [`DRAIN_LIMIT`], so the client
//! reads our 413 instead of a connection reset (closing a socket with unread input makes
//! the kernel send RST, which can destroy the answer in flight). Past that, or when the
//! declared length is already past it, the answer is 413 and the connection is closed.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::Duration;

/// Bytes of an oversized body read and discarded before giving up on the connection.
const DRAIN_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, PartialEq)]
pub enum BodyError {
    /// Over the limit. `drained`: the whole body was consumed, so the connection may serve
    /// another request.
    TooLarge { drained: bool },
    /// Not received within the read timeout.
    Timeout,
    /// The connection failed mid-body.
    Broken,
}

/// The body of a request whose `Content-Length` was `declared` (if any), at most `limit`
/// bytes, received within `timeout`.
pub async fn read(
    body: Incoming,
    declared: Option<u64>,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let drain_limit = DRAIN_LIMIT.max(limit);
    if declared.is_some_and(|len| len > drain_limit) {
        return Err(BodyError::TooLarge { drained: false });
    }
    let read = async {
        let mut body = body;
        let mut kept = BytesMut::new();
        let mut total: u64 = 0;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|_| BodyError::Broken)?.into_data() else {
                continue; // trailers
            };
            total += data.len() as u64;
            if total > drain_limit {
                return Err(BodyError::TooLarge { drained: false });
            }
            if total <= limit {
                kept.extend_from_slice(&data);
            }
        }
        match total > limit {
            true => Err(BodyError::TooLarge { drained: true }),
            false => Ok(kept.freeze()),
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::Timeout))
}
