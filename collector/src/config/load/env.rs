//! `${env:NAME}` in a config file: replaced by the variable's value from the environment (or
//! `${env:NAME:-default}`'s default when it is unset or empty); `$${` stands for a literal `${`.
//!
//! Substitution works on the values the YAML parser read, so a comment or a block of text is
//! never touched, and quoting keeps working: in a quoted value the variable's value stays text,
//! while an unquoted value is read as if the variable's value had been typed there (`5` is a
//! number, `[a, b]` a list).

use super::document::{Node, Place, Value, place_of};
use super::path::Seg;

/// A reference that could not be substituted.
pub struct EnvProblem {
    /// The setting it was written in.
    pub path: Vec<Seg>,
    /// Where the `${env:` is in the file.
    pub at: Place,
    pub message: String,
    pub hint: String,
}

const OPEN: &str = "${env:";

/// Substitutes every reference in the values and keys of `doc`, parsed from `text`.
pub fn substitute(
    doc: &mut Node,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<EnvProblem> {
    let mut problems = Vec::new();
    doc.scalars_mut(&mut Vec::new(), &mut |path, node| {
        let Value::String(written) = &node.value else {
            return;
        };
        if !written.contains("${") {
            return;
        }
        let place_of_reference = |index: usize| {
            // The n-th `${env:` of the value is the n-th in the file from where it is written.
            let nth = written[..index].matches(OPEN).count();
            node.offset
                .and_then(|start| {
                    let (found, _) = text.get(start..)?.match_indices(OPEN).nth(nth)?;
                    Some(place_of(text, start + found))
                })
                .unwrap_or(node.at)
        };
        let mut report = |index: usize, message: String, hint: String| {
            problems.push(EnvProblem {
                path: path.to_vec(),
                at: place_of_reference(index),
                message,
                hint,
            });
        };
        let substituted = expand(written, env, &mut report);
        if node.plain {
            let at = node.at;
            match Node::parse(&substituted) {
                // On one line, only a scalar or a flow collection (`[a, b]`) can be typed.
                Ok(mut typed)
                    if typed.tag.is_none()
                        && (!matches!(typed.value, Value::Sequence(_) | Value::Mapping(_))
                            || substituted.trim_start().starts_with(['[', '{'])) =>
                {
                    typed.relocate(at);
                    node.value = typed.value;
                }
                _ => node.value = Value::String(substituted),
            }
        } else {
            node.value = Value::String(substituted);
        }
    });
    problems
}

/// `written` with its references replaced; each problem reported with the byte index of its
/// `${env:` in `written`.
fn expand(
    written: &str,
    env: &dyn Fn(&str) -> Option<String>,
    report: &mut dyn FnMut(usize, String, String),
) -> String {
    let mut out = String::with_capacity(written.len());
    let mut i = 0;
    while i < written.len() {
        let rest = &written[i..];
        if rest.starts_with("$${") {
            out.push_str("${");
            i += 3;
            continue;
        }
        if !rest.starts_with(OPEN) {
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let Some(close) = rest.find('}') else {
            report(
                i,
                "`${env:` is not closed by `}`".to_string(),
                "write ${env:NAME} or ${env:NAME:-default}; $${ stands for a literal ${"
                    .to_string(),
            );
            out.push_str(rest);
            break;
        };
        let inner = &rest[OPEN.len()..close];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if !is_env_name(name) {
            report(
                i,
                format!("`{name}` is not a valid environment variable name"),
                "use letters, digits and `_`, not starting with a digit".to_string(),
            );
        } else {
            match (
                env(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => report(
                    i,
                    format!("environment variable `{name}` is not set"),
                    format!("set it, or give a default: ${{env:{name}:-value}}"),
                ),
            }
        }
        i += close + 1;
    }
    out
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn substituted(text: &str, env: &dyn Fn(&str) -> Option<String>) -> (Node, Vec<String>) {
        let mut doc = Node::parse(text).expect("parses");
        let problems = substitute(&mut doc, text, env)
            .into_iter()
            .map(|p| format!("{}:{} {}", p.at.0, p.at.1, p.message))
            .collect();
        (doc, problems)
    }

    #[test]
    fn unquoted_values_are_read_as_typed_and_quoted_ones_stay_text() {
        let env = |name: &str| match name {
            "N" => Some("5".to_string()),
            "LIST" => Some("[a, b]".to_string()),
            "COLON" => Some("a: b".to_string()),
            _ => None,
        };
        let text =
            "n: ${env:N}\nq: \"${env:N}\"\nlist: ${env:LIST}\nb: |\n  ${env:N}\nc: ${env:COLON}\n";
        let (doc, problems) = substituted(text, &env);
        assert!(problems.is_empty(), "{problems:?}");
        let Value::Mapping(entries) = &doc.value else {
            panic!("{doc:?}")
        };
        let values: Vec<&Value> = entries.iter().map(|(_, v)| &v.value).collect();
        assert_eq!(values[0], &Value::Unsigned(5));
        assert_eq!(values[1], &Value::String("5".into()));
        assert!(matches!(values[2], Value::Sequence(items) if items.len() == 2));
        assert_eq!(values[3], &Value::String("5\n".into()));
        // What could not be typed on that line stays text.
        assert_eq!(values[4], &Value::String("a: b".into()));
        // A list read from a variable is placed where the reference is.
        assert_eq!(
            doc.find(&[Seg::Key("list".into()), Seg::Index(1)]),
            Some((3, 7))
        );
    }

    #[test]
    fn each_reference_is_placed_where_it_is_written() {
        let text = "a: \"$${env:X} ${env:B1} and ${env:B2}\"\nb:\n  - x ${env:C}\n";
        let (_, problems) = substituted(text, &|_| None);
        assert_eq!(
            problems,
            [
                "1:15 environment variable `B1` is not set",
                "1:29 environment variable `B2` is not set",
                "3:7 environment variable `C` is not set",
            ]
        );
    }

    #[test]
    fn values_from_the_environment_are_not_substituted_again() {
        let (doc, problems) = substituted("a: ${env:A}\n", &|_| Some("${env:B}".to_string()));
        assert!(problems.is_empty());
        assert_eq!(
            doc.find(&[Seg::Key("a".into())]),
            Some((1, 1)),
            "the key keeps its place"
        );
        let Value::Mapping(entries) = &doc.value else {
            panic!("{doc:?}")
        };
        assert_eq!(entries[0].1.value, Value::String("${env:B}".into()));
    }
}
