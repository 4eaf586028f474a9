//! Byte classes and trigger masks for 64-byte blocks: the data-parallel half
//! of the scanner. Pure functions of the bytes; no state, no detectors.

use wide::u8x16;

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

/// The class masks of one block that the next block needs, bit `i` for byte `i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Masks {
    d: u64,
    w: u64,
    sep: u64,
    c: u64,
}

/// Vector masks of 16 bytes: digits, word bytes, hex digits, number
/// separators, colons, operators (`=` `:`), and the rare bytes `@`, 0xC2,
/// 0xE2, 0xEF (split one by one afterwards).
#[inline(always)]
pub(crate) fn classify16(bytes: &[u8; 16]) -> [u16; 7] {
    let v = u8x16::new(*bytes);
    let lc = v | u8x16::splat(0x20);
    let d = in_range(v, b'0', 10);
    let colon = eq(v, b':');
    let m = |x: u8x16| x.to_bitmask() as u16;
    [
        m(d),
        m(d | in_range(lc, b'a', 26) | eq(v, b'_')),
        m(d | in_range(lc, b'a', 6)),
        m(eq(v, b' ') | eq(v, b'.') | eq(v, b'-') | eq(v, b'(') | eq(v, b')')),
        m(colon),
        m(colon | eq(v, b'=')),
        // `lc` folds 0xCF onto 0xEF and 0xC2 onto 0xE2; the split sorts them out.
        m(eq(v, b'@') | eq(lc, 0xEF) | eq(lc, 0xE2)),
    ]
}

/// Bytes `from..from + 16` of `bytes`, zero past the end.
#[inline(always)]
fn chunk16(bytes: &[u8], from: usize) -> [u8; 16] {
    if let Some(c) = bytes.get(from..from + 16) {
        return c.try_into().expect("16 bytes");
    }
    let mut c = [0u8; 16];
    if from < bytes.len() {
        c[..bytes.len() - from].copy_from_slice(&bytes[from..]);
    }
    c
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
    /// This block's class masks: the next block's `prev`.
    pub masks: Masks,
    /// Union of the enabled kinds' masks.
    pub union: u64,
}

/// Compute the triggers of the block starting at `start` in `bytes` (bytes past
/// the end read as "no byte", like the end of the stream). `prev` are the
/// previous block's masks (all zero at the start of the stream); the carries
/// say whether a good digit or hex run reaches into this block.
#[inline(always)]
pub(crate) fn block_triggers(
    bytes: &[u8],
    start: usize,
    prev: &Masks,
    num_carry: bool,
    hex_carry: bool,
    enabled: u8,
) -> Triggers {
    let [k0, k1, k2, k3] = match bytes.get(start..start + BLOCK) {
        Some(block) => {
            let block: &[u8; BLOCK] = block.try_into().expect("a whole block");
            let (a, rest) = block.split_first_chunk::<16>().expect("16 bytes");
            let (b, rest) = rest.split_first_chunk::<16>().expect("16 bytes");
            let (c, d) = rest.split_first_chunk::<16>().expect("16 bytes");
            let d: &[u8; 16] = d.try_into().expect("16 bytes");
            [classify16(a), classify16(b), classify16(c), classify16(d)]
        }
        None => std::array::from_fn(|i| classify16(&chunk16(bytes, start + 16 * i))),
    };
    let join = |c: usize| {
        u64::from(k0[c]) | u64::from(k1[c]) << 16 | u64::from(k2[c]) << 32 | u64::from(k3[c]) << 48
    };
    let (d, w, x, sep, c, op) = (join(0), join(1), join(2), join(3), join(4), join(5));
    // Split the rare bytes (few, if any) by class.
    let (mut special, mut zwf) = (0u64, 0u64);
    let mut r = join(6);
    while r != 0 {
        let i = r.trailing_zeros();
        r &= r - 1;
        let cls = bytes
            .get(start + i as usize)
            .map_or(0, |&b| CLASS[usize::from(b)]);
        special |= u64::from(cls >> SPECIAL & 1) << i;
        zwf |= u64::from(cls >> ZWF & 1) << i;
    }
    // Classes of the three bytes after the block shift in from the top.
    let next: [u16; 3] = match bytes.get(start + BLOCK..start + BLOCK + 3) {
        Some(t) => [
            CLASS[usize::from(t[0])],
            CLASS[usize::from(t[1])],
            CLASS[usize::from(t[2])],
        ],
        None => std::array::from_fn(|i| {
            bytes
                .get(start + BLOCK + i)
                .map_or(0, |&b| CLASS[usize::from(b)])
        }),
    };
    let ahead =
        |cls: usize| next[0] >> cls & 1 | (next[1] >> cls & 1) << 1 | (next[2] >> cls & 1) << 2;
    let (nd, nw, nx, nsep, nc) = (ahead(D), ahead(W), ahead(X), ahead(SEP), ahead(C));
    let shr = |mask: u64, next: u16, n: u32| (mask >> n) | (u64::from(next) << (64 - n));
    let shl = |mask: u64, before: u64, n: u32| (mask << n) | (before >> (64 - n));

    // Numbers: runs of digits that start a number, ending before a non-word byte
    // and followed by a separator and another digit, by a zero-width or fullwidth
    // character, or at least 9 digits long.
    let w1 = shl(w, prev.w, 1);
    let cont = (shl(sep, prev.sep, 1) | shl(c, prev.c, 1)) & shl(d, prev.d, 2);
    let starts = d & !w1 & !cont;
    let (sum, c1) = d.overflowing_add(starts | u64::from(num_carry));
    let after = sum & !d;
    let sep_digit = sep & (shr(d, nd, 1) | (shr(sep, nsep, 1) & shr(d, nd, 2)));
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
        & shr(letters, nw & !nd, 1)
        & shr(d, nd, 2)
        & shr(d, nd, 3)
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
    let not_glued = !(w1 | shl(c, prev.c, 1));
    let (hsum, c2) = x.overflowing_add((x & not_glued) | u64::from(hex_carry));
    let hafter = hsum & !x;
    let c_next = shr(c, nc, 1);
    let colon = c & ((hafter & (shr(x, nx, 1) | c_next)) | (not_glued & c_next));

    // `://` and credential assignments are rare enough to confirm byte by byte.
    let byte = |p: usize, back: usize| p.checked_sub(back).and_then(|i| bytes.get(i).copied());
    let mut url = 0u64;
    let mut colons = c & enabled_mask(enabled, URL);
    while colons != 0 {
        let i = colons.trailing_zeros() as usize;
        colons &= colons - 1;
        let p = start + i;
        let slashes = match bytes.get(p + 1..p + 3) {
            Some(t) => t == b"//",
            None => false,
        };
        url |= u64::from(slashes) << i;
    }
    let mut assign = 0u64;
    // A keyword ends in a letter, or in a letter and a quote or blank: an
    // operator right after a digit (times, ratios) cannot follow one.
    let mut ops = op & !shl(d, prev.d, 1) & enabled_mask(enabled, ASSIGN);
    while ops != 0 {
        let i = ops.trailing_zeros() as usize;
        ops &= ops - 1;
        let p = start + i;
        let ok = if p >= 3 {
            let (a, b, q) = (bytes[p - 3], bytes[p - 2], bytes[p - 1]);
            is_pair(Some(b), q) || (CLASS[usize::from(q)] >> QS & 1 == 1 && is_pair(Some(a), b))
        } else {
            let pair = |at: usize| byte(p, at).is_some_and(|b| is_pair(byte(p, at + 1), b));
            let qs = byte(p, 1).is_some_and(|b| CLASS[usize::from(b)] >> QS & 1 == 1);
            pair(1) || (qs && pair(2))
        };
        assign |= u64::from(ok) << i;
    }
    let kinds = [num, iban, colon, url, assign, special];
    let mut union = 0;
    for (k, mask) in kinds.iter().enumerate() {
        union |= mask & enabled_mask(enabled, 1 << k);
    }
    Triggers {
        kinds,
        num_carry: c1,
        hex_carry: c2,
        masks: Masks { d, w, sep, c },
        union,
    }
}

/// All ones when `kind` is among `enabled`, else zero.
#[inline(always)]
fn enabled_mask(enabled: u8, kind: u8) -> u64 {
    0u64.wrapping_sub(u64::from(enabled & kind != 0))
}
