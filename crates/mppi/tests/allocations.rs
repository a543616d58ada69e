//! The planner's iterations, and a controller with `[smoothing]` on, allocate nothing once they
//! have seen the objective (1 thread; the allocations of the thread that runs them are
//! counted). The task-level version, with 2 threads and every task, is
//! `crates/mppi-tasks/tests/allocations.rs`; this one keeps the guarantee inside the core
//! crate's own suite (mutation testing showed nothing there would notice a planner that
//! reallocated its scratch every iteration).
//!
//! Its own test binary with a single `#[test]`, and the counter counts only the thread that
//! opened the window: with `threads = 1` the planner runs there, and another thread of the
//! process (libtest's) allocating inside the window had made this test fail about once in 40
//! runs.

// The counter wraps the system allocator, which needs `unsafe impl GlobalAlloc`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use mppi::{
    Controller, Cost, Dynamics, FnObjective, MppiConfig, Planner, ProposalConfig, ProposalKind,
    SmoothingConfig, WeightingConfig,
};

struct Counting;

thread_local! {
    /// Whether this thread's allocations are counted (a `const` thread-local without a
    /// destructor: reading it never allocates).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// Whether the current thread's allocations are counted now.
fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every method forwards to the system allocator unchanged; counting touches atomics
// only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations of the current thread during `f`.
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Relaxed);
    COUNTING.set(true);
    f();
    COUNTING.set(false);
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
    smoothed_act_allocates_nothing_after_the_first_step();
}

struct PointMass;
impl Dynamics for PointMass {
    fn state_dim(&self) -> usize {
        4
    }
    fn control_dim(&self) -> usize {
        2
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        for i in 0..2 {
            next[2 + i] = x[2 + i] + 0.05 * u[i];
            next[i] = x[i] + 0.05 * next[2 + i];
        }
    }
}
struct Goal;
impl Cost for Goal {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        (0..2)
            .map(|i| (x[i] - 1.0).powi(2) + 0.1 * x[2 + i].powi(2) + 1e-3 * u[i].powi(2))
            .sum()
    }
}

/// `Controller::act` with every part of `[smoothing]` on (Savitzky–Golay, rate and
/// acceleration limits, bounds, the write-back into the proposal) allocates nothing after the
/// first step.
fn smoothed_act_allocates_nothing_after_the_first_step() {
    for kind in [
        ProposalKind::Gaussian,
        ProposalKind::GaussianDiag,
        ProposalKind::GaussianFull,
        ProposalKind::Colored,
        ProposalKind::Spline,
        ProposalKind::Mixture,
    ] {
        let cfg = MppiConfig {
            samples: 200,
            horizon: 16,
            iterations: 2,
            threads: 1,
            u_min: Some(vec![-3.0]),
            u_max: Some(vec![3.0]),
            proposal: ProposalConfig::new(kind).with_noise_sigma(&[1.0, 1.0]),
            weighting: WeightingConfig::fixed(0.5),
            smoothing: SmoothingConfig {
                max_step_change: Some(vec![0.3, 0.2]),
                max_step_accel: Some(vec![0.1]),
                savgol_window: 7,
                savgol_order: 3,
            },
            ..MppiConfig::default()
        };
        let mut ctrl = Controller::new(PointMass, Goal, &cfg).unwrap();
        let mut x = [0.0; 4];
        let mut u = [0.0; 2];
        u.copy_from_slice(ctrl.act(&x).unwrap());
        let n = allocations(|| {
            for _ in 0..6 {
                let mut next = [0.0; 4];
                PointMass.step(&x, &u, &mut next);
                x = next;
                u.copy_from_slice(ctrl.act(&x).unwrap());
            }
        });
        println!("{kind:?}: {n} allocations in 6 smoothed steps");
        assert_eq!(
            n, 0,
            "{kind:?}: the smoothed controller allocated {n} times"
        );
    }
}
