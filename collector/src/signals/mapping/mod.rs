//! OTLP → Millwatch signals, as SIGNALS.md says: `ml.inference` and `ml.feedback` log records,
//! metric points of every OTLP type, spans, and other logs. Items that break the contract are
//! rejected one by one with a reason (OTLP partial success); the rest of the request goes on.
//!
//! Layout: this file holds what every signal shares (known ids, rejections, resource and scope
//! definitions); `metrics`, `logs` (inference and feedback events among them) and `traces` map
//! one export request each.

mod logs;
mod metrics;
mod traces;

pub use logs::map_logs;
pub use metrics::map_metrics;
pub use traces::map_traces;

use std::collections::HashSet;
use std::sync::RwLock;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::attributes::{attributes_hash, attributes_json, attributes_json_opt, string_value};
use super::*;

pub const EVENT_INFERENCE: &str = "ml.inference";
pub const EVENT_FEEDBACK: &str = "ml.feedback";
const FEATURE_PREFIX: &str = "ml.feature.";
/// At most this many rejection reasons are spelled out in a partial-success message.
const MAX_REASONS: usize = 5;

/// Ids of resources, scopes and series already stored, so a request carries their definitions
/// only the first time. The store adds ids after they are committed; a race only means a
/// definition is sent twice, which the store ignores.
#[derive(Debug, Default)]
pub struct KnownIds {
    pub resources: RwLock<HashSet<u64>>,
    pub scopes: RwLock<HashSet<u64>>,
    pub series: RwLock<HashSet<u64>>,
}

fn is_known(set: &RwLock<HashSet<u64>>, id: u64) -> bool {
    set.read().map(|s| s.contains(&id)).unwrap_or(false)
}

/// Items refused within an otherwise accepted request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rejections {
    pub count: i64,
    reasons: Vec<String>,
}

impl Rejections {
    fn reject(&mut self, location: impl FnOnce() -> String, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(format!("{}: {}", location(), reason()));
        }
    }

    /// The partial-success message: the first reasons, and how many more there were.
    pub fn message(&self) -> String {
        if self.count == 0 {
            return String::new();
        }
        let mut m = format!(
            "{} item(s) rejected: {}",
            self.count,
            self.reasons.join("; ")
        );
        let more = self.count - self.reasons.len() as i64;
        if more > 0 {
            m.push_str(&format!("; and {more} more"));
        }
        m
    }
}

/// Per-request de-duplication of resource and scope definitions, and of series ids.
struct Context<'a> {
    known: &'a KnownIds,
    now: i64,
    batch: Batch,
    rejections: Rejections,
    seen: HashSet<u64>,
}

impl<'a> Context<'a> {
    fn new(known: &'a KnownIds, now: i64) -> Self {
        Context {
            known,
            now,
            batch: Batch::default(),
            rejections: Rejections::default(),
            seen: HashSet::new(),
        }
    }

    fn resource(&mut self, resource: Option<&Resource>, schema_url: &str) -> u64 {
        let empty = Vec::new();
        let attrs = resource.map(|r| &r.attributes).unwrap_or(&empty);
        let id = attributes_hash(1, attrs);
        if self.seen.insert(id) && !is_known(&self.known.resources, id) {
            let get = |key: &str| {
                attrs
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| string_value(kv.value.as_ref()))
                    .map(str::to_owned)
            };
            let mut json = String::with_capacity(128);
            attributes_json(attrs, &mut json);
            self.batch.resources.push(ResourceRow {
                resource_id: id,
                service_name: get("service.name"),
                environment: get("deployment.environment.name")
                    .or_else(|| get("deployment.environment")),
                host_name: get("host.name"),
                site_name: get("site.name"),
                site_line: get("site.line"),
                site_cell: get("site.cell"),
                tier: get("millwatch.tier"),
                attributes: json,
                dropped_attributes_count: resource.map(|r| r.dropped_attributes_count).unwrap_or(0),
                schema_url: non_empty(schema_url),
                first_seen: self.now,
            });
        }
        id
    }

    fn scope(&mut self, scope: Option<&InstrumentationScope>, schema_url: &str) -> u64 {
        let (name, version, attrs) = match scope {
            Some(s) => (s.name.as_str(), s.version.as_str(), s.attributes.as_slice()),
            None => ("", "", &[][..]),
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(name.as_bytes());
        h.update(&[0xff]);
        h.update(version.as_bytes());
        let id = attributes_hash(h.digest() ^ 2, attrs);
        if self.seen.insert(id) && !is_known(&self.known.scopes, id) {
            self.batch.scopes.push(ScopeRow {
                scope_id: id,
                name: non_empty(name),
                version: non_empty(version),
                attributes: attributes_json_opt(attrs),
                dropped_attributes_count: scope.map(|s| s.dropped_attributes_count).unwrap_or(0),
                schema_url: non_empty(schema_url),
                first_seen: self.now,
            });
        }
        id
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn nanos(t: u64) -> Option<i64> {
    (t != 0).then(|| i64::try_from(t).unwrap_or(i64::MAX))
}
fn time_or(t: u64, now: i64) -> i64 {
    nanos(t).unwrap_or(now)
}
