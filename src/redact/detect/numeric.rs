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
use crate::redact::validate::luhn;

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

const SEPS: &[u8] = b" -.()";

/// A numeric trigger at the end of an ASCII digit run (`end` is the first byte
/// after it). Scans back to the run's first digit and reads the span.
pub(crate) fn at_run_end(w: &Window, end: usize) -> Res<Option<Hit>> {
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

/// Exactly two ASCII digit groups with fewer than 13 digits and nothing before
/// them that starts a phone number (`58.4 MB`, `$8653.38 `, `INV-2024-146546 `,
/// `took 12.345s`): no detector accepts that (IPv4 needs four groups, the
/// others at least three or 13 digits).
#[inline]
fn is_short_pair(b: &[u8], s: usize, end: usize) -> bool {
    if s > 0 && matches!(b[s - 1], b'+' | b'(' | 0x80..) {
        return false;
    }
    let Some(&sep) = b.get(end) else { return false };
    if !SEPS.contains(&sep) {
        return false;
    }
    let mut e = end + 1;
    while b.get(e).is_some_and(u8::is_ascii_digit) {
        e += 1;
    }
    let digits = (end - s) + (e - end - 1);
    if e == end + 1 || digits >= 13 {
        return false;
    }
    // The span must stop here: no separator followed by another digit, no
    // non-ASCII byte that could hide one.
    match (b.get(e), b.get(e + 1), b.get(e + 2)) {
        (Some(&t), _, _) if t >= 0x80 => false,
        (Some(t), Some(&u), _) if SEPS.contains(t) && (u.is_ascii_digit() || u >= 0x80) => false,
        (Some(t), Some(u), Some(&v))
            if SEPS.contains(t) && SEPS.contains(u) && (v.is_ascii_digit() || v >= 0x80) =>
        {
            false
        }
        (Some(t), Some(u), None) if SEPS.contains(t) && SEPS.contains(u) => false,
        (Some(t), None, _) if SEPS.contains(t) => false,
        (None, _, _) => false,
        _ => true,
    }
}

/// `YYYY-MM-DD` followed by something that ends the number (`T`, `"`, `,`, …):
/// the most common number in logs, and never a detection (no detector accepts
/// groups 4-2-2). A date followed by a separator and more digits takes the
/// general path.
#[inline]
fn is_iso_date(b: &[u8], s: usize, end: usize) -> bool {
    let Some(t) = b.get(end..end + 7) else {
        return false;
    };
    let d = |c: u8| c.is_ascii_digit();
    end - s == 4
        && t[0] == b'-'
        && d(t[1])
        && d(t[2])
        && t[3] == b'-'
        && d(t[4])
        && d(t[5])
        && !d(t[6])
        && !SEPS.contains(&t[6])
        && t[6] < 0x80
        && !(s > 0 && matches!(b[s - 1], b'+' | b'(' | 0x80..))
}

/// A quick look at a plain-ASCII span that rules out most ordinary numbers
/// (dates, times, versions, prices, counters) before the full reading: `false`
/// only when no detector could match any run of its groups. Anything unusual
/// (non-ASCII, a `+` or `(` before it, the end of the window) says `true`.
fn plausible(b: &[u8], s: usize) -> bool {
    if s > 0 && matches!(b[s - 1], b'+' | b'(' | 0x80..) {
        return true;
    }
    let mut lens = [0usize; MAX_GROUPS];
    let mut dot_after = [false; MAX_GROUPS];
    let mut breaks = [false; MAX_GROUPS];
    let mut ng = 0;
    let mut p = s;
    loop {
        let from = p;
        while b.get(p).is_some_and(u8::is_ascii_digit) {
            p += 1;
        }
        let Some(&c0) = b.get(p) else { return true };
        if c0 >= 0x80 || ng == MAX_GROUPS {
            return true;
        }
        lens[ng] = p - from;
        ng += 1;
        if !SEPS.contains(&c0) {
            break;
        }
        let Some(&c1) = b.get(p + 1) else { return true };
        let (next, brk) = if c1.is_ascii_digit() {
            (p + 1, matches!(c0, b' ' | b'('))
        } else if SEPS.contains(&c1) {
            match b.get(p + 2) {
                None => return true,
                Some(&c2) if c2 >= 0x80 => return true,
                Some(c2) if c2.is_ascii_digit() => (
                    p + 2,
                    matches!(c0, b' ' | b'(') || matches!(c1, b' ' | b'('),
                ),
                Some(_) => break,
            }
        } else if c1 >= 0x80 {
            return true;
        } else {
            break;
        };
        dot_after[ng - 1] = c0 == b'.';
        if ng < MAX_GROUPS {
            breaks[ng] = brk;
        }
        p = next;
    }
    let mut digits = 0;
    for g0 in (0..ng).rev() {
        digits += lens[g0];
        if g0 > 0 && !breaks[g0] {
            continue;
        }
        let (l, rest) = (lens[g0], ng - g0);
        if (rest >= 4 && dot_after[g0])
            || (l == 3 && rest >= 3)
            || (l == 1 && rest >= 4)
            || (digits >= 13 && (l == 4 || l >= 13))
        {
            return true;
        }
    }
    false
}

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
            && matches!(c, Ch::Ascii(b) if SEPS.contains(&b) || b == b':')
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
                Ch::Ascii(c) if k < 2 && SEPS.contains(&c) => {
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

/// A dotted quad. The unspecified (`0.0.0.0`), loopback (`127.0.0.0/8`) and
/// broadcast (`255.255.255.255`) addresses identify nobody and are left alone.
fn ipv4(span: &Span, g0: usize, seps: &[Sep]) -> bool {
    if !seps.iter().all(|s| s.is(b".")) {
        return false;
    }
    let mut octets = [0u32; 4];
    for (k, g) in (g0..g0 + 4).enumerate() {
        let d = span.digits(g, g);
        if d.is_empty() || d.len() > 3 {
            return false;
        }
        octets[k] = d.iter().fold(0u32, |v, &b| v * 10 + u32::from(b - b'0'));
        if octets[k] > 255 {
            return false;
        }
    }
    !(octets == [0; 4] || octets[0] == 127 || octets == [255; 4])
}

fn ssn(span: &Span, g0: usize, seps: &[Sep], d: &[u8]) -> bool {
    let shape = span.dlens(g0, 3).eq([3, 2, 4]);
    let sep_ok = seps[0] == seps[1] && (seps[0].is(b"-") || seps[0].is(b" "));
    shape
        && sep_ok
        && &d[..3] != b"000"
        && &d[..3] != b"666"
        && d[0] != b'9'
        && &d[3..5] != b"00"
        && &d[5..] != b"0000"
}

fn card(span: &Span, g0: usize, n: usize, seps: &[Sep], d: &[u8]) -> bool {
    let len = d.len();
    if !(13..=19).contains(&len) {
        return false;
    }
    if n > 1 {
        if !seps.iter().all(|s| *s == seps[0]) || !(seps[0].is(b" ") || seps[0].is(b"-")) {
            return false;
        }
        let last = usize::from(span.groups[g0 + n - 1].dn);
        let fours = span.dlens(g0, n - 1).all(|s| s == 4) && (1..=4).contains(&last);
        let amex = n == 3 && (span.dlens(g0, 3).eq([4, 6, 5]) || span.dlens(g0, 3).eq([4, 6, 4]));
        if !(fours || amex) {
            return false;
        }
    }
    brand_ok(d) && luhn(d)
}

/// Issuer prefix and length rules for Visa, Mastercard, Amex, Discover, JCB.
fn brand_ok(d: &[u8]) -> bool {
    let len = d.len();
    let p = |k: usize| {
        d[..k]
            .iter()
            .fold(0u32, |v, &b| v * 10 + u32::from(b - b'0'))
    };
    match d[0] {
        b'4' => matches!(len, 13 | 16 | 19),
        b'5' => (51..=55).contains(&p(2)) && len == 16,
        b'2' => (2221..=2720).contains(&p(4)) && len == 16,
        b'3' => {
            (matches!(p(2), 34 | 37) && len == 15) || ((3528..=3589).contains(&p(4)) && len >= 16)
        }
        b'6' => {
            (p(4) == 6011
                || p(2) == 65
                || (644..=649).contains(&p(3))
                || (622126..=622925).contains(&p(6)))
                && len >= 16
        }
        _ => false,
    }
}

fn nanp(span: &Span, g0: usize, n: usize, seps: &[Sep], d: &[u8], open: bool) -> bool {
    let valid = |area: &[u8]| area[0] >= b'2' && area[3] >= b'2';
    let plain = |s: Sep| s.is(b"-") || s.is(b".") || s.is(b" ");
    if n == 3 && span.dlens(g0, 3).eq([3, 3, 4]) && valid(d) {
        if open {
            return (seps[0].is(b")") || seps[0].is(b") ") || seps[0].is(b")-")) && plain(seps[1]);
        }
        return seps[0] == seps[1] && plain(seps[0]);
    }
    if n == 4 && span.dlens(g0, 4).eq([1, 3, 3, 4]) && d[0] == b'1' && valid(&d[1..]) {
        if seps[0].is(b" (") {
            return (seps[1].is(b")") || seps[1].is(b") ")) && plain(seps[2]);
        }
        return plain(seps[0]) && seps[1] == seps[0] && seps[2] == seps[0];
    }
    false
}

fn e164(seps: &[Sep], d: &[u8]) -> bool {
    const OK: [&[u8]; 8] = [b" ", b"-", b".", b" (", b"(", b")", b") ", b")-"];
    (8..=15).contains(&d.len()) && d[0] != b'0' && seps.iter().all(|s| OK.iter().any(|o| s.is(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the detector the way the scanner does: at the end of the first ASCII
    /// digit run, or at a fullwidth first digit.
    pub(crate) fn find(s: &str) -> Option<(String, DetectorKind)> {
        let w = Window::new(s.as_bytes(), true);
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let hit = if b[i].is_ascii_digit() {
                let mut e = i;
                while e < b.len() && b[e].is_ascii_digit() {
                    e += 1;
                }
                let h = at_run_end(&w, e).unwrap();
                i = e;
                h
            } else if b[i] == 0xEF {
                let h = at_digit(&w, i).unwrap();
                i += 1;
                h
            } else {
                i += 1;
                None
            };
            if let Some(h) = hit {
                return Some((s[h.start..h.end].to_string(), h.kind));
            }
        }
        None
    }

    #[test]
    fn positives() {
        use DetectorKind::*;
        let cases = [
            ("call +44 20 7946 0958 now", "+44 20 7946 0958", Phone),
            ("tel:+14155552671.", "+14155552671", Phone),
            ("+33 1 23 45 67 89", "+33 1 23 45 67 89", Phone),
            ("+1 (555) 234-5678", "+1 (555) 234-5678", Phone),
            ("phone (555) 234-5678", "(555) 234-5678", Phone),
            ("x 555-234-5678 y", "555-234-5678", Phone),
            ("555.234.5678", "555.234.5678", Phone),
            ("1-800-555-2345", "1-800-555-2345", Phone),
            ("ssn 123-45-6789,", "123-45-6789", UsSsn),
            (
                "card 4111 1111 1111 1111 ok",
                "4111 1111 1111 1111",
                CreditCard,
            ),
            ("4111111111111111", "4111111111111111", CreditCard),
            ("5555-5555-5555-4444", "5555-5555-5555-4444", CreditCard),
            ("amex 3782 822463 10005", "3782 822463 10005", CreditCard),
            ("6011111111111117", "6011111111111117", CreditCard),
            ("jcb 3530111333300000", "3530111333300000", CreditCard),
            ("2221000000000009", "2221000000000009", CreditCard),
            (
                "status 200 4111 1111 1111 1111",
                "4111 1111 1111 1111",
                CreditCard,
            ),
            ("from 10.1.2.3:8080", "10.1.2.3", Ipv4),
            ("ip=192.168.0.1.", "192.168.0.1", Ipv4),
            (
                "４１１１ １１１１ １１１１ １１１１",
                "４１１１ １１１１ １１１１ １１１１",
                CreditCard,
            ),
            (
                "4111\u{200B}1111\u{200B}1111\u{200B}1111",
                "4111\u{200B}1111\u{200B}1111\u{200B}1111",
                CreditCard,
            ),
            ("１２３-４５-６７８９", "１２３-４５-６７８９", UsSsn),
        ];
        for (input, want, kind) in cases {
            assert_eq!(find(input), Some((want.to_string(), kind)), "{input}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The quick pre-check never rules out a span the full reading accepts.
        #[test]
        fn the_quick_check_is_sound(atoms in proptest::collection::vec(proptest::sample::select(vec![
            "0", "1", "2", "4", "5", "9", "12", "123", "4111", "555", " ", "-", ".", "(", ")", "+", "x", ",", ":",
            "2024", "05", "T", "-05-", "\"",
        ]), 0..40)) {
            let s = atoms.concat();
            let b = s.as_bytes();
            let w = Window::new(b, true);
            for i in 0..b.len() {
                if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()) {
                    let mut end = i;
                    while end < b.len() && b[end].is_ascii_digit() {
                        end += 1;
                    }
                    if !plausible(b, i) || is_iso_date(b, i, end) || is_short_pair(b, i, end) {
                        proptest::prop_assert_eq!(analyze(&w, i).unwrap(), None, "{} at {}", s, i);
                    }
                }
            }
        }
    }

    #[test]
    fn ordinary_numbers_are_left_alone() {
        for s in [
            "2024-05-14T09:21:33.482Z",
            "2024-05-14,2024-05-15\"2024-05-16",
            "2024-05-14 09:21:33,482",
            "[1715678493.123456]",
            "1715678493",
            "v1.2.3",
            "version 1.27.3",
            "1.3.6.1.4.1.2021",
            "port 8080, pid 4312",
            "total=$1,249.99",
            "took 12.4s",
            "id 4111111111111112",
            "uuid 67c76fb0-08f8-6beb-b273-7f6a6f0fb23c",
            "sha 3f5c9d2e1b4a7c6d8e9f0a1b2c3d4e5f6a7b8c9d",
            "000-12-3456 666-12-3456 912-34-5678 123-00-4567",
            "123-456-7890",
            "055-234-5678",
            "a10.1.2.3",
            "10.1.2.3.4",
            "300.1.2.3",
            "listening on 0.0.0.0:443, 127.0.0.1:8080, 255.255.255.255",
            "+0 12 345 6789",
            "ISBN 978-3-16-148410-0",
            "INV-2024-004821",
            "1234 5678 9012 3456",
        ] {
            assert_eq!(find(s), None, "{s}");
        }
    }
}
