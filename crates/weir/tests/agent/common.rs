//! Shared helpers: scratch directories, an agent process, numbered lines.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use weir_agent::receiver::{Answer, Receiver};

pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

#[path = "../shared/scratch.rs"]
mod scratch;
pub use scratch::Scratch;

/// A running `weir agent`.
pub struct Agent {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Agent {
    /// Writes `config` to the scratch directory and starts the agent on it.
    pub fn start(dir: &Scratch, config: &str) -> Agent {
        Agent::start_as("agent", dir, config)
    }

    /// Writes `config` to the scratch directory and starts `weir
    /// COMMAND -c` on it (`agent` or `collector`).
    pub fn start_as(command: &str, dir: &Scratch, config: &str) -> Agent {
        let path = dir.join("weir.toml");
        fs::write(&path, config).unwrap();
        let stderr = dir.join(&format!("{command}-{}.stderr", now_ms()));
        let child = Command::new(WEIR)
            .args([command, "-c"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("starting weir agent");
        Agent { child, stderr }
    }

    /// SIGTERM, then waits; returns the exit code and what it said.
    pub fn stop(mut self) -> (Option<i32>, String) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        (status.code(), self.said())
    }

    /// SIGHUP: reload the configuration file.
    pub fn hup(&self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
    }

    /// SIGKILL: no chance to write anything more.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn said(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// A test that fails leaves no agent behind.
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Line number `i`, 60 bytes with its newline.
pub fn line(i: usize) -> String {
    format!("line {i:09} {}\n", "x".repeat(44))
}

/// Appends lines `lines` (see [`line`]) to `log`.
pub fn append_lines(log: &Path, lines: std::ops::Range<usize>) {
    let text: String = lines.map(line).collect();
    let mut file = fs::OpenOptions::new().append(true).open(log).unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
}

/// The line number in the body of a record the http sink sent.
pub fn seq_of(ndjson: &str) -> usize {
    let at = ndjson.find("\"body\":\"line ").expect("a record") + 13;
    ndjson[at..at + 9].parse().unwrap()
}

/// The http sink's timeout in [`http_config`].
pub const SINK_TIMEOUT: Duration = Duration::from_secs(2);

/// Every line number the receiver accepted (answered 200 within the sink's
/// timeout), in order.
pub fn accepted(receiver: &Receiver) -> Vec<usize> {
    receiver
        .requests()
        .iter()
        .filter(|r| match r.answer {
            Answer::Accept => true,
            Answer::Stall(pause) => pause < SINK_TIMEOUT,
            Answer::Fail | Answer::Reject => false,
        })
        .flat_map(|r| r.lines.iter().map(|l| seq_of(l)))
        .collect()
}

/// The distinct values of `values`, sorted.
pub fn distinct(values: &[usize]) -> Vec<usize> {
    let mut unique = values.to_vec();
    unique.sort_unstable();
    unique.dedup();
    unique
}

/// A loopback port held until it is let go: bound without listening, so a
/// connection to it is refused, as to a destination that is down, and no
/// other test can take it meanwhile (as it could a [`free_port`] during a
/// long outage).
pub struct HeldPort {
    pub port: u16,
    socket: std::os::fd::OwnedFd,
}

impl HeldPort {
    pub fn new() -> HeldPort {
        use std::os::fd::FromRawFd;
        // SAFETY: a fresh socket, bound and asked its address with
        // correctly sized structures; the fd is owned from here on.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let socket = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut address: libc::sockaddr_in = std::mem::zeroed();
            address.sin_family = libc::AF_INET as libc::sa_family_t;
            address.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let bound = libc::bind(fd, (&raw const address).cast(), size);
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let mut len = size;
            libc::getsockname(fd, (&raw mut address).cast(), &mut len);
            HeldPort {
                port: u16::from_be(address.sin_port),
                socket,
            }
        }
    }

    /// Lets the port go and listens on it: the destination comes back.
    pub fn receive(self, script: weir_agent::receiver::Script) -> Receiver {
        let port = self.port;
        drop(self.socket);
        Receiver::start_on(port, script).unwrap()
    }
}

/// A loopback port nobody listens on (at the moment of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The project's Python, with the third-party clients the tests drive
/// weir with (`scripts/setup.sh` makes it).
pub fn python() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/bin/python");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// Rotel, a third-party OTLP collector, from its PyPI package.
pub fn rotel() -> PathBuf {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/lib");
    fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup.sh", lib.display()))
        .flatten()
        .map(|python| python.path().join("site-packages/rotel/rotel-agent"))
        .find(|agent| agent.exists())
        .expect("rotel in target/pyenv: run scripts/setup.sh")
}

/// Sink `out`: NDJSON records of `input` into the file `path`, in small
/// batches.
pub fn file_sink(input: &str, path: &Path) -> String {
    format!(
        "[sinks.out]\ntype = \"file\"\ninputs = [\"{input}\"]\npath = \"{}\"\nbatch = {{ timeout = \"20ms\" }}\n",
        path.display()
    )
}

/// Rotel listening for OTLP/HTTP on `http` (and gRPC on `grpc`), sending
/// on over OTLP/HTTP to `to`; what it says goes to `dir/rotel.stderr`.
pub fn start_rotel(dir: &Scratch, http: u16, grpc: u16, to: u16) -> Child {
    Command::new(rotel())
        .args([
            "start",
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{http}"),
        ])
        .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
        .args(["--exporter", "otlp", "--otlp-exporter-protocol", "http"])
        .args([
            "--otlp-exporter-endpoint",
            &format!("http://127.0.0.1:{to}"),
        ])
        .args(["--batch-timeout", "50ms"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join("rotel.stderr")).unwrap())
        .spawn()
        .expect("starting rotel")
}

/// Runs a client script of `tests/agent/clients` with `args`; it must
/// succeed. Returns what it printed.
pub fn client(script: &str, args: &[&str]) -> String {
    client_with(script, args, &[])
}

/// [`client`], with environment variables `env`.
pub fn client_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/agent/clients")
        .join(script);
    let output = Command::new(python())
        .arg(&script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("running a client");
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} {args:?} failed:\n{said}{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    said
}

/// A certificate for 127.0.0.1 and localhost and the CA that signed it,
/// made with openssl in `dir`.
pub struct Certificate {
    /// The CA's certificate, for clients to trust.
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn certificate(dir: &Scratch) -> Certificate {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir.join("."))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (ca, ca_key) = (path("ca.pem"), path("ca.key"));
    let (cert, key, csr) = (path("cert.pem"), path("key.pem"), path("cert.csr"));
    let extensions = path("cert.ext");
    fs::write(
        &extensions,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    let text = |p: &PathBuf| p.to_str().unwrap().to_owned();
    openssl(
        &[
            &["req", "-x509", "-days", "2", "-subj", "/CN=weir test CA"][..],
            &ec,
            &["-keyout", &text(&ca_key), "-out", &text(&ca)],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-subj", "/CN=localhost"][..],
            &ec,
            &["-keyout", &text(&key), "-out", &text(&csr)],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        &text(&csr),
        "-CA",
        &text(&ca),
        "-CAkey",
        &text(&ca_key),
        "-CAcreateserial",
        "-extfile",
        &text(&extensions),
        "-out",
        &text(&cert),
    ]);
    Certificate { ca, cert, key }
}

/// A loopback UDP port nobody listens on (at the moment of asking).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from the agent's operations endpoint on `port`: the status
/// code and the body.
pub fn get(port: u16, path: &str) -> (u16, String) {
    request(port, "GET", path, &[], b"")
}

/// POST `body` of `content_type` to `path` on `port`: the status and body.
pub fn post(port: u16, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    request(port, "POST", path, &[("content-type", content_type)], body)
}

/// One HTTP/1.1 request on a connection of its own.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting to the endpoint");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample `name_and_labels` in a /metrics text.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name_and_labels} in:\n{text}"))
}

/// Waits until the receiver has accepted every line of `0..total`; on
/// timeout, fails naming the first missing lines and what the agent said.
pub fn wait_for_all(receiver: &Receiver, total: usize, limit: Duration, agent: &Agent) {
    let deadline = Instant::now() + limit;
    loop {
        // Fewer lines in all than wanted: not yet, without copying them.
        if receiver.lines() < total as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let mut seen = accepted(receiver);
        seen.sort_unstable();
        seen.dedup();
        if seen.len() >= total {
            return;
        }
        if Instant::now() >= deadline {
            let missing: Vec<usize> = (0..total)
                .filter(|i| seen.binary_search(i).is_err())
                .take(10)
                .collect();
            panic!(
                "{} of {total} lines arrived; first missing: {missing:?}\nthe agent said:\n{}",
                seen.len(),
                agent.said()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `done` holds, failing with `what` after `limit`.
pub fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An agent configuration: `data_dir`, the operations endpoint on `api`
/// (or none), and the source, transform and sink tables.
pub fn config(data_dir: &Path, api: Option<u16>, tables: &str) -> String {
    let api = match api {
        Some(port) => format!("address = \"127.0.0.1:{port}\""),
        None => "enabled = false".to_owned(),
    };
    format!(
        "data_dir = \"{}\"\n[api]\n{api}\n{tables}",
        data_dir.display()
    )
}

/// Source `app`: plain lines of the files `pattern` matches.
pub fn tail_source(pattern: &str) -> String {
    format!(
        "[sources.app]\ntype = \"file\"\ninclude = [\"{pattern}\"]\nformat = \"plain\"\npoll = \"50ms\"\n"
    )
}

/// Sink `out`: NDJSON over http to `uri`, fed by `input`, small batches,
/// quick retries, and `extra` keys.
pub fn http_sink(input: &str, uri: &str, extra: &str) -> String {
    format!(
        r#"[sinks.out]
type = "http"
inputs = ["{input}"]
uri = "{uri}"
timeout = "2s"
batch = {{ max_records = 500, timeout = "20ms" }}
retry = {{ initial = "5ms", max = "50ms" }}
{extra}
"#
    )
}

/// A configuration tailing `pattern` into the receiver.
pub fn http_config(data_dir: &Path, pattern: &str, receiver: &Receiver, extra: &str) -> String {
    let uri = format!("http://{}/ingest", receiver.addr);
    config(
        data_dir,
        None,
        &(tail_source(pattern) + &http_sink("app", &uri, extra)),
    )
}

/// Runs `weir run --name web --rate 10KiB/s --policy drop` (and `extra`
/// arguments) writing into `logs/web.log` a writer of 3000 lines, well
/// over its budget, and then `tail` (shell); its `--summary`.
pub fn run_over_budget(logs: &Path, extra: &[&str], tail: &str) -> serde_json::Value {
    let script = format!(
        "i=0; while [ $i -lt 3000 ]; do echo \"line $i of a writer over its budget\"; i=$((i+1)); done{tail}"
    );
    let run = std::process::Command::new(WEIR)
        .args([
            "run", "--name", "web", "--rate", "10KiB/s", "--policy", "drop",
        ])
        .args(extra)
        .args(["--summary", "--log-path"])
        .arg(logs.join("web.log"))
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(
        run.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap()
}
