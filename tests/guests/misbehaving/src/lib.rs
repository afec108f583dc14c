//! A guest that misbehaves on request, for the host's containment tests. Every endpoint reads
//! the form parameter `behave`:
//!
//! - `trap`: panics (an `unreachable` trap);
//! - `loop`: computes forever (stopped by the epoch deadline);
//! - `store-loop`: calls the store forever (stopped by the deadline on its return to Wasm);
//! - `alloc`: allocates without bound (stopped by the memory cap);
//! - `bad-header`: answers with a header value the host must refuse;
//! - `big-random`: asks the host for more randomness than one call may (the host traps it);
//! - `probe-sandbox`: reports what of the outside world it can see (env, args, files);
//! - `batch`: writes 50 keys (spread over many cluster slots), reads them back in one
//!   `get-many` and reports how many came back intact, and the TTL of one;
//! - `huge-value`: writes a 1 MiB value to the store and reports how the store answered;
//! - `remember`: keeps the parameter `secret` in a static and in a heap buffer, and answers
//!   what an earlier request left in them (to show that nothing survives a request);
//! - `stack`: looks for the parameter `probe` (an earlier request's secret) in the shadow
//!   stack below its frame, then leaves `secret` in a deeper frame and looks for that too,
//!   which proves the search finds what a call leaves there;
//! - anything else: answers 200 `{"ok":true}`, proving the host still serves.
//!
//! It is built against `wit/oauth.wit` here: the contract frozen as it was at 0.1.0, so the
//! containment suite also shows that a guest built against an older 0.1.x contract loads and
//! runs unchanged on this host.

wit_bindgen::generate!({ path: "wit", world: "guest" });

use exports::tokenginx::oauth::handler::{Guest, GuestInfo, Request, Response};
use tokenginx::oauth::{random, store};

struct Misbehaving;
export!(Misbehaving);

/// What `remember` leaves behind: a static, and a pointer to a heap allocation it leaks.
static LEFT_BEHIND: std::sync::Mutex<Option<(String, usize)>> = std::sync::Mutex::new(None);

/// Reads what an earlier `remember` in this instance left, then leaves `secret` in turn.
fn remember(req: &Request) -> Response {
    let secret = req
        .params
        .iter()
        .find(|(name, _)| name == "secret")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let mut slot = LEFT_BEHIND.lock().unwrap();
    let found = slot.take().map(|(kept, addr)| {
        // SAFETY: `addr` points at a leaked `String` of this same instance, if any.
        let leaked = unsafe { &*(addr as *const String) };
        format!("{kept}/{leaked}")
    });
    let leaked: &'static mut String = Box::leak(Box::new(secret.clone()));
    *slot = Some((secret, leaked as *mut String as usize));
    ok(&format!(
        r#"{{"found":{}}}"#,
        found.map_or("null".to_owned(), |f| format!("{f:?}"))
    ))
}

/// Writes `secret` into a stack buffer of a frame of its own, which ends on return.
#[inline(never)]
fn leave_on_stack(secret: &[u8]) {
    let mut buffer = [0u8; 256];
    let n = secret.len().min(buffer.len());
    buffer[..n].copy_from_slice(&secret[..n]);
    // Its address escapes: the buffer lives in linear memory, in the shadow stack.
    std::hint::black_box(&mut buffer);
}

/// Whether `needle` is in the 64 KiB of linear memory below this frame: where the frames of
/// calls made from here (or of an earlier call at this depth) were.
#[inline(never)]
fn on_stack_below(needle: &[u8]) -> bool {
    if needle.is_empty() {
        return false;
    }
    let marker = 0u8;
    let top = std::hint::black_box(&marker) as *const u8 as usize;
    let low = top.saturating_sub(64 * 1024);
    (low..top.saturating_sub(needle.len())).any(|at| {
        // SAFETY: linear memory below the stack pointer is mapped and readable; the bytes
        // are read, never written.
        needle
            .iter()
            .enumerate()
            .all(|(i, b)| unsafe { std::ptr::read_volatile((at + i) as *const u8) } == *b)
    })
}

fn stack(req: &Request) -> Response {
    let param = |name: &str| {
        req.params
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    // First thing, before anything of this call's own could land below this frame.
    let found_probe = on_stack_below(param("probe").as_bytes());
    leave_on_stack(param("secret").as_bytes());
    // The control: the same lookups as between one request's frame and the next's search,
    // then the same search, for what this call left.
    let found_own = on_stack_below(std::hint::black_box(param("secret")).as_bytes());
    ok(&format!(
        r#"{{"found_probe":{found_probe},"found_own":{found_own}}}"#
    ))
}

fn act(req: &Request) -> Response {
    let behave = req
        .params
        .iter()
        .find(|(name, _)| name == "behave")
        .map(|(_, value)| value.as_str())
        .unwrap_or("ok");
    match behave {
        "trap" => panic!("asked to trap"),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "store-loop" => loop {
            let _ = std::hint::black_box(store::get("k"));
        },
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "big-random" => {
            let bytes = random::bytes(1 << 20);
            ok(&format!(r#"{{"random":{}}}"#, bytes.len()))
        }
        "probe-sandbox" => ok(&format!(
            r#"{{"env":{},"args":{},"root_listing":{},"read_file":{}}}"#,
            std::env::vars_os().count(),
            std::env::args_os().count(),
            std::fs::read_dir("/").is_ok(),
            std::fs::read("/etc/passwd").is_ok(),
        )),
        "batch" => {
            let keys: Vec<String> = (0..50).map(|i| format!("test:batch:{i}")).collect();
            for key in &keys {
                store::set(key, key.as_bytes(), 60_000).expect("set");
            }
            let values = store::get_many(&keys).expect("get-many");
            let intact = keys
                .iter()
                .zip(&values)
                .filter(|(k, v)| v.as_deref() == Some(k.as_bytes()))
                .count();
            let ttl = store::ttl(&keys[0]).expect("ttl").unwrap_or(0);
            let missing = store::get_many(&["test:batch:absent".to_string()]).expect("get-many");
            ok(&format!(
                r#"{{"intact":{intact},"ttl_ok":{},"absent":{}}}"#,
                ttl > 50_000 && ttl <= 60_000,
                missing == vec![None]
            ))
        }
        "remember" => remember(req),
        "stack" => stack(req),
        "huge-value" => {
            let answer = match store::set("test:huge", &vec![7u8; 1 << 20], 60_000) {
                Ok(()) => "stored".to_owned(),
                Err(store::StoreError::Rejected(why)) => format!("rejected: {why}"),
                Err(store::StoreError::Unavailable(why)) => format!("unavailable: {why}"),
            };
            ok(&format!(r#"{{"store":{answer:?}}}"#))
        }
        "bad-header" => Response {
            status: 200,
            headers: vec![("X-Bad".into(), "line\r\nInjected: yes".into())],
            body: String::new(),
        },
        _ => ok(r#"{"ok":true}"#),
    }
}

fn ok(body: &str) -> Response {
    Response {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into(),
    }
}

impl Guest for Misbehaving {
    fn info() -> GuestInfo {
        GuestInfo {
            name: "misbehaving-test-guest".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
    fn token(req: Request) -> Response {
        act(&req)
    }
    fn introspect(req: Request) -> Response {
        act(&req)
    }
    fn revoke(req: Request) -> Response {
        act(&req)
    }
    fn metadata() -> Response {
        act(&Request {
            params: Vec::new(),
            authorization: None,
            client_ip: String::new(),
        })
    }
}
