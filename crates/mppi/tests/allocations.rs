//! The planner's iterations allocate nothing once it has seen the objective (1 thread, every
//! thread counted). The task-level version, with 2 threads and every task, is
//! `crates/mppi-tasks/tests/allocations.rs`; this one keeps the guarantee inside the core
//! crate's own suite (mutation testing showed nothing there would notice a planner that
//! reallocated its scratch every iteration).
//!
//! Its own test binary with a single `#[test]`, because the counter is global: another test of
//! the same binary, or libtest reporting one, would allocate inside the window.

// The counter wraps the system allocator, which needs `unsafe impl GlobalAlloc`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use mppi::{FnObjective, MppiConfig, Planner, WeightingConfig};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator unchanged; counting touches atomics
// only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations during `f`.
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
    f();
    COUNTING.store(false, Relaxed);
    ALLOCATIONS.load(Relaxed)
}

#[test]
fn iterations_allocate_nothing_after_the_first() {
    // the counter counts: a vector made inside the window shows
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 64]))) >= 1);
    for diagnostics in [mppi::DiagnosticsLevel::Basic, mppi::DiagnosticsLevel::Full] {
        let cfg = MppiConfig {
            samples: 300,
            horizon: 8,
            iterations: 3,
            threads: 1,
            diagnostics,
            weighting: WeightingConfig::fixed(0.5),
            ..MppiConfig::default()
        };
        let objective = FnObjective::new(8, |u: &[f64]| u.iter().map(|v| (v - 0.3).powi(2)).sum());
        let mut planner = Planner::new(&cfg, 1).unwrap();
        planner.optimize(&objective, 0, &mut ()).unwrap();
        let n = allocations(|| {
            for step in 1..6 {
                planner.optimize(&objective, step, &mut ()).unwrap();
                planner.shift(mppi::ShiftFill::Last);
            }
        });
        println!("{diagnostics:?}: {n} allocations in 5 steps of 3 iterations");
        assert_eq!(n, 0, "{diagnostics:?}: the planner allocated {n} times");
    }
}
