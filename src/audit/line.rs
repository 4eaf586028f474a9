//! The exact bytes of a record line and the hashing rule.
//!
//! Every record is one line, written by [`encode`] and nothing else:
//!
//! ```text
//! {"seq":<n>,"ts":"<YYYY-MM-DDTHH:MM:SS.ffffffZ>","prev":"<64 hex>","kind":"<kind>",<members…>,"hash":"<64 hex>"}\n
//! ```
//!
//! `hash` is SHA-256 over the line's bytes from the opening `{` up to, not
//! including, the final `,"hash":` member — i.e. the line without its last 75
//! bytes and its newline. The `hash` member must be the last one and the line
//! must end right after it, so an added field, a space, a reformatted number or
//! a changed key order anywhere changes the hashed bytes or breaks the layout.
//!
//! A checkpoint's members are `"reason":"…","key_id":"<16 hex>","sig":"<128
//! hex>"` in that order; `sig` is an Ed25519 signature over [`SIGNING_DOMAIN`]
//! followed by the line's bytes up to, not including, `,"sig":` — so it covers
//! the checkpoint's seq, time, reason, key id and `prev`, and through `prev`
//! every record before it.
//!
//! This module decides bytes; it never touches files.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::record::{CheckpointReason, RecordHash};

/// Longest record line accepted, newline included.
pub const MAX_LINE: usize = 1 << 20;
/// Prefix of every signed checkpoint message.
pub const SIGNING_DOMAIN: &[u8] = b"enforcecore audit checkpoint v1\n";
/// `,"hash":"` + 64 hex + `"}`.
const HASH_MEMBER_LEN: usize = 75;
/// `,"sig":"` + 128 hex + `"`.
const SIG_MEMBER_LEN: usize = 137;
/// `2026-11-01T12:34:56.123456Z`.
const TS_LEN: usize = 27;

/// Append one record line (with its newline) to `out`; returns its hash.
/// `members` is [`super::RecordBody::to_members`]: `"kind":"…",…`.
pub fn encode(
    out: &mut Vec<u8>,
    seq: u64,
    ts: &str,
    prev: &RecordHash,
    members: &[u8],
) -> RecordHash {
    let start = out.len();
    header(out, seq, ts, prev);
    out.extend_from_slice(members);
    finish(out, start)
}

/// Append one signed checkpoint line; returns its hash.
pub fn encode_checkpoint(
    out: &mut Vec<u8>,
    seq: u64,
    ts: &str,
    prev: &RecordHash,
    reason: CheckpointReason,
    key: &SigningKey,
    key_id: &str,
) -> RecordHash {
    let start = out.len();
    header(out, seq, ts, prev);
    out.extend_from_slice(b"\"kind\":\"checkpoint\",\"reason\":\"");
    out.extend_from_slice(reason.as_str().as_bytes());
    out.extend_from_slice(b"\",\"key_id\":\"");
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(b"\"");
    let sig = key.sign(&signed_message(&out[start..]));
    out.extend_from_slice(b",\"sig\":\"");
    out.extend_from_slice(hex::encode(sig.to_bytes()).as_bytes());
    out.push(b'"');
    finish(out, start)
}

/// What a checkpoint signature covers: the domain, then the line's bytes up
/// to `,"sig":`.
pub fn signed_message(prefix: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_DOMAIN.len() + prefix.len());
    m.extend_from_slice(SIGNING_DOMAIN);
    m.extend_from_slice(prefix);
    m
}

/// Check a checkpoint's signature against `key`.
pub fn verify_signature(c: &CheckpointParts<'_>, key: &VerifyingKey) -> Result<(), String> {
    let mut sig = [0u8; 64];
    hex::decode_to_slice(c.sig_hex, &mut sig)
        .map_err(|_| "the signature is not hex".to_string())?;
    key.verify_strict(&signed_message(c.signed), &Signature::from_bytes(&sig))
        .map_err(|_| "the signature does not verify with this key".to_string())
}

fn header(out: &mut Vec<u8>, seq: u64, ts: &str, prev: &RecordHash) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"ts\":\"");
    out.extend_from_slice(ts.as_bytes());
    out.extend_from_slice(b"\",\"prev\":\"");
    out.extend_from_slice(prev.as_bytes());
    out.extend_from_slice(b"\",");
}

fn finish(out: &mut Vec<u8>, start: usize) -> RecordHash {
    let hash = RecordHash::from_digest(&Sha256::digest(&out[start..]).into());
    out.extend_from_slice(b",\"hash\":\"");
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}\n");
    hash
}

/// The members of a record line (`"kind":…` up to the `hash` member), found
/// from the fixed header layout alone; `None` when the line is too short to
/// have them. Cheap: for checking JSON syntax apart from [`parse`].
pub fn members(line: &[u8]) -> Option<&[u8]> {
    // `{"seq":` digits `,"ts":"` ts `","prev":"` 64 hex `",`
    let digits = line
        .get(7..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let start = 7 + digits + 7 + TS_LEN + 10 + 64 + 2;
    line.get(start..line.len().checked_sub(HASH_MEMBER_LEN)?)
}

/// A record line split along the layout above. Borrowed from the line.
#[derive(Clone, Copy, Debug)]
pub struct Parsed<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Timestamp text.
    pub ts: &'a str,
    /// `prev`.
    pub prev: RecordHash,
    /// The `kind` tag.
    pub kind: &'a str,
    /// The members from `"kind"` up to the `hash` member.
    pub members: &'a [u8],
    /// `hash`.
    pub hash: RecordHash,
    /// The bytes `hash` is computed over.
    pub hashed: &'a [u8],
}

/// The parts of a checkpoint line.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointParts<'a> {
    /// Why it was written.
    pub reason: CheckpointReason,
    /// Key id, 16 hex digits.
    pub key_id: &'a str,
    /// Signature, 128 hex digits.
    pub sig_hex: &'a [u8],
    /// The line's bytes up to `,"sig":` (sign with [`signed_message`]).
    pub signed: &'a [u8],
}

/// Split a line (without its newline) along the record layout. The error says
/// which part is wrong. JSON validity of the members is checked separately
/// ([`super::json_syntax::check_members`]).
pub fn parse(line: &[u8]) -> Result<Parsed<'_>, &'static str> {
    if line.len() + 1 > MAX_LINE {
        return Err("record longer than 1 MiB");
    }
    let mut c = Cursor { s: line, i: 0 };
    c.lit(b"{\"seq\":", "a record starts with {\"seq\":")?;
    let seq = c.number()?;
    c.lit(b",\"ts\":\"", "expected \"ts\" after \"seq\"")?;
    let ts = c.take(TS_LEN, "timestamp cut short")?;
    if !ts_shape(ts) {
        return Err("timestamp is not YYYY-MM-DDTHH:MM:SS.ffffffZ");
    }
    c.lit(b"\",\"prev\":\"", "expected \"prev\" after \"ts\"")?;
    let prev = RecordHash::from_hex(c.take(64, "prev cut short")?)
        .ok_or("prev is not 64 lowercase hex digits")?;
    c.lit(b"\",", "expected \"kind\" after \"prev\"")?;
    let members_start = c.i;
    c.lit(b"\"kind\":\"", "expected \"kind\" after \"prev\"")?;
    let kind_start = c.i;
    while c
        .peek()
        .is_some_and(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
    {
        c.i += 1;
    }
    let kind = &line[kind_start..c.i];
    if kind.is_empty() || kind.len() > 32 {
        return Err("kind must be 1-32 characters a-z, 0-9, -");
    }
    c.lit(b"\"", "kind must be 1-32 characters a-z, 0-9, -")?;
    let Some(hashed_len) = line.len().checked_sub(HASH_MEMBER_LEN) else {
        return Err("the record does not end with its \"hash\" member");
    };
    if hashed_len < c.i {
        return Err("the record does not end with its \"hash\" member");
    }
    let tail = &line[hashed_len..];
    let hash = RecordHash::from_hex(&tail[9..73])
        .filter(|_| tail.starts_with(b",\"hash\":\"") && tail.ends_with(b"\"}"))
        .ok_or("the record does not end with its \"hash\" member")?;
    let rest = &line[c.i..hashed_len];
    if !rest.is_empty() && rest[0] != b',' {
        return Err("expected `,` after \"kind\"");
    }
    Ok(Parsed {
        seq,
        // ts_shape checked ASCII digits and separators.
        ts: std::str::from_utf8(ts).map_err(|_| "timestamp is not text")?,
        prev,
        kind: std::str::from_utf8(kind).map_err(|_| "kind is not text")?,
        members: &line[members_start..hashed_len],
        hash,
        hashed: &line[..hashed_len],
    })
}

impl<'a> Parsed<'a> {
    /// SHA-256 of the hashed bytes.
    pub fn computed_hash(&self) -> RecordHash {
        RecordHash::from_digest(&Sha256::digest(self.hashed).into())
    }

    /// The `hash` field.
    pub fn hash(&self) -> RecordHash {
        self.hash
    }

    /// The `prev` field.
    pub fn prev(&self) -> RecordHash {
        self.prev
    }

    /// A checkpoint's parts, when this is a well-formed checkpoint.
    pub fn checkpoint(&self) -> Result<CheckpointParts<'a>, &'static str> {
        const BAD: &str = "a checkpoint is \"reason\", \"key_id\", \"sig\" and nothing else";
        let m = self.members;
        let rest = m
            .strip_prefix(b"\"kind\":\"checkpoint\",\"reason\":\"".as_slice())
            .ok_or(BAD)?;
        let end = rest.iter().position(|&b| b == b'"').ok_or(BAD)?;
        let reason = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(CheckpointReason::parse)
            .ok_or("unknown checkpoint reason")?;
        let rest = rest[end..]
            .strip_prefix(b"\",\"key_id\":\"".as_slice())
            .ok_or(BAD)?;
        if rest.len() != 16 + 1 + SIG_MEMBER_LEN {
            return Err(BAD);
        }
        let (key_id, rest) = rest.split_at(16);
        let (quote, sig_member) = rest.split_at(1);
        let sig_hex = &sig_member[8..136];
        if quote != b"\""
            || !key_id
                .iter()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
            || !sig_member.starts_with(b",\"sig\":\"")
            || !sig_member.ends_with(b"\"")
            || !sig_hex
                .iter()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(BAD);
        }
        Ok(CheckpointParts {
            reason,
            key_id: std::str::from_utf8(key_id).map_err(|_| BAD)?,
            sig_hex,
            signed: &self.hashed[..self.hashed.len() - SIG_MEMBER_LEN],
        })
    }
}

fn ts_shape(t: &[u8]) -> bool {
    const PATTERN: &[u8; TS_LEN] = b"0000-00-00T00:00:00.000000Z";
    let Ok(t) = <&[u8; TS_LEN]>::try_from(t) else {
        return false;
    };
    // Digits where the pattern has `0`, the separators elsewhere.
    t.iter().zip(PATTERN).fold(true, |ok, (&b, &p)| {
        ok & if p == b'0' {
            b.is_ascii_digit()
        } else {
            b == p
        }
    })
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// The fixed bytes `want` next. Fixed-size arrays compare inline (no
    /// `memcmp` call per literal: this runs five times per verified record).
    #[inline(always)]
    fn lit<const N: usize>(
        &mut self,
        want: &[u8; N],
        err: &'static str,
    ) -> Result<(), &'static str> {
        match self.s.get(self.i..self.i + N).map(<&[u8; N]>::try_from) {
            Some(Ok(got)) if got == want => {
                self.i += N;
                Ok(())
            }
            _ => Err(err),
        }
    }

    fn take(&mut self, n: usize, err: &'static str) -> Result<&'a [u8], &'static str> {
        let out = self.s.get(self.i..self.i + n).ok_or(err)?;
        self.i += n;
        Ok(out)
    }

    /// A sequence number: 1..=u64::MAX without leading zeros.
    fn number(&mut self) -> Result<u64, &'static str> {
        const BAD: &str = "seq must be a positive integer without leading zeros";
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or(BAD)?;
            self.i += 1;
        }
        if self.i == start || self.s[start] == b'0' {
            return Err(BAD);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "2026-11-01T12:34:56.123456Z";

    fn line(members: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, 7, TS, &RecordHash::GENESIS, members);
        out.pop();
        out
    }

    #[test]
    fn encode_then_parse() {
        let l = line(b"\"kind\":\"denial\",\"run\":\"r1\"");
        let p = parse(&l).unwrap();
        assert_eq!(p.seq, 7);
        assert_eq!(p.ts, TS);
        assert_eq!(p.kind, "denial");
        assert_eq!(p.members, b"\"kind\":\"denial\",\"run\":\"r1\"");
        assert_eq!(members(&l), Some(p.members));
        assert_eq!(p.computed_hash(), p.hash());
        assert!(super::super::json_syntax::check_object(&l).is_ok());
        let bare = line(b"\"kind\":\"supervisor-stopped\"");
        assert_eq!(parse(&bare).unwrap().kind, "supervisor-stopped");
    }

    #[test]
    fn layout_violations_are_named() {
        let good = line(b"\"kind\":\"denial\",\"run\":\"r1\"");
        let s = String::from_utf8(good.clone()).unwrap();
        for (bad, why) in [
            (s.replacen("{\"seq\":7", "{ \"seq\":7", 1), "starts"),
            (s.replacen("\"seq\":7", "\"seq\":07", 1), "seq"),
            (s.replacen("\"seq\":7", "\"seq\":0", 1), "seq"),
            (
                s.replacen("\"seq\":7", "\"seq\":99999999999999999999", 1),
                "seq",
            ),
            (
                s.replacen(TS, "2026-11-01 12:34:56.123456Z", 1),
                "timestamp",
            ),
            (
                s.replacen("\"kind\":\"denial\"", "\"kind\":\"Denial\"", 1),
                "kind",
            ),
            (
                s.replacen("\"kind\":\"denial\"", "\"kind\":\"denial\" ", 1),
                "`,`",
            ),
            (format!("{s} "), "hash"),
            (s.replacen("\"}", "\",\"x\":1}", 1), "hash"),
            (s[..s.len() - 1].to_string(), "hash"),
        ] {
            let err = parse(bad.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn checkpoint_signature_covers_the_prefix() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let mut out = Vec::new();
        encode_checkpoint(
            &mut out,
            3,
            TS,
            &RecordHash::GENESIS,
            CheckpointReason::Close,
            &key,
            "0123456789abcdef",
        );
        out.pop();
        let p = parse(&out).unwrap();
        assert_eq!(p.computed_hash(), p.hash());
        let c = p.checkpoint().unwrap();
        assert_eq!(c.reason, CheckpointReason::Close);
        let mut sig = [0u8; 64];
        hex::decode_to_slice(c.sig_hex, &mut sig).unwrap();
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        key.verifying_key()
            .verify_strict(&signed_message(c.signed), &sig)
            .unwrap();
        assert!(c.signed.ends_with(b"\"key_id\":\"0123456789abcdef\""));
        assert!(super::super::json_syntax::check_object(&out).is_ok());
    }
}
