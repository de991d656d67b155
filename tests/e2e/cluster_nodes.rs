//! A Redis Cluster of the test's own (`redis-server --cluster-enabled yes`
//! on free loopback ports, joined by `redis-cli --cluster create`), used by
//! the e2e tests (through `support.rs`) and the benchmark suite
//! (`host/benches/suite`); it depends on nothing of either.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `ok` every 25 ms until it holds; panics naming `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A loopback port that is free, as is the cluster bus port 10,000 above it.
fn free_cluster_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port <= u16::MAX - 10_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// One node of a [`RedisCluster`].
pub struct ClusterNode {
    child: Option<Child>,
    pub port: u16,
}

impl ClusterNode {
    /// A connection to this node alone (no redirects followed).
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connecting to a cluster node")
    }

    /// `DBSIZE` of this node.
    pub fn dbsize(&self) -> u64 {
        redis::cmd("DBSIZE").query(&mut self.conn()).unwrap()
    }

    /// Whether the process is still running.
    pub fn alive(&self) -> bool {
        self.child.is_some()
    }
}

/// A Redis Cluster of our own: `masters` masters with `replicas_per_master`
/// replicas each, on free loopback ports, made by `redis-cli --cluster
/// create`, with a 1 s node timeout so a failover takes seconds. Every node
/// is killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
    dir: tempfile::TempDir,
}

/// How long a test cluster's nodes wait before taking a silent master for failed.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;

impl RedisCluster {
    /// Starts the nodes, joins them and waits until every node reports
    /// `cluster_state:ok`, knows every other and each replica has synced.
    pub fn start(masters: usize, replicas_per_master: usize) -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let count = masters * (1 + replicas_per_master);
        let mut cluster = RedisCluster {
            nodes: Vec::with_capacity(count),
            dir,
        };
        for _ in 0..count {
            let port = free_cluster_port();
            let node_dir = cluster.dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--cluster-enabled", "yes"])
                .args(["--cluster-node-timeout", &CLUSTER_NODE_TIMEOUT_MS.to_string()])
                .args(["--cluster-config-file", "nodes.conf", "--dir"])
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting redis-server (install it: apt-get install redis-server)");
            cluster.nodes.push(ClusterNode {
                child: Some(child),
                port,
            });
        }
        for node in &cluster.nodes {
            wait_for(
                &format!("cluster node {} to answer", node.port),
                Duration::from_secs(15),
                || {
                    redis::Client::open(format!("redis://127.0.0.1:{}/", node.port))
                        .unwrap()
                        .get_connection_with_timeout(Duration::from_millis(200))
                        .is_ok_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
                },
            );
        }
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", &replicas_per_master.to_string(), "--cluster-yes"])
            .output()
            .expect("running redis-cli --cluster create (apt-get install redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_ok();
        cluster
    }

    /// Waits until every live node reports `cluster_state:ok` and knows every
    /// node, and every live replica's link to its master is up.
    pub fn wait_ok(&self) {
        let count = self.nodes.len();
        wait_for("the cluster to be ok on every node", Duration::from_secs(60), || {
            self.nodes.iter().filter(|n| n.alive()).all(|node| {
                let mut conn = node.conn();
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap();
                let replication: String = redis::cmd("INFO").arg("replication").query(&mut conn).unwrap();
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{count}"))
                    && (replication.contains("role:master") || replication.contains("master_link_status:up"))
            })
        });
    }

    /// The seed URLs, every node's (`redis://127.0.0.1:PORT`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// `kind = "redis-cluster"` and its `urls`, for a `[backend]` table.
    pub fn backend_toml(&self) -> String {
        format!("kind = \"redis-cluster\"\nurls = {:?}", self.urls())
    }

    /// A cluster client's connection (redirects followed), for assertions.
    pub fn conn(&self) -> redis::cluster::ClusterConnection {
        let live: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.alive())
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect();
        redis::cluster::ClusterClient::builder(live)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
            .get_connection()
            .expect("connecting to the test cluster")
    }

    /// The node on `port`.
    pub fn node(&self, port: u16) -> &ClusterNode {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }

    /// The ports of the live masters, as a live node sees them.
    pub fn master_ports(&self) -> Vec<u16> {
        let node = self.nodes.iter().find(|n| n.alive()).expect("a live node");
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut node.conn()).unwrap();
        let mut ports: Vec<u16> = nodes
            .lines()
            .filter(|l| {
                let flags = l.split(' ').nth(2).unwrap_or("");
                flags.contains("master") && !flags.contains("fail")
            })
            .filter_map(|l| l.split(' ').nth(1)?.split(['@', ':']).nth(1)?.parse().ok())
            .collect();
        ports.sort();
        ports
    }

    /// The port of the master that owns `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let node = self.nodes.iter().find(|n| n.alive()).expect("a live node");
        let mut conn = node.conn();
        let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut conn).unwrap();
        let shards: Vec<(u16, u16, (String, u16))> = {
            let raw: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn).unwrap();
            let redis::Value::Array(ranges) = raw else {
                panic!("CLUSTER SLOTS: {raw:?}")
            };
            ranges
                .into_iter()
                .map(|r| {
                    let redis::Value::Array(r) = r else { panic!() };
                    let mut r = r.into_iter();
                    let start: u16 = redis::from_redis_value(r.next().unwrap()).unwrap();
                    let end: u16 = redis::from_redis_value(r.next().unwrap()).unwrap();
                    let redis::Value::Array(master) = r.next().unwrap() else {
                        panic!()
                    };
                    let mut master = master.into_iter();
                    let host: String = redis::from_redis_value(master.next().unwrap()).unwrap();
                    let port: u16 = redis::from_redis_value(master.next().unwrap()).unwrap();
                    (start, end, (host, port))
                })
                .collect()
        };
        shards
            .into_iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, (_, port))| port)
            .unwrap_or_else(|| panic!("no master owns slot {slot}"))
    }

    /// Kills the node on `port` (SIGKILL) and waits for it.
    /// Waits until the replica of master `port` holds at least the keys the
    /// master held when called.
    pub fn wait_replicated(&self, port: u16) {
        let master = self
            .nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node of this cluster");
        let held = master.dbsize();
        let replica = self
            .nodes
            .iter()
            .filter(|n| n.alive())
            .find(|n| {
                let info: String = redis::cmd("INFO").arg("replication").query(&mut n.conn()).unwrap();
                info.lines().any(|l| l.trim() == format!("master_port:{port}"))
            })
            .expect("master has a live replica");
        wait_for(
            &format!("the replica of {port} to hold its {held} keys"),
            Duration::from_secs(30),
            || replica.dbsize() >= held,
        );
    }

    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
