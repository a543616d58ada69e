//! Repeat one control step of a benchmark problem, library or reference kernel, for profiling
//! (a development aid): `step_profile <task> <lib|lib32|lib32f|ref|ref32|ref32f> [steps]
//! [samples] [horizon]` (`…32`: float32 rollouts; `…32f`: and the fast normals), e.g.
//! `valgrind --tool=callgrind target/release/examples/step_profile double_integrator lib 20 4096 50`.
use mppi_tasks::reference::{ReferenceKernel, ReferenceProblem};
use mppi_tasks::{controller, task_by_name};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let task = task_by_name(&args[1]).expect("task");
    let arg =
        |i: usize, default: usize| args.get(i).map_or(default, |v| v.parse().expect("number"));
    let defaults = task.default_config();
    let config = mppi::MppiConfig {
        samples: arg(4, defaults.samples),
        horizon: arg(5, defaults.horizon),
        precision: if args[2].contains("32") {
            mppi::Precision::F32
        } else {
            mppi::Precision::F64
        },
        normals: if args[2].ends_with('f') {
            mppi::Normals::Fast
        } else {
            mppi::Normals::Exact
        },
        ..defaults
    };
    let steps = arg(3, 100);
    let x = task.initial_state();
    let start = std::time::Instant::now();
    let mut checksum = 0.0;
    if args[2].starts_with("ref") {
        let kind = ReferenceProblem::from_task_name(&args[1]).expect("a reference problem");
        let mut kernel = ReferenceKernel::new(kind, &config).expect("config");
        for _ in 0..steps {
            checksum += kernel.step(&x)[0];
        }
    } else {
        let mut ctrl = controller(task.as_ref(), &config).expect("config");
        for _ in 0..steps {
            checksum += ctrl.act(&x).expect("act")[0];
        }
    }
    let per_step = start.elapsed().as_secs_f64() / steps as f64;
    println!(
        "{} {}: {:.1} µs/step (checksum {checksum:.6})",
        args[1],
        args[2],
        per_step * 1e6
    );
}
