//! Landlock filesystem rules, as the kernel enforces them on the tool.
//!
//! Every refused attempt is repeated under a policy that grants it. The files
//! involved belong to the tool user and are world-readable, so that only Landlock
//! stands between the tool and them.

use super::{Knobs, outside_file, py, ready, sh};
use crate::util;

#[test]
fn writes_outside_the_run_directory_are_refused() {
    if !ready() {
        return;
    }
    let (dir, _) = outside_file("placeholder", "");
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let target = dir.join("written");
    let script = format!("echo data > {}", target.display());
    let out = Knobs::default().write().run(&sh(&script));
    assert_ne!(util::code(&out), 0);
    assert!(
        util::stderr(&out).contains("Permission denied"),
        "{}",
        util::stderr(&out)
    );
    assert!(!target.exists());
    // Granted: the same write lands.
    let granted = Knobs {
        write: vec![dir.path().display().to_string()],
        ..Knobs::default()
    }
    .write();
    util::assert_code(&granted.run(&sh(&script)), 0);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "data\n");
}

#[test]
fn reads_of_ungranted_files_are_refused_also_via_symlinks() {
    if !ready() {
        return;
    }
    let (dir, secret) = outside_file("secret", "s3cret\n");
    let code = format!(
        "import os, errno\n\
         for p in ['{s}', 'link']:\n\
         \x20   try:\n\
         \x20       print(open(p).read().strip())\n\
         \x20   except OSError as e:\n\
         \x20       print(errno.errorcode[e.errno])\n\
         \x20   os.symlink('{s}', 'link') if p != 'link' else None\n",
        s = secret.display()
    );
    let out = Knobs::default().write().run(&py(&code));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "EACCES\nEACCES\n");
    let granted = Knobs {
        read: vec![dir.path().display().to_string()],
        ..Knobs::default()
    }
    .write();
    let out = granted.run(&py(&code));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "s3cret\ns3cret\n");
}

#[test]
fn hard_links_cannot_pull_an_ungranted_file_into_the_run_directory() {
    if !ready() {
        return;
    }
    let (dir, secret) = outside_file("secret", "s3cret\n");
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let code = format!(
        "import os, errno\n\
         try:\n\
         \x20   os.link('{s}', 'pulled')\n\
         \x20   print(open('pulled').read().strip())\n\
         except OSError as e:\n\
         \x20   print(errno.errorcode[e.errno])\n",
        s = secret.display()
    );
    let out = Knobs::default().write().run(&py(&code));
    util::assert_code(&out, 0);
    let refused = util::stdout(&out);
    assert!(refused == "EXDEV\n" || refused == "EACCES\n", "{refused}");
    // Granted (write includes `refer` on the source tree): the link is made and readable.
    let granted = Knobs {
        write: vec![dir.path().display().to_string()],
        ..Knobs::default()
    }
    .write();
    let out = granted.run(&py(&code));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "s3cret\n");
}

#[test]
fn credentials_stay_unreadable() {
    if !ready() {
        return;
    }
    let out = Knobs::default().write().run(&sh(
        "cat /etc/shadow; cat /root/.bashrc; ls /var/lib/enforcecore-runs",
    ));
    assert_ne!(util::code(&out), 0);
    let err = util::stderr(&out);
    assert_eq!(err.matches("Permission denied").count(), 3, "{err}");
}

#[test]
fn executing_an_ungranted_program_is_refused() {
    if !ready() {
        return;
    }
    let (dir, _) = outside_file("placeholder", "");
    let copy = dir.join("mytrue");
    std::fs::copy("/bin/true", &copy).unwrap();
    let path = copy.display().to_string();
    let read_only = Knobs {
        read: vec![dir.path().display().to_string()],
        ..Knobs::default()
    }
    .write();
    // Directly: enforcecore reports the refused execve as a policy refusal.
    let out = read_only.run(&[&path]);
    util::assert_code(&out, 126);
    assert!(
        util::stderr(&out).contains("execute"),
        "{}",
        util::stderr(&out)
    );
    // From inside the sandbox: the shell's exec fails.
    let out = read_only.run(&sh(&path));
    util::assert_code(&out, 126);
    let granted = Knobs {
        exec: vec![dir.path().display().to_string()],
        ..Knobs::default()
    }
    .write();
    util::assert_code(&granted.run(&[&path]), 0);
    util::assert_code(&granted.run(&sh(&path)), 0);
}

#[test]
fn missing_paths_fail_closed_unless_optional() {
    if !ready() {
        return;
    }
    let p = Knobs {
        read: vec!["/no/such/dir".into()],
        ..Knobs::default()
    }
    .write();
    let out = p.run(&["/bin/true"]);
    util::assert_code(&out, 125);
    assert!(
        util::stderr(&out).contains("/no/such/dir"),
        "{}",
        util::stderr(&out)
    );
}
