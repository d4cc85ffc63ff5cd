//! The path of a setting, such as `alerting.rules[2].for`: as serde reports it, as a check
//! writes it, and as a message shows it.

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
    /// The variant of an enum, written as a `!tag` in the file.
    Variant(String),
}

/// `a.b[2].c`.
pub fn display(path: &[Seg]) -> String {
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

/// `a.b[2].c` as segments.
pub fn parse(text: &str) -> Option<Vec<Seg>> {
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

/// The path serde reported an error at; `None` when part of it is unknown.
pub fn of_error(path: &serde_path_to_error::Path) -> Option<Vec<Seg>> {
    path.iter()
        .map(|seg| match seg {
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            serde_path_to_error::Segment::Enum { variant } => Some(Seg::Variant(variant.clone())),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_and_print_the_same() {
        for text in ["a", "a.b[2].c", "routes[0][1]", "x.y"] {
            let path = parse(text).expect(text);
            assert_eq!(display(&path), text);
        }
        assert_eq!(
            parse("a.b[2]"),
            Some(vec![
                Seg::Key("a".into()),
                Seg::Key("b".into()),
                Seg::Index(2)
            ])
        );
        for bad in ["", "a..b", "a[x]", "a[1]b"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
