//! Email addresses, found from their `@` (or fullwidth `＠`).
//!
//! The local part is read backwards (at most 64 characters, letters, digits and
//! `._%+-`, non-ASCII letters allowed), the domain forwards (labels of letters,
//! digits and `-`, at least two, ending in an alphabetic top-level label of two
//! or more characters). Invisible characters are skipped and fullwidth forms
//! read as ASCII, so `jo\u{200B}hn＠example.com` is still an address. A
//! `user@host` inside a URL's authority (`scheme://user:pw@host`) is not an
//! address: the URL detector owns it.

use super::Hit;
use crate::redact::DetectorKind;
use crate::redact::text::{Ch, Res, Window, decode_back, next_visible, prev_visible};

/// Longest local part, in characters (RFC 5321).
const MAX_LOCAL: usize = 64;
/// Furthest a local part is read back, in bytes.
pub(crate) const MAX_BACK: usize = 256;
/// Longest domain, in bytes.
const MAX_DOMAIN: usize = 253;

fn local_char(c: Ch) -> bool {
    match c {
        Ch::Ascii(b) => b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-'),
        Ch::Alnum => true,
        _ => false,
    }
}

/// An `@` of `at_len` bytes at `at`.
pub(crate) fn at_sign(w: &Window, at: usize, at_len: usize) -> Res<Option<Hit>> {
    // Local part, backwards.
    let floor = at.saturating_sub(MAX_BACK);
    let mut start = at;
    let mut chars = 0;
    let mut first: Option<(usize, Ch)> = None;
    while start > floor && chars < MAX_LOCAL {
        let Some((c, n)) = decode_back(w, start) else {
            break;
        };
        if c == Ch::Ignorable {
            start -= n;
            continue;
        }
        if !local_char(c) {
            break;
        }
        start -= n;
        chars += 1;
        first = Some((start, c));
    }
    let Some((mut start, _)) = first else {
        return Ok(None);
    };
    // Leading dots are punctuation, not part of the address.
    while let Some((Ch::Ascii(b'.'), _, e)) = next_visible(w, start)? {
        start = e;
        if start >= at {
            return Ok(None);
        }
    }
    if in_url_authority(w, start) {
        return Ok(None);
    }
    match domain_end(w, at + at_len)? {
        Some(end) => Ok(Some(Hit {
            start,
            end,
            kind: DetectorKind::Email,
        })),
        None => Ok(None),
    }
}

/// Whether the text ending at `start` is `//` or `//userinfo:`: the local part
/// would then be a URL's user or password.
fn in_url_authority(w: &Window, start: usize) -> bool {
    let mut p = start;
    let floor = start.saturating_sub(160);
    if let Some((Ch::Ascii(b':'), q)) = prev_visible(w, p, 8) {
        p = q;
        while p > floor {
            match w.bytes[p - 1] {
                b'/' => break,
                b if b.is_ascii_whitespace() || b == b'@' || b == b'"' || b == b'\'' => {
                    return false;
                }
                _ => p -= 1,
            }
        }
    }
    p >= 2 && &w.bytes[p - 2..p] == b"//"
}

/// End of a valid domain that starts at `i`, if there is one.
fn domain_end(w: &Window, i: usize) -> Res<Option<usize>> {
    let mut p = i;
    let mut labels = 0;
    let mut label_len = 0;
    let mut label_alpha = true;
    let mut label_start = i;
    let mut good = None;
    while p - i < MAX_DOMAIN {
        let Some((c, cs, ce)) = next_visible(w, p)? else {
            break;
        };
        match c {
            Ch::Ascii(b'.') if label_len > 0 => {
                labels += 1;
                label_len = 0;
                label_alpha = true;
            }
            Ch::Ascii(b) if b.is_ascii_alphanumeric() || b == b'-' => {
                if label_len == 0 {
                    label_start = cs;
                }
                label_len += 1;
                label_alpha &= b.is_ascii_alphabetic();
            }
            Ch::Alnum => {
                if label_len == 0 {
                    label_start = cs;
                }
                label_len += 1;
            }
            _ => break,
        }
        p = ce;
        if labels >= 1
            && label_len >= 2
            && (label_alpha || w.bytes[label_start..].starts_with(b"xn--"))
        {
            good = Some(p);
        }
    }
    Ok(good)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(s: &str) -> Option<String> {
        let w = Window::new(s.as_bytes(), true);
        let b = s.as_bytes();
        (0..b.len()).find_map(|i| {
            let len = if b[i] == b'@' {
                1
            } else if b[i..].starts_with("＠".as_bytes()) {
                3
            } else {
                return None;
            };
            at_sign(&w, i, len)
                .unwrap()
                .map(|h| s[h.start..h.end].to_string())
        })
    }

    #[test]
    fn positives() {
        for (input, want) in [
            ("mail john.doe@example.com now", "john.doe@example.com"),
            (
                "<jane+tag@mail.example.co.uk>",
                "jane+tag@mail.example.co.uk",
            ),
            ("mailto:a_b-c@x-y.io.", "a_b-c@x-y.io"),
            ("\"user\":\"ops@corp.example\"", "ops@corp.example"),
            (
                "jo\u{200B}hn@exa\u{200D}mple.com",
                "jo\u{200B}hn@exa\u{200D}mple.com",
            ),
            ("john＠example.com", "john＠example.com"),
            ("josé@correo.es", "josé@correo.es"),
            ("...dots@example.org", "dots@example.org"),
            ("x@bücher.de", "x@bücher.de"),
        ] {
            assert_eq!(find(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn negatives() {
        for s in [
            "root@localhost",
            "@example.com",
            "a@b.c",
            "user@123.456",
            "https://user:pw@example.com",
            "ssh://git@example.com/repo",
            "see @handle on chat",
            "pkg@1.2.3",
            "foo@bar",
        ] {
            assert_eq!(find(s), None, "{s}");
        }
    }
}
