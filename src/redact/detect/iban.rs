//! IBANs: a known country code, two check digits and the country's exact
//! length of letters and digits, either run together (`DE89370400440532013000`)
//! or in print groups of four (`GB82 WEST 1234 5698 7654 32`), passing the
//! ISO 13616 mod-97 check.

use super::Hit;
use crate::redact::DetectorKind;
use crate::redact::text::{Ch, Res, Window, is_word, next_visible};
use crate::redact::validate::mod97;

/// IBAN length by country (ISO 13616 registry).
const LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// Two upper-case letters then two digits at `s`, not inside a word.
pub(crate) fn at_country(w: &Window, s: usize) -> Res<Option<Hit>> {
    if w.before(s).is_some_and(is_word) {
        return Ok(None);
    }
    let cc = w.slice(s, s + 2)?;
    let Some(&(_, len)) = LENGTHS.iter().find(|(c, _)| c[..] == *cc) else {
        return Ok(None);
    };
    let mut chars = [0u8; 34];
    let mut n = 0;
    let mut p = s;
    let mut end = s;
    let mut spaced = false;
    while n < len {
        match next_visible(w, p)? {
            Some((Ch::Ascii(c), _, ce)) if c.is_ascii_uppercase() || c.is_ascii_digit() => {
                chars[n] = c;
                n += 1;
                p = ce;
                end = ce;
                spaced = false;
            }
            Some((Ch::Ascii(b' '), _, ce)) if n % 4 == 0 && !spaced => {
                p = ce;
                spaced = true;
            }
            _ => return Ok(None),
        }
    }
    if let Some((c, _, _)) = next_visible(w, end)?
        && c.is_word()
    {
        return Ok(None);
    }
    Ok(mod97(&chars[..n]).then_some(Hit {
        start: s,
        end,
        kind: DetectorKind::Iban,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(s: &str) -> Option<String> {
        let w = Window::new(s.as_bytes(), true);
        (0..s.len())
            .find_map(|i| at_country(&w, i).unwrap())
            .map(|h| s[h.start..h.end].to_string())
    }

    #[test]
    fn positives() {
        for (input, want) in [
            (
                "iban GB82 WEST 1234 5698 7654 32 ok",
                "GB82 WEST 1234 5698 7654 32",
            ),
            ("DE89370400440532013000", "DE89370400440532013000"),
            (
                "(FR1420041010050500013M02606)",
                "FR1420041010050500013M02606",
            ),
            ("NO9386011117947.", "NO9386011117947"),
        ] {
            assert_eq!(find(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn negatives() {
        for s in [
            "GB82 WEST 1234 5698 7654 33",
            "DE8937040044053201300",
            "DE893704004405320130001",
            "XDE89370400440532013000",
            "ZZ89370400440532013000",
            "GB82  WEST 1234 5698 7654 32",
            "AB12 build",
        ] {
            assert_eq!(find(s), None, "{s}");
        }
    }
}
