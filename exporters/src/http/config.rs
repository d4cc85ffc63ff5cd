//! Configuration pieces every outbound HTTP sender shares: `http://`/`https://` URLs as they are
//! written in the YAML file, and the `tls` block (a custom CA, a client certificate for mTLS)
//! of the OTLP exporter, remote write, the webhook and Alertmanager receivers.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::{ClientError, ClientOptions};

/// TLS settings (rustls). Without `ca_file` the platform's trust store verifies the server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Trust only the CA certificates in this PEM file.
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain (PEM) for mTLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM); needs `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// The client certificate and its key, when both are given; an error when only one is.
    pub fn client_cert(&self) -> Result<Option<(PathBuf, PathBuf)>, ClientError> {
        match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => Ok(Some((c.clone(), k.clone()))),
            (None, None) => Ok(None),
            (Some(path), None) | (None, Some(path)) => Err(ClientError::ClientCert {
                path: path.clone(),
                reason: "tls: cert_file and key_file go together (the client certificate and \
                         its key); give both or neither"
                    .into(),
            }),
        }
    }

    /// `options` with this CA file and client certificate.
    pub fn apply(&self, options: ClientOptions) -> Result<ClientOptions, ClientError> {
        Ok(ClientOptions {
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert()?,
            ..options
        })
    }
}

/// For `skip_serializing_if`: leaves a block out of printed configs while it is unset.
pub fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Parses an `http://` or `https://` URL; `what` names it in the message (`url`, `endpoint`).
pub fn parse_http_url(what: &str, text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| {
        format!("invalid {what} `{text}`: {e} (write it as http://host:port or https://host:port)")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{what} `{text}` must use http or https"));
    }
    Ok(url)
}

/// Serde helpers for URL fields: `#[serde(deserialize_with = "crate::http::config::url::one",
/// serialize_with = "crate::http::config::url::text")]`, and `many`/`texts` for lists.
pub mod url {
    use super::*;

    fn parse<'de, D: Deserializer<'de>>(what: &str, d: D) -> Result<reqwest::Url, D::Error> {
        let s = String::deserialize(d)?;
        parse_http_url(what, &s).map_err(serde::de::Error::custom)
    }

    /// A `url:` field.
    pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<reqwest::Url, D::Error> {
        parse("url", d)
    }

    /// An `endpoint:` field.
    pub fn endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<reqwest::Url, D::Error> {
        parse("endpoint", d)
    }

    /// A list of endpoints.
    pub fn endpoints<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<reqwest::Url>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| parse_http_url("endpoint", s).map_err(serde::de::Error::custom))
            .collect()
    }

    /// Writes a URL back as text.
    pub fn text<S: serde::Serializer>(url: &reqwest::Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(url.as_str())
    }

    /// Writes URLs back as texts.
    pub fn texts<S: serde::Serializer>(urls: &[reqwest::Url], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(urls.iter().map(reqwest::Url::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_or_https() {
        assert!(parse_http_url("url", "https://c:4318/x").is_ok());
        let err = parse_http_url("endpoint", "grpc://c:4317").expect_err("scheme");
        assert!(
            err.contains("endpoint `grpc://c:4317` must use http or https"),
            "{err}"
        );
        let err = parse_http_url("url", "not a url").expect_err("junk");
        assert!(err.starts_with("invalid url `not a url`"), "{err}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let half = TlsConfig {
            cert_file: Some("/c.pem".into()),
            ..TlsConfig::default()
        };
        let err = half.client_cert().expect_err("half").to_string();
        assert!(err.contains("cert_file and key_file go together"), "{err}");
        let both = TlsConfig {
            ca_file: Some("/ca.pem".into()),
            cert_file: Some("/c.pem".into()),
            key_file: Some("/k.pem".into()),
        };
        let o = both
            .apply(ClientOptions::with_timeout(std::time::Duration::from_secs(
                1,
            )))
            .expect("apply");
        assert_eq!(o.ca_file.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert!(o.client_cert.is_some() && o.timeout.is_some());
    }
}
