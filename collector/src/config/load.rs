//! Turns a YAML config file into a config struct: `${env:NAME}` substitution, parsing and
//! deserialisation, reporting every mistake at once with its place in the file and a hint.
//!
//! Serde stops at the first error, so the loader deserialises from a `serde_yaml::Value`,
//! records the error, cuts the offending node out of the value and tries again. The dotted
//! path of each error is then found in the original text by a small scan of block-style YAML.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

/// How many times the loader cuts a bad node out and retries before giving up.
const MAX_ROUNDS: usize = 100;

/// One mistake in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or other source) the config came from, as shown to the user.
    pub source: String,
    /// Dotted path of the setting, such as `alerts.rules[2].for`; empty for a file-wide error.
    pub path: String,
    /// Line in the file, from 1, when known.
    pub line: Option<usize>,
    /// Column in the file, from 1, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to put it right, when there is something useful to say.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.source)?;
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
            if let Some(column) = self.column {
                write!(f, "{column}:")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, " {}:", self.path)?;
        }
        write!(f, " {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Every mistake found in a config file, in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A problem with a loaded config that serde cannot see (a file it names that is not there,
/// ...), found by the `check` of [`load_file_checked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the setting, such as `detection.models[0].baseline.file`; reported at
    /// the line of that key (or of its nearest ancestor written in the file).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to put it right.
    pub hint: Option<String>,
}

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

/// Loads a config of type `T` from YAML text: `${env:NAME}` substitution (and
/// `${env:NAME:-default}`, used when the variable is unset or empty; `$${` stands for a literal
/// `${`), then deserialisation, collecting every error rather than stopping at the first.
///
/// A value is inserted as if typed in the file; inside a quoted scalar it is escaped to stay
/// one string. An empty file is an empty mapping, so every field takes its default.
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
    let positions = Positions::scan(text);
    let error = |path: String,
                 at: Option<(usize, usize)>,
                 message: String,
                 hint: Option<String>| ConfigError {
        source: source_name.to_string(),
        path,
        line: at.map(|(line, _)| line),
        column: at.map(|(_, column)| column),
        message,
        hint,
    };

    let (substituted, env_problems) = substitute_env(text, env);
    let mut errors: Vec<ConfigError> = env_problems
        .iter()
        .map(|p| {
            let path = positions
                .path_at(p.line, p.column)
                .map(|path| display_path(&path))
                .unwrap_or_default();
            error(
                path,
                Some((p.line, p.column)),
                p.message.clone(),
                Some(p.hint.clone()),
            )
        })
        .collect();
    let env_lines: HashSet<usize> = env_problems.iter().map(|p| p.line).collect();

    let mut value: Value = match serde_yaml::from_str(&substituted.text) {
        Ok(value) => value,
        Err(e) => {
            errors.push(syntax_error(&e, &substituted, source_name));
            return Err(ConfigErrors(errors));
        }
    };
    if let Err(e) = value.apply_merge() {
        errors.push(error(String::new(), None, e.to_string(), None));
        return Err(ConfigErrors(errors));
    }
    if value.is_null() {
        value = Value::Mapping(Mapping::new());
    }

    let (config, issues) = deserialize_collecting::<T>(value);
    let mut seen = HashSet::new();
    for issue in issues {
        let e = issue.into_error(&positions, source_name);
        // A variable that was not set already has its error; what it broke is noise.
        if e.line.is_some_and(|line| env_lines.contains(&line)) {
            continue;
        }
        if seen.insert((e.path.clone(), e.message.clone())) {
            errors.push(e);
        }
    }
    if let Some(mut config) = config {
        for p in check(&mut config) {
            let at = parse_path(&p.path).and_then(|path| positions.find(&path));
            errors.push(error(p.path, at, p.message, p.hint));
        }
        if errors.is_empty() {
            return Ok(config);
        }
    }
    errors.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
    Err(ConfigErrors(errors))
}

fn syntax_error(e: &serde_yaml::Error, substituted: &Substituted, source: &str) -> ConfigError {
    let mut message = e.to_string();
    let mut at = None;
    if let Some(location) = e.location() {
        // The location is in the substituted text; it is repeated at the end of serde_yaml's
        // message, which the FILE:LINE:COL prefix makes redundant.
        message = message.replacen(
            &format!(" at line {} column {}", location.line(), location.column()),
            "",
            1,
        );
        let line = substituted.original_line(location.line());
        at = Some((line, location.column()));
    }
    ConfigError {
        source: source.to_string(),
        path: String::new(),
        line: at.map(|(line, _)| line),
        column: at.map(|(_, column)| column),
        message: format!("invalid YAML: {message}"),
        hint: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Environment substitution

struct Substituted {
    text: String,
    /// For each line of `text` (from 0), the line of the original text it came from (from 1).
    original_lines: Vec<usize>,
}

impl Substituted {
    fn original_line(&self, line: usize) -> usize {
        self.original_lines
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(line)
    }
}

struct EnvProblem {
    line: usize,
    column: usize,
    message: String,
    hint: String,
}

fn substitute_env(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Substituted, Vec<EnvProblem>) {
    let mut out = String::with_capacity(text.len());
    let mut original_lines = Vec::new();
    let mut problems = Vec::new();
    let mut block_scalar: Option<usize> = None;

    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let body = raw.trim_end_matches(['\n', '\r']);
        let ending = &raw[body.len()..];
        let indent = indentation(body);
        if block_scalar.is_some_and(|min| !body.trim().is_empty() && indent <= min) {
            block_scalar = None;
        }
        // Inside a block scalar `#` is text, not a comment.
        let lexed = if block_scalar.is_some() {
            LineLex::default()
        } else {
            LineLex::of(body)
        };
        let code_end = lexed.comment.unwrap_or(body.len());

        original_lines.push(line_no);
        let mut i = 0;
        while i < code_end {
            let rest = &body[i..code_end];
            if rest.starts_with("$${") {
                out.push_str("${");
                i += 3;
                continue;
            }
            if rest.starts_with("${env:") {
                let column = body[..i].chars().count() + 1;
                let Some(close) = rest.find('}') else {
                    problems.push(EnvProblem {
                        line: line_no,
                        column,
                        message: "`${env:` is not closed by `}`".to_string(),
                        hint:
                            "write ${env:NAME} or ${env:NAME:-default}; $${ stands for a literal ${"
                                .to_string(),
                    });
                    out.push_str(rest);
                    i = code_end;
                    continue;
                };
                let inner = &rest["${env:".len()..close];
                let (name, default) = match inner.split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (inner, None),
                };
                let value = if !is_env_name(name) {
                    problems.push(EnvProblem {
                        line: line_no,
                        column,
                        message: format!("`{name}` is not a valid environment variable name"),
                        hint: "use letters, digits and `_`, not starting with a digit".to_string(),
                    });
                    String::new()
                } else {
                    match (
                        env(name).filter(|v| !v.is_empty() || default.is_none()),
                        default,
                    ) {
                        (Some(value), _) => value,
                        (None, Some(default)) => default.to_string(),
                        (None, None) => {
                            problems.push(EnvProblem {
                                line: line_no,
                                column,
                                message: format!("environment variable `{name}` is not set"),
                                hint: format!("set it, or give a default: ${{env:{name}:-value}}"),
                            });
                            String::new()
                        }
                    }
                };
                let quote = lexed.quote_at(i);
                let inserted = escape_for(quote, &value);
                // A plain value with line breaks shifts later lines; keep the map to the original.
                for _ in 0..inserted.matches('\n').count() {
                    original_lines.push(line_no);
                }
                out.push_str(&inserted);
                i += close + 1;
                continue;
            }
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
        out.push_str(&body[code_end..]);
        out.push_str(ending);

        if block_scalar.is_none() {
            block_scalar = block_scalar_parent(&body[..code_end]);
        }
    }
    (
        Substituted {
            text: out,
            original_lines,
        },
        problems,
    )
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn escape_for(quote: Option<char>, value: &str) -> String {
    match quote {
        Some('"') => {
            let mut escaped = String::with_capacity(value.len());
            for c in value.chars() {
                match c {
                    '"' => escaped.push_str("\\\""),
                    '\\' => escaped.push_str("\\\\"),
                    '\n' => escaped.push_str("\\n"),
                    '\r' => escaped.push_str("\\r"),
                    '\t' => escaped.push_str("\\t"),
                    c => escaped.push(c),
                }
            }
            escaped
        }
        Some(_) => value.replace('\'', "''"),
        None => value.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// A line-level view of block-style YAML, shared by substitution and the position scan

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Where a line's comment starts and which byte ranges are quoted scalars.
#[derive(Default)]
struct LineLex {
    comment: Option<usize>,
    /// (start, end, quote char): `end` is one past the closing quote, or the line's end.
    quoted: Vec<(usize, usize, char)>,
    /// Whether the last quoted scalar runs past the end of the line.
    open_quote: Option<char>,
}

impl LineLex {
    fn of(line: &str) -> Self {
        let bytes = line.as_bytes();
        let mut lex = LineLex::default();
        let mut last_significant: Option<u8> = None;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let after_space = i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t';
            if b == b'#' && after_space {
                lex.comment = Some(i);
                break;
            }
            // A quote only starts a scalar where a scalar can start (not in `don't`).
            if (b == b'"' || b == b'\'')
                && matches!(
                    last_significant,
                    None | Some(b':' | b'-' | b'[' | b'{' | b',' | b'?')
                )
            {
                let (end, closed) = closing_quote(bytes, i);
                lex.quoted.push((i, end, b as char));
                if !closed {
                    lex.open_quote = Some(b as char);
                }
                last_significant = Some(b);
                i = end;
                continue;
            }
            if !b.is_ascii_whitespace() {
                last_significant = Some(b);
            }
            i += 1;
        }
        lex
    }

    fn quote_at(&self, index: usize) -> Option<char> {
        self.quoted
            .iter()
            .find(|(start, end, _)| *start < index && index < *end)
            .map(|(_, _, q)| *q)
    }
}

/// The end of a quoted scalar opening at `start`, and whether it closes on this line.
fn closing_quote(bytes: &[u8], start: usize) -> (usize, bool) {
    let quote = bytes[start];
    let mut j = start + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' if quote == b'"' => j += 2,
            b'\'' if quote == b'\'' && bytes.get(j + 1) == Some(&b'\'') => j += 2,
            b if b == quote => return (j + 1, true),
            _ => j += 1,
        }
    }
    (bytes.len(), false)
}

/// If `code` (a line without its comment) opens a block scalar (`key: |`, `- >-`), the
/// indentation its content must exceed.
fn block_scalar_parent(code: &str) -> Option<usize> {
    let trimmed = code.trim_end();
    let indicator = trimmed.trim_end_matches(|c: char| c.is_ascii_digit() || c == '+' || c == '-');
    if !(indicator.ends_with('|') || indicator.ends_with('>')) {
        return None;
    }
    let before = indicator[..indicator.len() - 1].trim_end();
    let node = indentation(code);
    // Skip leading `- ` markers: a key after them is a node at its own column.
    let mut column = node;
    let mut rest = &code[node..];
    let mut last_dash = None;
    while rest.starts_with("- ") || rest == "-" {
        last_dash = Some(column);
        let skipped = rest.len() - rest[1..].trim_start().len();
        column += skipped;
        rest = &rest[skipped..];
    }
    if before.ends_with(':') {
        Some(column)
    } else if before.trim_end().ends_with('-') || before.is_empty() {
        last_dash.or(Some(node))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Paths and positions

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Key(String),
    Index(usize),
    /// The variant of an enum, written as a `!tag` in the file.
    Variant(String),
}

fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) | Seg::Variant(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Where each key and sequence item of a block-style YAML text starts (line and column from 1).
/// Nodes inside flow collections (`[a, b]`, `{a: 1}`) and aliases are not listed; a lookup falls
/// back to the nearest listed ancestor.
struct Positions {
    at: HashMap<Vec<Seg>, (usize, usize)>,
}

struct Frame {
    indent: usize,
    seg: Option<Seg>,
    is_item: bool,
    next_index: usize,
}

impl Positions {
    fn scan(text: &str) -> Self {
        let mut at = HashMap::new();
        let mut stack = vec![Frame {
            indent: 0,
            seg: None,
            is_item: false,
            next_index: 0,
        }];
        let mut block_scalar: Option<usize> = None;
        let mut flow_depth: i64 = 0;
        let mut open_quote: Option<char> = None;

        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let indent = indentation(line);
            let blank = line.trim().is_empty();
            if let Some(min) = block_scalar {
                if blank || indent > min {
                    continue;
                }
                block_scalar = None;
            }
            if let Some(quote) = open_quote {
                // A quoted scalar that spans lines: its continuation holds no keys.
                if line.contains(quote) {
                    open_quote = None;
                }
                continue;
            }
            let lex = LineLex::of(line);
            let code = line[..lex.comment.unwrap_or(line.len())].trim_end();
            if flow_depth > 0 {
                flow_depth += bracket_depth(code, &lex);
                continue;
            }
            let trimmed = code.trim_start();
            if trimmed.is_empty()
                || trimmed.starts_with('%')
                || trimmed == "---"
                || trimmed == "..."
            {
                continue;
            }
            let trimmed = trimmed.strip_prefix("--- ").unwrap_or(trimmed);

            let col_of = |byte: usize| line[..byte].chars().count() + 1;
            let mut pos = code.len() - trimmed.len();
            let mut first = true;
            loop {
                let rest = &code[pos..];
                let is_dash = rest.starts_with("- ") || rest == "-";
                let key = if is_dash {
                    None
                } else {
                    parse_key(rest, pos, &lex)
                };
                if first && (is_dash || key.is_some()) {
                    while stack.len() > 1 {
                        let Some(top) = stack.last() else { break };
                        let pop = if is_dash {
                            top.indent > pos || (top.indent == pos && top.is_item)
                        } else {
                            top.indent >= pos
                        };
                        if !pop {
                            break;
                        }
                        stack.pop();
                    }
                }
                first = false;
                let value_start;
                if is_dash {
                    let Some(parent) = stack.last_mut() else {
                        break;
                    };
                    let index = parent.next_index;
                    parent.next_index += 1;
                    stack.push(Frame {
                        indent: pos,
                        seg: Some(Seg::Index(index)),
                        is_item: true,
                        next_index: 0,
                    });
                    let content = pos + rest.len() - rest[1..].trim_start().len();
                    let path = current_path(&stack);
                    at.entry(path).or_insert((
                        line_no,
                        col_of(if content < code.len() { content } else { pos }),
                    ));
                    if content >= code.len() {
                        break;
                    }
                    let after = &code[content..];
                    if after.starts_with("- ")
                        || after == "-"
                        || parse_key(after, content, &lex).is_some()
                    {
                        pos = content;
                        continue;
                    }
                    value_start = content;
                } else if let Some((key, after_colon)) = key {
                    stack.push(Frame {
                        indent: pos,
                        seg: Some(Seg::Key(key)),
                        is_item: false,
                        next_index: 0,
                    });
                    at.entry(current_path(&stack))
                        .or_insert((line_no, col_of(pos)));
                    value_start = after_colon;
                } else {
                    value_start = pos;
                }
                // What follows on the line is a value: see whether it runs onto later lines.
                let mut value = code[value_start..].trim_start();
                while value.starts_with('&') || value.starts_with('!') {
                    value = value.split_once(' ').map_or("", |(_, v)| v.trim_start());
                }
                if value.starts_with('|') || value.starts_with('>') {
                    block_scalar = block_scalar_parent(code);
                } else if value.starts_with('[') || value.starts_with('{') {
                    flow_depth = bracket_depth(value, &LineLex::of(value));
                } else if (value.starts_with('"') || value.starts_with('\''))
                    && lex.open_quote.is_some()
                {
                    open_quote = lex.open_quote;
                }
                break;
            }
        }
        Positions { at }
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    fn find(&self, path: &[Seg]) -> Option<(usize, usize)> {
        // A variant is a tag on the node, not a node of its own.
        let path: Vec<Seg> = path
            .iter()
            .filter(|s| !matches!(s, Seg::Variant(_)))
            .cloned()
            .collect();
        (1..=path.len())
            .rev()
            .find_map(|n| self.at.get(&path[..n]).copied())
    }

    /// The deepest node that starts on `line` at or before `column`.
    fn path_at(&self, line: usize, column: usize) -> Option<Vec<Seg>> {
        self.at
            .iter()
            .filter(|(_, (l, c))| *l == line && *c <= column)
            .max_by_key(|(path, (_, c))| (*c, path.len()))
            .map(|(path, _)| path.clone())
    }
}

fn current_path(stack: &[Frame]) -> Vec<Seg> {
    stack.iter().filter_map(|f| f.seg.clone()).collect()
}

/// Net count of opened `[`/`{` in `code`, outside quoted scalars.
fn bracket_depth(code: &str, lex: &LineLex) -> i64 {
    let mut depth = 0;
    for (i, b) in code.bytes().enumerate() {
        if lex.quoted.iter().any(|(s, e, _)| *s <= i && i < *e) {
            continue;
        }
        match b {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// If `rest` (starting at byte `offset` of the line) begins with a mapping key, the key and the
/// byte offset just after its `:`.
fn parse_key(rest: &str, offset: usize, lex: &LineLex) -> Option<(String, usize)> {
    let first = rest.chars().next()?;
    let (key, after_key) = if first == '"' || first == '\'' {
        let &(_, end, _) = lex.quoted.iter().find(|(s, _, _)| *s == offset)?;
        let raw = &rest[1..(end - offset).saturating_sub(1).max(1)];
        let key = if first == '\'' {
            raw.replace("''", "'")
        } else {
            raw.replace("\\\"", "\"")
        };
        (key, end - offset)
    } else {
        if "[{|>#&*!%@`?".contains(first) {
            return None;
        }
        let bytes = rest.as_bytes();
        let colon = (0..bytes.len()).find(|&i| {
            bytes[i] == b':'
                && (i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t')
        })?;
        (rest[..colon].trim_end().to_string(), colon)
    };
    let after = &rest[after_key..];
    let spaces = after.len() - after.trim_start().len();
    let after = &after[spaces..];
    if !after.starts_with(':') || !(after.len() == 1 || after[1..].starts_with([' ', '\t'])) {
        return None;
    }
    Some((key, offset + after_key + spaces + 1))
}

// ---------------------------------------------------------------------------------------------
// Deserialising while collecting every error

/// An error found while deserialising, with its path in the original value.
struct Issue {
    path: Vec<Seg>,
    kind: IssueKind,
    /// For an enum or struct given the wrong kind of value: what it accepts.
    expected: Option<Vec<String>>,
}

enum IssueKind {
    Missing(String),
    /// A problem a section's own check found; its message says how to put it right.
    Checked(String),
    Other(String),
    Unlocated(String),
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
}

/// The config (with the bad nodes cut out, when there were any) and every issue found.
fn deserialize_collecting<T: DeserializeOwned>(mut value: Value) -> (Option<T>, Vec<Issue>) {
    let mut issues = Vec::new();
    let mut removed = Removed::default();
    let mut cut: HashSet<Vec<Seg>> = HashSet::new();
    for _ in 0..MAX_ROUNDS {
        let e = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(config) => return (Some(config), issues),
            Err(e) => e,
        };
        // serde_yaml names its own enum representation where the user only needs "a name".
        let message = e
            .inner()
            .to_string()
            .replace("expected a Value::Tagged enum", "expected enum");
        let Some(current) = segments(e.path()) else {
            issues.push(Issue {
                path: Vec::new(),
                kind: IssueKind::Unlocated(message),
                expected: None,
            });
            break;
        };
        let mut current = current;
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

        // An empty block (`otlp:`) means "the defaults" / "none" for a section or a list.
        if let Some(empty) = empty_collection_for(&message)
            && let Some(node) = node_mut(&mut value, &current)
            && node.is_null()
        {
            *node = empty;
            continue;
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
            let expected = expected_shape::<T>(&value, &current, &message);
            issues.push(Issue {
                path: original.clone(),
                kind: IssueKind::Other(message),
                expected,
            });
        }
        if current.is_empty() || !remove(&mut value, &current, &original, &mut removed) {
            break;
        }
        cut.insert(original);
    }
    (None, issues)
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
            Some((parse_path(path)?, problem.to_string()))
        })
        .collect::<Option<Vec<_>>>()
        .filter(|p| !p.is_empty())
}

/// `a.b[2].c` as segments.
fn parse_path(text: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    for part in text.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if key.is_empty() {
            return None;
        }
        out.push(Seg::Key(key.to_string()));
        while !rest.is_empty() {
            let (index, after) = rest.split_once(']')?;
            out.push(Seg::Index(index.parse().ok()?));
            rest = after.strip_prefix('[').unwrap_or(after);
            if !after.is_empty() && !after.starts_with('[') {
                return None;
            }
        }
    }
    Some(out)
}

fn segments(path: &serde_path_to_error::Path) -> Option<Vec<Seg>> {
    path.iter()
        .map(|seg| match seg {
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            serde_path_to_error::Segment::Enum { variant } => Some(Seg::Variant(variant.clone())),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect()
}

fn key_matches(key: &Value, name: &str) -> bool {
    match key {
        Value::String(s) => s == name,
        Value::Number(n) => n.to_string() == name,
        Value::Bool(b) => b.to_string() == name,
        _ => false,
    }
}

fn node_mut<'a>(value: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    // `!zscore {window: 5}`: the tag is the enum variant, which the path names.
    let names_tag = matches!((&*value, first),
        (Value::Tagged(tagged), Seg::Variant(name)) if tagged.tag == name.as_str());
    match (value, first) {
        (Value::Tagged(tagged), _) => {
            node_mut(&mut tagged.value, if names_tag { rest } else { path })
        }
        (Value::Mapping(map), Seg::Key(name) | Seg::Variant(name)) => {
            let child = map.iter_mut().find(|(k, _)| key_matches(k, name))?.1;
            node_mut(child, rest)
        }
        (Value::Sequence(seq), Seg::Index(i)) => node_mut(seq.get_mut(*i)?, rest),
        _ => None,
    }
}

/// Cuts the node at `current` out of `value`; false when there is nothing to cut.
fn remove(value: &mut Value, current: &[Seg], original: &[Seg], removed: &mut Removed) -> bool {
    let Some((last, parent_path)) = current.split_last() else {
        return false;
    };
    let Some(mut parent) = node_mut(value, parent_path) else {
        return false;
    };
    if let (Value::Tagged(tagged), Seg::Variant(name)) = (&*parent, last)
        && tagged.tag == name.as_str()
    {
        // The variant of a tagged enum: cut the whole enum value.
        let original_parent = &original[..original.len().saturating_sub(1)];
        return remove(value, parent_path, original_parent, removed);
    }
    while let Value::Tagged(tagged) = parent {
        parent = &mut tagged.value;
    }
    match (parent, last) {
        (Value::Mapping(map), Seg::Key(name) | Seg::Variant(name)) => {
            let Some(key) = map.keys().find(|k| key_matches(k, name)).cloned() else {
                return false;
            };
            map.shift_remove(&key).is_some()
        }
        (Value::Sequence(seq), Seg::Index(i)) if *i < seq.len() => {
            seq.remove(*i);
            if let Some((Seg::Index(original_index), original_parent)) = original.split_last() {
                removed
                    .items
                    .entry(original_parent.to_vec())
                    .or_default()
                    .push(*original_index);
            }
            true
        }
        _ => false,
    }
}

fn missing_field(message: &str) -> Option<String> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
        .map(str::to_string)
}

fn empty_collection_for(message: &str) -> Option<Value> {
    if !message.starts_with("invalid type: null,") {
        return None;
    }
    if message.contains("expected struct") || message.ends_with("expected a map") {
        Some(Value::Mapping(Mapping::new()))
    } else if message.ends_with("expected a sequence") {
        Some(Value::Sequence(Vec::new()))
    } else {
        None
    }
}

/// For an enum or a struct given the wrong kind of value, learns what it accepts by offering a
/// value it cannot accept and reading serde's "expected one of" list.
fn expected_shape<T: DeserializeOwned>(
    value: &Value,
    current: &[Seg],
    message: &str,
) -> Option<Vec<String>> {
    let probe = if message.contains(" enum") {
        Value::String("\u{1}".to_string())
    } else if message.contains("expected struct") {
        let mut map = Mapping::new();
        map.insert(Value::String("\u{1}".to_string()), Value::Null);
        Value::Mapping(map)
    } else {
        return None;
    };
    let mut probed = value.clone();
    *node_mut(&mut probed, current)? = probe;
    let e = serde_path_to_error::deserialize::<_, T>(&probed).err()?;
    let probed_path = segments(e.path())?;
    let message = e.inner().to_string();
    let listed = message.starts_with("unknown variant `\u{1}`")
        || message.starts_with("unknown field `\u{1}`");
    (listed && probed_path.starts_with(current))
        .then(|| backticked(&message).into_iter().skip(1).collect())
}

// ---------------------------------------------------------------------------------------------
// Messages and hints

impl Issue {
    fn into_error(self, positions: &Positions, source: &str) -> ConfigError {
        let (path, at, message, hint) = match self.kind {
            IssueKind::Missing(field) => {
                let at = if self.path.is_empty() {
                    None
                } else {
                    positions.find(&self.path)
                };
                let hint = if self.path.is_empty() {
                    format!("add `{field}:` at the top level")
                } else {
                    format!("add `{field}:` under `{}`", display_path(&self.path))
                };
                let mut path = self.path.clone();
                path.push(Seg::Key(field.clone()));
                (
                    path,
                    at,
                    format!("missing required field `{field}`"),
                    Some(hint),
                )
            }
            IssueKind::Other(message) => {
                let at = positions.find(&self.path);
                let (message, hint) = explain(&message, self.expected.as_deref());
                (self.path, at, message, hint)
            }
            IssueKind::Checked(message) => {
                let at = positions.find(&self.path);
                (self.path, at, message, None)
            }
            IssueKind::Unlocated(message) => (Vec::new(), None, message, None),
        };
        ConfigError {
            source: source.to_string(),
            path: display_path(&path),
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
        Some("`millwatch run --print-config` prints every key with its default; README.md describes each".to_string())
    };
    (message.to_string(), hint)
}

fn backticked(text: &str) -> Vec<String> {
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
fn unknown_name(message: &str, what: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(&format!("unknown {what} `"))?;
    let (name, tail) = rest.split_once('`')?;
    Some((name.to_string(), backticked(tail)))
}

/// The allowed name close enough to `wrong` to be what was meant.
fn closest<'a>(wrong: &str, names: &'a [String]) -> Option<&'a String> {
    let wrong_lower = wrong.to_lowercase().replace('-', "_");
    let (distance, name) = names
        .iter()
        .map(|n| (edit_distance(&wrong_lower, &n.to_lowercase()), n))
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

/// Damerau–Levenshtein distance (optimal string alignment): edits, counting a swap of two
/// neighbouring characters as one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::path::PathBuf;
    use std::time::Duration;

    use serde::Deserialize;

    use super::*;

    /// A small config in the style of the real one.
    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TestConfig {
        #[serde(default)]
        receivers: Receivers,
        #[serde(default)]
        storage: Storage,
        #[serde(default)]
        alerts: Alerts,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Receivers {
        #[serde(default)]
        otlp: Otlp,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Otlp {
        #[serde(default)]
        grpc: Grpc,
        #[serde(default)]
        http: Option<Grpc>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Grpc {
        #[serde(default = "default_endpoint")]
        endpoint: String,
        #[serde(default)]
        max_recv_msg_size: Option<NonZeroUsize>,
    }

    impl Default for Grpc {
        fn default() -> Self {
            Grpc {
                endpoint: default_endpoint(),
                max_recv_msg_size: None,
            }
        }
    }

    fn default_endpoint() -> String {
        "127.0.0.1:4317".to_string()
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Storage {
        path: String,
        #[serde(with = "humantime_serde")]
        retention: Duration,
        compression: Compression,
    }

    impl Default for Storage {
        fn default() -> Self {
            Storage {
                path: "./millwatch-data".to_string(),
                retention: Duration::from_secs(3 * 24 * 3600),
                compression: Compression::None,
            }
        }
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Compression {
        None,
        Zstd,
        Snappy,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Alerts {
        #[serde(default)]
        rules: Vec<Rule>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        name: String,
        threshold: f64,
        #[serde(default, with = "humantime_serde")]
        r#for: Duration,
        #[serde(default)]
        severity: Severity,
        #[serde(default)]
        note: Option<String>,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Severity {
        #[default]
        Warning,
        Critical,
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/config")
            .join(name)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(text: &str) -> Result<TestConfig, ConfigErrors> {
        load_str(text, "test.yaml", &no_env)
    }

    fn messages(result: Result<TestConfig, ConfigErrors>) -> Vec<String> {
        match result {
            Ok(config) => panic!("expected errors, loaded {config:?}"),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn valid_file_loads() {
        let config: TestConfig = load_file(&fixture("loader_valid.yaml")).expect("valid config");
        let expected = TestConfig {
            receivers: Receivers {
                otlp: Otlp {
                    grpc: Grpc {
                        endpoint: "0.0.0.0:4317".to_string(),
                        max_recv_msg_size: NonZeroUsize::new(4_194_304),
                    },
                    http: None,
                },
            },
            storage: Storage {
                path: "./millwatch-data".to_string(),
                retention: Duration::from_secs(7 * 24 * 3600),
                compression: Compression::Zstd,
            },
            alerts: Alerts {
                rules: vec![
                    Rule {
                        name: "latency".to_string(),
                        threshold: 0.25,
                        r#for: Duration::from_secs(300),
                        severity: Severity::Critical,
                        note: None,
                    },
                    Rule {
                        name: "drift".to_string(),
                        threshold: 3.0,
                        r#for: Duration::ZERO,
                        severity: Severity::Warning,
                        note: Some(
                            "# not a comment: text of a block scalar\nkept as written\n"
                                .to_string(),
                        ),
                    },
                ],
            },
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn empty_file_and_empty_sections_mean_defaults() {
        for text in [
            "",
            "# nothing but a comment\n",
            "receivers:\n  otlp:\n    grpc:\nalerts:\n  rules:\n",
        ] {
            assert_eq!(load(text).expect(text), TestConfig::default(), "{text:?}");
        }
    }

    #[test]
    fn env_variables_are_substituted() {
        let env = |name: &str| match name {
            "PORT" => Some("4318".to_string()),
            "EMPTY" => Some(String::new()),
            "QUOTED" => Some("say \"hi\" \\ bye".to_string()),
            _ => None,
        };
        let text = "\
receivers:
  otlp:
    grpc:
      endpoint: 0.0.0.0:${env:PORT}   # ${env:IN_A_COMMENT} is not substituted
    http:
      endpoint: ${env:HTTP_ENDPOINT:-127.0.0.1:4318}
storage:
  path: ${env:EMPTY:-/var/lib/millwatch}
alerts:
  rules:
    - name: \"${env:QUOTED}\"
      threshold: 1
    - name: cost is $${env:DOLLARS}
      threshold: 2
";
        let config: TestConfig = load_str(text, "test.yaml", &env).expect("substituted config");
        assert_eq!(config.receivers.otlp.grpc.endpoint, "0.0.0.0:4318");
        assert_eq!(
            config.receivers.otlp.http.map(|h| h.endpoint).as_deref(),
            Some("127.0.0.1:4318")
        );
        assert_eq!(config.storage.path, "/var/lib/millwatch");
        assert_eq!(config.alerts.rules[0].name, "say \"hi\" \\ bye");
        assert_eq!(config.alerts.rules[1].name, "cost is ${env:DOLLARS}");
    }

    #[test]
    fn unset_env_variables_are_errors_at_their_place() {
        let text = "\
storage:
  path: ${env:DATA_DIR}
alerts:
  rules:
    - name: latency
      threshold: ${env:LATENCY_THRESHOLD}
      severity: critcal
";
        assert_eq!(
            messages(load(text)),
            [
                "test.yaml:2:9: storage.path: environment variable `DATA_DIR` is not set \
                 (hint: set it, or give a default: ${env:DATA_DIR:-value})",
                "test.yaml:6:18: alerts.rules[0].threshold: environment variable `LATENCY_THRESHOLD` is not set \
                 (hint: set it, or give a default: ${env:LATENCY_THRESHOLD:-value})",
                "test.yaml:7:7: alerts.rules[0].severity: unknown variant `critcal` (hint: did you mean `critical`?)",
            ]
        );
    }

    #[test]
    fn malformed_env_references_are_errors() {
        assert_eq!(
            messages(load("storage:\n  path: ${env:1DIR}\nalerts: ${env:OPEN\n")),
            [
                "test.yaml:2:9: storage.path: `1DIR` is not a valid environment variable name \
                 (hint: use letters, digits and `_`, not starting with a digit)",
                "test.yaml:3:9: alerts: `${env:` is not closed by `}` \
                 (hint: write ${env:NAME} or ${env:NAME:-default}; $${ stands for a literal ${)",
            ]
        );
    }

    #[test]
    fn three_mistakes_are_reported_together() {
        let path = fixture("loader_three_mistakes.yaml");
        let file = path.display();
        assert_eq!(
            messages(load_file(&path)),
            [
                format!(
                    "{file}:4:5: receivers.otlp.grcp: unknown field `grcp` (hint: did you mean `grpc`?)"
                ),
                format!(
                    "{file}:8:3: storage.retention: invalid value: string \"30 dys\", expected a duration \
                     (hint: use a duration such as 30s, 5m, 1h)"
                ),
                format!(
                    "{file}:14:7: alerts.rules[1].threshold: invalid type: string \"high\", expected f64 \
                     (hint: use a number such as 0.5)"
                ),
            ]
        );
    }

    #[test]
    fn yaml_syntax_error_is_reported_with_its_line() {
        let path = fixture("loader_syntax_error.yaml");
        assert_eq!(
            messages(load_file(&path)),
            [format!(
                "{}:3:13: invalid YAML: mapping values are not allowed in this context",
                path.display()
            )]
        );
    }

    #[test]
    fn wrong_kinds_of_value_get_hints() {
        let text = "\
receivers:
  otlp:
    grpc: 5
    http:
      max_recv_msg_size: 0
storage:
  compression: 3
alerts:
  rules:
    - 1
    - name: no threshold
    - name: bad severity
      threshold: 1
      severity: low
    - name: [not, a, string]
      threshold: 2
      enabled: true
";
        assert_eq!(
            messages(load(text)),
            [
                "test.yaml:3:5: receivers.otlp.grpc: invalid type: integer `5`, expected struct Grpc \
                 (hint: expected a section with the fields: `endpoint`, `max_recv_msg_size`)",
                "test.yaml:5:7: receivers.otlp.http.max_recv_msg_size: invalid value: integer `0`, \
                 expected a nonzero usize (hint: use a whole number greater than 0)",
                "test.yaml:7:3: storage.compression: invalid type: integer `3`, expected enum \
                 (hint: expected one of: `none`, `zstd`, `snappy`)",
                "test.yaml:10:7: alerts.rules[0]: invalid type: integer `1`, expected struct Rule \
                 (hint: expected a section with the fields: `name`, `threshold`, `for`, `severity`, `note`)",
                "test.yaml:11:7: alerts.rules[1].threshold: missing required field `threshold` \
                 (hint: add `threshold:` under `alerts.rules[1]`)",
                "test.yaml:14:7: alerts.rules[2].severity: unknown variant `low` \
                 (hint: expected one of: `warning`, `critical`)",
                "test.yaml:15:7: alerts.rules[3].name: invalid type: sequence, expected a string \
                 (hint: put the value in quotes to make it text)",
                "test.yaml:17:7: alerts.rules[3].enabled: unknown field `enabled` \
                 (hint: expected one of: `name`, `threshold`, `for`, `severity`, `note`)",
            ]
        );
    }

    #[test]
    fn missing_fields_at_the_top_and_unreadable_files() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Required {
            #[allow(dead_code)]
            name: String,
        }
        let result = load_str::<Required>("", "empty.yaml", &no_env);
        assert_eq!(
            result.map_err(|e| e.to_string()).err().as_deref(),
            Some(
                "empty.yaml: name: missing required field `name` (hint: add `name:` at the top level)"
            )
        );

        let path = fixture("does_not_exist.yaml");
        let error = load_file::<TestConfig>(&path)
            .expect_err("missing file")
            .to_string();
        assert!(
            error.starts_with(&format!(
                "{}: cannot read the config file: ",
                path.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn errors_display_one_per_line() {
        let errors = load("storage:\n  pth: x\n  retention: soon\n").expect_err("two mistakes");
        assert_eq!(
            errors.to_string(),
            "test.yaml:2:3: storage.pth: unknown field `pth` (hint: did you mean `path`?)\n\
             test.yaml:3:3: storage.retention: invalid value: string \"soon\", expected a duration \
             (hint: use a duration such as 30s, 5m, 1h)"
        );
    }

    #[test]
    fn enums_and_maps_of_sections() {
        // Only the errors matter here, so the loaded fields are never read.
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Detectors {
            #[serde(default)]
            tagged: Vec<Tagged>,
            #[serde(default)]
            typed: Vec<Typed>,
            #[serde(default)]
            named: std::collections::BTreeMap<String, Window>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[allow(dead_code)]
        enum Tagged {
            Zscore(Window),
            Fixed,
        }
        #[derive(Debug, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
        #[allow(dead_code)]
        enum Typed {
            Zscore { window: usize },
            Fixed { level: f64 },
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Window {
            window: usize,
        }
        let text = "\
tagged:
  - !zscore
    window: x
  - !fixd
typed:
  - type: fixed
    level: 1
    extra: 2
  - type: zscor
named:
  latency:
    windw: 5
";
        let errors = load_str::<Detectors>(text, "test.yaml", &no_env).expect_err("mistakes");
        assert_eq!(
            errors.to_string().lines().collect::<Vec<_>>(),
            [
                "test.yaml:3:5: tagged[0].zscore.window: invalid type: string \"x\", expected usize \
                 (hint: use a whole number)",
                "test.yaml:4:5: tagged[1]: unknown variant `fixd` (hint: did you mean `fixed`?)",
                "test.yaml:8:5: typed[0].extra: unknown field `extra` (hint: expected one of: `level`)",
                "test.yaml:9:5: typed[1].type: unknown variant `zscor` (hint: did you mean `zscore`?)",
                // Only the typo: the `window` it stood for is not reported missing as well.
                "test.yaml:12:5: named.latency.windw: unknown field `windw` (hint: did you mean `window`?)",
            ]
        );
    }

    #[test]
    fn anchors_and_merge_keys_are_resolved() {
        let text = "\
alerts:
  rules:
    - &base
      name: latency
      threshold: 0.5
    - <<: *base
      name: latency-strict
      treshold: 0.1
";
        assert_eq!(
            messages(load(text)),
            [
                "test.yaml:8:7: alerts.rules[1].treshold: unknown field `treshold` (hint: did you mean `threshold`?)"
            ]
        );
        let config = load(&text.replace("treshold", "threshold")).expect("merged config");
        assert_eq!(config.alerts.rules[1].name, "latency-strict");
        assert_eq!(config.alerts.rules[1].threshold, 0.1);
    }

    #[test]
    fn positions_follow_block_yaml() {
        let text = "\
a:
  b:
  - x: 1
    y: |
      z: not a key
    w: \"q\"
  -   - deep: 1
  - [1, 2]
'quoted key': {k: v}
c: &anchor
  d: 1
";
        let positions = Positions::scan(text);
        let key = |k: &str| Seg::Key(k.to_string());
        let cases = [
            (vec![key("a"), key("b")], (2, 3)),
            (vec![key("a"), key("b"), Seg::Index(0)], (3, 5)),
            (vec![key("a"), key("b"), Seg::Index(0), key("y")], (4, 5)),
            (vec![key("a"), key("b"), Seg::Index(0), key("w")], (6, 5)),
            (
                vec![
                    key("a"),
                    key("b"),
                    Seg::Index(1),
                    Seg::Index(0),
                    key("deep"),
                ],
                (7, 9),
            ),
            (vec![key("a"), key("b"), Seg::Index(2)], (8, 5)),
            (
                vec![key("a"), key("b"), Seg::Index(2), Seg::Index(1)],
                (8, 5),
            ),
            (vec![key("quoted key"), key("k")], (9, 1)),
            (vec![key("c"), key("d")], (11, 3)),
        ];
        for (path, at) in cases {
            assert_eq!(positions.find(&path), Some(at), "{}", display_path(&path));
        }
        assert_eq!(
            positions.find(&[key("a"), key("b"), Seg::Index(0), key("z")]),
            Some((3, 5))
        );
    }

    #[test]
    fn suggestions_need_a_close_name() {
        let names = ["endpoint".to_string(), "tls".to_string()];
        assert_eq!(suggestion("endpiont", &names), "did you mean `endpoint`?");
        assert_eq!(suggestion("Endpoint", &names), "did you mean `endpoint`?");
        assert_eq!(
            suggestion("address", &names),
            "expected one of: `endpoint`, `tls`"
        );
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
