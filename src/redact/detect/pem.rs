//! The body of a PEM private-key block, read one byte at a time.
//!
//! After `-----BEGIN … PRIVATE KEY-----` the block goes on over base64 words
//! separated by blanks, line breaks or the literal escapes `\n` / `\r` (keys
//! pasted into JSON or logged with escapes), and over the RFC 1421 header lines
//! (`Proc-Type:`, `DEK-Info:`, `Comment:`), up to and including `-----END …-----`.
//!
//! Bounded memory, whatever the block's size: the reader keeps a fixed-size
//! state and never buffers the block. Fail safe: when the block is cut short (end
//! of stream, or text that is not base64), everything read so far stays inside
//! it, including a base64 word in progress once it is [`LONG_WORD`] characters
//! long — key material is never released because its end marker is missing. A
//! short word followed by other text (`INFO`, `2024-05-01`) ends the block just
//! before it.

use crate::redact::text::Window;

/// A base64 word this long is key material, whatever follows it.
pub(crate) const LONG_WORD: usize = 64;
/// Longest `-----END …-----` line.
const MAX_END: usize = 80;
/// Longest header line.
const MAX_HEADER: usize = 128;

const HEADERS: [&[u8]; 3] = [b"Proc-Type:", b"DEK-Info:", b"Comment:"];
const END: &[u8] = b"-----END";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between words.
    Sep,
    /// A `\` between words.
    Escape,
    /// In a base64 word that started at `start`.
    Word { start: u64, len: usize },
    /// A `\` right after a word.
    WordEscape,
    /// Matching `-----END`; `n` bytes matched.
    Dashes { n: usize },
    /// In the END line's label; `n` bytes so far, `dashes` trailing dashes.
    EndLabel { n: usize, dashes: usize },
    /// In a header line, `n` bytes so far.
    Header { n: usize },
    /// A `\` in a header line.
    HeaderEscape { n: usize },
}

/// The reader's progress through one block. Positions are absolute stream
/// offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Body {
    state: State,
    /// The block covers at least `[start, committed)`.
    pub committed: u64,
    /// Next byte to read.
    pub pos: u64,
}

fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')
}

impl Body {
    /// A block whose opening line ends at `body`.
    pub fn new(body: u64) -> Self {
        Body {
            state: State::Sep,
            committed: body,
            pos: body,
        }
    }

    /// Read the bytes of `w` (whose first byte is at absolute `base`) from
    /// `self.pos` on. Returns the block's end once it is known; until then the
    /// block covers at least `[start, self.committed)`.
    pub fn advance(&mut self, w: &Window, base: u64) -> Option<u64> {
        let bytes = w.bytes;
        while self.pos < base + bytes.len() as u64 {
            let i = (self.pos - base) as usize;
            let c = bytes[i];
            let at = self.pos;
            if let Some(end) = self.step(c, at, bytes, base) {
                return Some(end);
            }
            self.pos += 1;
        }
        if w.eof {
            if let State::Word { .. } | State::Header { .. } = self.state {
                self.committed = self.pos;
            }
            return Some(self.committed);
        }
        None
    }

    /// One byte `c` at absolute `at`.
    fn step(&mut self, c: u8, at: u64, bytes: &[u8], base: u64) -> Option<u64> {
        let close = Some(self.committed);
        self.state = match self.state {
            State::Sep => match c {
                b' ' | b'\t' | b'\r' | b'\n' => State::Sep,
                b'\\' => State::Escape,
                b'-' => State::Dashes { n: 1 },
                c if is_b64(c) => self.word_byte(at, 0),
                _ => return close,
            },
            State::Escape => match c {
                b'n' | b'r' => State::Sep,
                _ => return close,
            },
            State::Word { start, len } => match c {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    self.committed = at;
                    State::Sep
                }
                b'\\' => {
                    self.committed = at;
                    State::WordEscape
                }
                c if is_b64(c) => self.word_byte(start, len),
                b'-' | b':' if len < 16 => {
                    let word = &bytes[(start - base) as usize..=(at - base) as usize];
                    if HEADERS.contains(&word) {
                        State::Header { n: word.len() }
                    } else if HEADERS.iter().any(|h| h.starts_with(word)) {
                        State::Word {
                            start,
                            len: len + 1,
                        }
                    } else {
                        return close;
                    }
                }
                _ => return close,
            },
            State::WordEscape => match c {
                b'n' | b'r' => State::Sep,
                _ => return close,
            },
            State::Dashes { n } => {
                if c != END[n] {
                    return close;
                }
                if n + 1 == END.len() {
                    State::EndLabel { n: 0, dashes: 0 }
                } else {
                    State::Dashes { n: n + 1 }
                }
            }
            State::EndLabel { n, dashes } => {
                if n >= MAX_END {
                    return close;
                }
                match c {
                    b'-' if dashes + 1 == 5 => {
                        self.committed = at + 1;
                        return Some(self.committed);
                    }
                    b'-' => State::EndLabel {
                        n: n + 1,
                        dashes: dashes + 1,
                    },
                    c if dashes == 0
                        && (c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' ') =>
                    {
                        State::EndLabel {
                            n: n + 1,
                            dashes: 0,
                        }
                    }
                    _ => return close,
                }
            }
            State::Header { n } => match c {
                b'\n' | b'\r' => {
                    self.committed = at;
                    State::Sep
                }
                b'\\' => State::HeaderEscape { n },
                _ if n >= MAX_HEADER => return close,
                _ => State::Header { n: n + 1 },
            },
            State::HeaderEscape { n } => match c {
                b'n' | b'r' => {
                    self.committed = at - 1;
                    State::Sep
                }
                _ => State::Header { n: n + 2 },
            },
        };
        None
    }

    /// One more base64 byte in a word; long words are committed as they grow.
    fn word_byte(&mut self, start: u64, len: usize) -> State {
        let len = len + 1;
        if len >= LONG_WORD {
            self.committed = start + len as u64;
        }
        State::Word { start, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block's end when its body starts at `body` in `s`, read in pieces of
    /// `step` bytes.
    fn end_of(s: &str, body: usize, step: usize) -> usize {
        let bytes = s.as_bytes();
        let mut b = Body::new(body as u64);
        let mut avail = body;
        loop {
            avail = (avail + step).min(bytes.len());
            let w = Window::new(&bytes[..avail], avail == bytes.len());
            if let Some(end) = b.advance(&w, 0) {
                return end as usize;
            }
        }
    }

    const KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75n1\nK9gK0f1a+/Zz==\n-----END RSA PRIVATE KEY-----";

    fn body_start(s: &str) -> usize {
        s.find("KEY-----").unwrap() + 8
    }

    #[test]
    fn complete_blocks_end_at_their_end_line() {
        let escaped = KEY.replace('\n', "\\n");
        let indented = KEY.replace('\n', "\n    ");
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        for s in [KEY.to_string(), escaped, indented, encrypted.to_string()] {
            let text = format!("{s}\nnext line");
            for step in [1, 3, 1000] {
                assert_eq!(
                    end_of(&text, body_start(&text), step),
                    s.len(),
                    "{s:?} step {step}"
                );
            }
        }
    }

    #[test]
    fn a_block_cut_short_ends_before_ordinary_text() {
        let s = "-----BEGIN PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75n1\n2024-05-01 INFO next";
        let want = s.find("\n2024").unwrap();
        assert_eq!(end_of(s, body_start(s), 1), want);
        let eof = "-----BEGIN PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75n1";
        assert_eq!(end_of(eof, body_start(eof), 2), eof.len());
    }

    #[test]
    fn long_key_material_is_never_released() {
        let word = "A".repeat(200);
        let s = format!("-----BEGIN PRIVATE KEY-----\n{word}!tail");
        let want = s.find('!').unwrap();
        assert_eq!(end_of(&s, body_start(&s), 7), want);
    }
}
