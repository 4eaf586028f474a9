//! Fast path of the JSON syntax check, for record bodies as the writer emits
//! them: compact JSON, no whitespace or control bytes between tokens.
//!
//! Each 64 bytes become bitmasks (quotes, backslashes, structural
//! characters) with 16-byte vector compares
//! (`wide`, safe code); escapes, the in-string mask, scalars, and where keys
//! end follow with a few word operations, after simdjson. Validity is then
//! checked mostly on whole masks: which byte may follow which, and that the
//! colons are exactly the bytes after the keys (see [`Scan::chunk`]). Only
//! brackets (to match and nest them), escapes and scalars (numbers,
//! `true`, `false`, `null`) are visited one by one — a few per hundred bytes
//! of a record. String contents are never looked at byte by byte.
//!
//! It answers only "certainly valid". Anything else — whitespace between
//! tokens, a control byte, a backslash outside a string, an error of any
//! kind — is left to the full recogniser in [`super::json_syntax`], which
//! decides and names the error. So this path may give up on valid JSON, but
//! must never accept what the full check rejects; a property test and the
//! `audit_reader` fuzz target hold it to that.

use wide::u8x16;

use super::json_syntax::MAX_DEPTH;

/// Bytes per step of the mask computation.
const CHUNK: usize = 64;

/// Whether `{` + `members` + `}` is certainly one JSON object. `false` means
/// "not decided here", not "invalid".
pub fn members_ok(members: &[u8]) -> bool {
    if members.is_empty() {
        return true;
    }
    let mut scan = Scan::new(members);
    let mut chunks = members.chunks_exact(CHUNK);
    for (k, chunk) in (&mut chunks).enumerate() {
        let c = <&[u8; CHUNK]>::try_from(chunk).unwrap_or(&[0; CHUNK]);
        if !scan.chunk(k * CHUNK, c, CHUNK) {
            return false;
        }
    }
    // The last chunk (possibly empty) also holds the record's closing brace,
    // right after the last byte. Spaces pad it: not control bytes, and
    // outside the valid bytes no mask bit is kept.
    let rest = chunks.remainder();
    let mut c = [b' '; CHUNK];
    c[..rest.len()].copy_from_slice(rest);
    scan.chunk(members.len() - rest.len(), &c, rest.len()) && scan.finish()
}

/// Whether `line` is certainly one JSON object (no surrounding whitespace).
pub fn object_ok(line: &[u8]) -> bool {
    match line {
        [b'{', inner @ .., b'}'] => members_ok(inner),
        _ => false,
    }
}

/// Byte classes of one chunk, one bit per byte (bit i = byte i).
#[derive(Clone, Copy, Default)]
struct Masks {
    quote: u64,
    backslash: u64,
    /// `{ } [ ] : ,`
    structural: u64,
    colon: u64,
    comma: u64,
}

/// The vector half: classify 64 bytes; fold every byte into `low` (the
/// smallest byte seen: a control byte is never valid as it is) and `high`
/// (any non-ASCII byte: then the input must be checked as UTF-8).
fn masks(c: &[u8; CHUNK], low: &mut u8x16, high: &mut u8x16) -> Masks {
    let mut m = Masks::default();
    for (k, part) in c.chunks_exact(16).enumerate() {
        let v = u8x16::new(<[u8; 16]>::try_from(part).unwrap_or([0; 16]));
        let eq = |b: u8| v.simd_eq(u8x16::splat(b));
        let bits = |x: u8x16| u64::from(x.to_bitmask()) << (16 * k);
        // `{` 0x7b and `[` 0x5b differ only in bit 5; so do `}` and `]`.
        let folded = v | u8x16::splat(0x20);
        let brackets = folded.simd_eq(u8x16::splat(b'{')) | folded.simd_eq(u8x16::splat(b'}'));
        let (colon, comma) = (eq(b':'), eq(b','));
        m.quote |= bits(eq(b'"'));
        m.backslash |= bits(eq(b'\\'));
        m.structural |= bits(brackets | colon | comma);
        m.colon |= bits(colon);
        m.comma |= bits(comma);
        *low = low.min(v);
        *high |= v;
    }
    m
}

/// Previous-chunk masks of the classes whose successor is constrained: bit 63
/// is the class of the byte just before the current chunk.
#[derive(Clone, Copy, Default)]
struct Prev {
    lbrace: u64,
    lbrack: u64,
    colon: u64,
    comma: u64,
    scalar: u64,
    value_end: u64,
    comma_in_object: u64,
    key_close: u64,
}

/// The state carried from chunk to chunk.
struct Scan<'a> {
    s: &'a [u8],
    prev: Prev,
    /// An escape cut by the chunk end (see [`escaped_chars`]).
    escaped: u64,
    /// All ones when the chunk boundary is inside a string.
    in_string: u64,
    /// Carry of the addition that carries key starts to their ends.
    key_carry: u64,
    /// Open containers: one bit each, 1 = object (bit 0: the record itself).
    stack: u64,
    depth: usize,
    /// Innermost open container is an object.
    in_object: bool,
    low: u8x16,
    high: u8x16,
}

impl<'a> Scan<'a> {
    fn new(s: &'a [u8]) -> Scan<'a> {
        Scan {
            s,
            // The record's `{` comes just before the members.
            prev: Prev {
                lbrace: 1 << 63,
                ..Prev::default()
            },
            escaped: 0,
            in_string: 0,
            key_carry: 0,
            stack: 1,
            depth: 1,
            in_object: true,
            low: u8x16::splat(0xff),
            high: u8x16::splat(0),
        }
    }

    /// One chunk: `len` valid bytes at `base`; when `len < CHUNK`, the
    /// record's closing brace sits right after them.
    ///
    /// Compact JSON is exactly this, byte by byte: strings (no control
    /// bytes, valid escapes), scalars (a maximal run of other bytes outside
    /// strings — spaces, backslashes and non-ASCII bytes there included —
    /// which must be a number or a literal) and the structural
    /// characters, where (1) each byte may only follow certain others — a
    /// value starts after `[ : ,` (a string also after `{`), `}` after `{` or
    /// a value's end, `]` after `[` or a value's end, `,` after a value's
    /// end; (2) brackets match and nest at most [`MAX_DEPTH`] deep, the record
    /// closing last; (3) the colons are exactly the bytes after the keys —
    /// strings that start after `{`, or after a `,` directly inside an
    /// object; (4) a `,` directly inside an object is followed by a string.
    fn chunk(&mut self, base: usize, c: &[u8; CHUNK], len: usize) -> bool {
        let valid = if len == CHUNK {
            u64::MAX
        } else {
            (1 << len) - 1
        };
        let m = masks(c, &mut self.low, &mut self.high);
        let escaped = escaped_chars(m.backslash & valid, &mut self.escaped);
        let quote = m.quote & valid & !escaped;
        // Bits from an opening quote up to (not including) its closing quote.
        let in_string = prefix_xor(quote) ^ self.in_string;
        self.in_string = 0u64.wrapping_sub(in_string >> 63);
        let outside = !in_string & valid;
        let open_quote = quote & in_string;
        let close_quote = quote & !in_string;
        let structural = m.structural & outside;
        let colon = m.colon & outside;
        let comma = m.comma & outside;
        let scalar = outside & !quote & !structural;
        let mut brackets = structural & !colon & !comma;
        if len < CHUNK {
            brackets |= 1 << len;
        }
        let Some(b) = self.brackets(base, brackets) else {
            return false;
        };
        let value_end = close_quote | scalar | b.rbrace | b.rbrack;
        let comma_in_object = comma & b.in_object;
        let p = self.prev;
        let after = |x: u64, before: u64| x << 1 | before >> 63;
        let key_start =
            open_quote & after(b.lbrace | comma_in_object, p.lbrace | p.comma_in_object);
        // Adding a string's start bit to its in-string run carries to the
        // bit past the run: its closing quote.
        let (sum, c1) = in_string.overflowing_add(key_start);
        let (sum, c2) = sum.overflowing_add(self.key_carry);
        self.key_carry = u64::from(c1 | c2);
        let key_close = sum & !in_string;
        let sep = b.lbrack | colon | comma;
        let sep_before = p.lbrack | p.colon | p.comma;
        let bad = open_quote & !after(sep | b.lbrace, sep_before | p.lbrace)
            | scalar & !after(sep | scalar, sep_before | p.scalar)
            | (b.lbrace | b.lbrack) & !after(sep, sep_before)
            | b.rbrace & !after(b.lbrace | value_end, p.lbrace | p.value_end)
            | b.rbrack & !after(b.lbrack | value_end, p.lbrack | p.value_end)
            | comma & !after(value_end, p.value_end)
            | after(comma_in_object, p.comma_in_object) & !open_quote
            | colon ^ after(key_close, p.key_close);
        self.prev = Prev {
            lbrace: b.lbrace,
            lbrack: b.lbrack,
            colon,
            comma,
            scalar,
            value_end,
            comma_in_object,
            key_close,
        };
        if bad != 0 {
            return false;
        }
        let mut esc = escaped;
        while esc != 0 {
            if !escape_ok(self.s, base + esc.trailing_zeros() as usize) {
                return false;
            }
            esc &= esc - 1;
        }
        let mut starts = scalar & !after(scalar, p.scalar);
        while starts != 0 {
            let i = starts.trailing_zeros();
            starts &= starts - 1;
            let at = base + i as usize;
            let n = (scalar >> i).trailing_ones() as usize;
            // A run that reaches the chunk's end may go on in the next one.
            let n = if i as usize + n < CHUNK {
                n
            } else {
                let run = &self.s[at..];
                run.iter()
                    .position(|&b| matches!(b, b',' | b'}' | b']'))
                    .unwrap_or(run.len())
            };
            if !scalar_ok(&self.s[at..at + n]) {
                return false;
            }
        }
        true
    }

    /// Walk the chunk's brackets (the only sequential step besides escapes and
    /// scalars): match and nest them, and mark where the innermost container
    /// is an object.
    fn brackets(&mut self, base: usize, mut bits: u64) -> Option<Brackets> {
        let mut b = Brackets::default();
        let start_in_object = self.in_object;
        let mut toggles = 0u64;
        while bits != 0 {
            let bit = bits & bits.wrapping_neg();
            bits &= bits - 1;
            let at = base + bit.trailing_zeros() as usize;
            // Past the members: the record's own closing brace.
            let byte = self.s.get(at).copied().unwrap_or(b'}');
            let object = byte == b'{' || byte == b'}';
            if byte == b'{' || byte == b'[' {
                if self.depth == MAX_DEPTH {
                    return None;
                }
                self.stack = self.stack & !(1 << self.depth) | u64::from(object) << self.depth;
                self.depth += 1;
                *(if object { &mut b.lbrace } else { &mut b.lbrack }) |= bit;
            } else {
                let top = self.stack >> (self.depth - 1) & 1 == 1;
                self.depth -= 1;
                // Only the record's own brace may close the record.
                if top != object || self.depth == 0 && at != self.s.len() {
                    return None;
                }
                *(if object { &mut b.rbrace } else { &mut b.rbrack }) |= bit;
            }
            let in_object = self.depth > 0 && self.stack >> (self.depth - 1) & 1 == 1;
            if in_object != self.in_object {
                toggles |= bit;
                self.in_object = in_object;
            }
        }
        b.in_object = prefix_xor(toggles) ^ 0u64.wrapping_sub(u64::from(start_in_object));
        Some(b)
    }

    /// After the last chunk: the record closed, nothing left open.
    fn finish(&self) -> bool {
        self.depth == 0
            && self.in_string == 0
            && self.key_carry == 0
            && self
                .low
                .min(u8x16::splat(0x1f))
                .simd_eq(self.low)
                .to_bitmask()
                == 0
            && (self.high.to_bitmask() == 0 || std::str::from_utf8(self.s).is_ok())
    }
}

/// Where the brackets of one chunk are, and where the innermost container
/// is an object.
#[derive(Default)]
struct Brackets {
    lbrace: u64,
    lbrack: u64,
    rbrace: u64,
    rbrack: u64,
    in_object: u64,
}

/// The bytes escaped by a backslash: those after an odd run of backslashes
/// (simdjson's branchless method). `carry` is 1 when the previous chunk ended
/// in an escaping backslash, and is updated for the next chunk.
pub(crate) fn escaped_chars(backslash: u64, carry: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslash = backslash & !*carry;
    let follows = backslash << 1 | *carry;
    let odd_starts = backslash & !EVEN & !follows;
    let (even_runs, overflow) = odd_starts.overflowing_add(backslash);
    *carry = u64::from(overflow);
    (EVEN ^ (even_runs << 1)) & follows
}

/// Bit i = XOR of bits 0..=i.
pub(crate) fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The escape whose second byte is at `at` (inside a string).
fn escape_ok(s: &[u8], at: usize) -> bool {
    match s.get(at).copied().unwrap_or(0) {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => true,
        b'u' => s
            .get(at + 1..at + 5)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
        _ => false,
    }
}

/// A number, `true`, `false` or `null`, exactly.
fn scalar_ok(g: &[u8]) -> bool {
    match g.first() {
        Some(b't') => g == b"true",
        Some(b'f') => g == b"false",
        Some(b'n') => g == b"null",
        Some(_) => number_ok(g),
        None => false,
    }
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_ok(g: &[u8]) -> bool {
    let digits = |i: usize| g[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = usize::from(g.first() == Some(&b'-'));
    match g.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(i),
        _ => return false,
    }
    if g.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if let Some(b'e' | b'E') = g.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = g.get(i) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == g.len()
}
