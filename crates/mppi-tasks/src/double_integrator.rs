//! A planar double integrator (point mass) flying from a start to a goal among circular
//! obstacles.
//!
//! State `(px, py, vx, vy)`, control: acceleration `(ax, ay)` with `|ax|, |ay| ≤ A_MAX`.
//! Exact zero-order-hold discretization:
//!
//! ```text
//! a   = clip(u, −A_MAX, A_MAX)             (per axis)
//! p'  = p + v dt + ½ a dt²
//! v'  = v + a dt
//! ```
//! Cost, with `d = |p − g|` the distance to the goal `g`:
//!
//! ```text
//! c = W_GOAL d + W_VEL |v|² / (1 + d²) + W_CTRL |a|² + W_COLLISION · [∃ i: |p − cᵢ| < rᵢ + MARGIN]
//! ```
//! The velocity term only matters near the goal (it makes the mass stop there); the collision
//! term is an indicator over the obstacles inflated by a safety margin.

use mppi::{ProposalConfig, WeightingConfig};
use std::sync::Arc;

use mppi::fastmath::Real;
use mppi::objective::{soa_rows, soa_rows_mut};
use mppi::{Cost, Dynamics, MppiConfig};

use crate::criterion::Criterion;
use crate::navigation::{GoalCriterion, collision_flags, goal_cost, in_collision, with_collision};
use crate::{Circle, ReferenceBand, Scene, Task};

/// Time step in seconds.
pub const DT: f64 = 0.05;
/// Acceleration bound per axis (m/s²).
pub const A_MAX: f64 = 3.0;
/// Start position.
pub const START: (f64, f64) = (0.0, 0.0);
/// Goal position.
pub const GOAL: (f64, f64) = (8.0, 8.0);
/// Radius of the goal region.
pub const GOAL_RADIUS: f64 = 0.3;
/// Largest speed counted as "stopped" at the goal (m/s).
pub const GOAL_SPEED: f64 = 0.3;
/// Weight of the distance to the goal.
pub const W_GOAL: f64 = 1.0;
/// Weight of the squared speed, scaled by `1 / (1 + d²)`.
pub const W_VEL: f64 = 1.0;
/// Weight of the squared acceleration.
pub const W_CTRL: f64 = 0.01;
/// Cost of one step inside an (inflated) obstacle.
pub const W_COLLISION: f64 = 1000.0;
/// Safety margin added to every obstacle radius in the cost.
pub const MARGIN: f64 = 0.15;

/// The obstacles between start and goal.
pub const OBSTACLES: [Circle; 6] = [
    Circle {
        x: 2.0,
        y: 2.2,
        r: 0.8,
    },
    Circle {
        x: 4.2,
        y: 3.8,
        r: 1.0,
    },
    Circle {
        x: 2.2,
        y: 5.2,
        r: 0.8,
    },
    Circle {
        x: 5.6,
        y: 1.8,
        r: 0.8,
    },
    Circle {
        x: 6.2,
        y: 6.0,
        r: 0.9,
    },
    Circle {
        x: 4.0,
        y: 7.2,
        r: 0.7,
    },
];

/// Double-integrator dynamics and the goal/obstacle cost.
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleIntegratorModel {
    /// Goal position.
    pub goal: (f64, f64),
    /// Obstacles (the cost inflates them by [`MARGIN`]).
    pub obstacles: Vec<Circle>,
}

impl Default for DoubleIntegratorModel {
    fn default() -> Self {
        DoubleIntegratorModel {
            goal: GOAL,
            obstacles: OBSTACLES.to_vec(),
        }
    }
}

impl DoubleIntegratorModel {
    /// Every term of the cost but the collision indicator, in the order the cost sums them.
    #[inline(always)]
    fn smooth_cost<R: Real>(&self, px: R, py: R, vx: R, vy: R, ax: R, ay: R) -> R {
        let ax = ax.clamp(R::c(-A_MAX), R::c(A_MAX));
        let ay = ay.clamp(R::c(-A_MAX), R::c(A_MAX));
        goal_cost(self.goal, px, py, vx * vx + vy * vy, W_GOAL, W_VEL)
            + R::c(W_CTRL) * (ax * ax + ay * ay)
    }

    /// The block running cost in `R` (`f64` or `f32`).
    #[inline(always)]
    fn cost_lanes<R: Real>(&self, lanes: usize, x: &[R], u: &[R], out: &mut [R]) {
        let [px, py, vx, vy] = soa_rows(x, lanes);
        let [ux, uy] = soa_rows(u, lanes);
        let out = &mut out[..lanes];
        // out[l] first holds the collision flag (0 or 1)
        collision_flags(&self.obstacles, MARGIN, px, py, out);
        for l in 0..lanes {
            let base = self.smooth_cost(px[l], py[l], vx[l], vy[l], ux[l], uy[l]);
            out[l] = with_collision(base, out[l] > R::c(0.5), W_COLLISION);
        }
    }
}

/// The block step in `R` (`f64` or `f32`), lanes innermost.
#[inline(always)]
fn step_lanes<R: Real>(lanes: usize, x: &[R], u: &[R], next: &mut [R]) {
    let [px, py, vx, vy] = soa_rows(x, lanes);
    let [ux, uy] = soa_rows(u, lanes);
    let [npx, npy, nvx, nvy] = soa_rows_mut(next, lanes);
    let dt = R::c(DT);
    for l in 0..lanes {
        let ax = ux[l].clamp(R::c(-A_MAX), R::c(A_MAX));
        let ay = uy[l].clamp(R::c(-A_MAX), R::c(A_MAX));
        npx[l] = px[l] + vx[l] * dt + R::c(0.5) * ax * dt * dt;
        npy[l] = py[l] + vy[l] * dt + R::c(0.5) * ay * dt * dt;
        nvx[l] = vx[l] + ax * dt;
        nvy[l] = vy[l] + ay * dt;
    }
}

impl Dynamics for DoubleIntegratorModel {
    fn state_dim(&self) -> usize {
        4
    }
    fn control_dim(&self) -> usize {
        2
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let ax = u[0].clamp(-A_MAX, A_MAX);
        let ay = u[1].clamp(-A_MAX, A_MAX);
        next[0] = x[0] + x[2] * DT + 0.5 * ax * DT * DT;
        next[1] = x[1] + x[3] * DT + 0.5 * ay * DT * DT;
        next[2] = x[2] + ax * DT;
        next[3] = x[3] + ay * DT;
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

impl Cost for DoubleIntegratorModel {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        let hit = in_collision(&self.obstacles, MARGIN, x[0], x[1]);
        let base = self.smooth_cost(x[0], x[1], x[2], x[3], u[0], u[1]);
        with_collision(base, hit, W_COLLISION)
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
        self.cost_lanes(lanes, x, u, out);
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
        self.cost_lanes(lanes, x, u, out);
    }
}

/// The double-integrator navigation task.
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleIntegrator {
    start: (f64, f64),
    model: DoubleIntegratorModel,
    name: &'static str,
    description: &'static str,
}

/// The disc that blocks the diagonal in [`DoubleIntegrator::blocked_field`].
pub const BLOCKING_DISC: Circle = Circle {
    x: 4.0,
    y: 4.0,
    r: 1.2,
};

impl Default for DoubleIntegrator {
    /// From [`START`] to [`GOAL`] among [`OBSTACLES`].
    fn default() -> Self {
        DoubleIntegrator::new(START, GOAL, OBSTACLES.to_vec())
    }
}

impl DoubleIntegrator {
    /// The same dynamics, cost terms, controls and success criterion, flying from `start`
    /// (at rest) to `goal` among `obstacles` (see [`crate::two_routes`]).
    #[must_use]
    pub fn new(start: (f64, f64), goal: (f64, f64), obstacles: Vec<Circle>) -> Self {
        DoubleIntegrator {
            start,
            model: DoubleIntegratorModel { goal, obstacles },
            name: "double_integrator",
            description: "2-D point mass (|a| <= 3 per axis, dt 0.05) from (0,0) to (8,8) among 6 discs",
        }
    }

    /// `open_field`: the same flight with no obstacle (where a guided-diffusion prior is
    /// trained).
    #[must_use]
    pub fn open_field() -> Self {
        DoubleIntegrator {
            name: "open_field",
            description: "2-D point mass from (0,0) to (8,8), no obstacles (training ground for blocked_field)",
            ..DoubleIntegrator::new(START, GOAL, Vec::new())
        }
    }

    /// `blocked_field`: the open field with one disc on the diagonal ([`BLOCKING_DISC`]), an
    /// obstacle a prior trained on `open_field` has never seen.
    #[must_use]
    pub fn blocked_field() -> Self {
        DoubleIntegrator {
            name: "blocked_field",
            description: "2-D point mass from (0,0) to (8,8) with one disc of radius 1.2 on the diagonal",
            ..DoubleIntegrator::new(START, GOAL, vec![BLOCKING_DISC])
        }
    }
}

impl Task for DoubleIntegrator {
    fn name(&self) -> &'static str {
        self.name
    }
    fn description(&self) -> &'static str {
        self.description
    }
    fn state_names(&self) -> &'static [&'static str] {
        &["px", "py", "vx", "vy"]
    }
    fn control_names(&self) -> &'static [&'static str] {
        &["ax", "ay"]
    }
    fn state_units(&self) -> &'static [&'static str] {
        &["m", "m", "m/s", "m/s"]
    }
    fn control_units(&self) -> &'static [&'static str] {
        &["m/s²", "m/s²"]
    }
    /// The goal region's extent on each coordinate (success: within 0.3 m of the goal).
    fn reference_bands(&self) -> Vec<ReferenceBand> {
        let (gx, gy) = self.model.goal;
        vec![
            ReferenceBand::new(0, gx - GOAL_RADIUS, gx + GOAL_RADIUS, "goal ± 0.3 m"),
            ReferenceBand::new(1, gy - GOAL_RADIUS, gy + GOAL_RADIUS, "goal ± 0.3 m"),
        ]
    }
    fn dt(&self) -> f64 {
        DT
    }
    fn default_config(&self) -> MppiConfig {
        MppiConfig {
            samples: 512,
            horizon: 40,
            iterations: 1,
            u_min: Some(vec![-A_MAX]),
            u_max: Some(vec![A_MAX]),
            proposal: ProposalConfig::gaussian(&[2.0]),
            weighting: WeightingConfig::fixed(1.0),
            ..MppiConfig::default()
        }
    }
    fn default_steps(&self) -> usize {
        200
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![self.start.0, self.start.1, 0.0, 0.0]
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(self.model.clone())
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Arc::new(self.model.clone())
    }
    /// The final state is within [`GOAL_RADIUS`] of the goal with speed below [`GOAL_SPEED`],
    /// and no straight segment between consecutive states touches an obstacle (uninflated).
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        Box::new(GoalCriterion::new(
            &self.model.obstacles,
            self.model.goal,
            GOAL_RADIUS,
            GOAL_SPEED,
            |x: &[f64]| x[2].hypot(x[3]),
            self.dt(),
        ))
    }
    fn scene(&self) -> Option<Scene> {
        Some(Scene {
            position: (0, 1),
            obstacles: self.model.obstacles.clone(),
            goal: Some(Circle {
                x: self.model.goal.0,
                y: self.model.goal.1,
                r: GOAL_RADIUS,
            }),
            track: None,
            extent: ((-1.0, 9.5), (-1.0, 9.5)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::assert_block_matches_scalar;
    use mppi::BLOCK_LANES;

    #[test]
    fn step_matches_hand_computation() {
        let m = DoubleIntegratorModel::default();
        let mut next = [0.0; 4];
        m.step(&[1.0, 2.0, 0.5, -1.0], &[2.0, -10.0], &mut next);
        // ay clipped to -3; dt = 0.05
        assert_eq!(next[0], 1.0 + 0.5 * 0.05 + 0.5 * 2.0 * 0.0025);
        assert_eq!(next[1], 2.0 - 0.05 - 0.5 * 3.0 * 0.0025);
        assert_eq!(next[2], 0.5 + 0.1);
        assert_eq!(next[3], -1.0 - 0.15);
        assert!((next[0] - 1.0275).abs() < 1e-15 && (next[1] - 1.946_25).abs() < 1e-15);
    }

    #[test]
    fn cost_terms() {
        let m = DoubleIntegratorModel::default();
        // at the goal, at rest, no control: zero
        assert_eq!(m.running(&[8.0, 8.0, 0.0, 0.0], &[0.0, 0.0], 0), 0.0);
        // 3-4-5 away (clear of the obstacles), speed 1, a = (1, 0): 5 + 1/26 + 0.01
        let c = m.running(&[5.0, 12.0, 1.0, 0.0], &[1.0, 0.0], 0);
        assert!((c - (5.0 + 1.0 / 26.0 + 0.01)).abs() < 1e-12);
        // inside the first obstacle: collision cost
        assert!(m.running(&[2.0, 2.2, 0.0, 0.0], &[0.0, 0.0], 0) > W_COLLISION);
    }

    #[test]
    fn block_equals_scalar() {
        let m = DoubleIntegratorModel::default();
        let states = [(-1.0, 9.0), (-1.0, 9.0), (-3.0, 3.0), (-3.0, 3.0)];
        let controls = [(-5.0, 5.0), (-5.0, 5.0)];
        assert_block_matches_scalar(&m, &states, &controls, &[1, 5, BLOCK_LANES], 42);
    }

    #[test]
    fn success_criterion() {
        let task = DoubleIntegrator::default();
        let ep = |states: Vec<Vec<f64>>| crate::judge(&task, &states, &[]);
        // straight through the obstacle at (4.2, 3.8)
        let bad = ep(vec![vec![0.0, 0.0, 0.0, 0.0], vec![8.0, 8.0, 0.0, 0.0]]);
        assert!(!bad.success, "{}", bad.message);
        // around the obstacles, along x = 8 then up
        let good = ep(vec![
            vec![0.0, 0.0, 0.0, 0.0],
            vec![0.0, -0.5, 0.0, 0.0],
            vec![8.0, -0.5, 0.0, 0.0],
            vec![8.0, 8.0, 0.1, 0.0],
        ]);
        assert!(good.success, "{}", good.message);
        assert!(
            good.message.contains("first at goal at t = 0.15 s"),
            "{}",
            good.message
        );
        assert!(!ep(vec![]).success);
    }
}
