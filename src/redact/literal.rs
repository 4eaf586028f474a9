//! The literal scanner: finds token prefixes and PEM opening lines with one
//! SIMD multi-literal search (the Teddy searcher of `aho-corasick`) and runs the
//! token detectors there. While a PEM block is open it reads the block body
//! instead (`detect::pem`), byte by byte, with bounded state.
//!
//! A match is only acted on once every literal that could start at or before it
//! has fully arrived, so the matches found never depend on chunking.

use std::sync::LazyLock;

use aho_corasick::Span;
use aho_corasick::packed::{Config, MatchKind, Searcher};

use super::detect::pem::Body;
use super::detect::tokens::{self, LITERALS, Token};
use super::detect::{Hit, MAX_LOOKBEHIND};
use super::text::Window;

/// The shared searcher (Teddy, with Rabin-Karp where SIMD is missing), built
/// once per process on first use.
static SEARCHER: LazyLock<Searcher> = LazyLock::new(|| {
    Config::new()
        .match_kind(MatchKind::LeftmostFirst)
        .builder()
        .extend(LITERALS)
        .build()
        .expect("the built-in literals fit the packed searcher")
});

/// Build the searcher now (it is otherwise built by the first stream's first
/// bytes).
pub(crate) fn warm_up() {
    LazyLock::force(&SEARCHER);
}

/// Longest literal.
fn max_literal() -> usize {
    LITERALS.iter().map(|l| l.len()).max().unwrap_or(1)
}

/// What the literal scanner reports besides hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PemEvent {
    /// A block opened at `start`; it covers at least `[start, committed)`.
    Open { start: u64, committed: u64 },
    /// The open block now covers at least `[start, committed)`.
    Grow { committed: u64 },
    /// The open block ends at `end`.
    Close { end: u64 },
}

/// The literal scanner's progress through one stream.
#[derive(Clone, Debug)]
pub(crate) struct Literals {
    /// Matches before this absolute position are done.
    pos: u64,
    /// The open PEM block.
    pem: Option<Body>,
    /// Retry only once the window reaches this absolute length.
    retry_at: u64,
    /// A detector at `pos` waits for more input.
    pending: bool,
    /// `eyJ` matches before this position lie in a run that failed as a JWT.
    jwt_rejected_to: u64,
    /// Whether to look at all.
    enabled: bool,
    /// Whether PEM blocks are wanted.
    pem_enabled: bool,
}

impl Literals {
    /// A scanner at the start of a stream.
    pub fn new(enabled: bool, pem_enabled: bool) -> Self {
        Literals {
            pos: 0,
            pem: None,
            retry_at: 0,
            pending: false,
            jwt_rejected_to: 0,
            enabled,
            pem_enabled,
        }
    }

    /// Scan what has arrived. `w` starts at absolute `base`.
    pub fn advance(
        &mut self,
        w: &Window,
        base: u64,
        hits: &mut impl FnMut(u64, Hit),
        pem: &mut impl FnMut(PemEvent),
    ) {
        let end = base + w.len() as u64;
        if !self.enabled {
            self.pos = end;
            return;
        }
        if !w.eof && end < self.retry_at {
            return;
        }
        loop {
            if let Some(body) = self.pem.as_mut() {
                match body.advance(w, base) {
                    Some(close) => {
                        pem(PemEvent::Close { end: close });
                        self.pos = close;
                        self.pem = None;
                    }
                    None => {
                        pem(PemEvent::Grow {
                            committed: body.committed,
                        });
                        self.pos = body.pos;
                        return;
                    }
                }
            }
            let from = (self.pos - base) as usize;
            let found = SEARCHER.find_in(w.bytes, Span::from(from.min(w.len())..w.len()));
            let Some(m) = found.filter(|m| w.eof || m.start() + max_literal() <= w.len()) else {
                self.pending = false;
                self.pos = if w.eof {
                    end
                } else {
                    self.pos.max(end.saturating_sub(max_literal() as u64 - 1))
                };
                return;
            };
            let s = m.start();
            let id = m.pattern().as_usize();
            self.pending = false;
            // Every `eyJ` inside a base64url run that already failed as a JWT
            // fails too (same later segments, shorter first one): skip them, so
            // a long run costs one read, not one per `eyJ` in it.
            if id == tokens::JWT_LITERAL && base + (s as u64) < self.jwt_rejected_to {
                self.pos = base + s as u64 + 1;
                continue;
            }
            match tokens::at_literal(w, s, id) {
                Ok(Some(Token::Hit(h))) => {
                    hits(base, h);
                    self.pos = base + h.end as u64;
                }
                Ok(Some(Token::PemOpen { .. })) if !self.pem_enabled => {
                    self.pos = base + s as u64 + 1
                }
                Ok(Some(Token::PemOpen { start, body })) => {
                    let b = Body::new(base + body as u64);
                    pem(PemEvent::Open {
                        start: base + start as u64,
                        committed: b.committed,
                    });
                    self.pem = Some(b);
                    self.pos = b.pos;
                }
                Ok(None) => {
                    if id == tokens::JWT_LITERAL {
                        let run = w.bytes[s..]
                            .iter()
                            .take_while(|&&c| tokens::b64url(c))
                            .count();
                        self.jwt_rejected_to = base + (s + run) as u64;
                    }
                    self.pos = base + s as u64 + 1;
                }
                Err(pending) => {
                    self.pending = true;
                    self.pos = base + s as u64;
                    let waited = end - self.pos;
                    self.retry_at = (base + pending.need as u64 + 1).max(self.pos + 2 * waited);
                    return;
                }
            }
        }
    }

    /// No detection from matches still to come can start before this (an open
    /// PEM block is reported separately).
    pub fn frontier(&self, w: &Window, base: u64) -> u64 {
        if self.pem.is_some() || self.pending {
            return self.pos;
        }
        // A literal that has not fully arrived cannot contain a line break.
        let from = ((self.pos - base) as usize).min(w.len());
        match memchr::memrchr(b'\n', &w.bytes[from..]) {
            Some(i) => self.pos.max(base + (from + i) as u64 + 1),
            None => self.pos,
        }
    }

    /// Earliest absolute position the scanner may still read.
    pub fn keep_from(&self) -> u64 {
        self.pos.saturating_sub(MAX_LOOKBEHIND as u64)
    }
}
