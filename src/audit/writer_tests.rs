//! Tests of the writer against real files: group commit from threads and
//! tasks, torn-tail recovery, rotation, and what a signing writer refuses.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;

use super::files;
use super::record::{CheckpointReason, RecordBody};
use super::verify::{FaultKind, Report, verify_files};
use super::{AuditError, Trail, TrailOptions};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32])
}

fn note(i: u64) -> RecordBody {
    RecordBody::SupervisorStopped {
        reason: format!("note {i}"),
    }
}

fn opts(path: &Path, signed: bool) -> TrailOptions {
    let mut o = TrailOptions::new(path);
    o.signing_key = signed.then(key);
    o
}

/// Archives then the active file, as `audit verify` takes them.
fn trail_files(path: &Path) -> Vec<PathBuf> {
    let dir = files::parent(path);
    let mut files: Vec<PathBuf> = files::archives(path)
        .unwrap()
        .into_iter()
        .map(|n| dir.join(n))
        .collect();
    files.push(path.to_path_buf());
    files
}

fn verify(path: &Path, signed: bool) -> Report {
    verify_files(&trail_files(path), signed.then(|| key().verifying_key())).unwrap()
}

fn kinds(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| super::line::parse(l.as_bytes()).unwrap().kind.to_string())
        .collect()
}

#[test]
fn threads_share_one_chain_and_seqs_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/audit.jsonl");
    let trail = Arc::new(Trail::open(opts(&path, true)).unwrap());
    let handles: Vec<_> = (0..16)
        .map(|t| {
            let trail = trail.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| trail.append(note(t * 100 + i)).unwrap().seq)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    trail.close().unwrap();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 800);
    let r = verify(&path, true);
    assert!(r.ok, "{:?}", r.fault);
    // open checkpoint + 800 records + periodic checkpoints + close.
    assert!(r.records > 801);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(matches!(
        trail.append(note(0)),
        Err(AuditError::Closed { .. })
    ));
}

#[test]
fn async_appends_do_not_block_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let trail = Arc::new(Trail::open(opts(&path, false)).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = rt.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let t = trail.clone();
                tokio::spawn(async move { t.append_async(note(i)).await.unwrap().seq })
            })
            .collect();
        let mut n = 0;
        for t in tasks {
            t.await.unwrap();
            n += 1;
        }
        trail.close_async().await.unwrap();
        n
    });
    assert_eq!(n, 32);
    assert!(verify(&path, false).ok);
}

#[test]
fn reserved_kinds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trail = Trail::open(opts(&dir.path().join("t"), false)).unwrap();
    let r = trail.append(RecordBody::Rotated {
        archive: "x".into(),
    });
    assert!(matches!(
        r,
        Err(AuditError::ReservedKind { kind: "rotated" })
    ));
}

#[test]
fn torn_tail_is_kept_aside_recorded_and_the_chain_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let t = Trail::open(opts(&path, true)).unwrap();
    t.append(note(1)).unwrap();
    drop(t); // sealed by close
    let torn = b"{\"seq\":4,\"ts\":\"2026-";
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();
    assert_eq!(
        verify(&path, false).fault.unwrap().kind,
        FaultKind::TornLine
    );
    let t = Trail::open(opts(&path, true)).unwrap();
    t.append(note(2)).unwrap();
    t.close().unwrap();
    let r = verify(&path, true);
    assert!(r.ok, "{:?}", r.fault);
    assert_eq!(r.recovered.len(), 1);
    let aside: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("audit.jsonl.torn-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(fs::read(dir.path().join(&aside[0])).unwrap(), torn);
    assert_eq!(
        kinds(&path),
        [
            "checkpoint",
            "supervisor-stopped",
            "checkpoint",
            "recovered",
            "supervisor-stopped",
            "checkpoint"
        ]
    );
}

#[test]
fn rotation_keeps_one_chain_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut o = opts(&path, true);
    o.rotate_bytes = Some(2000);
    let t = Trail::open(o).unwrap();
    for i in 0..40 {
        t.append(note(i)).unwrap();
    }
    t.rotate().unwrap();
    t.close().unwrap();
    let files = trail_files(&path);
    assert!(files.len() >= 4, "{files:?}");
    let r = verify(&path, true);
    assert!(r.ok, "{:?}", r.fault);
    assert_eq!(r.first_seq, Some(1));
    // Each archive verifies on its own too (sealed by its rotation checkpoint)…
    let alone = verify_files(&files[1..2], Some(key().verifying_key())).unwrap();
    assert!(alone.ok && alone.continues.is_some(), "{:?}", alone.fault);
    // …but a missing middle file leaves a gap at the start of the next one.
    let mut gap = files.clone();
    gap.remove(1);
    let fault = verify_files(&gap, None).unwrap().fault.unwrap();
    assert_eq!((fault.kind, fault.line), (FaultKind::SeqGap, 1));
    assert_eq!(fault.file, gap[1]);
    // Out of order, too.
    let mut swapped = files.clone();
    swapped.swap(0, 1);
    assert!(!verify_files(&swapped, None).unwrap().ok);
}

#[test]
fn an_interrupted_rotation_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let t = Trail::open(opts(&path, true)).unwrap();
    t.append(note(1)).unwrap();
    t.rotate().unwrap();
    t.close().unwrap();
    // Undo the second half: the archive name goes, the old file comes back.
    let files = trail_files(&path);
    fs::rename(&files[0], &path).unwrap();
    assert_eq!(kinds(&path).last().unwrap(), "checkpoint");
    let t = Trail::open(opts(&path, true)).unwrap();
    t.append(note(2)).unwrap();
    t.close().unwrap();
    assert_eq!(trail_files(&path).len(), 2);
    assert!(verify(&path, true).ok);
}

#[test]
fn a_signing_writer_refuses_what_it_cannot_vouch_for() {
    let dir = tempfile::tempdir().unwrap();
    // A trail written without a key.
    let plain = dir.path().join("plain.jsonl");
    Trail::open(opts(&plain, false))
        .unwrap()
        .append(note(1))
        .unwrap();
    assert!(matches!(
        Trail::open(opts(&plain, true)),
        Err(AuditError::Unvouched { .. })
    ));
    // A signed trail whose unsealed records were edited (hash recomputed).
    let signed = dir.path().join("signed.jsonl");
    let t = Trail::open(opts(&signed, true)).unwrap();
    t.append(note(1)).unwrap();
    t.checkpoint(CheckpointReason::Explicit).unwrap();
    // Simulate a crash: records after the checkpoint, no close.
    let mut lines: Vec<String> = fs::read_to_string(&signed)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    drop(t);
    lines.truncate(3);
    let p = super::line::parse(lines[2].as_bytes()).unwrap();
    let mut forged = Vec::new();
    super::line::encode(
        &mut forged,
        p.seq + 1,
        p.ts,
        &p.hash(),
        b"\"kind\":\"supervisor-stopped\",\"reason\":\"fine\"",
    );
    let crashed = format!(
        "{}\n{}",
        lines.join("\n"),
        String::from_utf8(forged).unwrap()
    );
    fs::write(&signed, &crashed).unwrap();
    // Chained correctly onto the checkpoint: accepted (it is what a crash leaves).
    Trail::open(opts(&signed, true)).unwrap().close().unwrap();
    assert!(verify(&signed, true).ok);
    // Now rewrite a record *before* that last checkpoint, rechaining the rest.
    let text = fs::read_to_string(&signed).unwrap();
    let mut out = Vec::new();
    let mut prev = super::RecordHash::GENESIS;
    for (i, l) in text.lines().enumerate() {
        let p = super::line::parse(l.as_bytes()).unwrap();
        let members = if i == 1 {
            b"\"kind\":\"supervisor-stopped\",\"reason\":\"edited\"".to_vec()
        } else {
            p.members.to_vec()
        };
        prev = super::line::encode(&mut out, p.seq, p.ts, &prev, &members);
    }
    fs::write(&signed, &out).unwrap();
    assert!(matches!(
        Trail::open(opts(&signed, true)),
        Err(AuditError::Damaged { .. })
    ));
}

#[test]
fn records_removed_behind_a_writer_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let t = Trail::open(opts(&path, false)).unwrap();
    t.append(note(1)).unwrap();
    t.append(note(2)).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap();
    fs::write(&path, format!("{first}\n")).unwrap();
    t.append(note(3)).unwrap();
    t.close().unwrap();
    assert_eq!(
        kinds(&path),
        ["supervisor-stopped", "recovered", "supervisor-stopped"]
    );
    assert!(verify(&path, false).ok);
}

#[test]
fn a_damaged_last_record_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    Trail::open(opts(&path, false))
        .unwrap()
        .append(note(1))
        .unwrap();
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("note 1", "note 2");
    fs::write(&path, text).unwrap();
    let err = Trail::open(opts(&path, false)).err().unwrap().to_string();
    assert!(
        err.contains("does not match its hash") && err.contains("audit verify"),
        "{err}"
    );
}

#[test]
fn a_last_record_that_does_not_continue_the_chain_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    for (path, n) in [(&a, 3), (&b, 4)] {
        let t = Trail::open(opts(path, false)).unwrap();
        for i in 0..n {
            t.append(note(i)).unwrap();
        }
    }
    // B's seq 4 is intact on its own, but its `prev` is B's seq 3, not A's.
    let last = fs::read_to_string(&b)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let mut spliced = fs::read_to_string(&a).unwrap();
    spliced.push_str(&last);
    spliced.push('\n');
    fs::write(&a, &spliced).unwrap();
    let err = Trail::open(opts(&a, false)).err().unwrap().to_string();
    assert!(err.contains("does not continue the one before it"), "{err}");
    assert_eq!(fs::read_to_string(&a).unwrap(), spliced);
}

#[test]
fn a_file_that_is_not_a_trail_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // A key or token (no newline at all), a config without a final newline,
    // and a trail followed by something that is not the start of a record.
    let trail = dir.path().join("audit.jsonl");
    Trail::open(opts(&trail, false))
        .unwrap()
        .append(note(1))
        .unwrap();
    let mut appended = fs::read(&trail).unwrap();
    appended.extend_from_slice(b"not a record");
    for (name, content) in [
        ("token", b"ghp_0123456789abcdef".to_vec()),
        ("config.yaml", b"a: 1\nb: 2".to_vec()),
        ("appended.jsonl", appended),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, &content).unwrap();
        let err = Trail::open(opts(&path, false)).err().unwrap();
        assert!(matches!(err, AuditError::NotATrail { .. }), "{name}: {err}");
        assert_eq!(fs::read(&path).unwrap(), content, "{name} was changed");
    }
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".torn-")), "{names:?}");
}

#[test]
fn periodic_checkpoints_come_by_time_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut o = opts(&path, true);
    o.checkpoint_every = 0;
    o.checkpoint_interval = Some(std::time::Duration::from_millis(20));
    let t = Trail::open(o).unwrap();
    t.append(note(1)).unwrap();
    // The writer thread wakes up by itself once the interval has passed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while kinds(&path).len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        kinds(&path),
        ["checkpoint", "supervisor-stopped", "checkpoint"]
    );
    let last = fs::read_to_string(&path).unwrap();
    assert!(
        last.lines()
            .last()
            .unwrap()
            .contains("\"reason\":\"periodic\"")
    );
    t.close().unwrap();
    assert!(verify(&path, true).ok);
}

#[test]
fn rotation_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut o = opts(&path, false);
    o.rotate_age = Some(std::time::Duration::ZERO);
    let t = Trail::open(o).unwrap();
    for i in 0..3 {
        t.append(note(i)).unwrap();
    }
    t.close().unwrap();
    // Every batch found a file old enough to rotate.
    assert_eq!(trail_files(&path).len(), 3);
    assert!(verify(&path, false).ok);
}

#[test]
fn records_sent_together_share_one_batch_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut o = opts(&path, true);
    // A periodic checkpoint closes every batch that appended: records split
    // across two batches would have one between them (their seqs not adjacent).
    o.checkpoint_every = 1;
    let trail = Arc::new(Trail::open(o).unwrap());
    // Another thread keeps the writer busy, so a split would show.
    let busy = {
        let trail = trail.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                trail.append(note(1000 + i)).unwrap();
            }
        })
    };
    for round in 0..50 {
        let tickets = trail.submit_all((0..3).map(|i| note(round * 10 + i)));
        let seqs: Vec<u64> = tickets.into_iter().map(|t| t.wait().unwrap().seq).collect();
        assert_eq!(
            seqs,
            [seqs[0], seqs[0] + 1, seqs[0] + 2],
            "in order, adjacent"
        );
    }
    busy.join().unwrap();
    // One record that may not be written fails alone; the others are written.
    let mixed = trail.submit_all([
        note(1),
        RecordBody::Rotated {
            archive: "x".into(),
        },
        note(2),
    ]);
    let results: Vec<_> = mixed.into_iter().map(|t| t.wait()).collect();
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(matches!(
        results[1],
        Err(AuditError::ReservedKind { kind: "rotated" })
    ));
    assert_eq!(
        results[2].as_ref().unwrap().seq,
        results[0].as_ref().unwrap().seq + 1
    );
    trail.close().unwrap();
    assert!(verify(&path, true).ok);
}
