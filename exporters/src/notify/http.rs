//! The HTTP side shared by the webhook and Alertmanager notifiers: a reqwest client over
//! rustls with the `ring` provider, checked custom headers, and one POST turned into a
//! [`DeliveryOutcome`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize};

use super::outcome::{DeliveryOutcome, excerpt};
use super::{NotifyError, Result};
use crate::remote_write::AuthConfig;

/// Headers a notifier sets itself; configuring them is refused.
const RESERVED: [&str; 4] = ["content-type", "content-length", "host", "authorization"];

/// Extra request headers, checked when the configuration is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    /// Checks names and values.
    pub fn new(map: BTreeMap<String, String>) -> std::result::Result<Self, String> {
        for (name, value) in &map {
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!("header `{name}` is set by the notifier itself"));
            }
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a valid header name"))?;
            HeaderValue::from_str(value)
                .map_err(|_| format!("header `{name}` has a value that cannot be sent"))?;
        }
        Ok(Headers(map))
    }

    /// Name, value pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when the configuration has a header of that name (case-insensitive).
    pub fn contains(&self, name: &str) -> bool {
        self.0.keys().any(|k| k.eq_ignore_ascii_case(name))
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Headers::new(BTreeMap::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A client for one receiver: its timeout, headers and credentials.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    http: reqwest::Client,
    headers: HeaderMap,
}

pub(crate) const USER_AGENT: &str = concat!("millwatch/", env!("CARGO_PKG_VERSION"));

impl HttpClient {
    pub(crate) fn new(
        timeout: Duration,
        headers: &Headers,
        auth: Option<&AuthConfig>,
    ) -> Result<Self> {
        let mut map = HeaderMap::new();
        for (name, value) in headers.iter() {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| NotifyError::Header {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
            let v = HeaderValue::from_str(value).map_err(|e| NotifyError::Header {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
            map.insert(n, v);
        }
        if let Some(auth) = auth {
            let text = match auth {
                AuthConfig::Basic { username, password } => format!(
                    "Basic {}",
                    crate::prometheus::translate::base64(
                        format!("{username}:{password}").as_bytes()
                    )
                ),
                AuthConfig::Bearer { token } => format!("Bearer {token}"),
            };
            let mut v = HeaderValue::from_str(&text).map_err(|_| NotifyError::Header {
                name: "Authorization".into(),
                reason: "credentials contain characters a header cannot carry".into(),
            })?;
            v.set_sensitive(true);
            map.insert(header::AUTHORIZATION, v);
        }

        use rustls_platform_verifier::BuilderVerifierExt;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_platform_verifier()?
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirected POST would turn into a GET; a receiver that moved is a config error.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, headers: map })
    }

    /// POSTs `body` with the configured headers plus `extra`, and classifies the answer.
    pub(crate) async fn post(
        &self,
        url: &reqwest::Url,
        content_type: &'static str,
        extra: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
    ) -> DeliveryOutcome {
        let mut headers = self.headers.clone();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        for (n, v) in extra {
            headers.insert(n.clone(), v.clone());
        }
        let sent = self
            .http
            .post(url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // Without the URL: a webhook URL can be the credential.
            Err(e) => return DeliveryOutcome::unreachable(describe(&e.without_url())),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = if (200..300).contains(&status) {
            String::new()
        } else {
            excerpt(&response.text().await.unwrap_or_default())
        };
        DeliveryOutcome::from_http_status(status, retry_after.as_deref(), &text)
    }
}

/// The error with its causes, which is where reqwest keeps "connection refused".
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked_when_read() {
        let ok: Headers =
            serde_saphyr::from_str("{ X-Plant: north, X-Scope-OrgID: a }").expect("ok");
        assert!(ok.contains("x-plant"));
        for (yaml, want) in [
            ("{ Content-Type: text/plain }", "set by the notifier"),
            ("{ authorization: x }", "set by the notifier"),
            ("{ \"bad header\": x }", "not a valid header name"),
            ("{ X-A: \"line\\nbreak\" }", "cannot be sent"),
        ] {
            let err = serde_saphyr::from_str::<Headers>(yaml)
                .expect_err(yaml)
                .to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
