//! The webhook notifier against a real HTTP server (`tests/e2e/peers/http_recorder.py`, Python's
//! `http.server`) that records each request: the Alertmanager-format payload field by field,
//! the HMAC header (checked against the signature Python computes), custom headers, the Slack,
//! Teams and generic bodies, and the outcome of 503, 429, 400, timeouts and a closed port.

mod peers;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use millwatch_exporters::notify::alert::labels;
use millwatch_exporters::notify::{
    Alert, DeliveryOutcome, Notification, Notifier, NotifierConfig, Point, Series,
};
use peers::*;
use serde_json::Value;

/// Starts the recorder, or says why it cannot.
fn recorder(dir: &Path, hmac_secret: Option<&str>) -> Option<Peer> {
    let port = free_port();
    let mut args = vec![
        script("http_recorder.py").display().to_string(),
        "--port".into(),
        port.to_string(),
        "--dir".into(),
        dir.display().to_string(),
    ];
    if let Some(s) = hmac_secret {
        args.extend(["--hmac-secret".to_string(), s.to_string()]);
    }
    if !python_has("http.server") {
        missing(
            "python",
            &format!("`{}` cannot run (set MILLWATCH_PYTHON)", python()),
        )?;
    }
    Some(Peer::start("http_recorder", &python(), &args, port, dir))
}

fn notifier(yaml: &str) -> Box<dyn Notifier> {
    let config: NotifierConfig = serde_saphyr::from_str(yaml).expect("config parses");
    config.build().expect("notifier builds")
}

fn t(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn notification() -> Notification {
    let mut firing = Alert::firing(
        labels(&[
            ("alertname", "FeatureDrift"),
            ("model", "scrap"),
            ("feature", "temp"),
            ("severity", "warning"),
        ]),
        labels(&[("summary", "PSI of temp is 0.31"), ("value", "0.31")]),
        t(1_714_564_800, 123_000_000),
    );
    firing.generator_url = "http://mw.plant:9464/ui/models/scrap".into();
    firing.series = Some(Series {
        name: "PSI".into(),
        points: vec![Point {
            time: t(1_714_564_800, 0),
            value: 0.31,
        }],
        threshold: Some(0.2),
    });
    let resolved = Alert::firing(
        labels(&[
            ("alertname", "FeatureDrift"),
            ("model", "scrap"),
            ("feature", "rpm"),
            ("severity", "warning"),
        ]),
        labels(&[("summary", "PSI of rpm is 0.05")]),
        t(1_714_560_000, 0),
    )
    .resolved_at(t(1_714_564_000, 0));
    Notification::new(
        "plant-webhook",
        "{}/{model=\"scrap\"}:{alertname=\"FeatureDrift\"}",
        labels(&[("alertname", "FeatureDrift")]),
        vec![firing, resolved],
        "http://mw.plant:9464",
    )
}

fn record(dir: &Path, n: usize) -> Value {
    let files = wait_files(dir, ".json", n);
    assert!(
        files.len() >= n,
        "expected {n} requests, got {}",
        files.len()
    );
    let text = std::fs::read_to_string(&files[n - 1]).expect("record");
    serde_json::from_str(&text).expect("record json")
}

fn obj_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn webhook_alertmanager_payload_hmac_and_headers_reach_real_http_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(peer) = recorder(dir.path(), Some("plant-secret")) else {
        return;
    };
    let n = notifier(&format!(
        "type: webhook\nurl: http://127.0.0.1:{}/hooks/am\nheaders: {{ X-Plant: north, X-Scope-OrgID: line-3 }}\nsignature: {{ secret: plant-secret, header: X-Hub-Signature-256 }}\nauth: {{ type: bearer, token: tok-1 }}\n",
        peer.port
    ));
    let sent = notification();
    assert_eq!(n.send(&sent).await, DeliveryOutcome::Delivered);

    let r = record(dir.path(), 1);
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], "/hooks/am");
    let h = &r["headers"];
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-plant"], "north");
    assert_eq!(h["x-scope-orgid"], "line-3");
    assert_eq!(h["authorization"], "Bearer tok-1");
    assert!(
        h["user-agent"]
            .as_str()
            .is_some_and(|u| u.starts_with("millwatch/")),
        "{h}"
    );
    assert_eq!(h["x-hub-signature-256"], r["expected_signature"]);
    assert!(
        h["x-hub-signature-256"]
            .as_str()
            .is_some_and(|s| s.len() == 71 && s.starts_with("sha256=")),
        "{h}"
    );

    // Alertmanager's webhook payload, version 4, field by field.
    let body: Value = serde_json::from_str(r["body"].as_str().expect("body")).expect("json body");
    assert_eq!(
        obj_keys(&body),
        [
            "alerts",
            "commonAnnotations",
            "commonLabels",
            "externalURL",
            "groupKey",
            "groupLabels",
            "receiver",
            "status",
            "truncatedAlerts",
            "version"
        ]
    );
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "plant-webhook");
    assert_eq!(body["status"], "firing");
    assert_eq!(
        body["groupKey"],
        "{}/{model=\"scrap\"}:{alertname=\"FeatureDrift\"}"
    );
    assert_eq!(
        body["groupLabels"],
        serde_json::json!({"alertname": "FeatureDrift"})
    );
    assert_eq!(
        body["commonLabels"],
        serde_json::json!({"alertname": "FeatureDrift", "model": "scrap", "severity": "warning"})
    );
    assert_eq!(body["commonAnnotations"], serde_json::json!({}));
    assert_eq!(body["externalURL"], "http://mw.plant:9464");
    assert_eq!(body["truncatedAlerts"], 0);
    let alerts = body["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 2);
    for a in alerts {
        assert_eq!(
            obj_keys(a),
            [
                "annotations",
                "endsAt",
                "fingerprint",
                "generatorURL",
                "labels",
                "startsAt",
                "status"
            ]
        );
    }
    let (a0, a1) = (&alerts[0], &alerts[1]);
    assert_eq!(a0["status"], "firing");
    assert_eq!(
        a0["labels"],
        serde_json::json!({"alertname": "FeatureDrift", "feature": "temp", "model": "scrap", "severity": "warning"})
    );
    assert_eq!(
        a0["annotations"],
        serde_json::json!({"summary": "PSI of temp is 0.31", "value": "0.31"})
    );
    assert_eq!(a0["startsAt"], "2024-05-01T12:00:00.123Z");
    assert_eq!(a0["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a0["generatorURL"], "http://mw.plant:9464/ui/models/scrap");
    assert_eq!(a0["fingerprint"], sent.alerts[0].fingerprint.as_str());
    assert_eq!(a0["fingerprint"].as_str().map(str::len), Some(16));
    assert_eq!(a1["status"], "resolved");
    assert_eq!(a1["startsAt"], "2024-05-01T10:40:00Z");
    assert_eq!(a1["endsAt"], "2024-05-01T11:46:40Z");
    assert_eq!(a1["generatorURL"], "");
    // It parses back into the same notification (less the chart series, never sent).
    let back: Notification = serde_json::from_value(body).expect("parses back");
    assert_eq!(back.alerts[1], sent.alerts[1]);
    assert_eq!(back.alerts[0].starts_at, sent.alerts[0].starts_at);
}

#[tokio::test]
async fn webhook_slack_teams_generic_bodies_reach_real_http_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(peer) = recorder(dir.path(), None) else {
        return;
    };
    let sent = notification();
    for (i, format) in ["slack", "teams", "generic"].into_iter().enumerate() {
        let n = notifier(&format!(
            "{{ type: webhook, url: \"http://127.0.0.1:{}/{format}\", format: {format} }}\n",
            peer.port
        ));
        assert_eq!(n.send(&sent).await, DeliveryOutcome::Delivered, "{format}");
        let r = record(dir.path(), i + 1);
        assert_eq!(r["path"], format!("/{format}"));
        assert!(r["headers"].get("x-millwatch-signature").is_none());
        let body: Value = serde_json::from_str(r["body"].as_str().expect("body")).expect("json");
        match format {
            "slack" => {
                assert_eq!(body["text"], "[FIRING:1] FeatureDrift");
                let blocks = body["blocks"].as_array().expect("blocks");
                assert_eq!(blocks[0]["type"], "header");
                assert_eq!(blocks[0]["text"]["type"], "plain_text");
                let first = blocks[1]["text"]["text"].as_str().expect("section");
                assert!(
                    first.contains("FeatureDrift [warning] model=scrap, feature=temp: value 0.31 (threshold 0.2)"),
                    "{first}"
                );
                assert_eq!(
                    blocks.last().map(|b| b["elements"][0]["text"].clone()),
                    Some(Value::from("<http://mw.plant:9464|Open Millwatch>"))
                );
            }
            "teams" => {
                assert_eq!(body["type"], "message");
                let att = &body["attachments"][0];
                assert_eq!(
                    att["contentType"],
                    "application/vnd.microsoft.card.adaptive"
                );
                assert_eq!(att["content"]["type"], "AdaptiveCard");
                assert_eq!(att["content"]["body"][0]["text"], "[FIRING:1] FeatureDrift");
                assert_eq!(att["content"]["actions"][0]["type"], "Action.OpenUrl");
            }
            _ => {
                assert_eq!(body["version"], "1");
                assert_eq!(body["firing"], 1);
                assert_eq!(body["resolved"], 1);
                assert_eq!(body["alerts"][0]["name"], "FeatureDrift");
                assert_eq!(body["alerts"][0]["value"], "0.31");
                assert_eq!(body["alerts"][0]["threshold"], "0.2");
                assert_eq!(body["alerts"][0]["ends_at"], Value::Null);
                assert_eq!(body["alerts"][1]["ends_at"], "2024-05-01T11:46:40Z");
            }
        }
    }
}

#[tokio::test]
async fn webhook_outcomes_from_real_http_server_503_429_400_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(peer) = recorder(dir.path(), None) else {
        return;
    };
    let send = |path: &str, timeout: &str| {
        let n = notifier(&format!(
            "{{ type: webhook, url: \"http://127.0.0.1:{}{path}\", timeout: {timeout} }}\n",
            peer.port
        ));
        async move { n.send(&notification()).await }
    };
    match send("/status/503", "10s").await {
        DeliveryOutcome::Retryable {
            reason,
            retry_after,
        } => {
            assert_eq!(reason, "HTTP 503: recorder answered 503");
            assert_eq!(retry_after, None);
        }
        other => panic!("503: {other:?}"),
    }
    match send("/status/429?retry_after=7", "10s").await {
        DeliveryOutcome::Retryable { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("429: {other:?}"),
    }
    assert_eq!(
        send("/status/400", "10s").await,
        DeliveryOutcome::Permanent {
            reason: "HTTP 400: recorder answered 400".into()
        }
    );
    assert!(send("/status/404", "10s").await.is_permanent());
    assert!(send("/status/302", "10s").await.is_permanent());
    assert_eq!(send("/status/204", "10s").await, DeliveryOutcome::Delivered);
    match send("/delay/3", "500ms").await {
        DeliveryOutcome::Retryable { reason, .. } => {
            assert!(reason.contains("timed out"), "{reason}")
        }
        other => panic!("timeout: {other:?}"),
    }
    let closed = free_port();
    let n = notifier(&format!(
        "{{ type: webhook, url: \"http://127.0.0.1:{closed}/\" }}\n"
    ));
    match n.send(&notification()).await {
        DeliveryOutcome::Retryable { reason, .. } => {
            assert!(reason.contains("connect"), "{reason}");
            assert!(
                !reason.contains(&closed.to_string()),
                "the URL leaks: {reason}"
            );
        }
        other => panic!("closed port: {other:?}"),
    }
    // Every request reached the server (the closed port aside).
    assert_eq!(wait_files(dir.path(), ".json", 7).len(), 7);
    let paths: BTreeMap<String, usize> = wait_files(dir.path(), ".json", 7)
        .iter()
        .map(|f| {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(f).expect("read")).expect("json");
            (v["path"].as_str().unwrap_or_default().to_string(), 1)
        })
        .collect();
    assert!(paths.contains_key("/status/429"), "{paths:?}");
}
