//! Rate limits and concurrency caps: per agent, per tool, and for the daemon
//! as a whole.
//!
//! Rates are token buckets (`count` tokens per `per`, holding at most `burst`;
//! a call takes one token). Caps count runs in flight; a [`Permit`] holds a run's
//! place and gives it back when dropped, however the run ends. A refused call
//! takes nothing: caps are checked before any bucket, and both buckets must have
//! a token before either is taken.
//!
//! Pure logic over an injected clock (`now`), unit-tested here. It never
//! decides *who* the caller is (that is `peer`) and never sleeps: a limited
//! call is refused, not queued.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::policy::{Agent, RateLimit, Tool};

/// A token bucket.
#[derive(Clone, Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(limit: &RateLimit, now: Instant) -> Bucket {
        Bucket {
            limit: limit.clone(),
            tokens: f64::from(limit.burst.max(1)),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let per = self.limit.per.as_secs_f64().max(1e-9);
        let rate = f64::from(self.limit.count) / per;
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(f64::from(self.limit.burst.max(1)));
        self.last = now;
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// When the next token will be there.
    fn retry_after(&self) -> Duration {
        let per = self.limit.per.as_secs_f64();
        let rate = f64::from(self.limit.count.max(1)) / per.max(1e-9);
        Duration::from_secs_f64(((1.0 - self.tokens) / rate).max(0.0))
    }
}

#[derive(Debug, Default)]
struct Counter {
    bucket: Option<Bucket>,
    running: u32,
}

impl Counter {
    /// Keep the bucket when its limit is unchanged (a reload must not refill
    /// it), replace it otherwise.
    fn sync(&mut self, limit: Option<&RateLimit>, now: Instant) {
        match (limit, &self.bucket) {
            (Some(l), Some(b)) if b.limit == *l => {}
            (Some(l), _) => self.bucket = Some(Bucket::new(l, now)),
            (None, _) => self.bucket = None,
        }
        if let Some(b) = self.bucket.as_mut() {
            b.refill(now);
        }
    }
}

/// The limit that refused a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The agent's `rate_limit`.
    AgentRate {
        /// Agent name.
        agent: String,
        /// The limit.
        limit: RateLimit,
        /// When a token will be available.
        retry_after: Duration,
    },
    /// The tool's `rate_limit`.
    ToolRate {
        /// Tool name.
        tool: String,
        /// The limit.
        limit: RateLimit,
        /// When a token will be available.
        retry_after: Duration,
    },
    /// The agent's `max_concurrent`.
    AgentConcurrent {
        /// Agent name.
        agent: String,
        /// The cap.
        max: u32,
    },
    /// The tool's `max_concurrent`.
    ToolConcurrent {
        /// Tool name.
        tool: String,
        /// The cap.
        max: u32,
    },
    /// The daemon's `limits.max_runs`.
    DaemonConcurrent {
        /// The cap.
        max: u32,
    },
}

impl Limit {
    /// The audit denial's `object`: which limit fired (`rate_limit:agent:NAME`,
    /// `max_concurrent:tool:NAME`, `max_runs:daemon`).
    pub fn object(&self) -> String {
        match self {
            Limit::AgentRate { agent, .. } => format!("rate_limit:agent:{agent}"),
            Limit::ToolRate { tool, .. } => format!("rate_limit:tool:{tool}"),
            Limit::AgentConcurrent { agent, .. } => format!("max_concurrent:agent:{agent}"),
            Limit::ToolConcurrent { tool, .. } => format!("max_concurrent:tool:{tool}"),
            Limit::DaemonConcurrent { .. } => "max_runs:daemon".into(),
        }
    }

    /// Where the limit is set, for the hint.
    pub fn hint(&self) -> String {
        match self {
            Limit::AgentRate { limit, .. } | Limit::ToolRate { limit, .. } => {
                format!("retry later, or raise the rate_limit at {}", limit.origin)
            }
            Limit::AgentConcurrent { .. } => {
                "wait for the agent's other runs, or raise the agent's max_concurrent".into()
            }
            Limit::ToolConcurrent { .. } => {
                "wait for the tool's other runs, or raise the tool's max_concurrent".into()
            }
            Limit::DaemonConcurrent { .. } => {
                "wait for other runs, or raise limits.max_runs in the daemon config".into()
            }
        }
    }
}

fn rate(l: &RateLimit) -> String {
    format!(
        "{} per {} (burst {})",
        l.count,
        crate::policy::fmt_duration(l.per),
        l.burst
    )
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::AgentRate {
                agent,
                limit,
                retry_after,
            } => write!(
                f,
                "agent `{agent}` is over its rate limit of {}; next call allowed in {} ms",
                rate(limit),
                retry_after.as_millis()
            ),
            Limit::ToolRate {
                tool,
                limit,
                retry_after,
            } => write!(
                f,
                "tool `{tool}` is over its rate limit of {}; next call allowed in {} ms",
                rate(limit),
                retry_after.as_millis()
            ),
            Limit::AgentConcurrent { agent, max } => {
                write!(
                    f,
                    "agent `{agent}` already has {max} runs in flight (max_concurrent)"
                )
            }
            Limit::ToolConcurrent { tool, max } => {
                write!(
                    f,
                    "tool `{tool}` already has {max} runs in flight (max_concurrent)"
                )
            }
            Limit::DaemonConcurrent { max } => {
                write!(
                    f,
                    "the daemon already has {max} runs in flight (limits.max_runs)"
                )
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    agents: HashMap<String, Counter>,
    tools: HashMap<String, Counter>,
    running: u32,
}

/// Every agent's and tool's counters. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Limiter {
    state: Arc<Mutex<State>>,
    max_runs: u32,
}

/// A run's place under every cap; released on drop.
#[derive(Debug)]
pub struct Permit {
    state: Arc<Mutex<State>>,
    agent: String,
    tool: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.running = s.running.saturating_sub(1);
        if let Some(c) = s.agents.get_mut(&self.agent) {
            c.running = c.running.saturating_sub(1);
        }
        if let Some(c) = s.tools.get_mut(&self.tool) {
            c.running = c.running.saturating_sub(1);
        }
    }
}

impl Limiter {
    /// A limiter allowing at most `max_runs` runs at once in the daemon.
    pub fn new(max_runs: u32) -> Limiter {
        Limiter {
            state: Arc::default(),
            max_runs,
        }
    }

    /// Runs in flight.
    pub fn running(&self) -> u32 {
        self.lock().running
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admit one call of `tool` by `agent` at `now`, or name the limit that
    /// refuses it. Nothing is taken from any bucket when the call is refused.
    pub fn admit(&self, agent: &Agent, tool: &Tool, now: Instant) -> Result<Permit, Limit> {
        let mut guard = self.lock();
        let s = &mut *guard;
        if s.running >= self.max_runs {
            return Err(Limit::DaemonConcurrent { max: self.max_runs });
        }
        let a = s.agents.entry(agent.name.clone()).or_default();
        a.sync(agent.rate_limit.as_ref(), now);
        if let Some(max) = agent.max_concurrent.filter(|m| a.running >= *m) {
            return Err(Limit::AgentConcurrent {
                agent: agent.name.clone(),
                max,
            });
        }
        let t = s.tools.entry(tool.name.clone()).or_default();
        t.sync(tool.rate_limit.as_ref(), now);
        if let Some(max) = tool
            .max_concurrent
            .as_ref()
            .map(|m| m.value)
            .filter(|m| t.running >= *m)
        {
            return Err(Limit::ToolConcurrent {
                tool: tool.name.clone(),
                max,
            });
        }
        if let Some(b) = t.bucket.as_mut().filter(|b| b.tokens < 1.0) {
            return Err(Limit::ToolRate {
                tool: tool.name.clone(),
                limit: b.limit.clone(),
                retry_after: b.retry_after(),
            });
        }
        let a = s.agents.get_mut(&agent.name).expect("inserted above");
        if let Some(b) = a.bucket.as_mut().filter(|b| b.tokens < 1.0) {
            return Err(Limit::AgentRate {
                agent: agent.name.clone(),
                limit: b.limit.clone(),
                retry_after: b.retry_after(),
            });
        }
        if let Some(b) = a.bucket.as_mut() {
            b.take();
        }
        a.running += 1;
        let t = s.tools.get_mut(&tool.name).expect("inserted above");
        if let Some(b) = t.bucket.as_mut() {
            b.take();
        }
        t.running += 1;
        s.running += 1;
        Ok(Permit {
            state: self.state.clone(),
            agent: agent.name.clone(),
            tool: tool.name.clone(),
        })
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
