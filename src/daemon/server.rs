//! The daemon's main loop: one task, one `select!`, owning the listener, the
//! set of connection tasks, reloads, the watchdog and the stop signals.
//!
//! Connections run on their own tasks (many runs at once on the runtime's
//! workers); everything that changes daemon-wide state — the policy in effect,
//! stopping — happens here, one event at a time. Then the stop sequence: stop
//! accepting, let runs finish for `limits.stop_grace`, kill the rest, and hand
//! back so the caller can seal the trail. This loop must never await a client.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::conn::{self, Shared};
use super::notify::Notifier;
use super::protocol::{self, Response, VERSION};
use crate::exit;

/// How long killed runs may take to end and report after the grace period.
const KILL_WAIT: Duration = Duration::from_secs(15);

/// What the main loop needs besides the shared state.
pub struct Loop {
    /// The bound (or inherited) control socket.
    pub listener: UnixListener,
    /// The service manager.
    pub notifier: Notifier,
    /// WATCHDOG=1 interval, when the watchdog is on.
    pub watchdog: Option<Duration>,
    /// Reload requests from connections.
    pub reloads: mpsc::Receiver<oneshot::Sender<Response>>,
    /// Set to `true` to kill every run in flight.
    pub kill: watch::Sender<bool>,
}

/// Serve until SIGTERM or SIGINT; returns the stop reason for the trail.
pub async fn run(mut l: Loop, shared: Arc<Shared>) -> std::io::Result<String> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut conns: JoinSet<()> = JoinSet::new();
    let mut watchdog = tokio::time::interval(l.watchdog.unwrap_or(Duration::from_secs(3600)));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let max = shared.config.max_connections;
    let reason = loop {
        tokio::select! {
            // A client. Over the connection cap it is told so and closed at
            // once (one non-blocking write: the loop never waits for it).
            r = l.listener.accept() => match r {
                Ok((stream, _)) if conns.len() >= max => {
                    let msg = format!("the daemon is serving {max} connections (limits.max_connections); retry later");
                    let _ = stream.try_write(&protocol::encode(&Response::error(exit::SUPERVISOR_FAILED, msg)));
                }
                Ok((stream, _)) => {
                    conns.spawn(conn::serve(stream, shared.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // A connection ended; a panic in one is logged, never fatal.
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    tracing::error!("a connection task failed: {e}");
                }
            }
            // SIGHUP: reload (answered in the journal and the trail).
            _ = hup.recv() => {
                let r = reload(&shared, &l.notifier).await;
                tracing::info!("SIGHUP reload: {r:?}");
            }
            // `enforcecore reload` from an admin.
            Some(answer) = l.reloads.recv() => {
                let r = reload(&shared, &l.notifier).await;
                let _ = answer.send(r);
            }
            // The watchdog: proof that this loop is alive.
            _ = watchdog.tick(), if l.watchdog.is_some() => l.notifier.notify("WATCHDOG=1"),
            _ = term.recv() => break "sigterm",
            _ = int.recv() => break "sigint",
        }
    };
    l.notifier
        .notify("STOPPING=1\nSTATUS=stopping: waiting for runs to finish");
    drop(l.listener);
    l.reloads.close();
    let grace = shared.config.stop_grace;
    let finished = tokio::time::timeout(grace, drain(&mut conns)).await.is_ok();
    if !finished {
        tracing::warn!(
            "{} connections still running after the {grace:?} stop grace; killing their runs",
            conns.len()
        );
        let _ = l.kill.send(true);
        if tokio::time::timeout(KILL_WAIT, drain(&mut conns))
            .await
            .is_err()
        {
            conns.shutdown().await;
        }
    }
    Ok(reason.to_string())
}

async fn drain(conns: &mut JoinSet<()>) {
    while let Some(done) = conns.join_next().await {
        if let Err(e) = done {
            tracing::error!("a connection task failed: {e}");
        }
    }
}

async fn reload(shared: &Shared, notifier: &Notifier) -> Response {
    notifier.notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    let r = shared.policies.reload(&shared.trail).await;
    let response = match r {
        Ok(ok) => {
            let p = &ok.active.policy;
            tracing::info!(policy = %p.name, sha256 = %p.hash, changed = ok.changed, "policy reloaded");
            Response::Reloaded {
                v: VERSION,
                policy: p.name.clone(),
                sha256: p.hash.clone(),
                changed: ok.changed,
            }
        }
        Err(e) => {
            tracing::error!("reload refused, old policy kept: {e}");
            Response::error(
                1,
                format!("reload refused, the old policy stays in effect: {e}"),
            )
        }
    };
    let p = shared.policies.current();
    notifier.notify(&format!(
        "READY=1\nSTATUS=serving policy {} sha256:{}",
        p.policy.name,
        &p.policy.hash[..12.min(p.policy.hash.len())]
    ));
    response
}

fn monotonic_usec() -> u128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Duration::from(t).as_micros())
        .unwrap_or(0)
}
