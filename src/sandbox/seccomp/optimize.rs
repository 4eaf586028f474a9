//! A semantics-preserving shrink of seccompiler's output: jump threading and
//! dead-code removal.
//!
//! seccompiler emits five instructions for every unconditional syscall entry
//! (`jeq nr; ja 1; ja 2; ret match; ret mismatch`). The kernel converts and JITs
//! every instruction when the filter is installed (about 0.8 µs each here, on top
//! of a fixed ~75 µs), and every syscall of the tool walks the chain. Threading
//! each jump through `ja` chains to its final target makes the `ja`s and the
//! never-reached `ret`s dead; removing them leaves two instructions per entry.
//!
//! Only forward jumps exist in classic BPF, so threading terminates, and removing
//! instructions only shortens jump distances, so every offset still fits. The
//! result is checked to be equivalent to the input by the tests (every syscall
//! number, architecture and argument pattern the filters distinguish). Anything
//! unexpected returns the input unchanged. This module never changes a verdict.

const CLASS_MASK: u16 = 0x07;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const OP_MASK: u16 = 0xf0;
const JA: u16 = 0x00;

fn is_ja(i: &libc::sock_filter) -> bool {
    i.code & CLASS_MASK == JMP && i.code & OP_MASK == JA
}

fn is_cond(i: &libc::sock_filter) -> bool {
    i.code & CLASS_MASK == JMP && i.code & OP_MASK != JA
}

/// Absolute successors of instruction `at`: `(true/only, false)`.
fn targets(p: &[libc::sock_filter], at: usize) -> (Option<usize>, Option<usize>) {
    let i = &p[at];
    match i.code & CLASS_MASK {
        RET => (None, None),
        JMP if is_ja(i) => (Some(at + 1 + i.k as usize), None),
        JMP => (
            Some(at + 1 + usize::from(i.jt)),
            Some(at + 1 + usize::from(i.jf)),
        ),
        _ => (Some(at + 1), None),
    }
}

/// Follow `ja` chains from `t` to the first instruction that does work.
fn thread(p: &[libc::sock_filter], mut t: usize) -> Option<usize> {
    // Forward-only jumps: at most p.len() steps.
    for _ in 0..=p.len() {
        let i = p.get(t)?;
        if !is_ja(i) {
            return Some(t);
        }
        t = t + 1 + i.k as usize;
    }
    None
}

/// Shrink `p`; returns `p` unchanged if it is not a well-formed forward-only program.
pub fn optimize(p: &[libc::sock_filter]) -> Vec<libc::sock_filter> {
    shrink(p).unwrap_or_else(|| p.to_vec())
}

fn shrink(p: &[libc::sock_filter]) -> Option<Vec<libc::sock_filter>> {
    let n = p.len();
    // Threaded targets of every instruction.
    let mut tt = vec![None; n];
    let mut tf = vec![None; n];
    for at in 0..n {
        let (a, b) = targets(p, at);
        if is_ja(&p[at]) {
            // A reachable `ja` is only entered by fall-through; keep it pointing
            // at the end of its chain.
            tt[at] = Some(thread(p, a?)?);
            continue;
        }
        if is_cond(&p[at]) {
            tt[at] = Some(thread(p, a?)?);
            tf[at] = Some(thread(p, b?)?);
        } else if let Some(a) = a {
            if a >= n {
                return None;
            }
            tt[at] = Some(a);
        }
    }
    // Reachability from the entry point.
    let mut live = vec![false; n];
    let mut stack = vec![thread(p, 0)?];
    while let Some(at) = stack.pop() {
        if at >= n || live[at] {
            continue;
        }
        live[at] = true;
        for t in [tt[at], tf[at]].into_iter().flatten() {
            if t <= at {
                return None; // not forward-only
            }
            stack.push(t);
        }
    }
    let entry = thread(p, 0)?;
    if entry != 0 {
        return None; // a leading `ja`: leave such programs alone
    }
    // New positions.
    let mut pos = vec![usize::MAX; n];
    let mut next = 0;
    for at in 0..n {
        if live[at] {
            pos[at] = next;
            next += 1;
        }
    }
    let mut out = Vec::with_capacity(next);
    for at in (0..n).filter(|&at| live[at]) {
        let mut i = p[at];
        let rel = |t: usize| pos[t].checked_sub(pos[at] + 1);
        if is_ja(&i) {
            i.k = u32::try_from(rel(tt[at]?)?).ok()?;
        } else if is_cond(&i) {
            i.jt = u8::try_from(rel(tt[at]?)?).ok()?;
            i.jf = u8::try_from(rel(tf[at]?)?).ok()?;
        } else if let Some(t) = tt[at] {
            // Straight-line instructions must still fall through to their successor.
            if pos[t] != pos[at] + 1 {
                return None;
            }
        }
        out.push(i);
    }
    Some(out)
}
