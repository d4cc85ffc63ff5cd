//! Configured request headers and credentials, checked once when a sender starts (or when
//! its configuration is read), so that a request never fails for a header it cannot carry.

use base64::Engine as _;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::remote_write::AuthConfig;

/// Why a configured header cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderProblem {
    /// The sender sets this header itself.
    #[error("header `{name}` is set by {setter} itself")]
    Reserved {
        /// The header name, as configured.
        name: String,
        /// Who sets it: "the notifier", "the exporter".
        setter: &'static str,
    },
    /// Not a header name (RFC 9110 §5.1: a token).
    #[error("`{name}` is not a valid header name")]
    Name {
        /// The name, as configured.
        name: String,
    },
    /// A value with characters a header cannot carry (control characters, line breaks).
    #[error("header `{name}` has a value that cannot be sent")]
    Value {
        /// The header name.
        name: String,
    },
}

/// Names the sender sets itself, lowercase, and who that is, for the message.
#[derive(Debug, Clone, Copy)]
pub struct Reserved {
    /// Lowercase header names.
    pub names: &'static [&'static str],
    /// "the notifier", "the exporter".
    pub setter: &'static str,
}

/// Checks one configured header: a valid name, a value a header can carry, and not one the
/// sender sets itself.
pub fn checked(
    name: &str,
    value: &str,
    reserved: Reserved,
) -> Result<(HeaderName, HeaderValue), HeaderProblem> {
    if reserved.names.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(HeaderProblem::Reserved {
            name: name.to_string(),
            setter: reserved.setter,
        });
    }
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderProblem::Name {
        name: name.to_string(),
    })?;
    let v = HeaderValue::from_str(value).map_err(|_| HeaderProblem::Value {
        name: name.to_string(),
    })?;
    Ok((n, v))
}

/// The checked headers of a configuration, with `Authorization` from `auth` when given.
pub fn header_map<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    reserved: Reserved,
    auth: Option<&AuthConfig>,
) -> Result<HeaderMap, HeaderProblem> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let (n, v) = checked(name, value, reserved)?;
        map.insert(n, v);
    }
    if let Some(auth) = auth {
        map.insert(header::AUTHORIZATION, authorization(auth)?);
    }
    Ok(map)
}

/// The `Authorization` value for `auth`, marked sensitive (kept out of debug output):
/// `Basic base64(user:password)` (RFC 7617) or `Bearer token` (RFC 6750).
pub fn authorization(auth: &AuthConfig) -> Result<HeaderValue, HeaderProblem> {
    let text = match auth {
        AuthConfig::Basic { username, password } => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        ),
        AuthConfig::Bearer { token } => format!("Bearer {token}"),
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| HeaderProblem::Value {
        name: "Authorization".into(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESERVED: Reserved = Reserved {
        names: &["content-type", "authorization"],
        setter: "the sender",
    };

    #[test]
    fn headers_are_checked() {
        let ok = header_map([("X-Scope-OrgID", "plant-a")], RESERVED, None).expect("ok");
        assert_eq!(ok["x-scope-orgid"], "plant-a");
        for (name, value, want) in [
            (
                "Content-Type",
                "text/plain",
                "`Content-Type` is set by the sender",
            ),
            ("AUTHORIZATION", "x", "`AUTHORIZATION` is set by the sender"),
            ("bad header", "x", "`bad header` is not a valid header name"),
            (
                "X-A",
                "line\nbreak",
                "`X-A` has a value that cannot be sent",
            ),
        ] {
            let err = checked(name, value, RESERVED).expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn credentials_become_an_authorization_header() {
        // RFC 7617 §2's example.
        let basic = AuthConfig::Basic {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        };
        let v = authorization(&basic).expect("basic");
        assert_eq!(v, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(v.is_sensitive());
        let bearer = AuthConfig::Bearer {
            token: "t0k".into(),
        };
        assert_eq!(authorization(&bearer).expect("bearer"), "Bearer t0k");
        let bad = AuthConfig::Bearer {
            token: "a\nb".into(),
        };
        assert!(authorization(&bad).is_err());
        let map = header_map([], RESERVED, Some(&bearer)).expect("map");
        assert_eq!(map[header::AUTHORIZATION], "Bearer t0k");
    }
}
