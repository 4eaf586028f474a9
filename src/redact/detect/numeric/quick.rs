//! Cheap exact pre-checks on plain-ASCII spans that rule out the ordinary
//! numbers of logs (dates, decimals, prices, versions) before the full reading.
//! Each may only answer "no detection here" when the full reading would agree;
//! a property test holds them to that.

use super::{MAX_GROUPS, is_sep};

/// Exactly two ASCII digit groups with fewer than 13 digits and no `+` before
/// them (`58.4 MB`, `$8653.38 `, `INV-2024-146546 `, `took 12.345s`,
/// `(45.6 MB)`): no detector accepts that (IPv4 needs four groups, E.164 a
/// `+`, the others at least three groups or 13 digits).
#[inline]
pub(super) fn is_short_pair(b: &[u8], s: usize, end: usize) -> bool {
    if s > 0 && matches!(b[s - 1], b'+' | 0x80..) {
        return false;
    }
    let Some(&sep) = b.get(end) else { return false };
    if !is_sep(sep) {
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
        (Some(t), Some(&u), _) if is_sep(*t) && (u.is_ascii_digit() || u >= 0x80) => false,
        (Some(t), Some(u), Some(&v))
            if is_sep(*t) && is_sep(*u) && (v.is_ascii_digit() || v >= 0x80) =>
        {
            false
        }
        (Some(t), Some(u), None) if is_sep(*t) && is_sep(*u) => false,
        (Some(t), None, _) if is_sep(*t) => false,
        (None, _, _) => false,
        _ => true,
    }
}

/// `YYYY-MM-DD` followed by something that ends the number (`T`, `"`, `,`, …):
/// the most common number in logs, and never a detection (no detector accepts
/// groups 4-2-2). A date followed by a separator and more digits takes the
/// general path.
#[inline]
pub(super) fn is_iso_date(b: &[u8], s: usize, end: usize) -> bool {
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
        && !is_sep(t[6])
        && t[6] < 0x80
        && !(s > 0 && matches!(b[s - 1], b'+' | 0x80..))
}

/// A quick look at a plain-ASCII span that rules out most ordinary numbers
/// (dates, times, versions, prices, counters) before the full reading: `false`
/// only when no detector could match any run of its groups. Anything unusual
/// (non-ASCII, a `+` or `(` before it, the end of the window) says `true`.
pub(super) fn plausible(b: &[u8], s: usize) -> bool {
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
        if !is_sep(c0) {
            break;
        }
        let Some(&c1) = b.get(p + 1) else { return true };
        let (next, brk) = if c1.is_ascii_digit() {
            (p + 1, matches!(c0, b' ' | b'('))
        } else if is_sep(c1) {
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
