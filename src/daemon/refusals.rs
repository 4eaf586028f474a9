//! How many refused requests the daemon records one by one.
//!
//! Every refused call or reload is answered, and recorded as a `denial`
//! (fsynced). Without a bound, any process that may connect — an agent or
//! not — could grow the trail by one record per request, thousands a second.
//! Per caller uid, a bucket of [`BURST`] records refilled at [`PER_MINUTE`] a
//! minute: past it, refusals are still answered (126) but only counted, and
//! the count goes into the trail as one `denials-lost` record with source
//! [`SOURCE`] — just before that uid's next recorded refusal, or when the
//! daemon stops. Nothing is lost: the count and the uid are in the trail.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::audit::RecordBody;

/// Refusals recorded one by one per uid and minute, sustained.
pub const PER_MINUTE: f64 = 60.0;
/// Refusals a uid may have recorded in a burst.
pub const BURST: f64 = 60.0;
/// The `denials-lost` source of a count of unrecorded refusals.
pub const SOURCE: &str = "refusal-cap";
/// Buckets kept before full, quiet ones are dropped.
const MAX_BUCKETS: usize = 4096;

/// The per-uid buckets.
#[derive(Debug, Default)]
pub struct RefusalCap {
    uids: Mutex<HashMap<u32, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    counted: u64,
}

/// What to do with one refusal.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Record it, after a count of the refusals not recorded before it (if any).
    Record {
        /// Refusals of this uid only counted since its last record.
        counted_before: u64,
    },
    /// Only count it.
    Count,
}

impl RefusalCap {
    /// One refusal of `uid` at `now`.
    pub fn check(&self, uid: u32, now: Instant) -> Verdict {
        let mut uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
        if uids.len() >= MAX_BUCKETS {
            uids.retain(|_, b| b.counted > 0 || refill(b, now) < BURST);
        }
        let b = uids.entry(uid).or_insert(Bucket {
            tokens: BURST,
            at: now,
            counted: 0,
        });
        b.tokens = refill(b, now);
        b.at = now;
        if b.tokens < 1.0 {
            b.counted += 1;
            return Verdict::Count;
        }
        b.tokens -= 1.0;
        Verdict::Record {
            counted_before: std::mem::take(&mut b.counted),
        }
    }

    /// The counts not yet recorded, per uid (taken: the daemon is stopping).
    pub fn take_counted(&self) -> Vec<(u32, u64)> {
        let mut uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(u32, u64)> = uids
            .iter_mut()
            .filter(|(_, b)| b.counted > 0)
            .map(|(uid, b)| (*uid, std::mem::take(&mut b.counted)))
            .collect();
        out.sort_unstable();
        out
    }
}

/// The bucket's tokens at `now`.
fn refill(b: &Bucket, now: Instant) -> f64 {
    let minutes = now.saturating_duration_since(b.at).as_secs_f64() / 60.0;
    (b.tokens + minutes * PER_MINUTE).min(BURST)
}

/// The record of `n` refusals of `uid` that were answered but not recorded.
pub fn counted_record(uid: u32, n: u64) -> RecordBody {
    RecordBody::DenialsLost {
        source: SOURCE.into(),
        detail: format!(
            "uid {uid}: {n} refused request{} answered but not recorded one by one (over \
             {BURST} at once or {PER_MINUTE} a minute from one uid)",
            if n == 1 { " was" } else { "s were" }
        ),
        runs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_is_recorded_then_counted_then_the_count_comes_first() {
        let cap = RefusalCap::default();
        let t0 = Instant::now();
        for _ in 0..BURST as usize {
            assert_eq!(cap.check(7, t0), Verdict::Record { counted_before: 0 });
        }
        for _ in 0..5 {
            assert_eq!(cap.check(7, t0), Verdict::Count);
        }
        // Another uid has its own bucket.
        assert_eq!(cap.check(8, t0), Verdict::Record { counted_before: 0 });
        // A second later one token is back: the next refusal is recorded,
        // after the count of those that were not.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(cap.check(7, t1), Verdict::Record { counted_before: 5 });
        assert_eq!(cap.check(7, t1), Verdict::Count);
        assert_eq!(cap.take_counted(), vec![(7, 1)]);
        assert!(cap.take_counted().is_empty());
    }

    #[test]
    fn the_count_record_names_the_uid_and_the_number() {
        let RecordBody::DenialsLost { source, detail, .. } = counted_record(1234, 9015) else {
            panic!("not denials-lost");
        };
        assert_eq!(source, SOURCE);
        assert!(
            detail.starts_with("uid 1234: 9015 refused requests were"),
            "{detail}"
        );
    }
}
