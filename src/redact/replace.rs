//! What replaces a detected value, and what is remembered about it.
//!
//! A detected value is consumed byte by byte as it streams past (a PEM block
//! can be any size, so values are never buffered whole). Each byte feeds:
//! - the mask, when the strategy is `mask`: one `*` per character, line breaks
//!   kept, so the text keeps its shape;
//! - the fingerprint: HMAC-SHA-256 under the deployment key over the value's
//!   canonical form, so that the same secret written differently (a card with
//!   or without spaces, an address with a zero-width space or fullwidth `＠`)
//!   fingerprints the same. Canonical form: invisible characters dropped,
//!   fullwidth forms mapped to ASCII, then digits only for phone numbers, SSNs
//!   and cards, upper-case letters and digits for IBANs, lower case for email.
//!
//! Receipts count replacements per detector and keep up to
//! [`MAX_FINGERPRINTS`] distinct fingerprints (16 hex digits: the first 8 bytes
//! of the HMAC). Nothing here ever stores the value itself.

use std::collections::{BTreeMap, BTreeSet};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::key::Key;
use super::{DetectorKind, Label};
use crate::policy::Strategy;
use crate::report::RedactionReceipt;

/// Distinct fingerprints kept per detector and stream.
pub const MAX_FINGERPRINTS: usize = 32;

/// How a value's bytes are reduced before fingerprinting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Canon {
    Digits,
    Iban,
    Lower,
    Plain,
}

fn canon(label: &Label) -> Canon {
    match label {
        Label::Builtin(DetectorKind::Phone | DetectorKind::UsSsn | DetectorKind::CreditCard) => {
            Canon::Digits
        }
        Label::Builtin(DetectorKind::Iban) => Canon::Iban,
        Label::Builtin(DetectorKind::Email) => Canon::Lower,
        _ => Canon::Plain,
    }
}

/// The value being replaced, consumed as it streams past.
pub(crate) struct Value {
    mac: Option<Hmac<Sha256>>,
    canon: Canon,
    /// An incomplete UTF-8 sequence.
    pending: [u8; 4],
    npending: usize,
    mask: bool,
}

impl Value {
    /// Start a value detected as `label`.
    pub fn new(label: &Label, strategy: Strategy, key: Option<&Key>) -> Value {
        Value {
            mac: key.map(Key::mac),
            canon: canon(label),
            pending: [0; 4],
            npending: 0,
            mask: strategy == Strategy::Mask,
        }
    }

    /// Consume the next bytes of the value; masked output goes to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.mask {
            for &b in bytes {
                match b {
                    b'\n' | b'\r' => out.push(b),
                    _ if b & 0xC0 == 0x80 => {}
                    _ => out.push(b'*'),
                }
            }
        }
        if self.mac.is_none() {
            return;
        }
        for &b in bytes {
            if self.npending == 0 && b < 0x80 {
                self.ascii(b);
                continue;
            }
            if self.npending > 0 && b & 0xC0 != 0x80 {
                // The sequence broke off: keep its bytes as they were.
                self.flush_pending();
            }
            self.pending[self.npending] = b;
            self.npending += 1;
            let need = match self.pending[0] {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => 1,
            };
            if self.npending == need {
                self.complete();
            }
        }
    }

    fn ascii(&mut self, b: u8) {
        let keep = match self.canon {
            Canon::Digits => b.is_ascii_digit().then_some(b),
            Canon::Iban => b.is_ascii_alphanumeric().then_some(b.to_ascii_uppercase()),
            Canon::Lower => Some(b.to_ascii_lowercase()),
            Canon::Plain => Some(b),
        };
        if let (Some(b), Some(mac)) = (keep, self.mac.as_mut()) {
            mac.update(&[b]);
        }
    }

    fn complete(&mut self) {
        let n = self.npending;
        self.npending = 0;
        let seq = self.pending;
        match std::str::from_utf8(&seq[..n])
            .ok()
            .and_then(|s| s.chars().next())
        {
            Some(c @ '\u{FF01}'..='\u{FF5E}') => self.ascii((c as u32 - 0xFF01 + 0x21) as u8),
            Some(
                '\u{AD}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FEFF}',
            ) => {}
            _ => self.raw(&seq[..n]),
        }
    }

    fn flush_pending(&mut self) {
        let n = self.npending;
        self.npending = 0;
        let seq = self.pending;
        self.raw(&seq[..n]);
    }

    fn raw(&mut self, bytes: &[u8]) {
        if self.canon != Canon::Plain && self.canon != Canon::Lower {
            return;
        }
        if let Some(mac) = self.mac.as_mut() {
            mac.update(bytes);
        }
    }

    /// Finish the value: its fingerprint, if there is a key.
    pub fn finish(mut self) -> Option<[u8; 8]> {
        if self.npending > 0 {
            self.flush_pending();
        }
        self.mac.map(|m| {
            let tag = m.finalize().into_bytes();
            let mut fp = [0u8; 8];
            fp.copy_from_slice(&tag[..8]);
            fp
        })
    }
}

/// The text that replaces a finished value (`mask` and `remove` write nothing
/// here: a mask is written while the value streams past).
pub(crate) fn replacement(name: &str, strategy: Strategy, fp: Option<[u8; 8]>, out: &mut Vec<u8>) {
    match strategy {
        Strategy::Placeholder => {
            out.extend_from_slice(b"[REDACTED:");
            out.extend_from_slice(name.as_bytes());
            out.push(b']');
        }
        Strategy::Hash => {
            out.push(b'[');
            out.extend_from_slice(name.as_bytes());
            out.push(b':');
            out.extend_from_slice(hex::encode(fp.unwrap_or_default()).as_bytes());
            out.push(b']');
        }
        Strategy::Mask | Strategy::Remove => {}
    }
}

/// Per-detector counts and fingerprints of one stream.
#[derive(Clone, Debug, Default)]
pub(crate) struct Receipts {
    by_label: BTreeMap<Label, (u64, BTreeSet<[u8; 8]>)>,
}

impl Receipts {
    /// Record one replacement.
    pub fn record(&mut self, label: Label, fp: Option<[u8; 8]>) {
        let entry = self.by_label.entry(label).or_default();
        entry.0 += 1;
        if let Some(fp) = fp
            && entry.1.len() < MAX_FINGERPRINTS
        {
            entry.1.insert(fp);
        }
    }

    /// The receipts of stream `stream`, detector names from `name`.
    pub fn to_report(
        &self,
        stream: &str,
        name: impl Fn(&Label) -> String,
    ) -> Vec<RedactionReceipt> {
        self.by_label
            .iter()
            .map(|(label, (count, fps))| RedactionReceipt {
                stream: stream.to_string(),
                detector: name(label),
                count: *count,
                fingerprints: fps.iter().map(hex::encode).collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(label: Label, parts: &[&[u8]]) -> [u8; 8] {
        let key = Key::from_bytes(&[9u8; 32]).unwrap();
        let mut v = Value::new(&label, Strategy::Placeholder, Some(&key));
        let mut out = Vec::new();
        for p in parts {
            v.feed(p, &mut out);
        }
        assert!(out.is_empty());
        v.finish().unwrap()
    }

    #[test]
    fn fingerprints_see_through_formatting_and_chunking() {
        let card = Label::Builtin(DetectorKind::CreditCard);
        let a = fp(card, &[b"4111 1111 1111 1111"]);
        assert_eq!(a, fp(card, &[b"4111-1111-", b"1111-1111"]));
        assert_eq!(
            a,
            fp(card, &["４１１１ １１１１ １１１１ １１１１".as_bytes()])
        );
        let email = Label::Builtin(DetectorKind::Email);
        let e = fp(email, &[b"John@Example.com"]);
        let zw = "jo\u{200B}hn＠example.com".as_bytes();
        assert_eq!(e, fp(email, &[&zw[..3], &zw[3..5], &zw[5..]]));
        assert_ne!(e, fp(email, &[b"jane@example.com"]));
    }

    #[test]
    fn masks_keep_characters_and_lines() {
        let mut v = Value::new(&Label::Custom(0), Strategy::Mask, None);
        let mut out = Vec::new();
        v.feed("ab\né".as_bytes(), &mut out);
        assert_eq!(out, b"**\n*");
        assert_eq!(v.finish(), None);
    }

    #[test]
    fn receipts_count_and_bound_fingerprints() {
        let mut r = Receipts::default();
        for i in 0..100u8 {
            r.record(Label::Builtin(DetectorKind::Email), Some([i; 8]));
        }
        r.record(Label::Builtin(DetectorKind::Email), Some([0; 8]));
        let rep = r.to_report("stdout", |_| "email".into());
        assert_eq!(rep.len(), 1);
        assert_eq!(rep[0].count, 101);
        assert_eq!(rep[0].fingerprints.len(), MAX_FINGERPRINTS);
        assert_eq!(rep[0].fingerprints[0], "0000000000000000");
    }
}
