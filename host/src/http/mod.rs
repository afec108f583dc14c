//! The HTTP side: accepting connections (HTTP/1.1 and HTTP/2, in the clear or over TLS),
//! routing, and turning requests into guest calls.

mod address_budget;
mod admin;
mod body;
mod client;
mod form;
mod guest_request;
mod responses;
mod routes;
mod server;
mod timeouts;
mod tls;

pub use address_budget::AddressBudget;
pub use routes::{App, Listener};
pub use server::{serve, signal};
pub use timeouts::Timeouts;
pub use tls::server_config as tls_config;
