//! Building the reqwest client (rustls with the `ring` provider, timeouts, user agent,
//! redirects) and a [`Sender`]: one POST with the sender's fixed headers, answered by an
//! [`Answer`] or by the reason no answer came.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{self, HeaderMap, HeaderValue};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::headers::HeaderProblem;
use super::retry::parse_retry_after;

/// The `User-Agent` of every request Millwatch makes.
pub const USER_AGENT: &str = concat!("millwatch/", env!("CARGO_PKG_VERSION"));

/// Why a client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A configured header or credential cannot be sent.
    #[error(transparent)]
    Header(#[from] HeaderProblem),
    /// The client certificate or its key cannot be read.
    #[error("client certificate `{path}`: {reason}")]
    ClientCert {
        /// The file, as configured.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The CA file cannot be read or holds no certificate.
    #[error("CA file `{path}`: {reason}")]
    CaFile {
        /// The file, as configured.
        path: PathBuf,
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

/// How a client connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// Longest time for one request, connecting included; `None`: no limit.
    pub timeout: Option<Duration>,
    /// Follow up to 10 redirects; otherwise a 3xx is the answer. A redirected POST turns into
    /// a GET on 301, 302 and 303, so senders that POST to a fixed receiver do not follow.
    pub follow_redirects: bool,
    /// Trust only the CA certificates of this PEM file instead of the platform's trust store.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM chain, PEM private key) presented for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl ClientOptions {
    /// A sender's options: `timeout` per request, no redirects, the platform's trust store.
    pub fn with_timeout(timeout: Duration) -> Self {
        ClientOptions {
            timeout: Some(timeout),
            ..ClientOptions::default()
        }
    }
}

/// Builds a reqwest client over rustls (`ring` provider) with Millwatch's user agent.
pub fn build(options: &ClientOptions) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls(options)?)
        .user_agent(USER_AGENT);
    if let Some(timeout) = options.timeout {
        builder = builder.timeout(timeout).connect_timeout(timeout);
    }
    if !options.follow_redirects {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    Ok(builder.build()?)
}

/// rustls with the `ring` provider (aws-lc-rs needs cmake and nasm), verifying servers with
/// the platform's verifier, or against the certificates of `ca_file` only, presenting the
/// client certificate when one is configured.
pub fn tls(options: &ClientOptions) -> Result<rustls::ClientConfig, ClientError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let builder = match options.ca_file.as_deref() {
        None => builder.with_platform_verifier()?,
        Some(path) => builder.with_root_certificates(roots(path)?),
    };
    match &options.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let (chain, key) = client_identity(cert, key)?;
            Ok(builder.with_client_auth_cert(chain, key)?)
        }
    }
}

/// The certificate chain and private key of a client certificate, from PEM files.
pub fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    ClientError,
> {
    let fail = |path: &Path, reason: String| ClientError::ClientCert {
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(fail(
            cert,
            "no PEM certificate in it (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| fail(key, format!("no readable PEM private key: {e}")))?;
    Ok((chain, key))
}

/// The CA certificates of a PEM file.
fn roots(path: &Path) -> Result<rustls::RootCertStore, ClientError> {
    let fail = |reason: String| ClientError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
        roots.add(cert.map_err(|e| fail(e.to_string()))?)?;
    }
    if roots.is_empty() {
        return Err(fail(
            "no PEM certificate in it (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(roots)
}

/// The final answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The raw `Retry-After` header, if the server sent one.
    pub retry_after: Option<String>,
    /// The first 512 characters of the body when the status is not 2xx, for the log; empty
    /// otherwise.
    pub body: String,
}

impl Answer {
    /// How long the server asked the sender to wait, if it said so in a form one can read.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
    }
}

/// A client for one destination's kind of request: its options, fixed headers and
/// credentials.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    headers: HeaderMap,
}

impl Sender {
    /// Builds the client; `headers` go with every request (see [`super::headers`]).
    pub fn new(options: &ClientOptions, headers: HeaderMap) -> Result<Self, ClientError> {
        Ok(Sender {
            http: build(options)?,
            headers,
        })
    }

    /// POSTs `body` as `content_type` with the fixed headers plus `extra`. `Err` says why no
    /// answer came (connection refused, DNS, timeout, TLS), without the URL: a webhook URL can
    /// be the credential.
    pub async fn post(
        &self,
        url: &reqwest::Url,
        content_type: &'static str,
        extra: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        self.send(url, content_type, extra, body, false)
            .await
            .map(|(answer, _)| answer)
    }

    /// [`post`](Self::post), also returning the body of a 2xx answer (e.g. an OTLP
    /// `partial_success`).
    pub async fn post_reading(
        &self,
        url: &reqwest::Url,
        content_type: &'static str,
        extra: HeaderMap,
        body: Vec<u8>,
    ) -> Result<(Answer, Vec<u8>), String> {
        self.send(url, content_type, extra, body, true).await
    }

    async fn send(
        &self,
        url: &reqwest::Url,
        content_type: &'static str,
        extra: HeaderMap,
        body: Vec<u8>,
        read_success: bool,
    ) -> Result<(Answer, Vec<u8>), String> {
        let mut headers = self.headers.clone();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.extend(extra);
        let response = self
            .http
            .post(url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e.without_url()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (body, content) = if !response.status().is_success() {
            (
                excerpt(&response.text().await.unwrap_or_default()),
                Vec::new(),
            )
        } else if !read_success {
            (String::new(), Vec::new())
        } else {
            let content = response
                .bytes()
                .await
                .map_err(|e| describe(&e.without_url()))?;
            (String::new(), content.to_vec())
        };
        Ok((
            Answer {
                status,
                retry_after,
                body,
            },
            content,
        ))
    }
}

/// The error with its causes, which is where reqwest keeps "connection refused".
pub fn describe(e: &reqwest::Error) -> String {
    let head = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    with_causes(head.to_string(), e)
}

/// `text`, then the text of each cause of `e` that `text` does not say already, after `: `.
pub fn with_causes(mut text: String, e: &dyn std::error::Error) -> String {
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The first 512 characters of an answer body, trailing space cut: enough for a log line.
pub fn excerpt(text: &str) -> String {
    let mut t: String = text.chars().take(512).collect();
    t.truncate(t.trim_end().len());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_bounded() {
        assert_eq!(excerpt("ok  \n"), "ok");
        assert_eq!(excerpt(&"é".repeat(1000)).chars().count(), 512);
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let missing = dir.path().join("missing.pem");
        for (path, want) in [(empty, "no PEM certificate"), (missing, "No such file")] {
            let options = ClientOptions {
                ca_file: Some(path.clone()),
                ..ClientOptions::default()
            };
            let err = build(&options).expect_err("refused").to_string();
            assert!(err.contains(want), "{}: {err}", path.display());
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
    }
}
