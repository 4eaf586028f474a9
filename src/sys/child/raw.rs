//! The `syscall` instruction, for a child that shares the supervisor's memory.
//!
//! The child is created with `CLONE_VM`: until it `execve`s it runs in the
//! supervisor's address space, on its own stack, with the thread pointer of the
//! thread that created it. glibc's `syscall(3)` stores a failure in that
//! thread's `errno` — a write into a live supervisor thread — so the child never
//! calls it. [`syscall`] issues the instruction itself and returns what the
//! kernel returned (`-errno` on failure), touching nothing but registers;
//! [`clone3_onto`] is the one call that starts the child on its stack.

use std::arch::asm;
use std::ffi::{c_long, c_void};

/// The kernel's return value: `-4095..=-1` is `-errno`.
pub(crate) fn failed(ret: c_long) -> Option<i32> {
    (-4095..0).contains(&ret).then_some(-ret as i32)
}

/// `syscall(n, a[0], …, a[5])` without glibc.
///
/// # Safety
/// The arguments must be valid for syscall `n` (pointers live and of the size
/// the kernel reads or writes).
#[inline(always)]
pub(super) unsafe fn syscall(n: c_long, a: [usize; 6]) -> c_long {
    let ret: c_long;
    // SAFETY: the x86_64 syscall convention: number in rax, arguments in rdi, rsi,
    // rdx, r10, r8, r9; the kernel clobbers rcx and r11 and returns in rax. The
    // caller vouches for the arguments.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `clone3(args)`; the child starts on the stack `args` names and calls
/// `entry(arg)` there, which must never return. Returns the kernel's result in
/// the parent (the child's pid, or `-errno`).
///
/// # Safety
/// `args.stack`/`args.stack_size` must name a writable mapping that outlives the
/// child's use of it, with a 16-byte aligned top; with `CLONE_VM`, `arg` must
/// stay valid while the child may read it, and `entry` must touch nothing
/// shared with the parent but what `arg` points to.
pub(crate) unsafe fn clone3_onto(
    args: &libc::clone_args,
    entry: extern "C" fn(*const c_void) -> !,
    arg: *const c_void,
) -> c_long {
    let ret: c_long;
    // SAFETY: in the parent the instruction returns the pid (or -errno) and falls
    // through to label 2. In the child the kernel has put the stack pointer at
    // `stack + stack_size` and copied every other register, so r12 and r13 still
    // hold `arg` and `entry`: the child clears the frame pointer and calls
    // `entry(arg)` (the call leaves the stack aligned as the ABI expects), which
    // never returns (`ud2` if it did). The caller vouches for the memory.
    unsafe {
        asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *const libc::clone_args,
            in("rsi") std::mem::size_of::<libc::clone_args>(),
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}
