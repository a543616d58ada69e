//! One receding-horizon control step (`Controller::act`: warm-start shift + one EM iteration)
//! on the built-in models, with allocation counting.
//!
//! Run: `cargo bench -p mppi-tasks --bench control_step`. divan prints the time per step and,
//! through its `AllocProfiler`, the number of heap allocations per step: 0 on 1 thread; on 2
//! threads one 1520 B block of rayon's job queue every 63 parallel steps (divan's profiler
//! counts the calling thread, where that queue allocates; `tests/allocations.rs` counts every
//! thread).
//! Sample-steps per second = samples × horizon / (time per step).

use divan::{AllocProfiler, Bencher, black_box};
use mppi::MppiConfig;
use mppi_tasks::{Task, controller, task_by_name};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

fn bench_task(bencher: Bencher, name: &str, samples: usize, horizon: usize, threads: usize) {
    let task: Box<dyn Task> = task_by_name(name).expect("built-in task");
    let config = MppiConfig {
        samples,
        horizon,
        threads,
        ..task.default_config()
    };
    let mut ctrl = controller(task.as_ref(), &config).expect("valid config");
    let x = task.initial_state();
    // warm up: the first step allocates nothing either, but lets caches settle
    ctrl.act(&x).expect("act");
    bencher
        .counter(divan::counter::ItemsCount::new(samples * horizon))
        .bench_local(|| {
            black_box(ctrl.act(black_box(&x)).expect("act")[0]);
        });
}

/// Pendulum-v1, T = 30, K = 1000 (the pytorch-mppi / jax-mppi comparison point).
#[divan::bench(args = [1, 2])]
fn pendulum_t30_k1000(bencher: Bencher, threads: usize) {
    bench_task(bencher, "pendulum", 1000, 30, threads);
}

/// Pendulum-v1, T = 15, K = 100 (a small problem: fixed per-step overhead shows).
#[divan::bench(args = [1, 2])]
fn pendulum_t15_k100(bencher: Bencher, threads: usize) {
    bench_task(bencher, "pendulum", 100, 15, threads);
}

/// 2-D double integrator (nx = 4, nu = 2), T = 50, K = 4096.
#[divan::bench(args = [1, 2])]
fn double_integrator_t50_k4096(bencher: Bencher, threads: usize) {
    bench_task(bencher, "double_integrator", 4096, 50, threads);
}

/// Unicycle among circular obstacles (nx = 4, nu = 2), T = 50, K = 4096.
#[divan::bench(args = [1, 2])]
fn unicycle_t50_k4096(bencher: Bencher, threads: usize) {
    bench_task(bencher, "unicycle", 4096, 50, threads);
}
