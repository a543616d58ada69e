//! The hand-fused reference kernels (`mppi_tasks::reference`): one control step of each
//! benchmark problem, the "speed of light" that `benches/control_step.rs` (the library's
//! `Controller::act`, 1 thread) is compared with. Same problems and sizes.
//!
//! Run: `cargo bench -p mppi-tasks --bench reference`. divan prints the time per step and the
//! heap allocations per step (expected: 0). Sample-steps per second = K × T / (time per step).

use divan::{AllocProfiler, Bencher, black_box};
use mppi::MppiConfig;
use mppi_tasks::reference::{ReferenceKernel, ReferenceProblem};
use mppi_tasks::task_by_name;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

fn bench_reference(bencher: Bencher, problem: ReferenceProblem, samples: usize, horizon: usize) {
    let task = task_by_name(problem.task_name()).expect("built-in task");
    let config = MppiConfig {
        samples,
        horizon,
        ..task.default_config()
    };
    let mut kernel = ReferenceKernel::new(problem, &config).expect("supported config");
    let x = task.initial_state();
    kernel.step(&x);
    bencher
        .counter(divan::counter::ItemsCount::new(samples * horizon))
        .bench_local(|| {
            black_box(kernel.step(black_box(&x))[0]);
        });
}

/// Pendulum-v1, T = 30, K = 1000.
#[divan::bench]
fn pendulum_t30_k1000(bencher: Bencher) {
    bench_reference(bencher, ReferenceProblem::Pendulum, 1000, 30);
}

/// Pendulum-v1, T = 15, K = 100.
#[divan::bench]
fn pendulum_t15_k100(bencher: Bencher) {
    bench_reference(bencher, ReferenceProblem::Pendulum, 100, 15);
}

/// 2-D double integrator, T = 50, K = 4096.
#[divan::bench]
fn double_integrator_t50_k4096(bencher: Bencher) {
    bench_reference(bencher, ReferenceProblem::DoubleIntegrator, 4096, 50);
}

/// Unicycle among circular obstacles, T = 50, K = 4096.
#[divan::bench]
fn unicycle_t50_k4096(bencher: Bencher) {
    bench_reference(bencher, ReferenceProblem::Unicycle, 4096, 50);
}

/// Differential drive through a costmap (the `mppi bench` K sweep at K = 2048), T = 100.
#[divan::bench]
fn diff_drive_t100_k2048(bencher: Bencher) {
    bench_reference(bencher, ReferenceProblem::DiffDrive, 2048, 100);
}
