//! The HTTP side: accepting connections, routing, and turning requests into guest calls.

mod body;
mod form;
mod responses;
mod routes;
mod server;
mod timeouts;

pub use routes::App;
pub use server::{serve, signal};
pub use timeouts::Timeouts;
