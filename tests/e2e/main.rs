//! The black-box suite: the real host binary, the real guests, a real HTTP client.
//!
//! Needs the guest components built first (`make guests`; `make test` does it).

mod harness;

mod bad_input;
mod concurrency;
mod config_cli;
mod guest_failures;
mod introspection;
mod lifecycle;
mod metadata;
mod revocation;
mod token;
