//! Cart-pole swing-up from hanging down, with the classic Barto–Sutton–Anderson (gymnasium
//! `CartPole`) equations of motion and a continuous, bounded force.
//!
//! State `(x, θ, ẋ, θ̇)`: cart position, pole angle with `θ = 0` upright (`θ = π` hanging down),
//! and their rates. Control: horizontal force on the cart `F ∈ [−F_max, F_max]`.
//!
//! ```text
//! a   = (F + m_p l θ̇² sin θ) / (m_c + m_p)
//! θ̈  = (g sin θ − a cos θ) / (l (4/3 − m_p cos² θ / (m_c + m_p)))
//! ẍ  = a − m_p l θ̈ cos θ / (m_c + m_p)
//! ```
//! with `m_c = 1`, `m_p = 0.1`, pole half-length `l = 0.5`, `g = 9.8`, no friction, integrated
//! with one classic Runge–Kutta (RK4) step of `dt = 0.05` per control (zero-order hold).
//!
//! The running cost is
//! ```text
//! c = 10 (1 − cos θ) + x² + 0.1 ẋ² + 0.05 θ̇² + 10⁻³ F²
//!     + 50 max(0, |x| − 1.8)² + 1000 [|x| > 2.4]
//! ```
//! so the track `|x| ≤ 2.4` is enforced by the cost (a soft wall from `1.8` and a large
//! penalty beyond the end of the track); the plant itself has no walls.

use mppi::{ProposalConfig, WeightingConfig};
use std::sync::Arc;

use mppi::fastmath::{cos, sin_cos};
use mppi::objective::{soa_rows, soa_rows_mut};
use mppi::{Cost, Dynamics, MppiConfig};

use crate::criterion::{Criterion, Tail};
use crate::ode::Ode;
use crate::{BodySegment, Outcome, ReferenceBand, Task, wrap_angle};

/// Gravity in m/s².
pub const G: f64 = 9.8;
/// Cart mass in kg.
pub const CART_MASS: f64 = 1.0;
/// Pole mass in kg.
pub const POLE_MASS: f64 = 0.1;
/// Pole half-length (pivot to center of mass) in m.
pub const HALF_LENGTH: f64 = 0.5;
/// Time step in s.
pub const DT: f64 = 0.05;
/// Force bound `F_max` in N: `|F| ≤ F_max`.
pub const MAX_FORCE: f64 = 10.0;
/// End of the track: the cart must keep `|x| ≤ TRACK_LIMIT` (m).
pub const TRACK_LIMIT: f64 = 2.4;
/// Where the soft wall of the cost starts (m).
pub const SOFT_LIMIT: f64 = 1.8;
/// Success: largest `|θ|` (rad, wrapped) allowed over the final stretch.
pub const SUCCESS_ANGLE: f64 = 0.2;
/// Success: length of the final stretch in steps.
pub const SUCCESS_STEPS: usize = 50;

/// Time derivative of the state `(x, θ, ẋ, θ̇)` under force `f` (already clamped).
#[inline(always)]
fn deriv(s: [f64; 4], f: f64) -> [f64; 4] {
    let total = CART_MASS + POLE_MASS;
    let (sin, cos) = sin_cos(s[1]);
    let a = (f + POLE_MASS * HALF_LENGTH * s[3] * s[3] * sin) / total;
    let thacc = (G * sin - cos * a) / (HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos * cos / total));
    let xacc = a - POLE_MASS * HALF_LENGTH * thacc * cos / total;
    [s[2], s[3], xacc, thacc]
}

/// The cart-pole's ODE with the force (already clamped) held constant.
struct Force(f64);

impl Ode<4> for Force {
    #[inline(always)]
    fn deriv(&self, s: [f64; 4]) -> [f64; 4] {
        deriv(s, self.0)
    }
}

/// One RK4 step of length [`DT`] with the force held constant.
#[inline(always)]
fn rk4(s: [f64; 4], f: f64) -> [f64; 4] {
    crate::ode::rk4(s, DT, &Force(f))
}

/// Running cost of one state and (clamped) force; see the module docs.
#[inline(always)]
fn stage(x: f64, th: f64, xd: f64, thd: f64, f: f64) -> f64 {
    let wall = (x.abs() - SOFT_LIMIT).max(0.0);
    let off_track = if x.abs() > TRACK_LIMIT { 1000.0 } else { 0.0 };
    10.0 * (1.0 - cos(th))
        + x * x
        + 0.1 * xd * xd
        + 0.05 * thd * thd
        + 1e-3 * f * f
        + 50.0 * wall * wall
        + off_track
}

/// Total mechanical energy `½(m_c+m_p)ẋ² + m_p l ẋ θ̇ cos θ + ½ (4/3) m_p l² θ̇² + m_p g l cos θ`
/// of the cart-pole (pole as a uniform rod of length `2l`); conserved when `F = 0`.
#[must_use]
pub fn energy(x: &[f64]) -> f64 {
    let (th, xd, thd) = (x[1], x[2], x[3]);
    let ml = POLE_MASS * HALF_LENGTH;
    0.5 * (CART_MASS + POLE_MASS) * xd * xd
        + ml * xd * thd * th.cos()
        + 0.5 * (4.0 / 3.0) * POLE_MASS * HALF_LENGTH * HALF_LENGTH * thd * thd
        + ml * G * th.cos()
}

/// Cart-pole dynamics (RK4, `dt = 0.05`) and swing-up cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct CartPoleModel;

impl Dynamics for CartPoleModel {
    fn state_dim(&self) -> usize {
        4
    }
    fn control_dim(&self) -> usize {
        1
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let f = u[0].clamp(-MAX_FORCE, MAX_FORCE);
        let s = rk4([x[0], x[1], x[2], x[3]], f);
        next[..4].copy_from_slice(&s);
    }
    fn step_block(&self, lanes: usize, x: &[f64], u: &[f64], next: &mut [f64], _tmp: &mut [f64]) {
        let [px, th, xd, thd] = soa_rows(x, lanes);
        let [npx, nth, nxd, nthd] = soa_rows_mut(next, lanes);
        let [u] = soa_rows(u, lanes);
        for l in 0..lanes {
            let f = u[l].clamp(-MAX_FORCE, MAX_FORCE);
            let s = rk4([px[l], th[l], xd[l], thd[l]], f);
            npx[l] = s[0];
            nth[l] = s[1];
            nxd[l] = s[2];
            nthd[l] = s[3];
        }
    }
}

impl Cost for CartPoleModel {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        let f = u[0].clamp(-MAX_FORCE, MAX_FORCE);
        stage(x[0], x[1], x[2], x[3], f)
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
        let [px, th, xd, thd] = soa_rows(x, lanes);
        let [u] = soa_rows(u, lanes);
        let [out] = soa_rows_mut(out, lanes);
        for l in 0..lanes {
            let f = u[l].clamp(-MAX_FORCE, MAX_FORCE);
            out[l] = stage(px[l], th[l], xd[l], thd[l], f);
        }
    }
}

/// The cart-pole swing-up task.
#[derive(Debug, Clone, Copy, Default)]
pub struct CartPole;

impl Task for CartPole {
    fn name(&self) -> &'static str {
        "cartpole"
    }
    fn description(&self) -> &'static str {
        "cart-pole swing-up from hanging down (Barto/gym parameters, |F| <= 10 N, RK4 dt 0.05, track |x| <= 2.4)"
    }
    fn state_names(&self) -> &'static [&'static str] {
        &["x", "theta", "x_dot", "theta_dot"]
    }
    fn control_names(&self) -> &'static [&'static str] {
        &["force"]
    }
    fn state_units(&self) -> &'static [&'static str] {
        &["m", "rad", "m/s", "rad/s"]
    }
    fn control_units(&self) -> &'static [&'static str] {
        &["N"]
    }
    /// The success criterion's bands: the track `|x| ≤ 2.4` m and `|θ| < 0.2` rad (wrapped).
    fn reference_bands(&self) -> Vec<ReferenceBand> {
        vec![
            ReferenceBand::new(0, -TRACK_LIMIT, TRACK_LIMIT, "track |x| ≤ 2.4 m"),
            ReferenceBand::new(
                1,
                -SUCCESS_ANGLE,
                SUCCESS_ANGLE,
                "success: |θ| < 0.2 rad (wrapped)",
            ),
        ]
    }
    /// The rail (thin, to the ends of the track), the cart and the pole (full length
    /// `2 l`; `θ = 0` up, positive `θ` leans right).
    fn body_segments(&self, x: &[f64]) -> Vec<BodySegment> {
        let (p, th) = match x {
            [p, th, ..] => (*p, *th),
            _ => (f64::NAN, f64::NAN),
        };
        let pole = 2.0 * HALF_LENGTH;
        vec![
            BodySegment::new([-TRACK_LIMIT, -0.15], [TRACK_LIMIT, -0.15], 0.0),
            BodySegment::new([p - 0.2, 0.0], [p + 0.2, 0.0], 0.12),
            BodySegment::new([p, 0.0], [p + pole * th.sin(), pole * th.cos()], 0.03),
        ]
    }
    fn dt(&self) -> f64 {
        DT
    }
    fn default_config(&self) -> MppiConfig {
        MppiConfig {
            samples: 500,
            horizon: 30,
            iterations: 1,
            u_min: Some(vec![-MAX_FORCE]),
            u_max: Some(vec![MAX_FORCE]),
            proposal: ProposalConfig::gaussian(&[5.0]),
            weighting: WeightingConfig::fixed(1.0),
            ..MppiConfig::default()
        }
    }
    fn default_steps(&self) -> usize {
        200
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![0.0, std::f64::consts::PI, 0.0, 0.0]
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(CartPoleModel)
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Arc::new(CartPoleModel)
    }
    /// Upright (`|θ| < 0.2`) with the cart on the track (`|x| ≤ 2.4`) for the last 50 states,
    /// and never off the track during the episode.
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        Box::new(Balanced::new())
    }
}

/// The cart-pole's criterion: `|θ|` of the last [`SUCCESS_STEPS`] states and the running
/// maximum of `|x|` (a row too short to hold them counts as infinitely far).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Balanced {
    seen: usize,
    last_angles: Tail<f64>,
    worst_x: f64,
}

impl Balanced {
    /// Nothing observed yet.
    pub(crate) fn new() -> Self {
        Balanced {
            seen: 0,
            last_angles: Tail::new(SUCCESS_STEPS),
            worst_x: 0.0,
        }
    }
}

impl Criterion for Balanced {
    fn observe(&mut self, _step: usize, x: &[f64], _u: Option<&[f64]>) {
        self.seen += 1;
        self.last_angles
            .push(x.get(1).map_or(f64::INFINITY, |&a| wrap_angle(a).abs()));
        self.worst_x = self
            .worst_x
            .max(x.first().map_or(f64::INFINITY, |p| p.abs()));
    }
    fn outcome(&self) -> Outcome {
        let tail = self.last_angles.len();
        let worst_angle = self.last_angles.iter().copied().fold(0.0, f64::max);
        let worst_x = self.worst_x;
        let success =
            self.seen > SUCCESS_STEPS && worst_angle < SUCCESS_ANGLE && worst_x <= TRACK_LIMIT;
        Outcome {
            success,
            message: format!(
                "last {tail} states: max |angle| {worst_angle:.4} (< {SUCCESS_ANGLE}); whole episode: max |x| {worst_x:.3} (<= {TRACK_LIMIT})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge;
    use crate::test_support::assert_block_matches_scalar;

    #[test]
    fn derivative_matches_hand_computation() {
        // Pole horizontal at rest, no force: a = 0, θ̈ = g / (l · 4/3), ẍ = 0.
        let d = deriv([0.3, std::f64::consts::FRAC_PI_2, 0.0, 0.0], 0.0);
        assert!((d[3] - 9.8 / (0.5 * 4.0 / 3.0)).abs() < 1e-12, "{d:?}");
        assert!(d[2].abs() < 1e-12 && d[0] == 0.0 && d[1] == 0.0, "{d:?}");
        // Upright at rest, force 1.1 N: a = 1, θ̈ = −1 / (0.5 (4/3 − 0.1/1.1)), ẍ = a − 0.05 θ̈ / 1.1.
        let d = deriv([0.0, 0.0, 0.0, 0.0], 1.1);
        let thacc = -1.0 / (0.5 * (4.0 / 3.0 - 0.1 / 1.1));
        assert!((d[3] - thacc).abs() < 1e-12, "{d:?}");
        assert!((d[2] - (1.0 - 0.05 * thacc / 1.1)).abs() < 1e-12, "{d:?}");
    }

    #[test]
    fn upright_rest_is_an_exact_equilibrium() {
        let mut next = [0.0; 4];
        CartPoleModel.step(&[0.5, 0.0, 0.0, 0.0], &[0.0], &mut next);
        assert_eq!(next, [0.5, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn energy_and_momentum_are_conserved_without_force() {
        let mut x = [0.0, 2.0, 0.5, -1.0];
        let momentum = |x: &[f64; 4]| {
            (CART_MASS + POLE_MASS) * x[2] + POLE_MASS * HALF_LENGTH * x[3] * x[1].cos()
        };
        let (e0, p0) = (energy(&x), momentum(&x));
        let mut next = [0.0; 4];
        for _ in 0..200 {
            CartPoleModel.step(&x, &[0.0], &mut next);
            x = next;
        }
        assert!(
            (energy(&x) - e0).abs() < 1e-4 * e0.abs().max(1.0),
            "{} vs {e0}",
            energy(&x)
        );
        assert!((momentum(&x) - p0).abs() < 1e-4, "{} vs {p0}", momentum(&x));
    }

    #[test]
    fn force_is_clamped() {
        let (mut a, mut b) = ([0.0; 4], [0.0; 4]);
        CartPoleModel.step(&[0.0, 1.0, 0.0, 0.0], &[1e6], &mut a);
        CartPoleModel.step(&[0.0, 1.0, 0.0, 0.0], &[MAX_FORCE], &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn block_methods_equal_scalar_ones() {
        // θ over two turns, force beyond the bound to exercise the clamp
        let states = [(-3.0, 3.0), (-7.0, 7.0), (-5.0, 5.0), (-10.0, 10.0)];
        assert_block_matches_scalar(&CartPoleModel, &states, &[(-15.0, 15.0)], &[1, 5, 32], 42);
    }

    #[test]
    fn success_criterion() {
        let states = |theta: f64| vec![vec![0.0, theta, 0.0, 0.0]; 101];
        let controls = vec![vec![0.0]; 100];
        assert!(judge(&CartPole, &states(0.05), &controls).success);
        assert!(!judge(&CartPole, &states(std::f64::consts::PI), &controls).success);
        assert!(!judge(&CartPole, &[], &controls).success);
        // off the track once, early, fails the whole episode
        let mut off = states(0.05);
        off[3][0] = 3.0;
        let o = judge(&CartPole, &off, &controls);
        assert!(
            !o.success && o.message.contains("max |x| 3.000"),
            "{}",
            o.message
        );
        // the angle counts over the last 50 states only
        let mut early = states(0.05);
        early[50][1] = 1.0;
        assert!(judge(&CartPole, &early, &controls).success);
        early[51][1] = 1.0;
        assert!(!judge(&CartPole, &early, &controls).success);
    }
}
