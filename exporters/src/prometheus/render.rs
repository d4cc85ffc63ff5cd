//! Text formats of `/metrics`: Prometheus 0.0.4 and OpenMetrics 1.0, content negotiation from
//! `Accept`, and gzip when `Accept-Encoding` allows it. Output is deterministic: families by
//! name, series by labels.

use std::io::Write as _;
use std::time::Instant;

use super::exposition::{FamilyState, MetricsExposition, Series, SeriesValue};
use super::names::{MetricType, float_label, push_float};

/// A text format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text format (ends in `# EOF`).
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` header value for a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A rendered `/metrics` answer.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The body, gzip-compressed when `content_encoding` is set.
    pub body: Vec<u8>,
    /// The `Content-Type` header value.
    pub content_type: &'static str,
    /// `Some("gzip")` when the body is compressed: send it as `Content-Encoding`.
    pub content_encoding: Option<&'static str>,
}

fn media_ranges(header: &str) -> impl Iterator<Item = (String, Vec<(String, String)>)> + '_ {
    header.split(',').filter_map(|part| {
        let mut pieces = part.split(';');
        let media = pieces.next()?.trim().to_ascii_lowercase();
        if media.is_empty() {
            return None;
        }
        let params = pieces
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_owned(),
                ))
            })
            .collect();
        Some((media, params))
    })
}

fn quality(params: &[(String, String)]) -> f32 {
    params
        .iter()
        .find(|(k, _)| k == "q")
        .map_or(1.0, |(_, v)| v.parse::<f32>().unwrap_or(0.0))
}

/// Chooses the format for an `Accept` header: OpenMetrics 1.0 when the client asks for
/// `application/openmetrics-text` (unversioned or version 1.0.0) at least as strongly as for
/// anything else, otherwise the 0.0.4 text format (also with no header at all).
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut om = 0.0f32;
    let mut text = 0.0f32;
    for (media, params) in media_ranges(accept) {
        let q = quality(&params);
        let version = params
            .iter()
            .find(|(k, _)| k == "version")
            .map(|(_, v)| v.as_str());
        match media.as_str() {
            "application/openmetrics-text" if matches!(version, None | Some("1.0.0")) => {
                om = om.max(q);
            }
            "text/plain" if matches!(version, None | Some("0.0.4")) => text = text.max(q),
            "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if om > 0.0 && om >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// Whether an `Accept-Encoding` header allows gzip (`gzip` or `*` with a non-zero q-value).
pub fn gzip_accepted(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    media_ranges(header).any(|(coding, params)| {
        (coding == "gzip" || coding == "x-gzip" || coding == "*") && quality(&params) > 0.0
    })
}

fn push_escaped(out: &mut String, s: &str, quote: bool) {
    if !s
        .bytes()
        .any(|b| b == b'\\' || b == b'\n' || (quote && b == b'"'))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// The labels of a series as written between the braces: `a="x",b="y"`.
pub(crate) fn label_text(labels: &[(std::sync::Arc<str>, Box<str>)]) -> Box<str> {
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        push_escaped(&mut out, v, true);
        out.push('"');
    }
    out.into_boxed_str()
}

/// Writes `name{labels,extra="v"} value\n`.
fn push_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    s: &Series,
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !s.text.is_empty() || extra.is_some() {
        out.push('{');
        out.push_str(&s.text);
        if let Some((k, v)) = extra {
            if !s.text.is_empty() {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            push_escaped(out, v, true);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    push_float(out, value);
    out.push('\n');
}

fn render_family(
    out: &mut String,
    name: &str,
    ty: MetricType,
    state: &FamilyState,
    format: Format,
    created: bool,
) {
    if state.len == 0 {
        return;
    }
    let om = format == Format::OpenMetrics;
    // OpenMetrics names a counter family without `_total` and the info family without `_info`.
    let (family, sample_name) = match ty {
        MetricType::Counter if om => (name.strip_suffix("_total").unwrap_or(name), name),
        MetricType::Info if om => (name.strip_suffix("_info").unwrap_or(name), name),
        _ => (name, name),
    };
    let help: &str = if state.help.is_empty() {
        name
    } else {
        &state.help
    };
    out.push_str("# HELP ");
    out.push_str(family);
    out.push(' ');
    push_escaped(out, help, om);
    out.push_str("\n# TYPE ");
    out.push_str(family);
    out.push(' ');
    out.push_str(if om {
        ty.openmetrics_keyword()
    } else {
        ty.text_keyword()
    });
    out.push('\n');
    if om
        && let Some(unit) = &state.unit
        && family.ends_with(&**unit)
    {
        out.push_str("# UNIT ");
        out.push_str(family);
        out.push(' ');
        out.push_str(unit);
        out.push('\n');
    }
    let mut series: Vec<&Series> = state.series.values().flatten().collect();
    series.sort_unstable_by(|a, b| a.text.cmp(&b.text));
    let base = if om && ty == MetricType::Counter {
        family
    } else {
        name
    };
    for s in series {
        let created_secs = (om && created && s.start_nanos > 0).then(|| s.start_nanos as f64 / 1e9);
        match &s.value {
            SeriesValue::Number(v) => {
                push_sample(out, sample_name, "", s, None, *v);
                if ty == MetricType::Counter
                    && let Some(c) = created_secs
                {
                    push_sample(out, base, "_created", s, None, c);
                }
            }
            SeriesValue::Histogram {
                bounds,
                counts,
                sum,
                count,
            } => {
                let mut cumulative = 0u64;
                for (b, c) in bounds.iter().zip(counts) {
                    cumulative += c;
                    let le = float_label(*b);
                    push_sample(
                        out,
                        name,
                        "_bucket",
                        s,
                        Some(("le", &le)),
                        cumulative as f64,
                    );
                }
                push_sample(out, name, "_bucket", s, Some(("le", "+Inf")), *count as f64);
                if let Some(sum) = sum.filter(|_| histogram_sum_exposed(bounds, *sum)) {
                    push_sample(out, name, "_sum", s, None, sum);
                }
                push_sample(out, name, "_count", s, None, *count as f64);
                if let Some(c) = created_secs {
                    push_sample(out, name, "_created", s, None, c);
                }
            }
            SeriesValue::Summary {
                quantiles,
                sum,
                count,
            } => {
                for (q, v) in quantiles {
                    let ql = float_label(*q);
                    push_sample(out, name, "", s, Some(("quantile", &ql)), *v);
                }
                if *sum >= 0.0 {
                    push_sample(out, name, "_sum", s, None, *sum);
                }
                push_sample(out, name, "_count", s, None, *count as f64);
                if let Some(c) = created_secs {
                    push_sample(out, name, "_created", s, None, c);
                }
            }
        }
    }
}

/// The specification exposes a histogram's `_sum` only when it is positive and monotonic,
/// which holds when no bucket is negative.
pub(crate) fn histogram_sum_exposed(bounds: &[f64], sum: Option<f64>) -> bool {
    sum.is_some_and(|s| s >= 0.0) && bounds.first().is_none_or(|b| *b >= 0.0)
}

impl MetricsExposition {
    /// Renders every live series in `format`, after expiring stale ones.
    pub fn render(&self, format: Format, now: Instant) -> String {
        self.expire(now);
        let mut families = self.inner.snapshot();
        families.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let created = self.inner.config.emit_created;
        let mut out = String::with_capacity(64 * 1024);
        for family in families {
            let state = family.lock();
            out.reserve(state.len * 96);
            render_family(&mut out, &family.name, family.ty, &state, format, created);
        }
        if format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        out
    }

    /// Answers a `/metrics` request: negotiates the format from `Accept`, renders, and
    /// gzip-compresses when `Accept-Encoding` allows it. Pass the raw header values.
    pub fn encode(
        &self,
        accept: Option<&str>,
        accept_encoding: Option<&str>,
        now: Instant,
    ) -> Encoded {
        let format = negotiate(accept);
        let text = self.render(format, now);
        if gzip_accepted(accept_encoding) {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(text.len() / 8),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            if enc.write_all(text.as_bytes()).is_ok()
                && let Ok(body) = enc.finish()
            {
                return Encoded {
                    body,
                    content_type: format.content_type(),
                    content_encoding: Some("gzip"),
                };
            }
        }
        Encoded {
            body: text.into_bytes(),
            content_type: format.content_type(),
            content_encoding: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_format_the_client_prefers() {
        let table: &[(Option<&str>, Format)] = &[
            (None, Format::Text),
            (Some(""), Format::Text),
            (Some("*/*"), Format::Text),
            (Some("text/plain"), Format::Text),
            (Some("text/plain;version=0.0.4"), Format::Text),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                Format::OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;version=0.0.1"),
                Format::Text,
            ),
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Format::OpenMetrics,
            ),
            (
                Some("text/plain;q=1, application/openmetrics-text;q=0.5"),
                Format::Text,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Text),
            (Some("APPLICATION/OpenMetrics-Text"), Format::OpenMetrics),
            (Some("application/json"), Format::Text),
        ];
        for (accept, want) in table {
            assert_eq!(negotiate(*accept), *want, "{accept:?}");
        }
        assert_eq!(
            Format::Text.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(
            Format::OpenMetrics
                .content_type()
                .starts_with("application/openmetrics-text; version=1.0.0")
        );
    }

    #[test]
    fn gzip_only_when_allowed() {
        let table = [
            (None, false),
            (Some("gzip"), true),
            (Some("deflate, gzip;q=0.5"), true),
            (Some("gzip;q=0"), false),
            (Some("identity"), false),
            (Some("*"), true),
            (Some("br, x-gzip"), true),
        ];
        for (header, want) in table {
            assert_eq!(gzip_accepted(header), want, "{header:?}");
        }
    }

    #[test]
    fn escaping_of_label_values_and_help() {
        let mut out = String::new();
        push_escaped(&mut out, "a\\b\"c\nd", true);
        assert_eq!(out, r#"a\\b\"c\nd"#);
        let mut out = String::new();
        push_escaped(&mut out, "a\\b\"c\nd", false);
        assert_eq!(out, "a\\\\b\"c\\nd");
    }

    #[test]
    fn histogram_sum_rule() {
        assert!(histogram_sum_exposed(&[0.0, 1.0], Some(3.0)));
        assert!(!histogram_sum_exposed(&[-1.0, 1.0], Some(3.0)));
        assert!(!histogram_sum_exposed(&[1.0], Some(-3.0)));
        assert!(!histogram_sum_exposed(&[1.0], None));
        assert!(histogram_sum_exposed(&[], Some(0.0)));
    }
}
