//! The trained denoiser against theory (docs/theory.md §F.3) and guided planning in closed
//! loop. Small enough for CI in the release profile (about 30 s on 2 cores).

use std::sync::{Arc, OnceLock};

use mppi::guided::{
    Denoiser, DenoiserProposal, GaussianDataDenoiser, GuidanceSettings, WindowSpec,
};
use mppi::rng::sample_rng;
use mppi::{FnObjective, MppiConfig, Planner, WeightingConfig};
use mppi_learn::{
    CollectSettings, Dataset, Guidance, PlanSettings, TrainSettings, TrainedDenoiser,
    guided_controller,
};
use mppi_tasks::{EpisodeOptions, run_controller_episode};

/// Windows of two rows of (state, control), normalized entries `N(MEAN, COV)`.
const MEAN: [f64; 4] = [0.3, -0.2, 0.1, 0.4];
const COV: [f64; 16] = [
    0.5, 0.2, 0.1, 0.0, //
    0.2, 0.4, 0.1, 0.1, //
    0.1, 0.1, 0.45, 0.15, //
    0.0, 0.1, 0.15, 0.35,
];

fn spec() -> WindowSpec {
    WindowSpec {
        horizon: 2,
        state_dim: 1,
        control_dim: 1,
        offset: vec![0.0; 2],
        scale: vec![1.0; 2],
        wrap: Vec::new(),
    }
}

/// `count` windows drawn from `N(MEAN, COV)` (Cholesky by hand).
fn gaussian_dataset(count: usize, seed: u64) -> Dataset {
    let l = cholesky(&COV, 4);
    let mut rng = sample_rng(seed, 0, 0, 0);
    let mut windows = Vec::with_capacity(count * 4);
    for _ in 0..count {
        let z: Vec<f64> = (0..4).map(|_| rng.normal()).collect();
        for i in 0..4 {
            windows.push(MEAN[i] + (0..=i).map(|j| l[i * 4 + j] * z[j]).sum::<f64>());
        }
    }
    Dataset {
        task: "gaussian".into(),
        spec: spec(),
        windows,
        settings: CollectSettings::default(),
        expert: "N(MEAN, COV)".into(),
        expert_mean_cost: f64::NAN,
    }
}

fn cholesky(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            l[i * n + j] = if i == j {
                (a[i * n + i] - s).sqrt()
            } else {
                (a[i * n + j] - s) / l[j * n + j]
            };
        }
    }
    l
}

fn gaussian_settings() -> TrainSettings {
    TrainSettings {
        hidden: 128,
        steps: 2500,
        ..TrainSettings::default()
    }
}

/// One model trained on Gaussian windows, shared by the tests that read it.
fn gaussian_model() -> Arc<TrainedDenoiser> {
    static MODEL: OnceLock<Arc<TrainedDenoiser>> = OnceLock::new();
    Arc::clone(MODEL.get_or_init(|| {
        let data = gaussian_dataset(8192, 1);
        Arc::new(
            TrainedDenoiser::train(&data, &gaussian_settings(), 500, |_, _| {})
                .unwrap()
                .0,
        )
    }))
}

/// Theory-spec §F.3: a denoiser trained on Gaussian data has the analytic score
/// `−(ᾱS + (1−ᾱ)I)⁻¹(x − √ᾱ m)`: relative error of `ε̂` (the score times `−√(1−ᾱ)`) at most
/// 0.1 averaged over the levels, on 500 points of `p_i` per level. Level 1 (noise std 0.01,
/// where the score is a hundred times the data's scale) is reported and left out of the mean:
/// an MLP of this size does not resolve it (measured 3.5), a known limit of ε-prediction at the
/// smallest level; its effect on a sample is `β_1/√(1−ᾱ_1) = 0.01` times that error.
#[test]
fn a_denoiser_trained_on_gaussian_data_has_the_analytic_score() {
    let model = gaussian_model();
    let (vp, levels) = model.schedule();
    let exact = GaussianDataDenoiser::new(spec(), MEAN.to_vec(), COV.to_vec(), vp, levels).unwrap();
    let data = gaussian_dataset(500, 99);
    let mut rng = sample_rng(5, 0, 0, 0);
    let mut per_level = Vec::new();
    for level in 1..=levels {
        let (ab, _) = vp.alpha_bar(level, levels);
        let (mut num, mut den) = (0.0, 0.0);
        let mut x = [0.0; 4];
        let (mut got, mut want) = ([0.0; 4], [0.0; 4]);
        for w in data.windows.chunks_exact(4) {
            for j in 0..4 {
                x[j] = ab.sqrt() * w[j] + (1.0 - ab).sqrt() * rng.normal();
            }
            model.predict_noise(&x, level, &mut got);
            exact.predict_noise(&x, level, &mut want);
            num += got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>();
            den += want.iter().map(|b| b * b).sum::<f64>();
        }
        per_level.push((num / den).sqrt());
    }
    let mean = per_level[1..].iter().sum::<f64>() / (levels - 1) as f64;
    println!(
        "relative score error per level (1..{levels}): {per_level:.3?}; mean over 2..{levels} {mean:.3} (tol 0.1)"
    );
    assert!(mean <= 0.1, "{mean}");
}

/// The controls of `n` unguided runs of the planner with `model` as its proposal.
fn unguided_controls(model: &Arc<dyn Denoiser>, n: u64) -> Vec<Vec<f64>> {
    let (_, levels) = model.schedule();
    (0..n)
        .map(|seed| {
            let guidance = GuidanceSettings {
                gradient_scale: 0.0,
                sample_spread: 0.0,
                noise: 1.0,
                seed,
            };
            let p = DenoiserProposal::new(Arc::clone(model), None, guidance, &[-10.0], &[10.0])
                .unwrap();
            let cfg = MppiConfig {
                samples: 2,
                horizon: 2,
                iterations: levels,
                weighting: WeightingConfig::fixed(1.0),
                ..MppiConfig::default()
            };
            let mut planner = Planner::with_proposal(&cfg, Box::new(p)).unwrap();
            planner
                .optimize(&FnObjective::new(2, |_: &[f64]| 0.0), 0, &mut ())
                .unwrap();
            planner.mean().to_vec()
        })
        .collect()
}

fn mean_var(plans: &[Vec<f64>], a: usize) -> (f64, f64) {
    let nf = plans.len() as f64;
    let mean = plans.iter().map(|p| p[a]).sum::<f64>() / nf;
    let var = plans.iter().map(|p| (p[a] - mean).powi(2)).sum::<f64>() / (nf - 1.0);
    (mean, var)
}

/// Unguided samples of the trained denoiser (the planner with the denoiser as proposal, no
/// guidance, 2000 runs) have the data's control moments as far as the sampler allows: the
/// same sampler with the exact denoiser of the data (same 20 levels) is the reference, since
/// 20 DDPM levels with the posterior variance `β̃` shrink the variance by themselves (measured
/// and printed). Mean within 0.1 of the data's; variance within 15 % of the exact sampler's.
#[test]
fn unguided_samples_of_the_trained_denoiser_match_the_data() {
    let trained: Arc<dyn Denoiser> = gaussian_model();
    let (vp, levels) = trained.schedule();
    let exact: Arc<dyn Denoiser> = Arc::new(
        GaussianDataDenoiser::new(spec(), MEAN.to_vec(), COV.to_vec(), vp, levels).unwrap(),
    );
    let (got, reference) = (
        unguided_controls(&trained, 2000),
        unguided_controls(&exact, 2000),
    );
    for (a, col) in [(0usize, 1usize), (1, 3)] {
        let (mean, var) = mean_var(&got, a);
        let (_, var_exact) = mean_var(&reference, a);
        let data_var = COV[col * 4 + col];
        println!(
            "control {a}: mean {mean:.3} (data {}), variance {var:.3}, exact-denoiser sampler {var_exact:.3}, data {data_var}",
            MEAN[col]
        );
        assert!((mean - MEAN[col]).abs() <= 0.1, "control {a}: mean {mean}");
        assert!(
            (var / var_exact - 1.0).abs() <= 0.15,
            "control {a}: variance {var} vs {var_exact}"
        );
    }
}

/// Saving and loading a checkpoint gives the same predictions bit for bit; training is a
/// function of its seed.
#[test]
fn checkpoints_round_trip_exactly_and_training_is_deterministic() {
    let data = gaussian_dataset(512, 2);
    let small = TrainSettings {
        hidden: 32,
        steps: 60,
        batch: 64,
        ..TrainSettings::default()
    };
    let (a, _) = TrainedDenoiser::train(&data, &small, 20, |_, _| {}).unwrap();
    let (b, _) = TrainedDenoiser::train(&data, &small, 20, |_, _| {}).unwrap();
    let (c, _) =
        TrainedDenoiser::train(&data, &TrainSettings { seed: 1, ..small }, 20, |_, _| {}).unwrap();
    let dir = std::env::temp_dir().join(format!("mppi-learn-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.bpk");
    a.save(&path, "test").unwrap();
    let loaded = TrainedDenoiser::load(&path).unwrap();
    let x = [0.3, -0.1, 0.7, 0.2, 1.0, 0.0, -0.5, 0.4];
    let predict = |m: &TrainedDenoiser| {
        let mut out = [0.0; 8];
        m.predict_batch(&x, 7, &mut out);
        out
    };
    assert_eq!(predict(&a), predict(&loaded), "checkpoint round trip");
    assert_eq!(predict(&a), predict(&b), "same seed, same model");
    assert_ne!(predict(&a), predict(&c), "another seed, another model");
    // a missing or corrupt checkpoint is an error, not a panic
    std::fs::write(&path, b"not a checkpoint").unwrap();
    assert!(TrainedDenoiser::load(&path).is_err());
    assert!(TrainedDenoiser::load(&dir.join("missing.bpk")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A denoiser trained on `task`'s expert windows (CLI defaults, 128 hidden).
fn trained_on(task: &str) -> Arc<dyn Denoiser> {
    let task = mppi_tasks::task_by_name(task).unwrap();
    let data = Dataset::collect(task.as_ref(), &CollectSettings::default(), |_| {}).unwrap();
    let settings = TrainSettings {
        hidden: 128,
        steps: 3000,
        ..TrainSettings::default()
    };
    let (model, report) = TrainedDenoiser::train(&data, &settings, 500, |_, _| {}).unwrap();
    println!(
        "{} windows of {}; loss {:?}",
        data.len(),
        task.name(),
        report.loss_curve
    );
    Arc::new(model)
}

/// A 200-step episode of `task` planned with `model`, guided (MPPI, 64 samples per level,
/// spread `spread`) or not: asserts the task's verdict is `must_succeed` for each.
fn assert_guidance_decides(task: &str, model: &Arc<dyn Denoiser>, spread: f64) {
    let task = mppi_tasks::task_by_name(task).unwrap();
    for (guidance, must_succeed) in [(Guidance::Mppi, true), (Guidance::None, false)] {
        let plan = PlanSettings {
            guidance,
            samples: 64,
            sample_spread: spread,
            ..PlanSettings::default()
        };
        let (ctrl, _) = guided_controller(
            task.as_ref(),
            Arc::clone(model),
            &plan,
            &task.default_config(),
        )
        .unwrap();
        let options = EpisodeOptions {
            steps: 200,
            ..EpisodeOptions::default()
        };
        let episode = run_controller_episode(task.as_ref(), ctrl, &options, &mut ()).unwrap();
        let outcome = task.success(&episode);
        println!(
            "{}, {guidance:?}: cost {:.1}, {}",
            task.name(),
            episode.total_cost(),
            outcome.message
        );
        assert_eq!(
            outcome.success, must_succeed,
            "{guidance:?}: {}",
            outcome.message
        );
    }
}

/// Guided diffusion planning swings the pendulum up in closed loop (seed 0): the denoiser
/// trained on the MPPI expert's windows, MPPI guidance on the real rollouts with 64 samples
/// per level. The data prior alone (no guidance) does not.
#[test]
fn guided_diffusion_planning_swings_the_pendulum_up() {
    assert_guidance_decides("pendulum", &trained_on("pendulum"), 3.0);
}

/// The obstacle is not in the training data: a prior trained on `open_field` (no obstacle)
/// plans on `blocked_field` (a disc on its path). MPPI guidance on the real rollouts steers
/// the prior around the disc to the goal (seed 0); the prior alone does not reach the goal.
#[test]
fn guidance_steers_the_prior_around_an_obstacle_it_has_never_seen() {
    assert_guidance_decides("blocked_field", &trained_on("open_field"), 10.0);
}
