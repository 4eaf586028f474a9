//! The control socket's wire protocol, version 1 (documented for client
//! writers in `docs/protocol.md`).
//!
//! Every message is a *frame*: a 4-byte big-endian length, then that many bytes
//! of one JSON object. The client sends exactly one request frame per
//! connection; a `call` request carries the caller's stdin, stdout and stderr as
//! three descriptors (`SCM_RIGHTS`) attached to the frame's bytes. The daemon
//! answers with event frames: for a call, `started` and then one final
//! `exited` or `error`; for other requests one final frame. After the request,
//! anything the client sends, or its hang-up, cancels a run.
//!
//! This module owns the message types and the framing, as pure code: it never
//! touches a socket, and it must never accept a frame larger than its limit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Bytes of a frame's length prefix.
pub const HEADER: usize = 4;

/// The largest frame the client accepts from the daemon (responses are small).
pub const MAX_RESPONSE: usize = 64 * 1024;

/// A request from a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Run a policy tool. Three descriptors (stdin, stdout, stderr) come with it.
    Call {
        /// Protocol version ([`VERSION`]).
        v: u32,
        /// The policy tool's name.
        tool: String,
        /// Arguments after the tool's command (`argv[1..]`).
        #[serde(default)]
        args: Vec<String>,
        /// The caller's environment; only the tool's allow-list reaches it.
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// Re-read the daemon's policy (admins only).
    Reload {
        /// Protocol version.
        v: u32,
    },
}

impl Request {
    /// The version the client spoke.
    pub fn version(&self) -> u32 {
        match self {
            Request::Call { v, .. } | Request::Reload { v } => *v,
        }
    }

    /// The operation's name, for logs and errors.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Call { .. } => "call",
            Request::Reload { .. } => "reload",
        }
    }
}

/// A message from the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Response {
    /// The call was admitted (identity, tool rules, limits) and its run is
    /// starting under this id.
    Started {
        /// Protocol version.
        v: u32,
        /// The run id (as in the audit trail).
        run: String,
    },
    /// The run ended. Final.
    Exited {
        /// Protocol version.
        v: u32,
        /// The run id.
        run: String,
        /// The exit code `enforcecore call` exits with (DESIGN §7).
        code: u8,
        /// Why it ended (`exited`, `signaled`, `timeout`, `oom`, ...).
        cause: String,
        /// A line for the caller's stderr when the run did not end by the
        /// tool's own exit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The policy was re-read and is in effect. Final.
    Reloaded {
        /// Protocol version.
        v: u32,
        /// The policy's name.
        policy: String,
        /// SHA-256 of the effective policy now in effect.
        sha256: String,
        /// Whether it differs from the one it replaced.
        changed: bool,
    },
    /// The request failed or was refused; nothing ran. Final.
    Error {
        /// Protocol version.
        v: u32,
        /// The exit code for the client: 126 refused (identity, tool,
        /// arguments, rate limit), 125 the daemon failed or the request was
        /// malformed, 127 the command does not exist, 1 a reload was rejected.
        code: u8,
        /// What went wrong and what to do about it.
        message: String,
    },
}

impl Response {
    /// An error response.
    pub fn error(code: u8, message: impl Into<String>) -> Response {
        Response::Error {
            v: VERSION,
            code,
            message: message.into(),
        }
    }

    /// Whether the daemon sends nothing after this.
    pub fn is_final(&self) -> bool {
        !matches!(self, Response::Started { .. })
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announced more than the limit.
    #[error("request frame of {announced} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// What the prefix said.
        announced: u64,
        /// The limit.
        limit: usize,
    },
    /// The stream ended inside a frame.
    #[error("connection closed after {got} of {want} bytes of a frame")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes the frame needed.
        want: usize,
    },
    /// The frame is not a request this version understands.
    #[error("malformed request: {0}; see docs/protocol.md")]
    Malformed(String),
}

/// Encode one frame: the length prefix and the JSON bytes of `msg`.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serializing these plain enums cannot fail.
    let body = serde_json::to_vec(msg).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Parse a request frame's body.
pub fn parse_request(body: &[u8]) -> Result<Request, FrameError> {
    let req: Request =
        serde_json::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if req.version() != VERSION {
        return Err(FrameError::Malformed(format!(
            "protocol version {} is not supported (this daemon speaks {VERSION}); use a \
             matching `enforcecore call`",
            req.version()
        )));
    }
    if let Some(what) = nul_byte(&req) {
        return Err(FrameError::Malformed(format!(
            "{what} contains a NUL byte, which no command line or environment can carry"
        )));
    }
    Ok(req)
}

/// What in a call holds a NUL byte, if anything: refused with the request,
/// before a run is announced, since such a call could never be executed.
fn nul_byte(req: &Request) -> Option<String> {
    let Request::Call {
        tool, args, env, ..
    } = req
    else {
        return None;
    };
    if tool.contains('\0') {
        return Some("the tool name".into());
    }
    if let Some(i) = args.iter().position(|a| a.contains('\0')) {
        // Numbered as in argv: the tool's command is argument 0.
        return Some(format!("argument {}", i + 1));
    }
    env.iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| format!("environment variable `{}`", k.escape_debug()))
}

/// Incremental frame reader with a hard size limit: feed it what the socket
/// gives, get whole frames out. Holds at most `HEADER + limit` bytes.
#[derive(Debug)]
pub struct FrameReader {
    limit: usize,
    buf: Vec<u8>,
}

impl FrameReader {
    /// A reader refusing frames whose body is over `limit` bytes.
    pub fn new(limit: usize) -> FrameReader {
        FrameReader {
            limit,
            buf: Vec::new(),
        }
    }

    /// How many more bytes may be read without going past the current frame
    /// (so a reader never holds the next frame's bytes, nor unbounded data).
    pub fn wanted(&self) -> usize {
        match self.announced() {
            None => HEADER - self.buf.len(),
            Some(n) => HEADER + n.min(self.limit) - self.buf.len(),
        }
    }

    fn announced(&self) -> Option<usize> {
        let h: [u8; HEADER] = self.buf.get(..HEADER)?.try_into().ok()?;
        Some(u32::from_be_bytes(h) as usize)
    }

    /// Add bytes (at most [`FrameReader::wanted`] of them). Returns the frame's
    /// body once it is complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        self.buf.extend_from_slice(bytes);
        let Some(n) = self.announced() else {
            return Ok(None);
        };
        if n > self.limit {
            return Err(FrameError::TooLarge {
                announced: n as u64,
                limit: self.limit,
            });
        }
        if self.buf.len() < HEADER + n {
            return Ok(None);
        }
        let body = self.buf[HEADER..HEADER + n].to_vec();
        self.buf.drain(..HEADER + n);
        Ok(Some(body))
    }

    /// The stream ended: an error when it ended inside a frame.
    pub fn eof(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        Err(FrameError::Truncated {
            got: self.buf.len(),
            want: self.announced().map_or(HEADER, |n| HEADER + n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn call() -> Request {
        Request::Call {
            v: VERSION,
            tool: "echo".into(),
            args: vec!["a b".into(), "ü".into()],
            env: BTreeMap::from([("LANG".into(), "C".into())]),
        }
    }

    #[test]
    fn nul_bytes_are_malformed() {
        let with = |tool: &str, arg: &str, var: (&str, &str)| {
            let req = Request::Call {
                v: VERSION,
                tool: tool.into(),
                args: vec!["ok".into(), arg.into()],
                env: BTreeMap::from([(var.0.into(), var.1.into())]),
            };
            parse_request(&encode(&req)[HEADER..])
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(with("echo", "b", ("A", "1")), None);
        let e = with("echo", "a\0b", ("A", "1")).unwrap();
        assert!(e.contains("argument 2 contains a NUL byte"), "{e}");
        let e = with("ec\0ho", "b", ("A", "1")).unwrap();
        assert!(e.contains("the tool name contains a NUL byte"), "{e}");
        let e = with("echo", "b", ("A", "1\0")).unwrap();
        assert!(e.contains("environment variable `A`"), "{e}");
        let e = with("echo", "b", ("A\0B", "1")).unwrap();
        assert!(e.contains("environment variable `A\\0B`"), "{e}");
    }

    #[test]
    fn request_round_trips() {
        let frame = encode(&call());
        let mut r = FrameReader::new(1024);
        let body = r.push(&frame).unwrap().unwrap();
        assert_eq!(parse_request(&body).unwrap(), call());
        assert!(r.eof().is_ok());
    }

    #[test]
    fn wire_form_is_documented_shape() {
        let body = &encode(&Request::Reload { v: 1 })[HEADER..];
        assert_eq!(body, br#"{"op":"reload","v":1}"#);
        let body = &encode(&Response::error(126, "no"))[HEADER..];
        assert_eq!(
            body,
            br#"{"event":"error","v":1,"code":126,"message":"no"}"#
        );
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header() {
        let mut r = FrameReader::new(16);
        let err = r.push(&1000u32.to_be_bytes()).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                announced: 1000,
                limit: 16
            }
        );
    }

    #[test]
    fn unknown_fields_versions_and_ops_are_malformed() {
        for bad in [
            &br#"{"op":"call","v":1,"tool":"x","sudo":true}"#[..],
            br#"{"op":"call","v":2,"tool":"x"}"#,
            br#"{"op":"shell","v":1}"#,
            br#"not json"#,
            br#"{"v":1}"#,
        ] {
            assert!(
                matches!(parse_request(bad), Err(FrameError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn truncated_frame_is_reported_at_eof() {
        let frame = encode(&call());
        let mut r = FrameReader::new(1024);
        assert_eq!(r.push(&frame[..7]).unwrap(), None);
        assert!(matches!(r.eof(), Err(FrameError::Truncated { got: 7, .. })));
    }

    proptest! {
        /// However the bytes are split, the same frame comes out, and the
        /// reader never asks for more than the frame holds.
        #[test]
        fn chunking_does_not_matter(cuts in proptest::collection::vec(1usize..40, 0..20)) {
            let frame = encode(&call());
            let mut r = FrameReader::new(1024);
            let mut at = 0;
            let mut out = None;
            for c in cuts.iter().copied().chain(std::iter::repeat(7)) {
                if at >= frame.len() { break; }
                let n = c.min(r.wanted()).min(frame.len() - at);
                prop_assert!(n > 0);
                if let Some(b) = r.push(&frame[at..at + n]).unwrap() { out = Some(b); }
                at += n;
            }
            prop_assert_eq!(parse_request(&out.unwrap()).unwrap(), call());
        }
    }
}
