//! Kernel audit records as they arrive on `NETLINK_AUDIT`: framing and fields.
//!
//! A datagram holds one or more netlink messages (`nlmsghdr` + payload, 4-byte
//! aligned). The payload of an audit record is text:
//! `audit(1795657976.126:442): key=value key="quoted value" …`, where `442` is
//! the *serial* that ties the records of one event together (a Landlock 1423,
//! its 1424, the 1300 SYSCALL record and the 1320 end-of-event share it).
//!
//! Values that the kernel considers untrusted (paths, `comm`, `exe`) are printed
//! quoted when they are plain, and as bare hex when they contain spaces, quotes
//! or control bytes; [`Record::get`] decodes both. This module is pure parsing:
//! it never opens a socket and never decides what a record means.

/// `AUDIT_SYSCALL`.
pub const SYSCALL: u16 = 1300;
/// `AUDIT_EOE`: end of a multi-record event.
pub const EOE: u16 = 1320;
/// `AUDIT_SECCOMP`.
pub const SECCOMP: u16 = 1326;
/// `AUDIT_LANDLOCK_ACCESS`.
pub const LANDLOCK_ACCESS: u16 = 1423;
/// `AUDIT_LANDLOCK_DOMAIN`.
pub const LANDLOCK_DOMAIN: u16 = 1424;
/// `AUDIT_TRUSTED_APP`: the user-space message the feed sends as a barrier.
pub const TRUSTED_APP: u16 = 1121;
/// `NLMSG_ERROR`.
pub const NLMSG_ERROR: u16 = 2;

/// Fields whose values the kernel prints through `audit_log_untrustedstring`.
const UNTRUSTED: [&str; 7] = ["path", "name", "comm", "exe", "ocomm", "proctitle", "msg"];

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Record type (`1423`, …).
    pub ty: u16,
    /// Event serial (records of one event share it).
    pub serial: u64,
    /// `key=value` pairs in order, values decoded.
    pub fields: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// The decoded value of `key` (first occurrence).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `key` as text (lossy).
    pub fn text(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The value of `key` as a decimal integer.
    pub fn int(&self, key: &str) -> Option<i64> {
        std::str::from_utf8(self.get(key)?).ok()?.parse().ok()
    }

    /// The value of `key` as a hex integer (with or without `0x`).
    pub fn hex(&self, key: &str) -> Option<u64> {
        let s = std::str::from_utf8(self.get(key)?).ok()?;
        u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
    }
}

/// The netlink messages of one datagram: `(type, payload)`. A truncated or
/// malformed trailing message ends the iteration.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        if len < 16 || len > rest.len() {
            return None;
        }
        let payload = &rest[16..len];
        rest = &rest[((len + 3) & !3).min(rest.len())..];
        Some((ty, payload))
    })
}

/// Parse an audit record's text payload. `None` when it does not start with
/// `audit(SECONDS.MILLIS:SERIAL): `.
pub fn parse(ty: u16, payload: &[u8]) -> Option<Record> {
    // The kernel NUL-terminates some payloads.
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    let text = &payload[..end];
    let rest = text.strip_prefix(b"audit(")?;
    let close = rest.iter().position(|&b| b == b')')?;
    let stamp = std::str::from_utf8(&rest[..close]).ok()?;
    let serial = stamp.split_once(':')?.1.parse().ok()?;
    let body = rest[close + 1..]
        .strip_prefix(b":")
        .unwrap_or(&rest[close + 1..]);
    Some(Record {
        ty,
        serial,
        fields: fields(body),
    })
}

/// `key=value` pairs of a record body.
fn fields(mut s: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        while let [b' ', tail @ ..] = s {
            s = tail;
        }
        if s.is_empty() {
            return out;
        }
        let Some(eq) = s.iter().position(|&b| b == b'=' || b == b' ') else {
            return out;
        };
        if s[eq] == b' ' {
            // A bare word (no value): skip it.
            s = &s[eq..];
            continue;
        }
        let key = String::from_utf8_lossy(&s[..eq]).into_owned();
        s = &s[eq + 1..];
        let (value, rest) = match s.first() {
            Some(b'"') => {
                let body = &s[1..];
                let close = body.iter().position(|&b| b == b'"').unwrap_or(body.len());
                (body[..close].to_vec(), &body[(close + 1).min(body.len())..])
            }
            Some(b'\'') => {
                let body = &s[1..];
                let close = body.iter().position(|&b| b == b'\'').unwrap_or(body.len());
                (body[..close].to_vec(), &body[(close + 1).min(body.len())..])
            }
            _ => {
                let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
                let raw = &s[..end];
                let v = if UNTRUSTED.contains(&key.as_str()) {
                    unhex(raw).unwrap_or_else(|| raw.to_vec())
                } else {
                    raw.to_vec()
                };
                (v, &s[end..])
            }
        };
        out.push((key, value));
        s = rest;
    }
}

/// Bare hex (even length, hex digits only) decoded; `None` otherwise.
fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || s == b"(null)" || s == b"(none)" {
        return None;
    }
    hex::decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(ty: u16, text: &str) -> Vec<u8> {
        let mut b = Vec::new();
        let len = 16 + text.len();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&[0u8; 10]);
        b.extend_from_slice(text.as_bytes());
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    #[test]
    fn landlock_records_from_this_kernel_parse() {
        let a = parse(
            LANDLOCK_ACCESS,
            b"audit(1795657976.126:442): domain=15361550d blockers=fs.make_reg path=\"/etc\" dev=\"vda\" ino=19",
        )
        .unwrap();
        assert_eq!(a.serial, 442);
        assert_eq!(a.hex("domain"), Some(0x15361550d));
        assert_eq!(a.text("blockers").as_deref(), Some("fs.make_reg"));
        assert_eq!(a.get("path"), Some(&b"/etc"[..]));
        assert_eq!(a.int("ino"), Some(19));
        let d = parse(
            LANDLOCK_DOMAIN,
            b"audit(1795657976.126:442): domain=15361550d status=allocated mode=enforcing pid=6854 uid=65534 exe=\"/x/enforcecore\" comm=\"enforcecore\"",
        )
        .unwrap();
        assert_eq!(d.int("pid"), Some(6854));
        assert_eq!(d.text("status").as_deref(), Some("allocated"));
    }

    #[test]
    fn hex_encoded_untrusted_values_are_decoded_and_others_kept() {
        // path="/tmp/a b" is printed as hex because of the space.
        let r = parse(
            LANDLOCK_ACCESS,
            b"audit(1.2:3): domain=ff blockers=fs.read_file path=2F746D702F612062 dev=\"vda\" ino=5",
        )
        .unwrap();
        assert_eq!(r.get("path"), Some(&b"/tmp/a b"[..]));
        assert_eq!(
            r.text("domain").as_deref(),
            Some("ff"),
            "not an untrusted field"
        );
        let s = parse(
            SECCOMP,
            b"audit(1.2:9): auid=4294967295 uid=65534 pid=6856 comm=\"unshare\" exe=\"/usr/bin/unshare\" sig=0 arch=c000003e syscall=272 compat=0 ip=0x7f708100d0f7 code=0x50000",
        )
        .unwrap();
        assert_eq!(s.int("syscall"), Some(272));
        assert_eq!(s.hex("code"), Some(0x50000));
        assert_eq!(s.hex("arch"), Some(0xc000003e));
    }

    #[test]
    fn datagrams_split_into_messages_and_stop_at_damage() {
        let mut d = frame(1423, "audit(1.2:3): a=1");
        d.extend(frame(1320, "audit(1.2:3): "));
        let m: Vec<_> = messages(&d).collect();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].0, 1320);
        d.truncate(d.len() - 3);
        assert_eq!(messages(&d).count(), 1);
        assert!(parse(1300, b"garbage").is_none());
        assert!(parse(1300, b"audit(12): x=1").is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            for (ty, p) in messages(&b) {
                let _ = parse(ty, p);
            }
            let mut t = b"audit(1.1:1): ".to_vec();
            t.extend_from_slice(&b);
            let _ = parse(1423, &t);
        }

        #[test]
        fn quoted_values_round_trip(v in "[a-zA-Z0-9/._-]{0,40}") {
            let t = format!("audit(1.1:7): path=\"{v}\" ino=3");
            let r = parse(1423, t.as_bytes()).unwrap();
            prop_assert_eq!(r.get("path"), Some(v.as_bytes()));
            prop_assert_eq!(r.int("ino"), Some(3));
        }
    }
}
