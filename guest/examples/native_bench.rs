//! The guest's OAuth logic called natively, with the in-memory test host: the baseline that
//! `tokenginx-host bench-guest` compares the Wasm call path against.
//!
//!   cargo run --release -p tokenginx-guest --features testing --example native_bench

use std::time::{Duration, Instant};
use tokenginx_guest::testing::{basic, body, form, TestHost, DEMO_ID, DEMO_SECRET};

const CALLS: usize = 100_000;

fn timed(mut call: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..CALLS)
        .map(|_| {
            let start = Instant::now();
            call();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[CALLS / 2], times[CALLS * 99 / 100])
}

fn main() {
    let host = TestHost::new();
    let auth = Some(basic(DEMO_ID, DEMO_SECRET));
    let issue = form(&[("grant_type", "client_credentials")], auth.clone());
    let token = body(&tokenginx_guest::token(&host, &issue))["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let introspect = form(&[("token", &token)], auth);
    for (name, (p50, p99)) in [
        (
            "token",
            timed(|| {
                std::hint::black_box(tokenginx_guest::token(&host, &issue));
            }),
        ),
        (
            "introspect",
            timed(|| {
                std::hint::black_box(tokenginx_guest::introspect(&host, &introspect));
            }),
        ),
    ] {
        println!(
            "native {name:<11} median {:>6.2} us   p99 {:>6.2} us   ({CALLS} calls)",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
}
