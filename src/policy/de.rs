//! A serde `Deserializer` over the positioned YAML tree, and [`Spanned`].
//!
//! The raw policy structs derive `Deserialize` with `deny_unknown_fields`; this
//! deserializer feeds them from [`Node`]s so that every type error, unknown key
//! and missing key carries the line and column of the node it concerns, and so
//! that [`Spanned`] fields can record where their value was written.
//!
//! Scalar resolution is strict and YAML-1.2-like: only `true`/`false` are
//! booleans, only unquoted numbers are numbers, and an unquoted scalar that reads
//! as a boolean, number or null is refused where a string is expected (quote
//! it). This module must never accept a value of the wrong type silently.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::yaml::{Node, NodeKind, Pos};

/// A deserialization failure, with the position of the node it concerns.
#[derive(Debug)]
pub struct DeError {
    /// What is wrong.
    pub message: String,
    /// Where (set by the innermost node that saw the error).
    pub pos: Option<Pos>,
    /// How to fix it, when the deserializer knows better than the generic hint.
    pub hint: Option<String>,
}

impl DeError {
    fn at(mut self, pos: Pos) -> Self {
        self.pos.get_or_insert(pos);
        self
    }

    fn with_hint(message: String, hint: impl Into<String>) -> Self {
        DeError {
            message,
            pos: None,
            hint: Some(hint.into()),
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            pos: None,
            hint: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let exp = exp.to_string();
        let exp = match exp.as_str() {
            "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" => "an integer",
            "f32" | "f64" => "a number",
            "a boolean" | "bool" => "`true` or `false`",
            other => other,
        };
        DeError::custom(format_args!("expected {exp}, found {unexp}"))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::custom(format_args!("invalid value {unexp}, expected {exp}"))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::with_hint(
            format!("unknown key `{field}`"),
            format!(
                "valid keys here: {}; see docs/policy.md",
                expected
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::with_hint(
            format!("missing required key `{field}`"),
            format!("add `{field}:` to this mapping; see docs/policy.md"),
        )
    }
}

/// How an unquoted scalar reads.
enum Plain<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
}

fn resolve(value: &str) -> Plain<'_> {
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        _ => {}
    }
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    let negative = value.starts_with('-');
    let parsed = if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i128>().ok()
    } else {
        None
    };
    if let Some(n) = parsed {
        return Plain::Int(if negative { -n } else { n });
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float && let Ok(f) = value.parse::<f64>() {
        return Plain::Float(f);
    }
    Plain::Str(value)
}

fn unexpected(node: &Node) -> de::Unexpected<'_> {
    match &node.kind {
        NodeKind::Seq(_) => de::Unexpected::Seq,
        NodeKind::Map(_) => de::Unexpected::Map,
        NodeKind::Scalar {
            value,
            plain: false,
        } => de::Unexpected::Str(value),
        NodeKind::Scalar { value, plain: true } => match resolve(value) {
            Plain::Null => de::Unexpected::Unit,
            Plain::Bool(b) => de::Unexpected::Bool(b),
            Plain::Int(i) => match i64::try_from(i) {
                Ok(i) => de::Unexpected::Signed(i),
                Err(_) => de::Unexpected::Other("a very large integer"),
            },
            Plain::Float(f) => de::Unexpected::Float(f),
            Plain::Str(s) => de::Unexpected::Str(s),
        },
    }
}

/// Deserializes one [`Node`].
#[derive(Clone, Copy)]
pub struct NodeDe<'a> {
    node: &'a Node,
}

impl<'a> NodeDe<'a> {
    /// A deserializer for `node`.
    pub fn new(node: &'a Node) -> Self {
        NodeDe { node }
    }

    fn int<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let NodeKind::Scalar { value, plain: true } = &self.node.kind
            && let Plain::Int(i) = resolve(value)
        {
            return match (u64::try_from(i), i64::try_from(i)) {
                (Ok(u), _) => visitor.visit_u64(u),
                (_, Ok(s)) => visitor.visit_i64(s),
                _ => Err(<DeError as de::Error>::custom(format_args!(
                    "integer {value} is out of range"
                ))),
            };
        }
        Err(de::Error::invalid_type(unexpected(self.node), &visitor))
    }

    fn wrap<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|e| e.at(self.node.pos))
    }
}

macro_rules! ints {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let pos = self.node.pos;
            self.int(visitor).map_err(|e| e.at(pos))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Seq(items) => visitor.visit_seq(SeqDe { iter: items.iter() }),
            NodeKind::Map(pairs) => visitor.visit_map(MapDe {
                iter: pairs.iter(),
                value: None,
            }),
            NodeKind::Scalar {
                value,
                plain: false,
            } => visitor.visit_str(value),
            NodeKind::Scalar { value, plain: true } => match resolve(value) {
                Plain::Null => visitor.visit_unit(),
                Plain::Bool(b) => visitor.visit_bool(b),
                Plain::Int(_) => {
                    let pos = self.node.pos;
                    return self.int(visitor).map_err(|e| e.at(pos));
                }
                Plain::Float(f) => visitor.visit_f64(f),
                Plain::Str(s) => visitor.visit_str(s),
            },
        };
        self.wrap(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Scalar { value, plain: true } => match resolve(value) {
                Plain::Bool(b) => visitor.visit_bool(b),
                _ => Err(DeError::with_hint(
                    format!("expected a boolean, found `{value}`"),
                    "write `true` or `false`",
                )),
            },
            _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        self.wrap(r)
    }

    ints!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
          deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Scalar { value, plain: true } => match resolve(value) {
                Plain::Float(f) => visitor.visit_f64(f),
                Plain::Int(i) => visitor.visit_f64(i as f64),
                _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
            },
            _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        self.wrap(r)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Scalar {
                value,
                plain: false,
            } => visitor.visit_str(value),
            NodeKind::Scalar { value, plain: true } => match resolve(value) {
                Plain::Str(s) => visitor.visit_str(s),
                Plain::Null => Err(DeError::with_hint(
                    "expected a string, found nothing (null)".to_owned(),
                    "give a value, or remove the key",
                )),
                _ => Err(DeError::with_hint(
                    format!(
                        "expected a string, found `{value}`, which YAML reads as a number or boolean"
                    ),
                    format!("quote it: \"{value}\""),
                )),
            },
            _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        self.wrap(r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Scalar { value, plain: true } if matches!(resolve(value), Plain::Null) => {
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Scalar { value, plain: true } if matches!(resolve(value), Plain::Null) => {
                self.wrap(visitor.visit_unit())
            }
            _ => self.wrap(Err(de::Error::invalid_type(
                unexpected(self.node),
                &visitor,
            ))),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Seq(items) => visitor.visit_seq(SeqDe { iter: items.iter() }),
            _ => Err(DeError::with_hint(
                format!("expected a list, found {}", unexpected(self.node)),
                "write a list as `[a, b]` or as lines starting with `- `",
            )),
        };
        self.wrap(r)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Map(pairs) => visitor.visit_map(MapDe {
                iter: pairs.iter(),
                value: None,
            }),
            _ => Err(DeError::with_hint(
                format!("expected a mapping, found {}", unexpected(self.node)),
                "write `key: value` pairs, indented under this key",
            )),
        };
        self.wrap(r)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == SPANNED {
            return visitor.visit_map(SpannedDe {
                node: self.node,
                step: 0,
            });
        }
        let _ = fields;
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Scalar { value, .. } => {
                visitor.visit_enum(value.as_str().into_deserializer())
            }
            _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        self.wrap(r)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Scalar { value, .. } => visitor.visit_str(value),
            _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        self.wrap(r)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a> {
    iter: std::slice::Iter<'a, Node>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some(node) => seed.deserialize(NodeDe::new(node)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapDe<'a> {
    iter: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(NodeDe::new(k))
                    .map(Some)
                    .map_err(|e| e.at(k.pos))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some(v) => seed.deserialize(NodeDe::new(v)),
            None => Err(<DeError as de::Error>::custom("value requested before key")),
        }
    }
}

/// The struct name [`Spanned`] asks for; [`NodeDe`] answers it with the position.
const SPANNED: &str = "$__enforcecore_spanned";
const SPANNED_FIELDS: &[&str] = &["$__line", "$__column", "$__value"];

struct SpannedDe<'a> {
    node: &'a Node,
    step: u8,
}

impl<'de> de::MapAccess<'de> for SpannedDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match SPANNED_FIELDS.get(usize::from(self.step)) {
            Some(f) => seed
                .deserialize(de::value::BorrowedStrDeserializer::new(f))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let step = self.step;
        self.step += 1;
        match step {
            0 => seed.deserialize(self.node.pos.line.into_deserializer()),
            1 => seed.deserialize(self.node.pos.column.into_deserializer()),
            _ => seed.deserialize(NodeDe::new(self.node)),
        }
    }
}

/// A value with the position of the YAML node it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub pos: Pos,
}

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Spanned<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: de::Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Spanned<T>, A::Error> {
                let mut line = 0u32;
                let mut column = 0u32;
                let mut value = None;
                while let Some(k) = map.next_key::<&str>()? {
                    match k {
                        "$__line" => line = map.next_value()?,
                        "$__column" => column = map.next_value()?,
                        _ => value = Some(map.next_value()?),
                    }
                }
                let value = value.ok_or_else(|| de::Error::custom("spanned value missing"))?;
                Ok(Spanned {
                    value,
                    pos: Pos { line, column },
                })
            }
        }
        d.deserialize_struct(SPANNED, SPANNED_FIELDS, V(std::marker::PhantomData))
    }
}

/// Deserialize a `T` from a node tree.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &Node) -> Result<T, DeError> {
    T::deserialize(NodeDe::new(node)).map_err(|e| e.at(node.pos))
}
