//! Clients that misbehave: the daemon answers (or drops) them and keeps serving.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::{Daemon, NOBODY, policy, wait_for};
use crate::util;

/// Connect as root and send raw bytes.
fn raw(d: &Daemon, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = s.write_all(bytes);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(answer.get(4..).unwrap_or_default()).into_owned()
}

#[test]
fn hostile_clients_leave_it_serving() {
    if !util::require_root() {
        return;
    }
    let d = Daemon::start(
        &policy("", ""),
        "limits: {request_timeout: 1s, max_request_bytes: 4096}\n",
    );
    // Garbage.
    let a = raw(&d, b"\x00\x00\x00\x05hello");
    assert!(a.contains("malformed request"), "{a}");
    d.assert_serving();
    // A header announcing 1 GiB: refused from the header, nothing buffered.
    let a = raw(&d, &(1u32 << 30).to_be_bytes());
    assert!(a.contains("over the 4096-byte limit"), "{a}");
    d.assert_serving();
    // A frame that never finishes: the request timeout closes it.
    let a = raw(&d, b"\x00\x00\x01\x00{\"op\":");
    assert!(a.contains("no complete request"), "{a}");
    d.assert_serving();
    // A connection that never sends anything at all.
    let a = raw(&d, b"");
    assert!(a.contains("no complete request"), "{a}");
    // A well-formed call without descriptors.
    let a = raw(&d, &frame(br#"{"op":"call","v":1,"tool":"echo"}"#));
    assert!(a.contains("exactly three descriptors"), "{a}");
    // More descriptors than stdin, stdout and stderr.
    {
        use std::os::fd::AsFd;
        let s = UnixStream::connect(d.socket()).unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let fds = [null.as_fd(); 4];
        let f = frame(br#"{"op":"call","v":1,"tool":"echo"}"#);
        let n = enforcecore::sys::socket::send_with_fds(s.as_fd(), &f, &fds).unwrap();
        assert_eq!(n, f.len());
        let mut answer = Vec::new();
        let _ = (&s).read_to_end(&mut answer);
        let a = String::from_utf8_lossy(&answer);
        assert!(a.contains("descriptors"), "{a}");
    }
    // A future protocol version.
    let a = raw(&d, &frame(br#"{"op":"reload","v":9}"#));
    assert!(a.contains("protocol version 9"), "{a}");
    d.assert_serving();
    // A client that disconnects mid-run: its run is killed and recorded.
    let sleep_exit = |d: &Daemon| {
        d.records()
            .into_iter()
            .find(|r| r["kind"] == "run-exited" && r["tool"] == "sleep")
    };
    let mut child = d.call_cmd(NOBODY, "sleep", &["600"]).spawn().unwrap();
    wait_for("the run to start", || {
        d.records()
            .iter()
            .any(|r| r["kind"] == "run-started" && r["tool"] == "sleep")
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the cancelled run to end", || sleep_exit(&d).is_some());
    let exit = sleep_exit(&d).unwrap();
    assert_eq!(exit["exit"]["cause"], "shutdown", "{exit}");
    d.assert_serving();
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// A daemon whose agents include root, allowed `tools`: the test itself can
/// be the hostile client.
fn with_root_agent(tools: &str) -> Daemon {
    let agent = format!("  - name: root\n    uids: [0]\n    tools: [{tools}]\n");
    Daemon::start(&policy(&agent, ""), "")
}

/// `/dev/null`, open for reading and writing.
fn dev_null() -> std::fs::File {
    std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .unwrap()
}

/// Send `body` as one framed request on `s`, with `fds` attached.
fn send_request(s: &UnixStream, body: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) {
    use std::os::fd::AsFd;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let f = frame(body);
    let n = enforcecore::sys::socket::send_with_fds(s.as_fd(), &f, fds).unwrap();
    assert_eq!(n, f.len());
}

/// Every frame the daemon answers `body` (with `fds`) with, until it closes.
fn frames(d: &Daemon, body: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) -> Vec<serde_json::Value> {
    let s = UnixStream::connect(d.socket()).unwrap();
    send_request(&s, body, fds);
    let mut answer = Vec::new();
    (&s).read_to_end(&mut answer).unwrap();
    let mut frames = Vec::new();
    let mut rest = &answer[..];
    while rest.len() >= 4 {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        frames.push(serde_json::from_slice(&rest[4..4 + n]).unwrap());
        rest = &rest[4 + n..];
    }
    frames
}

#[test]
fn connections_over_the_cap_are_turned_away() {
    if !util::require_root() {
        return;
    }
    let d = Daemon::start(
        &policy("", ""),
        "limits: {request_timeout: 30s, max_connections: 2}\n",
    );
    // Two clients that connect and say nothing hold both places...
    let idle: Vec<UnixStream> = (0..2)
        .map(|_| UnixStream::connect(d.socket()).unwrap())
        .collect();
    // ...so the third is told so at once.
    wait_for("the third connection to be turned away", || {
        raw(&d, b"").contains("limits.max_connections")
    });
    drop(idle);
    wait_for("the places to free up", || {
        d.call(NOBODY, "echo", &["x"]).status.success()
    });
    d.assert_serving();
}

#[test]
fn stdio_descriptors_that_grant_too_little_are_refused() {
    if !util::require_root() {
        return;
    }
    use std::os::fd::AsFd;
    let d = with_root_agent("echo");
    let call = |fds: [std::os::fd::BorrowedFd<'_>; 3]| {
        let body = br#"{"op":"call","v":1,"tool":"echo","args":["hi"]}"#;
        serde_json::Value::from(frames(&d, body, &fds)).to_string()
    };
    let null = dev_null();
    // An O_PATH descriptor grants neither reading nor writing: reopening it as
    // root would hand the caller access it never had.
    let path_only = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_PATH,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let a = call([path_only.as_fd(), null.as_fd(), null.as_fd()]);
    assert!(a.contains("O_PATH"), "{a}");
    // A stdout opened read-only.
    let read_only = std::fs::File::open("/dev/null").unwrap();
    let a = call([null.as_fd(), read_only.as_fd(), null.as_fd()]);
    assert!(a.contains("not opened for writing"), "{a}");
    // An eventfd as stdin: a blocking read on it would never return.
    let efd = nix::sys::eventfd::EventFd::new().unwrap();
    let a = call([efd.as_fd(), null.as_fd(), null.as_fd()]);
    assert!(a.contains("not a pipe, socket, terminal or file"), "{a}");
    // None of them ran; the daemon still serves, and stops in time.
    assert!(
        !d.records().iter().any(|r| r["kind"] == "run-started"),
        "{:?}",
        d.kinds()
    );
    d.assert_serving();
}

#[test]
fn a_connection_to_the_daemon_is_no_stdio() {
    if !util::require_root() {
        return;
    }
    use std::os::fd::AsFd;
    let d = with_root_agent("sleep");
    let null = dev_null();
    let other = UnixStream::connect(d.socket()).unwrap();
    // Its own control connection as stdin (the daemon would hold a copy of the
    // client's end and never see it hang up), or another connection to the
    // daemon as stderr.
    for own in [true, false] {
        let s = UnixStream::connect(d.socket()).unwrap();
        let fds = if own {
            [s.as_fd(), null.as_fd(), null.as_fd()]
        } else {
            [null.as_fd(), null.as_fd(), other.as_fd()]
        };
        send_request(
            &s,
            br#"{"op":"call","v":1,"tool":"sleep","args":["30"]}"#,
            &fds,
        );
        // The first answer, then the client is gone.
        let mut len = [0u8; 4];
        (&s).read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        (&s).read_exact(&mut body).unwrap();
        drop(s);
        let a: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(a["code"], 125, "{a}");
        let msg = a["message"].as_str().unwrap_or_default();
        assert!(msg.contains("may not be a connection to the daemon"), "{a}");
    }
    d.assert_serving();
    assert!(
        !d.records()
            .iter()
            .any(|r| r["kind"] == "run-started" && r["tool"] == "sleep"),
        "{:?}",
        d.kinds()
    );
}

#[test]
fn a_call_that_cannot_run_is_never_announced() {
    if !util::require_root() {
        return;
    }
    use std::os::fd::AsFd;
    let d = with_root_agent("echo");
    let null = dev_null();
    let bodies: [&[u8]; 3] = [
        br#"{"op":"call","v":1,"tool":"echo","args":["a\u0000b"]}"#,
        br#"{"op":"call","v":1,"tool":"ec\u0000ho"}"#,
        br#"{"op":"call","v":1,"tool":"echo","env":{"LANG":"C\u0000"}}"#,
    ];
    for body in bodies {
        let frames = frames(&d, body, &[null.as_fd(); 3]);
        // One answer, an error: no `started` for a run that never starts.
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0]["event"], "error", "{frames:?}");
        assert_eq!(frames[0]["code"], 125, "{frames:?}");
        let msg = frames[0]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("contains a NUL byte"), "{msg}");
    }
    d.assert_serving();
}

#[test]
fn a_client_that_exits_cancels_its_run_even_if_its_connection_lives_on() {
    if !util::require_root() {
        return;
    }
    let d = with_root_agent("sleep");
    // The client parks a copy of its connection in a message nobody receives
    // (so the daemon never sees a hang-up), passes the other end of that pair
    // as stdout, and exits once the run has started.
    let script = r#"
import json, os, socket, struct, sys
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
a, b = socket.socketpair()
socket.send_fds(a, [b"x"], [c.fileno()])
n = os.open("/dev/null", os.O_RDWR)
body = json.dumps({"op": "call", "v": 1, "tool": "sleep", "args": ["30"]}).encode()
socket.send_fds(c, [struct.pack(">I", len(body)) + body], [n, b.fileno(), n])
c.recv(4096)
os._exit(0)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(d.socket())
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    let exited = || {
        d.records()
            .into_iter()
            .find(|r| r["kind"] == "run-exited" && r["tool"] == "sleep")
    };
    let start = std::time::Instant::now();
    wait_for("the run to be cancelled", || exited().is_some());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the run was not cancelled"
    );
    assert_eq!(exited().unwrap()["exit"]["cause"], "shutdown");
    d.assert_serving();
}
