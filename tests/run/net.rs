//! Network: the seccomp socket filter and Landlock TCP port rules.
//!
//! Test policies deny with errno 131 (ENOTRECOVERABLE), so that a refusal by the
//! socket filter is told apart from the kernel's own EPERM/EACCES; Landlock port
//! refusals are EACCES. Each refusal is paired with the policy that allows it.

use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

use super::{Knobs, py, ready};
use crate::util;

/// Python that runs `stmt` and prints `ok` or the errno name.
fn attempt(stmt: &str) -> String {
    format!(
        "import socket, errno\n\
         try:\n\
         \x20   {stmt}\n\
         \x20   print('ok')\n\
         except OSError as e:\n\
         \x20   print(errno.errorcode.get(e.errno, e.errno))\n"
    )
}

fn inet() -> Knobs {
    Knobs {
        families: vec!["inet", "inet6", "unix"],
        ..Knobs::default()
    }
}

#[test]
fn no_network_means_no_socket_of_any_family() {
    if !ready() {
        return;
    }
    let p = Knobs::default().write();
    for (stmt, granted) in [
        ("socket.socket(socket.AF_INET, socket.SOCK_STREAM)", inet()),
        (
            "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
            Knobs {
                udp: true,
                ..inet()
            },
        ),
        ("socket.socket(socket.AF_INET6, socket.SOCK_STREAM)", inet()),
        ("socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)", inet()),
        (
            "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)",
            Knobs {
                families: vec!["netlink"],
                ..Knobs::default()
            },
        ),
    ] {
        let out = p.run(&py(&attempt(stmt)));
        util::assert_code(&out, 0);
        assert_eq!(util::stdout(&out), "ENOTRECOVERABLE\n", "{stmt}");
        let out = granted.write().run(&py(&attempt(stmt)));
        util::assert_code(&out, 0);
        assert_eq!(util::stdout(&out), "ok\n", "{stmt} when granted");
    }
    // socketpair(AF_UNIX) always works: pipes between a tool's own processes.
    let out = p.run(&py(&attempt("socket.socketpair()")));
    assert_eq!(util::stdout(&out), "ok\n");
}

#[test]
fn udp_raw_and_packet_sockets_stay_refused_with_inet_allowed() {
    if !ready() {
        return;
    }
    let p = inet().write();
    for stmt in [
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
        "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)",
        "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)",
        "socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)",
        "socket.socket(socket.AF_PACKET, socket.SOCK_RAW)",
    ] {
        let out = p.run(&py(&attempt(stmt)));
        util::assert_code(&out, 0);
        assert_eq!(util::stdout(&out), "ENOTRECOVERABLE\n", "{stmt}");
    }
}

#[test]
fn tcp_connect_needs_a_port_rule() {
    if !ready() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = attempt(&format!(
        "socket.create_connection(('127.0.0.1', {port}), timeout=5)"
    ));
    let out = inet().write().run(&py(&code));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "EACCES\n");
    let granted = Knobs {
        tcp_connect: vec![port],
        ..inet()
    }
    .write();
    let out = granted.run(&py(&code));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "ok\n");
}

#[test]
fn tcp_bind_needs_a_port_rule() {
    if !ready() {
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let code = attempt(&format!(
        "s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()"
    ));
    let out = inet().write().run(&py(&code));
    assert_eq!(util::stdout(&out), "EACCES\n");
    let granted = Knobs {
        tcp_bind: vec![port],
        ..inet()
    }
    .write();
    assert_eq!(util::stdout(&granted.run(&py(&code))), "ok\n");
}

#[test]
fn udp_works_only_when_granted() {
    if !ready() {
        return;
    }
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = peer.local_addr().unwrap().port();
    let code = attempt(&format!(
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))"
    ));
    assert_eq!(
        util::stdout(&inet().write().run(&py(&code))),
        "ENOTRECOVERABLE\n"
    );
    let granted = Knobs {
        udp: true,
        ..inet()
    }
    .write();
    assert_eq!(util::stdout(&granted.run(&py(&code))), "ok\n");
    let mut buf = [0u8; 4];
    peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    assert_eq!(peer.recv(&mut buf).unwrap(), 1);
}

#[test]
fn abstract_unix_sockets_outside_the_sandbox_are_out_of_scope() {
    if !ready() {
        return;
    }
    let name = format!("enforcecore-test-{}", std::process::id());
    let _listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    let code = attempt(&format!(
        "socket.socket(socket.AF_UNIX).connect('\\0{name}')"
    ));
    let scoped = Knobs {
        families: vec!["unix"],
        ..Knobs::default()
    };
    let out = scoped.clone().write().run(&py(&code));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "EPERM\n");
    let unscoped = Knobs {
        abstract_unix: false,
        ..scoped
    }
    .write();
    assert_eq!(util::stdout(&unscoped.run(&py(&code))), "ok\n");
}
