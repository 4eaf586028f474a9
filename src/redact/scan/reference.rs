//! The trigger rules, one byte at a time: the specification
//! [`block_triggers`](super::classify::block_triggers) implements, and the
//! tests that hold the two together.
use super::classify::*;

/// Trigger kinds at every position of a complete stream.
pub(crate) fn triggers(b: &[u8]) -> Vec<(usize, u8)> {
    let byte = |i: isize| {
        if i < 0 {
            None
        } else {
            b.get(i as usize).copied()
        }
    };
    let at = |i: isize| -> u16 { class_bits(byte(i - 1), byte(i)) };
    let is = |i: isize, c: usize| at(i) >> c & 1 == 1;
    let mut out = Vec::new();
    for i in 0..=b.len() as isize {
        let mut kinds = 0u8;
        // NUM: i is right after a digit run [s, i).
        if !is(i, D) && is(i - 1, D) {
            let mut s = i - 1;
            while is(s - 1, D) {
                s -= 1;
            }
            let good = !(is(s - 1, W) || ((is(s - 1, SEP) || is(s - 1, C)) && is(s - 2, D)));
            let follow = is(i, ZWF)
                || i - s >= 9
                || (is(i, SEP) && (is(i + 1, D) || (is(i + 1, SEP) && is(i + 2, D))));
            if good && !is(i, W) && follow {
                kinds |= NUM;
            }
        }
        if is(i, U) && is(i + 1, U) && is(i + 2, D) && is(i + 3, D) && !is(i - 1, W) {
            kinds |= IBAN;
        }
        if is(i, C) {
            let mut s = i;
            while is(s - 1, X) {
                s -= 1;
            }
            let glued = is(s - 1, W) || is(s - 1, C);
            // After hex digits: a hex digit or colon follows; alone: `::`.
            let next = if s < i {
                is(i + 1, X) || is(i + 1, C)
            } else {
                is(i + 1, C)
            };
            if !glued && next {
                kinds |= COLON;
            }
        }
        if is(i, C) && is(i + 1, SL) && is(i + 2, SL) {
            kinds |= URL;
        }
        if is(i, OP)
            && (is(i - 1, PAIR) || (is(i - 1, QS) && is(i - 2, PAIR)))
            && key_may_name_credential(b, i as usize)
        {
            kinds |= ASSIGN;
        }
        if is(i, SPECIAL) {
            kinds |= AT;
        }
        if kinds != 0 {
            out.push(i as usize);
            out.push(kinds as usize);
        }
    }
    out.chunks(2).map(|p| (p[0], p[1] as u8)).collect()
}

mod tests {
    use super::*;
    use crate::redact::detect::assign;
    use proptest::prelude::*;

    /// Trigger kinds of a complete stream, computed block by block.
    fn blockwise(b: &[u8]) -> Vec<(usize, u8)> {
        let mut out = Vec::new();
        let (mut nc, mut hc, mut prev) = (false, false, Classes::default());
        let mut start = 0;
        while start <= b.len() {
            let cur = classify(b, start);
            let t = block_triggers(b, start, &prev, &cur, &classify(b, start + 64), nc, hc, 63);
            for i in 0..64 {
                let mut kinds = 0u8;
                for (k, m) in t.kinds.iter().enumerate() {
                    kinds |= (((m >> i) & 1) as u8) << k;
                }
                if kinds != 0 && start + i <= b.len() {
                    out.push((start + i, kinds));
                }
            }
            nc = t.num_carry;
            hc = t.hex_carry;
            prev = cur;
            start += 64;
        }
        out
    }

    fn text() -> impl Strategy<Value = Vec<u8>> {
        let atoms = prop::sample::select(vec![
            "0", "1", "9", "12", "4111", " ", "-", ".", "(", ")", ":", "/", "=", "@", "a", "f",
            "G", "Z", "DE", "s", "d", "rd", "ey", "on", "Wd", "LS", "\"", "'", "_", "\n",
            "\u{200B}", "４", "＠", "\u{AD}", "é", "\0", "\u{FF}", "passwo", "secr", "tok",
            "api_k", "_KEY", "aws", "pwd", "tion", "ials", "x", "\"key\"",
        ]);
        prop::collection::vec(atoms, 0..160).prop_map(|v| v.concat().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn block_masks_follow_the_byte_rules(b in text()) {
            prop_assert_eq!(blockwise(&b), triggers(&b));
        }
    }

    #[test]
    fn keyword_pairs_match_their_list() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let listed = assign::KEYWORD_ENDINGS
                    .contains(&[a.to_ascii_lowercase(), b.to_ascii_lowercase()]);
                assert_eq!(is_pair(Some(a), b), listed, "{a} {b}");
            }
        }
    }

    #[test]
    fn ordinary_log_lines_trigger_rarely() {
        let line = b"2024-05-14T09:21:33.482Z INFO  [worker-3] request_id=7f9c2b1e-4d3a-4b8e-9c1f-2e5d8a7b6c4d method=GET path=/api/v1/users/48213 status=200 duration_ms=37 bytes=5123\n";
        let n = triggers(line).len();
        assert!(n <= 1, "{n} triggers: {:?}", triggers(line));
    }
}
