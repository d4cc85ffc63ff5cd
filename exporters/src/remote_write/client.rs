//! The HTTP side of remote write: one POST of a snappy-compressed `WriteRequest` with the
//! protocol headers, over rustls (ring provider) for `https://` URLs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::config::{AuthConfig, RESERVED_HEADERS, RemoteWriteConfig};
use super::retry::{Decision, classify, parse_retry_after};

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A configured header cannot be sent.
    #[error("header `{name}`: {reason}")]
    Header {
        /// The header name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// TLS setup failed.
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// The result of one POST.
#[derive(Debug)]
pub(crate) enum Outcome {
    Sent,
    /// Try again later (5xx, 429, network trouble).
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The receiver refused the data for good.
    Rejected {
        status: u16,
        body: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
}

pub(crate) const USER_AGENT: &str = concat!("millwatch/", env!("CARGO_PKG_VERSION"));

impl Client {
    pub(crate) fn new(config: &RemoteWriteConfig) -> Result<Self, ClientError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ClientError::Header {
                    name: name.clone(),
                    reason: "set by the exporter itself".into(),
                });
            }
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| ClientError::Header {
                name: name.clone(),
                reason: e.to_string(),
            })?;
            let v = HeaderValue::from_str(value).map_err(|e| ClientError::Header {
                name: name.clone(),
                reason: e.to_string(),
            })?;
            headers.insert(n, v);
        }
        if let Some(AuthConfig::Bearer { token }) = &config.auth {
            let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| {
                ClientError::Header {
                    name: "Authorization".into(),
                    reason: e.to_string(),
                }
            })?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        if let Some(AuthConfig::Basic { username, password }) = &config.auth {
            let mut v = HeaderValue::from_str(&format!(
                "Basic {}",
                crate::prometheus::translate::base64(format!("{username}:{password}").as_bytes())
            ))
            .map_err(|e| ClientError::Header {
                name: "Authorization".into(),
                reason: e.to_string(),
            })?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            HeaderName::from_static("x-prometheus-remote-write-version"),
            HeaderValue::from_static("0.1.0"),
        );

        use rustls_platform_verifier::BuilderVerifierExt;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_platform_verifier()?
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(USER_AGENT)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(Self {
            http,
            url: config.url.clone(),
            headers,
        })
    }

    /// POSTs an already snappy-compressed `WriteRequest`.
    pub(crate) async fn send(&self, body: Vec<u8>) -> Outcome {
        let result = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    reason: format!("request failed: {e}"),
                    retry_after: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        match classify(status) {
            Decision::Success => Outcome::Sent,
            Decision::Retry => Outcome::Retry {
                reason: format!("status {status}: {}", body_excerpt(response).await),
                retry_after,
            },
            Decision::Drop => Outcome::Rejected {
                status,
                body: body_excerpt(response).await,
            },
        }
    }
}

async fn body_excerpt(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let mut t: String = text.chars().take(512).collect();
    t.truncate(t.trim_end().len());
    t
}

#[cfg(test)]
mod tests {

    #[test]
    fn basic_auth_is_base64() {
        assert_eq!(
            crate::prometheus::translate::base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
