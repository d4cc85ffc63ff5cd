//! The email notifier against a real SMTP server (`tests/e2e/peers/smtp_sink.py`, aiosmtpd):
//! the mail arrives with the expected subject, recipients, a text and an HTML part and the
//! PNG chart inline (parsed back with Python's own MIME parser); authentication, also over
//! STARTTLS and implicit TLS with a CA made here by `openssl`; and SMTP transient/permanent
//! replies and untrusted certificates classified.

mod peers;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use millwatch_exporters::notify::{
    Alert, DeliveryOutcome, Labels, Notification, Notifier, NotifierConfig, Point, Series,
};
use peers::*;
use serde_json::Value;

fn smtp_sink(dir: &Path, extra: &[&str]) -> Option<Peer> {
    if !python_has("aiosmtpd") {
        missing(
            "aiosmtpd",
            &format!(
                "`{} -c 'import aiosmtpd'` fails (pip install aiosmtpd, or set MILLWATCH_PYTHON)",
                python()
            ),
        )?;
    }
    let port = free_port();
    let mut args = vec![
        script("smtp_sink.py").display().to_string(),
        "--port".into(),
        port.to_string(),
        "--dir".into(),
        dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Some(Peer::start("smtp_sink", &python(), &args, port, dir))
}

fn notifier(port: u16, extra: &str) -> Notifier {
    notifier_tls(port, "none", extra)
}

fn notifier_tls(port: u16, tls: &str, extra: &str) -> Notifier {
    let yaml = format!(
        "type: email\nhost: 127.0.0.1\nport: {port}\ntls: {tls}\nfrom: \"Millwatch <millwatch@plant.example>\"\nto: [oncall@plant.example, \"Line 3 <line3@plant.example>\"]\ntimeout: 10s\n{extra}"
    );
    let config: NotifierConfig = serde_saphyr::from_str(&yaml).expect("config parses");
    Notifier::new(config).expect("notifier builds")
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn notification() -> Notification {
    let start = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
    let mut a = Alert::firing(
        labels(&[
            ("alertname", "MachineOverheat"),
            ("machine", "press-7"),
            ("severity", "critical"),
        ]),
        labels(&[
            ("summary", "Press 7 spindle temperature above limit"),
            ("value", "83.5"),
            ("threshold", "80"),
        ]),
        start,
    );
    a.generator_url = "http://mw.plant:9464/ui/machines/press-7".into();
    a.series = Some(Series {
        name: "spindle temperature (°C)".into(),
        points: (0..30)
            .map(|i| Point {
                time: start + Duration::from_secs(60 * i),
                value: 70.0 + (i as f64) * 0.5,
            })
            .collect(),
        threshold: Some(80.0),
    });
    Notification::new(
        "plant-email",
        "{}:{machine=\"press-7\"}",
        labels(&[("machine", "press-7")]),
        vec![a],
        "http://mw.plant:9464",
    )
}

fn summary(eml: &Path) -> Value {
    let out = Command::new(python())
        .arg(script("eml_summary.py"))
        .arg(eml)
        .output()
        .expect("run eml_summary.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary json")
}

#[tokio::test]
async fn email_with_text_html_and_inline_png_reaches_aiosmtpd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(peer) = smtp_sink(dir.path(), &[]) else {
        return;
    };
    let n = notifier(
        peer.port,
        "subject: \"[Millwatch] {{ headline }} on {{ labels.machine }}\"\n",
    );
    let outcome = n.send(&notification()).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered, "{}", peer.log());

    let emls = wait_files(dir.path(), ".eml", 1);
    assert_eq!(emls.len(), 1, "{}", peer.log());
    let envelope: Value = serde_json::from_str(
        &std::fs::read_to_string(emls[0].with_extension("json")).expect("envelope"),
    )
    .expect("json");
    assert_eq!(envelope["mail_from"], "millwatch@plant.example");
    assert_eq!(
        envelope["rcpt_tos"],
        serde_json::json!(["oncall@plant.example", "line3@plant.example"])
    );

    let m = summary(&emls[0]);
    assert_eq!(
        m["subject"],
        "[Millwatch] [FIRING:1] MachineOverheat (machine=press-7) on press-7"
    );
    assert_eq!(m["from"], "Millwatch <millwatch@plant.example>");
    assert_eq!(
        m["to"],
        "oncall@plant.example, Line 3 <line3@plant.example>"
    );
    assert_ne!(m["date"], "None");
    assert_ne!(m["message_id"], "None");
    assert_eq!(
        m["tree"],
        serde_json::json!({"type": "multipart/alternative", "parts": [
            {"type": "text/plain"},
            {"type": "multipart/related", "parts": [{"type": "text/html"}, {"type": "image/png"}]}
        ]})
    );
    let leaves = m["leaves"].as_array().expect("leaves");
    let text = leaves[0]["text"].as_str().expect("text part");
    for want in [
        "[FIRING] MachineOverheat",
        "Press 7 spindle temperature above limit",
        "Severity: critical",
        "Machine: press-7",
        "Value: 83.5",
        "Threshold: 80",
        "Since: 2024-05-01 12:00:00 UTC",
        "spindle temperature (°C): 30 points, min 70, max 84.5",
        "Source: http://mw.plant:9464/ui/machines/press-7",
        "Open Millwatch: http://mw.plant:9464",
    ] {
        assert!(text.contains(want), "text part lacks {want:?}:\n{text}");
    }
    let html = leaves[1]["text"].as_str().expect("html part");
    let png = &leaves[2];
    let cid = png["content_id"].as_str().expect("Content-ID");
    assert!(cid.starts_with('<') && cid.ends_with('>'), "{cid}");
    let cid = &cid[1..cid.len() - 1];
    for want in [
        "MachineOverheat".to_string(),
        ">critical<".to_string(),
        ">press-7<".to_string(),
        ">83.5<".to_string(),
        ">80<".to_string(),
        "2024-05-01 12:00:00 UTC".to_string(),
        "<a href=\"http://mw.plant:9464\">Open Millwatch</a>".to_string(),
        format!("<img src=\"cid:{cid}\""),
    ] {
        assert!(html.contains(&want), "html part lacks {want:?}:\n{html}");
    }
    assert_eq!(png["disposition"], "inline");
    let b64 = png["base64"].as_str().expect("png bytes");
    let bytes = decode_base64(b64);
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    assert_eq!(
        u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
        480
    );
    assert_eq!(
        u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
        160
    );
    assert!(bytes.ends_with(b"IEND\xaeB`\x82"), "PNG ends with IEND");
}

#[tokio::test]
async fn email_authenticates_to_aiosmtpd_and_wrong_password_is_permanent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(peer) = smtp_sink(dir.path(), &["--auth", "millwatch:s3cret"]) else {
        return;
    };
    let good = notifier(
        peer.port,
        "auth: { username: millwatch, password: s3cret }\n",
    );
    assert_eq!(
        good.send(&notification()).await,
        DeliveryOutcome::Delivered,
        "{}",
        peer.log()
    );
    assert_eq!(wait_files(dir.path(), ".eml", 1).len(), 1);

    let bad = notifier(peer.port, "auth: { username: millwatch, password: nope }\n");
    match bad.send(&notification()).await {
        DeliveryOutcome::Permanent { reason } => assert!(reason.contains("535"), "{reason}"),
        other => panic!("wrong password: {other:?}"),
    }
    let none = notifier(peer.port, "");
    match none.send(&notification()).await {
        DeliveryOutcome::Permanent { reason } => assert!(reason.contains("530"), "{reason}"),
        other => panic!("no credentials: {other:?}"),
    }
    // Stored before the 250 reply, so both refused attempts would be on disk by now.
    assert_eq!(wait_files(dir.path(), ".eml", 1).len(), 1);
}

#[tokio::test]
async fn email_transient_and_permanent_replies_from_aiosmtpd() {
    for (reply, transient) in [
        ("451 4.3.0 Try again later", true),
        ("554 5.7.1 Rejected", false),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let Some(peer) = smtp_sink(dir.path(), &["--reply", reply]) else {
            return;
        };
        let got = notifier(peer.port, "").send(&notification()).await;
        match (&got, transient) {
            (DeliveryOutcome::Retryable { reason, .. }, true)
            | (DeliveryOutcome::Permanent { reason }, false) => {
                assert!(reason.contains(&reply[..3]), "{reason}")
            }
            _ => panic!("{reply}: {got:?}"),
        }
        drop(peer);
        // The server is gone now: a connection failure, worth another try.
        let later = notifier(free_port(), "").send(&notification()).await;
        assert!(later.is_retryable(), "{later:?}");
    }
}

#[tokio::test]
async fn email_tls_modes_against_plain_aiosmtpd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(peer) = smtp_sink(dir.path(), &[]) else {
        return;
    };
    // STARTTLS is required but this server does not offer it: a configuration to fix.
    match notifier_tls(peer.port, "starttls", "")
        .send(&notification())
        .await
    {
        DeliveryOutcome::Permanent { reason } => {
            assert!(reason.to_lowercase().contains("starttls"), "{reason}")
        }
        other => panic!("starttls: {other:?}"),
    }
    // Implicit TLS to a plain-text server: the rustls (ring) handshake fails; retryable.
    match notifier_tls(peer.port, "tls", "")
        .send(&notification())
        .await
    {
        DeliveryOutcome::Retryable { reason, .. } => assert!(!reason.is_empty()),
        other => panic!("tls: {other:?}"),
    }
    assert!(wait_files(dir.path(), ".eml", 0).is_empty());
}

/// A CA and a server certificate for 127.0.0.1 and localhost that it signed, made with the
/// `openssl` command in `dir` (EC P-256, valid for two days).
struct TestCa {
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
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

fn test_ca(dir: &Path, name: &str) -> Option<TestCa> {
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

fn tls_sink(dir: &Path, ca: &TestCa, mode: &str) -> Option<Peer> {
    smtp_sink(
        dir,
        &[
            "--tls",
            mode,
            "--cert",
            &ca.cert.display().to_string(),
            "--key",
            &ca.key.display().to_string(),
            "--auth",
            "millwatch:s3cret",
        ],
    )
}

#[tokio::test]
async fn email_over_starttls_and_implicit_tls_with_auth_reaches_aiosmtpd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(ca) = test_ca(dir.path(), "plant") else {
        return;
    };
    for (mode, tls) in [("starttls", "starttls"), ("implicit", "tls")] {
        let box_dir = dir.path().join(mode);
        std::fs::create_dir(&box_dir).expect("mail dir");
        let Some(peer) = tls_sink(&box_dir, &ca, mode) else {
            return;
        };
        let n = notifier_tls(
            peer.port,
            tls,
            &format!(
                "tls_ca_file: {}\nauth: {{ username: millwatch, password: s3cret }}\n",
                ca.ca.display()
            ),
        );
        assert_eq!(
            n.send(&notification()).await,
            DeliveryOutcome::Delivered,
            "{mode}: {}",
            peer.log()
        );
        let got = wait_files(&box_dir, ".json", 1);
        assert_eq!(got.len(), 1, "{mode}");
        let envelope: Value =
            serde_json::from_str(&std::fs::read_to_string(&got[0]).expect("json")).expect("json");
        assert_eq!(envelope["tls"], true, "{mode}: {envelope}");
        assert_eq!(
            envelope["authenticated_as"], "millwatch",
            "{mode}: {envelope}"
        );
        assert_eq!(envelope["mail_from"], "millwatch@plant.example");
        let eml = wait_files(&box_dir, ".eml", 1);
        assert_eq!(
            summary(&eml[0])["subject"],
            "[FIRING:1] MachineOverheat (machine=press-7)"
        );
    }
}

#[tokio::test]
async fn email_to_a_server_whose_ca_is_not_trusted_fails_permanently_and_sends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (Some(plant), Some(other)) = (test_ca(dir.path(), "plant"), test_ca(dir.path(), "other"))
    else {
        return;
    };
    for (mode, tls) in [("starttls", "starttls"), ("implicit", "tls")] {
        let box_dir = dir.path().join(mode);
        std::fs::create_dir(&box_dir).expect("mail dir");
        let Some(peer) = tls_sink(&box_dir, &plant, mode) else {
            return;
        };
        let ca_file = other.ca.display().to_string();
        let n = notifier_tls(
            peer.port,
            tls,
            &format!("tls_ca_file: {ca_file}\nauth: {{ username: millwatch, password: s3cret }}\n"),
        );
        match n.send(&notification()).await {
            DeliveryOutcome::Permanent { reason } => {
                assert!(reason.contains("not trusted"), "{mode}: {reason}");
                assert!(reason.contains("UnknownIssuer"), "{mode}: {reason}");
                assert!(reason.contains(&ca_file), "{mode}: {reason}");
            }
            other => panic!("{mode}: {other:?}"),
        }
        // The system's trust store does not know the plant's CA either.
        match notifier_tls(peer.port, tls, "").send(&notification()).await {
            DeliveryOutcome::Permanent { reason } => {
                assert!(reason.contains("system's trust store"), "{mode}: {reason}")
            }
            other => panic!("{mode}, system roots: {other:?}"),
        }
        assert!(wait_files(&box_dir, ".eml", 0).is_empty(), "{mode}");
    }
    // A CA file that is not one is refused when the notifier is built.
    std::fs::write(dir.path().join("empty.pem"), "no certificate here\n").expect("write");
    let yaml = format!(
        "type: email\nhost: 127.0.0.1\ntls: tls\ntls_ca_file: {}\nfrom: a@plant.example\nto: [b@plant.example]\n",
        dir.path().join("empty.pem").display()
    );
    let config: NotifierConfig = serde_saphyr::from_str(&yaml).expect("parses");
    let err = Notifier::new(config)
        .expect_err("no certificate")
        .to_string();
    assert!(err.contains("no PEM certificate"), "{err}");
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
