//! The endpoint suite: what any guest must do, from outside, over HTTP. Its behaviour cases
//! are `tokenginx-host test-guest` (the rows of docs/behaviour.md, inside the binary); the
//! files here hold what needs the full harness. `make test` runs it (the filter
//! `endpoints::`) on the embedded store, standalone Redis and the cluster.

mod bad_input;
mod concurrency;
mod kit;
mod limits;
