//! The HTTP side of remote write: one POST of a snappy-compressed `WriteRequest` with the
//! protocol headers, through the shared [`crate::http`] layer, its answer judged by the
//! remote-write rule ([`RetryRule::ServerErrors`]).

use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::config::{RESERVED_HEADERS, RemoteWriteConfig};
use crate::http::headers::{Reserved, header_map};
use crate::http::{Class, ClientError, ClientOptions, RetryRule, Sender};

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
    sender: Sender,
    url: reqwest::Url,
}

impl Client {
    pub(crate) fn new(config: &RemoteWriteConfig) -> Result<Self, ClientError> {
        let reserved = Reserved {
            names: &RESERVED_HEADERS,
            setter: "the exporter",
        };
        let pairs = config.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let mut headers = header_map(pairs, reserved, config.auth.as_ref())?;
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            HeaderName::from_static("x-prometheus-remote-write-version"),
            HeaderValue::from_static("0.1.0"),
        );
        // Redirects are followed, as Prometheus' `follow_redirects` does by default.
        let options = config.tls.apply(ClientOptions {
            follow_redirects: true,
            ..ClientOptions::with_timeout(config.timeout)
        })?;
        Ok(Self {
            sender: Sender::new(&options, headers)?,
            url: config.url.clone(),
        })
    }

    /// POSTs an already snappy-compressed `WriteRequest`.
    pub(crate) async fn send(&self, body: Vec<u8>) -> Outcome {
        let sent = self
            .sender
            .post(&self.url, "application/x-protobuf", HeaderMap::new(), body)
            .await;
        let answer = match sent {
            Ok(a) => a,
            Err(reason) => {
                return Outcome::Retry {
                    reason,
                    retry_after: None,
                };
            }
        };
        match RetryRule::ServerErrors.classify(answer.status) {
            Class::Success => Outcome::Sent,
            Class::Retryable => Outcome::Retry {
                reason: format!("status {}: {}", answer.status, answer.body),
                retry_after: answer.retry_after(),
            },
            Class::Permanent => Outcome::Rejected {
                status: answer.status,
                body: answer.body,
            },
        }
    }
}
