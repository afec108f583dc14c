//! The Redis store when things go wrong: bad credentials at start, TLS with client
//! certificates, Redis going away and coming back, and a master failover. Each test starts
//! its own servers.

use crate::harness::*;
use crate::redis::{self, store_section, Certs, Cluster, PASSWORD};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `serve` with `config` expecting it to fail at start; returns its stderr.
fn start_error(config: &str) -> String {
    let file = scratch_dir().join("config.yaml");
    std::fs::write(&file, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokenginx-host"))
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "serve should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A config for the store `section`, with a guest deadline long enough to ride out retries.
fn redis_config(section: &str) -> String {
    config_with_store(&default_guest(), "", section).replace("deadline: 500ms", "deadline: 3s")
}

#[test]
fn a_wrong_password_is_refused_at_start_naming_the_node() {
    let server = redis::standalone();
    let addr = format!("127.0.0.1:{}", server.port);
    let section = store_section("standalone", std::slice::from_ref(&addr), None, "")
        .replace(PASSWORD, "not-the-password");
    let stderr = start_error(&redis_config(&section));
    assert!(
        stderr.contains(&format!("tokenginx.addrs[0] {addr}")),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("pass") || stderr.contains("auth"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_tls_cluster_with_client_certificates_serves_and_wrong_credentials_are_refused() {
    let certs = Certs::generate();
    let cluster = Cluster::start(Some(&certs));
    let good = store_section("cluster", &cluster.addrs(), Some(&certs), "");

    let host = Host::with_config(&redis_config(&good));
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    assert_eq!(host.introspect(&token).await["active"], true);
    drop(host);

    let first = &cluster.addrs()[0];
    let wrong_ca = good.replace(
        &certs.path("ca.pem").display().to_string(),
        &certs.path("other-ca.pem").display().to_string(),
    );
    let stderr = start_error(&redis_config(&wrong_ca));
    assert!(
        stderr.contains(&format!("tokenginx.addrs[0] {first}")),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    let client_cert_lines = format!(
        "    cert_file: {}\n    key_file: {}\n",
        certs.path("client.pem").display(),
        certs.path("client.key").display()
    );
    let no_client_cert = good.replace(&client_cert_lines, "");
    assert_ne!(no_client_cert, good);
    let stderr = start_error(&redis_config(&no_client_cert));
    assert!(
        stderr.contains(&format!("tokenginx.addrs[0] {first}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn redis_down_answers_503_fast_and_the_service_recovers_by_itself() {
    let mut server = redis::standalone();
    let section = store_section(
        "standalone",
        &[format!("127.0.0.1:{}", server.port)],
        None,
        "  pool_timeout: 1s\n",
    )
    .replace("read_timeout: 1s", "read_timeout: 500ms");
    let host = Host::with_config(&redis_config(&section));
    host.issue((DEMO_ID, DEMO_SECRET), None).await;
    let metrics = host.get("/metrics").await.body;
    assert!(
        metrics.contains("tokenginx_connection_pool_size 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tokenginx_connection_pool_idle 4"),
        "nothing in flight: {metrics}"
    );

    server.kill();
    let start = Instant::now();
    let reply = host.request_token((DEMO_ID, DEMO_SECRET), None).await;
    reply.assert_error(503, "temporarily_unavailable");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "503 after {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    assert_eq!(host.get("/health/ready").await.status, 503);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "readiness answered after {:?}",
        start.elapsed()
    );

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = host.request_token((DEMO_ID, DEMO_SECRET), None).await;
        if reply.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: {} {}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(host.get("/health/ready").await.status, 200);
}

#[tokio::test]
async fn with_wait_every_acknowledged_token_survives_a_master_failover() {
    let mut cluster = Cluster::start(None);
    let section = store_section(
        "cluster",
        &cluster.addrs(),
        None,
        "  wait_replicas: 1\n  wait_timeout: 1s\n  pool_timeout: 2s\n",
    );
    let host = Host::with_config(&redis_config(&section));
    let issue = || async { host.request_token((DEMO_ID, DEMO_SECRET), None).await };

    let mut acknowledged = Vec::new();
    for _ in 0..30 {
        let reply = issue().await;
        assert_eq!(reply.status, 200, "{}\nlog:\n{}", reply.body, host.log());
        acknowledged.push(reply.json()["access_token"].as_str().unwrap().to_owned());
    }

    // Kill a master; its replica takes over within the cluster node timeout (1 s).
    let victim = cluster.a_master();
    let heir = cluster.replica_of(victim);
    cluster.nodes[victim].kill();
    let killed = Instant::now();
    let mut refused = 0;
    let issue_recording = async |acknowledged: &mut Vec<String>, refused: &mut u32| {
        let reply = issue().await;
        match reply.status {
            200 => {
                acknowledged.push(reply.json()["access_token"].as_str().unwrap().to_owned());
                true
            }
            503 => {
                *refused += 1;
                false
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    };
    // Issue while the cluster fails over, until the replica is promoted.
    while !cluster.is_master(heir) {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no failover within 60 s"
        );
        issue_recording(&mut acknowledged, &mut refused).await;
    }
    let failed_over = killed.elapsed();
    cluster.wait_settled();
    // The old master comes back and rejoins as the new master's replica: with it, writes to
    // that shard can be acknowledged by a replica again.
    cluster.nodes[victim].restart();
    cluster.wait_settled();
    cluster.wait_replicas_attached();
    // The service serves again, without a restart: 30 consecutive tokens.
    let mut streak = 0;
    while streak < 30 {
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "no recovery within 90 s ({refused} refused)"
        );
        if issue_recording(&mut acknowledged, &mut refused).await {
            streak += 1;
        } else {
            streak = 0;
        }
    }
    let recovered = killed.elapsed();
    let mut inactive = 0;
    for token in &acknowledged {
        if host.introspect(token).await["active"] != true {
            inactive += 1;
        }
    }
    println!(
        "failover: {} tokens acknowledged and checked, {inactive} lost; {refused} requests \
         refused; failover settled {failed_over:?} after the kill, 30 consecutive successes \
         {recovered:?} after it",
        acknowledged.len()
    );
    assert_eq!(inactive, 0, "acknowledged tokens were lost in the failover");
}

/// The failure of issue 11: a revocation acknowledged before a replica had it came back
/// when that replica took over. Now a change waits for the replicas a token's issuance
/// waits for; a revocation they did not acknowledge answers 503, and the retry after the
/// failover revokes the token for good.
#[tokio::test]
async fn an_acknowledged_revocation_survives_a_master_failover() {
    let mut cluster = Cluster::start(None);
    let section = store_section(
        "cluster",
        &cluster.addrs(),
        None,
        "  wait_replicas: 1\n  wait_timeout: 500ms\n  pool_timeout: 2s\n",
    );
    let host = Host::with_config(&redis_config(&section));
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    let tag = sha256_hex(token.as_bytes());
    let master = cluster.master_of(&format!("oauth:access_token:{{{tag}}}"));
    let replica = cluster.replica_of(master);

    // The shard's replica stalls, and what follows stays in its master's memory.
    cluster.stall_replica(replica, master, &tag);
    let revoke = || async {
        host.post(
            "/api/v1/oauth/revoke",
            &[("token", &token)],
            Some((DEMO_ID, DEMO_SECRET)),
        )
        .await
    };
    let first = revoke().await;
    assert!(
        [200, 503].contains(&first.status),
        "{} {}",
        first.status,
        first.body
    );

    // The master dies; the stalled replica wakes and takes over with what it had.
    let killed = Instant::now();
    cluster.fail_over(master, replica).await;

    if first.status == 503 {
        // The client was told to retry; its retry goes through once the shard has a
        // replica again.
        let mut retry = revoke().await;
        while retry.status != 200 {
            assert_eq!(retry.status, 503, "{}", retry.body);
            assert!(
                killed.elapsed() < Duration::from_secs(90),
                "the retried revocation never succeeded"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            retry = revoke().await;
        }
    }
    assert_eq!(
        host.introspect(&token).await["active"],
        false,
        "the revocation answered {} and the token is active again after the failover",
        first.status
    );
}

/// `tokenginx.wait_aof`: each change waits for the master's append-only file (`WAITAOF`),
/// so what was acknowledged survives the crash of every node, not only a failover.
#[tokio::test]
async fn with_wait_aof_acknowledged_changes_survive_a_crash_of_the_server() {
    let mut server = redis::valkey(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let section = store_section("standalone", &[addr], None, "  wait_aof: true\n");
    let host = Host::with_config(&redis_config(&section));
    let mut kept = Vec::new();
    let mut revoked = Vec::new();
    for i in 0..20 {
        let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
        if i % 2 == 0 {
            let reply = host
                .post(
                    "/api/v1/oauth/revoke",
                    &[("token", &token)],
                    Some((DEMO_ID, DEMO_SECRET)),
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            revoked.push(token);
        } else {
            kept.push(token);
        }
    }
    // SIGKILL right after the last acknowledgement, then start from the append-only file.
    server.kill();
    server.restart();
    let restarted = Instant::now();
    while host.get("/health/ready").await.status != 200 {
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "no reconnect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for token in &kept {
        assert_eq!(host.introspect(token).await["active"], true);
    }
    for token in &revoked {
        assert_eq!(host.introspect(token).await["active"], false);
    }
}

#[test]
fn wait_aof_is_refused_at_start_where_the_server_cannot_serve_it() {
    // Debian's Redis 7.0 has no WAITAOF.
    let old = redis::standalone();
    let addr = format!("127.0.0.1:{}", old.port);
    let section = store_section(
        "standalone",
        std::slice::from_ref(&addr),
        None,
        "  wait_aof: true\n",
    );
    let stderr = start_error(&redis_config(&section));
    assert!(
        stderr.contains(&format!("tokenginx.wait_aof: {addr}"))
            && stderr.contains("no WAITAOF command"),
        "{stderr}"
    );
    // Valkey has it, but not without an append-only file.
    let no_aof = redis::valkey(&[]);
    let addr = format!("127.0.0.1:{}", no_aof.port);
    let section = store_section(
        "standalone",
        std::slice::from_ref(&addr),
        None,
        "  wait_aof: true\n",
    );
    let stderr = start_error(&redis_config(&section));
    assert!(
        stderr.contains(&format!("tokenginx.wait_aof: {addr}")) && stderr.contains("appendonly no"),
        "{stderr}"
    );
}

/// Calls waiting on a frozen store hold at most their budget of instances: the metadata
/// document, which needs no store, is still served while they wait.
#[tokio::test]
async fn a_frozen_store_does_not_queue_calls_that_do_not_use_it() {
    let server = redis::standalone();
    let addr = format!("127.0.0.1:{}", server.port);
    let section = store_section("standalone", &[addr], None, "");
    let config = redis_config(&section).replace("max_instances: 64", "max_instances: 8");
    let host = std::sync::Arc::new(Host::with_config(&config));
    host.issue((DEMO_ID, DEMO_SECRET), None).await;

    server.pause();
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stuck: Vec<_> = (0..32)
        .map(|_| {
            let (host, finished) = (host.clone(), finished.clone());
            tokio::spawn(async move {
                let reply = host.request_token((DEMO_ID, DEMO_SECRET), None).await;
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                reply.status
            })
        })
        .collect();
    // Wait until the store-bound calls hold every instance they may (7 of 8).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = host.get("/metrics").await.body;
        let active = metric(&metrics, "tokenginx_guest_instances_active", &[]);
        if active.is_some_and(|n| n >= 7.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the token calls never filled their budget"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metadata = host.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(metadata.status, 200, "{}", metadata.body);
    assert_eq!(
        finished.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "metadata was answered while every token call still waited on the store"
    );
    server.resume();
    for call in stuck {
        assert!([200, 503].contains(&call.await.unwrap()));
    }
}

/// Issue 14: refresh tokens rotated through a master failover. With `wait_replicas`, a
/// rotation is acknowledged only once a replica has it, so none is lost; a client whose
/// refresh answered 503 retries with the same token and, within the reuse grace, gets the
/// rotation that landed, or makes it if none did. Each grant keeps exactly one live refresh
/// token throughout.
#[tokio::test]
async fn refresh_tokens_rotated_through_a_master_failover_lose_no_acknowledged_rotation() {
    use crate::authorization_code::{
        code_for, flow_host_on, redeem, ADMIN_KEY, WEB_ID, WEB_SECRET,
    };
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
    let mut cluster = Cluster::start(None);
    let section = store_section(
        "cluster",
        &cluster.addrs(),
        None,
        // A short wait: refused rotations come back at once, and their retries read the
        // stalled master while it holds what its replica lacks.
        "  wait_replicas: 1\n  wait_timeout: 100ms\n  pool_timeout: 2s\n",
    );
    let (host, admin) = flow_host_on(
        redis_config(&section),
        "  refresh_token_reuse_grace: 1m\n",
        &format!("admin:\n  port: 0\n  api_key: {ADMIN_KEY}\n"),
    );
    const GRANTS: usize = 12;
    // Each grant's refresh tokens, in the order they were acknowledged.
    let mut chains = Vec::new();
    let mut access_tokens = Vec::new();
    for _ in 0..GRANTS {
        let code = code_for(&host, &admin, &["offline_access", "read"]).await;
        let reply = redeem(&host, &code).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let field = |name: &str| reply.json()[name].as_str().unwrap().to_owned();
        chains.push(vec![field("refresh_token")]);
        access_tokens.push(field("access_token"));
    }
    // The hash tag of the first grant (the digest of its access tokens' first part): its
    // records' shard is the one that fails over.
    let tag = sha256_hex(access_tokens[0].split_once('.').unwrap().0.as_bytes());
    let victim = cluster.master_of(&format!("oauth:grant:{{{tag}}}"));
    let heir = cluster.replica_of(victim);

    let stop = AtomicBool::new(false);
    let refused = AtomicU32::new(0);
    let storm = async |chain: &mut Vec<String>| {
        while !stop.load(Relaxed) {
            let token = chain.last().unwrap().clone();
            let reply = host
                .post(
                    "/api/v1/oauth/token",
                    &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                    Some((WEB_ID, WEB_SECRET)),
                )
                .await;
            match reply.status {
                200 => chain.push(reply.json()["refresh_token"].as_str().unwrap().to_owned()),
                503 => {
                    refused.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => panic!(
                    "refresh answered {other}: {}\nlog:\n{}",
                    reply.body,
                    host.log()
                ),
            }
        }
    };
    let conductor = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // As in the revocation's test above: the heir stalls, so what its master takes from
        // now on stays in the master's memory, then the master dies.
        cluster.stall_replica(heir, victim, &tag);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let killed = Instant::now();
        cluster.fail_over(victim, heir).await;
        // Storm on a while with the shard whole again.
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Relaxed);
        killed.elapsed()
    };
    let storms = futures_util::future::join_all(chains.iter_mut().map(storm));
    let (_, took) = tokio::join!(storms, conductor);

    let mut rotations = 0;
    for chain in &chains {
        rotations += chain.len() - 1;
        let (last, earlier) = chain.split_last().unwrap();
        assert_eq!(
            host.introspect(last).await["active"],
            true,
            "the last acknowledged rotation was lost"
        );
        for token in earlier {
            assert_eq!(
                host.introspect(token).await["active"],
                false,
                "two live refresh tokens in one grant"
            );
        }
    }
    let metrics = host.get("/metrics").await.body;
    let replayed = metric(
        &metrics,
        "tokenginx_refreshes_total",
        &[("result", "replayed")],
    );
    println!(
        "refresh storm through a failover: {GRANTS} grants, {rotations} rotations acknowledged \
         and checked, {} refreshes refused (503) and retried, {replayed:?} of the retries \
         answered with the rotation that had landed; the storm ran {took:?} after the kill",
        refused.load(Relaxed)
    );
    assert!(
        chains.iter().all(|c| c.len() > 5),
        "every grant rotated through the storm"
    );
}
