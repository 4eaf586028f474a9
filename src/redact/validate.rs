//! Checksums and plausibility tests that turn a pattern match into a detection:
//! Luhn (payment cards), ISO 13616 mod-97 (IBAN), Shannon entropy and the
//! placeholder rules of the generic secret detector.
//!
//! Pure functions over bytes; they never allocate and never see more than one
//! candidate value.

/// Luhn checksum over ASCII digits (non-digits are ignored). False when there
/// are fewer than two digits.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut n = 0usize;
    for &b in digits.iter().rev().filter(|b| b.is_ascii_digit()) {
        let mut d = u32::from(b - b'0');
        if n % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        n += 1;
    }
    n >= 2 && sum.is_multiple_of(10)
}

/// ISO 13616 check of an IBAN given as ASCII letters and digits (spaces are
/// ignored, letters may be lower case): move the first four characters to the
/// end, read letters as 10..35, and the number must be 1 modulo 97.
pub(crate) fn mod97(iban: &[u8]) -> bool {
    let chars: Vec<u8> = iban
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(u8::to_ascii_uppercase)
        .collect();
    if chars.len() < 5 || !chars.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let mut rem = 0u32;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(c - b'A') + 10) % 97;
        }
    }
    rem == 1
}

/// Shannon entropy of the bytes, in bits per byte.
pub(crate) fn entropy(value: &[u8]) -> f64 {
    if value.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in value {
        counts[usize::from(b)] += 1;
    }
    let n = value.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Words that stand for "no value here" rather than a secret.
const STOP_WORDS: &[&str] = &[
    "null",
    "none",
    "nil",
    "true",
    "false",
    "undefined",
    "empty",
    "redacted",
    "hidden",
    "masked",
    "secret",
    "password",
    "token",
    "example",
    "required",
    "optional",
    "string",
];

/// True when `value` is a stand-in that documentation and templates use instead
/// of a real secret: `YOUR_KEY_HERE`, `<token>`, `${DB_PASSWORD}`, `{{ .pw }}`,
/// `$PASSWORD`, `%s`, `********`, `xxxx`, `[REDACTED:…]`, `null`, ….
pub(crate) fn is_placeholder(value: &[u8]) -> bool {
    let v = value;
    if v.is_empty() {
        return true;
    }
    let starts = |p: &[u8]| v.starts_with(p);
    if starts(b"${")
        || starts(b"{{")
        || starts(b"$(")
        || starts(b"%(")
        || starts(b"%s")
        || starts(b"[REDACTED")
        || (v[0] == b'<' && v[v.len() - 1] == b'>')
    {
        return true;
    }
    // $VAR / %VAR% references.
    if (v[0] == b'$' || v[0] == b'%') && v[1..].iter().all(|&b| is_upper_ident(b) || b == b'%') {
        return true;
    }
    // One character repeated: ****, xxxx, ....
    if v.iter().all(|&b| b == v[0]) {
        return true;
    }
    // SHOUTED_WORDS_WITH_UNDERSCORES without digits: YOUR_KEY_HERE, CHANGE_ME.
    if v.contains(&b'_')
        && v.iter()
            .all(|&b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
    {
        return true;
    }
    if v.len() <= 10
        && STOP_WORDS
            .iter()
            .any(|w| w.as_bytes().eq_ignore_ascii_case(v))
    {
        return true;
    }
    // Mostly x/X/* with separators: xxxx-xxxx, sk-xxxxxxxx.
    let filler = v
        .iter()
        .filter(|&&b| matches!(b, b'x' | b'X' | b'*' | b'.'))
        .count();
    filler * 4 >= v.len() * 3
}

fn is_upper_ident(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
}

/// The entropy floor a value of `len` bytes must reach to count as a secret.
/// Short values cannot reach high entropy (7 distinct bytes give at most
/// log2 7 ≈ 2.8 bits), so the floor grows with the length up to 3 bits.
pub(crate) fn entropy_floor(len: usize) -> f64 {
    (0.8 * (len.max(1) as f64).log2()).min(3.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_valid_and_rejects_altered_numbers() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(luhn(b"378282246310005"));
        assert!(luhn(b"6011111111111117"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b"0"));
        assert!(!luhn(b""));
    }

    #[test]
    fn mod97_accepts_valid_ibans_only() {
        assert!(mod97(b"GB82WEST12345698765432"));
        assert!(mod97(b"GB82 WEST 1234 5698 7654 32"));
        assert!(mod97(b"DE89370400440532013000"));
        assert!(mod97(b"fr1420041010050500013m02606"));
        assert!(!mod97(b"GB82WEST12345698765433"));
        assert!(!mod97(b"DE89-3704"));
        assert!(!mod97(b"DE8"));
    }

    #[test]
    fn entropy_orders_values_sensibly() {
        assert_eq!(entropy(b"aaaaaaaa"), 0.0);
        assert!((entropy(b"ab") - 1.0).abs() < 1e-9);
        assert!(entropy(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") > 4.0);
        assert!(entropy(b"hunter2") >= entropy_floor(7));
        assert!(entropy(b"aaaab") < entropy_floor(5));
    }

    #[test]
    fn placeholders_are_recognised() {
        for p in [
            "YOUR_KEY_HERE",
            "CHANGE_ME",
            "<token>",
            "<your-api-key>",
            "${DB_PASSWORD}",
            "{{ .Values.password }}",
            "$PASSWORD",
            "%DB_PASS%",
            "%s",
            "********",
            "xxxx-xxxx-xxxx",
            "[REDACTED:GENERIC_SECRET]",
            "null",
            "None",
            "",
        ] {
            assert!(is_placeholder(p.as_bytes()), "{p}");
        }
        for s in [
            "hunter2",
            "Tr0ub4dor&3",
            "9f86d081884c7d659a2f",
            "ABCD_1234_XYZ9",
            "correct horse battery staple",
            "s3cr3t-Value",
        ] {
            assert!(!is_placeholder(s.as_bytes()), "{s}");
        }
    }
}
