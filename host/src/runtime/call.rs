//! A call into the guest: what it answers, and why it may answer nothing.

use super::Response;
use std::time::Duration;

/// What a guest call answered.
pub struct Answer {
    pub response: Response,
    /// The registered client the request authenticated as, if the guest said (`caller`).
    pub client_id: Option<String>,
}

/// Why a guest call produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (a panic, an out-of-bounds access, memory exhausted, ...).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The guest ran past its deadline.
    #[error("guest exceeded its deadline of {0:?}")]
    Deadline(Duration),
    /// The guest used up its fuel.
    #[error("guest used up its fuel ({0} units)")]
    Fuel(u64),
    /// No instance became free within the deadline.
    #[error("no guest instance free within {0:?}")]
    Busy(Duration),
    /// The guest answered something the host cannot send.
    #[error("guest returned an invalid response: {0}")]
    InvalidResponse(String),
}

impl CallError {
    /// The metrics label of this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Trap(_) => "trap",
            CallError::Deadline(_) => "deadline",
            CallError::Fuel(_) => "fuel",
            CallError::Busy(_) => "busy",
            CallError::InvalidResponse(_) => "invalid_response",
        }
    }
}
