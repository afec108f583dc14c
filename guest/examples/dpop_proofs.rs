//! DPoP proofs for the benchmark (`bench/run.sh`'s "token, DPoP" rows): one per line, each
//! with its own `jti`, issued now, by one ES256 key, for a POST to `URL`. They are good for
//! the 60 s a proof's `iat` is accepted.
//!
//!   cargo run --release -p tokenginx-guest --features testing --example dpop_proofs -- URL COUNT

use std::io::Write as _;
use tokenginx_guest::testing::DpopKey;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(count)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: dpop_proofs URL COUNT");
        std::process::exit(2);
    };
    let key = DpopKey::es256(42);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..count {
        writeln!(
            out,
            "{}",
            key.proof("POST", &url, now, &format!("bench-{now}-{i}"))
        )
        .unwrap();
    }
}
