//! Pendulum swing-up with exactly gymnasium `Pendulum-v1`'s dynamics and cost.
//!
//! State `(θ, θ̇)` with `θ = 0` upright; control: torque `u ∈ [−2, 2]`.
//!
//! ```text
//! θ̇' = clip(θ̇ + (3g/(2l) sin θ + 3/(m l²) u) dt, −8, 8)
//! θ'  = θ + θ̇' dt
//! c   = wrap(θ)² + 0.1 θ̇² + 0.001 u²
//! ```
//! with `g = 10`, `m = 1`, `l = 1`, `dt = 0.05`.

use mppi::{ProposalConfig, WeightingConfig};
use std::sync::Arc;

use mppi::fastmath::{Real, sin};
use mppi::objective::{soa_rows, soa_rows_mut};
use mppi::{Cost, Dynamics, MppiConfig};

use crate::criterion::{Criterion, Tail};
use crate::{BodySegment, Outcome, ReferenceBand, Task, wrap_angle};

/// Gravity of Pendulum-v1.
pub const G: f64 = 10.0;
/// Mass.
pub const M: f64 = 1.0;
/// Length.
pub const L: f64 = 1.0;
/// Time step.
pub const DT: f64 = 0.05;
/// Torque limit.
pub const MAX_TORQUE: f64 = 2.0;
/// Speed limit.
pub const MAX_SPEED: f64 = 8.0;

/// Pendulum-v1 dynamics (also its cost).
#[derive(Debug, Clone, Copy, Default)]
pub struct PendulumModel;

impl Dynamics for PendulumModel {
    fn state_dim(&self) -> usize {
        2
    }
    fn control_dim(&self) -> usize {
        1
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let u = u[0].clamp(-MAX_TORQUE, MAX_TORQUE);
        let thdot = (x[1] + (3.0 * G / (2.0 * L) * sin(x[0]) + 3.0 / (M * L * L) * u) * DT)
            .clamp(-MAX_SPEED, MAX_SPEED);
        next[0] = x[0] + thdot * DT;
        next[1] = thdot;
    }
    fn step_block(&self, lanes: usize, x: &[f64], u: &[f64], next: &mut [f64], _tmp: &mut [f64]) {
        step_lanes(lanes, x, u, next);
    }
    fn step_block_f32(
        &self,
        lanes: usize,
        x: &[f32],
        u: &[f32],
        next: &mut [f32],
        _tmp: &mut [f64],
    ) {
        step_lanes(lanes, x, u, next);
    }
}

/// The block step in `R` (`f64` or `f32`), lanes innermost.
#[inline(always)]
fn step_lanes<R: Real>(lanes: usize, x: &[R], u: &[R], next: &mut [R]) {
    // every slice exactly `lanes` long, so the loop has no bounds checks and vectorizes
    let [th, thd] = soa_rows(x, lanes);
    let [u] = soa_rows(u, lanes);
    let [nth, nthd] = soa_rows_mut(next, lanes);
    for l in 0..lanes {
        let uc = u[l].clamp(R::c(-MAX_TORQUE), R::c(MAX_TORQUE));
        let v = (thd[l]
            + (R::c(3.0 * G / (2.0 * L)) * th[l].sin() + R::c(3.0 / (M * L * L)) * uc) * R::c(DT))
        .clamp(R::c(-MAX_SPEED), R::c(MAX_SPEED));
        nth[l] = th[l] + v * R::c(DT);
        nthd[l] = v;
    }
}

/// The block running cost in `R`.
#[inline(always)]
fn cost_lanes<R: Real>(lanes: usize, x: &[R], u: &[R], out: &mut [R]) {
    let [th, thd] = soa_rows(x, lanes);
    let [u] = soa_rows(u, lanes);
    let [out] = soa_rows_mut(out, lanes);
    for l in 0..lanes {
        let uc = u[l].clamp(R::c(-MAX_TORQUE), R::c(MAX_TORQUE));
        let a = th[l].wrap_angle();
        out[l] = a * a + R::c(0.1) * thd[l] * thd[l] + R::c(0.001) * uc * uc;
    }
}

impl Cost for PendulumModel {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        let u = u[0].clamp(-MAX_TORQUE, MAX_TORQUE);
        let th = wrap_angle(x[0]);
        th * th + 0.1 * x[1] * x[1] + 0.001 * u * u
    }
    fn running_block(
        &self,
        lanes: usize,
        _t: usize,
        x: &[f64],
        u: &[f64],
        out: &mut [f64],
        _tmp: &mut [f64],
    ) {
        cost_lanes(lanes, x, u, out);
    }
    fn running_block_f32(
        &self,
        lanes: usize,
        _t: usize,
        x: &[f32],
        u: &[f32],
        out: &mut [f32],
        _tmp: &mut [f64],
    ) {
        cost_lanes(lanes, x, u, out);
    }
}

/// The pendulum swing-up task.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pendulum;

impl Task for Pendulum {
    fn name(&self) -> &'static str {
        "pendulum"
    }
    fn description(&self) -> &'static str {
        "gymnasium Pendulum-v1 swing-up from hanging down (|u| <= 2, dt 0.05)"
    }
    fn state_names(&self) -> &'static [&'static str] {
        &["theta", "theta_dot"]
    }
    fn control_names(&self) -> &'static [&'static str] {
        &["torque"]
    }
    fn state_units(&self) -> &'static [&'static str] {
        &["rad", "rad/s"]
    }
    fn control_units(&self) -> &'static [&'static str] {
        &["N·m"]
    }
    /// The success criterion's bands: `|θ| < 0.1` rad (wrapped) and `|θ̇| < 0.5` rad/s.
    fn reference_bands(&self) -> Vec<ReferenceBand> {
        vec![
            ReferenceBand::new(0, -0.1, 0.1, "success: |θ| < 0.1 rad (wrapped)"),
            ReferenceBand::new(1, -0.5, 0.5, "success: |dθ/dt| < 0.5 rad/s"),
        ]
    }
    /// The rod from the pivot at the origin; `θ = 0` points up, positive `θ` turns
    /// counter-clockwise (gymnasium's rendering).
    fn body_segments(&self, x: &[f64]) -> Vec<BodySegment> {
        let th = x.first().copied().unwrap_or(f64::NAN);
        vec![BodySegment::new(
            [0.0, 0.0],
            [-L * th.sin(), L * th.cos()],
            0.05,
        )]
    }
    fn dt(&self) -> f64 {
        DT
    }
    fn default_config(&self) -> MppiConfig {
        MppiConfig {
            samples: 1000,
            horizon: 30,
            iterations: 1,
            u_min: Some(vec![-MAX_TORQUE]),
            u_max: Some(vec![MAX_TORQUE]),
            proposal: ProposalConfig::gaussian(&[1.0]),
            weighting: WeightingConfig::fixed(1.0),
            ..MppiConfig::default()
        }
    }
    fn default_steps(&self) -> usize {
        200
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![std::f64::consts::PI, 0.0]
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(PendulumModel)
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Arc::new(PendulumModel)
    }
    /// Upright (`|θ| < 0.1`, `|θ̇| < 0.5`) for the last 50 steps.
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        Box::new(Upright {
            seen: 0,
            last: Tail::new(SUCCESS_STEPS),
        })
    }
}

/// Success: length of the final stretch in states.
const SUCCESS_STEPS: usize = 50;

/// The pendulum's criterion: `(|θ|, |θ̇|)` of the last [`SUCCESS_STEPS`] states.
struct Upright {
    seen: usize,
    last: Tail<(f64, f64)>,
}

impl Criterion for Upright {
    fn observe(&mut self, _step: usize, x: &[f64], _u: Option<&[f64]>) {
        self.seen += 1;
        self.last.push((wrap_angle(x[0]).abs(), x[1].abs()));
    }
    fn outcome(&self) -> Outcome {
        let tail = self.last.len();
        let worst_angle = self.last.iter().map(|p| p.0).fold(0.0, f64::max);
        let worst_speed = self.last.iter().map(|p| p.1).fold(0.0, f64::max);
        let success = self.seen > SUCCESS_STEPS && worst_angle < 0.1 && worst_speed < 0.5;
        Outcome {
            success,
            message: format!(
                "last {tail} states: max |angle| {worst_angle:.4} (< 0.1), max |speed| {worst_speed:.4} (< 0.5)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::assert_block_matches_scalar;

    #[test]
    fn block_methods_equal_scalar_ones() {
        // speeds beyond MAX_SPEED and torques beyond MAX_TORQUE exercise both clamps
        let states = [(-7.0, 7.0), (-10.0, 10.0)];
        assert_block_matches_scalar(&PendulumModel, &states, &[(-3.0, 3.0)], &[1, 5, 32], 5);
    }
}
