//! One client connection: read its single request (bounded in size and time),
//! decide, run, answer.
//!
//! A call goes through, in order: the peer's identity (`peer`), the tool and
//! argument rules (`supervise::admit`), the rate limits and caps (`limits`);
//! any refusal is answered with exit code 126 and recorded as a `denial`
//! naming what refused it. An admitted call runs through the same pipeline as
//! `enforcecore run` (`supervise::execute`), with the client's own stdin,
//! stdout and stderr (received over `SCM_RIGHTS`) on the supervisor's side of
//! the tool's pipes — the tool never gets the client's descriptors. A client
//! that hangs up or sends anything during its run cancels it (the tree is
//! killed). Nothing a client sends can take the daemon down: every error ends
//! only its own connection.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::config::Config;
use super::limits::Limiter;
use super::peer::{self, Peer};
use super::policies::Policies;
use super::protocol::{self, FrameError, FrameReader, Request, Response, VERSION};
use crate::audit::{RecordBody, Trail};
use crate::exit;
use crate::report::{Caller, Denial, DenialLayer, ExitCause};
use crate::sandbox::cgroup::CgroupPool;
use crate::supervise::{
    self, Cgroups, Filters, Input, Output, RunIdentity, RunRequest, Streams, TrailObserver,
};

/// What every connection shares.
pub struct Shared {
    /// The daemon's configuration.
    pub config: Config,
    /// The policy in effect.
    pub policies: Policies,
    /// The daemon's one audit trail.
    pub trail: Arc<Trail>,
    /// Rate limits and caps.
    pub limiter: Limiter,
    /// How many refusals are recorded one by one.
    pub refusals: super::refusals::RefusalCap,
    /// Pre-created run cgroups (root), or none.
    pub cgroups: Option<Arc<CgroupPool>>,
    /// Becomes `true` when runs must be killed (stop grace over).
    pub kill: watch::Receiver<bool>,
    /// Reload requests for the main loop, with where to send the answer.
    pub reloads: mpsc::Sender<oneshot::Sender<Response>>,
    /// The listening socket's own address (`getsockname`), bound or passed.
    pub address: nix::sys::socket::UnixAddr,
}

/// Serve one connection to its end.
pub async fn serve(mut stream: UnixStream, shared: Arc<Shared>) {
    let peer = match stream.peer_cred() {
        Ok(c) => Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        },
        Err(e) => {
            tracing::warn!("reading a client's credentials failed: {e}");
            return;
        }
    };
    let limit = shared.config.max_request_bytes;
    let read =
        tokio::time::timeout(shared.config.request_timeout, read_request(&stream, limit)).await;
    let (request, fds) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::info!(peer = %peer.describe(), "bad request: {e}");
            reply(
                &mut stream,
                &Response::error(exit::SUPERVISOR_FAILED, e.to_string()),
            )
            .await;
            return;
        }
        Err(_) => {
            let msg = format!(
                "no complete request within {:?} (limits.request_timeout); connection closed",
                shared.config.request_timeout
            );
            tracing::info!(peer = %peer.describe(), "{msg}");
            reply(&mut stream, &Response::error(exit::SUPERVISOR_FAILED, msg)).await;
            return;
        }
    };
    let response = match request {
        Request::Reload { .. } => reload(&shared, &peer).await,
        Request::Call {
            tool, args, env, ..
        } => call(&mut stream, &shared, &peer, &tool, args, env, fds).await,
    };
    reply(&mut stream, &response).await;
}

/// Write one frame; a client that went away is not an error of ours.
async fn reply(stream: &mut UnixStream, r: &Response) {
    let frame = protocol::encode(r);
    let write = tokio::time::timeout(std::time::Duration::from_secs(5), stream.write_all(&frame));
    match write.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("answering a client failed: {e}"),
        Err(_) => tracing::debug!("a client did not read its answer within 5s"),
    }
}

/// Errors while reading a request.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("reading the request failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "more than {} descriptors sent with the request",
        crate::sys::socket::MAX_FDS
    )]
    TooManyFds,
}

/// Read exactly one request frame and the descriptors sent with it.
async fn read_request(
    stream: &UnixStream,
    limit: usize,
) -> Result<(Request, Vec<OwnedFd>), ReadError> {
    let mut reader = FrameReader::new(limit);
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let want = reader.wanted().min(buf.len());
        let (n, got) = stream
            .async_io(Interest::READABLE, || {
                crate::sys::socket::recv_with_fds(stream.as_fd(), &mut buf[..want])
            })
            .await?;
        fds.extend(got);
        if fds.len() > crate::sys::socket::MAX_FDS {
            return Err(ReadError::TooManyFds);
        }
        if n == 0 {
            reader.eof()?;
            return Err(FrameError::Truncated { got: 0, want: 4 }.into());
        }
        if let Some(body) = reader.push(&buf[..n])? {
            return Ok((protocol::parse_request(&body)?, fds));
        }
    }
}

async fn reload(shared: &Shared, peer: &Peer) -> Response {
    if !shared.config.is_admin(peer.uid, peer.gid) {
        let why = "only root and the daemon config's `admins` may reload";
        let hint = "add the uid or gid under admins: in the daemon config";
        record_refusal(shared, peer, "-", policy_denial(peer, "daemon", why, hint)).await;
        return Response::error(
            exit::REFUSED,
            format!("{} may not reload the daemon: {why}", peer.describe()),
        );
    }
    let (tx, rx) = oneshot::channel();
    if shared.reloads.send(tx).await.is_err() {
        return Response::error(exit::SUPERVISOR_FAILED, "the daemon is stopping");
    }
    rx.await
        .unwrap_or_else(|_| Response::error(exit::SUPERVISOR_FAILED, "the daemon is stopping"))
}

fn policy_denial(peer: &Peer, object: &str, detail: &str, hint: &str) -> Denial {
    Denial {
        layer: DenialLayer::Policy,
        pid: peer.pid,
        object: object.into(),
        access: Some(if object == "daemon" { "reload" } else { "call" }.into()),
        detail: format!("{}: {detail}", peer.describe()),
        hint: hint.into(),
    }
}

/// Record a refused request as a `denial` under a fresh run id — or only
/// count it, past the caller's bound ([`super::refusals`]).
async fn record_refusal(shared: &Shared, peer: &Peer, tool: &str, denial: Denial) {
    use super::refusals::{self, Verdict};
    let counted = match shared.refusals.check(peer.uid, Instant::now()) {
        Verdict::Count => return,
        Verdict::Record { counted_before } => counted_before,
    };
    let run = supervise::new_run_id().unwrap_or_else(|_| "refused".into());
    let body = RecordBody::Denial {
        run,
        tool: tool.into(),
        denial,
    };
    let count = (counted > 0).then(|| refusals::counted_record(peer.uid, counted));
    for t in shared.trail.submit_all(count.into_iter().chain([body])) {
        if let Err(e) = t.await {
            tracing::error!("recording a refusal in the audit trail failed: {e}");
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn call(
    stream: &mut UnixStream,
    shared: &Shared,
    peer: &Peer,
    tool: &str,
    args: Vec<String>,
    env: std::collections::BTreeMap<String, String>,
    fds: Vec<OwnedFd>,
) -> Response {
    let Ok::<[OwnedFd; 3], _>([stdin, stdout, stderr]) = fds.try_into() else {
        return Response::error(
            exit::SUPERVISOR_FAILED,
            "a call must send exactly three descriptors (stdin, stdout, stderr) with the request; \
             see docs/protocol.md",
        );
    };
    // A connection to this daemon as a tool's stdio would keep the client's
    // hang-up from ever being seen (its run could not be cancelled).
    if [&stdin, &stdout, &stderr]
        .into_iter()
        .any(|fd| peer::is_connection_to(fd.as_fd(), &shared.address))
    {
        tracing::warn!(peer = %peer.describe(), "refused a call passing a connection to the daemon as stdio");
        return Response::error(
            exit::SUPERVISOR_FAILED,
            "a stdio descriptor may not be a connection to the daemon; \
             pass the caller's own stdin, stdout and stderr (see docs/protocol.md)",
        );
    }
    let active = shared.policies.current();
    let policy = &active.policy;
    let refused = |object: &str, detail: String, hint: &str| {
        (policy_denial(peer, object, &detail, hint), detail)
    };
    let agent = match peer::authorize(policy, peer, tool) {
        Ok(a) => a,
        Err(e) => {
            let (d, msg) = refused(
                &format!("tool:{tool}"),
                e.to_string(),
                "list the caller's uid or gid, and the tool, under the policy's agents:",
            );
            record_refusal(shared, peer, tool, d).await;
            return Response::error(exit::REFUSED, format!("refused by policy: {msg}"));
        }
    };
    let Some(t) = policy.tool(tool) else {
        let (d, msg) = refused(
            &format!("tool:{tool}"),
            format!("policy `{}` has no tool `{tool}`", policy.name),
            "define the tool under tools:",
        );
        record_refusal(shared, peer, tool, d).await;
        return Response::error(exit::REFUSED, format!("refused by policy: {msg}"));
    };
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(t.command.value.clone().into_os_string());
    argv.extend(args.into_iter().map(Into::into));
    let sandbox = match supervise::admit(policy, Some(tool), &argv) {
        Ok(s) => s,
        Err(refusal) => {
            let mut d = *refusal.denial;
            d.pid = peer.pid;
            d.detail = format!("{}: {}", peer.describe(), d.detail);
            record_refusal(shared, peer, tool, d).await;
            return Response::error(exit::REFUSED, refusal.message);
        }
    };
    let _permit = match shared.limiter.admit(agent, t, Instant::now()) {
        Ok(p) => p,
        Err(limit) => {
            let (d, msg) = refused(&limit.object(), limit.to_string(), &limit.hint());
            record_refusal(shared, peer, tool, d).await;
            return Response::error(exit::REFUSED, format!("refused by a limit: {msg}"));
        }
    };
    let run_id = match supervise::new_run_id() {
        Ok(r) => r,
        Err(e) => {
            return Response::error(exit::SUPERVISOR_FAILED, format!("generating a run id: {e}"));
        }
    };
    reply(
        stream,
        &Response::Started {
            v: VERSION,
            run: run_id.clone(),
        },
    )
    .await;
    let caller = Caller {
        via: "socket".into(),
        uid: peer.uid,
        gid: peer.gid,
        pid: peer.pid,
        agent: Some(agent.name.clone()),
    };
    let mut kill = shared.kill.clone();
    // The process that connected: its exit cancels the run even when a copy
    // of its end of the connection lives on (passed on in a message nobody
    // received, say), which would keep the hang-up from being seen.
    let connector = crate::sys::socket::peer_pidfd(stream.as_fd())
        .and_then(|fd| crate::sys::reactor::register(fd, tokio::io::Interest::READABLE))
        .map_err(|e| tracing::debug!("no pidfd of the connecting process: {e}"))
        .ok();
    let (rd, _wr) = stream.split();
    let shutdown = async move {
        let connector_exited = async {
            match &connector {
                Some(p) => drop(p.readable().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // The daemon is stopping and the grace period is over.
            _ = kill.wait_for(|k| *k) => {}
            // The client hung up or sent something: the run is cancelled.
            _ = client_gone(&rd) => {}
            // The process that connected exited.
            _ = connector_exited => {}
        }
    };
    let observer = TrailObserver::new(
        shared.trail.clone(),
        &active.engine,
        RunIdentity {
            run: &run_id,
            tool,
            policy: Some(&policy.name),
            argv: &argv,
            caller: caller.clone(),
        },
    );
    let req = RunRequest {
        run_id: run_id.clone(),
        tool: Some(tool.into()),
        argv,
        sandbox,
        caller,
        caller_env: env.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        stdio: Streams {
            stdin: Input::Fd(stdin),
            stdout: Output::Fd(stdout),
            stderr: Output::Fd(stderr),
        },
        filters: Filters::redacting(&active.engine, policy.redaction.streams.value),
        runs_root: shared.config.runs_dir.clone(),
        cgroups: shared
            .cgroups
            .clone()
            .map_or(Cgroups::Create, Cgroups::Pool),
        shutdown: Some(Box::pin(shutdown)),
        kernel_audit: policy.denials.kernel_audit.value.into(),
    };
    let outcome = match supervise::execute(req, &observer).await {
        Ok(o) => o,
        Err(e) => return Response::error(e.exit_code(), e.to_string()),
    };
    if let Some(e) = &outcome.observer_error {
        return Response::error(exit::SUPERVISOR_FAILED, format!("run {run_id}: {e}"));
    }
    let x = &outcome.exit;
    let code = match x.cause {
        ExitCause::Timeout => exit::TIMEOUT,
        _ => exit::from_wait(x.code, x.signal),
    };
    let cause = serde_json::to_value(x.cause)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let message = match x.cause {
        ExitCause::Exited | ExitCause::Signaled => None,
        _ => Some(format!(
            "run {run_id} ended by {cause} after {} ms (see the audit trail)",
            x.duration_ms
        )),
    };
    Response::Exited {
        v: VERSION,
        run: run_id,
        code,
        cause,
        message,
    }
}

/// Completes when the client closes its end or sends anything after its request.
async fn client_gone(rd: &tokio::net::unix::ReadHalf<'_>) {
    let mut b = [0u8; 1];
    loop {
        if rd.readable().await.is_err() {
            return;
        }
        match rd.try_read(&mut b) {
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
    }
}
