//! What someone who opens a Millwatch address in a browser or with curl gets instead of an
//! empty 404: where `/metrics`, the API, the OTLP endpoints and the docs are. `GET /` answers
//! 200 (a browser asking for HTML gets the web UI there, `crate::ui`), any other unknown path
//! 404, both with the same JSON.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::Config;

/// Which listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Api,
    OtlpHttp,
}

/// The addresses the pointers name.
#[derive(Debug, Clone)]
pub struct Directory {
    api: SocketAddr,
    otlp_http: Option<SocketAddr>,
    otlp_grpc: Option<SocketAddr>,
}

/// The docs, named by where they live: the binary cannot know a URL for them.
const DOCS: &str = "README.md (sections 'Sending data' and 'HTTP API') and docs/signals.md \
                    in the Millwatch source; `millwatch --help`";

impl Directory {
    pub fn new(config: &Config) -> Directory {
        let otlp = &config.receivers.otlp;
        Directory {
            api: config.api.endpoint,
            otlp_http: otlp.http.enabled.then_some(otlp.http.endpoint),
            otlp_grpc: otlp.grpc.enabled.then_some(otlp.grpc.endpoint),
        }
    }

    /// The answer to a request no route took: `GET /` gets 200, anything else 404 saying what
    /// was asked for.
    pub fn answer(
        &self,
        here: Listener,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Response {
        let found = *method == Method::GET && uri.path() == "/";
        let error = (!found).then(|| format!("no such resource: {method} {}", uri.path()));
        let status = if found {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        self.respond(here, status, error, headers)
    }

    /// The answer to a known path asked with the wrong method (405, with `Allow`).
    pub fn wrong_method(
        &self,
        here: Listener,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        allow: &str,
    ) -> Response {
        let error = format!("{method} {} is not served here: use {allow}", uri.path());
        let mut response = self.respond(here, StatusCode::METHOD_NOT_ALLOWED, Some(error), headers);
        if let Ok(allow) = header::HeaderValue::from_str(allow) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }

    /// Gives the bare 405 of a route asked with a method it does not serve (axum's, with an
    /// `Allow` header and no body) the same explaining JSON as every other error.
    pub async fn explain_wrong_method(
        State(directory): State<Arc<Directory>>,
        request: Request,
        next: Next,
    ) -> Response {
        let (method, uri, headers) = (
            request.method().clone(),
            request.uri().clone(),
            request.headers().clone(),
        );
        let response = next.run(request).await;
        if response.status() != StatusCode::METHOD_NOT_ALLOWED
            || response.headers().contains_key(header::CONTENT_TYPE)
        {
            return response;
        }
        let allow = response
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        directory.wrong_method(Listener::Api, &method, &uri, &headers, &allow)
    }

    fn respond(
        &self,
        here: Listener,
        status: StatusCode,
        error: Option<String>,
        headers: &HeaderMap,
    ) -> Response {
        let body = self.body(here, error, host_of(headers));
        let text = serde_json::to_string_pretty(&body).unwrap_or_default() + "\n";
        (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
    }

    /// The JSON body; `host` is the host the client used (from `Host`), for addresses that
    /// listen on every interface.
    fn body(&self, here: Listener, error: Option<String>, host: Option<&str>) -> serde_json::Value {
        let api = base_url(self.api, host);
        let about = match here {
            Listener::Api => "Millwatch's API: Prometheus metrics, the JSON API, health.",
            Listener::OtlpHttp => {
                "Millwatch's OTLP/HTTP receiver: POST OTLP (protobuf or JSON) to /v1/metrics, \
                 /v1/logs or /v1/traces. Metrics and the API are on the API address."
            }
        };
        let mut body = json!({
            "service": "millwatch",
            "version": env!("CARGO_PKG_VERSION"),
            "about": about,
            "metrics": format!("{api}/metrics"),
            "api": [
                format!("{api}/api/v1/stats"),
                format!("{api}/api/v1/models"),
                format!("{api}/api/v1/alerts"),
                format!("{api}/api/v1/silences"),
                format!("{api}/api/v1/notifications"),
                format!("{api}/api/v1/audit"),
                format!("{api}/api/v1/registry"),
            ],
            "health": [format!("{api}/healthz"), format!("{api}/readyz")],
            "otlp": {
                "http": self.otlp_http.map(|a| {
                    let base = base_url(a, host);
                    ["metrics", "logs", "traces"].map(|s| format!("POST {base}/v1/{s}"))
                }),
                "grpc": self.otlp_grpc.map(|a| base_url(a, host)),
            },
            "docs": DOCS,
        });
        if let (Some(error), Some(map)) = (error, body.as_object_mut()) {
            map.insert("error".into(), error.into());
        }
        body
    }
}

/// `http://ADDR`, with the client's host in place of an address that listens everywhere
/// (`0.0.0.0`, `::`), which is no address to connect to.
fn base_url(addr: SocketAddr, host: Option<&str>) -> String {
    if !addr.ip().is_unspecified() {
        return format!("http://{addr}");
    }
    let host = host.unwrap_or("localhost");
    format!("http://{host}:{}", addr.port())
}

/// The host part of the `Host` header (without its port), if it is a plain host name or address.
fn host_of(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::HOST)?.to_str().ok()?;
    let host = match value.strip_prefix('[') {
        // [::1]:9464
        Some(rest) => &value[..rest.find(']')? + 2],
        None => value.split(':').next()?,
    };
    let plain = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    plain.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(api: &str) -> Directory {
        Directory {
            api: api.parse().expect("addr"),
            otlp_http: Some("127.0.0.1:4318".parse().expect("addr")),
            otlp_grpc: None,
        }
    }

    #[test]
    fn pointers_name_the_api_and_otlp_addresses() {
        let body = directory("127.0.0.1:9464").body(Listener::OtlpHttp, None, Some("example"));
        assert_eq!(body["metrics"], "http://127.0.0.1:9464/metrics");
        assert_eq!(body["api"][0], "http://127.0.0.1:9464/api/v1/stats");
        assert_eq!(
            body["otlp"]["http"][1],
            "POST http://127.0.0.1:4318/v1/logs"
        );
        assert!(body["otlp"]["grpc"].is_null(), "disabled");
        assert!(body.get("error").is_none());
        assert!(
            body["docs"]
                .as_str()
                .is_some_and(|d| d.contains("docs/signals.md"))
        );
    }

    #[test]
    fn an_address_listening_everywhere_is_named_by_the_clients_host() {
        let d = directory("0.0.0.0:9464");
        let body = d.body(
            Listener::Api,
            Some("no such resource: GET /x".into()),
            Some("edge-7"),
        );
        assert_eq!(body["metrics"], "http://edge-7:9464/metrics");
        assert_eq!(body["error"], "no such resource: GET /x");
        let body = d.body(Listener::Api, None, None);
        assert_eq!(body["metrics"], "http://localhost:9464/metrics");
    }

    #[test]
    fn the_host_header_is_used_only_when_plain() {
        let host = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, v.parse().expect("header"));
            host_of(&h).map(str::to_owned)
        };
        assert_eq!(host("edge-7:4318").as_deref(), Some("edge-7"));
        assert_eq!(host("10.0.0.5").as_deref(), Some("10.0.0.5"));
        assert_eq!(host("[::1]:4318").as_deref(), Some("[::1]"));
        assert_eq!(host("evil\"><script>"), None);
        assert_eq!(host(""), None);
    }
}
