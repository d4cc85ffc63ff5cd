//! The email notifier against a real SMTP server (`tests/e2e/peers/smtp_sink.py`, aiosmtpd):
//! the mail arrives with the expected subject, recipients, a text and an HTML part and the
//! PNG chart inline (parsed back with Python's own MIME parser); authentication, also over
//! STARTTLS and implicit TLS with a CA made here by `openssl`; and SMTP transient/permanent
//! replies and untrusted certificates classified.

mod peers;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use base64::prelude::{BASE64_STANDARD, Engine as _};
use millwatch_exporters::notify::alert::labels;
use millwatch_exporters::notify::{
    Alert, DeliveryOutcome, Notification, Notifier, NotifierConfig, Point, Series,
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

fn notifier(port: u16, extra: &str) -> Box<dyn Notifier> {
    notifier_tls(port, "none", extra)
}

fn notifier_tls(port: u16, tls: &str, extra: &str) -> Box<dyn Notifier> {
    let yaml = format!(
        "type: email\nhost: 127.0.0.1\nport: {port}\ntls: {tls}\nfrom: \"Millwatch <millwatch@plant.example>\"\nto: [oncall@plant.example, \"Line 3 <line3@plant.example>\"]\ntimeout: 10s\n{extra}"
    );
    let config: NotifierConfig = serde_saphyr::from_str(&yaml).expect("config parses");
    config.build().expect("notifier builds")
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
    let err = config.build().expect_err("no certificate").to_string();
    assert!(err.contains("no PEM certificate"), "{err}");
}

fn decode_base64(s: &str) -> Vec<u8> {
    // MIME breaks base64 into lines; the line breaks are not part of the data.
    let joined: String = s.split_whitespace().collect();
    BASE64_STANDARD.decode(joined).expect("base64")
}
