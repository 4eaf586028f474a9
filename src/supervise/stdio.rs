//! The tool's stdio: three pipes owned by the supervisor, and the pumps that move
//! bytes between them and the caller's streams through a [`StreamFilter`].
//!
//! The tool never sees a caller's fd: its 0, 1 and 2 are pipe ends created here.
//! The caller's streams arrive as owned fds (the terminal of `run`, or fds a daemon
//! client passed over SCM_RIGHTS) or as async readers/writers. A caller fd is
//! driven without changing *its* file description, which other processes share:
//! pipes and terminals are reopened through `/proc/self/fd` (a private description
//! that may be non-blocking), sockets use `MSG_DONTWAIT` per call, and regular
//! files and `/dev/null` (which never block for long) are written directly. A
//! caller fd whose description does not grant the direction it is used in, or
//! that is none of those kinds, is refused before the run starts ([`check`]).
//!
//! Output cap: stdout and stderr share one byte budget counted before redaction.
//! The byte that crosses it is not forwarded; the pump flags the cap and keeps
//! draining (discarding) so the tool cannot block before it is killed.
//!
//! This module must never pass a caller fd to the tool, and never block the
//! runtime on a stream that can stall.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::fcntl::OFlag;
use nix::sys::socket::{MsgFlags, recv, send};
use nix::sys::stat::{Mode, SFlag, fstat};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::Notify;

use crate::policy::Streams as RedactStreams;
use crate::redact::{Engine, StreamFilter};
use crate::report::RedactionReceipt;
use crate::sys::reactor;

const CHUNK: usize = 64 * 1024;

/// The pumps' first read buffer: a tool that says little never makes the
/// supervisor touch (fault in and zero) three 64 KiB buffers.
const FIRST_READ: usize = 4096;

/// After a read of `n` bytes that filled `buf`, let the next read take up to
/// [`CHUNK`] bytes.
fn grow(buf: &mut Vec<u8>, n: usize) {
    if n == buf.len() && buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
}

/// Where the tool's stdin comes from.
pub enum Input {
    /// Nothing: the tool reads EOF.
    Null,
    /// A caller fd (terminal, pipe, socket, file).
    Fd(OwnedFd),
    /// An async reader.
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

/// Where the tool's stdout or stderr goes.
pub enum Output {
    /// Discarded (still counted against the output cap).
    Null,
    /// A caller fd (terminal, pipe, socket, file).
    Fd(OwnedFd),
    /// An async writer.
    Writer(Box<dyn AsyncWrite + Send + Unpin>),
}

/// A caller stream, made safe to drive from async code.
enum CallerEnd {
    Null,
    /// A private non-blocking description (reopened pipe or terminal).
    Private(AsyncFd<OwnedFd>),
    /// A shared socket description: every call passes `MSG_DONTWAIT`.
    Socket(AsyncFd<OwnedFd>),
    /// A regular file or `/dev/null`: plain blocking calls.
    Direct(OwnedFd),
    Reader(Box<dyn AsyncRead + Send + Unpin>),
    Writer(Box<dyn AsyncWrite + Send + Unpin>),
}

/// How a caller fd is driven ([`classify`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A socket: `MSG_DONTWAIT` per call on the shared description.
    Socket,
    /// A pipe or a character device (terminal, `/dev/null`): reopened privately.
    Reopen,
    /// A regular file or a block device: never blocks for long.
    Direct,
}

/// Whether a caller fd can serve as a stream in this direction, and how.
///
/// The fd's own description must grant the direction (`O_PATH` grants
/// nothing): a pipe or terminal is reopened through `/proc/self/fd` by a
/// supervisor that may be root, and must never get more access than the
/// caller passed. Kinds that may block and cannot be reopened non-blocking
/// (eventfd, timerfd, signalfd, inotify, epoll, …) and directories are
/// refused: a read on them could stall a thread the runtime needs.
fn classify(fd: BorrowedFd<'_>, write: bool) -> io::Result<Kind> {
    let refuse = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    let flags = OFlag::from_bits_truncate(nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)?);
    let access = flags & OFlag::O_ACCMODE;
    if flags.contains(OFlag::O_PATH) {
        return refuse("it is an O_PATH descriptor, which can be neither read nor written".into());
    }
    let granted = if write {
        access == OFlag::O_WRONLY || access == OFlag::O_RDWR
    } else {
        access == OFlag::O_RDONLY || access == OFlag::O_RDWR
    };
    if !granted {
        let wanted = if write { "writing" } else { "reading" };
        return refuse(format!("it was not opened for {wanted}"));
    }
    let st = fstat(fd)?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    Ok(match kind {
        SFlag::S_IFSOCK => Kind::Socket,
        SFlag::S_IFIFO | SFlag::S_IFCHR => Kind::Reopen,
        SFlag::S_IFREG | SFlag::S_IFBLK => Kind::Direct,
        SFlag::S_IFDIR => return refuse("it is a directory".into()),
        _ => {
            return refuse(
                "it is not a pipe, socket, terminal or file (an eventfd, timerfd, signalfd, \
                 inotify or epoll descriptor?)"
                    .into(),
            );
        }
    })
}

/// Refuse caller streams that cannot be driven safely ([`classify`]) before
/// anything of the run exists.
pub fn check(streams: &Streams) -> io::Result<()> {
    let named = |name: &str, fd: &OwnedFd, write: bool| {
        classify(fd.as_fd(), write).map(drop).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("the caller's {name} cannot be the tool's {name}: {e}"),
            )
        })
    };
    if let Input::Fd(fd) = &streams.stdin {
        named("stdin", fd, false)?;
    }
    if let Output::Fd(fd) = &streams.stdout {
        named("stdout", fd, true)?;
    }
    if let Output::Fd(fd) = &streams.stderr {
        named("stderr", fd, true)?;
    }
    Ok(())
}

fn caller_fd(fd: OwnedFd, write: bool) -> io::Result<CallerEnd> {
    let interest = if write {
        Interest::WRITABLE
    } else {
        Interest::READABLE
    };
    match classify(fd.as_fd(), write)? {
        Kind::Socket => Ok(CallerEnd::Socket(reactor::register(fd, interest)?)),
        Kind::Direct => Ok(CallerEnd::Direct(fd)),
        Kind::Reopen => {
            // The same direction the caller's description grants ([`classify`]).
            let access = if write {
                OFlag::O_WRONLY
            } else {
                OFlag::O_RDONLY
            };
            let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let flags = access | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
            match nix::fcntl::open(path.as_str(), flags, Mode::empty()) {
                Ok(private) => match reactor::register(private, interest) {
                    Ok(a) => Ok(CallerEnd::Private(a)),
                    // Not pollable (e.g. /dev/null): it never blocks.
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(CallerEnd::Direct(fd)),
                    Err(e) => Err(e),
                },
                // A supervisor without root may not reopen a pipe another user
                // created (mode 0600): it is driven on its shared description.
                Err(_) => Ok(CallerEnd::Direct(fd)),
            }
        }
    }
}

impl CallerEnd {
    fn input(i: Input) -> io::Result<CallerEnd> {
        match i {
            Input::Null => Ok(CallerEnd::Null),
            Input::Fd(fd) => caller_fd(fd, false),
            Input::Reader(r) => Ok(CallerEnd::Reader(r)),
        }
    }

    fn output(o: Output) -> io::Result<CallerEnd> {
        match o {
            Output::Null => Ok(CallerEnd::Null),
            Output::Fd(fd) => caller_fd(fd, true),
            Output::Writer(w) => Ok(CallerEnd::Writer(w)),
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            CallerEnd::Null | CallerEnd::Writer(_) => Ok(0),
            CallerEnd::Private(a) => loop {
                let mut g = a.readable().await?;
                match g.try_io(|fd| Ok(nix::unistd::read(fd.get_ref(), buf)?)) {
                    Ok(r) => return r,
                    Err(_would_block) => continue,
                }
            },
            CallerEnd::Socket(a) => loop {
                let mut g = a.readable().await?;
                match g.try_io(|fd| Ok(recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT)?)) {
                    Ok(r) => return r,
                    Err(_would_block) => continue,
                }
            },
            CallerEnd::Direct(fd) => Ok(nix::unistd::read(fd.as_fd(), buf)?),
            CallerEnd::Reader(r) => r.read(buf).await,
        }
    }

    async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = match self {
                CallerEnd::Null | CallerEnd::Reader(_) => buf.len(),
                CallerEnd::Private(a) => {
                    let mut g = a.writable().await?;
                    match g.try_io(|fd| Ok(nix::unistd::write(fd.get_ref(), buf)?)) {
                        Ok(r) => r?,
                        Err(_would_block) => continue,
                    }
                }
                CallerEnd::Socket(a) => {
                    let mut g = a.writable().await?;
                    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
                    match g.try_io(|fd| Ok(send(fd.as_raw_fd(), buf, flags)?)) {
                        Ok(r) => r?,
                        Err(_would_block) => continue,
                    }
                }
                CallerEnd::Direct(fd) => match nix::unistd::write(fd.as_fd(), buf) {
                    Err(nix::Error::EINTR) => continue,
                    r => r?,
                },
                CallerEnd::Writer(w) => {
                    w.write_all(buf).await?;
                    w.flush().await?;
                    buf.len()
                }
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        Ok(())
    }
}

/// The tool's three pipes: the child's ends (to hand over) and the supervisor's.
pub struct ToolPipes {
    /// The child's stdin, stdout, stderr ends (CLOEXEC, all >= 3).
    pub child: [OwnedFd; 3],
    parent: ParentPipes,
}

/// The supervisor's ends of the tool's pipes.
pub struct ParentPipes {
    stdin: pipe::Sender,
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
}

/// Make sure a child-side fd is >= 3 so that `dup2` onto 0..=2 never aliases.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= 3 {
        return Ok(fd);
    }
    // OwnedFd::try_clone duplicates with F_DUPFD_CLOEXEC starting at 3.
    fd.try_clone()
}

impl ToolPipes {
    /// Create the three pipes (must run inside the tokio runtime).
    pub fn new() -> io::Result<ToolPipes> {
        let (in_r, in_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        Ok(ToolPipes {
            child: [above_stdio(in_r)?, above_stdio(out_w)?, above_stdio(err_w)?],
            parent: ParentPipes {
                stdin: pipe::Sender::from_owned_fd(in_w)?,
                stdout: pipe::Receiver::from_owned_fd(out_r)?,
                stderr: pipe::Receiver::from_owned_fd(err_r)?,
            },
        })
    }

    /// Close the child's ends (once the child has its copies) and keep ours.
    pub fn into_parent(self) -> ParentPipes {
        self.parent
    }
}

/// The shared stdout+stderr byte budget.
#[derive(Debug, Default)]
pub struct OutputCap {
    limit: Option<u64>,
    total: AtomicU64,
    hit: AtomicBool,
    /// Notified once when the budget is exceeded.
    pub notify: Notify,
}

impl OutputCap {
    /// A budget of `limit` bytes (`None`: unlimited, only counted).
    pub fn new(limit: Option<u64>) -> OutputCap {
        OutputCap {
            limit,
            ..OutputCap::default()
        }
    }

    /// Bytes the tool wrote to stdout and stderr so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Whether the budget was exceeded.
    pub fn hit(&self) -> bool {
        self.hit.load(Ordering::Relaxed)
    }

    /// Account `n` new bytes; returns how many of them may be forwarded.
    fn take(&self, n: usize) -> usize {
        let prev = self.total.fetch_add(n as u64, Ordering::Relaxed);
        let Some(limit) = self.limit else { return n };
        let allowed = limit.saturating_sub(prev).min(n as u64) as usize;
        if allowed < n && !self.hit.swap(true, Ordering::Relaxed) {
            self.notify.notify_one();
        }
        allowed
    }
}

/// Running pumps.
pub struct Pumps {
    /// stdin pump (aborted when the run ends).
    pub stdin: tokio::task::JoinHandle<()>,
    /// stdout and stderr pumps (they end at EOF).
    pub outputs: [tokio::task::JoinHandle<()>; 2],
    /// Redaction receipts, complete once every pump task has ended.
    pub receipts: Receipts,
}

/// The caller's streams and the per-stream filters.
pub struct Streams {
    /// stdin source.
    pub stdin: Input,
    /// stdout sink.
    pub stdout: Output,
    /// stderr sink.
    pub stderr: Output,
}

/// The identity filter: bytes pass unchanged (streams without redaction).
#[derive(Clone, Copy, Debug, Default)]
pub struct Passthrough;

impl StreamFilter for Passthrough {
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(input);
    }
    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

impl Filters {
    /// No redaction on any stream.
    pub fn passthrough() -> Filters {
        Filters {
            stdin: Box::new(Passthrough),
            stdout: Box::new(Passthrough),
            stderr: Box::new(Passthrough),
        }
    }

    /// The policy's redaction: each stream it names passes through its own
    /// stream of `engine`; the others pass unchanged.
    pub fn redacting(engine: &Arc<Engine>, streams: RedactStreams) -> Filters {
        let pick = |on: bool, name: &str| -> Box<dyn StreamFilter> {
            if on {
                Box::new(engine.stream(name))
            } else {
                Box::new(Passthrough)
            }
        };
        Filters {
            stdin: pick(streams.stdin, "stdin"),
            stdout: pick(streams.stdout, "stdout"),
            stderr: pick(streams.stderr, "stderr"),
        }
    }
}

/// The receipts of a run's filters, collected as each pump ends.
pub type Receipts = Arc<Mutex<Vec<RedactionReceipt>>>;

/// A pump's filter; hands its receipts to the run when the pump ends, however
/// it ends (EOF, the tool closing its stdin, or the task being aborted).
struct Filtered {
    filter: Box<dyn StreamFilter>,
    receipts: Receipts,
}

impl Drop for Filtered {
    fn drop(&mut self) {
        let mine = self.filter.receipts();
        if !mine.is_empty() {
            let mut all = self.receipts.lock().unwrap_or_else(|p| p.into_inner());
            all.extend(mine);
        }
    }
}

/// Per-stream filters (identity where no redaction is configured).
pub struct Filters {
    /// Caller → tool.
    pub stdin: Box<dyn StreamFilter>,
    /// Tool → caller.
    pub stdout: Box<dyn StreamFilter>,
    /// Tool → caller.
    pub stderr: Box<dyn StreamFilter>,
}

/// Start the three pumps.
pub fn start(
    pipes: ParentPipes,
    streams: Streams,
    filters: Filters,
    cap: Arc<OutputCap>,
) -> io::Result<Pumps> {
    let source = CallerEnd::input(streams.stdin)?;
    let out = CallerEnd::output(streams.stdout)?;
    let err = CallerEnd::output(streams.stderr)?;
    let receipts = Receipts::default();
    let wrap = |filter| Filtered {
        filter,
        receipts: receipts.clone(),
    };
    let stdin = tokio::spawn(pump_input(source, pipes.stdin, wrap(filters.stdin)));
    let o = tokio::spawn(pump_output(
        pipes.stdout,
        out,
        wrap(filters.stdout),
        cap.clone(),
    ));
    let e = tokio::spawn(pump_output(pipes.stderr, err, wrap(filters.stderr), cap));
    Ok(Pumps {
        stdin,
        outputs: [o, e],
        receipts,
    })
}

async fn pump_input(mut from: CallerEnd, mut to: pipe::Sender, mut filter: Filtered) {
    let filter = &mut filter.filter;
    let mut buf = vec![0u8; FIRST_READ];
    let mut out = Vec::with_capacity(CHUNK);
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("reading the caller's stdin failed: {e}");
                break;
            }
        };
        grow(&mut buf, n);
        out.clear();
        filter.push(&buf[..n], &mut out);
        if to.write_all(&out).await.is_err() {
            return; // the tool closed its stdin
        }
    }
    out.clear();
    filter.finish(&mut out);
    let _ = to.write_all(&out).await;
    // Dropping `to` closes the tool's stdin.
}

async fn pump_output(
    mut from: pipe::Receiver,
    mut to: CallerEnd,
    mut filter: Filtered,
    cap: Arc<OutputCap>,
) {
    let filter = &mut filter.filter;
    let mut buf = vec![0u8; FIRST_READ];
    let mut out = Vec::with_capacity(CHUNK);
    let mut sink_ok = true;
    let mut forwarding = true;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("reading the tool's output failed: {e}");
                break;
            }
        };
        let allowed = cap.take(n);
        if !forwarding || !sink_ok {
            grow(&mut buf, n);
            continue;
        }
        out.clear();
        filter.push(&buf[..allowed], &mut out);
        grow(&mut buf, n);
        if allowed < n {
            forwarding = false;
            filter.finish(&mut out);
        }
        if let Err(e) = to.write_all(&out).await {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!("forwarding the tool's output failed: {e}");
            }
            sink_ok = false;
        }
    }
    if forwarding && sink_ok {
        out.clear();
        filter.finish(&mut out);
        let _ = to.write_all(&out).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffers_start_small_and_grow_once_filled() {
        let mut buf = vec![0u8; FIRST_READ];
        grow(&mut buf, 10);
        assert_eq!(buf.len(), FIRST_READ, "a short read keeps the small buffer");
        buf[..3].copy_from_slice(b"abc");
        grow(&mut buf, FIRST_READ);
        assert_eq!(
            buf.len(),
            CHUNK,
            "a full read lets the next one take a chunk"
        );
        assert_eq!(&buf[..3], b"abc", "what was read stays");
        grow(&mut buf, CHUNK);
        assert_eq!(buf.len(), CHUNK, "never beyond a chunk");
    }

    #[test]
    fn the_cap_forwards_exactly_its_budget_once() {
        let cap = OutputCap::new(Some(10));
        assert_eq!(cap.take(4), 4);
        assert!(!cap.hit());
        assert_eq!(cap.take(4), 4);
        assert_eq!(cap.take(4), 2);
        assert!(cap.hit());
        assert_eq!(cap.take(4), 0);
        assert_eq!(cap.total(), 16);
        let unlimited = OutputCap::new(None);
        assert_eq!(unlimited.take(1 << 20), 1 << 20);
        assert!(!unlimited.hit());
    }
}
