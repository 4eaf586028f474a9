//! The client side of the control socket, blocking: what `enforcecore call`
//! and `enforcecore reload` use.
//!
//! A call sends one request frame with this process's stdin, stdout and stderr
//! attached (`SCM_RIGHTS`), then reads event frames until the final one. The
//! daemon writes the tool's (redacted) output straight to the passed stdout
//! and stderr, so the client never copies a byte of it. This module never
//! interprets exit codes beyond handing them back.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::protocol::{self, FrameReader, Request, Response};

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to the daemon at {}: {error}; is `enforcecore serve` running, and may you use its socket (group)?", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Sending the request failed.
    #[error("sending the request failed: {0}")]
    Send(std::io::Error),
    /// Reading an answer failed.
    #[error("reading the daemon's answer failed: {0}")]
    Receive(std::io::Error),
    /// The daemon's answer is not protocol version 1.
    #[error("the daemon sent a malformed answer: {0}")]
    Malformed(String),
    /// The connection ended before the final answer.
    #[error("the daemon closed the connection before answering (was it stopped?)")]
    Closed,
}

/// A connection to the daemon.
pub struct Client {
    stream: UnixStream,
    reader: FrameReader,
}

impl Client {
    /// Connect to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|error| ClientError::Connect {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(Client {
            stream,
            reader: FrameReader::new(protocol::MAX_RESPONSE),
        })
    }

    /// Send the request, with `fds` attached to its first byte.
    pub fn send(&mut self, req: &Request, fds: &[BorrowedFd<'_>]) -> Result<(), ClientError> {
        let frame = protocol::encode(req);
        let n = crate::sys::socket::send_with_fds(self.stream.as_fd(), &frame, fds)
            .map_err(ClientError::Send)?;
        self.stream
            .write_all(&frame[n..])
            .map_err(ClientError::Send)
    }

    /// The next answer.
    pub fn next_response(&mut self) -> Result<Response, ClientError> {
        let mut buf = [0u8; 4096];
        loop {
            let want = self.reader.wanted().min(buf.len());
            let n = match self.stream.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ClientError::Receive(e)),
            };
            if n == 0 {
                return Err(ClientError::Closed);
            }
            let body = self
                .reader
                .push(&buf[..n])
                .map_err(|e| ClientError::Malformed(e.to_string()))?;
            if let Some(body) = body {
                return serde_json::from_slice(&body)
                    .map_err(|e| ClientError::Malformed(e.to_string()));
            }
        }
    }

    /// Send `req` and return the final answer, passing earlier ones to `each`.
    pub fn request(
        &mut self,
        req: &Request,
        fds: &[BorrowedFd<'_>],
        mut each: impl FnMut(&Response),
    ) -> Result<Response, ClientError> {
        self.send(req, fds)?;
        loop {
            let r = self.next_response()?;
            if r.is_final() {
                return Ok(r);
            }
            each(&r);
        }
    }
}

/// This process's stdin, stdout and stderr to pass with a call: each as is, or
/// `/dev/null` in its place when it is closed.
pub fn own_stdio() -> std::io::Result<[OwnedFd; 3]> {
    let dup = |fd: BorrowedFd<'_>, write: bool| -> std::io::Result<OwnedFd> {
        match fd.try_clone_to_owned() {
            Ok(f) => Ok(f),
            Err(_) => Ok(std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .open("/dev/null")?
                .into()),
        }
    };
    Ok([
        dup(std::io::stdin().as_fd(), false)?,
        dup(std::io::stdout().as_fd(), true)?,
        dup(std::io::stderr().as_fd(), true)?,
    ])
}
