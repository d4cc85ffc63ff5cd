//! A central tier routed by model: each item (log record, data point, span) goes to one of the
//! exporter's endpoints, chosen by rendezvous (highest random weight) hashing of a routing
//! attribute, `ml.model.name` by default, so that several central Millwatch instances each own
//! a subset of the models.
//!
//! Rendezvous hashing scores every (endpoint, key) pair with a hash and sends the key to the
//! endpoint with the highest score among the live ones. Adding an endpoint to N moves only the
//! keys the new one now wins, 1/(N+1) of them on average, all to the new one; removing one (or
//! one being down) moves only its own keys, 1/N, each to its runner-up, and every other key
//! stays where it was. The score is the first 8 bytes of SHA-256 over the endpoint's URL, a
//! zero byte and the key: the same on every edge, every build and every platform, so all
//! edges send a model to the same centre.
//!
//! The attribute is read on the item first (log record, data point, span attributes), then on
//! its resource; items without it share the key "" (one endpoint, like any model).

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use sha2::{Digest, Sha256};

use super::transport::Request;

/// The rendezvous score of `key` on `endpoint`.
pub(crate) fn score(endpoint: &str, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(endpoint.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The endpoint (index into `endpoints`) that owns `key` among those `live` says are up; `None`
/// when none is.
pub(crate) fn owner(endpoints: &[String], live: &[bool], key: &str) -> Option<usize> {
    endpoints
        .iter()
        .enumerate()
        .filter(|(i, _)| live.get(*i).copied().unwrap_or(false))
        .max_by_key(|(_, e)| (score(e, key), std::cmp::Reverse(e.as_str())))
        .map(|(i, _)| i)
}

/// Splits `request` into one request per endpoint: `route` maps a key to its endpoint, and is
/// called once per distinct key.
pub(crate) fn split(
    request: Request,
    attribute: &str,
    route: impl FnMut(&str) -> usize,
) -> BTreeMap<usize, Request> {
    let mut router = Memo {
        route,
        seen: HashMap::new(),
        attribute,
    };
    match request {
        Request::Logs(r) => split_logs(r, &mut router)
            .into_iter()
            .map(|(e, r)| (e, Request::Logs(r)))
            .collect(),
        Request::Metrics(r) => split_metrics(r, &mut router)
            .into_iter()
            .map(|(e, r)| (e, Request::Metrics(r)))
            .collect(),
        Request::Traces(r) => split_traces(r, &mut router)
            .into_iter()
            .map(|(e, r)| (e, Request::Traces(r)))
            .collect(),
    }
}

struct Memo<'a, F> {
    route: F,
    seen: HashMap<String, usize>,
    attribute: &'a str,
}

impl<F: FnMut(&str) -> usize> Memo<'_, F> {
    /// The endpoint of an item with `attributes` under a resource whose key is `resource_key`.
    fn endpoint(&mut self, attributes: &[KeyValue], resource_key: Option<&str>) -> usize {
        let key = find(attributes, self.attribute)
            .or(resource_key)
            .unwrap_or("");
        if let Some(&e) = self.seen.get(key) {
            return e;
        }
        let e = (self.route)(key);
        self.seen.insert(key.to_string(), e);
        e
    }
}

fn find<'a>(attributes: &'a [KeyValue], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == name)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
}

fn resource_key(resource: &Option<Resource>, attribute: &str) -> Option<String> {
    resource
        .as_ref()
        .and_then(|r| find(&r.attributes, attribute))
        .map(str::to_string)
}

fn split_logs<F: FnMut(&str) -> usize>(
    request: ExportLogsServiceRequest,
    router: &mut Memo<'_, F>,
) -> BTreeMap<usize, ExportLogsServiceRequest> {
    let mut out: BTreeMap<usize, ExportLogsServiceRequest> = BTreeMap::new();
    for rl in request.resource_logs {
        let rkey = resource_key(&rl.resource, router.attribute);
        let mut per: BTreeMap<usize, ResourceLogs> = BTreeMap::new();
        for sl in rl.scope_logs {
            let mut scoped: BTreeMap<usize, Vec<_>> = BTreeMap::new();
            for record in sl.log_records {
                let e = router.endpoint(&record.attributes, rkey.as_deref());
                scoped.entry(e).or_default().push(record);
            }
            for (e, log_records) in scoped {
                per.entry(e)
                    .or_insert_with(|| ResourceLogs {
                        resource: rl.resource.clone(),
                        scope_logs: Vec::new(),
                        schema_url: rl.schema_url.clone(),
                    })
                    .scope_logs
                    .push(ScopeLogs {
                        scope: sl.scope.clone(),
                        log_records,
                        schema_url: sl.schema_url.clone(),
                    });
            }
        }
        for (e, r) in per {
            out.entry(e).or_default().resource_logs.push(r);
        }
    }
    out
}

fn split_traces<F: FnMut(&str) -> usize>(
    request: ExportTraceServiceRequest,
    router: &mut Memo<'_, F>,
) -> BTreeMap<usize, ExportTraceServiceRequest> {
    let mut out: BTreeMap<usize, ExportTraceServiceRequest> = BTreeMap::new();
    for rs in request.resource_spans {
        let rkey = resource_key(&rs.resource, router.attribute);
        let mut per: BTreeMap<usize, ResourceSpans> = BTreeMap::new();
        for ss in rs.scope_spans {
            let mut scoped: BTreeMap<usize, Vec<_>> = BTreeMap::new();
            for span in ss.spans {
                let e = router.endpoint(&span.attributes, rkey.as_deref());
                scoped.entry(e).or_default().push(span);
            }
            for (e, spans) in scoped {
                per.entry(e)
                    .or_insert_with(|| ResourceSpans {
                        resource: rs.resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: rs.schema_url.clone(),
                    })
                    .scope_spans
                    .push(ScopeSpans {
                        scope: ss.scope.clone(),
                        spans,
                        schema_url: ss.schema_url.clone(),
                    });
            }
        }
        for (e, r) in per {
            out.entry(e).or_default().resource_spans.push(r);
        }
    }
    out
}

/// A metric's data points split by endpoint, each part the metric with only its points.
fn split_metric<F: FnMut(&str) -> usize>(
    metric: Metric,
    rkey: Option<&str>,
    router: &mut Memo<'_, F>,
) -> BTreeMap<usize, Metric> {
    macro_rules! by_point {
        ($variant:ident, $data:expr) => {{
            let mut data = $data;
            let points = std::mem::take(&mut data.data_points);
            let mut parts: BTreeMap<usize, Vec<_>> = BTreeMap::new();
            for p in points {
                let e = router.endpoint(&p.attributes, rkey);
                parts.entry(e).or_default().push(p);
            }
            parts
                .into_iter()
                .map(|(e, data_points)| {
                    let mut d = data.clone();
                    d.data_points = data_points;
                    (
                        e,
                        Metric {
                            data: Some(Data::$variant(d)),
                            ..shell(&metric)
                        },
                    )
                })
                .collect()
        }};
    }
    fn shell(m: &Metric) -> Metric {
        Metric {
            name: m.name.clone(),
            description: m.description.clone(),
            unit: m.unit.clone(),
            metadata: m.metadata.clone(),
            data: None,
        }
    }
    match metric.data.clone() {
        Some(Data::Gauge(d)) => by_point!(Gauge, d),
        Some(Data::Sum(d)) => by_point!(Sum, d),
        Some(Data::Histogram(d)) => by_point!(Histogram, d),
        Some(Data::ExponentialHistogram(d)) => by_point!(ExponentialHistogram, d),
        Some(Data::Summary(d)) => by_point!(Summary, d),
        None => BTreeMap::from([(router.endpoint(&[], rkey), metric)]),
    }
}

fn split_metrics<F: FnMut(&str) -> usize>(
    request: ExportMetricsServiceRequest,
    router: &mut Memo<'_, F>,
) -> BTreeMap<usize, ExportMetricsServiceRequest> {
    let mut out: BTreeMap<usize, ExportMetricsServiceRequest> = BTreeMap::new();
    for rm in request.resource_metrics {
        let rkey = resource_key(&rm.resource, router.attribute);
        let mut per: BTreeMap<usize, ResourceMetrics> = BTreeMap::new();
        for sm in rm.scope_metrics {
            let mut scoped: BTreeMap<usize, Vec<Metric>> = BTreeMap::new();
            for metric in sm.metrics {
                for (e, part) in split_metric(metric, rkey.as_deref(), router) {
                    scoped.entry(e).or_default().push(part);
                }
            }
            for (e, metrics) in scoped {
                per.entry(e)
                    .or_insert_with(|| ResourceMetrics {
                        resource: rm.resource.clone(),
                        scope_metrics: Vec::new(),
                        schema_url: rm.schema_url.clone(),
                    })
                    .scope_metrics
                    .push(ScopeMetrics {
                        scope: sm.scope.clone(),
                        metrics,
                        schema_url: sm.schema_url.clone(),
                    });
            }
        }
        for (e, r) in per {
            out.entry(e).or_default().resource_metrics.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use opentelemetry_proto::tonic::metrics::v1::{Gauge, NumberDataPoint};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn tier(n: usize) -> Vec<String> {
        (1..=n)
            .map(|i| format!("http://central-{i}:4317/"))
            .collect()
    }

    fn owners(endpoints: &[String], live: &[bool], keys: &[String]) -> Vec<Option<usize>> {
        keys.iter().map(|k| owner(endpoints, live, k)).collect()
    }

    /// The figures the module's documentation states, on 10,000 model names.
    #[test]
    fn adding_or_losing_an_endpoint_moves_only_its_share() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("model-{i}")).collect();
        let three = tier(3);
        let four = tier(4);
        let before = owners(&three, &[true; 3], &keys);
        // Evenly spread: each of three owns about a third.
        for e in 0..3 {
            let share = before.iter().filter(|o| **o == Some(e)).count() as f64 / 1e4;
            assert!((0.30..0.37).contains(&share), "endpoint {e}: {share}");
        }
        // A fourth endpoint: only keys it now wins move, all to it, about a quarter.
        let after = owners(&four, &[true; 4], &keys);
        let moved: Vec<usize> = (0..keys.len()).filter(|&i| before[i] != after[i]).collect();
        assert!(moved.iter().all(|&i| after[i] == Some(3)));
        let share = moved.len() as f64 / 1e4;
        eprintln!(
            "a fourth endpoint moved {:.1} % of 10,000 models",
            share * 100.0
        );
        assert!((0.22..0.28).contains(&share), "moved {share}");
        // Endpoint 1 down: only its keys move, the others stay.
        let down = owners(&three, &[true, false, true], &keys);
        for i in 0..keys.len() {
            if before[i] == Some(1) {
                assert!(matches!(down[i], Some(0 | 2)));
            } else {
                assert_eq!(down[i], before[i]);
            }
        }
        assert_eq!(owner(&three, &[false; 3], "m"), None);
    }

    #[test]
    fn the_score_is_fixed_across_builds() {
        // SHA-256("http://central-1:4317/\0press-vision")[..8], big-endian.
        let digest = Sha256::digest(b"http://central-1:4317/\0press-vision");
        let want = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        assert_eq!(score("http://central-1:4317/", "press-vision"), want);
    }

    #[test]
    fn items_are_split_by_their_own_attribute_then_their_resource() {
        let record = |model: Option<&str>, body: &str| LogRecord {
            attributes: model
                .map(|m| vec![kv("ml.model.name", m)])
                .unwrap_or_default(),
            event_name: body.into(),
            ..Default::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("ml.model.name", "from-resource")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        record(Some("a"), "1"),
                        record(Some("b"), "2"),
                        record(None, "3"),
                        record(Some("a"), "4"),
                    ],
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        };
        let mut calls = Vec::new();
        let parts = split(Request::Logs(request), "ml.model.name", |k| {
            calls.push(k.to_string());
            match k {
                "a" => 0,
                "b" => 1,
                _ => 2,
            }
        });
        assert_eq!(calls, ["a", "b", "from-resource"], "one call per key");
        let names = |e: usize| match &parts[&e] {
            Request::Logs(r) => r.resource_logs[0].scope_logs[0]
                .log_records
                .iter()
                .map(|l| l.event_name.clone())
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(names(0), ["1", "4"], "order kept within a part");
        assert_eq!(names(1), ["2"]);
        assert_eq!(names(2), ["3"]);

        let point = |model: &str, v: f64| NumberDataPoint {
            attributes: vec![kv("ml.model.name", model)],
            value: Some(
                opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(v),
            ),
            ..Default::default()
        };
        let metrics = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "ml.score".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![point("a", 1.0), point("b", 2.0), point("a", 3.0)],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let parts = split(Request::Metrics(metrics), "ml.model.name", |k| {
            usize::from(k == "b")
        });
        let values = |e: usize| match &parts[&e] {
            Request::Metrics(r) => match &r.resource_metrics[0].scope_metrics[0].metrics[0].data {
                Some(Data::Gauge(g)) => g.data_points.len(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        assert_eq!((values(0), values(1)), (2, 1));
    }
}
