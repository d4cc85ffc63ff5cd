//! The Alertmanager notifier against Debian's `prometheus-alertmanager`, started on a free
//! loopback port with a temporary storage path: the alerts arrive through `POST
//! /api/v2/alerts` and `amtool alert query` lists them with their labels and the fingerprint
//! Millwatch computed; a resolved alert leaves the list; an invalid label set is a permanent
//! refusal; one dead Alertmanager of two does not stop delivery.

mod peers;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use millwatch_exporters::notify::alert::labels;
use millwatch_exporters::notify::{
    Alert, DeliveryOutcome, Labels, Notification, Notifier, NotifierConfig,
};
use peers::*;
use serde_json::Value;

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const AMTOOL: &str = "/usr/bin/amtool";

fn alertmanager(dir: &Path) -> Option<Peer> {
    for tool in [ALERTMANAGER, AMTOOL] {
        if !Path::new(tool).exists() {
            missing(
                "prometheus-alertmanager",
                &format!("{tool} not found (apt-get install prometheus-alertmanager)"),
            )?;
        }
    }
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\n  group_wait: 1h\nreceivers:\n  - name: blackhole\n",
    )
    .expect("write config");
    let port = free_port();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_string(),
        "--log.level=warn".to_string(),
    ];
    Some(Peer::start("alertmanager", ALERTMANAGER, &args, port, dir))
}

/// `amtool alert query -o json` (active alerts).
fn amtool_query(port: u16) -> Vec<Value> {
    let out = Command::new(AMTOOL)
        .arg(format!("--alertmanager.url=http://127.0.0.1:{port}"))
        .args(["alert", "query", "-o", "json"])
        .output()
        .expect("run amtool");
    assert!(
        out.status.success(),
        "amtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("amtool json")
}

fn notifier(urls: &[String]) -> Box<dyn Notifier> {
    let yaml = format!(
        "{{ type: alertmanager, urls: [{}], timeout: 5s }}\n",
        urls.join(", ")
    );
    let config: NotifierConfig = serde_saphyr::from_str(&yaml).expect("config parses");
    config.build().expect("notifier builds")
}

fn drift_alerts(start: SystemTime) -> Vec<Alert> {
    ["temp", "rpm"]
        .into_iter()
        .map(|feature| {
            let mut a = Alert::firing(
                labels(&[
                    ("alertname", "FeatureDrift"),
                    ("model", "scrap"),
                    ("feature", feature),
                    ("severity", "warning"),
                ]),
                labels(&[("summary", &format!("PSI of {feature} above 0.2"))]),
                start,
            );
            a.generator_url = format!("http://mw.plant:9464/ui/models/scrap/{feature}");
            a
        })
        .collect()
}

#[tokio::test]
async fn alertmanager_real_server_lists_posted_alerts_in_amtool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(am) = alertmanager(dir.path()) else {
        return;
    };
    let start = SystemTime::now() - Duration::from_secs(300);
    let alerts = drift_alerts(start);
    let n = Notification::new(
        "plant-am",
        "k",
        labels(&[("alertname", "FeatureDrift")]),
        alerts.clone(),
        "http://mw.plant:9464",
    );
    // A dead Alertmanager next to the live one: one that accepts is enough.
    let dead = free_port();
    let urls = [
        format!("\"http://127.0.0.1:{dead}\""),
        format!("\"http://127.0.0.1:{}\"", am.port),
    ];
    assert_eq!(
        notifier(&urls).send(&n).await,
        DeliveryOutcome::Delivered,
        "{}",
        am.log()
    );

    let mut listed = amtool_query(am.port);
    listed.sort_by_key(|a| {
        a["labels"]["feature"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    assert_eq!(listed.len(), 2, "{listed:?}");
    let by_feature = |f: &str| {
        listed
            .iter()
            .find(|a| a["labels"]["feature"] == f)
            .unwrap_or_else(|| panic!("no {f} alert in {listed:?}"))
    };
    for sent in &alerts {
        let got = by_feature(sent.label("feature"));
        let want_labels: serde_json::Map<String, Value> = sent
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        assert_eq!(got["labels"], Value::Object(want_labels));
        assert_eq!(got["annotations"]["summary"], sent.annotation("summary"));
        assert_eq!(got["generatorURL"], sent.generator_url.as_str());
        assert_eq!(got["status"]["state"], "active");
        // Millwatch's fingerprint is Alertmanager's.
        assert_eq!(got["fingerprint"], sent.fingerprint.as_str());
    }

    // Resolving one removes it from the active list.
    let resolved = alerts[0]
        .clone()
        .resolved_at(SystemTime::now() - Duration::from_secs(1));
    let n = Notification::new("plant-am", "k", Labels::new(), vec![resolved], "");
    let live = [format!("\"http://127.0.0.1:{}\"", am.port)];
    assert_eq!(notifier(&live).send(&n).await, DeliveryOutcome::Delivered);
    let listed = amtool_query(am.port);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["labels"]["feature"], alerts[1].label("feature"));
}

#[tokio::test]
async fn alertmanager_real_server_refuses_invalid_labels_permanently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(am) = alertmanager(dir.path()) else {
        return;
    };
    let bad = Alert::firing(
        labels(&[("bad-name", "x")]),
        Labels::new(),
        SystemTime::now(),
    );
    let n = Notification::new("plant-am", "k", Labels::new(), vec![bad], "");
    let live = [format!("\"http://127.0.0.1:{}\"", am.port)];
    match notifier(&live).send(&n).await {
        DeliveryOutcome::Permanent { reason } => {
            assert!(reason.contains("HTTP 400"), "{reason}");
            assert!(reason.contains("invalid label set"), "{reason}");
        }
        other => panic!("invalid labels: {other:?}"),
    }
    assert!(amtool_query(am.port).is_empty());

    // Both Alertmanagers down: retry later.
    drop(am);
    let urls = [
        format!("\"http://127.0.0.1:{}\"", free_port()),
        format!("\"http://127.0.0.1:{}\"", free_port()),
    ];
    let n = Notification::new(
        "plant-am",
        "k",
        Labels::new(),
        drift_alerts(SystemTime::now()),
        "",
    );
    assert!(notifier(&urls).send(&n).await.is_retryable());
}
