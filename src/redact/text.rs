//! The view detectors read through: a window of retained stream bytes, byte
//! classes, and a character decoder that sees through disguises.
//!
//! Detectors never index the stream directly. They read a [`Window`], which
//! answers "not yet" ([`Pending`]) instead of guessing when a byte lies beyond
//! what has arrived, and "nothing" at the end of the stream. That single rule is
//! what makes every detector's answer independent of how the input was chunked.
//!
//! The decoder maps fullwidth forms (U+FF01–U+FF5E, e.g. `４` or `＠`) to their
//! ASCII counterparts and reports invisible formatting characters (zero-width
//! space and joiners, word joiner, BOM, soft hyphen) as [`Ch::Ignorable`], so
//! that neither can hide an email address or a number. Bytes that are not valid
//! UTF-8 decode as [`Ch::Other`], one byte at a time: binary data is scanned like
//! any other text, never skipped.

/// A detector read past the bytes that have arrived; retry once byte `need`
/// (an index into the window) is available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Index of the first byte the detector still needs.
    pub need: usize,
}

/// Result of a read that may need more input.
pub(crate) type Res<T> = Result<T, Pending>;

/// The retained bytes of a stream as detectors see them.
///
/// Index 0 is the oldest retained byte: either the start of the stream or a
/// point far enough back (`detect::MAX_LOOKBEHIND`) that no detector looks past it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window<'a> {
    /// Retained bytes.
    pub bytes: &'a [u8],
    /// No byte will ever follow `bytes`.
    pub eof: bool,
}

impl<'a> Window<'a> {
    /// A window over `bytes`.
    pub fn new(bytes: &'a [u8], eof: bool) -> Self {
        Window { bytes, eof }
    }

    /// The byte at `i`; `None` past the end of the stream.
    #[inline]
    pub fn at(&self, i: usize) -> Res<Option<u8>> {
        match self.bytes.get(i) {
            Some(&b) => Ok(Some(b)),
            None if self.eof => Ok(None),
            None => Err(Pending { need: i }),
        }
    }

    /// The byte before `i`; `None` at the start of the window.
    #[inline]
    pub fn before(&self, i: usize) -> Option<u8> {
        i.checked_sub(1).map(|j| self.bytes[j])
    }

    /// Number of retained bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// `bytes[from..to]`, waiting until all of it has arrived. At the end of the
    /// stream the slice is cut short.
    #[inline]
    pub fn slice(&self, from: usize, to: usize) -> Res<&'a [u8]> {
        if to <= self.bytes.len() {
            Ok(&self.bytes[from..to])
        } else if self.eof {
            Ok(&self.bytes[from.min(self.bytes.len())..])
        } else {
            Err(Pending { need: to - 1 })
        }
    }
}

/// ASCII letter, digit or underscore: the bytes that glue a token together.
#[inline]
pub(crate) const fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// ASCII hex digit.
#[inline]
pub(crate) const fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// A character as detectors see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ch {
    /// An ASCII character, or a fullwidth form mapped to it.
    Ascii(u8),
    /// Invisible formatting that detectors skip.
    Ignorable,
    /// A letter or digit outside ASCII.
    Alnum,
    /// Anything else: other non-ASCII characters, invalid UTF-8.
    Other,
}

impl Ch {
    /// True for characters that continue a word (letters, digits, `_`).
    #[inline]
    pub fn is_word(self) -> bool {
        match self {
            Ch::Ascii(b) => is_word(b),
            Ch::Alnum => true,
            _ => false,
        }
    }

    /// True for an ASCII (or fullwidth) digit.
    #[inline]
    pub fn is_digit(self) -> bool {
        matches!(self, Ch::Ascii(b) if b.is_ascii_digit())
    }
}

/// Classify a complete multi-byte character.
fn classify(c: char) -> Ch {
    let u = c as u32;
    match u {
        0xFF01..=0xFF5E => Ch::Ascii((u - 0xFF01 + 0x21) as u8),
        0x00AD | 0x180E | 0x200B..=0x200F | 0x2060..=0x2064 | 0xFEFF => Ch::Ignorable,
        _ if c.is_alphanumeric() => Ch::Alnum,
        _ => Ch::Other,
    }
}

/// Expected length of a UTF-8 sequence from its lead byte (1 for invalid leads).
#[inline]
fn seq_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Decode the character starting at `i`: the character and its length in bytes.
/// `None` at the end of the stream.
#[inline]
pub(crate) fn decode(w: &Window, i: usize) -> Res<Option<(Ch, usize)>> {
    let Some(lead) = w.at(i)? else {
        return Ok(None);
    };
    if lead < 0x80 {
        return Ok(Some((Ch::Ascii(lead), 1)));
    }
    let n = seq_len(lead);
    if n == 1 {
        return Ok(Some((Ch::Other, 1)));
    }
    let bytes = w.slice(i, i + n)?;
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Some((s.chars().next().map_or(Ch::Other, classify), n))),
        Err(_) => Ok(Some((Ch::Other, 1))),
    }
}

/// Decode the character that ends just before `end`: the character and its
/// length. `None` at the start of the window.
#[inline]
pub(crate) fn decode_back(w: &Window, end: usize) -> Option<(Ch, usize)> {
    let last = w.before(end)?;
    if last < 0x80 {
        return Some((Ch::Ascii(last), 1));
    }
    for n in 2..=4 {
        let Some(start) = end.checked_sub(n) else {
            break;
        };
        let lead = w.bytes[start];
        if lead & 0xC0 != 0x80 {
            if seq_len(lead) == n
                && let Ok(s) = std::str::from_utf8(&w.bytes[start..end])
            {
                return Some((s.chars().next().map_or(Ch::Other, classify), n));
            }
            break;
        }
    }
    Some((Ch::Other, 1))
}

/// The next character at or after `i` that is not ignorable: the character,
/// where it starts and where it ends. `None` at the end of the stream.
#[inline(always)]
pub(crate) fn next_visible(w: &Window, i: usize) -> Res<Option<(Ch, usize, usize)>> {
    match w.bytes.get(i) {
        Some(&b) if b < 0x80 => Ok(Some((Ch::Ascii(b), i, i + 1))),
        _ => next_visible_slow(w, i),
    }
}

#[inline(never)]
fn next_visible_slow(w: &Window, mut i: usize) -> Res<Option<(Ch, usize, usize)>> {
    loop {
        match decode(w, i)? {
            None => return Ok(None),
            Some((Ch::Ignorable, n)) => i += n,
            Some((c, n)) => return Ok(Some((c, i, i + n))),
        }
    }
}

/// The closest character before `end` that is not ignorable, looking back at
/// most `limit` bytes: the character and where it starts.
#[inline]
pub(crate) fn prev_visible(w: &Window, mut end: usize, limit: usize) -> Option<(Ch, usize)> {
    if end > 0 && w.bytes[end - 1] < 0x80 {
        return Some((Ch::Ascii(w.bytes[end - 1]), end - 1));
    }
    let floor = end.saturating_sub(limit);
    while end > floor {
        let (c, n) = decode_back(w, end)?;
        end -= n;
        if c != Ch::Ignorable {
            return Some((c, end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Window<'_> {
        Window::new(s.as_bytes(), true)
    }

    #[test]
    fn fullwidth_forms_decode_as_ascii() {
        let s = "４＠ａ";
        let w = w(s);
        assert_eq!(decode(&w, 0).unwrap(), Some((Ch::Ascii(b'4'), 3)));
        assert_eq!(decode(&w, 3).unwrap(), Some((Ch::Ascii(b'@'), 3)));
        assert_eq!(decode(&w, 6).unwrap(), Some((Ch::Ascii(b'a'), 3)));
        assert_eq!(decode_back(&w, 9), Some((Ch::Ascii(b'a'), 3)));
    }

    #[test]
    fn zero_width_characters_are_ignorable() {
        for zw in [
            "\u{200B}", "\u{200C}", "\u{200D}", "\u{2060}", "\u{FEFF}", "\u{AD}",
        ] {
            let s = format!("1{zw}2");
            let win = w(&s);
            assert_eq!(decode(&win, 1).unwrap().unwrap().0, Ch::Ignorable, "{zw:?}");
            let (c, start, _) = next_visible(&win, 1).unwrap().unwrap();
            assert_eq!((c, start), (Ch::Ascii(b'2'), 1 + zw.len()));
            assert_eq!(
                prev_visible(&win, s.len() - 1, 16),
                Some((Ch::Ascii(b'1'), 0))
            );
        }
    }

    #[test]
    fn invalid_utf8_decodes_byte_by_byte() {
        let bytes = [0xFFu8, 0xE2, 0x28, 0xA1, b'a'];
        let win = Window::new(&bytes, true);
        assert_eq!(decode(&win, 0).unwrap(), Some((Ch::Other, 1)));
        assert_eq!(decode(&win, 1).unwrap(), Some((Ch::Other, 1)));
        assert_eq!(decode(&win, 3).unwrap(), Some((Ch::Other, 1)));
        assert_eq!(decode_back(&win, 4), Some((Ch::Other, 1)));
    }

    #[test]
    fn reads_past_the_end_wait_unless_the_stream_ended() {
        let bytes = "é".as_bytes();
        let open = Window::new(&bytes[..1], false);
        assert_eq!(decode(&open, 0), Err(Pending { need: 1 }));
        assert_eq!(open.at(5), Err(Pending { need: 5 }));
        let closed = Window::new(&bytes[..1], true);
        assert_eq!(decode(&closed, 0).unwrap(), Some((Ch::Other, 1)));
        assert_eq!(closed.at(5), Ok(None));
        assert_eq!(decode(&w("é"), 0).unwrap(), Some((Ch::Alnum, 2)));
    }
}
