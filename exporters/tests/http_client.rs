//! The shared outbound HTTP layer against a real HTTPS server (`tests/e2e/peers/http_recorder.py`
//! behind Python's `ssl`, with a certificate from a test CA made by `openssl`): a client that
//! trusts the CA file reaches it with its fixed headers and user agent, one on the platform's
//! trust store does not, and a throttling answer comes back with its `Retry-After`.

mod peers;

use std::path::Path;
use std::time::Duration;

use millwatch_exporters::http::headers::{Reserved, header_map};
use millwatch_exporters::http::{Answer, ClientOptions, Sender, USER_AGENT};
use millwatch_exporters::remote_write::AuthConfig;
use peers::*;
use reqwest::header::HeaderMap;
use serde_json::Value;

const RESERVED: Reserved = Reserved {
    names: &["content-type", "authorization"],
    setter: "the test",
};

fn https_recorder(dir: &Path, ca: &TestCa) -> Option<Peer> {
    if !python_has("ssl") {
        missing(
            "python",
            &format!("`{}` cannot run (set MILLWATCH_PYTHON)", python()),
        )?;
    }
    let port = free_port();
    let args = [
        script("http_recorder.py").display().to_string(),
        "--port".into(),
        port.to_string(),
        "--dir".into(),
        dir.display().to_string(),
        "--tls-cert".into(),
        ca.cert.display().to_string(),
        "--tls-key".into(),
        ca.key.display().to_string(),
    ];
    Some(Peer::start("https_recorder", &python(), &args, port, dir))
}

/// POSTs `body` to `https://127.0.0.1:{port}{path}`, trusting `ca_file` or the platform's store.
async fn post(
    ca_file: Option<&Path>,
    port: u16,
    path: &str,
    body: &[u8],
) -> Result<Answer, String> {
    let url: reqwest::Url = format!("https://127.0.0.1:{port}{path}")
        .parse()
        .expect("url");
    sender(ca_file)
        .post(&url, "application/json", HeaderMap::new(), body.to_vec())
        .await
}

fn sender(ca_file: Option<&Path>) -> Sender {
    let headers = header_map(
        [("X-Plant", "north")],
        RESERVED,
        Some(&AuthConfig::Bearer {
            token: "t0k".into(),
        }),
    )
    .expect("headers");
    let options = ClientOptions {
        ca_file: ca_file.map(Path::to_path_buf),
        ..ClientOptions::with_timeout(Duration::from_secs(10))
    };
    Sender::new(&options, headers).expect("client")
}

#[tokio::test]
async fn a_client_trusting_the_ca_file_reaches_the_server_with_its_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(ca) = test_ca(dir.path(), "plant") else {
        return;
    };
    let Some(peer) = https_recorder(dir.path(), &ca) else {
        return;
    };
    let answer = post(Some(&ca.ca), peer.port, "/hook", b"{}")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", peer.log()));
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body, "",
        "the body is read only when the status is not 2xx"
    );
    let files = wait_files(dir.path(), ".json", 1);
    let got: Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).expect("record")).expect("json");
    assert_eq!(got["path"], "/hook");
    assert_eq!(got["body"], "{}");
    let h = &got["headers"];
    assert_eq!(h["user-agent"], USER_AGENT);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-plant"], "north");
    assert_eq!(h["authorization"], "Bearer t0k");

    let throttled: reqwest::Url =
        format!("https://127.0.0.1:{}/status/429?retry_after=7", peer.port)
            .parse()
            .expect("url");
    let answer = sender(Some(&ca.ca))
        .post(&throttled, "application/json", HeaderMap::new(), Vec::new())
        .await
        .expect("answer");
    assert_eq!(answer.status, 429);
    assert_eq!(answer.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(answer.body, "recorder answered 429");
}

#[tokio::test]
async fn a_server_whose_ca_is_not_trusted_gives_no_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (Some(plant), Some(other)) = (test_ca(dir.path(), "plant"), test_ca(dir.path(), "other"))
    else {
        return;
    };
    let Some(peer) = https_recorder(dir.path(), &plant) else {
        return;
    };
    for (trust, name) in [
        (Some(other.ca.as_path()), "another CA"),
        (None, "the platform's store"),
    ] {
        let err = post(trust, peer.port, "/hook", b"{}")
            .await
            .expect_err(name);
        assert!(err.contains("certificate"), "{name}: {err}");
    }
    assert!(
        wait_files(dir.path(), ".json", 0).is_empty(),
        "nothing was sent"
    );
}
