//! Acrobot swing-up and balance: a two-link pendulum actuated only at the elbow, with
//! gymnasium `Acrobot-v1`'s equations of motion ("book" variant of Sutton & Barto / Spong) and
//! parameters, but a continuous, bounded torque and no velocity clipping.
//!
//! State `(θ₁, θ₂, θ̇₁, θ̇₂)`: shoulder angle from hanging straight down, elbow angle relative to
//! the first link, and their rates; the upright balance point is `θ₁ = π, θ₂ = 0`.
//! Control: elbow torque `τ ∈ [−τ_max, τ_max]`.
//!
//! ```text
//! d₁ = m₁ lc₁² + m₂ (l₁² + lc₂² + 2 l₁ lc₂ cos θ₂) + I₁ + I₂
//! d₂ = m₂ (lc₂² + l₁ lc₂ cos θ₂) + I₂
//! φ₂ = m₂ lc₂ g sin(θ₁ + θ₂)
//! φ₁ = −m₂ l₁ lc₂ θ̇₂² sin θ₂ − 2 m₂ l₁ lc₂ θ̇₁ θ̇₂ sin θ₂ + (m₁ lc₁ + m₂ l₁) g sin θ₁ + φ₂
//! θ̈₂ = (τ + d₂/d₁ φ₁ − m₂ l₁ lc₂ θ̇₁² sin θ₂ − φ₂) / (m₂ lc₂² + I₂ − d₂²/d₁)
//! θ̈₁ = −(d₂ θ̈₂ + φ₁) / d₁
//! ```
//! with `m₁ = m₂ = 1`, `l₁ = l₂ = 1`, `lc₁ = lc₂ = 0.5`, `I₁ = I₂ = 1` (about each link's
//! center of mass), `g = 9.8`, integrated with one classic Runge–Kutta (RK4) step of
//! `dt = 0.05` per control (zero-order hold). The torque bound is `τ_max = 10` N·m (about twice
//! the torque `m₂ lc₂ g = 4.9` that holds the second link horizontal).
//!
//! With the tip height `h = −l₁ cos θ₁ − l₂ cos(θ₁ + θ₂)` (at most `2`), the running cost is
//! ```text
//! c = 10 (2 − h) + 2 (1 − cos θ₂) + 0.02 (θ̇₁² + θ̇₂²) + 10⁻³ τ²
//! ```

use mppi::{ProposalConfig, WeightingConfig};
use std::sync::Arc;

use mppi::fastmath::{cos, sin, sin_cos};
use mppi::objective::{soa_rows, soa_rows_mut};
use mppi::{Cost, Dynamics, MppiConfig};

use crate::criterion::{Criterion, Tail};
use crate::ode::Ode;
use crate::{BodySegment, Outcome, ReferenceBand, Task};

/// Gravity in m/s².
pub const G: f64 = 9.8;
/// Mass of the first link in kg.
pub const M1: f64 = 1.0;
/// Mass of the second link in kg.
pub const M2: f64 = 1.0;
/// Length of the first link in m.
pub const L1: f64 = 1.0;
/// Length of the second link in m.
pub const L2: f64 = 1.0;
/// Shoulder to center of mass of the first link in m.
pub const LC1: f64 = 0.5;
/// Elbow to center of mass of the second link in m.
pub const LC2: f64 = 0.5;
/// Moment of inertia of the first link about its center of mass in kg·m².
pub const I1: f64 = 1.0;
/// Moment of inertia of the second link about its center of mass in kg·m².
pub const I2: f64 = 1.0;
/// Time step in s.
pub const DT: f64 = 0.05;
/// Torque bound `τ_max` in N·m: `|τ| ≤ τ_max`.
pub const MAX_TORQUE: f64 = 10.0;
/// Success: lowest tip height allowed over the final stretch (the top is `L1 + L2 = 2`).
pub const SUCCESS_HEIGHT: f64 = 1.8;
/// Success: length of the final stretch in steps.
pub const SUCCESS_STEPS: usize = 50;

/// Time derivative of the state `(θ₁, θ₂, θ̇₁, θ̇₂)` under elbow torque `tau` (already clamped).
#[inline(always)]
fn deriv(s: [f64; 4], tau: f64) -> [f64; 4] {
    let (th1, th2, w1, w2) = (s[0], s[1], s[2], s[3]);
    let (s2, c2) = sin_cos(th2);
    let d1 = M1 * LC1 * LC1 + M2 * (L1 * L1 + LC2 * LC2 + 2.0 * L1 * LC2 * c2) + I1 + I2;
    let d2 = M2 * (LC2 * LC2 + L1 * LC2 * c2) + I2;
    let phi2 = M2 * LC2 * G * sin(th1 + th2);
    let phi1 = -M2 * L1 * LC2 * w2 * w2 * s2 - 2.0 * M2 * L1 * LC2 * w2 * w1 * s2
        + (M1 * LC1 + M2 * L1) * G * sin(th1)
        + phi2;
    let acc2 = (tau + d2 / d1 * phi1 - M2 * L1 * LC2 * w1 * w1 * s2 - phi2)
        / (M2 * LC2 * LC2 + I2 - d2 * d2 / d1);
    let acc1 = -(d2 * acc2 + phi1) / d1;
    [w1, w2, acc1, acc2]
}

/// The acrobot's ODE with the elbow torque (already clamped) held constant.
struct Torque(f64);

impl Ode<4> for Torque {
    #[inline(always)]
    fn deriv(&self, s: [f64; 4]) -> [f64; 4] {
        deriv(s, self.0)
    }
}

/// One RK4 step of length [`DT`] with the torque held constant.
#[inline(always)]
fn rk4(s: [f64; 4], tau: f64) -> [f64; 4] {
    crate::ode::rk4(s, DT, &Torque(tau))
}

/// Tip height `h = −l₁ cos θ₁ − l₂ cos(θ₁ + θ₂)` above the shoulder (in `[−2, 2]`).
#[must_use]
#[inline(always)]
pub fn tip_height(th1: f64, th2: f64) -> f64 {
    -L1 * cos(th1) - L2 * cos(th1 + th2)
}

/// Total mechanical energy `½ d₁₁ θ̇₁² + d₁₂ θ̇₁ θ̇₂ + ½ d₂₂ θ̇₂² + V`, with
/// `V = −(m₁ lc₁ + m₂ l₁) g cos θ₁ − m₂ lc₂ g cos(θ₁ + θ₂)`; conserved when `τ = 0`.
#[must_use]
pub fn energy(x: &[f64]) -> f64 {
    let (th1, th2, w1, w2) = (x[0], x[1], x[2], x[3]);
    let c2 = th2.cos();
    let d11 = M1 * LC1 * LC1 + M2 * (L1 * L1 + LC2 * LC2 + 2.0 * L1 * LC2 * c2) + I1 + I2;
    let d12 = M2 * (LC2 * LC2 + L1 * LC2 * c2) + I2;
    let d22 = M2 * LC2 * LC2 + I2;
    let kinetic = 0.5 * d11 * w1 * w1 + d12 * w1 * w2 + 0.5 * d22 * w2 * w2;
    let potential = -(M1 * LC1 + M2 * L1) * G * th1.cos() - M2 * LC2 * G * (th1 + th2).cos();
    kinetic + potential
}

/// Running cost of one state and (clamped) torque; see the module docs.
#[inline(always)]
fn stage(th1: f64, th2: f64, w1: f64, w2: f64, tau: f64) -> f64 {
    let h = tip_height(th1, th2);
    10.0 * (2.0 - h) + 2.0 * (1.0 - cos(th2)) + 0.02 * (w1 * w1 + w2 * w2) + 1e-3 * tau * tau
}

/// Acrobot dynamics (RK4, `dt = 0.05`) and swing-up cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcrobotModel;

impl Dynamics for AcrobotModel {
    fn state_dim(&self) -> usize {
        4
    }
    fn control_dim(&self) -> usize {
        1
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let tau = u[0].clamp(-MAX_TORQUE, MAX_TORQUE);
        let s = rk4([x[0], x[1], x[2], x[3]], tau);
        next[..4].copy_from_slice(&s);
    }
    fn step_block(&self, lanes: usize, x: &[f64], u: &[f64], next: &mut [f64], _tmp: &mut [f64]) {
        let [th1, th2, w1, w2] = soa_rows(x, lanes);
        let [nth1, nth2, nw1, nw2] = soa_rows_mut(next, lanes);
        let [u] = soa_rows(u, lanes);
        for l in 0..lanes {
            let tau = u[l].clamp(-MAX_TORQUE, MAX_TORQUE);
            let s = rk4([th1[l], th2[l], w1[l], w2[l]], tau);
            nth1[l] = s[0];
            nth2[l] = s[1];
            nw1[l] = s[2];
            nw2[l] = s[3];
        }
    }
}

impl Cost for AcrobotModel {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        let tau = u[0].clamp(-MAX_TORQUE, MAX_TORQUE);
        stage(x[0], x[1], x[2], x[3], tau)
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
        let [th1, th2, w1, w2] = soa_rows(x, lanes);
        let [u] = soa_rows(u, lanes);
        let [out] = soa_rows_mut(out, lanes);
        for l in 0..lanes {
            let tau = u[l].clamp(-MAX_TORQUE, MAX_TORQUE);
            out[l] = stage(th1[l], th2[l], w1[l], w2[l], tau);
        }
    }
}

/// The acrobot swing-up and balance task.
#[derive(Debug, Clone, Copy, Default)]
pub struct Acrobot;

impl Task for Acrobot {
    fn name(&self) -> &'static str {
        "acrobot"
    }
    fn description(&self) -> &'static str {
        "acrobot swing-up and balance from hanging down (gym Acrobot parameters, |tau| <= 10, RK4 dt 0.05)"
    }
    fn state_names(&self) -> &'static [&'static str] {
        &["theta1", "theta2", "theta1_dot", "theta2_dot"]
    }
    fn control_names(&self) -> &'static [&'static str] {
        &["torque"]
    }
    fn state_units(&self) -> &'static [&'static str] {
        &["rad", "rad", "rad/s", "rad/s"]
    }
    fn control_units(&self) -> &'static [&'static str] {
        &["N·m"]
    }
    /// The upright balance point `θ₁ = π`, `θ₂ = 0` (success is a tip height ≥ 1.8 m).
    fn reference_bands(&self) -> Vec<ReferenceBand> {
        vec![
            ReferenceBand::target(0, std::f64::consts::PI, "upright θ₁ = π"),
            ReferenceBand::target(1, 0.0, "upright θ₂ = 0"),
        ]
    }
    /// The two links from the shoulder at the origin (`θ₁ = 0` hangs down).
    fn body_segments(&self, x: &[f64]) -> Vec<BodySegment> {
        let (t1, t2) = match x {
            [t1, t2, ..] => (*t1, *t2),
            _ => (f64::NAN, f64::NAN),
        };
        let elbow = [L1 * t1.sin(), -L1 * t1.cos()];
        let tip = [
            elbow[0] + L2 * (t1 + t2).sin(),
            elbow[1] - L2 * (t1 + t2).cos(),
        ];
        vec![
            BodySegment::new([0.0, 0.0], elbow, 0.06),
            BodySegment::new(elbow, tip, 0.06),
        ]
    }
    fn dt(&self) -> f64 {
        DT
    }
    fn default_config(&self) -> MppiConfig {
        MppiConfig {
            samples: 500,
            horizon: 40,
            iterations: 1,
            u_min: Some(vec![-MAX_TORQUE]),
            u_max: Some(vec![MAX_TORQUE]),
            proposal: ProposalConfig::gaussian(&[5.0]),
            weighting: WeightingConfig::fixed(1.0),
            ..MppiConfig::default()
        }
    }
    fn default_steps(&self) -> usize {
        300
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![0.0, 0.0, 0.0, 0.0]
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(AcrobotModel)
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Arc::new(AcrobotModel)
    }
    /// Tip height `h ≥ 1.8` (of at most 2) for the last 50 states: swung up and balanced.
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        Box::new(SwungUp {
            seen: 0,
            last_heights: Tail::new(SUCCESS_STEPS),
        })
    }
}

/// The acrobot's criterion: tip heights of the last [`SUCCESS_STEPS`] states (`−∞` for a row
/// too short to hold both angles).
struct SwungUp {
    seen: usize,
    last_heights: Tail<f64>,
}

impl Criterion for SwungUp {
    fn observe(&mut self, _step: usize, x: &[f64], _u: Option<&[f64]>) {
        self.seen += 1;
        self.last_heights.push(match x {
            [th1, th2, ..] => tip_height(*th1, *th2),
            _ => f64::NEG_INFINITY,
        });
    }
    fn outcome(&self) -> Outcome {
        let tail = self.last_heights.len();
        let lowest = self
            .last_heights
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let success = self.seen > SUCCESS_STEPS && lowest >= SUCCESS_HEIGHT;
        Outcome {
            success,
            message: format!(
                "last {tail} states: min tip height {lowest:.4} (>= {SUCCESS_HEIGHT} of max 2)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::assert_block_matches_scalar;
    use std::f64::consts::{FRAC_PI_2, PI};

    #[test]
    fn derivative_matches_hand_computation() {
        // First link horizontal, second straight on, at rest, no torque:
        // d1 = 0.25 + (1 + 0.25 + 1) + 2 = 4.5, d2 = 0.75 + 1 = 1.75,
        // φ2 = 0.5 · 9.8 = 4.9, φ1 = 1.5 · 9.8 + 4.9 = 19.6.
        let d = deriv([FRAC_PI_2, 0.0, 0.0, 0.0], 0.0);
        let acc2 = (1.75 / 4.5 * 19.6 - 4.9) / (1.25 - 1.75 * 1.75 / 4.5);
        let acc1 = -(1.75 * acc2 + 19.6) / 4.5;
        assert!((d[3] - acc2).abs() < 1e-12, "{d:?} vs {acc2}");
        assert!((d[2] - acc1).abs() < 1e-12, "{d:?} vs {acc1}");
        assert_eq!((d[0], d[1]), (0.0, 0.0));
        // Hanging at rest with torque τ: φ = 0, d1 = 4.5, d2 = 1.75.
        let d = deriv([0.0, 0.0, 0.0, 0.0], 2.0);
        let acc2 = 2.0 / (1.25 - 1.75 * 1.75 / 4.5);
        assert!((d[3] - acc2).abs() < 1e-12, "{d:?}");
        assert!((d[2] + 1.75 * acc2 / 4.5).abs() < 1e-12, "{d:?}");
    }

    #[test]
    fn hanging_rest_is_an_exact_equilibrium_and_upright_is_one_too() {
        let mut next = [0.0; 4];
        AcrobotModel.step(&[0.0; 4], &[0.0], &mut next);
        assert_eq!(next, [0.0; 4]);
        AcrobotModel.step(&[PI, 0.0, 0.0, 0.0], &[0.0], &mut next);
        assert!((next[0] - PI).abs() < 1e-12 && next[1..].iter().all(|v| v.abs() < 1e-12));
        assert!((tip_height(PI, 0.0) - 2.0).abs() < 1e-15);
    }

    #[test]
    fn energy_is_conserved_without_torque() {
        let mut x = [1.0, -0.5, 0.8, 1.5];
        let e0 = energy(&x);
        let mut next = [0.0; 4];
        for _ in 0..100 {
            AcrobotModel.step(&x, &[0.0], &mut next);
            x = next;
        }
        assert!((energy(&x) - e0).abs() < 1e-3, "{} vs {e0}", energy(&x));
    }

    #[test]
    fn torque_does_work_on_the_elbow() {
        // dE/dt = τ θ̇₂: pushing along the elbow's rotation adds energy.
        let x = [0.0, 0.0, 0.0, 1.0];
        let mut next = [0.0; 4];
        AcrobotModel.step(&x, &[MAX_TORQUE], &mut next);
        assert!(energy(&next) > energy(&x));
        let mut clamped = [0.0; 4];
        AcrobotModel.step(&x, &[1e9], &mut clamped);
        assert_eq!(next, clamped);
    }

    #[test]
    fn block_methods_equal_scalar_ones() {
        let states = [(-7.0, 7.0), (-7.0, 7.0), (-10.0, 10.0), (-20.0, 20.0)];
        assert_block_matches_scalar(&AcrobotModel, &states, &[(-15.0, 15.0)], &[1, 5, 32], 7);
    }

    #[test]
    fn success_criterion() {
        let controls = vec![vec![0.0]; 100];
        let judged =
            |th1: f64| crate::judge(&Acrobot, &vec![vec![th1, 0.0, 0.0, 0.0]; 101], &controls);
        assert!(judged(PI - 0.1).success);
        assert!(!judged(0.0).success);
        assert!(!crate::judge(&Acrobot, &vec![vec![PI]; 101], &controls).success);
        // 50 states are not enough
        assert!(!crate::judge(&Acrobot, &vec![vec![PI, 0.0, 0.0, 0.0]; 50], &controls).success);
    }
}
