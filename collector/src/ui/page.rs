//! The frame every page shares (head, navigation, footer) and the small formatting helpers the
//! pages use.

use maud::{DOCTYPE, Markup, html};

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Fleet,
    Alerts,
    Audit,
    None,
}

pub fn frame(title: &str, nav: Nav, body: Markup) -> Markup {
    let current = |n: Nav| if n == nav { Some("page") } else { None };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Millwatch" }
                link rel="stylesheet" href="/ui/style.css";
                link rel="icon" href="/ui/favicon.svg" type="image/svg+xml";
                script src="/ui/live.js" defer {}
            }
            body data-refresh="5" {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        a.brand href="/" { "Millwatch" }
                        a href="/" aria-current=[current(Nav::Fleet)] { "Fleet" }
                        a href="/alerts" aria-current=[current(Nav::Alerts)] { "Alerts & silences" }
                        a href="/audit" aria-current=[current(Nav::Audit)] { "Audit log" }
                        a href="/metrics" { "/metrics" }
                        a href="/api/v1/models" { "API" }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
                footer {
                    "Millwatch " (env!("CARGO_PKG_VERSION")) " · times in UTC · "
                    a href="?" { "refresh" }
                    " · " span id="live" aria-live="polite" { "updates every 5 s with JavaScript" }
                }
            }
        }
    }
}

/// A status badge: ok, drift, degraded, quality, no data, out of control, ...
pub fn badge(status: &str) -> Markup {
    let class = status.replace(' ', "-");
    html! { span class={ "badge " (class) } { (status) } }
}

/// `2026-12-03 14:05:09` from ns since the epoch.
pub fn time(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

/// A time the API gave as RFC 3339, shown as [`time`] shows ns.
pub fn time_text(rfc3339: &str) -> String {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| time(d.as_nanos() as i64))
        .unwrap_or_else(|| rfc3339.to_owned())
}

/// A number with about four significant digits.
pub fn number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// A query string from pairs.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times_read_at_a_glance() {
        assert_eq!(number(0.0123456), "0.0123");
        assert_eq!(number(1234.5678), "1234.6");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1e-9), "1.000e-9");
        assert_eq!(time(1_767_225_600_000_000_000), "2026-01-01 00:00:00");
        assert_eq!(time_text("2026-01-01T00:00:00.5Z"), "2026-01-01 00:00:00");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn text_is_escaped() {
        let page = frame("<x>", Nav::Fleet, html! { p { "<script>" } }).into_string();
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
        assert!(page.contains(r#"aria-current="page">Fleet"#), "{page}");
    }
}
