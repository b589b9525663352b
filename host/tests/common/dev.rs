//! `polypay dev` as a newcomer runs it: the real binary as a child process in the
//! repository root, its stdout read line by line, and its printed walkthrough parsed into
//! the commands it tells the reader to run, which the tests then run with `sh -c`,
//! exactly as printed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::browser::repo_root;
use super::polypay::free_port;

/// The ports of one dev setup, all free when chosen.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub public: u16,
    pub admin: u16,
    pub node: u16,
    pub tron: u16,
    pub callback: u16,
}

impl Ports {
    pub fn free() -> Ports {
        Ports {
            public: free_port(),
            admin: free_port(),
            node: free_port(),
            tron: free_port(),
            callback: free_port(),
        }
    }

    /// The flags that put `polypay dev` on these ports.
    pub fn args(&self) -> Vec<String> {
        [
            ("--port", self.public),
            ("--admin-port", self.admin),
            ("--node-port", self.node),
            ("--tron-port", self.tron),
            ("--callback-port", self.callback),
        ]
        .iter()
        .flat_map(|(flag, port)| [flag.to_string(), port.to_string()])
        .collect()
    }
}

/// Runs `polypay dev ARGS` to completion in the repository root: (status, stdout, stderr).
pub async fn run_dev(
    args: &[String],
    envs: &[(&str, &str)],
    dir: &Path,
) -> (ExitStatus, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_polypay"))
        .arg("dev")
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run polypay dev");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running `polypay dev`, killed when dropped.
pub struct DevProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    log: std::path::PathBuf,
    pub walkthrough: Walkthrough,
}

impl DevProcess {
    /// Starts `polypay dev --data-dir DATA_DIR` on `ports` with `extra` flags (the plugins'
    /// components where the tests built them) and waits for its walkthrough.
    pub async fn start(data_dir: &Path, ports: &Ports, extra: &[&str]) -> DevProcess {
        let wasm_dir = Path::new(polypay_plugin_artifacts::TRINO)
            .parent()
            .expect("the component's directory");
        let log = data_dir.with_extension("stderr.log");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_polypay"))
            .arg("dev")
            .arg("--data-dir")
            .arg(data_dir)
            .args(ports.args())
            .arg("--plugin-wasm-dir")
            .arg(wasm_dir)
            .args(extra)
            .current_dir(repo_root())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create the stderr log"))
            .kill_on_drop(true)
            .spawn()
            .expect("start polypay dev");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut reader = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                println!("polypay dev | {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let mut process = DevProcess {
            child,
            lines,
            log,
            walkthrough: Walkthrough::default(),
        };
        let end = polypay_host::dev::start::WALKTHROUGH_END;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if process.stdout().lines().any(|l| l == end) {
                break;
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "polypay dev exited ({status}) before it was ready:\n{}\n{}",
                    process.stdout(),
                    process.stderr()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "polypay dev not ready after 120 s:\n{}\n{}",
                process.stdout(),
                process.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process.walkthrough = Walkthrough::parse(&process.stdout());
        process
    }

    /// Everything it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ctrl-C: SIGINT, as a terminal sends it, then waits for the exit.
    pub async fn interrupt(&mut self) -> ExitStatus {
        let pid = self.child.id().expect("still running");
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("polypay dev exits within a minute of Ctrl-C")
            .expect("wait for polypay dev")
    }
}

/// The walkthrough, as printed.
#[derive(Debug, Default, Clone)]
pub struct Walkthrough {
    /// The overview rows (`dev chain`, `admin API`, …): label → value.
    pub rows: BTreeMap<String, String>,
    /// One section per dialect.
    pub sections: BTreeMap<String, Section>,
}

#[derive(Debug, Default, Clone)]
pub struct Section {
    /// Credential kind → secret.
    pub credentials: BTreeMap<String, String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Default, Clone)]
pub struct Step {
    pub say: String,
    /// The commands the step shows (`$ …`, continuation lines joined).
    pub commands: Vec<String>,
    /// "Keep … VAR=<path>": the shell variable to set and where the answer has it.
    pub keep: Option<(String, String)>,
}

impl Walkthrough {
    pub fn parse(text: &str) -> Walkthrough {
        let mut walkthrough = Walkthrough::default();
        let mut section: Option<String> = None;
        let mut continuing = false;
        for line in text.lines() {
            let current = section
                .as_ref()
                .and_then(|name| walkthrough.sections.get_mut(name));
            if continuing {
                let step = current.and_then(|s| s.steps.last_mut()).expect("a step");
                let command = step.commands.last_mut().expect("a command");
                command.push('\n');
                command.push_str(line.trim_start());
                continuing = line.ends_with('\\');
                continue;
            }
            if let Some((name, _)) = line.split_once(" — ")
                && !line.starts_with(' ')
            {
                section = Some(name.to_string());
                walkthrough
                    .sections
                    .insert(name.to_string(), Section::default());
                continue;
            }
            let Some(current) = current else {
                // The overview, before any section.
                if let Some(row) = line.strip_prefix("  ")
                    && row.len() > 16
                {
                    let (label, value) = row.split_at(16);
                    walkthrough
                        .rows
                        .insert(label.trim().to_string(), value.trim().to_string());
                }
                continue;
            };
            let trimmed = line.trim_start();
            if let Some(command) = trimmed.strip_prefix("$ ") {
                let step = current
                    .steps
                    .last_mut()
                    .expect("a command belongs to a step");
                step.commands.push(command.to_string());
                continuing = command.ends_with('\\');
            } else if let Some((number, say)) = trimmed.split_once(". ")
                && number.parse::<u32>().is_ok()
                && line.starts_with("  ")
            {
                current.steps.push(Step {
                    say: say.to_string(),
                    ..Step::default()
                });
            } else if let Some((_, keep)) = trimmed.split_once("answers: ") {
                let (variable, path) = keep.split_once("=<").expect("VAR=<path>");
                let step = current.steps.last_mut().expect("a step");
                step.keep = Some((variable.to_string(), path.trim_end_matches('>').to_string()));
            } else if line.starts_with("    ") && current.steps.is_empty() {
                let mut words = trimmed.split_whitespace();
                if let (Some(kind), Some(secret)) = (words.next(), words.next()) {
                    current
                        .credentials
                        .insert(kind.to_string(), secret.to_string());
                }
            }
        }
        walkthrough
    }

    pub fn section(&self, name: &str) -> &Section {
        self.sections
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` section in the walkthrough: {self:#?}"))
    }

    /// The first word of an overview row.
    pub fn row(&self, label: &str) -> &str {
        self.rows
            .get(label)
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `{label}` row in the walkthrough: {self:#?}"))
    }
}

impl Section {
    pub fn credential(&self, kind: &str) -> &str {
        self.credentials
            .get(kind)
            .unwrap_or_else(|| panic!("no {kind} credential printed: {self:#?}"))
    }

    /// The first command of step `n` (from 1).
    pub fn command(&self, n: usize) -> &str {
        self.steps
            .get(n - 1)
            .and_then(|s| s.commands.first())
            .unwrap_or_else(|| panic!("no command in step {n}: {self:#?}"))
    }

    /// `polypay … dev [--data-dir …]`: how the walkthrough runs `polypay dev`, taken from
    /// its pay command.
    pub fn polypay_dev(&self) -> String {
        self.steps
            .iter()
            .flat_map(|s| &s.commands)
            .find_map(|c| c.split_once(" pay ").map(|(prefix, _)| prefix.to_string()))
            .unwrap_or_else(|| panic!("no pay command printed: {self:#?}"))
    }
}

/// Runs a printed command with `sh -c` in the repository root, with `vars` set; asserts it
/// succeeded and returns its stdout.
pub async fn sh(command: &str, vars: &[(&str, &str)]) -> String {
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(vars.iter().copied())
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run sh");
    assert!(
        output.status.success(),
        "`{command}` failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Like [`sh`], with the answer parsed as JSON.
pub async fn sh_json(command: &str, vars: &[(&str, &str)]) -> Value {
    let out = sh(command, vars).await;
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("`{command}` printed no JSON ({e}): {out}"))
}

/// The value at a dotted path (`data.payment_id`) of `json`, as text.
pub fn at_path(json: &Value, path: &str) -> String {
    let value = path.split('.').fold(json, |v, key| &v[key]);
    value
        .as_str()
        .unwrap_or_else(|| panic!("no string at {path} in {json}"))
        .to_string()
}
