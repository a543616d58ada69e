//! A unicycle (car-like robot with speed state) driving to a goal among circular obstacles.
//!
//! State `(x, y, θ, v)`, control `(a, ω)`: forward acceleration `|a| ≤ A_MAX` and turn rate
//! `|ω| ≤ OMEGA_MAX`. Explicit Euler with step `dt`:
//!
//! ```text
//! x' = x + v cos θ dt
//! y' = y + v sin θ dt
//! θ' = θ + ω dt
//! v' = clip(v + a dt, V_MIN, V_MAX)
//! ```
//! (`a` and `ω` are clipped to their bounds first). Cost, with `d = |(x, y) − g|`:
//!
//! ```text
//! c = W_GOAL d + W_VEL v² / (1 + d²) + W_ACC a² + W_TURN ω² + W_COLLISION · [∃ i: |p − cᵢ| < rᵢ + MARGIN]
//! ```

use mppi::{ProposalConfig, WeightingConfig};
use std::sync::Arc;

use mppi::fastmath::{Real, sin_cos};
use mppi::objective::{soa_rows, soa_rows_mut};
use mppi::{Cost, Dynamics, MppiConfig};

use crate::criterion::Criterion;
use crate::navigation::{GoalCriterion, collision_flags, goal_cost, in_collision, with_collision};
use crate::{Circle, ReferenceBand, Scene, Task};

/// Time step in seconds.
pub const DT: f64 = 0.05;
/// Acceleration bound (m/s²).
pub const A_MAX: f64 = 2.0;
/// Turn-rate bound (rad/s).
pub const OMEGA_MAX: f64 = 2.0;
/// Lowest speed (reverse), m/s.
pub const V_MIN: f64 = -1.0;
/// Highest speed, m/s.
pub const V_MAX: f64 = 2.0;
/// Start pose `(x, y, θ)`.
pub const START: (f64, f64, f64) = (0.0, 0.0, 0.0);
/// Goal position.
pub const GOAL: (f64, f64) = (9.0, 6.0);
/// Radius of the goal region.
pub const GOAL_RADIUS: f64 = 0.3;
/// Largest speed counted as "stopped" at the goal (m/s).
pub const GOAL_SPEED: f64 = 0.3;
/// Weight of the distance to the goal.
pub const W_GOAL: f64 = 1.0;
/// Weight of the squared speed, scaled by `1 / (1 + d²)`.
pub const W_VEL: f64 = 1.0;
/// Weight of the squared acceleration.
pub const W_ACC: f64 = 0.01;
/// Weight of the squared turn rate.
pub const W_TURN: f64 = 0.01;
/// Cost of one step inside an (inflated) obstacle.
pub const W_COLLISION: f64 = 1000.0;
/// Safety margin added to every obstacle radius in the cost.
pub const MARGIN: f64 = 0.15;

/// The obstacles between start and goal.
pub const OBSTACLES: [Circle; 6] = [
    Circle {
        x: 2.5,
        y: 0.3,
        r: 0.8,
    },
    Circle {
        x: 4.0,
        y: 3.0,
        r: 1.0,
    },
    Circle {
        x: 6.5,
        y: 1.5,
        r: 0.9,
    },
    Circle {
        x: 6.5,
        y: 4.8,
        r: 0.8,
    },
    Circle {
        x: 2.0,
        y: 4.5,
        r: 0.7,
    },
    Circle {
        x: 8.8,
        y: 3.6,
        r: 0.6,
    },
];

/// Unicycle dynamics and the goal/obstacle cost.
#[derive(Debug, Clone, PartialEq)]
pub struct UnicycleModel {
    /// Goal position.
    pub goal: (f64, f64),
    /// Obstacles (the cost inflates them by [`MARGIN`]).
    pub obstacles: Vec<Circle>,
}

impl Default for UnicycleModel {
    fn default() -> Self {
        UnicycleModel {
            goal: GOAL,
            obstacles: OBSTACLES.to_vec(),
        }
    }
}

impl UnicycleModel {
    /// Every term of the cost but the collision indicator, in the order the cost sums them.
    #[inline(always)]
    fn smooth_cost<R: Real>(&self, px: R, py: R, v: R, a: R, w: R) -> R {
        let a = a.clamp(R::c(-A_MAX), R::c(A_MAX));
        let w = w.clamp(R::c(-OMEGA_MAX), R::c(OMEGA_MAX));
        goal_cost(self.goal, px, py, v * v, W_GOAL, W_VEL)
            + R::c(W_ACC) * a * a
            + R::c(W_TURN) * w * w
    }

    /// The block running cost in `R` (`f64` or `f32`).
    #[inline(always)]
    fn cost_lanes<R: Real>(&self, lanes: usize, x: &[R], u: &[R], out: &mut [R]) {
        let [px, py, _, v] = soa_rows(x, lanes);
        let [ua, uw] = soa_rows(u, lanes);
        let out = &mut out[..lanes];
        // out[l] first holds the collision flag (0 or 1)
        collision_flags(&self.obstacles, MARGIN, px, py, out);
        for l in 0..lanes {
            let base = self.smooth_cost(px[l], py[l], v[l], ua[l], uw[l]);
            out[l] = with_collision(base, out[l] > R::c(0.5), W_COLLISION);
        }
    }
}

/// The block step in `R` (`f64` or `f32`), lanes innermost.
#[inline(always)]
fn step_lanes<R: Real>(lanes: usize, x: &[R], u: &[R], next: &mut [R]) {
    let [px, py, th, v] = soa_rows(x, lanes);
    let [ua, uw] = soa_rows(u, lanes);
    let [npx, npy, nth, nv] = soa_rows_mut(next, lanes);
    let dt = R::c(DT);
    for l in 0..lanes {
        let a = ua[l].clamp(R::c(-A_MAX), R::c(A_MAX));
        let w = uw[l].clamp(R::c(-OMEGA_MAX), R::c(OMEGA_MAX));
        let (s, c) = th[l].sin_cos();
        npx[l] = px[l] + v[l] * c * dt;
        npy[l] = py[l] + v[l] * s * dt;
        nth[l] = th[l] + w * dt;
        nv[l] = (v[l] + a * dt).clamp(R::c(V_MIN), R::c(V_MAX));
    }
}

impl Dynamics for UnicycleModel {
    fn state_dim(&self) -> usize {
        4
    }
    fn control_dim(&self) -> usize {
        2
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let a = u[0].clamp(-A_MAX, A_MAX);
        let w = u[1].clamp(-OMEGA_MAX, OMEGA_MAX);
        let (s, c) = sin_cos(x[2]);
        next[0] = x[0] + x[3] * c * DT;
        next[1] = x[1] + x[3] * s * DT;
        next[2] = x[2] + w * DT;
        next[3] = (x[3] + a * DT).clamp(V_MIN, V_MAX);
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

impl Cost for UnicycleModel {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        let hit = in_collision(&self.obstacles, MARGIN, x[0], x[1]);
        let base = self.smooth_cost(x[0], x[1], x[3], u[0], u[1]);
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

/// The unicycle navigation task.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Unicycle {
    model: UnicycleModel,
}

impl Task for Unicycle {
    fn name(&self) -> &'static str {
        "unicycle"
    }
    fn description(&self) -> &'static str {
        "unicycle (|a| <= 2, |omega| <= 2, v in [-1, 2], dt 0.05) from (0,0) to (9,6) among 6 discs"
    }
    fn state_names(&self) -> &'static [&'static str] {
        &["x", "y", "theta", "v"]
    }
    fn control_names(&self) -> &'static [&'static str] {
        &["accel", "omega"]
    }
    fn state_units(&self) -> &'static [&'static str] {
        &["m", "m", "rad", "m/s"]
    }
    fn control_units(&self) -> &'static [&'static str] {
        &["m/s²", "rad/s"]
    }
    /// The goal region's extent on each coordinate and the stopping speed (success: within
    /// 0.3 m of the goal with `|v| < 0.3` m/s).
    fn reference_bands(&self) -> Vec<ReferenceBand> {
        let (gx, gy) = self.model.goal;
        vec![
            ReferenceBand::new(0, gx - GOAL_RADIUS, gx + GOAL_RADIUS, "goal ± 0.3 m"),
            ReferenceBand::new(1, gy - GOAL_RADIUS, gy + GOAL_RADIUS, "goal ± 0.3 m"),
            ReferenceBand::new(
                3,
                -GOAL_SPEED,
                GOAL_SPEED,
                "stopped at the goal: |v| < 0.3 m/s",
            ),
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
            u_min: Some(vec![-A_MAX, -OMEGA_MAX]),
            u_max: Some(vec![A_MAX, OMEGA_MAX]),
            proposal: ProposalConfig::gaussian(&[1.0, 1.0]),
            weighting: WeightingConfig::fixed(1.0),
            ..MppiConfig::default()
        }
    }
    fn default_steps(&self) -> usize {
        250
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![START.0, START.1, START.2, 0.0]
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(self.model.clone())
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Arc::new(self.model.clone())
    }
    /// The final state is within [`GOAL_RADIUS`] of the goal with `|v|` below [`GOAL_SPEED`],
    /// and no straight segment between consecutive positions touches an obstacle (uninflated).
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        Box::new(GoalCriterion::new(
            &self.model.obstacles,
            self.model.goal,
            GOAL_RADIUS,
            GOAL_SPEED,
            |x: &[f64]| x.get(3).map_or(f64::INFINITY, |v| v.abs()),
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
            extent: ((-1.0, 10.5), (-1.5, 7.5)),
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
        let m = UnicycleModel::default();
        let mut next = [0.0; 4];
        // heading +y at 1 m/s, accelerate 1, turn 5 (clipped to 2)
        m.step(
            &[1.0, 2.0, std::f64::consts::FRAC_PI_2, 1.0],
            &[1.0, 5.0],
            &mut next,
        );
        assert!((next[0] - 1.0).abs() < 1e-15);
        assert_eq!(next[1], 2.0 + 0.05);
        assert_eq!(next[2], std::f64::consts::FRAC_PI_2 + 0.1);
        assert_eq!(next[3], 1.05);
        // speed saturates at V_MAX
        m.step(&[0.0, 0.0, 0.0, 1.99], &[2.0, 0.0], &mut next);
        assert_eq!((next[0], next[3]), (1.99 * 0.05, V_MAX));
    }

    #[test]
    fn cost_terms() {
        let m = UnicycleModel::default();
        assert_eq!(m.running(&[9.0, 6.0, 1.0, 0.0], &[0.0, 0.0], 0), 0.0);
        let c = m.running(&[6.0, 10.0, 0.0, 1.0], &[1.0, -1.0], 0);
        assert!((c - (5.0 + 1.0 / 26.0 + 0.02)).abs() < 1e-12, "{c}");
        assert!(m.running(&[4.0, 3.0, 0.0, 0.0], &[0.0, 0.0], 0) > W_COLLISION);
    }

    #[test]
    fn block_equals_scalar() {
        let m = UnicycleModel::default();
        let states = [(-1.0, 10.0), (-1.0, 7.0), (-4.0, 4.0), (-1.5, 2.5)];
        let controls = [(-3.0, 3.0), (-3.0, 3.0)];
        assert_block_matches_scalar(&m, &states, &controls, &[1, 3, BLOCK_LANES], 7);
    }

    #[test]
    fn scene_matches_model() {
        let t = Unicycle::default();
        let s = t.scene().unwrap();
        assert_eq!(s.obstacles.len(), OBSTACLES.len());
        assert_eq!(s.position, (0, 1));
        let ((x0, x1), (y0, y1)) = s.extent;
        assert!(x0 < START.0 && START.0 < x1 && y0 < GOAL.1 && GOAL.1 < y1);
    }
}
