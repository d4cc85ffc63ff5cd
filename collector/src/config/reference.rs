//! The configuration reference, `docs/configuration.md`, rendered from the configuration types
//! themselves: their JSON schema (`schemars`) carries each setting's doc comment, type and
//! default, so the reference cannot drift from the code. `millwatch config-reference` prints
//! it; a test fails when the committed copy differs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::Config;

/// Where a resolved schema keeps the name of the type it came from.
const DEF: &str = "x-def";

/// ... and the type's own description, for its section.
const DEF_DESCRIPTION: &str = "x-def-description";

/// The command that writes `docs/configuration.md`.
pub const REGENERATE: &str =
    "cargo run --release -p millwatch -- config-reference > docs/configuration.md";

/// The reference as Markdown.
pub fn markdown() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
    let reference = Reference {
        defs: schema
            .get("$defs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        sections: RefCell::default(),
    };
    let mut out = format!(
        "# Configuration reference\n\n\
         <!-- Generated from the configuration types: do not edit. Regenerate with\n     {REGENERATE} -->\n\n\
         Every setting of Millwatch's YAML configuration file, with its type and default. A file \
         holds only what differs from the defaults; an empty file is the default configuration. \
         Unknown keys are refused, and `millwatch validate --config FILE` reports every mistake \
         with its line and column. `${{env:NAME}}` (or `${{env:NAME:-default}}`) is replaced by \
         an environment variable; `$${{` stands for a literal `${{`.\n\n\
         Types: a *duration* is written like `250ms`, `30s`, `5m`, `1h30m` or `7d`; a *size* is \
         a number of bytes or a number with a unit (`512KiB`, `20MiB`, `1GB`); an *address* is an \
         IP address and a port (`0.0.0.0:4317`). `millwatch run --print-config` prints the \
         configuration in effect with every default filled in.\n"
    );
    let root = reference.resolve(&schema);
    reference.section(&mut out, &Section::default(), &root);
    out
}

struct Reference {
    defs: Map<String, Value>,
    /// The title of the section written for each named type, so that a type that holds
    /// itself (a route's `routes`) links to its section instead of repeating it.
    sections: RefCell<HashMap<String, String>>,
}

impl Reference {
    /// `schema` with its `$ref` (and `allOf` parts) merged in; its own keys win.
    fn resolve(&self, schema: &Value) -> Value {
        let Some(object) = schema.as_object() else {
            return schema.clone();
        };
        let mut merged = Map::new();
        if let Some(target) = object
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .and_then(|name| self.defs.get(name))
            && let Value::Object(target) = self.resolve(target)
        {
            if let Some(description) = target.get("description") {
                merged.insert(DEF_DESCRIPTION.into(), description.clone());
            }
            merged.extend(target);
            merged.insert(DEF.into(), object["$ref"].clone());
        }
        for part in object
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Value::Object(part) = self.resolve(part) {
                merge(&mut merged, part);
            }
        }
        let own: Map<String, Value> = object
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "$ref" | "allOf"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        merge(&mut merged, own);
        Value::Object(merged)
    }

    /// For an optional setting (`anyOf: [T, null]`), `T`; else the schema itself.
    fn unwrap_optional(&self, schema: &Value) -> (Value, bool) {
        let schema = self.resolve(schema);
        if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
            let present: Vec<&Value> = options.iter().filter(|o| !is_null(o)).collect();
            if present.len() == 1 && present.len() < options.len() {
                let mut inner = self.resolve(present[0]);
                if let (Some(inner), Some(description)) =
                    (inner.as_object_mut(), schema.get("description"))
                {
                    inner.insert("description".into(), description.clone());
                }
                if let (Some(inner), Some(default)) = (inner.as_object_mut(), schema.get("default"))
                {
                    inner.insert("default".into(), default.clone());
                }
                return (inner, true);
            }
        }
        if let Some(types) = schema.get("type").and_then(Value::as_array)
            && types.iter().any(|t| t == "null")
        {
            let mut inner = schema.clone();
            let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
            if let Some(object) = inner.as_object_mut() {
                object.insert(
                    "type".into(),
                    match rest.as_slice() {
                        [one] => one.clone(),
                        _ => Value::Array(rest),
                    },
                );
            }
            return (inner, true);
        }
        (schema, false)
    }

    /// A section: its settings in a table, then the sections inside it.
    fn section(&self, out: &mut String, at: &Section, schema: &Value) {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let _ = write!(out, "\n## {}\n\n", at.title());
        let description = schema
            .get(DEF_DESCRIPTION)
            .or_else(|| schema.get("description"))
            .and_then(Value::as_str);
        if let Some(description) = description {
            let _ = write!(out, "{}\n\n", prose(description));
        }
        out.push_str("| Key | Type | Default | Description |\n|---|---|---|---|\n");
        let mut ancestors = at.ancestors.clone();
        ancestors.extend(schema.get(DEF).and_then(Value::as_str).map(str::to_string));
        let mut inner = Vec::new();
        for (key, property) in properties {
            let (mut property, optional) = self.unwrap_optional(property);
            // A section's defaults come from the setting that holds it.
            if property.get("default").is_none()
                && let (Some(default), Some(object)) =
                    (at.defaults.get(key), property.as_object_mut())
            {
                object.insert("default".into(), default.clone());
            }
            let child = Section {
                path: join(&at.path, key),
                qualifiers: at.qualifiers.clone(),
                defaults: Map::new(),
                ancestors: ancestors.clone(),
            };
            let kind = self.type_name(&property, &child, &mut inner);
            let default = match property.get("default") {
                _ if kind.contains("](#")
                    && !kind.starts_with("list")
                    && !kind.starts_with("map") =>
                {
                    String::new()
                }
                Some(value) => format!("`{}`", inline(value)),
                None if required.contains(&key.as_str()) => "required".to_string(),
                None if optional => "`null`".to_string(),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "| `{key}` | {kind} | {default} | {} |",
                cell(&self.description(&property)),
            );
        }
        for (child, child_schema) in inner {
            self.subsections(out, child, &child_schema);
        }
    }

    /// The sections of a setting that holds settings: a section, or one for each of its
    /// variants (chosen by their `type:` or `kind:`).
    fn subsections(&self, out: &mut String, at: Section, schema: &Value) {
        let Some(variants) = schema.get("oneOf").and_then(Value::as_array) else {
            self.section(out, &at, schema);
            return;
        };
        for variant in variants {
            let variant = self.resolve(variant);
            let mut at = at.clone();
            if let Some((key, value)) = tag_of(&variant) {
                at.qualifiers.push(format!("`{key}: {value}`"));
            }
            self.section(out, &at, &variant);
        }
    }

    /// The type column. A setting that holds settings is queued in `inner` for its own
    /// section (with its defaults), unless it holds itself, where it links to its ancestor.
    fn type_name(&self, schema: &Value, at: &Section, inner: &mut Vec<(Section, Value)>) -> String {
        if let Some(word) = schema.get("const").and_then(Value::as_str) {
            return format!("`{word}`");
        }
        if let Some(constants) = self.constants(schema) {
            return format!(
                "one of {}",
                constants
                    .iter()
                    .map(|(c, _)| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
            let tags: Vec<(String, String)> = variants
                .iter()
                .filter_map(|v| tag_of(&self.resolve(v)))
                .collect();
            let words: Vec<String> = tags.iter().map(|(_, w)| format!("`{w}`")).collect();
            let key = tags.first().map(|(k, _)| k.as_str()).unwrap_or_default();
            let mut first = at.clone();
            first
                .qualifiers
                .extend(tags.first().map(|(k, w)| format!("`{k}: {w}`")));
            let link = self.queue(at, &first, schema, inner);
            return format!(
                "[section](#{}) by `{key}`: {}",
                anchor(&link),
                words.join(", ")
            );
        }
        if let Some(format) = schema.get("format").and_then(Value::as_str)
            && matches!(format, "duration" | "size")
        {
            return format.to_string();
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("object") if schema.get("properties").is_some() => {
                let link = self.queue(at, at, schema, inner);
                format!("[section](#{})", anchor(&link))
            }
            Some("object") => match schema.get("additionalProperties") {
                Some(values) if values.is_object() => {
                    let (values, _) = self.unwrap_optional(values);
                    let entry = at.child("<name>");
                    format!("map of names to {}", self.type_name(&values, &entry, inner))
                }
                _ => "map".to_string(),
            },
            Some("array") => {
                let items = schema.get("items").cloned().unwrap_or(Value::Null);
                let (items, _) = self.unwrap_optional(&items);
                let item = Section {
                    path: format!("{}[]", at.path),
                    ..at.clone()
                };
                format!("list of {}", self.type_name(&items, &item, inner))
            }
            Some("integer") => match schema.get("minimum").and_then(Value::as_f64) {
                Some(min) if min >= 1.0 => "integer ≥ 1".to_string(),
                _ => "integer".to_string(),
            },
            Some("string") if looks_like_address(schema) => "address".to_string(),
            Some(other) => other.to_string(),
            None => "any".to_string(),
        }
    }

    /// Queues the section of the setting at `at` (a type that holds itself links to the
    /// section of its ancestor instead); the title of the section to link to, whose heading
    /// is `heading` when it is new.
    fn queue(
        &self,
        at: &Section,
        heading: &Section,
        schema: &Value,
        inner: &mut Vec<(Section, Value)>,
    ) -> String {
        if let Some(def) = schema.get(DEF).and_then(Value::as_str) {
            let mut sections = self.sections.borrow_mut();
            if at.ancestors.iter().any(|a| a == def)
                && let Some(existing) = sections.get(def)
            {
                return existing.clone();
            }
            sections.insert(def.to_string(), heading.title());
        }
        let mut at = at.clone();
        at.defaults = schema
            .get("default")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        inner.push((at, schema.clone()));
        heading.title()
    }

    /// For a choice among fixed words: each word with its description.
    fn constants(&self, schema: &Value) -> Option<Vec<(String, String)>> {
        if let Some(words) = schema.get("enum").and_then(Value::as_array) {
            return words
                .iter()
                .map(|w| w.as_str().map(|w| (w.to_string(), String::new())))
                .collect();
        }
        schema
            .get("oneOf")?
            .as_array()?
            .iter()
            .map(|v| {
                let v = self.resolve(v);
                let word = v
                    .get("const")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| {
                        let words = v.get("enum")?.as_array()?;
                        Some(
                            words
                                .iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join("`, `"),
                        )
                    })?;
                let description = v
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                Some((word, description))
            })
            .collect()
    }

    /// A setting's description, with what each of its words means when it is a choice.
    fn description(&self, schema: &Value) -> String {
        let mut text = prose(
            schema
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        if let Some(constants) = self.constants(schema)
            && constants.iter().any(|(_, d)| !d.is_empty())
        {
            for (word, meaning) in constants {
                if !meaning.is_empty() {
                    let _ = write!(text, " `{word}`: {}", prose(&meaning));
                }
            }
        }
        text
    }
}

/// Where a section is: its path, the variants it belongs to, the defaults its holder gives
/// its settings, and the types it is inside of.
#[derive(Clone, Default)]
struct Section {
    path: String,
    qualifiers: Vec<String>,
    defaults: Map<String, Value>,
    ancestors: Vec<String>,
}

impl Section {
    fn title(&self) -> String {
        let path = if self.path.is_empty() {
            "Top level".to_string()
        } else {
            format!("`{}`", self.path)
        };
        if self.qualifiers.is_empty() {
            path
        } else {
            format!("{path} with {}", self.qualifiers.join(", "))
        }
    }

    fn child(&self, key: &str) -> Section {
        Section {
            path: join(&self.path, key),
            defaults: Map::new(),
            ..self.clone()
        }
    }
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(more)) if key == "properties" => {
                existing.extend(more);
            }
            (Some(Value::Array(existing)), Value::Array(more)) if key == "required" => {
                existing.extend(more);
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

fn is_null(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The `type: email` that selects a variant of an internally tagged section.
fn tag_of(variant: &Value) -> Option<(String, String)> {
    let properties = variant.get("properties")?.as_object()?;
    properties.iter().find_map(|(key, p)| {
        let value = p
            .get("const")
            .or_else(|| p.get("enum").and_then(|e| e.get(0)))?;
        Some((key.clone(), value.as_str()?.to_string()))
    })
}

/// Addresses are the strings whose default is an IP address and a port.
fn looks_like_address(schema: &Value) -> bool {
    schema
        .get("default")
        .and_then(Value::as_str)
        .is_some_and(|d| d.parse::<std::net::SocketAddr>().is_ok())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The anchor GitHub gives the heading of section `path`.
fn anchor(path: &str) -> String {
    path.chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// A default as it would be written in the file.
fn inline(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// A doc comment as reference text: rustdoc's links (`` [`Ewma`] ``) become plain code.
fn prose(doc: &str) -> String {
    let mut text = doc.trim().to_string();
    while let Some(start) = text.find("[`") {
        let Some(end) = text[start..].find("`]").map(|e| start + e) else {
            break;
        };
        text.replace_range(end + 1..end + 2, "");
        text.replace_range(start..start + 1, "");
    }
    text
}

/// Text fit for a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_reference_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        let generated = markdown();
        if committed != generated {
            let first = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
            panic!(
                "docs/configuration.md is stale (first difference at line {}: {:?} in the file, {:?} generated); \
                 regenerate it with `{REGENERATE}`",
                first + 1,
                committed.lines().nth(first).unwrap_or(""),
                generated.lines().nth(first).unwrap_or(""),
            );
        }
    }

    #[test]
    fn the_readme_example_is_a_valid_configuration() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("\n## Configuration\n").expect("the section")..];
        let start = section.find("```yaml\n").expect("an example") + "```yaml\n".len();
        let example = &section[start..start + section[start..].find("```").expect("its end")];
        let env =
            |name: &str| (name == "ONCALL_WEBHOOK_URL").then(|| "https://hooks.example/x".into());
        let config: Config = super::super::load::load_str(example, "README.md", &env)
            .unwrap_or_else(|e| panic!("README's example:\n{e}"));
        assert_eq!(
            config.store.retention,
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        assert!(
            readme.contains(REGENERATE),
            "README names the command that regenerates the reference"
        );
    }

    #[test]
    fn every_setting_of_the_default_configuration_is_in_the_reference() {
        let reference = markdown();
        let printed = serde_saphyr::to_string(&Config::default()).expect("serialise");
        let mut sections = vec![String::new()];
        for line in printed.lines() {
            let indent = (line.len() - line.trim_start().len()) / 2;
            let Some((key, _)) = line.trim_start().split_once(':') else {
                continue;
            };
            if key.starts_with('-') {
                continue;
            }
            sections.truncate(indent + 1);
            let path = join(&sections[indent], key);
            let heading = if sections[indent].is_empty() {
                "## Top level".to_string()
            } else {
                format!("## `{}`", sections[indent])
            };
            let start = reference
                .find(&format!("{heading}\n"))
                .unwrap_or_else(|| panic!("no section {heading} for `{path}`"));
            let rest = &reference[start + heading.len() + 1..];
            let body = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
            assert!(
                body.contains(&format!("| `{key}` |")),
                "`{path}` is not in its section {heading}"
            );
            sections.push(path);
        }
        assert!(sections.len() > 1 && reference.contains("| `retention` | duration | `30d` |"));
    }
}
