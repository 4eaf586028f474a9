//! Credentials recognised by a literal prefix: AWS access key ids, GitHub,
//! GitLab, Slack, Stripe, Google, OpenAI, Anthropic, npm, PyPI, Hugging Face and
//! SendGrid tokens, JWTs, and the opening line of PEM private-key blocks.
//!
//! The scanner finds the prefixes ([`LITERALS`]) with one multi-literal search;
//! each then has a body alphabet and a length range, and the whole token must
//! stand alone (no letter, digit or `_` on either side). A JWT is three (or, for
//! JWE, five) base64url segments whose first two start with `ey` (`{"`); one
//! longer than [`MAX_JWT`] is cut there and still replaced.

use super::Hit;
use crate::redact::DetectorKind;
use crate::redact::text::{Res, Window, is_word};

/// The prefixes the literal search looks for, in the order of [`Literal`].
pub(crate) const LITERALS: &[&str] = &[
    "AKIA",
    "ASIA",
    "AIza",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xox",
    "xapp-",
    "sk_",
    "rk_",
    "sk-",
    "npm_",
    "pypi-",
    "hf_",
    "SG.",
    "eyJ",
    PEM_BEGIN,
];

/// Index of the PEM opening literal in [`LITERALS`].
pub(crate) const PEM_LITERAL: usize = 20;
/// Index of the JWT literal (`eyJ`) in [`LITERALS`].
pub(crate) const JWT_LITERAL: usize = 19;
const PEM_BEGIN: &str = "-----BEGIN ";

/// Longest JWT replaced as one token.
pub(crate) const MAX_JWT: usize = 16 * 1024;
/// Longest PEM opening line (`-----BEGIN … PRIVATE KEY-----`).
const MAX_PEM_LABEL: usize = 64;

/// What a literal turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// A complete credential.
    Hit(Hit),
    /// The opening line of a private-key block ends at `body`; the block
    /// itself is read by `pem::Body`.
    PemOpen {
        /// Start of `-----BEGIN`.
        start: usize,
        /// First byte after the opening line's closing dashes.
        body: usize,
    },
}

fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}
fn upper_digit(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}
/// A base64url byte.
pub(crate) fn b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}
fn alnum_us(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}
fn alnum_dash(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

/// Length of the run of `body` bytes at `i`, reading at most `max + 1`.
fn run(w: &Window, i: usize, max: usize, body: fn(u8) -> bool) -> Res<usize> {
    let mut n = 0;
    while n <= max {
        match w.at(i + n)? {
            Some(c) if body(c) => n += 1,
            _ => break,
        }
    }
    Ok(n)
}

/// A token of `prefix` bytes then `min..=max` bytes of `body`, standing alone.
fn simple(
    w: &Window,
    s: usize,
    prefix: usize,
    body: fn(u8) -> bool,
    min: usize,
    max: usize,
    kind: DetectorKind,
) -> Res<Option<Token>> {
    let n = run(w, s + prefix, max, body)?;
    let end = s + prefix + n;
    if n < min || n > max || w.at(end)?.is_some_and(is_word) {
        return Ok(None);
    }
    Ok(Some(Token::Hit(Hit {
        start: s,
        end,
        kind,
    })))
}

/// The literal `LITERALS[id]` found at `s`.
pub(crate) fn at_literal(w: &Window, s: usize, id: usize) -> Res<Option<Token>> {
    use DetectorKind::*;
    if id == PEM_LITERAL {
        return pem_open(w, s);
    }
    if w.before(s).is_some_and(is_word) {
        return Ok(None);
    }
    let lit = LITERALS[id].len();
    let rest = |k: usize| w.slice(s + lit, s + lit + k);
    match LITERALS[id] {
        "AKIA" | "ASIA" => simple(w, s, lit, upper_digit, 16, 16, AwsAccessKey),
        "AIza" => simple(w, s, lit, b64url, 35, 35, GoogleApiKey),
        "ghp_" | "gho_" | "ghu_" | "ghs_" | "ghr_" => {
            simple(w, s, lit, alnum, 36, 251, GithubToken)
        }
        "github_pat_" => simple(w, s, lit, alnum_us, 22, 242, GithubToken),
        "glpat-" => simple(w, s, lit, b64url, 20, 64, GitlabToken),
        "xox" => match rest(2)? {
            [b'a' | b'b' | b'p' | b'r' | b's' | b'e', b'-'] => {
                simple(w, s, lit + 2, alnum_dash, 10, 250, SlackToken)
            }
            _ => Ok(None),
        },
        "xapp-" => simple(w, s, lit, alnum_dash, 10, 250, SlackToken),
        "sk_" | "rk_" => match rest(5)? {
            b"live_" | b"test_" => simple(w, s, lit + 5, alnum, 16, 247, StripeKey),
            _ => Ok(None),
        },
        "sk-" => {
            if rest(4)? == b"ant-" {
                return simple(w, s, lit + 4, b64url, 32, 250, AnthropicKey);
            }
            let hit = simple(w, s, lit, b64url, 20, 250, OpenaiKey)?;
            Ok(hit.filter(|t| match t {
                Token::Hit(h) => {
                    let body = &w.bytes[h.start + lit..h.end];
                    body.iter().any(u8::is_ascii_digit)
                        && body.iter().any(u8::is_ascii_uppercase)
                        && body.iter().any(u8::is_ascii_lowercase)
                }
                Token::PemOpen { .. } => false,
            }))
        }
        "npm_" => simple(w, s, lit, alnum, 36, 36, NpmToken),
        "pypi-" => match rest(3)? {
            b"AgE" => simple(w, s, lit, b64url, 50, 250, PypiToken),
            _ => Ok(None),
        },
        "hf_" => simple(w, s, lit, alnum, 30, 40, HuggingfaceToken),
        "SG." => {
            let a = run(w, s + 3, 22, b64url)?;
            if a != 22 || w.at(s + 25)? != Some(b'.') {
                return Ok(None);
            }
            simple(w, s, 26, b64url, 43, 43, SendgridKey)
        }
        "eyJ" => jwt(w, s),
        _ => Ok(None),
    }
}

/// `header.payload.signature[.x.y]`, each segment base64url.
fn jwt(w: &Window, s: usize) -> Res<Option<Token>> {
    let mut p = s;
    let mut segments = 0;
    loop {
        let room = MAX_JWT - (p - s);
        let n = run(w, p, room, b64url)?;
        if n > room {
            // Longer than any real token: replace what we have read, fail safe.
            let end = s + MAX_JWT;
            return Ok(Some(Token::Hit(Hit {
                start: s,
                end,
                kind: DetectorKind::Jwt,
            })));
        }
        let seg = &w.bytes[p..p + n];
        match segments {
            0 | 1 if n < 10 || !seg.starts_with(b"ey") => return Ok(None),
            _ => {}
        }
        p += n;
        segments += 1;
        if segments == 5 || w.at(p)? != Some(b'.') {
            break;
        }
        if segments >= 3 && !w.at(p + 1)?.is_some_and(b64url) {
            break;
        }
        p += 1;
    }
    if segments < 3 {
        // `header.payload.` with an empty signature (alg "none") is a JWT too.
        if segments == 2 && w.at(p)? == Some(b'.') {
            p += 1;
        } else {
            return Ok(None);
        }
    }
    Ok(Some(Token::Hit(Hit {
        start: s,
        end: p,
        kind: DetectorKind::Jwt,
    })))
}

/// `-----BEGIN <label>-----` where the label ends in `PRIVATE KEY` (or
/// `PRIVATE KEY BLOCK`, PGP).
fn pem_open(w: &Window, s: usize) -> Res<Option<Token>> {
    let from = s + PEM_BEGIN.len();
    let mut e = from;
    loop {
        match w.at(e)? {
            Some(c) if c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' ' => e += 1,
            Some(b'-') => break,
            _ => return Ok(None),
        }
        if e - from > MAX_PEM_LABEL {
            return Ok(None);
        }
    }
    if w.slice(e, e + 5)? != b"-----" {
        return Ok(None);
    }
    let label = &w.bytes[from..e];
    if !(label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK")) {
        return Ok(None);
    }
    Ok(Some(Token::PemOpen {
        start: s,
        body: e + 5,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every complete token in `s`, found the way the scanner finds them.
    pub(crate) fn find(s: &str) -> Option<(String, DetectorKind)> {
        let w = Window::new(s.as_bytes(), true);
        for i in 0..s.len() {
            for (id, lit) in LITERALS.iter().enumerate() {
                if s.as_bytes()[i..].starts_with(lit.as_bytes())
                    && let Some(Token::Hit(h)) = at_literal(&w, i, id).unwrap()
                {
                    return Some((s[h.start..h.end].to_string(), h.kind));
                }
            }
        }
        None
    }

    pub(crate) const SAMPLES: &[(&str, DetectorKind)] = &[
        ("AKIAIOSFODNN7EXAMPLE", DetectorKind::AwsAccessKey),
        ("ASIAY34FZKBOKMUTVV7A", DetectorKind::AwsAccessKey),
        (
            "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
            DetectorKind::GoogleApiKey,
        ),
        (
            "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",
            DetectorKind::GithubToken,
        ),
        (
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            DetectorKind::GithubToken,
        ),
        (
            "github_pat_11ABCDEFG0123456789abc_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx0123456789AB",
            DetectorKind::GithubToken,
        ),
        ("glpat-xxxxXXXX1234yyyyZZZZ", DetectorKind::GitlabToken),
        (
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            DetectorKind::SlackToken,
        ),
        (
            "xapp-1-A0123456789-1234567890123-abcdef0123456789",
            DetectorKind::SlackToken,
        ),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", DetectorKind::StripeKey),
        ("rk_test_51H8abcdEFGHijklMNOPqrst", DetectorKind::StripeKey),
        (
            "sk-proj-Ab3dEf6hIj9lMn2pQr5tUv8xYz1BcDeFgHiJkLmNoPq",
            DetectorKind::OpenaiKey,
        ),
        (
            "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",
            DetectorKind::OpenaiKey,
        ),
        (
            "sk-ant-api03-Ab3dEf6hIj9lMn2pQr5tUv8xYz1BcDeFgHiJkLmNoPqRsTuVwXyZ-AA",
            DetectorKind::AnthropicKey,
        ),
        (
            "npm_abcdefghijklmnopqrstuvwxyz0123456789",
            DetectorKind::NpmToken,
        ),
        (
            "pypi-AgEIcHlwaS5vcmcCJGE0YjM5ZDI3LTQxYjQtNDRiYi05ZjE3LWE1MGZiMWQwYjA0ZQACKlsz",
            DetectorKind::PypiToken,
        ),
        (
            "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
            DetectorKind::HuggingfaceToken,
        ),
        (
            "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",
            DetectorKind::SendgridKey,
        ),
        (
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            DetectorKind::Jwt,
        ),
        (
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
            DetectorKind::Jwt,
        ),
    ];

    #[test]
    fn positives_alone_and_in_text() {
        for (tok, kind) in SAMPLES {
            assert_eq!(find(tok), Some((tok.to_string(), *kind)), "{tok}");
            let line = format!("auth \"{tok}\", next");
            assert_eq!(find(&line), Some((tok.to_string(), *kind)), "{line}");
        }
    }

    #[test]
    fn the_jwt_literal_index_is_right() {
        assert_eq!(LITERALS[JWT_LITERAL], "eyJ");
        assert_eq!(LITERALS[PEM_LITERAL], PEM_BEGIN);
    }

    #[test]
    fn negatives() {
        for s in [
            "AKIAIOSFODNN7EXAMPL",
            "XAKIAIOSFODNN7EXAMPLE",
            "AKIAIOSFODNN7EXAMPLEX",
            "task_id=4 disk-usage ask-me",
            "sk-learn-is-a-library-of-the-year",
            "risk_live_feed",
            "ghp_short",
            "xoxo gossip",
            "SG.short.x",
            "eyJ.eyJ.x",
            "npm_install_dir",
            "pypi-simple-index",
            "hf_hub_download",
            "glpat-short",
            "-----BEGIN CERTIFICATE-----",
            "-----BEGIN PUBLIC KEY-----",
        ] {
            assert_eq!(find(s), None, "{s}");
        }
    }

    #[test]
    fn pem_opening_lines() {
        for label in [
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "PGP PRIVATE KEY BLOCK",
        ] {
            let s = format!("x -----BEGIN {label}-----\nAAAA");
            let w = Window::new(s.as_bytes(), true);
            let at = s.find("-----").unwrap();
            let body = at + "-----BEGIN ".len() + label.len() + 5;
            assert_eq!(
                at_literal(&w, at, PEM_LITERAL).unwrap(),
                Some(Token::PemOpen { start: at, body }),
                "{label}"
            );
        }
    }

    #[test]
    fn oversized_jwt_is_cut_not_leaked() {
        let s = format!("eyJhbGciOiJIUzI1NiJ9.eyJ{}.sig", "a".repeat(MAX_JWT));
        let w = Window::new(s.as_bytes(), true);
        let Some(Token::Hit(h)) = at_literal(&w, 0, JWT_LITERAL).unwrap() else {
            panic!("no hit")
        };
        assert_eq!((h.start, h.end), (0, MAX_JWT));
    }
}
