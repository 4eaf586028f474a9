//! Secrets in assignments: `key = value`, `key: value`, `"key": "value"`,
//! `key => value`, `--key=value`, where the key names a credential.
//!
//! The key is compared in lower case with `_`, `-` and `.` removed, and must end
//! with one of [`KEYWORDS`] (so `db_password`, `client-secret`, `X-Api-Key`,
//! `SESSION_TOKEN` count, `token_count` does not). Only the value is replaced.
//! A key ending in `secretaccesskey` (or `awssecretkey`) with a 40-character
//! base64 value is an AWS secret access key; anything else is a generic secret,
//! kept only when it is not a placeholder (`YOUR_KEY_HERE`, `${VAR}`, `<token>`,
//! `****`, …) and its entropy reaches a floor that grows with its length
//! (`validate::entropy_floor`). `Authorization: Bearer …` values lose the
//! credential after the scheme word.

use super::Hit;
use crate::redact::DetectorKind;
use crate::redact::text::{Res, Window};
use crate::redact::validate::{entropy, entropy_floor, is_placeholder};

/// Longest key read, in bytes.
const MAX_KEY: usize = 64;
/// Longest value read, in bytes.
const MAX_VALUE: usize = 512;

/// Normalized key endings that mark a credential. Every one ends in one of
/// `KEYWORD_ENDINGS`, which is what the scanner's prefilter looks for.
pub(crate) const KEYWORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "credentials",
    "authorization",
];

/// Last two letters of every keyword (lower case); the scanner's `is_pair`
/// hard-codes this list and a test holds them together.
#[cfg(test)]
pub(crate) const KEYWORD_ENDINGS: &[[u8; 2]] =
    &[*b"rd", *b"wd", *b"et", *b"en", *b"ey", *b"ls", *b"on"];

/// Authorization schemes whose following word is the credential.
const SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "negotiate", "apikey"];

fn key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

fn stop_char(c: u8) -> bool {
    c.is_ascii_whitespace() || b",;&\"'<>)]}\\`".contains(&c)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyClass {
    Password,
    Secret,
    Aws,
    Authorization,
}

/// The last four characters of every keyword of four or more, and `pwd`: a
/// key whose normalized ending is none of these names no credential, which
/// settles the commonest keys (`"key":`, `version=`) without normalizing them.
const TAILS: [[u8; 4]; 10] = [
    *b"word", *b"sswd", *b"cret", *b"oken", *b"ikey", *b"skey", *b"tkey", *b"ekey", *b"ials",
    *b"tion",
];

/// Whether a key whose last characters are `rev` (read backwards) may name a
/// credential: its last four normalized characters are one of [`TAILS`], or
/// it ends in `pwd`.
fn tail_may_name_credential(rev: impl Iterator<Item = u8>) -> bool {
    let mut tail = [0u8; 4];
    let mut t = 4;
    for c in rev {
        if !matches!(c, b'_' | b'-' | b'.') {
            t -= 1;
            tail[t] = c.to_ascii_lowercase();
            if t == 0 {
                break;
            }
        }
    }
    TAILS.contains(&tail) || tail[1..] == *b"pwd"
}

/// Whether the key that ends just before `key_end` may name a credential
/// (see [`tail_may_name_credential`]). The scanner asks this before it
/// triggers [`at_operator`], which would reject such a key anyway: it settles
/// the commonest keys after a keyword-like pair (`"key":`, `version=`)
/// without a detector call. Reads at most `MAX_KEY + 1` bytes back.
pub(crate) fn key_may_name_credential(b: &[u8], key_end: usize) -> bool {
    let from = key_end.saturating_sub(MAX_KEY + 1);
    tail_may_name_credential(
        b[from..key_end]
            .iter()
            .rev()
            .copied()
            .take_while(|&c| key_char(c)),
    )
}

fn classify_key(key: &[u8]) -> Option<KeyClass> {
    if !tail_may_name_credential(key.iter().rev().copied()) {
        return None;
    }
    let mut norm = [0u8; MAX_KEY];
    let mut n = 0;
    for &c in key.iter().filter(|&&c| !matches!(c, b'_' | b'-' | b'.')) {
        norm[n] = c.to_ascii_lowercase();
        n += 1;
    }
    let k = &norm[..n];
    if k.ends_with(b"secretaccesskey") || k.ends_with(b"awssecretkey") {
        return Some(KeyClass::Aws);
    }
    if k.ends_with(b"authorization") {
        return Some(KeyClass::Authorization);
    }
    if [&b"password"[..], b"passwd", b"pwd"]
        .iter()
        .any(|s| k.ends_with(s))
    {
        return Some(KeyClass::Password);
    }
    KEYWORDS
        .iter()
        .any(|s| k.ends_with(s.as_bytes()))
        .then_some(KeyClass::Secret)
}

/// An `=` or `:` that may separate a credential's key from its value.
pub(crate) fn at_operator(w: &Window, op: usize) -> Res<Option<Hit>> {
    let b = w.bytes;
    let next = w.at(op + 1)?;
    let mut v = op + 1;
    match (b[op], next) {
        (b'=', Some(b'=')) | (b':', Some(b':' | b'/')) => return Ok(None),
        (b'=', Some(b'>')) | (b':', Some(b'=')) => v += 1,
        _ => {}
    }
    // The key, backwards: optional blanks and a closing quote, then key chars.
    let mut j = op;
    let mut blanks = 0;
    while j > 0 && matches!(b[j - 1], b' ' | b'\t') && blanks < 2 {
        j -= 1;
        blanks += 1;
    }
    if j > 0 && matches!(b[j - 1], b'"' | b'\'') {
        j -= 1;
    }
    let key_end = j;
    while j > 0 && key_char(b[j - 1]) {
        j -= 1;
        if key_end - j > MAX_KEY {
            return Ok(None);
        }
    }
    if j == key_end {
        return Ok(None);
    }
    let Some(class) = classify_key(&b[j..key_end]) else {
        return Ok(None);
    };
    let Some((mut vs, mut ve)) = value(w, v)? else {
        return Ok(None);
    };
    if class == KeyClass::Authorization {
        let word_end = (vs..ve).find(|&i| b[i] == b' ').unwrap_or(ve);
        if SCHEMES
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(&b[vs..word_end]))
        {
            if word_end < ve {
                // Quoted: `"Bearer xyz"`.
                vs = word_end;
                while vs < ve && b[vs] == b' ' {
                    vs += 1;
                }
                ve = (vs..ve).find(|&i| b[i] == b' ').unwrap_or(ve);
            } else {
                // Bare: the credential is the next word.
                match value(w, ve)? {
                    Some((s2, e2)) => (vs, ve) = (s2, e2),
                    None => return Ok(None),
                }
            }
        }
    }
    let val = &b[vs..ve];
    let kind = if class == KeyClass::Aws
        && val.len() == 40
        && val
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'+' | b'='))
    {
        DetectorKind::AwsSecretKey
    } else {
        let min = if class == KeyClass::Password { 4 } else { 8 };
        if val.len() < min || is_placeholder(val) || entropy(val) < entropy_floor(val.len()) {
            return Ok(None);
        }
        DetectorKind::GenericSecret
    };
    Ok(Some(Hit {
        start: vs,
        end: ve,
        kind,
    }))
}

/// The value that starts after blanks at `v`: quoted (up to its closing quote,
/// on one line) or bare (up to a blank or a delimiter).
fn value(w: &Window, v: usize) -> Res<Option<(usize, usize)>> {
    let mut p = v;
    while p - v < 4 && matches!(w.at(p)?, Some(b' ' | b'\t')) {
        p += 1;
    }
    if let Some(q @ (b'"' | b'\'' | b'`')) = w.at(p)? {
        let mut e = p + 1;
        while e - p <= MAX_VALUE {
            match w.at(e)? {
                Some(c) if c == q => return Ok(Some((p + 1, e))),
                Some(b'\n') | None => break,
                Some(b'\\') => e += 2,
                Some(_) => e += 1,
            }
        }
        p += 1;
    }
    let mut e = p;
    while e - p < MAX_VALUE {
        match w.at(e)? {
            Some(c) if !stop_char(c) => e += 1,
            _ => break,
        }
    }
    Ok((e > p).then_some((p, e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(s: &str) -> Option<(String, DetectorKind)> {
        let w = Window::new(s.as_bytes(), true);
        (0..s.len())
            .filter(|&i| matches!(s.as_bytes()[i], b'=' | b':'))
            .find_map(|i| at_operator(&w, i).unwrap())
            .map(|h| (s[h.start..h.end].to_string(), h.kind))
    }

    #[test]
    fn positives() {
        use DetectorKind::*;
        for (input, want, kind) in [
            ("password=hunter2", "hunter2", GenericSecret),
            (
                "DB_PASSWORD=\"correct horse battery\"",
                "correct horse battery",
                GenericSecret,
            ),
            (
                "{\"client_secret\": \"9f86d081884c7d659a2f\"}",
                "9f86d081884c7d659a2f",
                GenericSecret,
            ),
            (
                "api_key: sk9Xq2LmN4pR7tV1",
                "sk9Xq2LmN4pR7tV1",
                GenericSecret,
            ),
            (
                "X-Api-Key: a1b2c3d4e5f6g7h8",
                "a1b2c3d4e5f6g7h8",
                GenericSecret,
            ),
            (
                "--token=Zm9vYmFyYmF6cXV4",
                "Zm9vYmFyYmF6cXV4",
                GenericSecret,
            ),
            ("pwd => 'S3cr3t!x'", "S3cr3t!x", GenericSecret),
            (
                "session_token := Qw3rTy8uIo0pAs",
                "Qw3rTy8uIo0pAs",
                GenericSecret,
            ),
            (
                "Authorization: Bearer abcDEF123456ghiJKL",
                "abcDEF123456ghiJKL",
                GenericSecret,
            ),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                AwsSecretKey,
            ),
            (
                "\"SecretAccessKey\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                AwsSecretKey,
            ),
        ] {
            assert_eq!(find(input), Some((want.to_string(), kind)), "{input}");
        }
    }

    #[test]
    fn negatives() {
        for s in [
            "api_key=YOUR_KEY_HERE",
            "password=${DB_PASSWORD}",
            "token=<token>",
            "secret: \"********\"",
            "password: null",
            "token_count=1234567890",
            "max_tokens=4096",
            "token=abc",
            "secret=aaaaaaaaaaaa",
            "password==other",
            "request_id=7f9c2b1e-4d3a-4b8e-9c1f-2e5d8a7b6c4d",
            "status=200",
            "Authorization: Bearer",
            "password = [REDACTED:GENERIC_SECRET]",
            "tokens: 12",
        ] {
            assert_eq!(find(s), None, "{s}");
        }
    }

    #[test]
    fn every_keyword_ends_in_a_tail() {
        for k in KEYWORDS {
            let b = k.as_bytes();
            let last4: [u8; 4] = b[b.len().saturating_sub(4)..].try_into().unwrap_or([0; 4]);
            assert!(TAILS.contains(&last4) || *k == "pwd", "{k}");
        }
        for key in ["pwd", "PWD", "db_pwd", "x.pwd"] {
            assert_eq!(
                classify_key(key.as_bytes()),
                Some(KeyClass::Password),
                "{key}"
            );
        }
        for key in ["key", "version", "wd", "pw_d_x"] {
            assert_eq!(classify_key(key.as_bytes()), None, "{key}");
        }
    }

    #[test]
    fn every_keyword_ends_in_a_prefiltered_pair() {
        for k in KEYWORDS {
            let b = k.as_bytes();
            assert!(
                KEYWORD_ENDINGS.contains(&[b[b.len() - 2], b[b.len() - 1]]),
                "{k}"
            );
        }
    }
}
