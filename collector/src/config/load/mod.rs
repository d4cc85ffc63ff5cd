//! Turns a YAML config file into a config struct, reporting every mistake at once with its
//! place in the file (`FILE:LINE:COLUMN`) and a hint, as `millwatch validate` shows them.
//!
//! The steps, one module each: [`document`] parses the YAML (with `serde-saphyr`) into a tree
//! whose every node knows its line and column; [`env`] substitutes `${env:NAME}`;
//! [`collect`] deserialises the config from the tree through [`deserializer`], cutting out each
//! node serde refuses and trying again so that every mistake is found; [`messages`] says what
//! each one is and how to put it right; [`errors`] is how they are shown.

mod collect;
mod deserializer;
mod document;
mod env;
mod errors;
mod messages;
mod path;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::Path;

use serde::de::DeserializeOwned;

pub use collect::located;
use document::{Node, Value};
pub use errors::{ConfigError, ConfigErrors, Problem};

/// Loads a config of type `T` from the file at `path`, substituting `${env:NAME}` from the
/// process environment.
pub fn load_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigErrors> {
    load_file_checked(path, |_: &mut T| Vec::new())
}

/// [`load_file`], then `check` on the config (even when other settings had mistakes, with
/// those cut out): it may adjust the config and returns problems serde cannot see, each
/// reported with the other errors, at its place in the file.
pub fn load_file_checked<T: DeserializeOwned>(
    path: &Path,
    check: impl FnOnce(&mut T) -> Vec<Problem>,
) -> Result<T, ConfigErrors> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            source: source.clone(),
            path: String::new(),
            line: None,
            column: None,
            message: format!("cannot read the config file: {e}"),
            hint: None,
        }])
    })?;
    let env = |name: &str| {
        std::env::var_os(name).map(|v| {
            v.into_string()
                .unwrap_or_else(|v| v.to_string_lossy().into_owned())
        })
    };
    load_str_checked(&text, &source, &env, check)
}

/// Loads a config of type `T` from YAML text: `${env:NAME}` substitution (see [`env`]), then
/// deserialisation, collecting every error rather than stopping at the first. An empty file is
/// an empty mapping, so every field takes its default.
pub fn load_str<T: DeserializeOwned>(
    text: &str,
    source_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<T, ConfigErrors> {
    load_str_checked(text, source_name, env, |_: &mut T| Vec::new())
}

fn load_str_checked<T: DeserializeOwned>(
    text: &str,
    source_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    check: impl FnOnce(&mut T) -> Vec<Problem>,
) -> Result<T, ConfigErrors> {
    let error = |path: String,
                 at: Option<document::Place>,
                 message: String,
                 hint: Option<String>| ConfigError {
        source: source_name.to_string(),
        path,
        line: at.map(|(line, _)| line),
        column: at.map(|(_, column)| column),
        message,
        hint,
    };

    let mut doc = match Node::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let message = format!("invalid YAML: {}", e.message);
            return Err(ConfigErrors(vec![error(
                String::new(),
                e.at,
                message,
                None,
            )]));
        }
    };
    if doc.is_null() {
        doc.value = Value::Mapping(Vec::new());
    }
    let env_problems = env::substitute(&mut doc, text, env);
    let mut errors: Vec<ConfigError> = env_problems
        .iter()
        .map(|p| {
            error(
                path::display(&p.path),
                Some(p.at),
                p.message.clone(),
                Some(p.hint.clone()),
            )
        })
        .collect();
    let env_paths: Vec<String> = env_problems
        .iter()
        .map(|p| path::display(&p.path))
        .collect();

    // Places are looked up in the file as written, before any node is cut out.
    let written = doc.clone();
    let (config, issues) = collect::deserialize_collecting::<T>(doc);
    let mut seen = HashSet::new();
    for issue in issues {
        let e = issue.into_error(&written, source_name);
        // A variable that was not set already has its error; what it broke is noise.
        if env_paths.iter().any(|p| within(&e.path, p)) {
            continue;
        }
        if seen.insert((e.path.clone(), e.message.clone())) {
            errors.push(e);
        }
    }
    if let Some(mut config) = config {
        for p in check(&mut config) {
            let at = path::parse(&p.path).and_then(|path| written.find(&path));
            errors.push(error(p.path, at, p.message, p.hint));
        }
        if errors.is_empty() {
            return Ok(config);
        }
    }
    errors.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
    Err(ConfigErrors(errors))
}

/// Whether the setting at `path` is `parent` or inside it (paths as shown).
fn within(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}
