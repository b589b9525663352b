//! The plugin in the real host: its component (built first with
//! `cargo build --release --target wasm32-wasip2`) mounted by a real `polypay serve`
//! (`POLYPAY_BIN`, else `polypay` on the PATH) on loopback, with a merchant created by
//! the `polypay` CLI, called over HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The plugin's mount name (its manifest name).
const NAME: &str = "{{name}}";

fn polypay() -> Command {
    Command::new(std::env::var("POLYPAY_BIN").unwrap_or_else(|_| "polypay".into()))
}

/// The component: `POLYPAY_PLUGIN_WASM`, else the release build in the target dir.
fn component() -> PathBuf {
    if let Ok(path) = std::env::var("POLYPAY_PLUGIN_WASM") {
        return path.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let wasm = target.join("wasm32-wasip2/release/{{crate_name}}.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: run `cargo build --release --target wasm32-wasip2` first",
        wasm.display()
    );
    wasm
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request on loopback: (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().expect("a status line");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// `polypay serve`, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_real_host_mounts_the_plugin_and_serves_its_authenticated_route() {
    let wasm = component();
    let dir =
        std::env::temp_dir().join(format!("{}-{}", env!("CARGO_PKG_NAME"), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (public, admin) = (free_port(), free_port());
    let config = dir.join("polypay.toml");
    std::fs::write(
        &config,
        format!(
            r#"mode = "development"
data_dir = "{data}"
public_base_url = "http://127.0.0.1:{public}"

[listen]
public = "127.0.0.1:{public}"
admin = "127.0.0.1:{admin}"

# A network whose node is not running: enough to create invoices on.
[[chains]]
name = "dev"
kind = "evm"
chain_id = 31337
rpc_url = "http://127.0.0.1:9"
assets = [{{ symbol = "USDT", decimals = 6, contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3" }}]

[[plugins]]
name = "{{name}}"
wasm = "{wasm}"
settings = {{ receiving_address = "0x1111111111111111111111111111111111111111" }}
"#,
            data = dir.join("data").display(),
            wasm = wasm.display(),
        ),
    )
    .unwrap();

    let created = polypay()
        .arg("--config")
        .arg(&config)
        .args(["merchant", "create", "--name", "shop", "--plugin", NAME])
        .output()
        .expect("run polypay (set POLYPAY_BIN to the polypay binary)");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let key = created["credentials"][0]["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    let log = std::fs::File::create(dir.join("polypay.log")).unwrap();
    let _server = Server(
        polypay()
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err()
        || http(admin, "GET", "/readyz", &[], "").0 != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "polypay did not start: {}",
            std::fs::read_to_string(dir.join("polypay.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let order = r#"{"order_id": "order-1", "amount": "10.5", "chain": "dev", "asset": "USDT"}"#;
    let json = [("content-type", "application/json")];
    assert_eq!(http(public, "POST", "/v1/invoices", &json, order).0, 401);

    let bearer = format!("Bearer {key}");
    let headers = [json[0], ("authorization", bearer.as_str())];
    let (status, body) = http(public, "POST", "/v1/invoices", &headers, order);
    assert_eq!(status, 200, "{body}");
    let invoice: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(invoice["status"], "waiting");
    let pay_to = invoice["pay_to"].as_str().unwrap().to_ascii_lowercase();
    assert_eq!(pay_to, "0x1111111111111111111111111111111111111111");
    assert!(
        invoice["amount"].as_str().unwrap().starts_with("10.5"),
        "{invoice}"
    );

    let document_path = format!("/polypay/plugins/{NAME}/openapi.json");
    let (status, document) = http(public, "GET", &document_path, &[], "");
    assert_eq!(status, 200);
    assert!(document.contains("/v1/invoices"));
}
