//! Scheduled reports (`reports:`): at each scheduled time, the report of every named model (or
//! of every model that ran) over the time since the previous one, in the configured formats,
//! mailed as attachments (or posted to an Alertmanager-format webhook) through the alert outbox (so a report waits out an SMTP outage and a
//! restart, and is sent once) and/or written to a directory. Each report made is an audit
//! entry (`report.generated`: files, receivers, recipients), each delivery another
//! (`report.delivered` / `report.failed`, from the outbox's attempts, see `audit::watch`).
//!
//! The time up to which a report was made is kept in `audit_watch` (`report:<name>`), written
//! in the same transaction as the outbox rows and the audit entry: a report is neither lost
//! nor made twice across a restart. A start without that record (a new report) waits for the
//! next scheduled time; a start after scheduled times were missed makes one report covering
//! the whole gap.

use std::path::PathBuf;
use std::time::Duration;

use duckdb::Connection;
use millwatch_exporters::notify::{Attachment, Labels, Notification};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::data::{self, Scope};
use super::render::{self, Format};
use crate::audit::entry::{NewEntry, rfc3339};
use crate::audit::watch::Recipients;
use crate::audit::{AuditLog, Task, chain, load_watch_value, save_watch_value};
use crate::config::load::Problem;

/// The outbox group of a scheduled report's notifications starts with this.
pub const GROUP_PREFIX: &str = "report/";

const DAY_NS: i64 = 86_400_000_000_000;
const MINUTE_NS: i64 = 60_000_000_000;

/// One scheduled report, an entry of `reports:`.
///
/// ```yaml
/// reports:
///   - name: weekly-quality
///     schedule: weekly on monday at 06:00
///     models: [press-vision]
///     formats: [html, csv]
///     receivers: [plant-mail]
///     directory: /var/lib/millwatch/reports
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledReport {
    /// Names the report in the e-mail subject, the file names, the audit log and the record of
    /// what was sent. Unique.
    pub name: String,
    /// When (UTC): `daily at HH:MM`, `weekly on <weekday> at HH:MM`, or `every <duration>`
    /// (e.g. `every 1h`, aligned to multiples of it since 1970). Each report covers the time
    /// since the previous one.
    pub schedule: Schedule,
    /// The models reported on (one file per model and format); empty: every model whose
    /// inference events were seen in the period.
    #[serde(default)]
    pub models: Vec<String>,
    /// Only this `deployment.environment.name`.
    #[serde(default)]
    pub environment: Option<String>,
    /// `html`, `json`, `csv`, `md`.
    #[serde(default = "default_formats")]
    pub formats: Vec<Format>,
    /// Alert receivers (`alerting.receivers`) the report goes to through the alert outbox,
    /// with its retries: an `email` receiver gets the files attached, a `webhook` one with
    /// `format: alertmanager` gets them base64-encoded in the payload's `attachments`.
    #[serde(default)]
    pub receivers: Vec<String>,
    /// A directory the files are also written to (created when missing; relative to the
    /// working directory).
    #[serde(default)]
    pub directory: Option<PathBuf>,
}

fn default_formats() -> Vec<Format> {
    vec![Format::Html]
}

/// When a report is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub enum Schedule {
    /// At multiples of this interval since the epoch.
    Every(Duration),
    /// Every day at this many minutes past midnight UTC.
    Daily(u32),
    /// Every week on this weekday (0 = Monday) at this many minutes past midnight UTC.
    Weekly(u32, u32),
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let bad = || {
            format!(
                "`{text}` is not a schedule: write `daily at 06:00`, `weekly on monday at 06:00` (UTC) or `every 1h`"
            )
        };
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let time = |t: &str| -> Result<u32, String> {
            let not_a_time = || format!("`{t}` is not a time of day: write HH:MM (00:00 to 23:59)");
            let (h, m) = t.split_once(':').ok_or_else(not_a_time)?;
            match (h.parse::<u32>(), m.parse::<u32>()) {
                (Ok(hour), Ok(minute)) if hour < 24 && minute < 60 && m.len() == 2 => {
                    Ok(hour * 60 + minute)
                }
                _ => Err(not_a_time()),
            }
        };
        match words.as_slice() {
            ["every", d] => {
                let d = humantime::parse_duration(d).map_err(|e| format!("{}: {e}", bad()))?;
                if d < Duration::from_secs(1) {
                    return Err(format!("`{text}`: the interval must be at least 1s"));
                }
                Ok(Schedule::Every(d))
            }
            ["daily", "at", t] => Ok(Schedule::Daily(time(t)?)),
            ["weekly", "on", day, "at", t] => {
                let w = WEEKDAYS
                    .iter()
                    .position(|w| w == day)
                    .ok_or_else(|| format!("`{day}` is not a weekday: {}", WEEKDAYS.join(", ")))?;
                Ok(Schedule::Weekly(w as u32, time(t)?))
            }
            _ => Err(bad()),
        }
    }

    /// The newest scheduled time at or before `now` (ns since the epoch).
    pub fn last_due(&self, now: i64) -> i64 {
        match *self {
            Schedule::Every(d) => {
                let step = d.as_nanos().min(i64::MAX as u128) as i64;
                now.div_euclid(step) * step
            }
            Schedule::Daily(minute) => {
                let t = now.div_euclid(DAY_NS) * DAY_NS + minute as i64 * MINUTE_NS;
                if t > now { t - DAY_NS } else { t }
            }
            Schedule::Weekly(weekday, minute) => {
                let day = now.div_euclid(DAY_NS);
                // 1970-01-01 was a Thursday (3 with Monday 0).
                let back = (day + 3 - weekday as i64).rem_euclid(7);
                let t = (day - back) * DAY_NS + minute as i64 * MINUTE_NS;
                if t > now { t - 7 * DAY_NS } else { t }
            }
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        match *self {
            Schedule::Every(d) => write!(f, "every {}", humantime::format_duration(d)),
            Schedule::Daily(m) => write!(f, "daily at {}", hm(m)),
            Schedule::Weekly(w, m) => write!(f, "weekly on {} at {}", WEEKDAYS[w as usize], hm(m)),
        }
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Schedule, D::Error> {
        let text = String::deserialize(d)?;
        Schedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What is wrong with the `reports:` section against the rest of the configuration.
pub fn check(config: &crate::config::Config) -> Vec<Problem> {
    use millwatch_exporters::notify::{NotifierConfig, WebhookFormat};
    let mut problems = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (i, r) in config.reports.iter().enumerate() {
        let at = format!("reports[{i}]");
        let mut problem = |path: String, message: String, hint: Option<String>| {
            problems.push(Problem {
                path,
                message,
                hint,
            })
        };
        if r.name.trim().is_empty() || !names.insert(r.name.clone()) {
            problem(
                format!("{at}.name"),
                format!("the report name `{}` is empty or used twice", r.name),
                Some("give every scheduled report its own name".into()),
            );
        }
        if r.formats.is_empty() {
            problem(
                format!("{at}.formats"),
                "no format".into(),
                Some("list at least one of html, json, csv, md".into()),
            );
        }
        if r.receivers.is_empty() && r.directory.is_none() {
            problem(
                at.clone(),
                format!("report `{}` goes nowhere", r.name),
                Some("add `receivers` (alert receivers of type email) or a `directory`".into()),
            );
        }
        for (j, name) in r.receivers.iter().enumerate() {
            let path = format!("{at}.receivers[{j}]");
            let carries_files = match config.alerting.receivers.get(name) {
                Some(NotifierConfig::Email(_)) => Some(true),
                Some(NotifierConfig::Webhook(w)) => Some(w.format == WebhookFormat::Alertmanager),
                Some(_) => Some(false),
                None => None,
            };
            match carries_files {
                None => problem(
                    path,
                    format!("unknown receiver `{name}`"),
                    Some(format!(
                        "name one of `alerting.receivers` ({})",
                        config
                            .alerting
                            .receivers
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ),
                Some(true) if !config.alerting.enabled => problem(
                    path,
                    format!("receiver `{name}` sends through the alert outbox, which is off"),
                    Some("set `alerting.enabled: true`".into()),
                ),
                Some(true) => {}
                Some(false) => problem(
                    path,
                    format!("receiver `{name}` cannot carry the report's files"),
                    Some(
                        "name an email receiver, or a webhook with `format: alertmanager` (the files base64 in `attachments`)"
                            .into(),
                    ),
                ),
            }
        }
    }
    problems
}

/// Where each scheduled report stands: the end of the period last reported.
const STATE_PREFIX: &str = "report:";

fn load_until(conn: &Connection, name: &str) -> duckdb::Result<Option<i64>> {
    Ok(load_watch_value(conn, &format!("{STATE_PREFIX}{name}"))?
        .and_then(|t| t.trim().parse::<i64>().ok()))
}

/// The files of one report over `[since, until)`: per model and format. Models: the named
/// ones, else those with inference events in the period.
pub fn files(
    conn: &Connection,
    report: &ScheduledReport,
    since: i64,
    until: i64,
    now: i64,
) -> anyhow::Result<(Vec<String>, Vec<Attachment>)> {
    let models = if report.models.is_empty() {
        let mut stmt = conn.prepare(
            "SELECT DISTINCT model FROM model_registry \
             WHERE last_seen >= make_timestamp_ns(?) AND first_seen < make_timestamp_ns(?) ORDER BY model",
        )?;
        let rows = stmt.query_map([since, until], |r| r.get::<_, String>(0))?;
        rows.collect::<duckdb::Result<Vec<_>>>()?
    } else {
        report.models.clone()
    };
    let stamp = |t: i64| format!("{}Z", rfc3339(t)[..19].replace([':', '-'], ""));
    let mut files = Vec::new();
    for model in &models {
        let scope = Scope {
            model: model.clone(),
            version: None,
            environment: report.environment.clone(),
            since: Some(since),
            until: Some(until),
        };
        let built = data::build(conn, &scope, now)?;
        let safe: String = model
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        for format in &report.formats {
            files.push(Attachment {
                filename: format!(
                    "{safe}-{}-{}-{}.{}",
                    report.name,
                    stamp(since),
                    stamp(until),
                    format.extension()
                ),
                content_type: format.content_type().into(),
                content: render::render(&built, *format)?,
            });
        }
    }
    Ok((models, files))
}

/// Starts making the scheduled reports; `reader` is a connection of its own.
pub fn start(
    log: AuditLog,
    reader: Connection,
    reports: Vec<ScheduledReport>,
    recipients: Recipients,
    external_url: String,
) -> Task {
    let reader = std::sync::Arc::new(std::sync::Mutex::new(reader));
    Task::spawn(move |mut stopped| async move {
        let mut until: Vec<Option<i64>> = vec![None; reports.len()];
        let mut loaded = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            if !loaded {
                let r = reader.clone();
                let names: Vec<String> = reports.iter().map(|r| r.name.clone()).collect();
                let got = tokio::task::spawn_blocking(move || {
                    let c = r.lock().map_err(|_| anyhow::anyhow!("reader poisoned"))?;
                    names
                        .iter()
                        .map(|n| load_until(&c, n).map_err(anyhow::Error::from))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
                .await;
                match got.map_err(anyhow::Error::from).and_then(|r| r) {
                    Ok(u) => {
                        until = u;
                        loaded = true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the scheduled reports' state failed");
                        continue;
                    }
                }
            }
            let now = crate::audit::now_ns();
            for (i, report) in reports.iter().enumerate() {
                let due = report.schedule.last_due(now);
                let since = match until[i] {
                    Some(u) if u >= due => continue,
                    Some(u) => u,
                    None => {
                        // A new report: its first period starts at the last scheduled time.
                        let key = format!("{STATE_PREFIX}{}", report.name);
                        let value = due.to_string();
                        match log.write(move |c| save_watch_value(c, &key, &value)).await {
                            Ok(()) => until[i] = Some(due),
                            Err(e) => tracing::warn!(error = %e, "saving a report's state failed"),
                        }
                        continue;
                    }
                };
                match make(
                    &log,
                    &reader,
                    report,
                    &recipients,
                    &external_url,
                    since,
                    due,
                )
                .await
                {
                    Ok(()) => until[i] = Some(due),
                    Err(e) => tracing::warn!(
                        report = %report.name, error = %e,
                        "making the scheduled report failed; tried again in a second"
                    ),
                }
            }
        }
    })
}

/// Makes one report over `[since, until)` and, in one transaction, queues its e-mails, records
/// it in the audit log and moves its state to `until`.
async fn make(
    log: &AuditLog,
    reader: &std::sync::Arc<std::sync::Mutex<Connection>>,
    report: &ScheduledReport,
    recipients: &Recipients,
    external_url: &str,
    since: i64,
    until: i64,
) -> anyhow::Result<()> {
    let now = crate::audit::now_ns();
    let (models, files) = {
        let reader = reader.clone();
        let report = report.clone();
        tokio::task::spawn_blocking(move || {
            let c = reader
                .lock()
                .map_err(|_| anyhow::anyhow!("the report reader is unusable after a panic"))?;
            files(&c, &report, since, until, now)
        })
        .await??
    };
    let mut written = None;
    if let Some(dir) = &report.directory {
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            for f in &files {
                std::fs::write(dir.join(&f.filename), &f.content)?;
            }
            Ok(())
        };
        written = Some(match write() {
            Ok(()) => json!({ "directory": dir, "written": true }),
            Err(e) => {
                tracing::warn!(report = %report.name, directory = %dir.display(), error = %e, "writing a scheduled report failed");
                json!({ "directory": dir, "written": false, "error": e.to_string() })
            }
        });
    }
    let period = format!("{} to {}", &rfc3339(since)[..19], &rfc3339(until)[..19]);
    let summary = format!(
        "Millwatch report {}: {} ({period} UTC)",
        report.name,
        if models.is_empty() {
            "no model ran".to_string()
        } else {
            models.join(", ")
        }
    );
    let labels: Labels = [
        ("alertname".to_string(), "MillwatchReport".to_string()),
        ("report".to_string(), report.name.clone()),
    ]
    .into_iter()
    .collect();
    let group_key = format!("{GROUP_PREFIX}{}/{until}", report.name);
    let notifications: Vec<Notification> = if files.is_empty() {
        Vec::new()
    } else {
        report
            .receivers
            .iter()
            .map(|receiver| {
                let mut n = Notification::new(
                    receiver.clone(),
                    group_key.clone(),
                    labels.clone(),
                    Vec::new(),
                    external_url,
                );
                n.common_labels = labels.clone();
                if let [model] = models.as_slice() {
                    n.common_labels.insert("model".into(), model.clone());
                }
                n.common_annotations = [
                    ("summary".to_string(), summary.clone()),
                    (
                        "description".to_string(),
                        format!(
                            "Scheduled report `{}` ({}), {} file(s): {} for {}.",
                            report.name,
                            report.schedule,
                            files.len(),
                            report
                                .formats
                                .iter()
                                .map(|f| f.extension())
                                .collect::<Vec<_>>()
                                .join(", "),
                            models.join(", ")
                        ),
                    ),
                ]
                .into_iter()
                .collect();
                n.attachments = files.clone();
                n
            })
            .collect()
    };
    let told: Vec<_> = report
        .receivers
        .iter()
        .map(|r| {
            let (channel, recipient) = recipients.get(r).cloned().unwrap_or_default();
            json!({ "receiver": r, "channel": channel, "recipient": recipient })
        })
        .collect();
    let mut object = json!({
        "report": report.name, "schedule": report.schedule.to_string(), "models": models,
        "since": rfc3339(since), "until": rfc3339(until), "group": group_key,
    });
    if let [model] = models.as_slice() {
        object["model"] = json!(model);
    }
    let entry = NewEntry::system(now, "report.generated", object)
        .new_value(json!({
            "files": files.iter().map(|f| json!({
                "filename": f.filename, "bytes": f.content.len(),
                "sha256": hex::encode(Sha256::digest(&f.content)),
            })).collect::<Vec<_>>(),
            "queued_for": if notifications.is_empty() { json!([]) } else { json!(told) },
            "directory": written,
        }))
        .reason(if files.is_empty() {
            "no model had inference events in the period: nothing to send"
        } else {
            ""
        });
    let key = format!("{STATE_PREFIX}{}", report.name);
    log.write(move |c| {
        for n in &notifications {
            crate::alerting::outbox::enqueue(c, n, now)?;
        }
        chain::append(c, vec![entry])?;
        save_watch_value(c, &key, &until.to_string())
    })
    .await?;
    tracing::info!(report = %report.name, period = %period, files = files.len(), "scheduled report made");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn schedules_parse_and_name_their_last_time() {
        // 2024-05-01 was a Wednesday; 2024-05-01T10:30Z in ns.
        let now = 1_714_559_400_000_000_000;
        let daily = Schedule::parse("daily at 06:00").unwrap();
        assert_eq!(daily.last_due(now), now - 4 * H - 30 * MINUTE_NS);
        let late = Schedule::parse("Daily at 23:15").unwrap();
        assert_eq!(late.last_due(now), now - 11 * H - 15 * MINUTE_NS);
        let weekly = Schedule::parse("weekly on monday at 06:00").unwrap();
        assert_eq!(
            weekly.last_due(now),
            now - 2 * DAY_NS - 4 * H - 30 * MINUTE_NS
        );
        let same_day = Schedule::parse("weekly on wednesday at 10:30").unwrap();
        assert_eq!(same_day.last_due(now), now);
        let hourly = Schedule::parse("every 1h").unwrap();
        assert_eq!(hourly.last_due(now), now - 30 * MINUTE_NS);
        assert_eq!(weekly.to_string(), "weekly on monday at 06:00");
        for bad in [
            "hourly",
            "daily at 25:00",
            "weekly on funday at 06:00",
            "every 0s",
            "daily 06:00",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        assert!(Schedule::parse("daily at 6").unwrap_err().contains("HH:MM"));
    }

    #[test]
    fn a_report_has_one_file_per_model_and_format_and_only_models_that_ran() {
        let c = crate::audit::migrated_in_memory();
        c.execute_batch(
            "INSERT INTO model_registry VALUES \
             ('a', '1', 'prod', 'h', '', '', '', make_timestamp_ns(100), make_timestamp_ns(900), 5), \
             ('b', '1', 'prod', 'h', '', '', '', make_timestamp_ns(100), make_timestamp_ns(200), 5)",
        )
        .unwrap();
        let report = ScheduledReport {
            name: "weekly".into(),
            schedule: Schedule::Daily(0),
            models: Vec::new(),
            environment: None,
            formats: vec![Format::Json, Format::Csv],
            receivers: Vec::new(),
            directory: None,
        };
        let (models, files) = files(&c, &report, 500, 1_000, 2_000).unwrap();
        assert_eq!(models, ["a"]);
        let names: Vec<&str> = files.iter().map(|f| f.filename.as_str()).collect();
        assert_eq!(
            names,
            [
                "a-weekly-19700101T000000Z-19700101T000000Z.json",
                "a-weekly-19700101T000000Z-19700101T000000Z.csv"
            ]
        );
        let json: serde_json::Value = serde_json::from_slice(&files[0].content).unwrap();
        assert_eq!(json["model"], "a");
        assert_eq!(files[1].content_type, "text/csv; charset=utf-8");
    }

    #[test]
    fn the_section_is_checked_against_the_receivers() {
        let config: crate::config::Config = serde_saphyr::from_str(
            r#"
alerting:
  receivers:
    mail: { type: email, host: smtp.example.net, from: mw@example.net, to: [a@example.net] }
    chat: { type: webhook, url: "http://127.0.0.1:9/hook", format: teams }
    hook: { type: webhook, url: "http://127.0.0.1:9/hook" }
  route: { receiver: mail }
reports:
  - { name: a, schedule: daily at 06:00, receivers: [mail, hook, chat, pager] }
  - { name: a, schedule: every 1h, formats: [] }
"#,
        )
        .unwrap();
        let got: Vec<String> = check(&config)
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        assert_eq!(
            got,
            [
                "reports[0].receivers[2]: receiver `chat` cannot carry the report's files",
                "reports[0].receivers[3]: unknown receiver `pager`",
                "reports[1].name: the report name `a` is empty or used twice",
                "reports[1].formats: no format",
                "reports[1]: report `a` goes nowhere",
            ]
        );
        let err = serde_saphyr::from_str::<crate::config::Config>(
            "reports: [{ name: x, schedule: hourly, directory: /tmp }]",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`hourly` is not a schedule"), "{err}");
    }
}
