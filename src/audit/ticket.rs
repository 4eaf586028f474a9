//! Tickets: how a caller waits for its record to become durable.
//!
//! The writer thread completes a ticket once the batch holding the record has
//! been synced (or has failed). A ticket can be waited on from a plain thread
//! ([`Ticket::wait`] blocks) or awaited from an async task (it is a `Future`
//! and never blocks the runtime). This module owns only that hand-off; it
//! must never decide whether a record is durable.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use super::AuditError;
use super::record::RecordHash;

/// A record that is in the trail and synced to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: RecordHash,
}

type Outcome = Result<Appended, AuditError>;

#[derive(Default)]
struct Slot {
    outcome: Option<Outcome>,
    waker: Option<Waker>,
    /// The completer was dropped without completing (writer gone).
    abandoned: bool,
    /// A thread is blocked in [`Ticket::wait`]: only then is the condvar
    /// notified (a notify is a syscall, and most tickets are awaited or
    /// already resolved when first looked at).
    waiting: bool,
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    ready: Condvar,
}

/// The waiting side: resolves to the appended record or the error that kept
/// it from becoming durable.
#[must_use = "a record is only known to be durable once its ticket resolves"]
pub struct Ticket {
    shared: Arc<Shared>,
    /// Trail path, for the error when the writer disappears.
    path: Arc<std::path::Path>,
}

/// The writer's side of a ticket.
pub(crate) struct Completer {
    shared: Arc<Shared>,
    done: bool,
}

/// A connected ticket/completer pair.
pub(crate) fn pair(path: Arc<std::path::Path>) -> (Ticket, Completer) {
    let shared = Arc::new(Shared::default());
    (
        Ticket {
            shared: shared.clone(),
            path,
        },
        Completer {
            shared,
            done: false,
        },
    )
}

impl Ticket {
    /// A ticket that is already resolved (errors found before queueing).
    pub(crate) fn ready(path: Arc<std::path::Path>, outcome: Outcome) -> Ticket {
        let (t, c) = pair(path);
        c.complete(outcome);
        t
    }

    /// Block the calling thread until the record is durable. Do not call from
    /// async code; `.await` the ticket there.
    pub fn wait(self) -> Outcome {
        let mut slot = self
            .shared
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(o) = slot.outcome.take() {
                return o;
            }
            if slot.abandoned {
                return Err(self.gone());
            }
            // Set under the lock the completer takes, so it cannot miss it.
            slot.waiting = true;
            slot = self
                .shared
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn gone(&self) -> AuditError {
        AuditError::Closed {
            path: self.path.to_path_buf(),
        }
    }
}

impl Future for Ticket {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut slot = self
            .shared
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(o) = slot.outcome.take() {
            return Poll::Ready(o);
        }
        if slot.abandoned {
            return Poll::Ready(Err(self.gone()));
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Completer {
    /// Resolve the ticket.
    pub(crate) fn complete(self, outcome: Outcome) {
        self.settle(outcome).wake();
    }

    /// Store the outcome without waking anyone yet: the writer stores every
    /// outcome of a batch first and wakes the waiters after, so a waiter that
    /// runs at once (and may take the writer's CPU) never delays the others'
    /// outcomes.
    pub(crate) fn settle(mut self, outcome: Outcome) -> Wake {
        self.done = true;
        let mut slot = self
            .shared
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.outcome = Some(outcome);
        Wake {
            shared: slot.waiting.then(|| self.shared.clone()),
            waker: slot.waker.take(),
        }
    }
}

/// Who to wake for a settled ticket.
pub(crate) struct Wake {
    /// The ticket's state, when a thread is blocked on its condvar.
    shared: Option<Arc<Shared>>,
    waker: Option<Waker>,
}

impl Wake {
    /// Wake the thread or task waiting for the ticket, if any.
    pub(crate) fn wake(self) {
        if let Some(s) = self.shared {
            s.ready.notify_one();
        }
        if let Some(w) = self.waker {
            w.wake();
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (waiting, waker) = {
            let mut slot = self
                .shared
                .slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            slot.abandoned = true;
            (slot.waiting, slot.waker.take())
        };
        if waiting {
            self.shared.ready.notify_one();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> Arc<std::path::Path> {
        Arc::from(std::path::Path::new("/t"))
    }

    #[test]
    fn wait_across_threads() {
        let (t, c) = pair(path());
        let h = std::thread::spawn(move || {
            c.complete(Ok(Appended {
                seq: 3,
                hash: RecordHash::GENESIS,
            }))
        });
        assert_eq!(t.wait().unwrap().seq, 3);
        h.join().unwrap();
    }

    #[test]
    fn await_in_tokio_and_abandon() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (t, c) = pair(path());
            std::thread::spawn(move || {
                c.complete(Ok(Appended {
                    seq: 9,
                    hash: RecordHash::GENESIS,
                }))
            });
            assert_eq!(t.await.unwrap().seq, 9);
            let (t, c) = pair(path());
            drop(c);
            assert!(matches!(t.await, Err(AuditError::Closed { .. })));
        });
    }
}
