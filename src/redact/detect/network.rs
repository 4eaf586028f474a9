//! Network identifiers: IPv6 addresses (full, compressed, with an embedded IPv4
//! tail or a zone), passwords in URLs (`scheme://user:password@host`) and Slack
//! incoming-webhook URLs.
//!
//! IPv6 candidates are parsed by `std::net::Ipv6Addr`, so only real addresses
//! match; times (`12:34:56`) and MAC addresses do not, and neither do the
//! unspecified and loopback addresses `::` and `::1`. In a URL only
//! the password is replaced, so the scheme, user and host stay readable; any
//! scheme counts (`https`, `postgres`, `mysql`, `mongodb+srv`, `redis`, `amqp`,
//! …). A webhook URL is replaced whole: its path is the credential.

use std::net::Ipv6Addr;

use super::Hit;
use crate::redact::DetectorKind;
use crate::redact::text::{Res, Window, is_hex, is_word};
use crate::redact::validate::is_placeholder;

/// Longest IPv6 text (`ffff:…:255.255.255.255`).
const MAX_IPV6: usize = 45;
/// Longest URL authority read, in bytes.
const MAX_AUTHORITY: usize = 256;
/// Longest webhook URL, in bytes.
const MAX_URL: usize = 512;

/// A colon that may be the first colon of an IPv6 address.
pub(crate) fn at_colon(w: &Window, colon: usize) -> Res<Option<Hit>> {
    let b = w.bytes;
    let mut s = colon;
    while s > 0 && colon - s < 4 && is_hex(b[s - 1]) {
        s -= 1;
    }
    if let Some(p) = w.before(s)
        && (is_word(p) || p == b':' || p == b'.')
    {
        return Ok(None);
    }
    let mut e = colon;
    loop {
        match w.at(e)? {
            Some(c) if is_hex(c) || c == b':' || c == b'.' => {
                if e - s == MAX_IPV6 {
                    return Ok(None);
                }
                e += 1;
            }
            _ => break,
        }
    }
    // An address has `::` or seven colons; times and MAC addresses have neither.
    let token = &b[s..e];
    let colons = token.iter().filter(|&&c| c == b':').count();
    if colons < 7 && !token.windows(2).any(|p| p == b"::") {
        return Ok(None);
    }
    // Drop sentence punctuation, then a single trailing colon ("addr fe80::1: …").
    let mut text = token;
    while let [rest @ .., b'.'] = text {
        text = rest;
    }
    let mut addr = parse_v6(text);
    if addr.is_none()
        && let [rest @ .., b':'] = text
        && !rest.ends_with(b":")
    {
        text = rest;
        addr = parse_v6(text);
    }
    // `::` and `::1` (unspecified, loopback) identify nobody.
    match addr {
        Some(a)
            if !a.is_unspecified() && !a.is_loopback() && text.iter().any(u8::is_ascii_digit) => {}
        _ => return Ok(None),
    }
    let mut end = s + text.len();
    // A zone index (`%eth0`) belongs to the address.
    if end == e && w.at(e)? == Some(b'%') {
        let mut z = e + 1;
        while z - e <= 16 && matches!(w.at(z)?, Some(c) if c.is_ascii_alphanumeric()) {
            z += 1;
        }
        if z > e + 1 {
            end = z;
        }
    }
    if matches!(w.at(end)?, Some(c) if is_word(c)) {
        return Ok(None);
    }
    Ok(Some(Hit {
        start: s,
        end,
        kind: DetectorKind::Ipv6,
    }))
}

fn parse_v6(text: &[u8]) -> Option<Ipv6Addr> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn scheme_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-')
}

fn authority_char(c: u8) -> bool {
    !(c <= b' ' || c == 0x7F || b"/?#\"'<>`\\|^".contains(&c))
}

/// The `:` of a `://`.
pub(crate) fn at_scheme(w: &Window, colon: usize) -> Res<Option<Hit>> {
    let b = w.bytes;
    let mut s = colon;
    while s > 0 && colon - s < 32 && scheme_char(b[s - 1]) {
        s -= 1;
    }
    while s < colon && !b[s].is_ascii_alphabetic() {
        s += 1;
    }
    if s == colon || w.before(s).is_some_and(is_word) {
        return Ok(None);
    }
    let scheme = &b[s..colon];
    let a = colon + 3;
    let mut e = a;
    while e - a < MAX_AUTHORITY {
        match w.at(e)? {
            Some(c) if authority_char(c) => e += 1,
            _ => break,
        }
    }
    let authority = w.slice(a, e)?;
    let at = authority.iter().rposition(|&c| c == b'@');
    let host = at.map_or(authority, |i| &authority[i + 1..]);
    let host = host.split(|&c| c == b':').next().unwrap_or(host);

    if (scheme.eq_ignore_ascii_case(b"https") || scheme.eq_ignore_ascii_case(b"http"))
        && host.eq_ignore_ascii_case(b"hooks.slack.com")
    {
        let path = w.slice(e, e + 11)?;
        if [&b"/services/"[..], b"/workflows/", b"/triggers/"]
            .iter()
            .any(|p| path.starts_with(p))
        {
            let mut end = e;
            while end - s < MAX_URL {
                match w.at(end)? {
                    Some(c) if authority_char(c) || matches!(c, b'/' | b'?' | b'#') => end += 1,
                    _ => break,
                }
            }
            return Ok(Some(Hit {
                start: s,
                end,
                kind: DetectorKind::SlackWebhook,
            }));
        }
    }
    let Some(at) = at else {
        return Ok(None);
    };
    let userinfo = &authority[..at];
    let Some(colon_in) = userinfo.iter().position(|&c| c == b':') else {
        return Ok(None);
    };
    let password = &userinfo[colon_in + 1..];
    if password.is_empty() || is_placeholder(password) {
        return Ok(None);
    }
    Ok(Some(Hit {
        start: a + colon_in + 1,
        end: a + at,
        kind: DetectorKind::UrlPassword,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(
        s: &str,
        f: fn(&Window, usize) -> Res<Option<Hit>>,
        want_colon: &dyn Fn(&[u8], usize) -> bool,
    ) -> Option<(String, DetectorKind)> {
        let w = Window::new(s.as_bytes(), true);
        (0..s.len())
            .filter(|&i| want_colon(s.as_bytes(), i))
            .find_map(|i| f(&w, i).unwrap())
            .map(|h| (s[h.start..h.end].to_string(), h.kind))
    }

    fn v6(s: &str) -> Option<String> {
        find(s, at_colon, &|b, i| b[i] == b':').map(|(t, _)| t)
    }

    fn url(s: &str) -> Option<(String, DetectorKind)> {
        find(s, at_scheme, &|b, i| b[i..].starts_with(b"://"))
    }

    #[test]
    fn ipv6_positives() {
        for (input, want) in [
            ("addr 2001:db8::1 up", "2001:db8::1"),
            (
                "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
                "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            ),
            ("[2001:db8::1]:8080", "2001:db8::1"),
            ("from ::ffff:10.0.0.1.", "::ffff:10.0.0.1"),
            (
                "fe80::1ff:fe23:4567:890a%eth0 x",
                "fe80::1ff:fe23:4567:890a%eth0",
            ),
            ("peer fe80::1: refused", "fe80::1"),
        ] {
            assert_eq!(v6(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn ipv6_negatives() {
        for s in [
            "12:34:56",
            "at 09:21:33.482",
            "mac 00:1a:2b:3c:4d:5e",
            "std::vec::Vec",
            "a :: b",
            "dead::beef",
            "T12:41:03",
            "1:2:3:4:5:6:7:8:9",
            "fe80::1g",
            "[::1]:8080",
            "bind :: port 80",
        ] {
            assert_eq!(v6(s), None, "{s}");
        }
    }

    #[test]
    fn url_passwords_and_webhooks() {
        use DetectorKind::*;
        for (input, want, kind) in [
            ("postgres://app:s3cret@db:5432/app", "s3cret", UrlPassword),
            ("https://user:p%40ss@example.com/x", "p%40ss", UrlPassword),
            ("redis://:hunter2@cache:6379", "hunter2", UrlPassword),
            (
                "mongodb+srv://root:Xy7!pq@cluster0.example.net/db",
                "Xy7!pq",
                UrlPassword,
            ),
            ("amqp://guest:guest2@mq", "guest2", UrlPassword),
            (
                "hook=https://hooks.slack.com/services/T0000/B0000/XXXXabcd1234 done",
                "https://hooks.slack.com/services/T0000/B0000/XXXXabcd1234",
                SlackWebhook,
            ),
        ] {
            assert_eq!(url(input), Some((want.to_string(), kind)), "{input}");
        }
        for s in [
            "https://example.com/a@b",
            "ssh://git@example.com/repo",
            "postgres://app:${DB_PASSWORD}@db/app",
            "https://user:@example.com",
            "https://hooks.slack.com/",
            "x://",
        ] {
            assert_eq!(url(s), None, "{s}");
        }
    }
}
