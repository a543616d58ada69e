//! The hand-fused reference kernels (`mppi_tasks::reference`) compute exactly what the library
//! computes: for every benchmark problem, the library controller and the reference kernel run
//! side by side in closed loop and must produce bit-identical plans and costs at every step,
//! with float64 and with float32 rollouts, and with both normal generators.

use mppi::{MppiConfig, Normals, Precision, ShiftFill};
use mppi::{ProposalConfig, TemperatureConfig, UpdateConfig, WeightingConfig};
use mppi_tasks::reference::{ReferenceKernel, ReferenceProblem};
use mppi_tasks::{Task, controller, task_by_name};

/// Run both for `steps` closed-loop steps from the task's initial state (the plant applies the
/// library's first control) and compare plans and costs bit for bit.
fn assert_identical(problem: ReferenceProblem, config: &MppiConfig, steps: usize) {
    assert_identical_from(problem, config, steps, None);
}

/// [`assert_identical`] from `x0` (or the task's initial state), in both precisions and, in
/// `f32`, with both normal generators; returns
/// how many sampled costs were at least 1000 (a collision or a lethal cell) over all steps.
fn assert_identical_from(
    problem: ReferenceProblem,
    config: &MppiConfig,
    steps: usize,
    x0: Option<Vec<f64>>,
) -> usize {
    [
        (Precision::F64, Normals::Exact),
        (Precision::F32, Normals::Exact),
        (Precision::F32, Normals::Fast),
    ]
    .into_iter()
    .map(|(precision, normals)| {
        let config = MppiConfig {
            precision,
            normals,
            ..config.clone()
        };
        assert_identical_in(problem, &config, steps, x0.clone())
    })
    .sum()
}

fn assert_identical_in(
    problem: ReferenceProblem,
    config: &MppiConfig,
    steps: usize,
    x0: Option<Vec<f64>>,
) -> usize {
    let task: Box<dyn Task> = task_by_name(problem.task_name()).expect("built-in task");
    let mut library = controller(task.as_ref(), config).expect("valid config");
    let mut reference = ReferenceKernel::new(problem, config).expect("supported config");
    let mut x = x0.unwrap_or_else(|| task.initial_state());
    let mut penalized = 0;
    let mut next = vec![0.0; x.len()];
    let m = problem.control_dim();
    for step in 0..steps {
        let u = library.act(&x).expect("act").to_vec();
        let plan = reference.step(&x).to_vec();
        let what = format!(
            "{} K={} T={} {:?} {:?} normals step {step}",
            problem.task_name(),
            config.samples,
            config.horizon,
            config.precision,
            config.normals
        );
        let costs = library.planner().costs();
        penalized += costs.iter().filter(|c| **c >= 1000.0).count();
        assert_eq!(costs.len(), reference.costs().len(), "{what}: cost count");
        for (i, (a, b)) in costs.iter().zip(reference.costs()).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{what}: cost {i}: {a} vs {b}");
        }
        let lib_plan = library.plan();
        assert_eq!(lib_plan.len(), plan.len(), "{what}: plan length");
        for (i, (a, b)) in lib_plan.iter().zip(&plan).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{what}: plan entry {i}: {a} vs {b}"
            );
        }
        assert_eq!(&plan[..m], &u[..], "{what}: first control");
        task.plant_step(&x, &u, &mut next);
        x.copy_from_slice(&next);
    }
    penalized
}

fn config(problem: ReferenceProblem, samples: usize, horizon: usize) -> MppiConfig {
    let task = task_by_name(problem.task_name()).expect("built-in task");
    MppiConfig {
        samples,
        horizon,
        ..task.default_config()
    }
}

#[test]
fn pendulum_matches_the_library() {
    // K = 100 leaves a last block of 4 lanes
    assert_identical(
        ReferenceProblem::Pendulum,
        &config(ReferenceProblem::Pendulum, 1000, 30),
        5,
    );
    assert_identical(
        ReferenceProblem::Pendulum,
        &config(ReferenceProblem::Pendulum, 100, 15),
        5,
    );
}

#[test]
fn double_integrator_matches_the_library() {
    assert_identical(
        ReferenceProblem::DoubleIntegrator,
        &config(ReferenceProblem::DoubleIntegrator, 256, 50),
        5,
    );
}

#[test]
fn unicycle_matches_the_library() {
    assert_identical(
        ReferenceProblem::Unicycle,
        &config(ReferenceProblem::Unicycle, 250, 50),
        5,
    );
}

#[test]
fn diff_drive_matches_the_library() {
    assert_identical(
        ReferenceProblem::DiffDrive,
        &config(ReferenceProblem::DiffDrive, 256, 100),
        5,
    );
}

/// Obstacles, lethal cells and the map's edge get hit, so collision costs, zero weights and
/// the costmap's lethal and out-of-map branches are exercised: start the navigation problems
/// next to an obstacle (or the map's edge) with a wide noise.
#[test]
fn collisions_and_lethal_cells_match_the_library() {
    for (problem, x0) in [
        (ReferenceProblem::DoubleIntegrator, vec![1.0, 1.2, 0.5, 0.5]),
        (ReferenceProblem::Unicycle, vec![3.0, 2.0, 0.8, 1.0]),
        // in the inflation band of the disc at (1.3, 0.9), facing it
        (ReferenceProblem::DiffDrive, vec![1.0, 0.4, 1.0]),
        // next to the map's left edge (x = -1), facing out
        (
            ReferenceProblem::DiffDrive,
            vec![-0.9, 0.0, std::f64::consts::PI],
        ),
    ] {
        let cfg = MppiConfig {
            seed: 11,
            proposal: ProposalConfig {
                noise_sigma: Some(vec![2.0]),
                ..config(problem, 96, 40).proposal.clone()
            },
            ..config(problem, 96, 40)
        };
        let hit = assert_identical_from(problem, &cfg, 4, Some(x0));
        assert!(hit > 0, "{}: no sample was penalized", problem.task_name());
    }
}

/// The settings the kernels support beyond the defaults: several EM iterations, a discount,
/// a zero shift fill, per-dimension noise and bounds, a different temperature and seed.
#[test]
fn non_default_settings_match_the_library() {
    let cfg = MppiConfig {
        iterations: 3,
        discount: 0.97,
        shift_fill: ShiftFill::Zero,
        seed: 1234,
        weighting: WeightingConfig {
            temperature: TemperatureConfig::Fixed { lambda: 0.05 },
            ..config(ReferenceProblem::Pendulum, 70, 12).weighting
        },
        ..config(ReferenceProblem::Pendulum, 70, 12)
    };
    assert_identical(ReferenceProblem::Pendulum, &cfg, 4);
    let cfg = MppiConfig {
        iterations: 2,
        u_min: Some(vec![-1.0, -0.5]),
        u_max: Some(vec![2.5, 1.0]),
        discount: 0.9,
        seed: 99,
        proposal: ProposalConfig {
            noise_sigma: Some(vec![0.5, 1.5]),
            ..config(ReferenceProblem::Unicycle, 80, 20).proposal.clone()
        },
        ..config(ReferenceProblem::Unicycle, 80, 20)
    };
    assert_identical(ReferenceProblem::Unicycle, &cfg, 4);
}

#[test]
fn unsupported_settings_are_errors() {
    let base = config(ReferenceProblem::Pendulum, 64, 10);
    for cfg in [
        MppiConfig {
            proposal: base
                .clone()
                .proposal
                .clone()
                .into_kind(mppi::ProposalKind::GaussianDiag),
            ..base.clone()
        },
        MppiConfig {
            weighting: WeightingConfig {
                elites: Some(8),
                ..base.clone().weighting
            },
            ..base.clone()
        },
        MppiConfig {
            weighting: WeightingConfig {
                control_cost_gamma: 0.5,
                ..base.clone().weighting
            },
            ..base.clone()
        },
        MppiConfig {
            weighting: WeightingConfig {
                temperature: TemperatureConfig::StdNormalized { scale: 0.1 },
                ..base.clone().weighting
            },
            ..base.clone()
        },
        MppiConfig {
            update: UpdateConfig {
                step_size: 1.5,
                ..base.clone().update
            },
            ..base.clone()
        },
        MppiConfig {
            samples: 1,
            ..base.clone()
        },
    ] {
        assert!(ReferenceKernel::new(ReferenceProblem::Pendulum, &cfg).is_err());
    }
    let full = MppiConfig {
        proposal: ProposalConfig {
            noise_covariance: Some(vec![vec![1.0, 0.5], vec![0.5, 1.0]]),
            ..config(ReferenceProblem::Unicycle, 64, 10).proposal.clone()
        },
        ..config(ReferenceProblem::Unicycle, 64, 10)
    };
    assert!(ReferenceKernel::new(ReferenceProblem::Unicycle, &full).is_err());
    assert_eq!(
        ReferenceProblem::from_task_name("diff_drive"),
        Some(ReferenceProblem::DiffDrive)
    );
    assert_eq!(ReferenceProblem::from_task_name("cartpole"), None);
}
