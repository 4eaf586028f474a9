//! Strict JSON syntax check of one audit record line, without building a value.
//!
//! `audit verify` must confirm that every record is one well-formed JSON object,
//! at a speed close to SHA-256 of the same bytes. A general deserializer
//! (`serde_json` into `IgnoredAny`) halves verify throughput, so this module
//! owns a small, allocation-free recogniser for RFC 8259: UTF-8 text, one
//! object at the top, strings with valid escapes and no raw control bytes,
//! numbers in JSON's grammar, `true`/`false`/`null`, insignificant whitespace.
//! Nesting is bounded by [`MAX_DEPTH`] and tracked in a fixed bit stack, so
//! memory is O(1) whatever the input.
//!
//! Record bodies as the writer emits them are recognised first by the
//! bitmask fast path of [`super::json_scan`]; only what it does not take
//! (whitespace between tokens, errors) is parsed here byte by byte.
//!
//! It answers "is this JSON?", nothing more: it never interprets values, and
//! it must never accept what `serde_json` would reject for our records (a
//! differential property test and the `audit_reader` fuzz target hold it to
//! that; the only deliberate difference is that lone UTF-16 surrogate escapes
//! are accepted, as RFC 8259's grammar does).

/// Deepest nesting of objects and arrays accepted (records use 4 levels).
pub const MAX_DEPTH: usize = 64;

/// Why a line is not one JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the first offending byte (or the end of input).
    pub offset: usize,
    /// What was expected or found there.
    pub what: &'static str,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

/// Check that `line` is exactly one JSON object (surrounding whitespace allowed).
pub fn check_object(line: &[u8]) -> Result<(), SyntaxError> {
    if super::json_scan::object_ok(line) {
        return Ok(());
    }
    if let Err(e) = std::str::from_utf8(line) {
        return Err(SyntaxError {
            offset: e.valid_up_to(),
            what: "invalid UTF-8",
        });
    }
    let mut p = Parser::new(line);
    p.ws();
    if p.peek() != Some(b'{') {
        return Err(p.err("expected `{` (a record is one JSON object)"));
    }
    p.values(Stack { bits: 0, depth: 0 }, false)?;
    p.ws();
    if p.i != line.len() {
        return Err(p.err("trailing bytes after the object"));
    }
    Ok(())
}

/// Check that `members` is a comma-separated list of JSON object members
/// (`"name":value,...`, possibly empty), i.e. that `{` + `members` + `}` is an
/// object. Used on a record's body once its fixed header has been parsed.
pub fn check_members(members: &[u8]) -> Result<(), SyntaxError> {
    if super::json_scan::members_ok(members) {
        return Ok(());
    }
    if let Err(e) = std::str::from_utf8(members) {
        return Err(SyntaxError {
            offset: e.valid_up_to(),
            what: "invalid UTF-8",
        });
    }
    let mut p = Parser::new(members);
    p.ws();
    if p.peek().is_none() {
        return Ok(());
    }
    p.key()?;
    p.values(Stack { bits: 1, depth: 1 }, true)?;
    if p.i != members.len() {
        return Err(p.err("unbalanced `}` in the record body"));
    }
    Ok(())
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// The input has no raw control byte at all (the writer never emits one):
    /// strings need only be scanned for `"` and `\\`.
    ctrl_free: bool,
}

/// One bit per open container: 1 = object, 0 = array.
struct Stack {
    bits: u64,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a [u8]) -> Parser<'a> {
        // Raw control bytes are never valid inside strings; when the input has
        // none at all (the writer never emits any), strings are scanned for `"`
        // and `\` alone.
        let ctrl_free = s.iter().fold(true, |acc, &b| acc & (b >= 0x20));
        Parser { s, i: 0, ctrl_free }
    }

    fn err(&self, what: &'static str) -> SyntaxError {
        SyntaxError {
            offset: self.i,
            what,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), SyntaxError> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// Values until the stack is back to empty, iteratively (containers push
    /// onto a bit stack). With `open_end`, the outermost object has no closing
    /// brace: the input may end where it would be.
    fn values(&mut self, mut st: Stack, open_end: bool) -> Result<(), SyntaxError> {
        'value: loop {
            self.ws();
            match self.peek() {
                Some(b'{') => {
                    self.open(&mut st, true)?;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        st.depth -= 1;
                    } else {
                        self.key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.open(&mut st, false)?;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        st.depth -= 1;
                    } else {
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.i += 1;
                    self.string_rest()?;
                }
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => return Err(self.err("expected a JSON value")),
            }
            // A value just ended: close containers or move to the next element.
            loop {
                if st.depth == 0 && open_end {
                    // `}` closed the object whose braces are not part of the input.
                    return Err(self.err("unbalanced `}` in the record body"));
                }
                if st.depth == 0 {
                    return Ok(());
                }
                let in_object = st.bits >> (st.depth - 1) & 1 == 1;
                self.ws();
                match self.peek() {
                    None if open_end && st.depth == 1 => return Ok(()),
                    Some(b',') => {
                        self.i += 1;
                        if in_object {
                            self.ws();
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if in_object => {
                        self.i += 1;
                        st.depth -= 1;
                    }
                    Some(b']') if !in_object => {
                        self.i += 1;
                        st.depth -= 1;
                    }
                    _ if in_object => return Err(self.err("expected `,` or `}`")),
                    _ => return Err(self.err("expected `,` or `]`")),
                }
            }
        }
    }

    fn open(&mut self, st: &mut Stack, object: bool) -> Result<(), SyntaxError> {
        if st.depth == MAX_DEPTH {
            return Err(self.err("nesting deeper than 64 levels"));
        }
        let bit = 1u64 << st.depth;
        st.bits = if object {
            st.bits | bit
        } else {
            st.bits & !bit
        };
        st.depth += 1;
        self.i += 1;
        Ok(())
    }

    /// `"name"` `:` — the value follows.
    #[inline(always)]
    fn key(&mut self) -> Result<(), SyntaxError> {
        self.expect(b'"', "expected a member name")?;
        self.string_rest()?;
        self.ws();
        self.expect(b':', "expected `:` after a member name")
    }

    /// The rest of a string after its opening quote.
    #[inline(always)]
    fn string_rest(&mut self) -> Result<(), SyntaxError> {
        loop {
            self.i = if self.ctrl_free {
                skip_plain::<false>(self.s, self.i)
            } else {
                skip_plain::<true>(self.s, self.i)
            };
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.s.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.err("`\\u` needs four hex digits"));
                            }
                            self.i += 5;
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in a string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    fn number(&mut self) -> Result<(), SyntaxError> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.err("expected a digit after `.`"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.err("expected an exponent"));
            }
            self.digits();
        }
        Ok(())
    }

    #[inline]
    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), SyntaxError> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("expected `true`, `false` or `null`"))
        }
    }
}

/// Index of the first byte at or after `i` that is `"`, `\` or a control byte
/// (< 0x20), or `s.len()`. Eight bytes at a time (Mycroft's zero-byte test).
#[inline]
fn skip_plain<const CTRL: bool>(s: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    while let Some(chunk) = s.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let ctrl = if CTRL {
            w.wrapping_sub(ONES * 0x20) & !w
        } else {
            0
        };
        let q = w ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q;
        let b = w ^ (ONES * u64::from(b'\\'));
        let bslash = b.wrapping_sub(ONES) & !b;
        let hit = (ctrl | quote | bslash) & HIGH;
        if hit != 0 {
            return i + hit.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while let Some(&c) = s.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}
