//! The input of `audit verify`, cut into line-aligned blocks, each
//! pre-checked — every line's SHA-256 computed and its JSON syntax checked —
//! one block ahead on a second thread.
//!
//! Hashing a record and checking its JSON cost about as much as everything
//! else verify does, so on a machine with two or more cores they run on a
//! helper thread: while the verifier parses, links and judges the records of
//! block k, the helper hashes and checks block k+1. Each block reaches the
//! verifier with its hashes and its JSON verdict (the first line whose JSON
//! is bad), so faults are still reported in line order, exactly as a single
//! pass would. Memory stays bounded: at most four blocks of [`BLOCK`] bytes
//! exist at a time.
//!
//! This module computes and splits; it never decides whether a hash, a link
//! or a signature is right.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::json_syntax;
use super::line::{self, MAX_LINE};
use super::record::RecordHash;

/// Largest block: larger than any record line.
pub const BLOCK: usize = 2 * MAX_LINE;
/// Bytes read for a block, unless its first line is longer. Measured
/// against 128 KiB (kept in L2 between passes) and 2 MiB: the same on one
/// core, and with two threads 1 MiB did best while other processes loaded
/// the machine (each block is a hand-off between the threads, and under load
/// every hand-off waits for the scheduler).
pub const READ_TARGET: usize = 1 << 20;

/// Whole lines of the input.
pub struct Block {
    data: Vec<u8>,
    len: usize,
    /// Input offset of the first byte.
    pub offset: u64,
    /// First line whose JSON is not valid: (0-based index of the line in the
    /// block, what is wrong). Lines whose record layout is wrong may or may
    /// not be flagged; the layout is the verifier's to check first.
    pub bad_json: Option<(usize, String)>,
    /// Per line, for the lines the helper hashed: SHA-256 of the line
    /// without its last 75 bytes (the hashing rule of [`line`]).
    hashes: Vec<Option<RecordHash>>,
    /// Offset of each line's `\n` in the block (found once, by the helper).
    ends: Vec<usize>,
    /// Lines whose index modulo 16 is below this are hashed by the helper.
    share: usize,
    /// Time the helper spent on the block.
    helper_time: Duration,
}

impl Block {
    /// The block's bytes: whole lines, each ending in `\n`.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// Offset of each line's `\n`, in order.
    pub fn ends(&self) -> &[usize] {
        &self.ends
    }

    /// The hash of line `i` (`line` is its bytes): computed by the helper, or
    /// now.
    pub fn hash(&self, i: usize, line: &[u8]) -> RecordHash {
        match self.hashes.get(i) {
            Some(Some(h)) => *h,
            _ => hash_line(line),
        }
    }
}

/// SHA-256 of a record line without its last 75 bytes (the hashing rule);
/// [`RecordHash::GENESIS`] for a line too short to be a record.
fn hash_line(l: &[u8]) -> RecordHash {
    const HASH_MEMBER_LEN: usize = 75;
    match l.len().checked_sub(HASH_MEMBER_LEN) {
        Some(n) => RecordHash::from_digest(&Sha256::digest(&l[..n]).into()),
        None => RecordHash::GENESIS,
    }
}

/// How the input ended (after the lines of the last block).
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// After a complete line (or empty input).
    Clean,
    /// With a line that has no newline (its length).
    Torn(usize),
    /// With a line longer than any record.
    TooLong,
}

/// Feed `input` to `f` block by block, in order, until it returns false or
/// the input ends. JSON is checked on a helper thread when `parallel`.
pub fn for_each(
    input: &mut dyn Read,
    parallel: bool,
    f: &mut dyn FnMut(&Block) -> bool,
) -> io::Result<End> {
    if !parallel {
        let mut reader = Reader::new(input);
        reader.share = 16;
        while let Some(mut b) = reader.next_block()? {
            precheck(&mut b);
            let go_on = f(&b);
            reader.recycle(b);
            if !go_on {
                return Ok(End::Clean);
            }
        }
        return Ok(reader.end);
    }
    std::thread::scope(|s| {
        let (to_helper, helper_in) = mpsc::sync_channel::<Block>(1);
        let (helper_out, from_helper) = mpsc::sync_channel::<Block>(1);
        s.spawn(move || {
            for mut b in helper_in {
                let t = Instant::now();
                precheck(&mut b);
                b.helper_time = t.elapsed();
                if helper_out.send(b).is_err() {
                    break;
                }
            }
        });
        let mut reader = Reader::new(input);
        let mut pending = 0usize;
        loop {
            // Reading is this thread's work too: it counts when balancing.
            let read = Instant::now();
            // Keep the helper one block ahead of us.
            while pending < 2 {
                match reader.next_block()? {
                    Some(b) => {
                        if to_helper.send(b).is_err() {
                            return Err(io::Error::other("the JSON checker thread stopped"));
                        }
                        pending += 1;
                    }
                    None => break,
                }
            }
            if pending == 0 {
                return Ok(reader.end);
            }
            let read = read.elapsed();
            let b = from_helper
                .recv()
                .map_err(|_| io::Error::other("the JSON checker thread stopped"))?;
            pending -= 1;
            let t = Instant::now();
            let go_on = f(&b);
            // Balance the hashing between the two threads: whichever took
            // longer on this block (this one: reading and judging it) hashes
            // a sixteenth less of the next ones.
            if b.helper_time > read + t.elapsed() {
                reader.share = reader.share.saturating_sub(1);
            } else {
                reader.share = (reader.share + 1).min(16);
            }
            reader.recycle(b);
            if !go_on {
                return Ok(End::Clean);
            }
        }
    })
}

/// Hash the helper's share of the lines; note the first line whose JSON is
/// bad.
fn precheck(b: &mut Block) {
    let mut start = 0;
    b.hashes.clear();
    b.ends.clear();
    for (i, nl) in memchr::memchr_iter(b'\n', &b.data[..b.len]).enumerate() {
        b.ends.push(nl);
        let l = &b.data[start..nl];
        start = nl + 1;
        b.hashes.push((i % 16 < b.share).then(|| hash_line(l)));
        if b.bad_json.is_none()
            && let Some(m) = line::members(l)
            && let Err(e) = json_syntax::check_members(m)
        {
            b.bad_json = Some((i, format!("invalid JSON: {e} (in the record body)")));
        }
    }
}

/// A block's allocations, kept for the next block.
struct Buffers {
    data: Vec<u8>,
    hashes: Vec<Option<RecordHash>>,
    ends: Vec<usize>,
}

struct Reader<'a> {
    input: &'a mut dyn Read,
    /// Bytes read but not yet handed out (a partial line).
    carry: Vec<u8>,
    spare: VecDeque<Buffers>,
    /// The helper's share of the hashing, in sixteenths.
    share: usize,
    offset: u64,
    eof: bool,
    end: End,
}

impl<'a> Reader<'a> {
    fn new(input: &'a mut dyn Read) -> Reader<'a> {
        Reader {
            input,
            carry: Vec::new(),
            spare: VecDeque::new(),
            share: 8,
            offset: 0,
            eof: false,
            end: End::Clean,
        }
    }

    fn recycle(&mut self, b: Block) {
        if self.spare.len() < 4 {
            self.spare.push_back(Buffers {
                data: b.data,
                hashes: b.hashes,
                ends: b.ends,
            });
        }
    }

    /// The next block of whole lines; `None` at the end (see `self.end`).
    fn next_block(&mut self) -> io::Result<Option<Block>> {
        if self.eof {
            return Ok(None);
        }
        // Buffers keep their full length: no zeroing per block.
        let Buffers {
            mut data,
            hashes,
            ends,
        } = self.spare.pop_front().unwrap_or_else(|| Buffers {
            data: vec![0u8; BLOCK],
            hashes: Vec::new(),
            ends: Vec::new(),
        });
        let mut filled = self.carry.len();
        data[..filled].copy_from_slice(&self.carry);
        self.carry.clear();
        // Read up to the target; past it only while the block has no
        // complete line yet.
        let mut want = READ_TARGET.max(filled);
        let mut len = 0;
        while filled < BLOCK && !self.eof {
            while filled < want {
                match self.input.read(&mut data[filled..want]) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            len = memchr::memrchr(b'\n', &data[..filled]).map_or(0, |i| i + 1);
            if len > 0 {
                break;
            }
            want = (want * 2).min(BLOCK);
        }
        if len == 0 {
            len = memchr::memrchr(b'\n', &data[..filled]).map_or(0, |i| i + 1);
        }
        self.carry.extend_from_slice(&data[len..filled]);
        if self.eof && !self.carry.is_empty() {
            self.end = End::Torn(self.carry.len());
        } else if len == 0 && !self.eof {
            // A full block without a newline: no record is this long.
            self.end = End::TooLong;
            self.eof = true;
            return Ok(None);
        }
        if len == 0 {
            return Ok(None);
        }
        let b = Block {
            data,
            len,
            offset: self.offset,
            bad_json: None,
            hashes,
            ends,
            share: self.share,
            helper_time: Duration::ZERO,
        };
        self.offset += len as u64;
        Ok(Some(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], parallel: bool) -> (Vec<(u64, Vec<u8>)>, End) {
        let mut out = Vec::new();
        let mut r = input;
        let end = for_each(&mut r, parallel, &mut |b| {
            out.push((b.offset, b.bytes().to_vec()));
            true
        })
        .unwrap();
        (out, end)
    }

    #[test]
    fn bad_json_is_found_by_line_index() {
        let mut good = Vec::new();
        line::encode(
            &mut good,
            1,
            "2026-11-01T12:34:56.123456Z",
            &super::super::RecordHash::GENESIS,
            b"\"kind\":\"k\"",
        );
        let mut bad = Vec::new();
        line::encode(
            &mut bad,
            2,
            "2026-11-01T12:34:56.123456Z",
            &super::super::RecordHash::GENESIS,
            b"\"kind\":\"k\",\"x\":01",
        );
        for parallel in [false, true] {
            let input = [good.clone(), good.clone(), bad.clone(), good.clone()].concat();
            let mut r = input.as_slice();
            let mut seen = None;
            for_each(&mut r, parallel, &mut |b| {
                seen = b.bad_json.as_ref().map(|(i, _)| *i);
                true
            })
            .unwrap();
            assert_eq!(seen, Some(2));
        }
    }

    #[test]
    fn blocks_are_whole_lines_and_the_end_is_classified() {
        for parallel in [false, true] {
            let (b, end) = collect(b"a\nb\nc", parallel);
            assert_eq!(b, vec![(0, b"a\nb\n".to_vec())]);
            assert_eq!(end, End::Torn(1));
            let (b, end) = collect(b"", parallel);
            assert!(b.is_empty());
            assert_eq!(end, End::Clean);
            let mut big = vec![b'x'; BLOCK + 10];
            big.push(b'\n');
            assert_eq!(collect(&big, parallel).1, End::TooLong);
        }
    }

    #[test]
    fn many_blocks_keep_line_numbers() {
        let line = vec![b'y'; 999];
        let mut input = Vec::new();
        for _ in 0..10_000 {
            input.extend_from_slice(&line);
            input.push(b'\n');
        }
        let (blocks, end) = collect(&input, true);
        assert_eq!(end, End::Clean);
        assert!(blocks.len() > 2);
        let mut lines = 0;
        let mut offset = 0;
        for (off, bytes) in &blocks {
            assert_eq!(*off, offset);
            lines += bytes.iter().filter(|&&c| c == b'\n').count();
            offset += bytes.len() as u64;
        }
        assert_eq!(lines, 10_000);
    }
}
