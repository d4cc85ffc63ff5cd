//! Prometheus remote write 1.0 messages, written by hand with prost; field numbers as in
//! `prompb/types.proto` and `prompb/remote.proto`.

/// `prometheus.WriteRequest`. Field 2 is reserved; metadata (3) is not sent.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct WriteRequest {
    /// The series, each with its samples in timestamp order.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries` (exemplars, field 3, and native histograms, field 4, not sent).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TimeSeries {
    /// Labels sorted by name, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples in timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn wire_format_matches_prompb_field_numbers() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "a".into(),
                    value: "b".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 2,
                }],
            }],
        };
        let bytes = req.encode_to_vec();
        // 0x0a: field 1 (timeseries), length-delimited; inside it 0x0a labels, 0x12 samples;
        // a sample is 0x09 (field 1, fixed64 double) then 0x10 (field 2, varint timestamp).
        assert_eq!(
            bytes,
            [
                0x0a, 0x15, 0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', 0x12, 0x0b, 0x09, 0, 0,
                0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x02
            ]
        );
        assert_eq!(WriteRequest::decode(&bytes[..]).ok(), Some(req));
    }
}
