//! `tokenginx-host test-guest`: the black-box endpoint suite, inside the binary, for any
//! guest. The binary starts the service in its own process on a loopback port, with the
//! kit's config ([`config_text`]: its test clients and the guest under test); the kit drives
//! it over HTTP and prints each case with what was expected and what came back.
//!
//! The cases are the rows of `docs/behaviour.md`, by the same names: a difference between
//! the table, the default guest and this suite is a bug in one of them. Each case names its
//! source: a MUST or a SHOULD of an RFC, or this service's own profile (a convention the
//! RFCs leave open: sorted scopes, a challenge only for Basic, a cacheable metadata
//! document, ...). Judged by the RFCs alone ([`Judge::Rfc`]), a guest that differs from the
//! profile passes, and the difference is printed as such.

pub mod bench;
mod cases;
mod http;

use http::Reply;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

/// What a case finds: nothing wrong, or what was expected and what came back.
type Outcome = Result<(), String>;

/// One row of the behaviour table, as a test.
struct Case {
    endpoint: &'static str,
    source: Source,
    name: &'static str,
    run: fn(Kit) -> futures_util::future::BoxFuture<'static, Outcome>,
}

/// Where the behaviour a case checks comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// A MUST (or MUST NOT, REQUIRED) of an RFC: the clause.
    Must(&'static str),
    /// A SHOULD (or RECOMMENDED) of an RFC.
    Should(&'static str),
    /// This service's own convention where the RFCs leave a choice.
    Profile,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Must(clause) => write!(f, "MUST, {clause}"),
            Source::Should(clause) => write!(f, "SHOULD, {clause}"),
            Source::Profile => write!(f, "profile"),
        }
    }
}

/// What a failed case costs the guest under test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Judge {
    /// Every case counts: the service's whole behaviour (the default).
    All,
    /// Only the RFCs' MUSTs and SHOULDs count; a profile case that fails is printed as a
    /// difference from this service's conventions.
    Rfc,
}

impl std::str::FromStr for Judge {
    type Err = String;
    fn from_str(s: &str) -> Result<Judge, String> {
        match s {
            "all" => Ok(Judge::All),
            "rfc" => Ok(Judge::Rfc),
            other => Err(format!("--judge {other:?}: expected all or rfc")),
        }
    }
}

/// The service under test, as the binary started it.
pub struct Service {
    /// Its public listener.
    pub addr: SocketAddr,
    /// The guest's `name@version`.
    pub guest: String,
}

/// The test clients (see [`config_text`]). The rate-limited one gets a fresh id a run
/// ([`Kit::limited`]), so a run on the same Redis never finds its budget spent by the run
/// before.
const DEMO: (&str, &str) = ("demo", "demo-secret-0123456789");
const OTHER: (&str, &str) = ("other", "other-secret-0123456789");
/// An id and a secret that need RFC 6749 section 2.3.1's form-encoding in Basic.
const ODD: (&str, &str) = ("odd id:+%", "s\u{e9}cret & more+more:");
const SHORT_LIVED: (&str, &str) = ("short-lived", "short-lived-secret-0123");
/// Registered without grant types: it may introspect and revoke, not ask for tokens.
const RESOURCE_SERVER: (&str, &str) = ("resource-server", "resource-server-secret-0123");
const LIMITED_SECRET: &str = "limited-secret-0123456789";
const ISSUER: &str = "http://issuer.test";

/// A handle on the service under test, for the cases.
#[derive(Clone)]
struct Kit {
    addr: SocketAddr,
    /// The rate-limited client's id for this run.
    limited: &'static str,
}

impl Kit {
    async fn get(&self, path: &str) -> Result<Reply, String> {
        http::send(self.addr, "GET", path, &[], String::new()).await
    }

    /// POSTs a form, with client_secret_basic credentials when `basic` is given.
    async fn post(
        &self,
        path: &str,
        params: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Reply, String> {
        let mut headers = vec![(
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        )];
        if let Some((id, secret)) = basic {
            headers.push(("authorization", http::basic(id, secret)));
        }
        http::send(self.addr, "POST", path, &headers, http::form(params)).await
    }
}

/// Where `--store` keeps the kit's tokens.
pub enum Store {
    Memory,
    /// `redis://[user:password@]host:port`
    Redis(String),
    /// `redis-cluster://host:port,host:port,...`
    Cluster(String),
}

impl std::str::FromStr for Store {
    type Err = String;
    fn from_str(s: &str) -> Result<Store, String> {
        match s {
            "memory" => Ok(Store::Memory),
            s if s.starts_with("redis://") => Ok(Store::Redis(s.to_owned())),
            s if s.starts_with("redis-cluster://") => Ok(Store::Cluster(s.to_owned())),
            other => Err(format!(
                "--store {other:?}: expected memory, redis://[user:password@]host:port or \
                 redis-cluster://host:port,host:port,..."
            )),
        }
    }
}

impl Store {
    /// The config's `tokenginx` section.
    fn section(&self) -> String {
        let (mode, rest) = match self {
            Store::Memory => return "tokenginx:\n  mode: memory\n".into(),
            Store::Redis(url) => ("standalone", &url["redis://".len()..]),
            Store::Cluster(url) => ("cluster", &url["redis-cluster://".len()..]),
        };
        let (credentials, addrs) = match rest.rsplit_once('@') {
            Some((credentials, addrs)) => (Some(credentials), addrs),
            None => (None, rest),
        };
        let mut section = format!("tokenginx:\n  mode: {mode}\n  addrs: [");
        section += &addrs
            .trim_end_matches('/')
            .split(',')
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        section += "]\n";
        if let Some(credentials) = credentials {
            let (user, password) = credentials.split_once(':').unwrap_or(("", credentials));
            if !user.is_empty() {
                section += &format!("  username: {user:?}\n");
            }
            section += &format!("  password: {password:?}\n");
        }
        section
    }

    fn name(&self) -> &str {
        match self {
            Store::Memory => "memory",
            Store::Redis(_) => "standalone Redis",
            Store::Cluster(_) => "Redis Cluster",
        }
    }
}

/// The service's config for the kit: loopback, any free port, the guest section's defaults,
/// no metrics, and the test clients.
pub fn config_text(guest: &Path, store: &Store, limited: &str) -> String {
    let (demo, demo_secret) = DEMO;
    let (other, other_secret) = OTHER;
    let (odd, odd_secret) = ODD;
    let (short, short_secret) = SHORT_LIVED;
    let (resource, resource_secret) = RESOURCE_SERVER;
    format!(
        r#"{store}server:
  host: 127.0.0.1
  port: 0
guest:
  path: {guest:?}
metrics:
  enabled: false
oauth:
  issuer: {ISSUER}
  rate_limit: {{requests: 1000000, per: 1s, burst: 1000000}}
  clients:
    - {{client_id: {demo}, client_secret: {demo_secret}, scopes: [read, write], default_scopes: [read]}}
    - {{client_id: {other}, client_secret: {other_secret}, scopes: [read], default_scopes: [read]}}
    - {{client_id: "{odd}", client_secret: "{odd_secret}", scopes: [read, admin]}}
    - {{client_id: {short}, client_secret: {short_secret}, scopes: [read], default_scopes: [read], access_token_ttl: 1s}}
    - {{client_id: {resource}, client_secret: {resource_secret}, scopes: [read], grant_types: []}}
    - {{client_id: {limited}, client_secret: {LIMITED_SECRET}, scopes: [read], default_scopes: [read], rate_limit: {{requests: 1, per: 1h, burst: 2}}}}
"#,
        store = store.section(),
        guest = guest.display().to_string(),
    )
}

/// Runs every case against `guest`, served by what `start` starts from the config text it is
/// given; true when every case that counts under `judge` passed. Prints as it goes.
pub async fn run<F, S>(
    guest: &Path,
    store: &Store,
    only: Option<&str>,
    judge: Judge,
    start: F,
) -> anyhow::Result<bool>
where
    F: FnOnce(String) -> S,
    S: Future<Output = anyhow::Result<Service>>,
{
    let guest =
        std::fs::canonicalize(guest).map_err(|e| anyhow::anyhow!("{}: {e}", guest.display()))?;
    let limited: &'static str =
        Box::leak(format!("limited-{}", hex::encode(random_id())).into_boxed_str());
    let service = start(config_text(&guest, store, limited)).await?;
    println!(
        "test-guest: {} ({}), {} store, on {}{}",
        service.guest,
        guest.display(),
        store.name(),
        service.addr,
        match judge {
            Judge::All => "",
            Judge::Rfc => ", judged by the RFCs alone",
        }
    );
    let kit = Kit {
        addr: service.addr,
        limited,
    };
    let (mut passed, mut failed, mut differs) = (0, 0, 0);
    let mut endpoint = "";
    for case in cases::CASES {
        if only.is_some_and(|only| !case.name.contains(only) && !case.endpoint.contains(only)) {
            continue;
        }
        if case.endpoint != endpoint {
            endpoint = case.endpoint;
            println!("{endpoint}");
        }
        let start = Instant::now();
        let outcome = (case.run)(kit.clone()).await;
        let verdict = match (&outcome, judge, case.source) {
            (Ok(()), ..) => {
                passed += 1;
                "ok    "
            }
            (Err(_), Judge::Rfc, Source::Profile) => {
                differs += 1;
                "DIFF  "
            }
            (Err(_), ..) => {
                failed += 1;
                "FAIL  "
            }
        };
        println!(
            "  {verdict}{} [{}] ({} ms)",
            case.name,
            case.source,
            start.elapsed().as_millis()
        );
        if let Err(why) = outcome {
            for line in why.lines() {
                println!("        {line}");
            }
        }
    }
    let differs = match differs {
        0 => String::new(),
        n => format!(", {n} differ from this service's profile"),
    };
    println!(
        "test-guest: {passed} passed, {failed} failed{differs} ({}, {} store)",
        service.guest,
        store.name()
    );
    Ok(failed == 0)
}

/// Fails with what was expected and what came back unless `reply` has `status`.
fn status(reply: &Reply, status: u16) -> Outcome {
    if reply.status == status {
        return Ok(());
    }
    Err(format!("expected: HTTP {status}\ngot:      {reply}"))
}

/// An OAuth error answer (RFC 6749 section 5.2): `status`, JSON with `error` as given.
fn oauth_error(reply: &Reply, code: u16, error: &str) -> Outcome {
    let got = reply.json().ok();
    let got = got.as_ref().and_then(|body| body["error"].as_str());
    if reply.status == code && got == Some(error) {
        return Ok(());
    }
    Err(format!(
        "expected: HTTP {code} with {{\"error\": \"{error}\", ...}}\ngot:      {reply}"
    ))
}

/// Fails unless header `name` of `reply` is `expected` (`None`: absent).
fn header(reply: &Reply, name: &str, expected: Option<&str>) -> Outcome {
    if reply.header(name) == expected {
        return Ok(());
    }
    let expected = match expected {
        Some(value) => format!("header {name}: {value}"),
        None => format!("no {name} header"),
    };
    Err(format!("expected: {expected}\ngot:      {reply}"))
}

/// Fails unless `what` is `expected`, naming the reply it came from.
fn equal<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: T,
    expected: T,
    reply: &Reply,
) -> Outcome {
    if got == expected {
        return Ok(());
    }
    Err(format!(
        "expected: {what} = {expected:?}\ngot:      {what} = {got:?}, in {reply}"
    ))
}

/// Fails with `why` and the reply unless `ok`.
fn ensure(ok: bool, why: &str, reply: &Reply) -> Outcome {
    match ok {
        true => Ok(()),
        false => Err(format!("expected: {why}\ngot:      {reply}")),
    }
}

fn random_id() -> [u8; 6] {
    let mut bytes = [0; 6];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes
}
