//! Swapping guests while serving, and loading them: SIGHUP reloads `guest.path` without a
//! lost request; a guest that does not load or fit the contract is refused while the old
//! one serves on; repeated failures roll back; compiled guests are cached and precompiled.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const RELOAD_WAIT: Duration = Duration::from_secs(30);

/// The default guest with a custom section appended: the same code under another SHA-256.
fn variant_of_default(tag: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(default_guest()).unwrap();
    let name = b"tokenginx-test-variant";
    let mut payload = vec![name.len() as u8];
    payload.extend(name);
    payload.extend(tag.as_bytes());
    bytes.push(0); // custom section
    bytes.push(payload.len() as u8); // LEB128, < 128
    bytes.extend(payload);
    bytes
}

/// Replaces the file at `path` the way a deployment would: a new file renamed over it.
fn install(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A host serving a copy of the default guest at a path the test can replace.
fn swappable_host(extra_guest: &str) -> (Host, PathBuf) {
    let path = scratch_dir().join("guest.wasm");
    install(&path, &variant_of_default("0"));
    let text = config(&path, "").replace(
        "  max_instances: 64\n",
        &format!("  max_instances: 64\n{extra_guest}"),
    );
    (Host::with_config(&text), path)
}

fn reload(host: &Host) -> String {
    host.signal("HUP");
    host.wait_for_log("guest reload", RELOAD_WAIT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_swaps_the_guest_under_load_without_losing_a_request() {
    let (host, path) = swappable_host("");
    let host = Arc::new(host);
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (host, stop, served, failed) =
            (host.clone(), stop.clone(), served.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = host.request_token((DEMO_ID, DEMO_SECRET), None).await;
                let ok = reply.status == 200
                    && reply.json()["access_token"]
                        .as_str()
                        .is_some_and(|t| !t.is_empty());
                if ok {
                    served.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("lost during a swap: {} {}", reply.status, reply.body);
                }
            }
        }));
    }
    let mut last = Vec::new();
    for round in 1..=6 {
        last = variant_of_default(&round.to_string());
        install(&path, &last);
        let host = host.clone();
        let line = tokio::task::spawn_blocking(move || reload(&host))
            .await
            .unwrap();
        assert!(line.contains("guest reloaded"), "{line}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    println!("guest swaps under load: 6 swaps, {served} requests served, {failed} lost");
    assert_eq!(failed, 0);
    assert!(served > 0);
    let metrics = host.get("/metrics").await.body;
    assert_eq!(
        metric(
            &metrics,
            "tokenginx_guest_reloads_total",
            &[("result", "ok")]
        ),
        Some(6.0)
    );
    // Each reload's duration, so a swap's completion is visible without reading the log.
    let reload_duration = |part: &str| {
        metric(
            &metrics,
            &format!("tokenginx_guest_reload_duration_seconds_{part}"),
            &[("result", "ok")],
        )
    };
    assert_eq!(reload_duration("count"), Some(6.0), "{metrics}");
    assert!(reload_duration("sum").is_some_and(|s| s > 0.0), "{metrics}");
    let active = sha256_hex(&last);
    assert_eq!(
        metric(&metrics, "tokenginx_guest_info", &[("sha256", &active)]),
        Some(1.0),
        "the info gauge names the new guest only:\n{metrics}"
    );
    assert_eq!(
        metrics.matches("tokenginx_guest_info{").count(),
        1,
        "{metrics}"
    );
}

/// `bytes` with every `from` replaced by `to` (of the same length).
/// The version of the contract in `wit/oauth.wit`, which the default guest is built against.
fn contract_version() -> String {
    let wit = include_str!("../../wit/oauth.wit");
    let line = wit
        .lines()
        .find_map(|l| l.strip_prefix("package tokenginx:oauth@"))
        .expect("the package line");
    line.trim_end_matches(';').to_owned()
}

fn patched(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut out = bytes.to_vec();
    let mut found = 0;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            found += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(found > 0, "nothing to patch");
    out
}

#[tokio::test]
async fn a_guest_that_does_not_load_or_fit_is_refused_and_the_old_one_serves_on() {
    let (host, path) = swappable_host("");
    let default = std::fs::read(default_guest()).unwrap();
    let version = contract_version();
    assert_eq!(version.len(), "0.2.0".len(), "a patch keeps the length");
    let cases = [
        (
            b"\0asm garbage".to_vec(),
            "not a valid WebAssembly component".to_owned(),
        ),
        (
            patched(
                &default,
                &format!("tokenginx:oauth/store@{version}"),
                "tokenginx:oauth/store@0.3.0",
            ),
            format!(
                "tokenginx:oauth/store@0.3.0: version 0.3.0 is not compatible with this \
                 host's tokenginx:oauth@{version}"
            ),
        ),
        (
            patched(&default, "oauth/server@", "oauth/servex@"),
            format!("does not export tokenginx:oauth/server@{version}"),
        ),
    ];
    for (i, (bytes, why)) in cases.iter().enumerate() {
        install(&path, bytes);
        let line = reload(&host);
        assert!(line.contains("guest reload refused"), "{line}");
        assert!(line.contains(why.as_str()), "expected {why:?} in {line}");
        let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
        assert_eq!(host.introspect(&token).await["active"], true);
        let metrics = host.get("/metrics").await.body;
        assert_eq!(
            metric(
                &metrics,
                "tokenginx_guest_reloads_total",
                &[("result", "refused")]
            ),
            Some(i as f64 + 1.0)
        );
    }
}

/// The message of a JSON log line.
fn message(line: &str) -> String {
    let line: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    line["message"].as_str().expect("a message").to_owned()
}

#[tokio::test]
async fn a_guest_that_cannot_serve_a_configured_client_is_refused_naming_the_client_and_key() {
    // At start: the config may name any grant type; the guest says which it serves.
    let text = config(&default_guest(), "").replace(
        "      scopes: [read, write]\n",
        "      scopes: [read, write]\n      grant_types: [client_credentials, \"urn:ietf:params:oauth:grant-type:device_code\"]\n",
    );
    let stderr = start_error(&text);
    assert!(
        stderr.contains(
            "it refuses client \"demo\": oauth.clients[0].grant_types: \
             \"urn:ietf:params:oauth:grant-type:device_code\" is not a grant type this guest \
             serves (it serves: client_credentials, authorization_code, refresh_token)"
        ),
        "{stderr}"
    );

    // The rest of a registration's rules are the guest's too, each naming its key.
    for (from, to, expected) in [
        (
            format!("client_secret: {DEMO_SECRET}"),
            "client_secret: short".to_owned(),
            "oauth.clients[0].client_secret: must be at least 16 characters",
        ),
        (
            "      scopes: [read, write]\n      default_scopes: [read]\n".to_owned(),
            "      scopes: [read, write]\n      default_scopes: [admin]\n".to_owned(),
            "oauth.clients[0].default_scopes: \"admin\" is not in scopes",
        ),
        (
            "      scopes: [read, write]\n".to_owned(),
            "      scopes: [read, write]\n      redirect_uris: [\"http://app.example/cb\"]\n"
                .to_owned(),
            "oauth.clients[0].redirect_uris[0]: \"http://app.example/cb\" must be https",
        ),
        (
            "      scopes: [read, write]\n".to_owned(),
            "      scopes: [read, write]\n      token_endpoint_auth_method: none\n".to_owned(),
            "oauth.clients[0].client_secret: a public client",
        ),
    ] {
        let text = config(&default_guest(), "").replacen(&from, &to, 1);
        let stderr = start_error(&text);
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }

    // On reload: a guest of contract 0.1.0 serves client_credentials alone, so a client
    // that may refresh is refused, and the old guest serves on.
    let path = scratch_dir().join("guest.wasm");
    install(&path, &variant_of_default("0"));
    let text = config(&path, "").replace(
        "      scopes: [read, write]\n",
        "      scopes: [read, write]\n      grant_types: [client_credentials, refresh_token]\n",
    );
    let host = Host::with_config(&text);
    install(&path, &std::fs::read(misbehaving_guest()).unwrap());
    let line = message(&reload(&host));
    assert!(line.contains("guest reload refused"), "{line}");
    assert!(
        line.contains(
            "it refuses client \"demo\": oauth.clients[0].grant_types: \"refresh_token\" is \
             not a grant type this guest serves (it serves: client_credentials)"
        ),
        "{line}"
    );
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    assert_eq!(host.introspect(&token).await["active"], true);
}

#[tokio::test]
async fn repeated_failures_roll_back_to_the_previous_guest() {
    let (host, path) =
        swappable_host("  failure_policy:\n    consecutive: 3\n    action: roll_back\n");
    install(&path, &std::fs::read(misbehaving_guest()).unwrap());
    assert!(reload(&host).contains("guest reloaded"));
    for _ in 0..3 {
        host.post("/api/v1/oauth/token", &[("behave", "trap")], None)
            .await
            .assert_error(500, "server_error");
    }
    let line = host.wait_for_log("rolled back", Duration::from_secs(10));
    assert!(line.contains("misbehaving-test-guest"), "{line}");
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    assert_eq!(host.introspect(&token).await["active"], true);
    let metrics = host.get("/metrics").await.body;
    assert_eq!(
        metric(
            &metrics,
            "tokenginx_guest_reloads_total",
            &[("result", "rolled_back")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "tokenginx_guest_info",
            &[("name", "tokenginx-guest")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn fuel_stops_an_endless_loop() {
    let text = config(&misbehaving_guest(), "").replace(
        "  max_instances: 64\n",
        "  max_instances: 64\n  fuel: 10000000\n",
    );
    let host = Host::with_config(&text);
    host.post("/api/v1/oauth/token", &[("behave", "loop")], None)
        .await
        .assert_error(500, "server_error");
    let line = host.wait_for_log("used up its fuel", Duration::from_secs(10));
    assert!(line.contains("\"reason\":\"fuel\""), "{line}");
    let ok = host
        .post("/api/v1/oauth/token", &[("behave", "ok")], None)
        .await;
    assert_eq!(ok.status, 200);
}

/// How the guest was loaded, from its log line (written before "listening").
fn loaded_from(host: &Host) -> String {
    let log = host.log();
    let line = log
        .lines()
        .find(|l| l.contains("\"guest loaded\""))
        .unwrap_or_else(|| panic!("no guest loaded line in {log}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    line["source"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_restart_with_the_same_guest_loads_it_from_the_cache() {
    let cache = scratch_dir().join("cache");
    let text = config(&default_guest(), "").replace(
        "  max_instances: 64\n",
        &format!("  max_instances: 64\n  cache_dir: {}\n", cache.display()),
    );
    let first = Host::with_config(&text);
    assert_eq!(loaded_from(&first), "compiled, cached");
    drop(first);
    let second = Host::with_config(&text);
    assert_eq!(loaded_from(&second), "cache");
    let token = second.issue((DEMO_ID, DEMO_SECRET), None).await;
    assert_eq!(second.introspect(&token).await["active"], true);
    drop(second);

    // A cache others can write to could hold anyone's native code: it is not used.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let third = Host::with_config(&text);
    assert_eq!(loaded_from(&third), "compiled");
    assert!(
        third.log().contains("writable by group or others"),
        "{}",
        third.log()
    );
}

#[tokio::test]
async fn compile_guest_output_serves_like_the_component() {
    let dir = scratch_dir();
    let cwasm = dir.join("guest.cwasm");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenginx-host"))
        .arg("compile-guest")
        .arg(default_guest())
        .arg("-o")
        .arg(&cwasm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = Host::with_config(&config(&cwasm, ""));
    assert_eq!(loaded_from(&host), "precompiled");
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    assert_eq!(host.introspect(&token).await["active"], true);
    drop(host);

    // Precompiled code from a file anyone could have written is refused.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&cwasm, std::fs::Permissions::from_mode(0o666)).unwrap();
    let stderr = start_error(&config(&cwasm, ""));
    assert!(stderr.contains("writable by group or others"), "{stderr}");

    // And compile-guest refuses what is not a guest.
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm nope").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenginx-host"))
        .arg("compile-guest")
        .arg(&garbage)
        .arg("-o")
        .arg(dir.join("out.cwasm"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.join("out.cwasm").exists());
}

/// `guest.reuse` trades isolation for speed, on the operator's word only: an instance
/// serves up to its count of requests, then a fresh one takes over; without it, every
/// request gets a fresh instance. `tokenginx_guest_instances_started_total` tells which.
#[tokio::test]
async fn with_reuse_an_instance_serves_up_to_its_count_and_without_it_one_request() {
    let started = |metrics: &str| metric(metrics, "tokenginx_guest_instances_started_total", &[]);
    let reusing = config(&default_guest(), "").replace(
        "  max_instances: 64\n",
        "  max_instances: 64\n  reuse: {requests: 5, max_age: 1m}\n",
    );
    assert!(
        reusing.contains("reuse:"),
        "the harness's guest section changed"
    );
    for (text, calls, instances) in [(reusing, 12, 3.0), (config(&default_guest(), ""), 4, 4.0)] {
        let host = Host::with_config(&text);
        let mut tokens = Vec::new();
        for _ in 0..calls {
            let reply = host.request_token((DEMO_ID, DEMO_SECRET), None).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            tokens.push(reply.json()["access_token"].as_str().unwrap().to_owned());
        }
        let metrics = host.get("/metrics").await.body;
        assert_eq!(started(&metrics), Some(instances), "{calls} calls");
        // Each answer was its own: every token is different and active.
        tokens.sort();
        tokens.dedup();
        assert_eq!(tokens.len(), calls);
    }
}

/// What `guest.reuse` gives up, as the guide says: a later request on a reused instance
/// reads what an earlier one left in guest memory (the fresh default shows nothing:
/// `guest_failures::nothing_a_request_leaves_in_guest_memory_reaches_the_next`). A 0.1
/// guest is reused too, and an instance that trapped is not.
#[tokio::test]
async fn a_reused_instance_shows_a_request_what_the_last_one_left() {
    let text = config(&misbehaving_guest(), "").replace(
        "  max_instances: 64\n",
        "  max_instances: 64\n  reuse: {requests: 100, max_age: 1m}\n",
    );
    let host = Host::with_config(&text);
    let remember = |secret| crate::guest_failures::remember(&host, secret);
    assert_eq!(remember("first").await, serde_json::Value::Null);
    assert_eq!(remember("second").await, "first/first");
    let trapped = host
        .post("/api/v1/oauth/token", &[("behave", "trap")], None)
        .await;
    assert_eq!(trapped.status, 500);
    // The trap took the instance the secrets were in; a fresh one knows nothing.
    assert_eq!(remember("third").await, serde_json::Value::Null);
}
