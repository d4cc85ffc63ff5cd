//! Text formats of `/metrics`: Prometheus 0.0.4 and OpenMetrics 1.0, content negotiation from
//! `Accept`, and gzip when `Accept-Encoding` allows it. Output is deterministic: families by
//! name, series by labels.

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::exposition::MetricsExposition;
use super::names::{MetricType, float_label, push_float};
use super::series::{FamilyState, SeriesValue};

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

/// Appends the labels of a series as written between the braces: `a="x",b="y"`.
pub(crate) fn push_label_text(out: &mut String, labels: &[(std::sync::Arc<str>, Box<str>)]) {
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        push_escaped(out, v, true);
        out.push('"');
    }
}

/// Writes `name{labels,extra="v"} value\n`.
fn push_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &str,
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        out.push_str(labels);
        if let Some((k, v)) = extra {
            if !labels.is_empty() {
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

/// Where a render goes: `out`, handed to `flush` whenever it holds `chunk` bytes or more.
struct Sink<'f> {
    out: String,
    chunk: usize,
    flush: &'f mut dyn FnMut(&mut String),
}

impl Sink<'_> {
    fn check(&mut self) {
        if self.out.len() >= self.chunk {
            (self.flush)(&mut self.out);
        }
    }
}

fn render_family(
    sink: &mut Sink<'_>,
    name: &str,
    ty: MetricType,
    state: &mut FamilyState,
    format: Format,
    created: bool,
) {
    if state.len == 0 {
        return;
    }
    let out = &mut sink.out;
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
    let base = if om && ty == MetricType::Counter {
        family
    } else {
        name
    };
    for (s, labels) in state.ordered() {
        if out.len() >= sink.chunk {
            (sink.flush)(out);
        }
        let created_secs = (om && created && s.start_nanos > 0).then(|| s.start_nanos as f64 / 1e9);
        match &s.value {
            SeriesValue::Number(v) => {
                push_sample(out, sample_name, "", labels, None, *v);
                if ty == MetricType::Counter
                    && let Some(c) = created_secs
                {
                    push_sample(out, base, "_created", labels, None, c);
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
                        labels,
                        Some(("le", &le)),
                        cumulative as f64,
                    );
                }
                push_sample(
                    out,
                    name,
                    "_bucket",
                    labels,
                    Some(("le", "+Inf")),
                    *count as f64,
                );
                if let Some(sum) = sum.filter(|_| histogram_sum_exposed(bounds, *sum)) {
                    push_sample(out, name, "_sum", labels, None, sum);
                }
                push_sample(out, name, "_count", labels, None, *count as f64);
                if let Some(c) = created_secs {
                    push_sample(out, name, "_created", labels, None, c);
                }
            }
            SeriesValue::Summary {
                quantiles,
                sum,
                count,
            } => {
                for (q, v) in quantiles {
                    let ql = float_label(*q);
                    push_sample(out, name, "", labels, Some(("quantile", &ql)), *v);
                }
                if *sum >= 0.0 {
                    push_sample(out, name, "_sum", labels, None, *sum);
                }
                push_sample(out, name, "_count", labels, None, *count as f64);
                if let Some(c) = created_secs {
                    push_sample(out, name, "_created", labels, None, c);
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
        // Sized from the previous render, so that a large body is not copied as it grows.
        let last = self.inner.last_render_len.load(Ordering::Relaxed);
        let mut sink = Sink {
            out: String::with_capacity((last + last / 8).max(64 * 1024)),
            chunk: usize::MAX,
            flush: &mut |_| {},
        };
        self.render_to(&mut sink, format, now);
        self.inner
            .last_render_len
            .store(sink.out.len(), Ordering::Relaxed);
        sink.out
    }

    /// Renders into `sink`, flushing it as it fills and once at the end.
    fn render_to(&self, sink: &mut Sink<'_>, format: Format, now: Instant) {
        self.expire(now);
        let mut families = self.inner.snapshot();
        families.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let created = self.inner.config.emit_created;
        for family in families {
            let mut state = family.lock();
            if sink.chunk == usize::MAX {
                sink.out.reserve(state.len * 96);
            }
            render_family(sink, &family.name, family.ty, &mut state, format, created);
            drop(state);
            sink.check();
        }
        if format == Format::OpenMetrics {
            sink.out.push_str("# EOF\n");
        }
    }

    /// Renders gzip-compressed, passing the text to the compressor in pieces that stay in
    /// the CPU cache instead of writing out and reading back the whole body.
    fn render_gzip(&self, format: Format, now: Instant) -> std::io::Result<Vec<u8>> {
        const CHUNK: usize = 128 * 1024;
        let last = self.inner.last_gzip_len.load(Ordering::Relaxed);
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity((last + last / 8).max(16 * 1024)),
            flate2::Compression::fast(),
        );
        let mut failed = None;
        let mut flush = |buf: &mut String| {
            if failed.is_none()
                && let Err(e) = enc.write_all(buf.as_bytes())
            {
                failed = Some(e);
            }
            buf.clear();
        };
        let mut sink = Sink {
            out: String::with_capacity(CHUNK + 16 * 1024),
            chunk: CHUNK,
            flush: &mut flush,
        };
        self.render_to(&mut sink, format, now);
        let mut rest = std::mem::take(&mut sink.out);
        flush(&mut rest);
        if let Some(e) = failed {
            return Err(e);
        }
        let body = enc.finish()?;
        self.inner
            .last_gzip_len
            .store(body.len(), Ordering::Relaxed);
        Ok(body)
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
        if gzip_accepted(accept_encoding) {
            // Writing into a Vec cannot fail.
            if let Ok(body) = self.render_gzip(format, now) {
                return Encoded {
                    body,
                    content_type: format.content_type(),
                    content_encoding: Some("gzip"),
                };
            }
        }
        Encoded {
            body: self.render(format, now).into_bytes(),
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

    /// A gzip body larger than the pieces it is compressed in inflates to the plain render.
    #[test]
    fn gzip_body_is_the_plain_render() {
        use super::super::OwnType;
        use std::io::Read as _;
        let e = MetricsExposition::default();
        let gauges = e
            .register("millwatch_test_value", "A value.", OwnType::Gauge)
            .expect("register");
        let summaries = e
            .register("millwatch_test_summary", "A summary.", OwnType::Summary)
            .expect("register");
        for i in 0..6000 {
            let id = i.to_string();
            gauges.set(&[("id", &id), ("site", "plant-a")], f64::from(i) * 0.25);
            if i % 3 == 0 {
                summaries.set_summary(&[("id", &id)], &[(0.5, 1.0), (0.9, 2.5)], 7.0, 3);
            }
        }
        for format in [Format::Text, Format::OpenMetrics] {
            let now = Instant::now();
            let plain = e.render(format, now);
            assert!(plain.len() > 3 * 128 * 1024, "{}", plain.len());
            let accept = (format == Format::OpenMetrics).then_some("application/openmetrics-text");
            let zipped = e.encode(accept, Some("gzip"), now);
            assert_eq!(zipped.content_encoding, Some("gzip"));
            assert_eq!(zipped.content_type, format.content_type());
            let mut text = String::new();
            flate2::read::GzDecoder::new(&zipped.body[..])
                .read_to_string(&mut text)
                .expect("gunzip");
            assert!(text == plain, "gzip body differs from the plain render");
        }
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
