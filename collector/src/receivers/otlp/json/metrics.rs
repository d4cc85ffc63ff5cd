//! metrics.v1 in OTLP/JSON: `/v1/metrics` bodies, every metric type, data points, exemplars.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, exemplar,
    exponential_histogram_data_point, metric, number_data_point, summary_data_point,
};
use serde_json::Value;

use super::Result;
use super::common::{attributes, resource, scope};
use super::path::Path;
use super::scalars::{
    INT32, INT64, UINT32, UINT64, boolean, double, enumeration, integer, list, object, one_of,
    span_id, string, trace_id,
};

/// Decodes an OTLP/HTTP JSON body sent to `/v1/metrics`.
pub fn decode_metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest> {
    let root = serde_json::from_slice(body)?;
    let path = &Path::ROOT;
    let mut request = ExportMetricsServiceRequest::default();
    fields!(root, path, |v, p| {
        "resourceMetrics" | "resource_metrics" => {
            request.resource_metrics = list(v, p, resource_metrics)?
        },
    });
    Ok(request)
}

fn aggregation_temporality(value: Value, path: &Path) -> Result<i32> {
    enumeration(
        value,
        path,
        "an aggregation temporality as an integer or a name such as \
         AGGREGATION_TEMPORALITY_CUMULATIVE",
        |name| AggregationTemporality::from_str_name(name).map(|t| t as i32),
    )
}

/// Data point flags are a plain uint32 bit field; the names of single flags are accepted too.
fn data_point_flags(value: Value, path: &Path) -> Result<u32> {
    if let Value::String(name) = &value
        && let Some(flag) = DataPointFlags::from_str_name(name)
    {
        return Ok(flag as u32);
    }
    integer(value, path, UINT32)
}

fn resource_metrics(value: Value, path: &Path) -> Result<ResourceMetrics> {
    let mut rm = ResourceMetrics::default();
    fields!(value, path, |v, p| {
        "resource" => rm.resource = Some(resource(v, p)?),
        "scopeMetrics" | "scope_metrics" => rm.scope_metrics = list(v, p, scope_metrics)?,
        "schemaUrl" | "schema_url" => rm.schema_url = string(v, p)?,
    });
    Ok(rm)
}

fn scope_metrics(value: Value, path: &Path) -> Result<ScopeMetrics> {
    let mut sm = ScopeMetrics::default();
    fields!(value, path, |v, p| {
        "scope" => sm.scope = Some(scope(v, p)?),
        "metrics" => sm.metrics = list(v, p, metric)?,
        "schemaUrl" | "schema_url" => sm.schema_url = string(v, p)?,
    });
    Ok(sm)
}

fn metric(value: Value, path: &Path) -> Result<Metric> {
    use metric::Data;
    let mut chosen = None;
    let mut m = Metric::default();
    fields!(value, path, |v, p| {
        "name" => m.name = string(v, p)?,
        "description" => m.description = string(v, p)?,
        "unit" => m.unit = string(v, p)?,
        "metadata" => m.metadata = attributes(v, p)?,
        "gauge" => {
            one_of(&mut chosen, "gauge", path)?;
            m.data = Some(Data::Gauge(gauge(v, p)?))
        },
        "sum" => {
            one_of(&mut chosen, "sum", path)?;
            m.data = Some(Data::Sum(sum(v, p)?))
        },
        "histogram" => {
            one_of(&mut chosen, "histogram", path)?;
            m.data = Some(Data::Histogram(histogram(v, p)?))
        },
        "exponentialHistogram" | "exponential_histogram" => {
            one_of(&mut chosen, "exponentialHistogram", path)?;
            m.data = Some(Data::ExponentialHistogram(exponential_histogram(v, p)?))
        },
        "summary" => {
            one_of(&mut chosen, "summary", path)?;
            m.data = Some(Data::Summary(summary(v, p)?))
        },
    });
    Ok(m)
}

fn gauge(value: Value, path: &Path) -> Result<Gauge> {
    let mut gauge = Gauge::default();
    fields!(value, path, |v, p| {
        "dataPoints" | "data_points" => gauge.data_points = list(v, p, number_data_point)?,
    });
    Ok(gauge)
}

fn sum(value: Value, path: &Path) -> Result<Sum> {
    let mut sum = Sum::default();
    fields!(value, path, |v, p| {
        "dataPoints" | "data_points" => sum.data_points = list(v, p, number_data_point)?,
        "aggregationTemporality" | "aggregation_temporality" => {
            sum.aggregation_temporality = aggregation_temporality(v, p)?
        },
        "isMonotonic" | "is_monotonic" => sum.is_monotonic = boolean(v, p)?,
    });
    Ok(sum)
}

fn histogram(value: Value, path: &Path) -> Result<Histogram> {
    let mut histogram = Histogram::default();
    fields!(value, path, |v, p| {
        "dataPoints" | "data_points" => {
            histogram.data_points = list(v, p, histogram_data_point)?
        },
        "aggregationTemporality" | "aggregation_temporality" => {
            histogram.aggregation_temporality = aggregation_temporality(v, p)?
        },
    });
    Ok(histogram)
}

fn exponential_histogram(value: Value, path: &Path) -> Result<ExponentialHistogram> {
    let mut histogram = ExponentialHistogram::default();
    fields!(value, path, |v, p| {
        "dataPoints" | "data_points" => {
            histogram.data_points = list(v, p, exponential_histogram_data_point)?
        },
        "aggregationTemporality" | "aggregation_temporality" => {
            histogram.aggregation_temporality = aggregation_temporality(v, p)?
        },
    });
    Ok(histogram)
}

fn summary(value: Value, path: &Path) -> Result<Summary> {
    let mut summary = Summary::default();
    fields!(value, path, |v, p| {
        "dataPoints" | "data_points" => summary.data_points = list(v, p, summary_data_point)?,
    });
    Ok(summary)
}

fn number_data_point(value: Value, path: &Path) -> Result<NumberDataPoint> {
    use number_data_point::Value as V;
    let mut chosen = None;
    let mut point = NumberDataPoint::default();
    fields!(value, path, |v, p| {
        "attributes" => point.attributes = attributes(v, p)?,
        "startTimeUnixNano" | "start_time_unix_nano" => {
            point.start_time_unix_nano = integer(v, p, UINT64)?
        },
        "timeUnixNano" | "time_unix_nano" => point.time_unix_nano = integer(v, p, UINT64)?,
        "asDouble" | "as_double" => {
            one_of(&mut chosen, "asDouble", path)?;
            point.value = Some(V::AsDouble(double(v, p)?))
        },
        "asInt" | "as_int" => {
            one_of(&mut chosen, "asInt", path)?;
            point.value = Some(V::AsInt(integer(v, p, INT64)?))
        },
        "exemplars" => point.exemplars = list(v, p, exemplar)?,
        "flags" => point.flags = data_point_flags(v, p)?,
    });
    Ok(point)
}

fn histogram_data_point(value: Value, path: &Path) -> Result<HistogramDataPoint> {
    let mut point = HistogramDataPoint::default();
    fields!(value, path, |v, p| {
        "attributes" => point.attributes = attributes(v, p)?,
        "startTimeUnixNano" | "start_time_unix_nano" => {
            point.start_time_unix_nano = integer(v, p, UINT64)?
        },
        "timeUnixNano" | "time_unix_nano" => point.time_unix_nano = integer(v, p, UINT64)?,
        "count" => point.count = integer(v, p, UINT64)?,
        "sum" => point.sum = Some(double(v, p)?),
        "bucketCounts" | "bucket_counts" => {
            point.bucket_counts = list(v, p, |v, p| integer(v, p, UINT64))?
        },
        "explicitBounds" | "explicit_bounds" => point.explicit_bounds = list(v, p, double)?,
        "exemplars" => point.exemplars = list(v, p, exemplar)?,
        "flags" => point.flags = data_point_flags(v, p)?,
        "min" => point.min = Some(double(v, p)?),
        "max" => point.max = Some(double(v, p)?),
    });
    Ok(point)
}

fn exponential_histogram_data_point(
    value: Value,
    path: &Path,
) -> Result<ExponentialHistogramDataPoint> {
    let mut point = ExponentialHistogramDataPoint::default();
    fields!(value, path, |v, p| {
        "attributes" => point.attributes = attributes(v, p)?,
        "startTimeUnixNano" | "start_time_unix_nano" => {
            point.start_time_unix_nano = integer(v, p, UINT64)?
        },
        "timeUnixNano" | "time_unix_nano" => point.time_unix_nano = integer(v, p, UINT64)?,
        "count" => point.count = integer(v, p, UINT64)?,
        "sum" => point.sum = Some(double(v, p)?),
        "scale" => point.scale = integer(v, p, INT32)?,
        "zeroCount" | "zero_count" => point.zero_count = integer(v, p, UINT64)?,
        "positive" => point.positive = Some(buckets(v, p)?),
        "negative" => point.negative = Some(buckets(v, p)?),
        "flags" => point.flags = data_point_flags(v, p)?,
        "exemplars" => point.exemplars = list(v, p, exemplar)?,
        "min" => point.min = Some(double(v, p)?),
        "max" => point.max = Some(double(v, p)?),
        "zeroThreshold" | "zero_threshold" => point.zero_threshold = double(v, p)?,
    });
    Ok(point)
}

fn buckets(value: Value, path: &Path) -> Result<exponential_histogram_data_point::Buckets> {
    let mut buckets = exponential_histogram_data_point::Buckets::default();
    fields!(value, path, |v, p| {
        "offset" => buckets.offset = integer(v, p, INT32)?,
        "bucketCounts" | "bucket_counts" => {
            buckets.bucket_counts = list(v, p, |v, p| integer(v, p, UINT64))?
        },
    });
    Ok(buckets)
}

fn summary_data_point(value: Value, path: &Path) -> Result<SummaryDataPoint> {
    let mut point = SummaryDataPoint::default();
    fields!(value, path, |v, p| {
        "attributes" => point.attributes = attributes(v, p)?,
        "startTimeUnixNano" | "start_time_unix_nano" => {
            point.start_time_unix_nano = integer(v, p, UINT64)?
        },
        "timeUnixNano" | "time_unix_nano" => point.time_unix_nano = integer(v, p, UINT64)?,
        "count" => point.count = integer(v, p, UINT64)?,
        "sum" => point.sum = double(v, p)?,
        "quantileValues" | "quantile_values" => {
            point.quantile_values = list(v, p, value_at_quantile)?
        },
        "flags" => point.flags = data_point_flags(v, p)?,
    });
    Ok(point)
}

fn value_at_quantile(value: Value, path: &Path) -> Result<summary_data_point::ValueAtQuantile> {
    let mut quantile = summary_data_point::ValueAtQuantile::default();
    fields!(value, path, |v, p| {
        "quantile" => quantile.quantile = double(v, p)?,
        "value" => quantile.value = double(v, p)?,
    });
    Ok(quantile)
}

fn exemplar(value: Value, path: &Path) -> Result<Exemplar> {
    use exemplar::Value as V;
    let mut chosen = None;
    let mut ex = Exemplar::default();
    fields!(value, path, |v, p| {
        "filteredAttributes" | "filtered_attributes" => {
            ex.filtered_attributes = attributes(v, p)?
        },
        "timeUnixNano" | "time_unix_nano" => ex.time_unix_nano = integer(v, p, UINT64)?,
        "asDouble" | "as_double" => {
            one_of(&mut chosen, "asDouble", path)?;
            ex.value = Some(V::AsDouble(double(v, p)?))
        },
        "asInt" | "as_int" => {
            one_of(&mut chosen, "asInt", path)?;
            ex.value = Some(V::AsInt(integer(v, p, INT64)?))
        },
        "spanId" | "span_id" => ex.span_id = span_id(v, p)?,
        "traceId" | "trace_id" => ex.trace_id = trace_id(v, p)?,
    });
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;

    use super::super::test_encoder::Style;
    use super::super::testing::{
        SPAN_ID, T0, T1, TRACE_ID, every_attribute_type, full_resource, full_scope, kv,
        resource_with, scope_named, text,
    };
    use super::*;

    #[test]
    fn sdk_metrics_body_decodes_every_metric_type() {
        let got = decode_metrics(include_bytes!(
            "../../../../testdata/otlp-json/metrics.json"
        ))
        .expect("fixture decodes");
        let point_times = |p: &mut NumberDataPoint| {
            p.start_time_unix_nano = T0;
            p.time_unix_nano = T1;
        };
        let mut gauge_point = NumberDataPoint {
            attributes: vec![kv("hw.id", text("motor-1"))],
            value: Some(number_data_point::Value::AsDouble(71.5)),
            ..Default::default()
        };
        point_times(&mut gauge_point);
        let mut sum_point = NumberDataPoint {
            value: Some(number_data_point::Value::AsInt(3)),
            exemplars: vec![Exemplar {
                filtered_attributes: vec![kv("hw.state", text("degraded"))],
                time_unix_nano: 1_700_000_030_000_000_000,
                span_id: SPAN_ID.to_vec(),
                trace_id: TRACE_ID.to_vec(),
                value: Some(exemplar::Value::AsInt(1)),
            }],
            ..Default::default()
        };
        point_times(&mut sum_point);
        let expected = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource_with(vec![
                    kv("service.name", text("press-line-3")),
                    kv("site.cell", any_value::Value::IntValue(7)),
                ]),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope_named("millwatch.fixture", "1.2.0"),
                    metrics: vec![
                        Metric {
                            name: "hw.temperature".into(),
                            description: "Spindle motor temperature".into(),
                            unit: "Cel".into(),
                            data: Some(Data::Gauge(Gauge {
                                data_points: vec![gauge_point],
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "hw.errors".into(),
                            unit: "{error}".into(),
                            data: Some(Data::Sum(Sum {
                                data_points: vec![sum_point],
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                                is_monotonic: true,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "gen_ai.client.operation.duration".into(),
                            unit: "s".into(),
                            data: Some(Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    attributes: vec![kv("gen_ai.request.model", text("m-7b"))],
                                    start_time_unix_nano: T0,
                                    time_unix_nano: T1,
                                    count: 3,
                                    sum: Some(2.75),
                                    bucket_counts: vec![0, 2, 1],
                                    explicit_bounds: vec![0.5, 1.0],
                                    min: Some(0.25),
                                    max: Some(1.5),
                                    ..Default::default()
                                }],
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "machine.cycle.duration".into(),
                            unit: "s".into(),
                            data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                                data_points: vec![ExponentialHistogramDataPoint {
                                    start_time_unix_nano: T0,
                                    time_unix_nano: T1,
                                    count: 5,
                                    sum: Some(10.5),
                                    scale: 3,
                                    zero_count: 1,
                                    positive: Some(exponential_histogram_data_point::Buckets {
                                        offset: 5,
                                        bucket_counts: vec![1, 2, 1],
                                    }),
                                    negative: Some(Default::default()),
                                    min: Some(0.0),
                                    max: Some(4.5),
                                    zero_threshold: 0.0,
                                    ..Default::default()
                                }],
                                aggregation_temporality: AggregationTemporality::Delta as i32,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "machine.spindle.load".into(),
                            unit: "1".into(),
                            data: Some(Data::Summary(Summary {
                                data_points: vec![SummaryDataPoint {
                                    start_time_unix_nano: T0,
                                    time_unix_nano: T1,
                                    count: 10,
                                    sum: 6.5,
                                    quantile_values: [(0.0, 0.1), (0.5, 0.6), (1.0, 0.95)]
                                        .map(|(quantile, value)| {
                                            summary_data_point::ValueAtQuantile { quantile, value }
                                        })
                                        .to_vec(),
                                    ..Default::default()
                                }],
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
        };
        assert_eq!(got, expected);
    }

    fn full_exemplars() -> Vec<Exemplar> {
        vec![
            Exemplar {
                filtered_attributes: vec![kv("f", text("x"))],
                time_unix_nano: u64::MAX,
                span_id: SPAN_ID.to_vec(),
                trace_id: TRACE_ID.to_vec(),
                value: Some(exemplar::Value::AsDouble(0.125)),
            },
            Exemplar {
                value: Some(exemplar::Value::AsInt(-7)),
                ..Default::default()
            },
        ]
    }

    fn full_metrics() -> ExportMetricsServiceRequest {
        let number_points = vec![
            NumberDataPoint {
                attributes: every_attribute_type(),
                start_time_unix_nano: T0,
                time_unix_nano: T1,
                exemplars: full_exemplars(),
                flags: DataPointFlags::NoRecordedValueMask as u32,
                value: Some(number_data_point::Value::AsDouble(f64::INFINITY)),
            },
            NumberDataPoint {
                value: Some(number_data_point::Value::AsInt(i64::MIN)),
                ..Default::default()
            },
            NumberDataPoint::default(),
        ];
        let metric = |name: &str, data: Data| Metric {
            name: name.into(),
            description: format!("{name} described"),
            unit: "ms".into(),
            metadata: vec![kv("meta", text("data"))],
            data: Some(data),
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: full_resource(),
                scope_metrics: vec![ScopeMetrics {
                    scope: full_scope(),
                    metrics: vec![
                        metric(
                            "g",
                            Data::Gauge(Gauge {
                                data_points: number_points.clone(),
                            }),
                        ),
                        metric(
                            "s",
                            Data::Sum(Sum {
                                data_points: number_points,
                                aggregation_temporality: AggregationTemporality::Delta as i32,
                                is_monotonic: true,
                            }),
                        ),
                        metric(
                            "h",
                            Data::Histogram(Histogram {
                                data_points: vec![
                                    HistogramDataPoint {
                                        attributes: vec![kv("a", text("b"))],
                                        start_time_unix_nano: T0,
                                        time_unix_nano: T1,
                                        count: u64::MAX,
                                        sum: Some(-0.5),
                                        bucket_counts: vec![1, 0, u64::MAX],
                                        explicit_bounds: vec![-1.0, 1e300],
                                        exemplars: full_exemplars(),
                                        flags: 1,
                                        min: Some(-3.0),
                                        max: Some(7.25),
                                    },
                                    HistogramDataPoint::default(),
                                ],
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            }),
                        ),
                        metric(
                            "e",
                            Data::ExponentialHistogram(ExponentialHistogram {
                                data_points: vec![ExponentialHistogramDataPoint {
                                    attributes: vec![kv("a", text("b"))],
                                    start_time_unix_nano: T0,
                                    time_unix_nano: T1,
                                    count: 12,
                                    sum: Some(0.0),
                                    scale: -4,
                                    zero_count: 2,
                                    positive: Some(exponential_histogram_data_point::Buckets {
                                        offset: -2,
                                        bucket_counts: vec![3, 4],
                                    }),
                                    negative: Some(exponential_histogram_data_point::Buckets {
                                        offset: i32::MAX,
                                        bucket_counts: vec![5],
                                    }),
                                    flags: 1,
                                    exemplars: full_exemplars(),
                                    min: Some(-1.5),
                                    max: Some(9.0),
                                    zero_threshold: 1e-9,
                                }],
                                // Unknown values survive: proto3 enums are open.
                                aggregation_temporality: 7,
                            }),
                        ),
                        metric(
                            "q",
                            Data::Summary(Summary {
                                data_points: vec![SummaryDataPoint {
                                    attributes: vec![kv("a", text("b"))],
                                    start_time_unix_nano: T0,
                                    time_unix_nano: T1,
                                    count: 3,
                                    sum: 4.5,
                                    quantile_values: vec![
                                        summary_data_point::ValueAtQuantile {
                                            quantile: 0.5,
                                            value: 1.5,
                                        },
                                        summary_data_point::ValueAtQuantile {
                                            quantile: 0.99,
                                            value: 3.0,
                                        },
                                    ],
                                    flags: 1,
                                }],
                            }),
                        ),
                        Metric::default(),
                    ],
                    schema_url: "https://example.com/scope-schema".into(),
                }],
                schema_url: "https://example.com/resource-schema".into(),
            }],
        }
    }

    #[test]
    fn metrics_round_trip_in_every_style() {
        let request = full_metrics();
        for style in Style::all() {
            let decoded = decode_metrics(&style.metrics(&request));
            assert_eq!(decoded.expect("decodes"), request, "{style:?}");
        }
    }
}
