//! JWTs for the benchmark (`bench/run.sh`), one per line, each with its own `jti`, issued now
//! by one ES256 key:
//!
//! - `jwk`: that key's public JWK (`kid` `bench`), for a client's `jwks`;
//! - `dpop URL COUNT`: DPoP proofs for a POST to `URL` ("token, DPoP"), good for the 60 s a
//!   proof's `iat` is accepted;
//! - `assertion CLIENT AUD COUNT`: `private_key_jwt` assertions of `CLIENT` for `AUD`
//!   ("token, private_key_jwt"), good for 5 minutes.
//!
//!   cargo run --release -p tokenginx-guest --features testing --example bench_jwts -- ARGS

use std::io::Write as _;
use tokenginx_guest::testing::DpopKey;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let key = DpopKey::es256(42);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let count = |n: &str| n.parse::<u64>().expect("COUNT is a number");
    match args.as_slice() {
        ["jwk"] => {
            let mut jwk = key.jwk();
            jwk["kid"] = "bench".into();
            writeln!(out, "{jwk}").unwrap();
        }
        ["dpop", url, n] => lines(&mut out, count(n), |i| {
            key.proof("POST", url, now, &format!("bench-{now}-{i}"))
        }),
        ["assertion", client, aud, n] => lines(&mut out, count(n), |i| {
            let claims = serde_json::json!({"iss": client, "sub": client, "aud": aud,
                "jti": format!("bench-{now}-{i}"), "iat": now, "exp": now + 300});
            let header = serde_json::json!({"kid": "bench", "jwk": null});
            key.sign(header, claims)
        }),
        _ => {
            eprintln!("usage: bench_jwts jwk | dpop URL COUNT | assertion CLIENT AUD COUNT");
            std::process::exit(2);
        }
    }
}

/// Writes `line(0..n)`, one a line, made on every core: signing is the slow part (the
/// native P-256 is about 175 µs a signature), and a proof's `iat` must still be within its
/// 60 s when the run that uses it ends.
fn lines(out: &mut impl std::io::Write, n: u64, line: impl Fn(u64) -> String + Sync) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let chunk = n.div_ceil(threads);
    let parts: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let line = &line;
                scope.spawn(move || {
                    let mut part = String::new();
                    for i in t * chunk..((t + 1) * chunk).min(n) {
                        part.push_str(&line(i));
                        part.push('\n');
                    }
                    part
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for part in parts {
        out.write_all(part.as_bytes()).unwrap();
    }
}
