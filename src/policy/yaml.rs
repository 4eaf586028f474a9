//! Safe YAML reading: policy text → a tree of positioned nodes.
//!
//! This is the first pass of loading. It owns everything that must be refused
//! before any value is interpreted: duplicate keys (serde keeps the last one
//! silently), tags (`!!python/object` and friends construct code in other
//! loaders), aliases beyond a node budget (an alias bomb fails fast instead of
//! eating memory), nesting beyond a depth limit, non-scalar keys and multiple
//! documents. Every node keeps the line and column it was written at, so later
//! passes can point at the exact spot of a semantic error.
//!
//! It must never resolve scalars into types (that is the deserializer's job) and
//! never allocate more than a bounded multiple of the input size.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Nodes a document may contain, aliases expanded. A policy has a few hundred.
/// A scalar counts one node per started [`SCALAR_UNIT`] bytes, so that an alias
/// to a long string cannot multiply memory either.
pub const MAX_NODES: usize = 50_000;
/// Bytes of scalar text that count as one node.
pub const SCALAR_UNIT: usize = 32;
/// Deepest nesting of mappings and sequences.
pub const MAX_DEPTH: usize = 64;

/// A 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: u32::try_from(span.start.line()).unwrap_or(u32::MAX),
            column: u32::try_from(span.start.col().saturating_add(1)).unwrap_or(u32::MAX),
        }
    }
}

/// One YAML node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What it holds.
    pub kind: NodeKind,
    /// Where it starts.
    pub pos: Pos,
}

/// The shape of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A scalar; `plain` is false for quoted and block scalars (always strings).
    Scalar {
        /// The scalar's text.
        value: String,
        /// Unquoted: subject to null/bool/number resolution.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with unique scalar keys, in document order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar text, when this is a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    fn size(&self) -> usize {
        match &self.kind {
            NodeKind::Scalar { value, .. } => 1 + value.len() / SCALAR_UNIT,
            NodeKind::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            NodeKind::Map(pairs) => {
                1 + pairs
                    .iter()
                    .map(|(k, v)| k.size() + v.size())
                    .sum::<usize>()
            }
        }
    }
}

/// Why a text is not an acceptable YAML document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    /// Where the problem is (line 0 when it concerns the whole file).
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl YamlError {
    fn new(pos: Pos, message: impl Into<String>, hint: impl Into<String>) -> YamlError {
        YamlError {
            pos,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// An open collection while the tree is being built.
enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        pairs: Vec<(Node, Node)>,
        key: Option<Node>,
        seen: HashSet<String>,
    },
}

/// Parse one YAML document into a node tree. `None` when the text holds no
/// document at all (empty or only comments).
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut budget = MAX_NODES;

    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| {
            let m = e.marker();
            YamlError::new(
                Pos {
                    line: u32::try_from(m.line()).unwrap_or(u32::MAX),
                    column: u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
                },
                format!("invalid YAML: {}", e.info()),
                "check indentation, colons and quoting around this spot",
            )
        })?;
        let pos = Pos::of(&span);
        let complete = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::new(
                        pos,
                        "a policy file holds exactly one YAML document; found a second one",
                        "remove the `---` separator and everything after it, or split the file",
                    ));
                }
                None
            }
            Event::Alias(id) => {
                let target = anchors.get(&id).ok_or_else(|| {
                    YamlError::new(pos, "alias to an unknown anchor", "define the anchor first")
                })?;
                let size = target.size();
                charge(&mut budget, size, pos)?;
                Some((target.clone(), 0))
            }
            Event::Scalar(value, style, anchor, tag) => {
                refuse_tag(tag.as_deref().map(show_tag), pos)?;
                charge(&mut budget, 1 + value.len() / SCALAR_UNIT, pos)?;
                let node = Node {
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                    pos,
                };
                Some((node, anchor))
            }
            Event::SequenceStart(anchor, tag) => {
                refuse_tag(tag.as_deref().map(show_tag), pos)?;
                charge(&mut budget, 1, pos)?;
                push(&mut stack, pos)?;
                stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
                None
            }
            Event::MappingStart(anchor, tag) => {
                refuse_tag(tag.as_deref().map(show_tag), pos)?;
                charge(&mut budget, 1, pos)?;
                push(&mut stack, pos)?;
                stack.push(Frame::Map {
                    pos,
                    anchor,
                    pairs: Vec::new(),
                    key: None,
                    seen: HashSet::new(),
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => Some((
                    Node {
                        kind: NodeKind::Seq(items),
                        pos,
                    },
                    anchor,
                )),
                _ => return Err(internal(pos)),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    pos, anchor, pairs, ..
                }) => Some((
                    Node {
                        kind: NodeKind::Map(pairs),
                        pos,
                    },
                    anchor,
                )),
                _ => return Err(internal(pos)),
            },
        };

        let Some((node, anchor)) = complete else {
            continue;
        };
        if anchor != 0 {
            // The copy kept for later aliases counts against the budget too.
            charge(&mut budget, node.size(), node.pos)?;
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                pairs, key, seen, ..
            }) => match key.take() {
                None => {
                    let Some(k) = node.scalar() else {
                        return Err(YamlError::new(
                            node.pos,
                            "mapping keys must be plain strings, not lists or mappings",
                            "write the key as a single word followed by `:`",
                        ));
                    };
                    if !seen.insert(k.to_owned()) {
                        let first = pairs
                            .iter()
                            .find(|(pk, _)| pk.scalar() == Some(k))
                            .map(|(pk, _)| pk.pos)
                            .unwrap_or_default();
                        return Err(YamlError::new(
                            node.pos,
                            format!(
                                "duplicate key `{k}` (first defined at line {}, column {})",
                                first.line, first.column
                            ),
                            "YAML keeps only one of them silently; merge the two entries into one",
                        ));
                    }
                    *key = Some(node);
                }
                Some(k) => pairs.push((k, node)),
            },
        }
    }
    if !stack.is_empty() {
        return Err(YamlError::new(
            Pos::default(),
            "unterminated YAML collection",
            "close every `[` and `{`",
        ));
    }
    Ok(root)
}

fn charge(budget: &mut usize, n: usize, pos: Pos) -> Result<(), YamlError> {
    match budget.checked_sub(n) {
        Some(left) => {
            *budget = left;
            Ok(())
        }
        None => Err(YamlError::new(
            pos,
            format!("the document expands to more than {MAX_NODES} YAML nodes (aliases included)"),
            "a policy needs far fewer; remove repeated aliases (`*name`) or split the policy",
        )),
    }
}

fn push(stack: &mut [Frame], pos: Pos) -> Result<(), YamlError> {
    if stack.len() >= MAX_DEPTH {
        return Err(YamlError::new(
            pos,
            format!("YAML nesting deeper than {MAX_DEPTH} levels"),
            "flatten the structure; no policy field nests this deep",
        ));
    }
    Ok(())
}

fn show_tag(t: &saphyr_parser::Tag) -> String {
    match t.handle.as_str() {
        "tag:yaml.org,2002:" => format!("!!{}", t.suffix),
        h => format!("{h}{}", t.suffix),
    }
}

fn refuse_tag(tag: Option<String>, pos: Pos) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) => Err(YamlError::new(
            pos,
            format!("YAML tags are not allowed in policies (found `{t}`)"),
            "remove the tag; policies hold plain strings, numbers, booleans, lists and mappings",
        )),
    }
}

fn internal(pos: Pos) -> YamlError {
    YamlError::new(
        pos,
        "unbalanced YAML collection events",
        "check the brackets and indentation",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> YamlError {
        parse(text).expect_err("must be refused")
    }

    #[test]
    fn positions_are_one_based() {
        let root = parse("a: 1\nbb:\n  - x\n").unwrap().unwrap();
        let NodeKind::Map(pairs) = root.kind else {
            panic!("map")
        };
        assert_eq!(pairs[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(pairs[1].0.pos, Pos { line: 2, column: 1 });
        let NodeKind::Seq(items) = &pairs[1].1.kind else {
            panic!("seq")
        };
        assert_eq!(items[0].pos, Pos { line: 3, column: 5 });
    }

    #[test]
    fn duplicate_keys_are_refused_with_both_lines() {
        let e = err("a: 1\nb: 2\na: 3\n");
        assert_eq!(e.pos, Pos { line: 3, column: 1 });
        assert!(e.message.contains("duplicate key `a`"), "{}", e.message);
        assert!(e.message.contains("line 1"), "{}", e.message);
        let nested = err("x:\n  y: 1\n  y: 2\n");
        assert_eq!(nested.pos.line, 3);
    }

    #[test]
    fn tags_are_refused() {
        let e = err("a: !!python/object:os.system ls\n");
        assert!(e.message.contains("tags are not allowed"), "{}", e.message);
        assert!(e.message.contains("python/object"), "{}", e.message);
        assert!(err("a: !custom {b: 1}\n").message.contains("tags"));
    }

    #[test]
    fn alias_bomb_fails_fast() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = err(&s);
        assert!(e.message.contains("more than"), "{}", e.message);
    }

    #[test]
    fn aliases_of_long_strings_are_bounded_too() {
        let long = "x".repeat(200_000);
        let refs = vec!["*a"; 100].join(", ");
        let e = err(&format!("a: &a \"{long}\"\nb: [{refs}]\n"));
        assert!(e.message.contains("more than"), "{}", e.message);
    }

    #[test]
    fn small_aliases_expand() {
        let root = parse("a: &x [1, 2]\nb: *x\n").unwrap().unwrap();
        let NodeKind::Map(pairs) = root.kind else {
            panic!("map")
        };
        assert_eq!(pairs[0].1.kind, pairs[1].1.kind);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let s = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&s).is_err());
    }

    #[test]
    fn empty_and_multi_document() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        assert!(err("a: 1\n---\nb: 2\n").message.contains("second"));
    }

    #[test]
    fn complex_keys_are_refused() {
        assert!(err("? [a, b]\n: 1\n").message.contains("keys"));
    }
}
