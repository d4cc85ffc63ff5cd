//! Real peers of the notifier tests, started on a free loopback port and killed when dropped:
//! the Python scripts beside this file (HTTP recorder, aiosmtpd SMTP sink) and Debian's
//! `prometheus-alertmanager`; and a test CA made with the `openssl` command for the TLS peers.
//!
//! A missing peer skips the test with a loud message, unless `MILLWATCH_REQUIRE_PEERS` is set
//! (as `scripts/test` does, having installed them), in which case the test fails.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Says why a peer is missing: panics when peers are required, else prints a loud notice and
/// returns `None` so the test can return early.
pub fn missing(peer: &str, hint: &str) -> Option<std::convert::Infallible> {
    if std::env::var_os("MILLWATCH_REQUIRE_PEERS").is_some() {
        panic!("{peer} is required (MILLWATCH_REQUIRE_PEERS is set) but missing: {hint}");
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED: {peer} is missing: {hint}\n\
         !!! (set MILLWATCH_REQUIRE_PEERS=1 to make this a failure)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    None
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The Python of the test peers: `MILLWATCH_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("MILLWATCH_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// True when the peers' Python can import `module`.
pub fn python_has(module: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A peer script; the end-to-end tests run the same ones (`tests/e2e/peers/`).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/e2e/peers")
        .join(name)
}

/// A peer process, killed and reaped when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    log: PathBuf,
    name: String,
}

impl Peer {
    /// Starts `program args` with its stderr in `dir/<name>.log` and waits until `port`
    /// accepts connections.
    pub fn start(name: &str, program: &str, args: &[String], port: u16, dir: &Path) -> Peer {
        let log = dir.join(format!("{name}.log"));
        let err = std::fs::File::create(&log).expect("peer log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({program}): {e}"));
        let mut peer = Peer {
            child,
            port,
            dir: dir.to_path_buf(),
            log,
            name: name.to_string(),
        };
        peer.wait_listening();
        peer
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited early ({status}): {}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not listen on {} within 30 s: {}",
            self.name,
            self.port,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files in `dir` ending with `ext`, sorted by name, once at least `n` exist (waits up to 10 s).
pub fn wait_files(dir: &Path, ext: &str, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read peer dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(ext))
            .collect();
        files.sort();
        if files.len() >= n || Instant::now() > deadline {
            return files;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A CA and a server certificate for 127.0.0.1 and localhost that it signed, made with the
/// `openssl` command in `dir` (EC P-256, valid for two days).
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn test_ca(dir: &Path, name: &str) -> Option<TestCa> {
    if Command::new("openssl").arg("version").output().is_err() {
        missing("openssl", "apt-get install openssl")?;
    }
    let f = |ext: &str| format!("{name}-{ext}");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let subject = format!("/CN=Millwatch test CA {name}");
    let mut ca_args = vec!["req", "-x509", "-days", "2", "-subj", &subject];
    let (ca_key, ca_pem) = (f("ca.key"), f("ca.pem"));
    ca_args.extend(ec);
    ca_args.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca_pem,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca_args);
    let (key, csr, cert, ext) = (
        f("server.key"),
        f("server.csr"),
        f("server.pem"),
        f("ext.cnf"),
    );
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    let mut req = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &key,
        "-out",
        &csr,
    ];
    req.extend(ec);
    openssl(dir, &req);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    Some(TestCa {
        ca: dir.join(ca_pem),
        cert: dir.join(cert),
        key: dir.join(key),
    })
}
