//! Deserialising a config while collecting every mistake, not just the first. Serde stops at
//! the first error, so the loader records it, cuts the offending node out of the tree and tries
//! again, until the config reads or nothing is left to cut.

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;

use super::deserializer::Reader;
use super::document::{Node, Value};
use super::messages::{backticked, closest, unknown_name};
use super::path::{self, Seg};

/// How many times the loader cuts a bad node out and retries before giving up.
const MAX_ROUNDS: usize = 100;

/// A mistake found while deserialising, at its path in the file as written.
pub struct Issue {
    pub path: Vec<Seg>,
    pub kind: IssueKind,
    /// For an enum or struct given the wrong kind of value: what it accepts.
    pub expected: Option<Vec<String>>,
}

pub enum IssueKind {
    Missing(String),
    /// A problem a section's own check found; its message says how to put it right.
    Checked(String),
    Other(String),
    Unlocated(String),
}

/// The error message of a section that checks itself as a whole (names that must refer to
/// each other, ...): one `(path, message)` a problem, the path relative to the section, such as
/// `route.routes[0].receiver`. Each is then reported at its own place in the file.
pub fn located(problems: &[(String, String)]) -> String {
    problems
        .iter()
        .map(|(path, message)| format!("@{path}: {message}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The problems of a [`located`] message, with their paths parsed.
fn located_problems(message: &str) -> Option<Vec<(Vec<Seg>, String)>> {
    message
        .lines()
        .map(|line| {
            let (path, problem) = line.strip_prefix('@')?.split_once(": ")?;
            Some((path::parse(path)?, problem.to_string()))
        })
        .collect::<Option<Vec<_>>>()
        .filter(|p| !p.is_empty())
}

/// Sequence items cut out so far, so later error paths can be mapped to the original indices.
#[derive(Default)]
struct Removed {
    items: HashMap<Vec<Seg>, Vec<usize>>,
}

impl Removed {
    fn original(&self, current: &[Seg]) -> Vec<Seg> {
        let mut out = Vec::with_capacity(current.len());
        for seg in current {
            match seg {
                Seg::Key(_) | Seg::Variant(_) => out.push(seg.clone()),
                Seg::Index(k) => {
                    let removed = self.items.get(&out);
                    let mut original = 0;
                    let mut remaining = *k;
                    loop {
                        if removed.is_some_and(|r| r.contains(&original)) {
                            original += 1;
                            continue;
                        }
                        if remaining == 0 {
                            break;
                        }
                        remaining -= 1;
                        original += 1;
                    }
                    out.push(Seg::Index(original));
                }
            }
        }
        out
    }

    /// Cuts the node at `current` (`original` in the file) out of `doc`; false when there is
    /// nothing to cut.
    fn cut(&mut self, doc: &mut Node, current: &[Seg], original: &[Seg]) -> bool {
        let Some(depth) = doc.remove(current) else {
            return false;
        };
        if let (Some(Seg::Index(_)), Some((Seg::Index(original_index), original_parent))) =
            (current[..depth].last(), original[..depth].split_last())
        {
            self.items
                .entry(original_parent.to_vec())
                .or_default()
                .push(*original_index);
        }
        true
    }
}

/// The config (with the bad nodes cut out, when there were any) and every issue found.
pub fn deserialize_collecting<T: DeserializeOwned>(mut doc: Node) -> (Option<T>, Vec<Issue>) {
    let mut issues = Vec::new();
    let mut removed = Removed::default();
    let mut cut: HashSet<Vec<Seg>> = HashSet::new();
    for _ in 0..MAX_ROUNDS {
        let e = match serde_path_to_error::deserialize::<_, T>(Reader::new(&doc)) {
            Ok(config) => return (Some(config), issues),
            Err(e) => e,
        };
        let message = e.inner().to_string();
        let Some(mut current) = path::of_error(e.path()) else {
            issues.push(Issue {
                path: Vec::new(),
                kind: IssueKind::Unlocated(message),
                expected: None,
            });
            break;
        };
        let mut original = removed.original(&current);
        if let Some((field, names)) = unknown_name(&message, "field") {
            // Internally tagged enums report an unknown field at the enclosing value.
            if current.last() != Some(&Seg::Key(field.clone())) {
                current.push(Seg::Key(field.clone()));
                original.push(Seg::Key(field.clone()));
            }
            // `windw` for `window` is one mistake, not also a missing `window`.
            if let Some(meant) = closest(&field, &names) {
                let mut meant_path = original[..original.len() - 1].to_vec();
                meant_path.push(Seg::Key(meant.clone()));
                cut.insert(meant_path);
            }
        }

        if let Some(field) = missing_field(&message) {
            let mut field_path = original.clone();
            field_path.push(Seg::Key(field.clone()));
            // A required field whose bad value was cut out has been reported already.
            if !cut.contains(&field_path) {
                issues.push(Issue {
                    path: original.clone(),
                    kind: IssueKind::Missing(field),
                    expected: None,
                });
            }
        } else if let Some(problems) = located_problems(&message) {
            for (relative, problem) in problems {
                let mut path = original.clone();
                path.extend(relative);
                issues.push(Issue {
                    path,
                    kind: IssueKind::Checked(problem),
                    expected: None,
                });
            }
        } else {
            let expected = expected_shape::<T>(&doc, &current, &message);
            issues.push(Issue {
                path: original.clone(),
                kind: IssueKind::Other(message),
                expected,
            });
        }
        if current.is_empty() || !removed.cut(&mut doc, &current, &original) {
            break;
        }
        cut.insert(original);
    }
    (None, issues)
}

fn missing_field(message: &str) -> Option<String> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
        .map(str::to_string)
}

/// For an enum or a struct given the wrong kind of value, learns what it accepts by offering a
/// value it cannot accept and reading serde's "expected one of" list.
fn expected_shape<T: DeserializeOwned>(
    doc: &Node,
    current: &[Seg],
    message: &str,
) -> Option<Vec<String>> {
    let mut probed = doc.clone();
    let node = probed.get_mut(current)?;
    node.tag = None;
    if message.contains(" enum") {
        node.value = Value::String("\u{1}".to_string());
    } else if message.contains("expected struct") {
        let mut key = node.clone();
        key.value = Value::String("\u{1}".to_string());
        let mut value = node.clone();
        value.value = Value::Null;
        node.value = Value::Mapping(vec![(key, value)]);
    } else {
        return None;
    }
    let e = serde_path_to_error::deserialize::<_, T>(Reader::new(&probed)).err()?;
    let probed_path = path::of_error(e.path())?;
    let message = e.inner().to_string();
    let listed = message.starts_with("unknown variant `\u{1}`")
        || message.starts_with("unknown field `\u{1}`");
    (listed && probed_path.starts_with(current))
        .then(|| backticked(&message).into_iter().skip(1).collect())
}
