//! Redacting a whole reader into a writer on two threads: [`Stream::pump`].
//!
//! A finder thread reads the input and classifies it, 64 bytes at a time,
//! into the positions where byte-class detectors must run (`scan::Finder`:
//! the larger part of the work on ordinary log text). The calling thread
//! receives each piece with its trigger positions and does the rest, exactly
//! as a single-threaded stream would: the detectors at those positions, the
//! literal and custom scanners, merging, replacing, writing. To balance the
//! two, the finder leaves a stretch of about [`SHARE`] of each large piece
//! to the calling thread, which classifies it itself (`scan::Stretch`). The
//! positions are the ones the single-threaded scanner would find, in the same
//! order, so the output and the receipts are byte for byte the same.
//!
//! Every piece is handed over as soon as `read()` returns it and its output
//! is written before the next one is taken, so an interactive stream is
//! forwarded as promptly as on one thread. Memory stays bounded: at most
//! [`DEPTH`] pieces of [`CHUNK`] bytes are in flight, and their buffers
//! circulate between the two threads instead of being allocated per read.
//! Both threads block on channels when idle; neither spins.

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use super::RedactError;
use super::scan::{Finder, Stretch, Trigger};
use super::stream::Stream;
use super::text::Window;

#[cfg(test)]
mod tests;

/// Largest read. A pipe holds 64 KiB unless its reader enlarges it, as
/// `enforcecore redact` does: larger pieces mean fewer hand-overs between
/// the threads (each costs a wake-up).
pub(crate) const CHUNK: usize = 256 * 1024;

/// The share of each piece whose triggers the detecting thread finds itself
/// (in stretches the finder skips): it balances the two threads, the finder
/// also paying for the reads.
pub(crate) const SHARE: f32 = 0.3;

/// Pieces in flight between the finder and the detectors.
pub(crate) const DEPTH: usize = 4;

/// One piece of input with its trigger positions.
struct Piece {
    /// `buf[from..to]` is the new input; before it, history the finder kept.
    buf: Vec<u8>,
    from: usize,
    to: usize,
    triggers: Vec<Trigger>,
    /// Stretches whose triggers the receiving side finds itself.
    stretches: Vec<Stretch>,
    /// Every trigger before this absolute position has been found.
    found_to: u64,
    eof: bool,
}

/// What the finder thread sends.
enum Found {
    Piece(Piece),
    ReadFailed(io::Error),
}

impl Stream {
    /// Redact everything `input` yields into `output`, then end the stream
    /// (as [`StreamFilter::finish`](super::StreamFilter::finish) does).
    ///
    /// The input is read and classified on a second thread while this one
    /// runs the detectors and writes: the output and the receipts are the
    /// same as pushing each read into the stream, and each read's output is
    /// written before the next read is taken. A stream that has already been
    /// pushed to is pumped on this thread alone.
    ///
    /// On a write error the finder thread is left to end by itself: it stops
    /// at its next read, or when that read returns.
    pub fn pump<R, W>(&mut self, input: R, output: &mut W) -> Result<(), RedactError>
    where
        R: Read + Send + 'static,
        W: Write + ?Sized,
    {
        if !self.is_fresh() {
            return self.pump_serial(input, output);
        }
        let (tx, rx) = sync_channel::<Found>(DEPTH);
        let (back_tx, back_rx) = sync_channel::<Piece>(DEPTH + 2);
        let kinds = self.engine().scan_kinds;
        std::thread::Builder::new()
            .name("redact-find".into())
            .spawn(move || find(input, kinds, &tx, &back_rx))
            .map_err(|source| RedactError::Thread { source })?;
        self.hand_off_finding();
        let mut out = Vec::with_capacity(CHUNK + CHUNK / 4);
        loop {
            let piece = match rx.recv() {
                Ok(Found::Piece(p)) => p,
                Ok(Found::ReadFailed(source)) => return Err(RedactError::Read { source }),
                // The finder only stops early after a read error, sent above.
                Err(_) => return Err(RedactError::FinderLost),
            };
            out.clear();
            self.push_found(
                &piece.buf[piece.from..piece.to],
                &piece.triggers,
                piece.found_to,
                &piece.stretches,
                piece.eof,
                &mut out,
            );
            output
                .write_all(&out)
                .map_err(|source| RedactError::Write { source })?;
            if piece.eof {
                return output
                    .flush()
                    .map_err(|source| RedactError::Write { source });
            }
            // The finder may have stopped waiting for buffers; that is fine.
            let _ = back_tx.try_send(piece);
        }
    }

    /// [`Stream::pump`] on this thread alone.
    fn pump_serial<R: Read, W: Write + ?Sized>(
        &mut self,
        mut input: R,
        output: &mut W,
    ) -> Result<(), RedactError> {
        use super::StreamFilter;
        let mut buf = vec![0u8; CHUNK];
        let mut out = Vec::with_capacity(CHUNK + CHUNK / 4);
        loop {
            let n = match input.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(RedactError::Read { source }),
            };
            out.clear();
            if n == 0 {
                self.finish(&mut out);
            } else {
                self.push(&buf[..n], &mut out);
            }
            output
                .write_all(&out)
                .map_err(|source| RedactError::Write { source })?;
            if n == 0 {
                return output
                    .flush()
                    .map_err(|source| RedactError::Write { source });
            }
        }
    }
}

/// The finder thread: read, find the triggers, hand the piece over; until
/// the end of the input, a read error, or the receiving side is gone.
fn find<R: Read>(mut input: R, kinds: u8, tx: &SyncSender<Found>, back: &Receiver<Piece>) {
    let mut finder = Finder::new(kinds);
    // `buf[..kept]` is history the finder may still read, from absolute `base`.
    let mut buf = Vec::new();
    let mut kept = 0usize;
    let mut base = 0u64;
    loop {
        if buf.len() < kept + CHUNK {
            buf.resize(kept + CHUNK, 0);
        }
        let n = match input.read(&mut buf[kept..kept + CHUNK]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Found::ReadFailed(e));
                return;
            }
        };
        let eof = n == 0;
        let end = kept + n;
        let mut piece = match back.try_recv() {
            Ok(p) => p,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Piece {
                buf: Vec::new(),
                from: 0,
                to: 0,
                triggers: Vec::new(),
                stretches: Vec::new(),
                found_to: 0,
                eof: false,
            },
        };
        piece.triggers.clear();
        piece.stretches.clear();
        let w = Window::new(&buf[..end], eof);
        piece.found_to = finder.find(
            &w,
            base,
            base + kept as u64,
            SHARE,
            &mut piece.triggers,
            &mut piece.stretches,
        );
        // Carry the history the finder still needs into the next buffer; the
        // piece's buffer (recycled from an earlier piece) becomes that buffer.
        let keep = finder.keep_from().clamp(base, base + end as u64);
        let keep_rel = (keep - base) as usize;
        let mut next = std::mem::take(&mut piece.buf);
        let history = end - keep_rel;
        if next.len() < history + CHUNK {
            next.resize(history + CHUNK, 0);
        }
        next[..history].copy_from_slice(&buf[keep_rel..end]);
        piece.buf = std::mem::replace(&mut buf, next);
        piece.from = kept;
        piece.to = end;
        piece.eof = eof;
        kept = history;
        base = keep;
        if tx.send(Found::Piece(piece)).is_err() || eof {
            return;
        }
    }
}
