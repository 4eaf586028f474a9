//! Streaming line reader with bounded memory, for `verify`, `show` and `tail`.
//!
//! Reads through a fixed 2 MiB buffer and hands out borrowed lines. A line
//! longer than [`MAX_LINE`] is reported once (flagged `too_long`, with its
//! first bytes) and the rest of it skipped, so memory stays O(1) whatever the
//! file holds. A last line without its newline is reported as unterminated
//! (a torn write). This module only splits bytes; it never judges a record.

use std::io::{self, Read};

use super::line::MAX_LINE;

/// One line, without its `\n`.
#[derive(Debug)]
pub struct Line<'a> {
    /// The bytes (for a too-long line: its first bytes only).
    pub bytes: &'a [u8],
    /// 1-based line number.
    pub number: u64,
    /// Byte offset of the line in the input.
    pub offset: u64,
    /// Whether the line ended with `\n` (false only for the last line).
    pub terminated: bool,
    /// Longer than any record: only a prefix is in `bytes`.
    pub too_long: bool,
}

/// Lines of a reader.
pub struct LineReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// `buf[start..scanned]` is known to hold no `\n`.
    scanned: usize,
    eof: bool,
    skipping: bool,
    number: u64,
    /// Input offset of `buf[start]`.
    offset: u64,
}

impl<R: Read> LineReader<R> {
    /// Lines of `inner`.
    pub fn new(inner: R) -> LineReader<R> {
        LineReader {
            inner,
            buf: vec![0u8; 2 * MAX_LINE].into_boxed_slice(),
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
            skipping: false,
            number: 0,
            offset: 0,
        }
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let nl = self.scanned + i;
                let (s, off) = (self.start, self.offset);
                self.start = nl + 1;
                self.scanned = self.start;
                self.offset += (nl + 1 - s) as u64;
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                self.number += 1;
                return Ok(Some(Line {
                    bytes: &self.buf[s..nl],
                    number: self.number,
                    offset: off,
                    terminated: true,
                    too_long: false,
                }));
            }
            self.scanned = self.end;
            if self.skipping {
                self.offset += (self.end - self.start) as u64;
                self.start = self.end;
                self.scanned = self.end;
            } else if self.end - self.start >= MAX_LINE {
                // Report the prefix once, then skip to the next newline.
                let (s, off) = (self.start, self.offset);
                self.skipping = true;
                self.number += 1;
                return Ok(Some(Line {
                    bytes: &self.buf[s..s + 256],
                    number: self.number,
                    offset: off,
                    terminated: false,
                    too_long: true,
                }));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let (s, e, off) = (self.start, self.end, self.offset);
                self.start = e;
                self.scanned = e;
                self.offset += (e - s) as u64;
                self.number += 1;
                return Ok(Some(Line {
                    bytes: &self.buf[s..e],
                    number: self.number,
                    offset: off,
                    terminated: false,
                    too_long: false,
                }));
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Vec<(Vec<u8>, u64, u64, bool, bool)> {
        let mut r = LineReader::new(input);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push((
                l.bytes.to_vec(),
                l.number,
                l.offset,
                l.terminated,
                l.too_long,
            ));
        }
        out
    }

    #[test]
    fn splits_and_flags_the_torn_tail() {
        let got = all(b"a\nbc\n\nd");
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), 1, 0, true, false),
                (b"bc".to_vec(), 2, 2, true, false),
                (b"".to_vec(), 3, 5, true, false),
                (b"d".to_vec(), 4, 6, false, false),
            ]
        );
        assert!(all(b"").is_empty());
    }

    #[test]
    fn long_lines_are_bounded() {
        let mut input = vec![b'x'; 3 * MAX_LINE];
        input.extend_from_slice(b"\nok\n");
        let got = all(&input);
        assert_eq!(got.len(), 2);
        assert!(got[0].4 && got[0].0.len() == 256);
        assert_eq!(
            got[1],
            (b"ok".to_vec(), 2, 3 * MAX_LINE as u64 + 1, true, false)
        );
    }

    /// A reader that returns one byte at a time.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&b, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = b;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn independent_of_read_sizes() {
        let input = b"one\ntwo\nthree";
        let mut r = LineReader::new(Trickle(input));
        let mut got = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            got.push((l.bytes.to_vec(), l.offset));
        }
        assert_eq!(
            got,
            vec![
                (b"one".to_vec(), 0),
                (b"two".to_vec(), 4),
                (b"three".to_vec(), 8)
            ]
        );
    }
}
