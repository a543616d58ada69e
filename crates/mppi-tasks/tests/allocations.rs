//! Heap allocations per control step, counted on every thread of the process (the rayon
//! workers included): none with 1 thread; with 2 threads exactly the blocks of rayon's job
//! queue, one 1520 B block per 63 parallel iterations, made by the calling thread.
//!
//! This file is its own test binary on purpose, and must keep a single `#[test]`: the counter
//! is global (it has to be, to see the workers), so anything else that allocates while a
//! window is open is counted too. Other tests of the same binary would run on other threads
//! at the same time, and a mutex that every test takes would not be enough: libtest's main
//! thread allocates when it reports a finished test, which can fall into the next test's
//! window. With one test, the main thread only waits while it runs (libtest prints a
//! "running for over 60 seconds" line after a minute: the test takes a few seconds).

// The counter wraps the system allocator, which needs `unsafe impl GlobalAlloc`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use mppi_tasks::threads::wait_for_idle_threads;
use mppi_tasks::{Task, TaskController, all_tasks, controller, task_by_name};

/// Counts every allocation (and reallocation) made on any thread while [`COUNTING`] is set.
///
/// Relaxed ordering is enough: the work a window measures is handed to the rayon workers and
/// back through rayon's own synchronization (the job queue and the latch the caller waits on,
/// release/acquire), so a worker's allocation for that work happens after the store that opens
/// the window and before the load that reads the count. Threads that do not synchronize with
/// the window at all (none should exist here, see [`wait_for_idle_threads`]) could be counted
/// or missed at its edges whatever the ordering.
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
/// Allocations made on a thread other than the one that opened the window.
static ELSEWHERE: AtomicUsize = AtomicUsize::new(0);
/// Sizes of the first [`SIZE_LOG`] allocations of the window (for the failure messages).
static SIZES: [AtomicUsize; SIZE_LOG] = [const { AtomicUsize::new(0) }; SIZE_LOG];
const SIZE_LOG: usize = 32;

thread_local! {
    /// Set on the thread that opened the window (a const thread-local without a destructor:
    /// reading it never allocates).
    static OPENER: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation(size: usize) {
    if COUNTING.load(Relaxed) {
        let i = ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size, Relaxed);
        if i < SIZE_LOG {
            SIZES[i].store(size, Relaxed);
        }
        if !OPENER.try_with(Cell::get).unwrap_or(false) {
            ELSEWHERE.fetch_add(1, Relaxed);
        }
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
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// What a window counted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    allocations: usize,
    bytes: usize,
    /// Of `allocations`, those made on other threads than the caller's.
    elsewhere: usize,
    /// The first sizes, in order.
    sizes: Vec<usize>,
}

/// Allocations made on every thread while `f` runs.
fn allocations_during(f: impl FnOnce()) -> Counts {
    OPENER.with(|o| o.set(true));
    ALLOCATIONS.store(0, Relaxed);
    BYTES.store(0, Relaxed);
    ELSEWHERE.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
    f();
    COUNTING.store(false, Relaxed);
    OPENER.with(|o| o.set(false));
    let allocations = ALLOCATIONS.load(Relaxed);
    Counts {
        allocations,
        bytes: BYTES.load(Relaxed),
        elsewhere: ELSEWHERE.load(Relaxed),
        sizes: SIZES[..allocations.min(SIZE_LOG)]
            .iter()
            .map(|s| s.load(Relaxed))
            .collect(),
    }
}

/// Slots of a block of rayon's job queue (crossbeam-deque 0.8.8 `Injector`, `BLOCK_CAP`).
const INJECTOR_BLOCK_SLOTS: usize = 63;

/// Bytes of one such block: the `next` pointer and 63 slots of a `JobRef` (two pointers) and a
/// state word, 1520 B on a 64-bit target.
const INJECTOR_BLOCK_BYTES: usize =
    size_of::<usize>() + INJECTOR_BLOCK_SLOTS * 3 * size_of::<usize>();

/// Blocks rayon's job queue allocates while `pushed` jobs are queued after `before` others.
///
/// A pool owns one `Injector`; `ThreadPool::install` from a thread outside the pool pushes one
/// job into it (on the calling thread). The first block comes with the pool; a push into the
/// last slot of a block allocates the next one first, so push `i` (from 0) allocates exactly
/// when `i % 63 == 62`. The blocks are freed by the worker that takes their last job.
fn injector_blocks(before: usize, pushed: usize) -> usize {
    let n = INJECTOR_BLOCK_SLOTS;
    (before + pushed + 1) / n - (before + 1) / n
}

/// One controller under test, with the jobs its pool has been handed so far.
struct Case {
    label: String,
    controller: TaskController,
    state: Vec<f64>,
    /// `ThreadPool::install` calls so far: one per EM iteration of a parallel step.
    jobs: usize,
}

impl Case {
    fn new(task: &dyn Task, threads: usize, precision: mppi::Precision, edit: &str) -> Self {
        let mut config = task.default_config();
        config.threads = threads;
        config.precision = precision;
        config.samples = config.samples.min(300);
        match edit {
            "" => {}
            // on the pool whatever the measured split says, so that some windows must count
            // the queue's blocks
            "3 iterations, parallel = always" => {
                config.iterations = 3;
                config.parallel = mppi::Parallel::Always;
            }
            "K = 100, T = 15" => (config.samples, config.horizon) = (100, 15),
            other => panic!("unknown edit {other}"),
        }
        let controller = controller(task, &config).expect("controller");
        Case {
            label: format!(
                "{} with {threads} thread(s), {precision:?}, K = {}, T = {}{}{edit}",
                task.name(),
                config.samples,
                config.horizon,
                if edit.is_empty() { "" } else { ", " }
            ),
            controller,
            state: task.initial_state(),
            jobs: 0,
        }
    }

    fn step(&mut self) {
        self.controller.act(&self.state).expect("step");
        // the iterations the planner ran on its pool (`parallel = "auto"` measures where)
        let report = self.controller.report();
        self.jobs += report.iterations.iter().filter(|i| i.parallel).count();
    }
}

/// Control steps counted per case: with one parallel iteration per step, two or three blocks
/// of the job queue.
const STEPS: usize = 130;

/// Every allocation the control steps of every task make, on every thread, is counted, and the
/// count is exactly what is known: 0 with 1 thread; with 2 threads the blocks of rayon's job
/// queue for the iterations the planner reports it ran on the pool (one per 63 of them, 1520 B,
/// on the calling thread; none where the measured split kept the rollouts on the caller) and
/// nothing on the workers.
#[test]
fn control_steps_allocate_nothing_but_rayons_queue_blocks() {
    // the counter sees a thread other than the one that opened the window
    let barrier = Barrier::new(2);
    let counts = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            barrier.wait();
            let v: Vec<u8> = Vec::with_capacity(4321);
            std::hint::black_box(&v);
            barrier.wait();
        });
        wait_for_idle_threads();
        let counts = allocations_during(|| {
            barrier.wait();
            barrier.wait();
        });
        worker.join().expect("worker");
        counts
    });
    assert_eq!(
        (counts.allocations, counts.elsewhere, counts.bytes),
        (1, 1, 4321),
        "{counts:?}"
    );

    // Every controller is built and warmed up first and kept until the end: no pool starts or
    // stops while a window is open.
    let precisions = [mppi::Precision::F64, mppi::Precision::F32];
    let mut cases = vec![];
    for task in all_tasks() {
        for threads in [1, 2] {
            for precision in precisions {
                cases.push(Case::new(task.as_ref(), threads, precision, ""));
            }
        }
    }
    let di = task_by_name("double_integrator").expect("task");
    cases.push(Case::new(
        di.as_ref(),
        2,
        precisions[0],
        "3 iterations, parallel = always",
    ));
    let pendulum = task_by_name("pendulum").expect("task");
    cases.push(Case::new(
        pendulum.as_ref(),
        2,
        precisions[0],
        "K = 100, T = 15",
    ));
    for case in &mut cases {
        for _ in 0..3 {
            case.step();
        }
    }
    wait_for_idle_threads();

    let mut expected_blocks = 0;
    for case in &mut cases {
        let before = case.jobs;
        let counts = allocations_during(|| {
            for _ in 0..STEPS {
                case.step();
            }
        });
        let blocks = injector_blocks(before, case.jobs - before);
        expected_blocks += blocks;
        let label = &case.label;
        assert_eq!(
            counts.allocations,
            blocks,
            "{label}: {} allocation(s) in {STEPS} control steps, {blocks} expected ({} jobs \
             queued before, {} during): {counts:?}",
            counts.allocations,
            before,
            case.jobs - before,
        );
        assert_eq!(
            counts.bytes,
            blocks * INJECTOR_BLOCK_BYTES,
            "{label}: not rayon's queue blocks: {counts:?}"
        );
        assert_eq!(
            counts.elsewhere, 0,
            "{label}: the rayon workers allocated: {counts:?}"
        );
    }
    // the windows did include allocations, and the counter saw every one of them (the
    // `parallel = always` case alone queues 3 × STEPS = 390 jobs: 6 blocks)
    assert!(expected_blocks >= 6, "{expected_blocks}");
}
