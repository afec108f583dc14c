//! The black-box suite: the real host binary, the real guests, a real HTTP client.
//!
//! Needs the guest components built first (`make guests`; `make test` does it).
//!
//! The endpoint suite runs against the store named by `TOKENGINX_TEST_STORE` (`memory`,
//! `standalone` or `cluster`; `make test` runs all three); `redis_store` starts its own
//! Redis servers for the failure cases.

mod h2;
mod harness;
mod redis;
mod table_guest;

mod anonymous;
mod authorization_code;
mod clients;
mod config_cli;
mod endpoints;
mod guest_failures;
mod guest_swap;
mod https;
mod lifecycle;
mod operations;
mod redis_store;
mod refresh;
