//! A local anvil node as a child process: found in the project's `node_modules`, started
//! on a chosen port, waited for until it answers, and stopped with its whole process group.
//!
//! The binary is looked up, in order, at `POLYPAY_ANVIL` (when set and not empty), in `node_modules` of the given
//! directory or one of its ancestors (installed by `scripts/install-test-tools.sh`; the
//! platform package's native binary is preferred to the npm `.bin/anvil` wrapper, a node
//! script, so that stopping the process stops the node itself), then on `PATH`.
//!
//! # Stopping
//!
//! anvil runs in its own process group, so a Ctrl-C in the terminal reaches only polypay,
//! which then stops the node on purpose: [`AnvilNode::stop`] sends SIGTERM to the group
//! (anvil writes its `--state` file on SIGTERM) and SIGKILL if it is still there after
//! ten seconds. Dropping an [`AnvilNode`] that was not stopped kills the group at once.
//! On Linux the node also gets SIGTERM when the thread that started it goes away
//! (`PR_SET_PDEATHSIG`), so even a polypay killed with SIGKILL leaves no anvil behind.
//! Start nodes from a long-lived thread (an async task or the main thread, not a
//! `spawn_blocking` closure).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::rpc::AnvilRpc;

/// How long a starting node may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping node may take to write its state and exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a node could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "anvil not found: run scripts/install-test-tools.sh (it installs anvil into node_modules), \
         or set POLYPAY_ANVIL to an anvil binary"
    )]
    NotFound,
    #[error("POLYPAY_ANVIL names {}, which is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("port {port} on 127.0.0.1 is already in use")]
    PortTaken { port: u16 },
    #[error("cannot start {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the node's log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("anvil exited while starting ({status}); the end of its log {}:\n{tail}", log.display())]
    Exited {
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("anvil did not answer on port {port} within {} s (log: {})", START_TIMEOUT.as_secs(), log.display())]
    Timeout { port: u16, log: PathBuf },
    #[error("port {port} answers chain id {actual}, expected {expected}")]
    WrongChain {
        port: u16,
        expected: u64,
        actual: u64,
    },
}

/// How to run a node.
#[derive(Debug, Clone)]
pub struct AnvilOptions {
    pub binary: PathBuf,
    /// Port on 127.0.0.1.
    pub port: u16,
    pub chain_id: u64,
    /// anvil `--state`: the chain is loaded from this file when it exists and written to
    /// it when the node stops gracefully. None: the chain lives in memory only.
    pub state: Option<PathBuf>,
    /// Besides mining each transaction at once, mine a block every this many seconds
    /// (anvil `--mixed-mining --block-time`).
    pub block_time_secs: Option<u64>,
    /// anvil's stdout and stderr are appended here.
    pub log: PathBuf,
}

impl AnvilOptions {
    pub fn new(binary: PathBuf, port: u16, chain_id: u64, log: PathBuf) -> AnvilOptions {
        AnvilOptions {
            binary,
            port,
            chain_id,
            state: None,
            block_time_secs: None,
            log,
        }
    }

    fn command(&self) -> Result<Command, NodeError> {
        let log_error = |source| NodeError::Log {
            path: self.log.clone(),
            source,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(log_error)?;
        let mut command = Command::new(&self.binary);
        command
            .args(["--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--chain-id")
            .arg(self.chain_id.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(log_error)?)
            .stderr(log);
        if let Some(state) = &self.state {
            command.arg("--state").arg(state);
        }
        if let Some(secs) = self.block_time_secs {
            command
                .arg("--mixed-mining")
                .arg("--block-time")
                .arg(secs.to_string());
        }
        // Its own process group: a terminal's Ctrl-C goes to polypay, which stops the node
        // itself (gracefully, so that the state is written), and a stop reaches wrappers too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        stop_with_parent(&mut command);
        Ok(command)
    }
}

/// On Linux, asks the kernel to send the child SIGTERM when the thread that spawned it
/// exits, so that no node outlives a polypay that was killed.
#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_command: &mut Command) {}

/// The anvil executable, searched from `start` (see the module docs for the order).
pub fn anvil_binary(start: &Path) -> Result<PathBuf, NodeError> {
    if let Some(path) = std::env::var_os("POLYPAY_ANVIL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(NodeError::NotAFile(path))
        };
    }
    for dir in start.ancestors() {
        let scope = dir.join("node_modules/@foundry-rs");
        for platform in ["linux-amd64", "linux-arm64", "darwin-arm64", "darwin-amd64"] {
            let candidate = scope.join(format!("anvil-{platform}/bin/anvil"));
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        let wrapper = dir.join("node_modules/.bin/anvil");
        if wrapper.is_file() {
            return Ok(wrapper);
        }
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("anvil"))
        .find(|candidate| candidate.is_file())
        .ok_or(NodeError::NotFound)
}

/// Whether something already listens on `127.0.0.1:port`.
pub fn port_is_taken(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// A running anvil node. See the module docs for how it stops.
pub struct AnvilNode {
    options: AnvilOptions,
    child: Option<Child>,
    rpc: AnvilRpc,
}

impl AnvilNode {
    /// Starts a node and waits until it answers with the expected chain id.
    pub async fn start(options: AnvilOptions) -> Result<AnvilNode, NodeError> {
        let rpc = AnvilRpc::new(&format!("http://127.0.0.1:{}", options.port))
            .expect("a loopback URL with a port parses");
        let mut node = AnvilNode {
            options,
            child: None,
            rpc,
        };
        node.spawn_and_wait().await?;
        Ok(node)
    }

    /// The node's JSON-RPC client.
    pub fn rpc(&self) -> &AnvilRpc {
        &self.rpc
    }

    pub fn url(&self) -> &str {
        self.rpc.url()
    }

    pub fn port(&self) -> u16 {
        self.options.port
    }

    pub fn options(&self) -> &AnvilOptions {
        &self.options
    }

    async fn spawn_and_wait(&mut self) -> Result<(), NodeError> {
        let port = self.options.port;
        if port_is_taken(port) {
            return Err(NodeError::PortTaken { port });
        }
        let child = self
            .options
            .command()?
            .spawn()
            .map_err(|source| NodeError::Spawn {
                binary: self.options.binary.clone(),
                source,
            })?;
        self.child = Some(child);
        let result = self.wait_ready().await;
        if result.is_err() {
            self.kill();
        }
        result
    }

    async fn wait_ready(&mut self) -> Result<(), NodeError> {
        let port = self.options.port;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(actual) = self.rpc.chain_id().await {
                let expected = self.options.chain_id;
                return if actual == expected {
                    Ok(())
                } else {
                    Err(NodeError::WrongChain {
                        port,
                        expected,
                        actual,
                    })
                };
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let tail = log_tail(&self.options.log);
                // Another process took the port between the check and the bind.
                if tail.contains("Address already in use") {
                    return Err(NodeError::PortTaken { port });
                }
                return Err(NodeError::Exited {
                    status,
                    log: self.options.log.clone(),
                    tail,
                });
            }
            if Instant::now() > deadline {
                return Err(NodeError::Timeout {
                    port,
                    log: self.options.log.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the node gracefully (SIGTERM to its process group, so that a node with a
    /// state file writes it) and waits for it to exit; SIGKILL after ten seconds.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(child.id(), "-TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                signal_group(child.id(), "-KILL");
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the node again on the same port (with its chain, when it has a state file).
    /// The old socket may linger a moment, so a taken port is retried for a while.
    pub async fn restart(&mut self) -> Result<(), NodeError> {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn_and_wait().await {
                Err(NodeError::PortTaken { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(child.id(), "-KILL");
            let _ = child.wait();
        }
    }
}

impl Drop for AnvilNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (`-TERM`, `-KILL`) to the process group led by `pid`.
fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
