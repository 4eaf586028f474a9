//! Unit tests of the rate limits and caps, over a fake clock.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::policy::{LoadOptions, Policy, load_bytes};

fn policy(tool_limits: &str, agent_limits: &str) -> Policy {
    let yaml = format!(
        "version: 1\nname: t\nsandbox:\n  user: 65534\n  group: 65534\n  filesystem:\n    \
         read: [/usr]\n    exec: [/usr/bin]\ntools:\n  echo:\n    command: /usr/bin/echo\n{tool_limits}\
         agents:\n  - name: a\n    uids: [1000]\n    tools: [echo]\n{agent_limits}"
    );
    load_bytes(
        Path::new("t.yaml"),
        yaml.as_bytes(),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn parts(p: &Policy) -> (&Agent, &Tool) {
    (&p.agents[0], p.tool("echo").unwrap())
}

#[test]
fn agent_bucket_refuses_after_burst_and_refills() {
    let p = policy("", "    rate_limit: {count: 2, per: 1s, burst: 2}\n");
    let (a, t) = parts(&p);
    let l = Limiter::new(100);
    let t0 = Instant::now();
    let p1 = l.admit(a, t, t0).unwrap();
    let p2 = l.admit(a, t, t0).unwrap();
    let refused = l.admit(a, t, t0).unwrap_err();
    assert_eq!(refused.object(), "rate_limit:agent:a");
    assert!(refused.to_string().contains("2 per 1s"), "{refused}");
    drop((p1, p2));
    // Half a second later one token (2/s) is back, not two.
    let later = t0 + Duration::from_millis(500);
    let _p3 = l.admit(a, t, later).unwrap();
    assert!(l.admit(a, t, later).is_err());
}

#[test]
fn tool_cap_counts_runs_in_flight_and_permits_release() {
    let p = policy("    max_concurrent: 1\n", "");
    let (a, t) = parts(&p);
    let l = Limiter::new(100);
    let now = Instant::now();
    let first = l.admit(a, t, now).unwrap();
    assert_eq!(
        l.admit(a, t, now).unwrap_err(),
        Limit::ToolConcurrent {
            tool: "echo".into(),
            max: 1
        }
    );
    assert_eq!(l.running(), 1);
    drop(first);
    assert_eq!(l.running(), 0);
    assert!(l.admit(a, t, now).is_ok());
}

#[test]
fn refused_call_takes_no_token_from_the_other_bucket() {
    // The tool has one token, the agent two: the tool refuses the second call,
    // and that refusal must not have spent the agent's second token.
    let p = policy(
        "    rate_limit: {count: 1, per: 1h, burst: 1}\n",
        "    rate_limit: {count: 2, per: 1h, burst: 2}\n",
    );
    let (a, t) = parts(&p);
    let l = Limiter::new(100);
    let now = Instant::now();
    let _ok = l.admit(a, t, now).unwrap();
    assert_eq!(
        l.admit(a, t, now).unwrap_err().object(),
        "rate_limit:tool:echo"
    );
    let s = l.lock();
    let tokens = s.agents["a"].bucket.as_ref().unwrap().tokens;
    assert!((tokens - 1.0).abs() < 1e-6, "agent bucket holds {tokens}");
}

#[test]
fn daemon_cap_and_agent_cap() {
    let p = policy("", "    max_concurrent: 2\n");
    let (a, t) = parts(&p);
    let now = Instant::now();
    let l = Limiter::new(1);
    let _one = l.admit(a, t, now).unwrap();
    assert_eq!(l.admit(a, t, now).unwrap_err().object(), "max_runs:daemon");
    let l = Limiter::new(10);
    let _x = l.admit(a, t, now).unwrap();
    let _y = l.admit(a, t, now).unwrap();
    assert_eq!(
        l.admit(a, t, now).unwrap_err().object(),
        "max_concurrent:agent:a"
    );
}

#[test]
fn unchanged_limit_keeps_its_bucket_across_policies() {
    let p = policy("", "    rate_limit: {count: 1, per: 1h}\n");
    let (a, t) = parts(&p);
    let l = Limiter::new(10);
    let now = Instant::now();
    drop(l.admit(a, t, now).unwrap());
    // The same policy loaded again (a reload) does not refill the bucket...
    let again = policy("", "    rate_limit: {count: 1, per: 1h}\n");
    let (a2, t2) = parts(&again);
    assert!(l.admit(a2, t2, now).is_err());
    // ...a changed limit starts a fresh one.
    let changed = policy("", "    rate_limit: {count: 5, per: 1h}\n");
    let (a3, t3) = parts(&changed);
    assert!(l.admit(a3, t3, now).is_ok());
}
