//! Configuration values that must not show up in logs or printed configurations: passwords,
//! signing keys, and webhook URLs (a Slack or Teams webhook URL is itself the credential).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const REDACTED: &str = "<redacted>";

/// A secret string: printed and serialised as `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// An `http://` or `https://` URL whose path and query are secret: printed and serialised as
/// `https://hooks.slack.com/<redacted>`.
#[derive(Clone, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(with = "String")]
pub struct SecretUrl(reqwest::Url);

impl SecretUrl {
    /// Parses and checks the scheme.
    pub fn parse(text: &str) -> Result<Self, String> {
        http_url(text).map(SecretUrl)
    }

    /// The URL itself, for the one place that sends to it.
    pub fn expose(&self) -> &reqwest::Url {
        &self.0
    }

    /// Scheme, host and port only.
    pub fn redacted(&self) -> String {
        format!("{}/{REDACTED}", self.0.origin().ascii_serialization())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // The message names the problem but not the URL, which may be the credential.
        http_url(&text)
            .map(SecretUrl)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses an `http://` or `https://` URL; the error does not repeat the text.
pub(crate) fn http_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("invalid url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(format!(
            "url must be http:// or https:// with a host, not `{}:`",
            url.scheme()
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s: Secret = serde_saphyr::from_str("hunter2").expect("parses");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"<redacted>\"");

        let u: SecretUrl =
            serde_saphyr::from_str("https://hooks.slack.com/services/T0/B0/XYZ").expect("parses");
        assert_eq!(u.expose().path(), "/services/T0/B0/XYZ");
        assert_eq!(format!("{u:?}"), "https://hooks.slack.com/<redacted>");
        assert!(!serde_json::to_string(&u).expect("json").contains("XYZ"));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for (text, want) in [
            ("ftp://host/secret", "http:// or https://"),
            ("not a url", "invalid url"),
            ("mailto:secret@example.net", "http:// or https://"),
        ] {
            let err = SecretUrl::parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains("secret"), "{text}: {err}");
        }
    }
}
