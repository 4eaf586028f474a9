use super::quick::{is_iso_date, is_short_pair, plausible};
use super::*;

/// Run the detector the way the scanner does: at the end of the first ASCII
/// digit run, or at a fullwidth first digit.
pub(crate) fn find(s: &str) -> Option<(String, DetectorKind)> {
    let w = Window::new(s.as_bytes(), true);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let hit = if b[i].is_ascii_digit() {
            let mut e = i;
            while e < b.len() && b[e].is_ascii_digit() {
                e += 1;
            }
            let h = at_run_end(&w, e).unwrap();
            i = e;
            h
        } else if b[i] == 0xEF {
            let h = at_digit(&w, i).unwrap();
            i += 1;
            h
        } else {
            i += 1;
            None
        };
        if let Some(h) = hit {
            return Some((s[h.start..h.end].to_string(), h.kind));
        }
    }
    None
}

#[test]
fn positives() {
    use DetectorKind::*;
    let cases = [
        ("call +44 20 7946 0958 now", "+44 20 7946 0958", Phone),
        ("tel:+14155552671.", "+14155552671", Phone),
        ("+33 1 23 45 67 89", "+33 1 23 45 67 89", Phone),
        ("+1 (555) 234-5678", "+1 (555) 234-5678", Phone),
        ("phone (555) 234-5678", "(555) 234-5678", Phone),
        ("x 555-234-5678 y", "555-234-5678", Phone),
        ("555.234.5678", "555.234.5678", Phone),
        ("1-800-555-2345", "1-800-555-2345", Phone),
        ("ssn 123-45-6789,", "123-45-6789", UsSsn),
        (
            "card 4111 1111 1111 1111 ok",
            "4111 1111 1111 1111",
            CreditCard,
        ),
        ("4111111111111111", "4111111111111111", CreditCard),
        ("5555-5555-5555-4444", "5555-5555-5555-4444", CreditCard),
        ("amex 3782 822463 10005", "3782 822463 10005", CreditCard),
        ("6011111111111117", "6011111111111117", CreditCard),
        ("jcb 3530111333300000", "3530111333300000", CreditCard),
        ("2221000000000009", "2221000000000009", CreditCard),
        (
            "status 200 4111 1111 1111 1111",
            "4111 1111 1111 1111",
            CreditCard,
        ),
        ("from 10.1.2.3:8080", "10.1.2.3", Ipv4),
        ("ip=192.168.0.1.", "192.168.0.1", Ipv4),
        (
            "４１１１ １１１１ １１１１ １１１１",
            "４１１１ １１１１ １１１１ １１１１",
            CreditCard,
        ),
        (
            "4111\u{200B}1111\u{200B}1111\u{200B}1111",
            "4111\u{200B}1111\u{200B}1111\u{200B}1111",
            CreditCard,
        ),
        ("１２３-４５-６７８９", "１２３-４５-６７８９", UsSsn),
    ];
    for (input, want, kind) in cases {
        assert_eq!(find(input), Some((want.to_string(), kind)), "{input}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    /// The quick pre-check never rules out a span the full reading accepts.
    #[test]
    fn the_quick_check_is_sound(atoms in proptest::collection::vec(proptest::sample::select(vec![
        "0", "1", "2", "4", "5", "9", "12", "123", "4111", "555", " ", "-", ".", "(", ")", "+", "x", ",", ":",
        "2024", "05", "T", "-05-", "\"", "(2", "(555) ", "+1 (",
    ]), 0..40)) {
        let s = atoms.concat();
        let b = s.as_bytes();
        let w = Window::new(b, true);
        for i in 0..b.len() {
            if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()) {
                let mut end = i;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if !plausible(b, i) || is_iso_date(b, i, end) || is_short_pair(b, i, end) {
                    proptest::prop_assert_eq!(analyze(&w, i).unwrap(), None, "{} at {}", s, i);
                }
            }
        }
    }
}

#[test]
fn ordinary_numbers_are_left_alone() {
    for s in [
        "2024-05-14T09:21:33.482Z",
        "2024-05-14,2024-05-15\"2024-05-16",
        "2024-05-14 09:21:33,482",
        "[1715678493.123456]",
        "1715678493",
        "v1.2.3",
        "version 1.27.3",
        "1.3.6.1.4.1.2021",
        "port 8080, pid 4312",
        "total=$1,249.99",
        "took 12.4s",
        "id 4111111111111112",
        "uuid 67c76fb0-08f8-6beb-b273-7f6a6f0fb23c",
        "sha 3f5c9d2e1b4a7c6d8e9f0a1b2c3d4e5f6a7b8c9d",
        "000-12-3456 666-12-3456 912-34-5678 123-00-4567",
        "123-456-7890",
        "055-234-5678",
        "a10.1.2.3",
        "10.1.2.3.4",
        "300.1.2.3",
        "listening on 0.0.0.0:443, 127.0.0.1:8080, 255.255.255.255",
        "+0 12 345 6789",
        "ISBN 978-3-16-148410-0",
        "INV-2024-004821",
        "1234 5678 9012 3456",
    ] {
        assert_eq!(find(s), None, "{s}");
    }
}
