//! The `mppi` binary's global allocator: the system allocator, counting the allocations made
//! on every thread (rayon's workers included) while a [`Window`] is open. `mppi bench` opens
//! one around each timed block of control steps.
//!
//! Closed, the counter costs one relaxed atomic load per allocation; open, two relaxed
//! additions more. Nothing else changes: memory comes from [`System`] either way.

// A `GlobalAlloc` impl is `unsafe` (the workspace denies `unsafe_code`); every unsafe block
// below only forwards to `System` with the caller's own arguments.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// [`System`], counting while a [`Window`] is open.
///
/// Relaxed ordering is enough: the work a window measures is handed to the rayon workers and
/// back through rayon's own synchronization (its job queue, and the latch the caller waits on),
/// so a worker's allocation for that work happens after the store that opens the window and
/// before the loads that read the counts. A thread that does not synchronize with the window
/// could be counted or missed at its edges whatever the ordering (see
/// [`wait_for_idle_threads`]).
pub struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// One window at a time.
static WINDOW: Mutex<()> = Mutex::new(());

#[inline]
fn note_allocation(size: usize) {
    if COUNTING.load(Relaxed) {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    /// A reallocation counts as an allocation of `new_size` bytes.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// What a window counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Allocations and reallocations, on every thread.
    pub allocations: u64,
    /// Their sizes, summed.
    pub bytes: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.allocations += other.allocations;
        self.bytes += other.bytes;
    }
}

/// Counting, on every thread, from [`Window::open`] to [`Window::close`] (or the drop).
/// Windows are taken one at a time.
#[must_use = "the window counts until it is closed"]
pub struct Window {
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Window {
    /// Reset the counts and start counting.
    pub fn open() -> Self {
        let guard = WINDOW.lock().unwrap_or_else(PoisonError::into_inner);
        ALLOCATIONS.store(0, Relaxed);
        BYTES.store(0, Relaxed);
        COUNTING.store(true, Relaxed);
        Window {
            _one_at_a_time: guard,
        }
    }

    /// Stop counting; what was counted since [`Window::open`].
    pub fn close(self) -> Counts {
        COUNTING.store(false, Relaxed);
        Counts {
            allocations: ALLOCATIONS.load(Relaxed),
            bytes: BYTES.load(Relaxed),
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        COUNTING.store(false, Relaxed);
    }
}

/// Wait until no other thread of this process is runnable: see
/// [`mppi_tasks::threads::wait_for_idle_threads`].
pub use mppi_tasks::threads::wait_for_idle_threads;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    /// An allocation on another thread, inside the window, is counted. (Other tests of this
    /// binary may allocate at the same time: they can only add to the counts.)
    #[test]
    fn counts_allocations_on_other_threads() {
        let barrier = Barrier::new(2);
        let counts = std::thread::scope(|s| {
            let other = s.spawn(|| {
                barrier.wait();
                let v: Vec<u8> = Vec::with_capacity(43_210);
                std::hint::black_box(&v);
                barrier.wait();
            });
            let window = Window::open();
            barrier.wait();
            barrier.wait();
            let counts = window.close();
            other.join().expect("thread");
            counts
        });
        assert!(
            counts.allocations >= 1 && counts.bytes >= 43_210,
            "{counts:?}"
        );
    }

    #[test]
    fn counts_add_up() {
        let mut total = Counts::default();
        total += Counts {
            allocations: 2,
            bytes: 3040,
        };
        total += Counts {
            allocations: 1,
            bytes: 1520,
        };
        assert_eq!(
            total,
            Counts {
                allocations: 3,
                bytes: 4560
            }
        );
    }
}
