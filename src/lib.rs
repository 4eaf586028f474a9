//! EnforceCore: a Linux supervisor that runs AI-agent tools as sandboxed processes.
//!
//! An agent never executes a tool itself. It asks the supervisor, which checks the
//! request against a YAML [`policy`], starts the tool under kernel-enforced limits
//! ([`sandbox`]: Landlock, seccomp, cgroups, rlimits, identity), pumps the tool's
//! stdio through the streaming [`redact`]or, and writes every decision, denial and
//! exit into the tamper-evident [`audit`] trail. [`supervise`] owns one run from
//! spawn to exit report; `enforcecore run` and the [`daemon`] share that path.
//!
//! Module map (what each owns):
//! - [`policy`]: YAML → raw structs → `extends` → merge → validation → [`policy::Policy`].
//! - [`sandbox`]: the per-run plan built in the parent and the layers it applies.
//! - [`sys`]: the only thin `unsafe` syscall wrappers.
//! - [`supervise`]: spawn, stdio pumps, denial feed, wait, exit report.
//! - [`redact`]: detectors, validators, the streaming engine.
//! - [`audit`]: records, hash chain, writer, verifier, reader.
//! - [`daemon`]: control socket, peer identity, rate limits, systemd, reload.
//! - [`regular_file`]: opening keys and trails that must be regular files, without blocking.
//! - [`report`]: plain data shared by the run pipeline and the audit trail.
//! - [`exit`]: the exit-code contract of `run` and `call`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod cli;
pub mod daemon;
pub mod exit;
pub mod policy;
pub mod redact;
pub mod regular_file;
pub mod report;
pub mod sandbox;
pub mod supervise;
pub mod sys;
