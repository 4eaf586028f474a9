//! The Landlock version query (`landlock_create_ruleset(NULL, 0, VERSION)`).
//!
//! Rulesets are built with the `landlock` crate in the parent and applied with a raw
//! `landlock_restrict_self` in [`super::child`]; this module only asks the kernel
//! which ABI it speaks. It must never create or apply a ruleset.
#![allow(unsafe_code)]

use std::io;

/// `LANDLOCK_CREATE_RULESET_VERSION`.
const CREATE_RULESET_VERSION: libc::c_long = 1 << 0;

/// The running kernel's Landlock ABI version.
///
/// `Err` with `EOPNOTSUPP` when Landlock is built in but disabled at boot, `ENOSYS`
/// when it is not built in.
pub fn abi_version() -> io::Result<u32> {
    // SAFETY: a NULL attribute with size 0 and the VERSION flag only queries the ABI.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v as u32)
    }
}
