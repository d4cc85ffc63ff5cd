//! OTLP/HTTP bodies: content type and encoding, decompression under the size limit, and
//! protobuf or JSON decoding. Each failure maps to the HTTP status the OTLP specification gives.

use std::io::Read;

use http::StatusCode;

use super::json;

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "unsupported content type {0:?}: OTLP/HTTP takes application/x-protobuf or application/json"
    )]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: OTLP/HTTP takes gzip or identity")]
    UnsupportedContentEncoding(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body inflates past the limit of {limit} bytes")]
    InflatesTooLarge { limit: usize },
    #[error("request body is not valid gzip: {0}")]
    Gzip(std::io::Error),
    #[error("malformed OTLP protobuf message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("malformed OTLP JSON: {0}")]
    Json(#[from] json::JsonError),
}

impl DecodeError {
    pub fn status(&self) -> StatusCode {
        match self {
            DecodeError::UnsupportedContentType(_) | DecodeError::UnsupportedContentEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            DecodeError::TooLarge { .. } | DecodeError::InflatesTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            DecodeError::Gzip(_) | DecodeError::Protobuf(_) | DecodeError::Json(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

/// The encoding a `Content-Type` names; parameters such as `charset` are ignored. A missing
/// content type is refused: OTLP/HTTP clients always send one.
pub fn encoding(content_type: Option<&str>) -> Result<Encoding, DecodeError> {
    let raw = content_type.unwrap_or("");
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(DecodeError::UnsupportedContentType(raw.to_owned())),
    }
}

/// The body as sent, decompressed when `Content-Encoding: gzip`, never larger than `limit`.
pub fn decompress(
    body: &[u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    let encoding = content_encoding
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" | "x-gzip" => {
            let mut out = Vec::with_capacity((body.len() * 4).min(limit));
            // Read one byte past the limit to tell "exactly the limit" from "more".
            let read = flate2::read::MultiGzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(DecodeError::Gzip)?;
            if read > limit {
                return Err(DecodeError::InflatesTooLarge { limit });
            }
            Ok(out)
        }
        other => Err(DecodeError::UnsupportedContentEncoding(other.to_owned())),
    }
}

/// Decodes an export request of type `T` in the given encoding.
pub fn decode<T: prost::Message + Default>(
    body: &[u8],
    encoding: Encoding,
    json_decode: fn(&[u8]) -> Result<T, json::JsonError>,
) -> Result<T, DecodeError> {
    match encoding {
        Encoding::Protobuf => Ok(T::decode(body)?),
        Encoding::Json => Ok(json_decode(body)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn content_types() {
        assert_eq!(
            encoding(Some("application/x-protobuf")).ok(),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            encoding(Some("Application/JSON; charset=utf-8")).ok(),
            Some(Encoding::Json)
        );
        let err = encoding(Some("text/plain")).expect_err("refused");
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(err.to_string().contains("text/plain"), "{err}");
        assert!(encoding(None).is_err());
    }

    #[test]
    fn gzip_within_and_past_the_limit() {
        let data = vec![7u8; 1000];
        assert_eq!(
            decompress(&gzip(&data), Some("gzip"), 1000).expect("fits"),
            data
        );
        let err = decompress(&gzip(&data), Some("gzip"), 999).expect_err("too large");
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let err = decompress(b"not gzip", Some("gzip"), 999).expect_err("bad gzip");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let err = decompress(b"x", Some("br"), 999).expect_err("unsupported");
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
