//! The Node scripts in `tests/browser/` that drive Debian's Chromium through
//! playwright-core (both installed by `scripts/install-browser.sh`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate is in the repository")
        .to_path_buf()
}

/// Where the screenshots of the browser tests go.
pub fn screenshots_dir() -> PathBuf {
    repo_root().join("target/screenshots")
}

/// Starts `node tests/browser/SCRIPT SCENARIO`; its stderr goes to the test's output, its
/// stdout lines (the script's protocol with the test) are returned. Killed when dropped.
pub fn start_script(
    script: &str,
    scenario: &serde_json::Value,
) -> (Child, Lines<BufReader<ChildStdout>>) {
    let dir = repo_root().join("tests/browser");
    assert!(
        Path::new(CHROMIUM).exists() && dir.join("node_modules/playwright-core").is_dir(),
        "the browser tests need Chromium and playwright-core: run scripts/install-browser.sh"
    );
    let mut node = tokio::process::Command::new("node")
        .arg(script)
        .arg(scenario.to_string())
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("starting node (install Node.js)");
    let lines = BufReader::new(node.stdout.take().expect("piped stdout")).lines();
    (node, lines)
}

/// Runs `node tests/browser/SCRIPT SCENARIO` to its end (three minutes at most), echoing
/// each stdout line and handing it to `on_line`. True when the script succeeded and
/// printed `DONE` (the protocol's last line).
pub async fn run_script(
    script: &str,
    scenario: &serde_json::Value,
    mut on_line: impl AsyncFnMut(&str),
) -> bool {
    let (mut node, mut lines) = start_script(script, scenario);
    let mut done = false;
    let run = async {
        while let Some(line) = lines.next_line().await.expect("read the script's stdout") {
            println!("{line}");
            done |= line == "DONE";
            on_line(&line).await;
        }
        node.wait().await.expect("wait for node")
    };
    let status = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser run finishes within 3 minutes");
    status.success() && done
}
