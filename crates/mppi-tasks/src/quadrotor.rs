//! Planar quadrotor (a "birotor" in the vertical x–z plane) flying from rest at the origin to a
//! goal point and hovering there.
//!
//! State `(x, z, θ, ẋ, ż, ω)`: position, pitch angle (counter-clockwise, `θ = 0` level) and
//! their rates. Controls: the thrusts of the left and right rotors, `T_l, T_r ∈ [0, T_max]`.
//! The body's thrust axis is `(−sin θ, cos θ)`, so
//!
//! ```text
//! ẍ = −(T_l + T_r) sin θ / m
//! z̈ =  (T_l + T_r) cos θ / m − g
//! ω̇ =  a (T_r − T_l) / J
//! ```
//! with mass `m = 1` kg, arm length (center to rotor) `a = 0.25` m, pitch inertia
//! `J = 0.05` kg·m², `g = 9.81` and `T_max = m g` (so hover takes half of the full thrust of
//! each rotor, `T_l = T_r = m g / 2`), integrated with one classic Runge–Kutta (RK4) step of
//! `dt = 0.05` per control (zero-order hold).
//!
//! With the goal `p* = (2, 1)` (start at the origin), the running cost is
//! ```text
//! c = 10 ‖p − p*‖² + ‖v‖² + θ² + 0.3 ω² + 0.2 ((T_l − T_h)² + (T_r − T_h)²)
//! ```
//! with `T_h = m g / 2` the hover thrust per rotor. The first plan is hover thrust on both
//! rotors ([`Task::initial_plan`]).

use mppi::{ProposalConfig, WeightingConfig};
use std::sync::Arc;

use mppi::fastmath::sin_cos;
use mppi::objective::{soa_rows, soa_rows_mut};
use mppi::{Cost, Dynamics, MppiConfig};

use crate::criterion::{Criterion, Tail};
use crate::ode::Ode;
use crate::{BodySegment, Circle, Outcome, ReferenceBand, Scene, Task};

/// Gravity in m/s².
pub const G: f64 = 9.81;
/// Mass in kg.
pub const MASS: f64 = 1.0;
/// Distance from the center of mass to each rotor in m.
pub const ARM: f64 = 0.25;
/// Moment of inertia about the pitch axis in kg·m².
pub const INERTIA: f64 = 0.05;
/// Time step in s.
pub const DT: f64 = 0.05;
/// Largest thrust of one rotor in N (`m g`: the two rotors together lift twice the weight).
pub const MAX_THRUST: f64 = MASS * G;
/// Thrust of one rotor at hover in N (`m g / 2`).
pub const HOVER_THRUST: f64 = 0.5 * MASS * G;
/// Goal position `(x, z)` in m.
pub const GOAL: (f64, f64) = (2.0, 1.0);
/// Standard deviation (N) of the planner's exploration noise on each rotor's thrust.
pub const NOISE_STD: f64 = 1.0;
/// Correlation of the exploration noise between the two rotors.
pub const NOISE_CORRELATION: f64 = 0.7;
/// Success: largest distance to the goal (m) over the final stretch.
pub const SUCCESS_RADIUS: f64 = 0.1;
/// Success: largest speed `‖(ẋ, ż)‖` (m/s) over the final stretch.
pub const SUCCESS_SPEED: f64 = 0.2;
/// Success: length of the final stretch in steps.
pub const SUCCESS_STEPS: usize = 40;

/// Time derivative of the state `(x, z, θ, ẋ, ż, ω)` under rotor thrusts `(tl, tr)` (clamped).
#[inline(always)]
fn deriv(s: [f64; 6], tl: f64, tr: f64) -> [f64; 6] {
    let (sin, cos) = sin_cos(s[2]);
    let thrust = tl + tr;
    [
        s[3],
        s[4],
        s[5],
        -thrust * sin / MASS,
        thrust * cos / MASS - G,
        ARM * (tr - tl) / INERTIA,
    ]
}

/// The quadrotor's ODE with the rotor thrusts `(left, right)` (already clamped) held constant.
struct Thrusts(f64, f64);

impl Ode<6> for Thrusts {
    #[inline(always)]
    fn deriv(&self, s: [f64; 6]) -> [f64; 6] {
        deriv(s, self.0, self.1)
    }
}

/// One RK4 step of length [`DT`] with the thrusts held constant.
#[inline(always)]
fn rk4(s: [f64; 6], tl: f64, tr: f64) -> [f64; 6] {
    crate::ode::rk4(s, DT, &Thrusts(tl, tr))
}

/// Running cost of one state and (clamped) thrusts; see the module docs.
#[inline(always)]
fn stage(s: [f64; 6], tl: f64, tr: f64) -> f64 {
    let (ex, ez) = (s[0] - GOAL.0, s[1] - GOAL.1);
    let (dl, dr) = (tl - HOVER_THRUST, tr - HOVER_THRUST);
    10.0 * (ex * ex + ez * ez)
        + s[3] * s[3]
        + s[4] * s[4]
        + s[2] * s[2]
        + 0.3 * s[5] * s[5]
        + 0.2 * (dl * dl + dr * dr)
}

/// The six state components of a block of `lanes` states in SoA layout, each a slice of
/// exactly `lanes` values (so indexing them by a lane `l < lanes` needs no bounds check).
#[inline(always)]
fn columns(x: &[f64], lanes: usize) -> [&[f64]; 6] {
    soa_rows(x, lanes)
}

/// Planar quadrotor dynamics (RK4, `dt = 0.05`) and go-to-goal cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuadrotorModel;

impl Dynamics for QuadrotorModel {
    fn state_dim(&self) -> usize {
        6
    }
    fn control_dim(&self) -> usize {
        2
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let tl = u[0].clamp(0.0, MAX_THRUST);
        let tr = u[1].clamp(0.0, MAX_THRUST);
        let s = rk4([x[0], x[1], x[2], x[3], x[4], x[5]], tl, tr);
        next[..6].copy_from_slice(&s);
    }
    fn step_block(&self, lanes: usize, x: &[f64], u: &[f64], next: &mut [f64], _tmp: &mut [f64]) {
        let x = columns(x, lanes);
        let [ul, ur] = soa_rows(u, lanes);
        let [n0, n1, n2, n3, n4, n5] = soa_rows_mut(next, lanes);
        for l in 0..lanes {
            let tl = ul[l].clamp(0.0, MAX_THRUST);
            let tr = ur[l].clamp(0.0, MAX_THRUST);
            let s = rk4(std::array::from_fn(|i| x[i][l]), tl, tr);
            n0[l] = s[0];
            n1[l] = s[1];
            n2[l] = s[2];
            n3[l] = s[3];
            n4[l] = s[4];
            n5[l] = s[5];
        }
    }
}

impl Cost for QuadrotorModel {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        let tl = u[0].clamp(0.0, MAX_THRUST);
        let tr = u[1].clamp(0.0, MAX_THRUST);
        stage([x[0], x[1], x[2], x[3], x[4], x[5]], tl, tr)
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
        let x = columns(x, lanes);
        let [ul, ur] = soa_rows(u, lanes);
        for l in 0..lanes {
            let tl = ul[l].clamp(0.0, MAX_THRUST);
            let tr = ur[l].clamp(0.0, MAX_THRUST);
            out[l] = stage(std::array::from_fn(|i| x[i][l]), tl, tr);
        }
    }
}

/// The planar quadrotor go-to-goal task.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quadrotor;

impl Task for Quadrotor {
    fn name(&self) -> &'static str {
        "quadrotor"
    }
    fn description(&self) -> &'static str {
        "planar quadrotor flies from rest at (0, 0) to hover at (2, 1) (two rotors, 0 <= T <= m g, RK4 dt 0.05)"
    }
    fn state_names(&self) -> &'static [&'static str] {
        &["x", "z", "theta", "x_dot", "z_dot", "omega"]
    }
    fn control_names(&self) -> &'static [&'static str] {
        &["thrust_left", "thrust_right"]
    }
    fn state_units(&self) -> &'static [&'static str] {
        &["m", "m", "rad", "m/s", "m/s", "rad/s"]
    }
    fn control_units(&self) -> &'static [&'static str] {
        &["N", "N"]
    }
    /// The goal's tolerance on each coordinate (success: within 0.1 m of `(2, 1)`).
    fn reference_bands(&self) -> Vec<ReferenceBand> {
        vec![
            ReferenceBand::new(
                0,
                GOAL.0 - SUCCESS_RADIUS,
                GOAL.0 + SUCCESS_RADIUS,
                "goal x = 2 ± 0.1 m",
            ),
            ReferenceBand::new(
                1,
                GOAL.1 - SUCCESS_RADIUS,
                GOAL.1 + SUCCESS_RADIUS,
                "goal z = 1 ± 0.1 m",
            ),
        ]
    }
    /// In the x–z plane: the body bar between the rotors (tilted by `θ`, counter-clockwise),
    /// a mast along the thrust axis at each rotor, and the rotors.
    fn body_segments(&self, x: &[f64]) -> Vec<BodySegment> {
        let (px, pz, th) = match x {
            [px, pz, th, ..] => (*px, *pz, *th),
            _ => (f64::NAN, f64::NAN, f64::NAN),
        };
        let (s, c) = th.sin_cos();
        let left = [px - ARM * c, pz - ARM * s];
        let right = [px + ARM * c, pz + ARM * s];
        let mast = 0.07;
        let up = [-s * mast, c * mast];
        let mut out = vec![BodySegment::new(left, right, 0.03)];
        for end in [left, right] {
            let top = [end[0] + up[0], end[1] + up[1]];
            out.push(BodySegment::new(end, top, 0.0));
            out.push(BodySegment::new(
                [top[0] - 0.08 * c, top[1] - 0.08 * s],
                [top[0] + 0.08 * c, top[1] + 0.08 * s],
                0.012,
            ));
        }
        out
    }
    fn dt(&self) -> f64 {
        DT
    }
    /// 1000 samples over a 1.5 s horizon, `λ = 5`, and exploration noise with per-rotor
    /// standard deviation 1 N and correlation 0.7 between the rotors, so the collective thrust
    /// (std `√(2·1.7)` ≈ 1.84 N) is explored more than the differential thrust that tilts the
    /// body (std `√(2·0.3)` ≈ 0.77 N).
    fn default_config(&self) -> MppiConfig {
        let var = NOISE_STD * NOISE_STD;
        MppiConfig {
            samples: 1000,
            horizon: 30,
            iterations: 1,
            u_min: Some(vec![0.0]),
            u_max: Some(vec![MAX_THRUST]),
            proposal: ProposalConfig {
                noise_covariance: Some(vec![
                    vec![var, NOISE_CORRELATION * var],
                    vec![NOISE_CORRELATION * var, var],
                ]),
                ..ProposalConfig::default()
            },
            weighting: WeightingConfig::fixed(5.0),
            ..MppiConfig::default()
        }
    }
    fn default_steps(&self) -> usize {
        150
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![0.0; 6]
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(QuadrotorModel)
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Arc::new(QuadrotorModel)
    }
    /// Within 0.1 m of the goal at a speed below 0.2 m/s for the last 40 states.
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        Box::new(Hovering {
            seen: 0,
            last: Tail::new(SUCCESS_STEPS),
        })
    }
    fn initial_plan(&self, horizon: usize) -> Option<Vec<f64>> {
        Some(vec![HOVER_THRUST; 2 * horizon])
    }
    fn scene(&self) -> Option<Scene> {
        Some(Scene {
            position: (0, 1),
            obstacles: Vec::new(),
            goal: Some(Circle {
                x: GOAL.0,
                y: GOAL.1,
                r: SUCCESS_RADIUS,
            }),
            track: None,
            extent: ((-0.5, 2.5), (-0.75, 1.5)),
        })
    }
}

/// The quadrotor's criterion: distance to the goal and speed of the last [`SUCCESS_STEPS`]
/// states (`+∞` for a row too short to hold them).
struct Hovering {
    seen: usize,
    last: Tail<(f64, f64)>,
}

impl Criterion for Hovering {
    fn observe(&mut self, _step: usize, x: &[f64], _u: Option<&[f64]>) {
        self.seen += 1;
        self.last.push(match x {
            [px, pz, _, vx, vz, ..] => ((px - GOAL.0).hypot(pz - GOAL.1), vx.hypot(*vz)),
            _ => (f64::INFINITY, f64::INFINITY),
        });
    }
    fn outcome(&self) -> Outcome {
        let tail = self.last.len();
        let worst_dist = self.last.iter().map(|p| p.0).fold(0.0, f64::max);
        let worst_speed = self.last.iter().map(|p| p.1).fold(0.0, f64::max);
        let success =
            self.seen > SUCCESS_STEPS && worst_dist < SUCCESS_RADIUS && worst_speed < SUCCESS_SPEED;
        Outcome {
            success,
            message: format!(
                "last {tail} states: max distance to goal {worst_dist:.4} m (< {SUCCESS_RADIUS}), max speed {worst_speed:.4} m/s (< {SUCCESS_SPEED})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::assert_block_matches_scalar;

    #[test]
    fn hover_thrust_is_an_exact_equilibrium() {
        let x = [0.7, -1.3, 0.0, 0.0, 0.0, 0.0];
        let mut next = [0.0; 6];
        QuadrotorModel.step(&x, &[HOVER_THRUST, HOVER_THRUST], &mut next);
        assert_eq!(next, x);
        // At the goal, hovering costs nothing.
        let goal = [GOAL.0, GOAL.1, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(
            QuadrotorModel.running(&goal, &[HOVER_THRUST, HOVER_THRUST], 0),
            0.0
        );
    }

    #[test]
    fn free_fall_and_pure_torque_match_hand_computation() {
        // No thrust: z = −g dt²/2, ż = −g dt (RK4 is exact for constant acceleration).
        let mut next = [0.0; 6];
        QuadrotorModel.step(&[0.0; 6], &[0.0, 0.0], &mut next);
        assert!((next[1] + 0.5 * G * DT * DT).abs() < 1e-12, "{next:?}");
        assert!((next[4] + G * DT).abs() < 1e-12, "{next:?}");
        assert_eq!((next[0], next[2], next[3], next[5]), (0.0, 0.0, 0.0, 0.0));
        // Differential thrust ΔT: ω̇ = a ΔT / J, constant over the step.
        let (tl, tr) = (HOVER_THRUST - 1.0, HOVER_THRUST + 1.0);
        QuadrotorModel.step(&[0.0; 6], &[tl, tr], &mut next);
        let alpha = ARM * 2.0 / INERTIA;
        assert!((next[5] - alpha * DT).abs() < 1e-12, "{next:?}");
        assert!((next[2] - 0.5 * alpha * DT * DT).abs() < 1e-12, "{next:?}");
        // Tilting counter-clockwise pushes the vehicle towards −x.
        assert!(next[3] < 0.0 && next[0] < 0.0, "{next:?}");
    }

    #[test]
    fn tilted_thrust_derivative() {
        let th = 0.3f64;
        let d = deriv([0.0, 0.0, th, 1.0, 2.0, 3.0], 4.0, 6.0);
        assert_eq!((d[0], d[1], d[2]), (1.0, 2.0, 3.0));
        assert!((d[3] + 10.0 * th.sin() / MASS).abs() < 1e-12);
        assert!((d[4] - (10.0 * th.cos() / MASS - G)).abs() < 1e-12);
        assert!((d[5] - ARM * 2.0 / INERTIA).abs() < 1e-12);
    }

    #[test]
    fn thrusts_are_clamped() {
        let x = [0.0, 0.0, 0.1, 0.0, 0.0, 0.0];
        let (mut a, mut b) = ([0.0; 6], [0.0; 6]);
        QuadrotorModel.step(&x, &[-5.0, 1e9], &mut a);
        QuadrotorModel.step(&x, &[0.0, MAX_THRUST], &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn block_methods_equal_scalar_ones() {
        let states = [
            (-3.0, 3.0),
            (-3.0, 3.0),
            (-7.0, 7.0),
            (-5.0, 5.0),
            (-5.0, 5.0),
            (-10.0, 10.0),
        ];
        // thrusts below 0 and above MAX_THRUST exercise the clamp
        let controls = [(-2.0, 12.0), (-2.0, 12.0)];
        assert_block_matches_scalar(&QuadrotorModel, &states, &controls, &[1, 5, 32], 3);
    }

    #[test]
    fn success_criterion_and_scene() {
        let controls = vec![vec![HOVER_THRUST; 2]; 100];
        let judged = |x: f64, vx: f64| {
            crate::judge(
                &Quadrotor,
                &vec![vec![x, GOAL.1, 0.0, vx, 0.0, 0.0]; 101],
                &controls,
            )
        };
        assert!(judged(GOAL.0 + 0.05, 0.1).success);
        assert!(!judged(GOAL.0 + 0.2, 0.0).success);
        assert!(!judged(GOAL.0, 0.5).success);
        assert!(!crate::judge(&Quadrotor, &vec![vec![GOAL.0]; 101], &controls).success);
        let scene = Quadrotor.scene();
        assert!(scene.is_some_and(|s| s.position == (0, 1) && s.goal.is_some()));
    }
}
