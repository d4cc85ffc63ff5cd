//! The store's schema, as versioned migration steps recorded in `millwatch_schema_migrations`.
//!
//! A step is never edited once released: a change is a new step. Times are `TIMESTAMP_NS` so that
//! an OTLP `time_unix_nano` survives the round trip exactly.

/// One migration step: its version and the SQL that takes the schema from `version - 1` to `version`.
/// The migration that created `store_journal`; journal records exist only from it on.
pub const JOURNAL_VERSION: u32 = 5;

pub struct Migration {
    pub version: u32,
    pub description: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "signals: resources, scopes, inferences, features, feedback, metrics, spans, logs",
        sql: r#"
CREATE TABLE resources (
    resource_id UBIGINT NOT NULL,          -- hash of the resource's attributes
    service_name VARCHAR,
    environment VARCHAR,                   -- deployment.environment.name (or deployment.environment)
    host_name VARCHAR,
    site_name VARCHAR,
    site_line VARCHAR,
    site_cell VARCHAR,
    tier VARCHAR,                          -- millwatch.tier of the sending collector
    attributes JSON,
    dropped_attributes_count UINTEGER,
    schema_url VARCHAR,
    first_seen TIMESTAMP_NS
);
CREATE TABLE scopes (
    scope_id UBIGINT NOT NULL,
    name VARCHAR,
    version VARCHAR,
    attributes JSON,
    dropped_attributes_count UINTEGER,
    schema_url VARCHAR,
    first_seen TIMESTAMP_NS
);
CREATE TABLE inferences (
    event_id UBIGINT NOT NULL,             -- assigned by the store, increasing
    time TIMESTAMP_NS NOT NULL,            -- time_unix_nano, else observed_time_unix_nano, else arrival
    observed_time TIMESTAMP_NS,
    model VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    inference_id VARCHAR,
    prediction DOUBLE,                     -- numeric prediction (regression, score)
    prediction_label VARCHAR,              -- class prediction
    score DOUBLE,                          -- ml.prediction.score
    duration_s DOUBLE,                     -- ml.inference.duration
    feature_count UINTEGER NOT NULL,
    trace_id VARCHAR,
    span_id VARCHAR,
    attributes JSON,                       -- attributes outside ml.*, NULL when none
    resource_id UBIGINT NOT NULL,
    scope_id UBIGINT NOT NULL
);
CREATE TABLE inference_features (
    event_id UBIGINT NOT NULL,
    time TIMESTAMP_NS NOT NULL,
    model VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    feature VARCHAR NOT NULL,              -- the name after `ml.feature.`
    value_type VARCHAR NOT NULL,           -- double | int | bool | string | missing | other
    value_double DOUBLE,                   -- numeric value (bool as 0/1)
    value_string VARCHAR                   -- categorical value (bool as true/false; other as JSON)
);
CREATE TABLE feedback (
    time TIMESTAMP_NS NOT NULL,
    observed_time TIMESTAMP_NS,
    model VARCHAR NOT NULL,
    inference_id VARCHAR NOT NULL,
    label DOUBLE,
    label_class VARCHAR,
    attributes JSON,
    resource_id UBIGINT NOT NULL,
    scope_id UBIGINT NOT NULL
);
CREATE TABLE metric_series (
    series_id UBIGINT NOT NULL,            -- hash of resource, scope, name, unit, type and attributes
    name VARCHAR NOT NULL,
    description VARCHAR,
    unit VARCHAR,
    type VARCHAR NOT NULL,                 -- gauge | sum | histogram | exponential_histogram | summary
    temporality VARCHAR,                   -- cumulative | delta (sums and histograms)
    monotonic BOOLEAN,
    attributes JSON,
    resource_id UBIGINT NOT NULL,
    scope_id UBIGINT NOT NULL,
    first_seen TIMESTAMP_NS
);
CREATE TABLE metric_points (               -- gauge and sum points
    series_id UBIGINT NOT NULL,
    time TIMESTAMP_NS NOT NULL,
    start_time TIMESTAMP_NS,
    value DOUBLE,
    int_value BIGINT,                      -- exact value of an as_int point (value holds it as a double too)
    flags UINTEGER
);
CREATE TABLE metric_distributions (        -- histogram, exponential histogram and summary points
    series_id UBIGINT NOT NULL,
    time TIMESTAMP_NS NOT NULL,
    start_time TIMESTAMP_NS,
    count UBIGINT,
    sum DOUBLE,
    min DOUBLE,
    max DOUBLE,
    bounds DOUBLE[],                       -- histogram explicit bounds
    bucket_counts UBIGINT[],               -- histogram bucket counts
    scale INTEGER,                         -- exponential histogram
    zero_count UBIGINT,
    zero_threshold DOUBLE,
    positive_offset INTEGER,
    positive_counts UBIGINT[],
    negative_offset INTEGER,
    negative_counts UBIGINT[],
    quantiles DOUBLE[],                    -- summary quantiles
    quantile_values DOUBLE[],
    flags UINTEGER
);
CREATE TABLE spans (
    trace_id VARCHAR NOT NULL,             -- lowercase hex
    span_id VARCHAR NOT NULL,
    parent_span_id VARCHAR,
    trace_state VARCHAR,
    name VARCHAR NOT NULL,
    kind TINYINT,
    start_time TIMESTAMP_NS NOT NULL,
    end_time TIMESTAMP_NS NOT NULL,
    duration_s DOUBLE,
    status_code TINYINT,                   -- 0 unset, 1 ok, 2 error
    status_message VARCHAR,
    model VARCHAR,                         -- ml.model.name attribute, when present
    version VARCHAR,
    attributes JSON,
    events JSON,
    links JSON,
    flags UINTEGER,
    resource_id UBIGINT NOT NULL,
    scope_id UBIGINT NOT NULL
);
CREATE TABLE logs (                        -- log records that are not ml.* events
    time TIMESTAMP_NS,
    observed_time TIMESTAMP_NS,
    severity_number TINYINT,
    severity_text VARCHAR,
    event_name VARCHAR,
    body JSON,
    attributes JSON,
    trace_id VARCHAR,
    span_id VARCHAR,
    flags UINTEGER,
    resource_id UBIGINT NOT NULL,
    scope_id UBIGINT NOT NULL
);
"#,
    },
    Migration {
        version: 2,
        description: "detection: results, windows, baselines and engine state",
        sql: r#"
CREATE TABLE detections (
    time TIMESTAMP_NS NOT NULL,            -- when the engine decided
    window_start TIMESTAMP_NS,             -- earliest event time in the window (or the point's time)
    window_end TIMESTAMP_NS,               -- latest event time in the window
    first_event_id UBIGINT,                -- the window's event range (inference detectors)
    last_event_id UBIGINT,
    model VARCHAR,
    version VARCHAR,
    feature VARCHAR,                       -- feature, ml.prediction, performance metric or metric series
    detector VARCHAR NOT NULL,             -- drift | drift_share | data_quality | performance | performance_change | machine_health
    test VARCHAR,                          -- test or check (ks, psi, quality, ztest, ewma, absence, ...)
    statistic DOUBLE,
    p_value DOUBLE,
    p_value_corrected DOUBLE,
    effect_size DOUBLE,
    threshold DOUBLE,
    drifted BOOLEAN NOT NULL,              -- drift found, performance dropped, or rule firing
    verdict VARCHAR NOT NULL,
    decided_by VARCHAR,                    -- p_value | corrected_p_value | p_value_and_effect | distance
    details JSON
);
CREATE TABLE detection_windows (           -- every closed window, for the performance pass
    model VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    window_index UBIGINT NOT NULL,
    first_event_id UBIGINT NOT NULL,
    last_event_id UBIGINT NOT NULL,
    window_start TIMESTAMP_NS,
    window_end TIMESTAMP_NS,
    events UBIGINT NOT NULL,
    labelled UBIGINT NOT NULL,             -- labelled events when performance was last evaluated
    closed_at TIMESTAMP_NS NOT NULL
);
CREATE TABLE detection_baselines (
    model VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    origin JSON NOT NULL,                  -- first_events | {"file": path} | {"previous_version": v}
    first_event_id UBIGINT,
    last_event_id UBIGINT,
    data JSON NOT NULL,                    -- the baseline's columns
    created TIMESTAMP_NS NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE TABLE detection_state (             -- the engine's cursor, open windows and machine-health state
    key VARCHAR PRIMARY KEY,
    value JSON NOT NULL,
    updated TIMESTAMP_NS NOT NULL
);
"#,
    },
    Migration {
        version: 3,
        description: "alerting: alerts, notification groups, silences, outbox and delivery attempts",
        sql: r#"
CREATE TABLE alerts (                      -- every pending, firing and recently resolved alert
    fingerprint VARCHAR NOT NULL,          -- Alertmanager's hash of the labels, 16 hex digits
    rule VARCHAR NOT NULL,
    labels JSON NOT NULL,
    annotations JSON NOT NULL,
    state VARCHAR NOT NULL,                -- pending | firing | resolved
    value DOUBLE,
    active_at TIMESTAMP_NS NOT NULL,       -- the condition started to hold
    fired_at TIMESTAMP_NS,
    resolved_at TIMESTAMP_NS,
    acknowledged_by VARCHAR,
    acknowledgement_comment VARCHAR,
    acknowledged_at TIMESTAMP_NS,
    updated TIMESTAMP_NS NOT NULL
);
CREATE TABLE alert_groups (                -- what each notification group last reported firing
    group_key VARCHAR NOT NULL,
    receiver VARCHAR NOT NULL,
    labels JSON NOT NULL,
    notified JSON NOT NULL,                -- fingerprints
    last_notified TIMESTAMP_NS
);
CREATE TABLE alert_silences (
    id VARCHAR NOT NULL,
    matchers JSON NOT NULL,
    starts_at TIMESTAMP_NS NOT NULL,
    ends_at TIMESTAMP_NS NOT NULL,
    created_by VARCHAR NOT NULL,
    comment VARCHAR NOT NULL,
    created_at TIMESTAMP_NS NOT NULL,
    updated_at TIMESTAMP_NS NOT NULL
);
CREATE SEQUENCE alert_outbox_id START 1;
CREATE TABLE alert_outbox (                -- notifications to deliver, delivered or given up
    id UBIGINT NOT NULL,
    created TIMESTAMP_NS NOT NULL,
    receiver VARCHAR NOT NULL,
    group_key VARCHAR NOT NULL,
    status VARCHAR NOT NULL,               -- firing | resolved
    payload JSON NOT NULL,                 -- the notification (Alertmanager webhook v4 shape)
    delivery VARCHAR NOT NULL,             -- pending | delivered | failed
    attempts UINTEGER NOT NULL,
    next_attempt TIMESTAMP_NS NOT NULL,
    last_error VARCHAR,
    delivered_at TIMESTAMP_NS,
    updated TIMESTAMP_NS NOT NULL
);
CREATE TABLE alert_delivery_attempts (
    outbox_id UBIGINT NOT NULL,
    time TIMESTAMP_NS NOT NULL,
    receiver VARCHAR NOT NULL,
    outcome VARCHAR NOT NULL,              -- delivered | retryable | permanent
    reason VARCHAR,
    retry_at TIMESTAMP_NS                  -- when the next attempt is due; NULL when none
);
"#,
    },
    Migration {
        version: 4,
        description: "features by id: inference_feature_values + feature_keys, inference_features becomes a view",
        // Twelve rows per event with model, version, feature and type as strings made the
        // features table the cost of ingest; the values table holds numbers only (and the rare
        // categorical value), names live once in feature_keys. The view keeps every reader's SQL.
        sql: r#"
CREATE TABLE feature_keys (                -- one row per model, version and feature name
    feature_key_id UINTEGER NOT NULL,      -- assigned by the store's writer, from 0
    model VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    feature VARCHAR NOT NULL               -- the name after `ml.feature.`
);
CREATE TABLE inference_feature_values (
    event_id UBIGINT NOT NULL,
    time TIMESTAMP_NS NOT NULL,
    feature_key_id UINTEGER NOT NULL,
    value_type UTINYINT NOT NULL,          -- 0 double, 1 int, 2 bool, 3 string, 4 missing, 5 other
    value_double DOUBLE,                   -- numeric value (bool as 0/1)
    value_string VARCHAR                   -- categorical value (bool as true/false; other as JSON)
);
INSERT INTO feature_keys
    SELECT (row_number() OVER (ORDER BY model, version, feature) - 1)::UINTEGER, model, version, feature
    FROM (SELECT DISTINCT model, version, feature FROM inference_features);
INSERT INTO inference_feature_values
    SELECT f.event_id, f.time, k.feature_key_id,
           CASE f.value_type WHEN 'double' THEN 0 WHEN 'int' THEN 1 WHEN 'bool' THEN 2
                             WHEN 'string' THEN 3 WHEN 'missing' THEN 4 ELSE 5 END,
           f.value_double, f.value_string
    FROM inference_features f JOIN feature_keys k USING (model, version, feature)
    ORDER BY f.event_id;
DROP TABLE inference_features;
CREATE VIEW inference_features AS
    SELECT v.event_id, v.time, k.model, k.version, k.feature,
           CASE v.value_type WHEN 0 THEN 'double' WHEN 1 THEN 'int' WHEN 2 THEN 'bool'
                             WHEN 3 THEN 'string' WHEN 4 THEN 'missing' ELSE 'other' END AS value_type,
           v.value_double, v.value_string
    FROM inference_feature_values v JOIN feature_keys k ON k.feature_key_id = v.feature_key_id;
"#,
    },
    Migration {
        version: 5,
        description: "store journal: the newest journal record committed to the tables",
        // Under load the writer acknowledges requests once they are in the journal and
        // commits many at once; this row, set in the same transaction, tells a replay at start
        // which records the tables already hold.
        sql: r#"
CREATE TABLE store_journal (
    applied_seq UBIGINT NOT NULL           -- journal records up to this one are in the tables
);
INSERT INTO store_journal VALUES (0);
"#,
    },
    Migration {
        version: 6,
        description: "inferences.task: the model's task (ml.model.task) when the event says",
        // Appended at the end of the table: the Arrow appender fills columns by position. A
        // journal from before is replayed before this step runs (see Store::open).
        sql: r#"
ALTER TABLE inferences ADD COLUMN task VARCHAR;  -- ml.model.task: classification | regression
"#,
    },
    Migration {
        version: 7,
        description: "audit: the append-only audit log, its watchers' cursors, the model registry",
        // The audit log is written only through the store's writer (one order, one hash chain)
        // and is not one of the tables data retention deletes from; see src/audit.
        sql: r#"
CREATE TABLE audit_log (                   -- append-only; each row's hash covers the previous row's
    seq UBIGINT NOT NULL,                  -- 1, 2, 3, ... in the order written
    time TIMESTAMP_NS NOT NULL,            -- when it happened (UTC)
    actor VARCHAR NOT NULL,                -- system, or the person or token named
    source VARCHAR,                        -- host, device or address it came from, when known
    action VARCHAR NOT NULL,               -- e.g. deployment, drift.started, alert.fired
    model VARCHAR,                         -- the model it concerns, when one
    object VARCHAR NOT NULL,               -- JSON: what it concerns (model, version, feature, alert, ...)
    old_value VARCHAR,                     -- JSON: the value before a change
    new_value VARCHAR,                     -- JSON: the value after
    reason VARCHAR,
    prev_hash VARCHAR NOT NULL,            -- the previous entry's hash (64 zeros for the first)
    hash VARCHAR NOT NULL                  -- SHA-256 (hex) of the entry's canonical content
);
CREATE TABLE audit_watch (                 -- what the audit watchers have seen, per source
    key VARCHAR PRIMARY KEY,
    value JSON NOT NULL
);
CREATE TABLE model_registry (              -- where each model version ran ('' when not said)
    model VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    environment VARCHAR NOT NULL,          -- deployment.environment.name
    host VARCHAR NOT NULL,                 -- host.name
    site VARCHAR NOT NULL,                 -- site.name
    line VARCHAR NOT NULL,                 -- site.line
    instance VARCHAR NOT NULL,             -- service.instance.id
    first_seen TIMESTAMP_NS NOT NULL,
    last_seen TIMESTAMP_NS NOT NULL,
    events UBIGINT NOT NULL,
    PRIMARY KEY (model, version, environment, host, site, line, instance)
);
"#,
    },
    Migration {
        version: 8,
        description: "silences: who ended a silence before its time, and why",
        sql: r#"
ALTER TABLE alert_silences ADD COLUMN ended_by VARCHAR;     -- who expired it (NULL: it ran out)
ALTER TABLE alert_silences ADD COLUMN end_comment VARCHAR;  -- why they did
"#,
    },
];
