//! What the denial feed delivered for one run, and what of it is recorded.
//!
//! A tool can be refused as fast as it can make syscalls. This module owns the
//! bound on what one run writes into the trail and keeps in memory: each kind
//! of denial (same layer, object and access) is recorded one by one
//! [`PER_KIND`] times, and at most [`super::DENIALS_PER_RUN`] in all; the rest
//! are counted by layer and summed up in one `denials-lost` record (source
//! `cap`) when the run's denials are all in. A retry loop on one refused call
//! therefore never hides a different refusal that comes after it. It must never
//! drop a denial silently: every one is either recorded or counted.

use std::collections::HashMap;

use super::Observer;
use super::denials::FeedItem;
use crate::report::{Denial, DenialLayer};

/// Denials of one kind (layer, object, access) recorded one by one per run.
pub const PER_KIND: u32 = 16;

/// One kind of denial.
type Kind = (DenialLayer, String, Option<String>);

/// The run's denials so far and what the observer was told.
#[derive(Default)]
pub(super) struct Reported {
    /// Recorded one by one.
    pub denials: Vec<Denial>,
    /// How many of each kind were recorded (at most `DENIALS_PER_RUN` kinds).
    kinds: HashMap<Kind, u32>,
    /// Denials past the bounds, counted by layer.
    beyond: Vec<(DenialLayer, u64)>,
    /// The first error the observer returned.
    pub observer_error: Option<String>,
}

impl Reported {
    /// Whether `d` is recorded one by one (and count it), given `pending`
    /// denials already chosen but not yet recorded.
    fn admit(&mut self, d: &Denial, pending: usize) -> bool {
        if self.denials.len() + pending >= super::DENIALS_PER_RUN {
            return false;
        }
        let n = self
            .kinds
            .entry((d.layer, d.object.clone(), d.access.clone()))
            .or_insert(0);
        if *n >= PER_KIND {
            return false;
        }
        *n += 1;
        true
    }

    fn count_beyond(&mut self, layer: DenialLayer) {
        match self.beyond.iter_mut().find(|(l, _)| *l == layer) {
            Some((_, n)) => *n += 1,
            None => self.beyond.push((layer, 1)),
        }
    }

    /// Denials counted but not recorded one by one.
    pub fn beyond_cap(&self) -> u64 {
        self.beyond.iter().map(|(_, n)| n).sum()
    }

    /// Report a batch: the recorded denials together (one group commit in the
    /// trail), then the losses.
    pub async fn items(&mut self, items: Vec<FeedItem>, observer: &dyn Observer) {
        let mut batch = Vec::new();
        let mut lost = Vec::new();
        for i in items {
            match i {
                FeedItem::Denial(d) if self.admit(&d, batch.len()) => batch.push(d),
                FeedItem::Denial(d) => self.count_beyond(d.layer),
                FeedItem::Lost { source, detail } => lost.push((source, detail)),
            }
        }
        if !batch.is_empty() {
            if let Err(e) = observer.denials(&batch).await {
                self.observer_error
                    .get_or_insert(format!("recording a denial failed: {e}"));
            }
            self.denials.extend(batch);
        }
        for (source, detail) in lost {
            self.lost(&source, &detail, observer).await;
        }
    }

    /// What [`Reported::close`] records, if anything.
    fn cap_detail(&self) -> Option<String> {
        if self.beyond.is_empty() {
            return None;
        }
        let by_layer: Vec<String> = self
            .beyond
            .iter()
            .map(|(l, n)| format!("{} {n}", l.name()))
            .collect();
        Some(format!(
            "{} more denials were counted but not recorded one by one (a run records {PER_KIND} \
             of each kind and {} in all): {}",
            self.beyond_cap(),
            super::DENIALS_PER_RUN,
            by_layer.join(", ")
        ))
    }

    /// Once the run's denials are all in: one record for those past the bounds.
    pub async fn close(&mut self, observer: &dyn Observer) {
        if let Some(detail) = self.cap_detail() {
            self.lost("cap", &detail, observer).await;
        }
    }

    /// Record a loss.
    pub async fn lost(&mut self, source: &str, detail: &str, observer: &dyn Observer) {
        if let Err(e) = observer.lost(source, detail).await {
            self.observer_error
                .get_or_insert(format!("recording lost denials failed: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(layer: DenialLayer, object: &str) -> Denial {
        Denial {
            layer,
            pid: Some(7),
            object: object.into(),
            access: None,
            detail: String::new(),
            hint: String::new(),
        }
    }

    fn feed(r: &mut Reported, d: Denial) {
        if r.admit(&d, 0) {
            r.denials.push(d);
        } else {
            r.count_beyond(d.layer);
        }
    }

    #[test]
    fn a_repeated_denial_is_recorded_per_kind_then_counted() {
        let mut r = Reported::default();
        for _ in 0..100 {
            feed(&mut r, denial(DenialLayer::Seccomp, "bpf"));
        }
        feed(&mut r, denial(DenialLayer::LandlockFs, "/etc/shadow"));
        assert_eq!(r.denials.len(), PER_KIND as usize + 1);
        assert_eq!(r.denials.last().unwrap().object, "/etc/shadow");
        assert_eq!(r.beyond_cap(), 100 - u64::from(PER_KIND));
        let detail = r.cap_detail().unwrap();
        assert!(detail.starts_with("84 more denials"), "{detail}");
        assert!(detail.ends_with(": seccomp 84"), "{detail}");
    }

    #[test]
    fn the_run_total_is_bounded_whatever_the_kinds() {
        let mut r = Reported::default();
        let n = super::super::DENIALS_PER_RUN + 50;
        for i in 0..n {
            feed(&mut r, denial(DenialLayer::LandlockFs, &format!("/x/{i}")));
        }
        feed(&mut r, denial(DenialLayer::Seccomp, "bpf"));
        assert_eq!(r.denials.len(), super::super::DENIALS_PER_RUN);
        assert_eq!(r.beyond_cap(), 51);
        assert!(
            r.cap_detail()
                .unwrap()
                .ends_with(": landlock-fs 50, seccomp 1")
        );
    }

    #[test]
    fn nothing_past_the_bounds_means_no_record() {
        let mut r = Reported::default();
        feed(&mut r, denial(DenialLayer::Seccomp, "bpf"));
        assert_eq!(r.cap_detail(), None);
    }
}
