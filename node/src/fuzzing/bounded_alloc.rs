//! A global allocator that refuses, on the thread that asked for it, any
//! single allocation above a cap: how a fuzz target shows that a length
//! field from outside never turns into an allocation of that length.
//!
//! A refused allocation aborts the process ("memory allocation of N bytes
//! failed"), which libFuzzer and the test runner both report as a failure.

// The one place in this crate that needs `unsafe`: `GlobalAlloc` is an
// unsafe trait. Every call forwards to `System` unchanged or returns null.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn cap() -> usize {
    CAP.try_with(Cell::get).unwrap_or(usize::MAX)
}

/// [`System`], refusing allocations above the cap set by [`bounded`].
pub struct BoundedAlloc;

// SAFETY: forwards to `System`, or returns null (an allowed answer).
unsafe impl GlobalAlloc for BoundedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > cap() {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > cap() {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > cap() {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Lifts the cap before a panic is reported: the report (message,
/// backtrace) is the harness's, not the target's, and must not be refused.
fn lift_cap_on_panic() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = CAP.try_with(|c| c.set(usize::MAX));
            report(info);
        }));
    });
}

/// Runs `f` with single allocations on this thread capped at `cap` bytes.
pub fn bounded<T>(cap: usize, f: impl FnOnce() -> T) -> T {
    lift_cap_on_panic();
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = CAP.try_with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CAP.with(|c| c.replace(cap)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_allocation_is_refused_and_the_cap_is_lifted_after() {
        let refused = bounded(1 << 20, || {
            let mut v: Vec<u8> = Vec::new();
            v.try_reserve_exact(4 << 30).is_err()
        });
        assert!(refused, "a 4 GiB allocation under a 1 MiB cap was granted");
        let mut v: Vec<u8> = Vec::new();
        assert!(v.try_reserve_exact(2 << 20).is_ok());
    }
}
