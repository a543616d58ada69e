//! A sampling distribution written outside the crate, with only its public API, checked by
//! the conformance suite and run in closed loop.
//!
//! `TaperedGaussian` is a Gaussian over plans whose standard deviation shrinks along the
//! horizon, `σ_t = σ_0 · r^t`: the near controls, which are applied soon, are explored widely;
//! the far ones, which will be replanned many times before they are applied, less. Its M-step is
//! the weighted mean (the spread stays fixed), so it is classic MPPI with a tapered
//! covariance. It also follows a schedule's spread, so annealing works with it.
//!
//! The example checks it with `mppi::testing::check_proposal`, checks the model with
//! `mppi::testing::check_dynamics`, then drives a double integrator from rest at 0 to rest at
//! 1 with `Controller::with_proposal`.
//!
//! Run it with `cargo run -p mppi --example custom_proposal`.

use mppi::proposal::{
    Context, Proposal, clamp_plan, clamped_zero_row, downcast, fill_rows, shift_rows, weighted_sum,
    weighted_sum_blocks,
};
use mppi::rng::{BlockRng, SampleRng};
use mppi::testing::{check_dynamics, check_proposal};
use mppi::{
    Controller, Cost, Dynamics, MppiConfig, MppiError, ProposalConfig, RolloutObjective, ShiftFill,
    WeightingConfig,
};

/// A Gaussian over plans of `T` steps of `m` controls with a per-time-step standard deviation
/// `σ_t` (the same for every control of the step) and a learned mean, clamped into a box.
#[derive(Debug, Clone)]
struct TaperedGaussian {
    m: usize,
    /// `σ_t`, `T` entries.
    std: Vec<f64>,
    /// The schedule's multipliers `s_t` (all 1 without annealing), `T` entries.
    spread: Vec<f64>,
    /// The mean `μ`, the parameters: `T·m` entries.
    mean: Vec<f64>,
    u_min: Vec<f64>,
    u_max: Vec<f64>,
    /// The plan row of a fresh distribution: 0 clamped into the box.
    zero_row: Vec<f64>,
}

impl TaperedGaussian {
    /// `σ_t = sigma0 · ratio^t` over `horizon` steps of `m` controls in `[u_min, u_max]`.
    fn new(
        horizon: usize,
        m: usize,
        sigma0: f64,
        ratio: f64,
        u_min: &[f64],
        u_max: &[f64],
    ) -> Result<Self, MppiError> {
        if !(sigma0.is_finite() && sigma0 > 0.0 && ratio.is_finite() && ratio > 0.0) {
            return Err(MppiError::InvalidConfig {
                field: "proposal",
                reason: format!("sigma0 and ratio must be finite and > 0, got {sigma0}, {ratio}"),
            });
        }
        for (what, bounds) in [("u_min", u_min), ("u_max", u_max)] {
            if bounds.len() != m {
                return Err(MppiError::DimensionMismatch {
                    what,
                    expected: m,
                    got: bounds.len(),
                });
            }
        }
        let zero_row = clamped_zero_row(u_min, u_max);
        let mut mean = vec![0.0; horizon * m];
        fill_rows(&mut mean, &zero_row);
        Ok(TaperedGaussian {
            m,
            std: (0..horizon)
                .map(|t| sigma0 * ratio.powi(t as i32))
                .collect(),
            spread: vec![1.0; horizon],
            mean,
            u_min: u_min.to_vec(),
            u_max: u_max.to_vec(),
            zero_row,
        })
    }

    /// The standard deviation of time step `t` this iteration, `s_t σ_t`. `sample` and
    /// `sample_block` both use it, so they compute the same numbers bit for bit.
    fn scale(&self, t: usize) -> f64 {
        self.std[t] * self.spread[t]
    }

    /// Replace the mean by `theta` clamped into the box, after checking it.
    fn set_mean(&mut self, what: &'static str, theta: &[f64]) -> Result<(), MppiError> {
        if theta.len() != self.mean.len() {
            return Err(MppiError::DimensionMismatch {
                what,
                expected: self.mean.len(),
                got: theta.len(),
            });
        }
        if let Some(index) = theta.iter().position(|v| !v.is_finite()) {
            return Err(MppiError::NonFinite { what, index });
        }
        self.mean.copy_from_slice(theta);
        clamp_plan(&mut self.mean, &self.u_min, &self.u_max);
        Ok(())
    }
}

impl Proposal for TaperedGaussian {
    fn name(&self) -> &'static str {
        "tapered_gaussian"
    }
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn control_dim(&self) -> usize {
        self.m
    }
    fn params(&self) -> &[f64] {
        &self.mean
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        self.set_mean("tapered_gaussian parameters", theta)
    }
    fn reset(&mut self) {
        fill_rows(&mut self.mean, &self.zero_row);
    }
    fn shift(&mut self, fill: ShiftFill) {
        shift_rows(&mut self.mean, self.m, fill, &self.zero_row);
    }
    fn plan(&self, out: &mut [f64]) {
        out.copy_from_slice(&self.mean);
    }
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        self.set_mean("plan", plan)
    }
    /// Follow the schedule's spread (any finite `s_t > 0`); without one, the own spread.
    fn prepare(&mut self, ctx: &Context<'_>) -> Result<(), MppiError> {
        match ctx.spread {
            Some(s) => {
                if s.len() != self.spread.len() {
                    return Err(MppiError::DimensionMismatch {
                        what: "schedule spread",
                        expected: self.spread.len(),
                        got: s.len(),
                    });
                }
                if let Some(t) = s.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(MppiError::InvalidConfig {
                        field: "schedule",
                        reason: format!("spread of step {t} must be finite and > 0, got {}", s[t]),
                    });
                }
                self.spread.copy_from_slice(s);
            }
            None => self.spread.fill(1.0),
        }
        Ok(())
    }
    /// `u_i = clamp(μ_i + s_t σ_t z_i)`, one normal per entry in order.
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
        for (i, v) in u.iter_mut().enumerate() {
            let (t, j) = (i / self.m, i % self.m);
            let z = rng.normal();
            *v = (z * self.scale(t) + self.mean[i]).clamp(self.u_min[j], self.u_max[j]);
        }
    }
    /// The same draws across the lanes of a block: `normal_rows` gives row `i` of every lane
    /// from its stream in the order `sample` draws them, then the same arithmetic per row.
    fn sample_block(&self, rng: &mut BlockRng, _rows: &mut [f64], soa: &mut [f64]) -> bool {
        let lanes = rng.lanes();
        rng.normal_rows(soa);
        for (i, row) in soa.chunks_exact_mut(lanes).enumerate() {
            let (t, j) = (i / self.m, i % self.m);
            let (s, mu, lo, hi) = (self.scale(t), self.mean[i], self.u_min[j], self.u_max[j]);
            for v in row {
                *v = (*v * s + mu).clamp(lo, hi);
            }
        }
        false // only the structure-of-arrays layout was written
    }
    fn fits_blocks(&self) -> bool {
        true
    }
    /// The weighted mean over samples in block layout (bit-identical to `fit`).
    fn fit_blocks(&mut self, blocks: &[f64], weights: &[f64], out: &mut [f64]) -> bool {
        weighted_sum_blocks(blocks, weights, out);
        true
    }
    /// The M-step with a fixed spread: `μ⁺ = Σ_i w_i U_i`.
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
        weighted_sum(samples, weights, out);
    }
    fn log_prob(&self, u: &[f64]) -> Option<f64> {
        let half_log_two_pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let mut total = 0.0;
        for (i, (ui, mu)) in u.iter().zip(&self.mean).enumerate() {
            let s = self.scale(i / self.m);
            let z = (ui - mu) / s;
            total -= half_log_two_pi + s.ln() + 0.5 * z * z;
        }
        Some(total)
    }
    /// Same spreads: `½ Σ_i ((μ_a − μ_b) / s_t σ_t)²`.
    fn kl(&self, other: &dyn Proposal) -> Option<f64> {
        let o = downcast::<TaperedGaussian>(other)?;
        if o.std != self.std || o.spread != self.spread || o.mean.len() != self.mean.len() {
            return None;
        }
        let mut total = 0.0;
        for (i, (a, b)) in self.mean.iter().zip(&o.mean).enumerate() {
            let z = (a - b) / self.scale(i / self.m);
            total += 0.5 * z * z;
        }
        Some(total)
    }
    fn clone_box(&self) -> Box<dyn Proposal> {
        Box::new(self.clone())
    }
}

/// A double integrator: state (position, velocity), control = acceleration.
struct DoubleIntegrator;

const DT: f64 = 0.1;

impl Dynamics for DoubleIntegrator {
    fn state_dim(&self) -> usize {
        2
    }
    fn control_dim(&self) -> usize {
        1
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        next[1] = x[1] + DT * u[0];
        next[0] = x[0] + DT * next[1];
    }
}

/// Come to rest at position 1.
struct RestAtOne;

impl Cost for RestAtOne {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        (x[0] - 1.0).powi(2) + 0.1 * x[1] * x[1] + 0.01 * u[0] * u[0]
    }
    fn terminal(&self, x: &[f64]) -> f64 {
        10.0 * ((x[0] - 1.0).powi(2) + x[1] * x[1])
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (horizon, bound) = (20, 3.0);
    let proposal = TaperedGaussian::new(horizon, 1, 1.0, 0.9, &[-bound], &[bound])?;

    // the conformance suite: what the planner relies on, beyond what the compiler checks
    check_proposal(&proposal, 1)?;
    check_proposal(&proposal, 2)?;
    println!(
        "{}: passes mppi::testing::check_proposal (σ_t from {:.2} down to {:.2})",
        proposal.name(),
        proposal.std[0],
        proposal.std[horizon - 1]
    );
    let states: Vec<f64> = (0..80).map(|i| (0.37 * i as f64).sin() * 2.0).collect();
    let controls: Vec<f64> = (0..40).map(|i| (0.91 * i as f64).cos() * bound).collect();
    check_dynamics(&DoubleIntegrator, &RestAtOne, &states, &controls, 0.0)?;
    println!("double integrator: passes mppi::testing::check_dynamics (bit for bit)");

    // closed loop: the config sets everything but the proposal
    let config = MppiConfig {
        samples: 256,
        horizon,
        iterations: 2,
        seed: 3,
        u_min: Some(vec![-bound]),
        u_max: Some(vec![bound]),
        proposal: ProposalConfig::gaussian(&[1.0]),
        weighting: WeightingConfig::fixed(0.2),
        ..MppiConfig::default()
    };
    let objective = RolloutObjective::new(DoubleIntegrator, RestAtOne, horizon, 1.0)?;
    let mut controller = Controller::with_proposal(objective, Box::new(proposal), &config)?;
    assert_eq!(controller.planner().proposal().name(), "tapered_gaussian");
    let mut x = [0.0, 0.0];
    for step in 0..60 {
        let u = controller.act(&x)?[0];
        let mut next = [0.0; 2];
        DoubleIntegrator.step(&x, &[u], &mut next);
        x = next;
        if step % 10 == 9 {
            println!(
                "t = {:.1} s: position {:+.3}, velocity {:+.3}, control {:+.3}, ESS {:.1}",
                (step + 1) as f64 * DT,
                x[0],
                x[1],
                u,
                controller.report().last().weights.ess
            );
        }
    }
    assert!(
        (x[0] - 1.0).abs() < 0.05 && x[1].abs() < 0.1,
        "did not come to rest at 1: position {}, velocity {}",
        x[0],
        x[1]
    );
    println!(
        "reached the goal: position {:.3}, velocity {:+.3}",
        x[0], x[1]
    );
    Ok(())
}
