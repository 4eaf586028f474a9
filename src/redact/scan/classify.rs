//! Byte classes and trigger masks for 64-byte blocks: the data-parallel half
//! of the scanner. Pure functions of the bytes; no state, and no detector
//! runs here (the one detector rule consulted is which key endings can name
//! a credential).

use wide::u8x16;

use crate::redact::detect::assign;

/// Block size.
pub(crate) const BLOCK: usize = 64;

// Byte classes (bit indices).
pub(crate) const D: usize = 0; // digit
pub(crate) const W: usize = 1; // word: alnum or _
pub(crate) const X: usize = 2; // hex digit
pub(crate) const U: usize = 3; // upper-case letter
pub(crate) const C: usize = 4; // :
pub(crate) const SEP: usize = 6; // number separator: space - . ( )
pub(crate) const ZWF: usize = 7; // lead byte of a zero-width, soft-hyphen or fullwidth character
pub(crate) const SPECIAL: usize = 8; // @ or 0xEF
pub(crate) const OP: usize = 9; // = or :
pub(crate) const QS: usize = 10; // quote or space between a key and its operator
pub(crate) const SL: usize = 11; // /
#[cfg(test)]
pub(crate) const PAIR: usize = 12; // with the byte before it, how a credential keyword ends

/// Trigger kinds, in the order detectors run at one position.
pub(crate) const NUM: u8 = 1;
pub(crate) const IBAN: u8 = 2;
pub(crate) const COLON: u8 = 4;
pub(crate) const URL: u8 = 8;
pub(crate) const ASSIGN: u8 = 16;
pub(crate) const AT: u8 = 32;

/// Classes of one byte on its own (every class but [`PAIR`]).
const fn single_class(b: u8) -> u16 {
    const fn on(c: usize, yes: bool) -> u16 {
        (yes as u16) << c
    }
    on(D, b.is_ascii_digit())
        | on(W, b.is_ascii_alphanumeric() || b == b'_')
        | on(X, b.is_ascii_hexdigit())
        | on(U, b.is_ascii_uppercase())
        | on(C, b == b':')
        | on(SEP, matches!(b, b' ' | b'-' | b'.' | b'(' | b')'))
        | on(ZWF, matches!(b, 0xE2 | 0xEF | 0xC2))
        | on(SPECIAL, matches!(b, b'@' | 0xEF))
        | on(OP, matches!(b, b'=' | b':'))
        | on(QS, matches!(b, b'"' | b'\'' | b' '))
        | on(SL, b == b'/')
}

static CLASS: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = single_class(i as u8);
        i += 1;
    }
    t
};

/// For the last letter of a credential keyword, the set of letters that may
/// precede it (bits of `PREV_BIT`); `assign::KEYWORD_ENDINGS`, any case.
static LAST: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let lower = (i as u8).to_ascii_lowercase();
        t[i] = match lower {
            b'd' => PREV_R | PREV_W,
            b't' | b'y' => PREV_E,
            b'n' => PREV_E | PREV_O,
            b's' => PREV_L,
            _ => 0,
        };
        i += 1;
    }
    t
};
const PREV_R: u8 = 1;
const PREV_W: u8 = 2;
const PREV_E: u8 = 4;
const PREV_L: u8 = 8;
const PREV_O: u8 = 16;
/// Marks a quote or blank in `PREV_BIT` (no letter of `LAST` has it).
const QUOTE: u8 = 128;
/// The bit of a letter that may come before the last letter of a keyword,
/// and [`QUOTE`] for a quote or blank between a key and its operator.
static PREV_BIT: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match (i as u8).to_ascii_lowercase() {
            b'r' => PREV_R,
            b'w' => PREV_W,
            b'e' => PREV_E,
            b'l' => PREV_L,
            b'o' => PREV_O,
            b'"' | b'\'' | b' ' => QUOTE,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// Whether `before, b` are the last two letters of a credential keyword
/// (`assign::KEYWORD_ENDINGS`, any case).
#[inline(always)]
pub(crate) fn is_pair(before: Option<u8>, b: u8) -> bool {
    LAST[usize::from(b)] & PREV_BIT[usize::from(before.unwrap_or(0))] != 0
}

/// Whether the operator at `p` follows a keyword ending: `…rd=`, `…ey":`.
/// `p` is at least 3.
#[inline(always)]
fn after_keyword(bytes: &[u8], p: usize) -> bool {
    let (a, b, q) = (bytes[p - 3], bytes[p - 2], bytes[p - 1]);
    let prev = |c: u8| PREV_BIT[usize::from(c)];
    let last = |c: u8| LAST[usize::from(c)];
    // Branch-free: the operators of a block are too irregular to predict.
    let quoted = 0u8.wrapping_sub(prev(q) >> 7);
    (last(q) & prev(b)) | (quoted & last(b) & prev(a)) != 0
}

/// For an operator at `p` after a keyword ending: whether its key may name a
/// credential at all (`assign::key_may_name_credential`). The key ends at the
/// operator, or before the quote or blank between them.
#[inline(never)]
pub(crate) fn key_may_name_credential(bytes: &[u8], p: usize) -> bool {
    let glued = p >= 2 && is_pair(Some(bytes[p - 2]), bytes[p - 1]);
    let key_end = if glued { p } else { p.saturating_sub(1) };
    assign::key_may_name_credential(bytes, key_end)
}

/// Class bits of byte `b` preceded by `before` (`None`: no byte, before the
/// stream or after its end).
#[cfg(test)]
pub(crate) fn class_bits(before: Option<u8>, b: Option<u8>) -> u16 {
    let Some(b) = b else { return 0 };
    CLASS[usize::from(b)] | u16::from(is_pair(before, b)) << PAIR
}

#[inline(always)]
fn in_range(v: u8x16, lo: u8, n: u8) -> u8x16 {
    let s = v - u8x16::splat(lo);
    s.min(u8x16::splat(n - 1)).simd_eq(s)
}

#[inline(always)]
fn eq(v: u8x16, b: u8) -> u8x16 {
    v.simd_eq(u8x16::splat(b))
}

/// The class masks of one block, bit `i` for byte `i` (zero for bytes past the
/// end of what has arrived).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Classes {
    /// Digits.
    pub d: u64,
    /// Word bytes: letters, digits, `_`.
    pub w: u64,
    /// Hex digits.
    pub x: u64,
    /// Number separators: space `-` `.` `(` `)`.
    pub sep: u64,
    /// Colons.
    pub c: u64,
    /// Operators: `=` and `:`.
    pub op: u64,
    /// The rare bytes `@`, 0xC2, 0xCF, 0xE2, 0xEF (split one by one later).
    pub rare: u64,
    /// Slashes.
    pub sl: u64,
}

/// Vector masks of 16 bytes, in the order of the fields of [`Classes`].
#[inline(always)]
fn classify16(bytes: &[u8; 16]) -> [u64; 8] {
    let v = u8x16::new(*bytes);
    let lc = v | u8x16::splat(0x20);
    let d = in_range(v, b'0', 10);
    let letter = lc - u8x16::splat(b'a');
    let colon = eq(v, b':');
    let m = |x: u8x16| u64::from(x.to_bitmask());
    [
        m(d),
        m(d | letter.min(u8x16::splat(25)).simd_eq(letter) | eq(v, b'_')),
        m(d | letter.min(u8x16::splat(5)).simd_eq(letter)),
        // `(` and `)` differ in the last bit, `-` and `.` are neighbours.
        m(eq(v, b' ') | eq(v | u8x16::splat(1), b')') | in_range(v, b'-', 2)),
        m(colon),
        m(colon | eq(v, b'=')),
        // `lc` folds 0xCF onto 0xEF and 0xC2 onto 0xE2; the split sorts them out.
        m(eq(v, b'@') | eq(lc, 0xEF) | eq(lc, 0xE2)),
        m(eq(v, b'/')),
    ]
}

/// The classes of the block of `bytes` starting at `start` (bytes past the
/// end read as "no byte", like the end of the stream).
#[inline(always)]
pub(crate) fn classify(bytes: &[u8], start: usize) -> Classes {
    let padded: [u8; BLOCK];
    let block: &[u8; BLOCK] = match bytes.get(start..start + BLOCK) {
        Some(b) => b.try_into().expect("a whole block"),
        None => {
            let mut b = [0u8; BLOCK];
            if let Some(rest) = bytes.get(start..) {
                b[..rest.len()].copy_from_slice(rest);
            }
            padded = b;
            &padded
        }
    };
    let (a, rest) = block.split_first_chunk::<16>().expect("16 bytes");
    let (b, rest) = rest.split_first_chunk::<16>().expect("16 bytes");
    let (c, d) = rest.split_first_chunk::<16>().expect("16 bytes");
    let d: &[u8; 16] = d.try_into().expect("16 bytes");
    let k = [classify16(a), classify16(b), classify16(c), classify16(d)];
    let join = |i: usize| k[0][i] | k[1][i] << 16 | k[2][i] << 32 | k[3][i] << 48;
    Classes {
        d: join(0),
        w: join(1),
        x: join(2),
        sep: join(3),
        c: join(4),
        op: join(5),
        rare: join(6),
        sl: join(7),
    }
}

/// Trigger masks of one block, bit `i` for absolute position `block + i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Triggers {
    /// One mask per kind, in kind-bit order.
    pub kinds: [u64; 6],
    /// A good digit run continues past the block.
    pub num_carry: bool,
    /// A good hex run continues past the block.
    pub hex_carry: bool,
    /// Union of the enabled kinds' masks.
    pub union: u64,
}

/// Compute the triggers of the block starting at `start` in `bytes`, whose
/// classes are `cur`; `prev` and `next` are the classes of the blocks before
/// and after it (all zero before the start of the stream and past what has
/// arrived). The carries say whether a good digit or hex run reaches into
/// this block.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn block_triggers(
    bytes: &[u8],
    start: usize,
    prev: &Classes,
    cur: &Classes,
    next: &Classes,
    num_carry: bool,
    hex_carry: bool,
    enabled: u8,
) -> Triggers {
    let Classes {
        d,
        w,
        x,
        sep,
        c,
        op,
        rare,
        sl,
    } = *cur;
    // Split the rare bytes (few, if any) by class.
    let (mut special, mut zwf) = (0u64, 0u64);
    let mut r = rare;
    while r != 0 {
        let i = r.trailing_zeros();
        r &= r - 1;
        let cls = bytes
            .get(start + i as usize)
            .map_or(0, |&b| CLASS[usize::from(b)]);
        special |= u64::from(cls >> SPECIAL & 1) << i;
        zwf |= u64::from(cls >> ZWF & 1) << i;
    }
    // Bit `i` of `shr(m, n)` is bit `i + n` of the stream; of `shl(m, n)`,
    // bit `i - n`.
    let shr = |mask: u64, next: u64, n: u32| (mask >> n) | (next << (64 - n));
    let shl = |mask: u64, before: u64, n: u32| (mask << n) | (before >> (64 - n));

    // Numbers: runs of digits that start a number, ending before a non-word byte
    // and followed by a separator and another digit, by a zero-width or fullwidth
    // character, or at least 9 digits long.
    let w1 = shl(w, prev.w, 1);
    let d1 = shl(d, prev.d, 1);
    let c1 = shl(c, prev.c, 1);
    let cont = (shl(sep, prev.sep, 1) | c1) & shl(d, prev.d, 2);
    let starts = d & !w1 & !cont;
    let (sum, num_carry) = d.overflowing_add(starts | u64::from(num_carry));
    let after = sum & !d;
    let d_next = shr(d, next.d, 1);
    let sep_digit = sep & (d_next | (shr(sep, next.sep, 1) & shr(d, next.d, 2)));
    // Nine digits before: AND of the nine previous bits, by doubling over the
    // previous block and this one as one 128-bit word.
    let e = u128::from(d) << 64 | u128::from(prev.d);
    let a1 = e & (e << 1);
    let a2 = a1 & (a1 << 2);
    let a4 = a2 & (a2 << 4);
    let long = (((a4 << 1) & (e << 9)) >> 64) as u64;
    let num = after & !w & (sep_digit | zwf | long);

    // IBAN: two letters then two digits, not inside a word; the letters must
    // be upper case, checked byte by byte for the few candidates.
    let letters = w & !d;
    let mut iban = 0u64;
    let mut cand = letters
        & shr(letters, next.w & !next.d, 1)
        & shr(d, next.d, 2)
        & shr(d, next.d, 3)
        & !w1
        & enabled_mask(enabled, IBAN);
    while cand != 0 {
        let i = cand.trailing_zeros();
        cand &= cand - 1;
        let p = start + i as usize;
        if bytes[p].is_ascii_uppercase() && bytes.get(p + 1).is_some_and(u8::is_ascii_uppercase) {
            iban |= 1 << i;
        }
    }

    // IPv6: the first colon of a token whose hex run follows a byte that is not
    // a word byte or colon, then a hex digit or colon; or `::` alone.
    let not_glued = !(w1 | c1);
    let (hsum, hex_carry) = x.overflowing_add((x & not_glued) | u64::from(hex_carry));
    let hafter = hsum & !x;
    let c_next = shr(c, next.c, 1);
    let colon = c & ((hafter & (shr(x, next.x, 1) | c_next)) | (not_glued & c_next));

    let url = c & shr(sl, next.sl, 1) & shr(sl, next.sl, 2);

    // Credential assignments are rare enough to confirm byte by byte. A
    // keyword ends in a letter, or in a letter and a quote or blank: an
    // operator right after a digit (times, ratios) cannot follow one.
    let mut assign = 0u64;
    let mut ops = op & !d1 & enabled_mask(enabled, ASSIGN);
    while ops != 0 {
        let i = ops.trailing_zeros() as usize;
        ops &= ops - 1;
        let p = start + i;
        let pair = if p >= 3 {
            after_keyword(bytes, p)
        } else {
            let byte = |back: usize| p.checked_sub(back).and_then(|i| bytes.get(i).copied());
            let pair = |at: usize| byte(at).is_some_and(|b| is_pair(byte(at + 1), b));
            let qs = byte(1).is_some_and(|b| CLASS[usize::from(b)] >> QS & 1 == 1);
            pair(1) || (qs && pair(2))
        };
        // Few operators pass the pair check; their keys are read here.
        let ok = pair && key_may_name_credential(bytes, p);
        assign |= u64::from(ok) << i;
    }
    let kinds = [num, iban, colon, url, assign, special];
    let mut union = 0;
    for (k, mask) in kinds.iter().enumerate() {
        union |= mask & enabled_mask(enabled, 1 << k);
    }
    Triggers {
        kinds,
        num_carry,
        hex_carry,
        union,
    }
}

/// All ones when `kind` is among `enabled`, else zero.
#[inline(always)]
fn enabled_mask(enabled: u8, kind: u8) -> u64 {
    0u64.wrapping_sub(u64::from(enabled & kind != 0))
}
