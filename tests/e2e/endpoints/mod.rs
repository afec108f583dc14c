//! The endpoint suite: what any guest must do, from outside, over HTTP. `make test` runs it
//! (the filter `endpoints::`) on the embedded store, standalone Redis and the cluster, and
//! against the Python guest; a guest author runs it the same way with `TOKENGINX_TEST_GUEST`.

mod bad_input;
mod concurrency;
mod introspection;
mod limits;
mod metadata;
mod revocation;
mod token;
