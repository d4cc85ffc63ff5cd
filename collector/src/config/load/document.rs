//! A YAML document as a tree of nodes, each with its place in the file, parsed by `serde-saphyr`
//! (YAML 1.2: anchors, aliases and `<<` merge keys resolved; its syntax errors carry their
//! place). The loader edits this tree (substitutes `${env:…}`, cuts out bad nodes) and
//! deserialises the config from it; a mistake's place is looked up here by its path.

use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
use serde_saphyr::{MessageFormatter, Spanned, Tagged};

use super::path::Seg;

/// Line and column in the file, from 1.
pub type Place = (usize, usize);

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    /// Where the node starts: a key's value is reported at its key (see [`Node::find`]).
    pub at: Place,
    /// The tag of a node written `!name value`: the variant of an enum.
    pub tag: Option<String>,
    /// Whether the node is a plain (unquoted, not block) scalar: a `${env:…}` substituted into
    /// it is read as if typed there.
    pub plain: bool,
    /// Byte offset in the file where the node is defined (for an alias, its anchor).
    pub offset: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    String(String),
    Sequence(Vec<Node>),
    /// Entries in file order; keys are nodes too, so a key has its own place.
    Mapping(Vec<(Node, Node)>),
}

/// A file that is not YAML: what the parser said, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub at: Option<Place>,
}

impl Node {
    /// Parses `text` (an empty document is `null`).
    pub fn parse(text: &str) -> Result<Node, SyntaxError> {
        let options = serde_saphyr::options! {
            // `on`, `y`, `no`: text, as YAML 1.2 has them and as keys must stay.
            strict_booleans: true,
            non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
            with_snippet: false,
        };
        let root = serde_saphyr::from_str_with_options::<Spanned<Tagged<Parsed>>>(text, options)
            .map_err(|e| SyntaxError {
                message: serde_saphyr::UserMessageFormatter
                    .format_message(e.without_snippet())
                    .into_owned(),
                at: e
                    .location()
                    .and_then(|l| Some((usize::try_from(l.line()).ok()?, column(&l)?))),
            })?;
        let plain = plain_scalars(text);
        Ok(Node::from_parsed(root, text, &plain))
    }

    fn from_parsed(parsed: Spanned<Tagged<Parsed>>, text: &str, plain: &HashSet<usize>) -> Node {
        let Spanned {
            value: Tagged(parsed, tag),
            referenced,
            defined,
        } = parsed;
        let offset = defined
            .span()
            .byte_offset()
            .and_then(|o| usize::try_from(o).ok());
        // Core tags (`!!str`) are already applied to the value; others name a variant.
        let tag = tag
            .filter(|t| !t.starts_with("tag:yaml.org,2002:"))
            .map(|t| t.strip_prefix('!').unwrap_or(&t).to_string());
        let mut at = (
            usize::try_from(referenced.line()).unwrap_or(0),
            column(&referenced).unwrap_or(0),
        );
        // `- !fixed` starts at its tag, which the parser places before the node.
        if let (Some(tag), Some(offset)) = (&tag, referenced.span().byte_offset())
            && let Some(start) = tag_start(text, usize::try_from(offset).unwrap_or(0), tag)
        {
            at = place_of(text, start);
        }
        let value = match parsed {
            Parsed::Scalar(value) => value,
            Parsed::Sequence(items) => Value::Sequence(
                items
                    .into_iter()
                    .map(|item| Node::from_parsed(item, text, plain))
                    .collect(),
            ),
            Parsed::Mapping(entries) => Value::Mapping(
                entries
                    .into_iter()
                    .map(|(key, value)| {
                        let key =
                            Spanned::new(Tagged(key.value, None), key.referenced, key.defined);
                        (
                            Node::from_parsed(key, text, plain),
                            Node::from_parsed(value, text, plain),
                        )
                    })
                    .collect(),
            ),
        };
        let is_scalar = !matches!(value, Value::Sequence(_) | Value::Mapping(_));
        Node {
            plain: is_scalar && offset.is_some_and(|o| plain.contains(&o)),
            value,
            at,
            tag,
            offset,
        }
    }

    pub fn is_null(&self) -> bool {
        self.value == Value::Null && self.tag.is_none()
    }

    /// Whether this node, as a mapping key, is `name`.
    pub fn is_key(&self, name: &str) -> bool {
        match &self.value {
            Value::String(s) => s == name,
            Value::Unsigned(n) => n.to_string() == name,
            Value::Signed(n) => n.to_string() == name,
            Value::Bool(b) => b.to_string() == name,
            _ => false,
        }
    }

    /// The node at `path`, as serde names it.
    pub fn get_mut(&mut self, path: &[Seg]) -> Option<&mut Node> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        // `!zscore {window: 5}`: the tag is the enum variant, which the path names.
        if let Seg::Variant(name) = first
            && self.tag.as_deref() == Some(name.as_str())
        {
            return self.get_mut(rest);
        }
        match (&mut self.value, first) {
            (Value::Mapping(entries), Seg::Key(name) | Seg::Variant(name)) => entries
                .iter_mut()
                .find(|(k, _)| k.is_key(name))?
                .1
                .get_mut(rest),
            (Value::Sequence(items), Seg::Index(i)) => items.get_mut(*i)?.get_mut(rest),
            _ => None,
        }
    }

    /// Cuts the node at `path` out of the tree: how many segments of `path` lead to what was
    /// cut (the variant of a tagged enum takes its whole node), or `None` when there is
    /// nothing to cut.
    pub fn remove(&mut self, path: &[Seg]) -> Option<usize> {
        let (last, parent_path) = path.split_last()?;
        let parent = self.get_mut(parent_path)?;
        if let Seg::Variant(name) = last
            && parent.tag.as_deref() == Some(name.as_str())
        {
            return self.remove(parent_path);
        }
        match (&mut parent.value, last) {
            (Value::Mapping(entries), Seg::Key(name) | Seg::Variant(name)) => {
                let i = entries.iter().position(|(k, _)| k.is_key(name))?;
                entries.remove(i);
            }
            (Value::Sequence(items), Seg::Index(i)) if *i < items.len() => {
                items.remove(*i);
            }
            _ => return None,
        }
        Some(path.len())
    }

    /// The place of `path` (a key's place for a mapping entry), or of its nearest ancestor
    /// written in the file.
    pub fn find(&self, path: &[Seg]) -> Option<Place> {
        let mut node = self;
        let mut found = None;
        for seg in path {
            match (&node.value, seg) {
                // A variant is a tag on the node, not a node of its own.
                (_, Seg::Variant(name)) if node.tag.as_deref() == Some(name.as_str()) => {}
                (Value::Mapping(entries), Seg::Key(name) | Seg::Variant(name)) => {
                    let Some((key, value)) = entries.iter().find(|(k, _)| k.is_key(name)) else {
                        break;
                    };
                    found = Some(key.at);
                    node = value;
                }
                (Value::Sequence(items), Seg::Index(i)) => {
                    let Some(item) = items.get(*i) else { break };
                    found = Some(item.at);
                    node = item;
                }
                (_, Seg::Variant(_)) => {}
                _ => break,
            }
        }
        found
    }

    /// Calls `visit` on every scalar, keys included (at the path of their entry).
    pub fn scalars_mut(&mut self, path: &mut Vec<Seg>, visit: &mut dyn FnMut(&[Seg], &mut Node)) {
        match &mut self.value {
            Value::Sequence(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(Seg::Index(i));
                    item.scalars_mut(path, visit);
                    path.pop();
                }
            }
            Value::Mapping(entries) => {
                for (key, value) in entries.iter_mut() {
                    path.push(Seg::Key(key_text(key)));
                    key.scalars_mut(path, visit);
                    value.scalars_mut(path, visit);
                    path.pop();
                }
            }
            _ => visit(path, self),
        }
    }

    /// Places this node and everything in it at `at` (a value that came from elsewhere).
    pub fn relocate(&mut self, at: Place) {
        self.at = at;
        self.offset = None;
        match &mut self.value {
            Value::Sequence(items) => items.iter_mut().for_each(|item| item.relocate(at)),
            Value::Mapping(entries) => entries.iter_mut().for_each(|(key, value)| {
                key.relocate(at);
                value.relocate(at);
            }),
            _ => {}
        }
    }
}

/// A key as the path shows it.
fn key_text(key: &Node) -> String {
    match &key.value {
        Value::String(s) => s.clone(),
        Value::Unsigned(n) => n.to_string(),
        Value::Signed(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Sequence(_) | Value::Mapping(_) => "?".to_string(),
    }
}

fn column(location: &serde_saphyr::Location) -> Option<usize> {
    usize::try_from(location.column()).ok()
}

/// The byte offsets of the plain scalars of `text` (the parser's events name each style).
fn plain_scalars(text: &str) -> HashSet<usize> {
    Parser::new_from_str(text)
        .map_while(Result::ok)
        .filter_map(|(event, span)| match event {
            Event::Scalar(_, ScalarStyle::Plain, _, _) => span.start.byte_offset(),
            _ => None,
        })
        .collect()
}

/// Where `!tag` starts when it is written right before `offset` (spaces between).
fn tag_start(text: &str, offset: usize, tag: &str) -> Option<usize> {
    let before = text.get(..offset)?.trim_end();
    before
        .strip_suffix(tag)?
        .strip_suffix('!')
        .map(|rest| rest.len())
}

/// Line and column (from 1, in characters) of byte `offset` of `text`.
pub fn place_of(text: &str, offset: usize) -> Place {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// The tree as `serde-saphyr` hands it over, before places are made lines and columns.
enum Parsed {
    /// Any value but a sequence or a mapping.
    Scalar(Value),
    Sequence(Vec<Spanned<Tagged<Parsed>>>),
    Mapping(Vec<(Spanned<Parsed>, Spanned<Tagged<Parsed>>)>),
}

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParsedVisitor)
    }
}

struct ParsedVisitor;

impl<'de> Visitor<'de> for ParsedVisitor {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Value::Bool(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(
            u64::try_from(n).map_or(Value::Signed(n), Value::Unsigned),
        ))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Value::Unsigned(n)))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Value::Float(f)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Value::String(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Value::String(s)))
    }

    fn visit_unit<E>(self) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Parsed, E> {
        Ok(Parsed::Scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        Parsed::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Parsed::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Parsed::Mapping(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_string())
    }

    #[test]
    fn places_follow_the_file() {
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
        let doc = Node::parse(text).expect("parses");
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
            // Inside flow collections too, each node has its own place.
            (
                vec![key("a"), key("b"), Seg::Index(2), Seg::Index(1)],
                (8, 9),
            ),
            (vec![key("quoted key"), key("k")], (9, 16)),
            (vec![key("c"), key("d")], (11, 3)),
        ];
        for (path, at) in cases {
            assert_eq!(
                doc.find(&path),
                Some(at),
                "{}",
                super::super::path::display(&path)
            );
        }
        // Text of a block scalar holds no keys: the nearest ancestor's place.
        assert_eq!(
            doc.find(&[key("a"), key("b"), Seg::Index(0), key("z")]),
            Some((3, 5))
        );
    }

    #[test]
    fn tags_name_variants_and_place_their_node() {
        let doc =
            Node::parse("- !fixed\n- !zscore\n  window: 5\n- 'quoted'\n- plain\n").expect("parses");
        let Value::Sequence(items) = &doc.value else {
            panic!("a sequence: {doc:?}");
        };
        assert_eq!(items[0].tag.as_deref(), Some("fixed"));
        assert_eq!(items[0].at, (1, 3));
        assert_eq!(items[1].tag.as_deref(), Some("zscore"));
        assert!(!items[2].plain && items[3].plain);
        assert_eq!(
            doc.find(&[Seg::Index(1), Seg::Variant("zscore".into()), key("window")]),
            Some((3, 3))
        );
    }

    #[test]
    fn syntax_errors_have_their_place() {
        assert_eq!(
            Node::parse("storage:\n  path: x\n   retention: 7d\n"),
            Err(SyntaxError {
                message: "mapping values are not allowed in this context".to_string(),
                at: Some((3, 13)),
            })
        );
    }
}
