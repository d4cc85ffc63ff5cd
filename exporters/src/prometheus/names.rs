//! OpenTelemetry → Prometheus names: metric names with unit and type suffixes, label names,
//! and the number formatting shared by the exposition and remote write.
//!
//! Follows the OpenTelemetry specification "Prometheus and OpenMetrics Compatibility"
//! (section "OTLP Metric points to Prometheus").

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The Prometheus type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricType {
    /// A value that goes up and down (OTLP gauges and non-monotonic cumulative sums).
    Gauge,
    /// A monotonic cumulative sum; its name ends in `_total`.
    Counter,
    /// Classic histogram: `_bucket{le}`, `_sum`, `_count` (also exponential histograms, converted).
    Histogram,
    /// `{quantile}` samples plus `_sum` and `_count`.
    Summary,
    /// OpenMetrics info (only `target_info`); a gauge of value 1 in the 0.0.4 text format.
    Info,
}

impl MetricType {
    /// The keyword used on the `# TYPE` line of the Prometheus 0.0.4 text format.
    pub fn text_keyword(self) -> &'static str {
        match self {
            MetricType::Gauge | MetricType::Info => "gauge",
            MetricType::Counter => "counter",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
        }
    }

    /// The keyword used on the `# TYPE` line of OpenMetrics 1.0.
    pub fn openmetrics_keyword(self) -> &'static str {
        match self {
            MetricType::Info => "info",
            other => other.text_keyword(),
        }
    }
}

fn is_metric_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

fn is_label_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (!first && c.is_ascii_digit())
}

/// Replaces every character outside the allowed set with `_`, collapses runs of `_` into one,
/// and prefixes `_` when the name would start with a digit. Returns the input unchanged (and
/// unallocated) when it is already valid.
fn sanitize(name: &str, allowed: fn(char, bool) -> bool) -> Cow<'_, str> {
    let valid = !name.is_empty()
        && !name.contains("__")
        && name.chars().enumerate().all(|(i, c)| allowed(c, i == 0));
    if valid {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    for c in name.chars() {
        let c = if allowed(c, false) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push('_');
    }
    Cow::Owned(out)
}

/// Sanitises a metric name to `[a-zA-Z_:][a-zA-Z0-9_:]*` as the specification says.
pub fn sanitize_metric_name(name: &str) -> Cow<'_, str> {
    sanitize(name, is_metric_char)
}

/// Sanitises a label name to `[a-zA-Z_][a-zA-Z0-9_]*` as the specification says.
pub fn sanitize_label_name(name: &str) -> Cow<'_, str> {
    sanitize(name, is_label_char)
}

/// Whether `name` is a valid Prometheus label name that this crate would not rewrite.
pub fn is_valid_label_name(name: &str) -> bool {
    matches!(sanitize_label_name(name), Cow::Borrowed(_))
}

/// Whether `name` is a valid Prometheus metric name that this crate would not rewrite.
pub fn is_valid_metric_name(name: &str) -> bool {
    matches!(sanitize_metric_name(name), Cow::Borrowed(_))
}

fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tebibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        "1" => "ratio",
        _ => return None,
    })
}

fn per_unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// Drops `{...}` annotations, then maps a UCUM unit to its Prometheus word; unknown units are
/// kept, sanitised to label characters with surrounding `_` trimmed.
fn unit_part(unit: &str, word: fn(&str) -> Option<&'static str>) -> String {
    let mut plain = String::with_capacity(unit.len());
    let mut depth = 0usize;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            c if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let plain = plain.trim();
    if plain.is_empty() {
        return String::new();
    }
    if let Some(w) = word(plain) {
        return w.to_owned();
    }
    let cleaned: String = plain
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut out = String::with_capacity(cleaned.len());
    for c in cleaned.chars() {
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end_matches('_').to_owned()
}

/// The Prometheus unit for an OTLP (UCUM) unit: `s` → `seconds`, `By` → `bytes`, `Cel` →
/// `celsius`, `1` → `ratio`, `{packet}` → none, `m/s` → `meters_per_second`, `{req}/s` →
/// `per_second`. `None` when the unit carries nothing Prometheus can name.
pub fn prometheus_unit(unit: &str) -> Option<String> {
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m, Some(p)),
        None => (unit, None),
    };
    let main = unit_part(main, unit_word);
    let per = per.map(|p| unit_part(p, per_unit_word)).unwrap_or_default();
    let out = match (main.is_empty(), per.is_empty()) {
        (true, true) => return None,
        (false, true) => main,
        (true, false) => format!("per_{per}"),
        (false, false) => format!("{main}_per_{per}"),
    };
    Some(out)
}

/// A translated metric family name and the unit to announce on its `# UNIT` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusName {
    /// The full sample name for gauges and counters, the family base name for histograms
    /// and summaries (`_bucket`, `_sum`, `_count` are appended when rendering).
    pub name: Arc<str>,
    /// The unit as a Prometheus word, when the name carries it as a suffix.
    pub unit: Option<Arc<str>>,
}

/// Translates an OTLP metric name and unit for a family of `ty`: sanitises the name, appends
/// the unit suffix unless the name already ends with it, then `_total` for counters.
pub fn prometheus_name(name: &str, unit: &str, ty: MetricType) -> PrometheusName {
    let mut base = sanitize_metric_name(name).into_owned();
    if ty == MetricType::Counter
        && let Some(stripped) = base.strip_suffix("_total")
        && !stripped.is_empty()
    {
        base.truncate(stripped.len());
    }
    let unit = prometheus_unit(unit);
    if let Some(u) = &unit {
        let already = base == *u || base.ends_with(&format!("_{u}"));
        if !already {
            if !base.ends_with('_') {
                base.push('_');
            }
            base.push_str(u);
        }
    }
    if ty == MetricType::Counter {
        if !base.ends_with('_') {
            base.push('_');
        }
        base.push_str("total");
    }
    PrometheusName {
        name: Arc::from(base),
        unit: unit.map(Arc::from),
    }
}

/// Appends `v` as Prometheus writes numbers: `+Inf`, `-Inf`, `NaN`, integers without a
/// fraction, otherwise the shortest representation that reads back to the same `f64`.
pub fn push_float(out: &mut String, v: f64) {
    use std::fmt::Write;
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.abs() < 1e15 && (v as i64) as f64 == v {
        // An integer, exact: |v| < 2^53, so the cast loses nothing. `-0` prints as `0`.
        // (Casts rather than `fract`, which is a libm call on baseline x86-64.)
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else if !push_short_decimal(out, v) {
        let _ = write!(out, "{v:?}");
    }
}

/// Writes `v` when it reads back from at most six decimals, exactly as `{v:?}` would (the
/// shortest representation, in positional notation from 1e-4 on), without the general
/// shortest-digits search: most readings have few decimals, and formatting 100k of them
/// through `fmt` is a tenth of a render. False, writing nothing, for any other value
/// (integers included: the caller writes those).
///
/// Below 1e9 two numbers with six decimals lie further apart (1e-6) than an `f64` and its
/// neighbours (at most 1.2e-7), so at most one of them reads back to `v`: the shortest one,
/// which is that one with its trailing zeros dropped.
fn push_short_decimal(out: &mut String, v: f64) -> bool {
    let a = v.abs();
    if !(1e-4..1e9).contains(&a) {
        return false;
    }
    // Rounded to the nearest integer (below 1e15, so exactly representable and cast
    // exactly; adding 0.5 is exact there too).
    let mut m = (a * 1e6 + 0.5) as u64;
    if m as f64 / 1e6 != a {
        return false;
    }
    let mut decimals = 6;
    while decimals > 0 && m.is_multiple_of(10) {
        m /= 10;
        decimals -= 1;
    }
    if decimals == 0 {
        return false;
    }
    if v < 0.0 {
        out.push('-');
    }
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(m);
    match digits.len().checked_sub(decimals) {
        Some(int) if int > 0 => {
            out.push_str(&digits[..int]);
            out.push('.');
            out.push_str(&digits[int..]);
        }
        _ => {
            out.push_str("0.");
            for _ in digits.len()..decimals {
                out.push('0');
            }
            out.push_str(digits);
        }
    }
    true
}

/// [`push_float`] into a new string; used for `le` and `quantile` label values so that the
/// scraped and the remote-written series carry identical labels.
pub fn float_label(v: f64) -> String {
    let mut s = String::new();
    push_float(&mut s, v);
    s
}

type NameKey = (Box<str>, MetricType);
/// Translations by OTLP name, then by (unit, type).
type MetricNames = HashMap<Box<str>, Vec<(NameKey, PrometheusName)>>;

/// Caches translated metric and label names so the ingest path does not re-sanitise the
/// same names for every point. Bounded: past `capacity` entries new names are translated
/// without being cached.
#[derive(Debug)]
pub struct NameCache {
    metrics: RwLock<MetricNames>,
    labels: RwLock<HashMap<Box<str>, Arc<str>>>,
    capacity: usize,
}

impl NameCache {
    /// A cache holding at most `capacity` metric names and as many label names.
    pub fn new(capacity: usize) -> Self {
        Self {
            metrics: RwLock::new(HashMap::new()),
            labels: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// [`prometheus_name`], cached per (name, unit, type).
    pub fn metric(&self, name: &str, unit: &str, ty: MetricType) -> PrometheusName {
        {
            let map = self.metrics.read().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = map.get(name).and_then(|v| {
                v.iter()
                    .find(|((u, t), _)| **u == *unit && *t == ty)
                    .map(|(_, n)| n.clone())
            }) {
                return found;
            }
        }
        let translated = prometheus_name(name, unit, ty);
        let mut map = self.metrics.write().unwrap_or_else(|e| e.into_inner());
        if map.len() < self.capacity || map.contains_key(name) {
            map.entry(name.into())
                .or_default()
                .push(((unit.into(), ty), translated.clone()));
        }
        translated
    }

    /// [`sanitize_label_name`] as a shared string, cached for names that need rewriting.
    pub fn label(&self, name: &str) -> Arc<str> {
        {
            let map = self.labels.read().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = map.get(name) {
                return found.clone();
            }
        }
        let translated: Arc<str> = Arc::from(sanitize_label_name(name).as_ref());
        let mut map = self.labels.write().unwrap_or_else(|e| e.into_inner());
        if map.len() < self.capacity {
            map.insert(name.into(), translated.clone());
        }
        translated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_follow_the_specification() {
        use MetricType::*;
        let table: &[(&str, &str, MetricType, &str)] = &[
            ("hw.temperature", "Cel", Gauge, "hw_temperature_celsius"),
            (
                "machine.cycle.duration",
                "s",
                Histogram,
                "machine_cycle_duration_seconds",
            ),
            (
                "gen_ai.client.operation.duration",
                "s",
                Histogram,
                "gen_ai_client_operation_duration_seconds",
            ),
            (
                "system.memory.utilization",
                "1",
                Gauge,
                "system_memory_utilization_ratio",
            ),
            (
                "machine.spindle.load",
                "1",
                Gauge,
                "machine_spindle_load_ratio",
            ),
            ("hw.energy", "J", Counter, "hw_energy_joules_total"),
            ("hw.errors", "{error}", Counter, "hw_errors_total"),
            (
                "http.server.requests",
                "{request}",
                Counter,
                "http_server_requests_total",
            ),
            ("requests_total", "", Counter, "requests_total"),
            ("requests.total", "", Counter, "requests_total"),
            (
                "process.cpu.time",
                "s",
                Counter,
                "process_cpu_time_seconds_total",
            ),
            (
                "process_cpu_seconds_total",
                "s",
                Counter,
                "process_cpu_seconds_total",
            ),
            ("latency_seconds", "s", Gauge, "latency_seconds"),
            (
                "system.filesystem.usage",
                "By",
                Gauge,
                "system_filesystem_usage_bytes",
            ),
            (
                "system.network.io",
                "By",
                Counter,
                "system_network_io_bytes_total",
            ),
            ("queue.size", "{item}", Gauge, "queue_size"),
            (
                "machine.vibration.rms",
                "mm/s",
                Gauge,
                "machine_vibration_rms_mm_per_second",
            ),
            ("net.rate", "{packet}/s", Gauge, "net_rate_per_second"),
            ("speed", "m/s", Gauge, "speed_meters_per_second"),
            (
                "gen_ai.client.token.usage",
                "{token}",
                Histogram,
                "gen_ai_client_token_usage",
            ),
            ("hw.fan.speed", "rpm", Gauge, "hw_fan_speed_rpm"),
            ("hw.power", "W", Gauge, "hw_power_watts"),
            (
                "disk.io.time",
                "ms",
                Counter,
                "disk_io_time_milliseconds_total",
            ),
            ("ünïcode-näme", "", Gauge, "_n_code_n_me"),
            ("a..b__c", "", Gauge, "a_b_c"),
            ("2xx.responses", "", Counter, "_2xx_responses_total"),
            ("ns:name.x", "", Gauge, "ns:name_x"),
            ("cpu.usage", "%", Gauge, "cpu_usage_percent"),
            ("rpc.duration", "s", Summary, "rpc_duration_seconds"),
        ];
        for (name, unit, ty, want) in table {
            let got = prometheus_name(name, unit, *ty);
            assert_eq!(&*got.name, *want, "{name} [{unit}] as {ty:?}");
        }
    }

    #[test]
    fn unit_metadata_matches_the_suffix() {
        let n = prometheus_name("hw.temperature", "Cel", MetricType::Gauge);
        assert_eq!(n.unit.as_deref(), Some("celsius"));
        let n = prometheus_name("hw.errors", "{error}", MetricType::Counter);
        assert_eq!(n.unit, None);
    }

    #[test]
    fn label_names_are_sanitised() {
        let table = [
            ("service.name", "service_name"),
            ("site.line", "site_line"),
            ("ml.model.version", "ml_model_version"),
            ("le", "le"),
            ("1abc", "_1abc"),
            ("a-b/c", "a_b_c"),
            ("__reserved", "_reserved"),
            ("a:b", "a_b"),
            ("", "_"),
            ("ok_name", "ok_name"),
        ];
        for (input, want) in table {
            assert_eq!(sanitize_label_name(input), want, "{input}");
        }
        assert!(matches!(
            sanitize_label_name("already_ok"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn floats_print_as_prometheus_reads_them() {
        let table = [
            (1.0, "1"),
            (0.5, "0.5"),
            (-2.0, "-2"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (1e-7, "1e-7"),
            (1e300, "1e300"),
            (123456.25, "123456.25"),
        ];
        for (v, want) in table {
            assert_eq!(float_label(v), want);
            if v.is_finite() {
                assert_eq!(want.parse::<f64>().ok(), Some(v));
            }
        }
    }

    /// The fast path for few decimals writes what `{:?}` writes, for many values near its
    /// limits and random ones.
    #[test]
    fn short_decimals_print_like_debug() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut values = vec![
            0.0001,
            0.00011,
            0.000099,
            0.1,
            0.2,
            0.3,
            0.7,
            1.5,
            2.25,
            0.30000000000000004,
            999_999_999.5,
            999_999_999.999_999,
            1e9 + 0.5,
            123.000_001,
            0.000_001,
            12.5e-5,
            5e-324,
            1e-5,
            4503599627370495.5,
            -0.0,
            1e15,
            1e15 - 1.0,
            -(1e15 - 1.0),
            999_999_999_999_999.9,
            9007199254740992.0,
            -0.000_1,
            0.000_099_999_9,
        ];
        for _ in 0..300_000 {
            let digits = rng.u32(1..10);
            let decimals = rng.i32(0..9);
            let mantissa = rng.u64(0..10u64.pow(digits)) as f64;
            values.push(mantissa / 10f64.powi(decimals));
            values.push(-mantissa / 10f64.powi(decimals));
            values.push(f64::from_bits(rng.u64(..)));
            values.push(rng.f64() * 10f64.powi(rng.i32(-6..12)));
        }
        let (mut fast, mut out) = (0, String::new());
        for v in values {
            out.clear();
            push_float(&mut out, v);
            let want = if v.is_nan() {
                "NaN".to_owned()
            } else if v.is_infinite() {
                (if v > 0.0 { "+Inf" } else { "-Inf" }).to_owned()
            } else if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                format!("{v:?}")
            };
            assert_eq!(out, want, "{v:e}");
            out.clear();
            fast += usize::from(push_short_decimal(&mut out, v));
        }
        assert!(fast > 300_000, "{fast}");
    }

    #[test]
    fn cache_returns_the_same_translation() {
        let cache = NameCache::new(10);
        let a = cache.metric("hw.temperature", "Cel", MetricType::Gauge);
        let b = cache.metric("hw.temperature", "Cel", MetricType::Gauge);
        assert!(Arc::ptr_eq(&a.name, &b.name));
        let c = cache.metric("hw.temperature", "K", MetricType::Gauge);
        assert_eq!(&*c.name, "hw_temperature_K");
        assert_eq!(&*cache.label("service.name"), "service_name");
    }
}
