//! The extra request headers a webhook or Alertmanager receiver may configure, checked when
//! the configuration is read (with the shared checks of [`crate::http::headers`]).

use std::collections::BTreeMap;

use reqwest::header::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize};

use crate::http::headers::{Reserved, checked, header_map};
use crate::http::{ClientOptions, HeaderProblem, Sender};
use crate::remote_write::AuthConfig;

/// Headers a notifier sets itself; configuring them is refused.
const RESERVED: Reserved = Reserved {
    names: &["content-type", "content-length", "host", "authorization"],
    setter: "the notifier",
};

/// Extra request headers, checked when the configuration is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    /// Checks names and values.
    pub fn new(map: BTreeMap<String, String>) -> std::result::Result<Self, String> {
        for (name, value) in &map {
            checked(name, value, RESERVED).map_err(|e| e.to_string())?;
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

    /// These headers with `Authorization` from `auth`, for every request of a notifier.
    fn with_auth(&self, auth: Option<&AuthConfig>) -> Result<HeaderMap, HeaderProblem> {
        header_map(self.iter(), RESERVED, auth)
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Headers::new(BTreeMap::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The HTTP sender of a webhook or Alertmanager receiver: its timeout, headers and
/// credentials; redirects are not followed (a redirected POST would turn into a GET; a
/// receiver that moved is a configuration error).
pub(crate) fn sender(
    timeout: std::time::Duration,
    headers: &Headers,
    auth: Option<&AuthConfig>,
    tls: &crate::http::TlsConfig,
) -> Result<Sender, crate::http::ClientError> {
    Sender::new(
        &tls.apply(ClientOptions::with_timeout(timeout))?,
        headers.with_auth(auth)?,
    )
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
