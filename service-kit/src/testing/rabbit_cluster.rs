//! A RabbitMQ cluster of a test's own: `n` `rabbitmq-server` nodes on this machine, joined with
//! `rabbitmqctl join_cluster`, killed and their directory removed on drop (also on panic).
//!
//! Each node has its own name (`t<i>-<pid>-<random>@localhost`), AMQP and distribution ports
//! (free ones: RabbitMQ cannot be given port 0), data and log directories, an empty plugin list
//! (no management), and its own config and env files, so that nothing of the machine's RabbitMQ
//! (`/etc/rabbitmq`, port 5672, node `rabbit@localhost`) is read or touched. All share one Erlang
//! cookie, in a `HOME` of their own that `rabbitmqctl` is given too.
//!
//! The scripts are run from RabbitMQ's own `sbin` directory, not through Debian's
//! `/usr/sbin` wrappers: those switch to the `rabbitmq` user when run as root, and lose `HOME`
//! (the cookie) on the way. `TEST_RABBITMQ_SBIN` names that directory when it is elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{ChildServer, ScratchDir};
use super::{env_or, eventually, free_port};
use crate::wiring;

/// The directory holding `rabbitmq-server` and `rabbitmqctl` (default: the installed
/// `/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin`).
pub const TEST_RABBITMQ_SBIN: &str = "TEST_RABBITMQ_SBIN";

/// How long a node may take to start (three starting at once on two cores take ~10 s).
const START_PATIENCE: Duration = Duration::from_secs(90);
/// Bound on one `rabbitmqctl` command.
const CTL_TIMEOUT_SECS: &str = "60";

/// One node: where it lives and, while it runs, its process.
struct Node {
    /// `t<i>-...@localhost`.
    name: String,
    amqp_port: u16,
    dist_port: u16,
    /// Its data, logs, config; inside the cluster's scratch directory.
    dir: PathBuf,
    /// `None` while stopped.
    server: Option<ChildServer>,
}

/// A running cluster; see the module doc.
pub struct RabbitCluster {
    /// Dropped first: every node killed before their directory goes.
    nodes: Vec<Node>,
    /// `sbin` of the RabbitMQ installation.
    sbin: PathBuf,
    /// `HOME` of every node and every `rabbitmqctl`: holds the shared cookie.
    root: ScratchDir,
}

impl RabbitCluster {
    /// Starts `size` nodes at once and joins nodes 1.. to node 0; returns once every node runs
    /// in the cluster. Panics (showing the nodes' output) if a node does not start.
    pub async fn start(size: usize) -> Self {
        assert!(size >= 1, "a cluster has at least one node");
        let root = ScratchDir::new("rabbit-cluster");
        std::fs::write(root.path().join(".erlang.cookie"), uuid::Uuid::new_v4().simple().to_string())
            .expect("write the Erlang cookie");
        set_mode(&root.path().join(".erlang.cookie"), 0o400);
        let tag = format!("{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let nodes = (0..size)
            .map(|i| {
                let dir = root.path().join(format!("node{i}"));
                std::fs::create_dir_all(&dir).expect("create a node directory");
                Node {
                    name: format!("t{i}-{tag}@localhost"),
                    amqp_port: free_port(),
                    dist_port: free_port(),
                    dir,
                    server: None,
                }
            })
            .collect();
        let mut cluster = Self { nodes, sbin: sbin(), root };
        for node in &cluster.nodes {
            cluster.write_config(node);
        }
        let starts: Vec<_> = cluster.nodes.iter().map(|node| cluster.spawn(node)).collect();
        let servers = futures::future::join_all(starts).await;
        for (node, server) in cluster.nodes.iter_mut().zip(servers) {
            node.server = Some(server);
        }
        let first = cluster.nodes[0].name.clone();
        for i in 1..size {
            cluster.ctl(i, &["stop_app"]).await;
            cluster.ctl(i, &["join_cluster", &first]).await;
            cluster.ctl(i, &["start_app"]).await;
        }
        cluster.wait_until_all_run().await;
        cluster
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f` of each node, in order.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.url(i)).collect()
    }

    /// The AMQP URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("amqp://guest:guest@{}:{}/%2f", wiring::LOCAL_HOST, self.nodes[i].amqp_port)
    }

    /// The Erlang name of node `i`.
    pub fn node_name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Stops node `i` cleanly (`rabbitmqctl stop`), as an operator or a rolling restart would;
    /// returns once its process is gone.
    pub async fn stop_node(&mut self, i: usize) {
        self.ctl(i, &["stop"]).await;
        if let Some(server) = self.nodes[i].server.take() {
            server.kill(); // The node has halted; this reaps the script and anything it left.
        }
    }

    /// Kills node `i` (SIGKILL), as a crash or a lost machine would.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(server) = self.nodes[i].server.take() {
            server.kill();
        }
    }

    /// Starts node `i` again on its data: it rejoins the cluster. Returns once it runs there.
    pub async fn start_node(&mut self, i: usize) {
        assert!(self.nodes[i].server.is_none(), "node {i} is running");
        let server = self.spawn(&self.nodes[i]).await;
        self.nodes[i].server = Some(server);
        self.wait_until_all_run().await;
    }

    /// The nodes (by index) that hold a client connection named `connection_name`, as a running
    /// node lists the cluster's connections.
    pub async fn nodes_of_connection(&self, connection_name: &str) -> Vec<usize> {
        let asked = (0..self.nodes.len()).find(|&i| self.nodes[i].server.is_some()).expect("a running node");
        let listed =
            self.ctl(asked, &["list_connections", "pid", "client_properties", "--quiet", "--no-table-headers"]).await;
        let wanted = format!("{{\"connection_name\",\"{connection_name}\"}}");
        listed
            .lines()
            .filter(|line| line.contains(&wanted))
            .filter_map(|line| line.split('\t').next())
            // A connection's pid names its node: `<t0-...@localhost.1234.5678.0>`.
            .filter_map(|pid| self.nodes.iter().position(|n| pid.starts_with(&format!("<{}.", n.name))))
            .collect()
    }

    /// Runs `rabbitmqctl -n <node i> <args>` and returns its standard output; panics if it fails.
    pub async fn ctl(&self, i: usize, args: &[&str]) -> String {
        let mut command = self.command("rabbitmqctl");
        command.args(["-n", &self.nodes[i].name, "--timeout", CTL_TIMEOUT_SECS]).args(args);
        let what = format!("rabbitmqctl -n {} {}", self.nodes[i].name, args.join(" "));
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the rabbitmqctl task")
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        assert!(
            output.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A command of RabbitMQ's `sbin` with the cluster's `HOME` and an env file of its own.
    fn command(&self, script: &str) -> Command {
        let mut command = Command::new(self.sbin.join(script));
        command
            .env("HOME", self.root.path())
            .env("RABBITMQ_CONF_ENV_FILE", self.root.path().join("rabbitmq-env.conf"))
            .current_dir(self.root.path());
        command
    }

    fn write_config(&self, node: &Node) {
        let write = |name: &str, text: String| {
            std::fs::write(node.dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
        };
        write("rabbitmq.conf", format!("listeners.tcp.1 = {}:{}\n", wiring::LOCAL_HOST, node.amqp_port));
        write("enabled_plugins", "[].\n".into());
        // Empty: the machine's /etc/rabbitmq/rabbitmq-env.conf would name the node rabbit@localhost.
        std::fs::write(self.root.path().join("rabbitmq-env.conf"), "").expect("write rabbitmq-env.conf");
    }

    /// Starts `node`'s server; resolves once its AMQP port accepts connections.
    async fn spawn(&self, node: &Node) -> ChildServer {
        let dir = &node.dir;
        let mut command = self.command("rabbitmq-server");
        command
            .env("RABBITMQ_NODENAME", &node.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", wiring::LOCAL_HOST)
            .env("RABBITMQ_NODE_PORT", node.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", node.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", dir.join("plugins-expand"))
            .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-kernel inet_dist_use_interface {127,0,0,1}");
        ChildServer::start(&format!("RabbitMQ node {}", node.name), command, &[node.amqp_port], START_PATIENCE).await
    }

    /// Waits until node 0 (or the first running node) sees every running node in the cluster.
    async fn wait_until_all_run(&self) {
        let running: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].server.is_some()).collect();
        let Some(&asked) = running.first() else { return };
        let started = Instant::now();
        eventually("every node running in the cluster", START_PATIENCE, || async {
            let status = self.ctl(asked, &["cluster_status", "--formatter", "json"]).await;
            running.iter().all(|&i| running_in(&status, &self.nodes[i].name)).then_some(())
        })
        .await;
        tracing::debug!(elapsed = ?started.elapsed(), "cluster running");
    }
}

/// Whether `cluster_status --formatter json` lists `node` among the running nodes.
fn running_in(status: &str, node: &str) -> bool {
    let Ok(status) = serde_json::from_str::<serde_json::Value>(status) else { return false };
    status["running_nodes"].as_array().is_some_and(|nodes| nodes.iter().any(|n| n.as_str() == Some(node)))
}

/// `TEST_RABBITMQ_SBIN`, else the installed version's `sbin`.
fn sbin() -> PathBuf {
    let configured = env_or(TEST_RABBITMQ_SBIN, "");
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    let lib = Path::new("/usr/lib/rabbitmq/lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(lib)
        .unwrap_or_else(|e| panic!("no RabbitMQ under {} ({e}): set {TEST_RABBITMQ_SBIN}", lib.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("sbin"))
        .filter(|sbin| sbin.join("rabbitmq-server").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("no rabbitmq_server-*/sbin under {}: set {TEST_RABBITMQ_SBIN}", lib.display()))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("set the cookie's mode");
}
