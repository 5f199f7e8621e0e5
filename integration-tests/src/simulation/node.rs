//! A node in this process: the real store, actors, projections and HTTP server on a thread of
//! their own, over the simulation's faulty disk; "crashing" it stops everything without any of
//! the shutdown steps (no last explorer commit, no orderly close of the log).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http::config::NodeConfig;
use store::FileStoreOptions;

use super::disk::FaultyDisk;
use crate::TestNode;

/// A running in-process node and the client the checks use.
pub struct SimNode {
    /// HTTP client of the node.
    pub client: TestNode,
    system: actix_web::rt::System,
    thread: Option<JoinHandle<()>>,
}

impl SimNode {
    /// Boots a node on `data_dir` (retrying while the previous one still holds its locks).
    pub fn boot(
        config: &NodeConfig,
        data_dir: &Path,
        disk: Option<Arc<FaultyDisk>>,
    ) -> Result<SimNode, String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match SimNode::try_boot(config.clone(), data_dir.to_path_buf(), disk.clone()) {
                Err(e) if e.contains("lock") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => {
                    return Err(format!(
                        "the node did not start on {}: {e}",
                        data_dir.display()
                    ));
                }
                Ok(node) => return Ok(node),
            }
        }
    }

    fn try_boot(
        config: NodeConfig,
        data_dir: PathBuf,
        disk: Option<Arc<FaultyDisk>>,
    ) -> Result<SimNode, String> {
        let (ready, started) = mpsc::channel();
        let dir = data_dir.clone();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            let booted = system.block_on(async {
                let options = FileStoreOptions {
                    faults: disk.map(|d| d as Arc<dyn store::StorageFaults>),
                    ..FileStoreOptions::default()
                };
                http::server::start_with(config, &dir, None, options).await
            });
            match booted {
                Ok(node) => {
                    let _ = ready.send(Ok((actix_web::rt::System::current(), node.addr)));
                    // Served until the system is stopped; then the rest of `node` is dropped
                    // without `Node::run`'s shutdown steps.
                    let server = node.server;
                    system.block_on(async move {
                        actix_web::rt::spawn(server);
                    });
                    let _ = system.run();
                }
                Err(e) => {
                    // Stops the arbiters the failed start left, which hold the log open.
                    actix_web::rt::System::current().stop();
                    let _ = system.run();
                    let _ = ready.send(Err(e.to_string()));
                }
            }
        });
        match started.recv() {
            Ok(Ok((system, addr))) => {
                let node = SimNode {
                    client: TestNode::attach(&format!("http://{addr}"), &data_dir),
                    system,
                    thread: Some(thread),
                };
                node.wait_started();
                Ok(node)
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(format!("the node thread died: {:?}", thread.join().err())),
        }
    }

    /// Waits until the node says it is `ok` (not `starting`: its protocol manager still finishing
    /// the steps it found open; transactions sent then get 503, which is right but not a
    /// workload). A node that never gets there is left to the checks, which then say why.
    fn wait_started(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.client.try_get("/health") {
                Ok((_, health)) if health["status"] == "ok" => return,
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Stops the node at once, as a crash would, and returns once its event log is released.
    pub fn crash(mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let lock = self.client.data_dir().join("store").join("LOCK");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::File::open(&lock)
            .and_then(|f| f.try_lock().map_err(Into::into))
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the crashed node never released its log"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.system.stop();
            let _ = thread.join();
        }
    }
}
