//! A schedule of your own: anneal the spread geometrically over the iterations of a step,
//! and see it escape a local minimum that plain MPPI cannot leave.
//!
//! The objective is the 1-D double well `J(u) = (u² − 1)² + 0.3 u`: a shallow minimum near
//! `u = +0.96` (`J ≈ 0.29`) and the global one near `u = −1.04` (`J ≈ −0.31`), with a barrier
//! of height about 1 at `u ≈ 0.08` between them. Both runs start at `u = +1`, with `λ = 0.1`,
//! `N = 256` samples and 20 EM iterations:
//!
//! - constant schedule, `σ = 0.1`: the samples never reach the barrier (it is 9 standard
//!   deviations away), so EM converges to the shallow minimum (docs/theory.md: EM is a local
//!   method; it climbs the smoothed likelihood from where it starts);
//! - annealed, `σ_k = 2 · (0.05 / 2)^(k / 19)` from 2 down to 0.05: the first iterations see
//!   both wells at once, the weights prefer the deep one by about `exp(0.6 / λ) ≈ 400`, and
//!   the shrinking spread then refines inside it.
//!
//! Over 50 seeds the theory predicts roughly 0 / 50 against 50 / 50 in the global basin
//! (`u < 0`).
//!
//! Run it with `cargo run -p mppi --example annealing_schedule`.

use mppi::{
    Annealing, FnObjective, MppiConfig, MppiError, Planner, ProposalConfig, Schedule, Stages,
    WeightingConfig,
};

/// The spread multiplier goes geometrically from `from` at the first iteration of a step to
/// `to` at its last, the same at every time step; the temperature is left alone.
#[derive(Debug, Clone, Copy)]
struct Geometric {
    from: f64,
    to: f64,
}

impl Geometric {
    /// The multiplier at iteration `k` of `iterations`.
    fn at(&self, k: u64, iterations: u64) -> f64 {
        let progress = if iterations > 1 {
            k as f64 / (iterations - 1) as f64
        } else {
            1.0
        };
        self.from * (self.to / self.from).powf(progress)
    }
}

impl Schedule for Geometric {
    fn before_iteration(
        &mut self,
        _step: u64,
        iteration: u64,
        iterations: u64,
        spread: &mut [f64],
    ) -> Annealing {
        spread.fill(self.at(iteration, iterations));
        Annealing {
            scaled: true,
            ..Annealing::NONE
        }
    }
}

/// `J(u) = (u² − 1)² + 0.3 u`.
fn double_well(u: &[f64]) -> f64 {
    (u[0] * u[0] - 1.0).powi(2) + 0.3 * u[0]
}

const ITERATIONS: usize = 20;
const SEEDS: u64 = 50;

/// The final `u` of 20 iterations from `u = +1` with seed `seed`; with `schedule` the
/// proposal's `σ = 1` is scaled by it, without it `σ = 0.1` throughout.
fn run(seed: u64, schedule: Option<Geometric>) -> Result<f64, MppiError> {
    let sigma = if schedule.is_some() { 1.0 } else { 0.1 };
    let config = MppiConfig {
        samples: 256,
        horizon: 1,
        iterations: ITERATIONS,
        seed,
        proposal: ProposalConfig::gaussian(&[sigma]),
        weighting: WeightingConfig::fixed(0.1),
        ..MppiConfig::default()
    };
    let mut stages = Stages::from_config(&config, 1)?;
    if let Some(s) = schedule {
        stages.schedule = Box::new(s);
    }
    let mut planner = Planner::with_stages(&config, stages)?;
    planner.set_mean(&[1.0])?;
    planner.optimize(&FnObjective::new(1, double_well), 0, &mut ())?;
    Ok(planner.mean()[0])
}

fn main() -> Result<(), MppiError> {
    let annealing = Geometric {
        from: 2.0,
        to: 0.05,
    };
    let n = ITERATIONS as u64;
    println!(
        "annealed spread per iteration: {:.3} (k = 0), {:.3} (k = 5), {:.3} (k = 10), {:.3} (k = 19)",
        annealing.at(0, n),
        annealing.at(5, n),
        annealing.at(10, n),
        annealing.at(19, n)
    );
    let (mut constant_global, mut annealed_global) = (0, 0);
    let (mut constant_sum, mut annealed_sum) = (0.0, 0.0);
    for seed in 0..SEEDS {
        let c = run(seed, None)?;
        let a = run(seed, Some(annealing))?;
        constant_global += usize::from(c < 0.0);
        annealed_global += usize::from(a < 0.0);
        constant_sum += c;
        annealed_sum += a;
    }
    let seeds = SEEDS as f64;
    println!(
        "constant σ = 0.1:        {constant_global:2} / {SEEDS} runs end in the global basin (mean final u {:+.3})",
        constant_sum / seeds
    );
    println!(
        "annealed σ 2.0 -> 0.05:  {annealed_global:2} / {SEEDS} runs end in the global basin (mean final u {:+.3})",
        annealed_sum / seeds
    );
    assert!(
        annealed_global >= 40 && constant_global <= 5,
        "annealing should win clearly: {annealed_global} vs {constant_global} of {SEEDS}"
    );
    Ok(())
}
