//! What each mistake says and how to put it right: serde's message split into the mistake and a
//! hint ("did you mean `grpc`?", "use a duration such as 30s, 5m, 1h"), placed in the file.

use super::ConfigError;
use super::collect::{Issue, IssueKind};
use super::document::{Node, Place};
use super::path::{self, Seg};

impl Issue {
    /// The issue as reported: its place looked up in `doc` (the file as written).
    pub fn into_error(self, doc: &Node, source: &str) -> ConfigError {
        let (path, at, message, hint): (Vec<Seg>, Option<Place>, String, Option<String>) =
            match self.kind {
                IssueKind::Missing(field) => {
                    let (at, hint) = if self.path.is_empty() {
                        (None, format!("add `{field}:` at the top level"))
                    } else {
                        (
                            doc.find(&self.path),
                            format!("add `{field}:` under `{}`", path::display(&self.path)),
                        )
                    };
                    let mut path = self.path;
                    path.push(Seg::Key(field.clone()));
                    (
                        path,
                        at,
                        format!("missing required field `{field}`"),
                        Some(hint),
                    )
                }
                IssueKind::Other(message) => {
                    let at = doc.find(&self.path);
                    let (message, hint) = explain(&message, self.expected.as_deref());
                    (self.path, at, message, hint)
                }
                IssueKind::Checked(message) => {
                    let at = doc.find(&self.path);
                    (self.path, at, message, None)
                }
                IssueKind::Unlocated(message) => (Vec::new(), None, message, None),
            };
        ConfigError {
            source: source.to_string(),
            path: path::display(&path),
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
            message,
            hint,
        }
    }
}

/// Splits serde's message into what went wrong and a hint on how to put it right.
fn explain(message: &str, expected: Option<&[String]>) -> (String, Option<String>) {
    for what in ["field", "variant"] {
        if let Some((name, names)) = unknown_name(message, what) {
            let hint = if names.is_empty() {
                format!("no {what}s are allowed here")
            } else {
                suggestion(&name, &names)
            };
            return (format!("unknown {what} `{name}`"), Some(hint));
        }
    }
    let hint = if message.ends_with("expected a duration") {
        Some("use a duration such as 30s, 5m, 1h".to_string())
    } else if let Some(names) = expected.filter(|n| !n.is_empty()) {
        if message.contains(" enum") {
            Some(format!("expected one of: {}", list(names)))
        } else {
            Some(format!(
                "expected a section with the fields: {}",
                list(names)
            ))
        }
    } else if message.contains("expected a nonzero") {
        Some("use a whole number greater than 0".to_string())
    } else if [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
    ]
    .iter()
    .any(|t| message.ends_with(&format!("expected {t}")))
    {
        Some("use a whole number".to_string())
    } else if message.ends_with("expected f64") || message.ends_with("expected f32") {
        Some("use a number such as 0.5".to_string())
    } else if message.ends_with("expected a boolean") {
        Some("use true or false".to_string())
    } else if message.ends_with("expected a string") {
        Some("put the value in quotes to make it text".to_string())
    } else if message.ends_with("expected a sequence") {
        Some("use a list, one `- item` per line".to_string())
    } else if message.ends_with("expected a map") {
        Some("use a section of `key: value` lines".to_string())
    } else if message.contains("socket address") {
        Some("use an IP address and a port, such as 127.0.0.1:4317 or 0.0.0.0:4317 (not a host name)".to_string())
    } else {
        // Whatever serde or a check said, the reference has every key with its default.
        Some("`millwatch run --print-config` prints every key with its default; docs/configuration.md describes each".to_string())
    };
    (message.to_string(), hint)
}

/// The `x` of every `` `x` `` in `text`.
pub fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name in serde's "unknown field `x`, expected one of `a`, `b`" (or "variant"), and the
/// names it lists.
pub fn unknown_name(message: &str, what: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(&format!("unknown {what} `"))?;
    let (name, tail) = rest.split_once('`')?;
    Some((name.to_string(), backticked(tail)))
}

/// The allowed name close enough to `wrong` to be what was meant: within a few edits, a swap
/// of two neighbouring characters counting as one (optimal string alignment distance).
pub fn closest<'a>(wrong: &str, names: &'a [String]) -> Option<&'a String> {
    let wrong_lower = wrong.to_lowercase().replace('-', "_");
    let (distance, name) = names
        .iter()
        .map(|n| (strsim::osa_distance(&wrong_lower, &n.to_lowercase()), n))
        .min_by_key(|(d, _)| *d)?;
    (distance <= 2.max(wrong.chars().count() / 3) && distance < name.chars().count())
        .then_some(name)
}

/// "did you mean `x`?" when one name is close to `wrong`, else the list of allowed names.
fn suggestion(wrong: &str, names: &[String]) -> String {
    match closest(wrong, names) {
        Some(name) => format!("did you mean `{name}`?"),
        None => format!("expected one of: {}", list(names)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_need_a_close_name() {
        let names = ["endpoint".to_string(), "tls".to_string()];
        assert_eq!(suggestion("endpiont", &names), "did you mean `endpoint`?");
        assert_eq!(suggestion("Endpoint", &names), "did you mean `endpoint`?");
        assert_eq!(
            suggestion("address", &names),
            "expected one of: `endpoint`, `tls`"
        );
        let names = ["retention".to_string(), "retention_interval".to_string()];
        assert_eq!(suggestion("retnetion", &names), "did you mean `retention`?");
        assert_eq!(
            suggestion("retention-interval", &names),
            "did you mean `retention_interval`?"
        );
    }
}
