//! Policy-defined detectors: a regex with a bounded longest match, optionally
//! confirmed by a checksum (Luhn or mod-97), run over the raw bytes.
//!
//! Each detector searches on its own. A match is kept only once the bytes it
//! could depend on have arrived (its start plus the longest match plus a few
//! bytes of look-ahead for `\b` and `$`), so results never depend on chunking. A
//! match the checksum rejects is dropped and the search resumes one byte later.
//! Empty matches are ignored. Unlike the built-in detectors, custom patterns see
//! the bytes as they are: no fullwidth or zero-width normalisation.

use regex::bytes::Regex;

use super::RedactError;
use super::text::Window;
use super::validate::{luhn, mod97};
use crate::policy::{CustomDetector, Validator};

/// Longest match a custom detector may declare.
pub const MAX_CUSTOM_LEN: usize = 64 * 1024;
/// Look-ahead a match may depend on past its end (a UTF-8 character).
const LOOKAHEAD: usize = 4;

/// A compiled custom detector.
#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    /// Name as written in the policy.
    pub name: String,
    /// Upper-case name used in replacements.
    pub label: String,
    regex: Regex,
    window: usize,
    validator: Option<Validator>,
}

impl Compiled {
    /// Compile one policy detector.
    pub fn new(d: &CustomDetector) -> Result<Compiled, RedactError> {
        if d.max_len == 0 || d.max_len > MAX_CUSTOM_LEN {
            return Err(RedactError::CustomTooLong {
                name: d.name.clone(),
                max_len: d.max_len,
            });
        }
        let regex = regex::bytes::RegexBuilder::new(&d.pattern)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
            .map_err(|source| RedactError::CustomPattern {
                name: d.name.clone(),
                source,
            })?;
        Ok(Compiled {
            name: d.name.clone(),
            label: d.name.to_uppercase(),
            regex,
            window: d.max_len + LOOKAHEAD,
            validator: d.validator,
        })
    }

    fn valid(&self, m: &[u8]) -> bool {
        match self.validator {
            None => true,
            Some(Validator::Luhn) => luhn(m),
            Some(Validator::Mod97) => mod97(m),
        }
    }
}

/// One custom detector's progress through a stream.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cursor {
    /// Matches starting before this absolute position are done.
    pos: u64,
    /// Search again only once the window reaches this absolute length.
    retry_at: u64,
}

impl Cursor {
    /// Search what has arrived; report matches as absolute ranges.
    pub fn advance(
        &mut self,
        c: &Compiled,
        w: &Window,
        base: u64,
        hits: &mut impl FnMut(u64, u64),
    ) {
        let end = base + w.len() as u64;
        if !w.eof && end < self.retry_at {
            return;
        }
        loop {
            let from = (self.pos - base) as usize;
            if from > w.len() {
                return;
            }
            let found = c.regex.find_at(w.bytes, from);
            let settled = |start: usize| w.eof || start + c.window <= w.len();
            match found {
                Some(m) if settled(m.start()) => {
                    if m.is_empty() {
                        self.pos = base + m.start() as u64 + 1;
                    } else if c.valid(m.as_bytes()) {
                        hits(base + m.start() as u64, base + m.end() as u64);
                        self.pos = base + m.end() as u64;
                    } else {
                        self.pos = base + m.start() as u64 + 1;
                    }
                }
                _ if w.eof => {
                    self.pos = end;
                    return;
                }
                other => {
                    // No settled match: everything up to `window` before the end is
                    // done; search again once another window has arrived.
                    let settled_to = end.saturating_sub(c.window as u64);
                    let cap = other.map_or(end, |m| base + m.start() as u64);
                    self.pos = self.pos.max(settled_to.min(cap));
                    self.retry_at = end + c.window as u64;
                    return;
                }
            }
        }
    }

    /// No match still to come can start before this.
    pub fn frontier(&self) -> u64 {
        self.pos
    }

    /// Earliest absolute position the search may still read (look-behind).
    pub fn keep_from(&self) -> u64 {
        self.pos.saturating_sub(LOOKAHEAD as u64)
    }
}
