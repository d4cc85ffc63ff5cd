//! The store's schema, as versioned migration steps recorded in `millwatch_schema_migrations`.
//!
//! A step is never edited once released: a change is a new step. Times are `TIMESTAMP_NS` so that
//! an OTLP `time_unix_nano` survives the round trip exactly.

/// One migration step: its version and the SQL that takes the schema from `version - 1` to `version`.
pub struct Migration {
    pub version: u32,
    pub description: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[Migration {
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
}];
