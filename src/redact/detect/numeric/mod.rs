//! Numbers: phone numbers (E.164 and NANP), US SSNs, payment cards and IPv4
//! addresses, read as one "numeric span" of digit groups joined by separators.
//!
//! A span starts at a digit that does not continue a word or another number
//! and reads up to [`MAX_GROUPS`] groups of digits separated by one or two of
//! ` - . ( )`. Fullwidth digits count as digits and invisible characters are
//! skipped. Each detector then matches a run of consecutive groups; the
//! earliest, longest match wins, so `status 200 4111 1111 1111 1111` still
//! yields the card. Bare digit runs are only taken as cards (Luhn-checked) or as
//! `+`-prefixed phone numbers: a bare 10-digit run is as likely a timestamp.

use super::Hit;
use crate::redact::DetectorKind;
use crate::redact::text::{Ch, Res, Window, next_visible, prev_visible};

/// Groups read at most.
const MAX_GROUPS: usize = 12;
/// Digits read at most.
const MAX_DIGITS: usize = 32;
/// Longest ASCII digit run a trigger scans back over (a card has 19 digits).
pub(crate) const MAX_RUN: usize = 19;

/// The separator before a group: up to two characters (0 = none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sep([u8; 2]);

impl Sep {
    fn is(self, s: &[u8]) -> bool {
        let n = if self.0[1] == 0 { 1 } else { 2 };
        self.0[..n] == *s
    }
    fn has(self, c: u8) -> bool {
        self.0[0] == c || self.0[1] == c
    }
    fn single(self) -> Option<u8> {
        (self.0[1] == 0).then_some(self.0[0])
    }
    /// Ends with an opening parenthesis: `(` or ` (`.
    fn opens(self) -> bool {
        let last = if self.0[1] != 0 { self.0[1] } else { self.0[0] };
        last == b'('
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Group {
    /// Byte range of the group in the window.
    start: usize,
    end: usize,
    /// Index of its first digit in `Span::digits` and its digit count.
    d0: u8,
    dn: u8,
    /// Separator before it (none for the first group).
    sep: Sep,
}

/// One numeric span as read from the window.
struct Span {
    digits: [u8; MAX_DIGITS],
    groups: [Group; MAX_GROUPS],
    ng: usize,
    /// Where a `+` or `(` directly before the first digit sits.
    plus: Option<usize>,
    paren: Option<usize>,
    /// The visible character before the span (or its prefix) is a `.`.
    after_dot: bool,
    /// The span was cut short by the limits, or a word character follows it.
    open_tail: bool,
}

impl Span {
    fn digits(&self, g0: usize, g1: usize) -> &[u8] {
        let a = usize::from(self.groups[g0].d0);
        let b = usize::from(self.groups[g1].d0 + self.groups[g1].dn);
        &self.digits[a..b]
    }
    fn dlens(&self, g0: usize, n: usize) -> impl Iterator<Item = usize> + '_ {
        self.groups[g0..g0 + n].iter().map(|g| usize::from(g.dn))
    }
}

/// A number separator: ` - . ( )` (a bit test, not a search).
#[inline(always)]
fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')')
}

/// A numeric trigger at the end of an ASCII digit run (`end` is the first byte
/// after it). Scans back to the run's first digit and reads the span.
pub(crate) fn at_run_end(w: &Window, end: usize) -> Res<Option<Hit>> {
    // The checks below include [`ordinary`], which the scanner's hot loop has
    // already tried for most triggers.
    let mut s = end;
    while s > 0 && w.bytes[s - 1].is_ascii_digit() {
        s -= 1;
        if end - s > MAX_RUN {
            return Ok(None);
        }
    }
    if s == end
        || is_iso_date(w.bytes, s, end)
        || is_short_pair(w.bytes, s, end)
        || !plausible(w.bytes, s)
    {
        return Ok(None);
    }
    analyze(w, s)
}

/// The commonest numbers of logs, recognised from plain bytes without reading
/// the span: an ISO date or a short two-group number (`58.4`, `8653.38`) ending
/// at `end`. `true` only where [`at_run_end`] finds nothing; the scanner calls
/// it inline to skip the call.
#[inline(always)]
pub(crate) fn ordinary(b: &[u8], end: usize) -> bool {
    let mut s = end;
    while s > 0 && end - s < 5 && b[s - 1].is_ascii_digit() {
        s -= 1;
    }
    s < end
        && (s == 0 || !b[s - 1].is_ascii_digit())
        && (is_iso_date(b, s, end) || is_short_pair(b, s, end))
}

mod quick;
mod shapes;
#[cfg(test)]
mod tests;

use quick::{is_iso_date, is_short_pair, plausible};
use shapes::{card, e164, ipv4, nanp, ssn};

/// A numeric trigger at the first character of a number written with fullwidth
/// digits (`start` is its first byte).
pub(crate) fn at_digit(w: &Window, start: usize) -> Res<Option<Hit>> {
    analyze(w, start)
}

fn analyze(w: &Window, s: usize) -> Res<Option<Hit>> {
    let mut span = Span {
        digits: [0; MAX_DIGITS],
        groups: [Group::default(); MAX_GROUPS],
        ng: 0,
        plus: None,
        paren: None,
        after_dot: false,
        open_tail: false,
    };
    if !read(w, s, &mut span)? {
        return Ok(None);
    }
    let span = &span;
    let total = usize::from(span.groups[span.ng - 1].d0 + span.groups[span.ng - 1].dn);
    if total < 8 && span.ng < 4 {
        return Ok(None);
    }
    for g0 in 0..span.ng {
        if g0 > 0 {
            let sep = span.groups[g0].sep;
            if !(sep.has(b' ') || sep.has(b'(')) {
                continue;
            }
        }
        for g1 in (g0..span.ng).rev() {
            if !right_ok(span, g1) {
                continue;
            }
            if let Some(hit) = matches(span, g0, g1) {
                return Ok(Some(hit));
            }
        }
    }
    Ok(None)
}

/// Read the span whose first digit starts at `s` into `span`; `false` when `s`
/// does not start a number (it continues a word or another number).
fn read(w: &Window, s: usize, span: &mut Span) -> Res<bool> {
    // Left context: an optional `+` or `(`, then a non-word character.
    let mut before = prev_visible(w, s, 16);
    match before {
        Some((Ch::Ascii(b'+'), p)) => {
            span.plus = Some(p);
            before = prev_visible(w, p, 16);
        }
        Some((Ch::Ascii(b'('), p)) => {
            span.paren = Some(p);
            before = prev_visible(w, p, 16);
        }
        _ => {}
    }
    if let Some((c, p)) = before {
        if c.is_word() {
            return Ok(false);
        }
        if span.plus.is_none()
            && span.paren.is_none()
            && matches!(c, Ch::Ascii(b) if is_sep(b) || b == b':')
            && matches!(prev_visible(w, p, 16), Some((d, _)) if d.is_digit())
        {
            return Ok(false);
        }
        span.after_dot = c == Ch::Ascii(b'.');
    }

    let bytes = w.bytes;
    let mut i = s;
    let mut nd = 0;
    let mut sep = Sep::default();
    loop {
        // One group of digits (invisible characters inside it are skipped).
        let mut g = Group {
            start: i,
            end: i,
            d0: nd as u8,
            dn: 0,
            sep,
        };
        let mut p = i;
        loop {
            let (d, end) = match bytes.get(p) {
                Some(&b) if b.is_ascii_digit() => (b, p + 1),
                Some(&b) if b < 0x80 => break,
                _ => match next_visible(w, p)? {
                    Some((Ch::Ascii(d), _, ce)) if d.is_ascii_digit() => (d, ce),
                    _ => break,
                },
            };
            if nd == MAX_DIGITS {
                span.open_tail = true;
                break;
            }
            span.digits[nd] = d;
            nd += 1;
            g.dn += 1;
            g.end = end;
            p = end;
        }
        if g.dn == 0 {
            break;
        }
        span.groups[span.ng] = g;
        span.ng += 1;
        if span.open_tail || span.ng == MAX_GROUPS {
            span.open_tail = true;
            break;
        }
        // A separator of one or two characters, then another digit.
        sep = Sep::default();
        let mut j = g.end;
        let mut k = 0;
        let next = loop {
            let (c, cs, ce) = match bytes.get(j) {
                Some(&b) if b < 0x80 => (Ch::Ascii(b), j, j + 1),
                _ => match next_visible(w, j)? {
                    Some(t) => t,
                    None => break None,
                },
            };
            match c {
                Ch::Ascii(c) if k < 2 && is_sep(c) => {
                    sep.0[k] = c;
                    k += 1;
                    j = ce;
                }
                c if k > 0 && c.is_digit() => break Some(cs),
                c if k == 0 && c.is_word() => {
                    span.open_tail = true;
                    break None;
                }
                _ => break None,
            }
        };
        match next {
            Some(n) => i = n,
            None => break,
        }
    }
    Ok(span.ng > 0)
}

/// Whether a match may end after group `g1`: the number must not go on.
fn right_ok(span: &Span, g1: usize) -> bool {
    if g1 + 1 < span.ng {
        !matches!(span.groups[g1 + 1].sep.single(), Some(b'.' | b'-'))
    } else {
        !span.open_tail
    }
}

fn hit(span: &Span, start: usize, g1: usize, kind: DetectorKind) -> Option<Hit> {
    Some(Hit {
        start,
        end: span.groups[g1].end,
        kind,
    })
}

fn matches(span: &Span, g0: usize, g1: usize) -> Option<Hit> {
    let first = g0 == 0;
    let plus = if first { span.plus } else { None };
    let paren = if first { span.paren } else { None };
    let n = g1 - g0 + 1;
    let start = span.groups[g0].start;
    let mut sep_buf = [Sep::default(); MAX_GROUPS];
    for (k, g) in (g0 + 1..=g1).enumerate() {
        sep_buf[k] = span.groups[g].sep;
    }
    let seps = &sep_buf[..n - 1];
    let digits = span.digits(g0, g1);

    if plus.is_none() && paren.is_none() {
        if n == 4 && !(first && span.after_dot) && ipv4(span, g0, seps) {
            return hit(span, start, g1, DetectorKind::Ipv4);
        }
        if n == 3 && ssn(span, g0, seps, digits) {
            return hit(span, start, g1, DetectorKind::UsSsn);
        }
        if card(span, g0, n, seps, digits) {
            return hit(span, start, g1, DetectorKind::CreditCard);
        }
    }
    if plus.is_none() {
        let open = paren.is_some() || (!first && span.groups[g0].sep.opens());
        if nanp(span, g0, n, seps, digits, open) {
            let s = paren.unwrap_or(start);
            return hit(span, s, g1, DetectorKind::Phone);
        }
    }
    if let Some(p) = plus
        && e164(seps, digits)
    {
        return hit(span, p, g1, DetectorKind::Phone);
    }
    None
}
