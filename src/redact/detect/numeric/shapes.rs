//! The shapes each numeric detector accepts, over a run of groups of a span:
//! dotted quads, SSNs, payment cards (issuer rules and Luhn), NANP and E.164
//! phone numbers.

use super::{Sep, Span};
use crate::redact::validate::luhn;

/// A dotted quad. The unspecified (`0.0.0.0`), loopback (`127.0.0.0/8`) and
/// broadcast (`255.255.255.255`) addresses identify nobody and are left alone.
pub(super) fn ipv4(span: &Span, g0: usize, seps: &[Sep]) -> bool {
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

pub(super) fn ssn(span: &Span, g0: usize, seps: &[Sep], d: &[u8]) -> bool {
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

pub(super) fn card(span: &Span, g0: usize, n: usize, seps: &[Sep], d: &[u8]) -> bool {
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
pub(super) fn brand_ok(d: &[u8]) -> bool {
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

pub(super) fn nanp(span: &Span, g0: usize, n: usize, seps: &[Sep], d: &[u8], open: bool) -> bool {
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

pub(super) fn e164(seps: &[Sep], d: &[u8]) -> bool {
    const OK: [&[u8]; 8] = [b" ", b"-", b".", b" (", b"(", b")", b") ", b")-"];
    (8..=15).contains(&d.len()) && d[0] != b'0' && seps.iter().all(|s| OK.iter().any(|o| s.is(o)))
}
