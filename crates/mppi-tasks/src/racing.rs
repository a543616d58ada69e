//! Aggressive driving: a kinematic bicycle racing around a closed oval track, the classic
//! MPPI demo (Williams et al., "Aggressive driving with model predictive path integral
//! control", 2016), with the track given as a centerline polyline and a half width.
//!
//! State `(x, y, ψ, v)` (rear-axle position, yaw, speed), control `(a, δ)`: acceleration
//! `a ∈ [A_MIN, A_MAX]` and steering angle `|δ| ≤ STEER_MAX`; wheelbase `WHEELBASE`. Explicit
//! Euler:
//!
//! ```text
//! x' = x + v cos ψ dt
//! y' = y + v sin ψ dt
//! ψ' = ψ + v / WHEELBASE · tan δ · dt
//! v' = clip(v + a dt, 0, V_MAX)
//! ```
//! The track is a "stadium": straights of `STRAIGHT` meters joined by half circles of radius
//! `RADIUS`, half width `HALF_WIDTH`, driven counter-clockwise. With `(d, t̂)` the distance to
//! the centerline and the unit tangent of its closest segment, the cost is
//!
//! ```text
//! c = −W_PROGRESS · v (cos ψ, sin ψ)·t̂  +  W_SPEED (v − V_REF)²  +  W_STEER δ²
//!     + W_OFF_TRACK · [d > HALF_WIDTH − MARGIN]
//! ```
//! i.e. a reward for speed along the track, a mild speed target, and a heavy penalty per step
//! spent off the track (with a safety margin).

use mppi::{ProposalConfig, WeightingConfig};
use std::sync::Arc;

use mppi::fastmath::sin_cos;
use mppi::objective::{soa_rows, soa_rows_mut};
use mppi::{BLOCK_LANES, Cost, Dynamics, MppiConfig};

use crate::criterion::Criterion;
use crate::geometry::ClosedPolyline;
use crate::navigation::position;
use crate::{Outcome, ReferenceBand, Scene, Task};

/// Time step in seconds.
pub const DT: f64 = 0.05;
/// Distance between the axles (m).
pub const WHEELBASE: f64 = 2.5;
/// Lowest acceleration (braking), m/s².
pub const A_MIN: f64 = -6.0;
/// Highest acceleration, m/s².
pub const A_MAX: f64 = 4.0;
/// Steering bound (rad).
pub const STEER_MAX: f64 = 0.5;
/// Speed bound (m/s); the car does not reverse.
pub const V_MAX: f64 = 20.0;
/// Length of each straight (m).
pub const STRAIGHT: f64 = 20.0;
/// Radius of the turns' centerline (m).
pub const RADIUS: f64 = 10.0;
/// Vertices inside each half circle of the centerline.
pub const ARC_POINTS: usize = 15;
/// Half width of the track (m).
pub const HALF_WIDTH: f64 = 2.0;
/// Reward weight of the speed along the track.
pub const W_PROGRESS: f64 = 1.0;
/// Weight of the squared deviation from [`V_REF`].
pub const W_SPEED: f64 = 0.1;
/// Target speed (m/s).
pub const V_REF: f64 = 12.0;
/// Weight of the squared steering angle.
pub const W_STEER: f64 = 1.0;
/// Cost of one step off the track.
pub const W_OFF_TRACK: f64 = 1000.0;
/// Safety margin inside the track edge used by the cost (m).
pub const MARGIN: f64 = 0.3;

/// `tan d` as `sin d / cos d` with the branch-free [`sin_cos`], so the step loop vectorizes
/// (the steering angle is bounded by [`STEER_MAX`], far from `±π/2`).
#[inline(always)]
fn tan(d: f64) -> f64 {
    let (s, c) = sin_cos(d);
    s / c
}

/// Kinematic-bicycle dynamics and the racing cost on a closed track.
#[derive(Debug, Clone, PartialEq)]
pub struct RacingModel {
    /// Track centerline.
    pub track: ClosedPolyline,
    /// Track half width.
    pub half_width: f64,
}

impl Default for RacingModel {
    fn default() -> Self {
        RacingModel {
            track: ClosedPolyline::stadium(STRAIGHT, RADIUS, ARC_POINTS),
            half_width: HALF_WIDTH,
        }
    }
}

impl RacingModel {
    /// The cost given the distance to the centerline and the tangent of its closest segment.
    #[inline(always)]
    fn stage(&self, dist: f64, tx: f64, ty: f64, yaw: f64, v: f64, steer: f64) -> f64 {
        let (s, c) = sin_cos(yaw);
        let steer = steer.clamp(-STEER_MAX, STEER_MAX);
        let dv = v - V_REF;
        let base =
            -W_PROGRESS * v * (c * tx + s * ty) + W_SPEED * dv * dv + W_STEER * steer * steer;
        if dist > self.half_width - MARGIN {
            base + W_OFF_TRACK
        } else {
            base
        }
    }
}

impl Dynamics for RacingModel {
    fn state_dim(&self) -> usize {
        4
    }
    fn control_dim(&self) -> usize {
        2
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let a = u[0].clamp(A_MIN, A_MAX);
        let d = u[1].clamp(-STEER_MAX, STEER_MAX);
        let (s, c) = sin_cos(x[2]);
        next[0] = x[0] + x[3] * c * DT;
        next[1] = x[1] + x[3] * s * DT;
        next[2] = x[2] + x[3] / WHEELBASE * tan(d) * DT;
        next[3] = (x[3] + a * DT).clamp(0.0, V_MAX);
    }
    fn step_block(&self, lanes: usize, x: &[f64], u: &[f64], next: &mut [f64], _tmp: &mut [f64]) {
        let [px, py, yaw, v] = soa_rows(x, lanes);
        let [ua, ud] = soa_rows(u, lanes);
        let [npx, npy, nyaw, nv] = soa_rows_mut(next, lanes);
        for l in 0..lanes {
            let a = ua[l].clamp(A_MIN, A_MAX);
            let d = ud[l].clamp(-STEER_MAX, STEER_MAX);
            let (s, c) = sin_cos(yaw[l]);
            npx[l] = px[l] + v[l] * c * DT;
            npy[l] = py[l] + v[l] * s * DT;
            nyaw[l] = yaw[l] + v[l] / WHEELBASE * tan(d) * DT;
            nv[l] = (v[l] + a * DT).clamp(0.0, V_MAX);
        }
    }
}

impl Cost for RacingModel {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        let p = self.track.project(x[0], x[1]);
        self.stage(p.distance, p.tangent.0, p.tangent.1, x[2], x[3], u[1])
    }
    /// Projects a chunk of up to [`BLOCK_LANES`] lanes at a time onto every segment (segments
    /// outer, lanes inner), with the same arithmetic and tie-breaking as
    /// [`ClosedPolyline::project`].
    fn running_block(
        &self,
        lanes: usize,
        _t: usize,
        x: &[f64],
        u: &[f64],
        out: &mut [f64],
        _tmp: &mut [f64],
    ) {
        let [px, py, yaw, v] = soa_rows(x, lanes);
        let [_, steer] = soa_rows(u, lanes);
        let segments = self.track.segments();
        let (tx0, ty0) = segments.first().map_or((1.0, 0.0), |g| (g.tx, g.ty));
        let mut start = 0;
        while start < lanes {
            let n = (lanes - start).min(BLOCK_LANES);
            let mut d2 = [f64::INFINITY; BLOCK_LANES];
            let mut tx = [tx0; BLOCK_LANES];
            let mut ty = [ty0; BLOCK_LANES];
            let (cx, cy) = (&px[start..start + n], &py[start..start + n]);
            for g in segments {
                for l in 0..n {
                    let (_, e) = g.closest(cx[l], cy[l]);
                    let better = e < d2[l];
                    d2[l] = if better { e } else { d2[l] };
                    tx[l] = if better { g.tx } else { tx[l] };
                    ty[l] = if better { g.ty } else { ty[l] };
                }
            }
            for l in 0..n {
                let k = start + l;
                out[k] = self.stage(d2[l].sqrt(), tx[l], ty[l], yaw[k], v[k], steer[k]);
            }
            start += n;
        }
    }
}

/// Laps driven along `track` by the positions `(x[0], x[1])` of `states`: the summed signed
/// arc-length progress between consecutive projections, divided by the track length. (The
/// criterion, [`Lapped`], sums the same progress as the states arrive.)
#[cfg(test)]
fn laps(track: &ClosedPolyline, states: &[Vec<f64>]) -> f64 {
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for x in states {
        if let Some((px, py)) = position(x) {
            let s = track.project(px, py).s;
            if let Some(p) = prev {
                total += track.progress(p, s);
            }
            prev = Some(s);
        }
    }
    total / track.length()
}

/// The racing task.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Racing {
    model: RacingModel,
}

impl Task for Racing {
    fn name(&self) -> &'static str {
        "racing"
    }
    fn description(&self) -> &'static str {
        "kinematic bicycle (wheelbase 2.5 m, |steer| <= 0.5) racing a 103 m oval, 4 m wide, from standstill"
    }
    fn state_names(&self) -> &'static [&'static str] {
        &["x", "y", "yaw", "v"]
    }
    fn control_names(&self) -> &'static [&'static str] {
        &["accel", "steer"]
    }
    fn state_units(&self) -> &'static [&'static str] {
        &["m", "m", "rad", "m/s"]
    }
    fn control_units(&self) -> &'static [&'static str] {
        &["m/s²", "rad"]
    }
    /// The cost's speed target [`V_REF`].
    fn reference_bands(&self) -> Vec<ReferenceBand> {
        vec![ReferenceBand::target(
            3,
            V_REF,
            "speed target 12 m/s (cost)",
        )]
    }
    fn dt(&self) -> f64 {
        DT
    }
    fn default_config(&self) -> MppiConfig {
        MppiConfig {
            samples: 512,
            horizon: 30,
            iterations: 1,
            u_min: Some(vec![A_MIN, -STEER_MAX]),
            u_max: Some(vec![A_MAX, STEER_MAX]),
            proposal: ProposalConfig::gaussian(&[2.0, 0.2]),
            weighting: WeightingConfig::fixed(1.0),
            ..MppiConfig::default()
        }
    }
    fn default_steps(&self) -> usize {
        300
    }
    /// At rest on the centerline at arc length 0, facing along the track.
    fn initial_state(&self) -> Vec<f64> {
        let (x, y, yaw) = self.model.track.point_at(0.0);
        vec![x, y, yaw, 0.0]
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(self.model.clone())
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Arc::new(self.model.clone())
    }
    /// At least one full lap (summed arc-length progress ≥ the track length) and every visited
    /// position within the half width of the centerline.
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        Box::new(Lapped {
            track: &self.model.track,
            half_width: self.model.half_width,
            dt: self.dt(),
            progress: 0.0,
            last_s: None,
            previous_s: None,
            lap_progress: 0.0,
            lap_time: None,
            worst: 0.0,
            top: 0.0,
        })
    }
    fn scene(&self) -> Option<Scene> {
        let e = RADIUS + HALF_WIDTH + 1.0;
        Some(Scene {
            position: (0, 1),
            obstacles: Vec::new(),
            goal: None,
            track: Some((self.model.track.points().to_vec(), self.model.half_width)),
            extent: ((-STRAIGHT / 2.0 - e, STRAIGHT / 2.0 + e), (-e, e)),
        })
    }
}

/// The racing criterion: the signed progress along the track (summed between consecutive
/// projected positions), the first time it reaches one lap, the running maximum distance from
/// the centerline (`+∞` for a row without a position) and the top speed.
struct Lapped<'a> {
    track: &'a ClosedPolyline,
    half_width: f64,
    dt: f64,
    /// Summed progress (m) between consecutive states that have a position.
    progress: f64,
    /// Arc length of the last state that had a position.
    last_s: Option<f64>,
    /// Arc length of the previous state (`None` if it had no position).
    previous_s: Option<f64>,
    /// Laps summed pair by pair, until the first lap.
    lap_progress: f64,
    lap_time: Option<f64>,
    worst: f64,
    top: f64,
}

impl Criterion for Lapped<'_> {
    fn observe(&mut self, step: usize, x: &[f64], _u: Option<&[f64]>) {
        let track = self.track;
        let projection = position(x).map(|(px, py)| track.project(px, py));
        let here = projection.map(|p| p.s);
        self.worst = self
            .worst
            .max(projection.map_or(f64::INFINITY, |p| p.distance));
        if let Some(s) = here {
            if let Some(p) = self.last_s {
                self.progress += track.progress(p, s);
            }
            self.last_s = Some(s);
        }
        if self.lap_time.is_none() && step > 0 {
            if let (Some(a), Some(b)) = (self.previous_s, here) {
                self.lap_progress += track.progress(a, b) / track.length();
            }
            if self.lap_progress >= 1.0 {
                self.lap_time = Some(step as f64 * self.dt);
            }
        }
        self.previous_s = here;
        if let Some(&v) = x.get(3) {
            self.top = self.top.max(v);
        }
    }
    fn outcome(&self) -> Outcome {
        let laps = self.progress / self.track.length();
        let (worst, top) = (self.worst, self.top);
        let success = laps >= 1.0 && worst <= self.half_width && worst.is_finite();
        let lap = self
            .lap_time
            .map_or("no lap".to_string(), |t| format!("first lap {t:.2} s"));
        Outcome {
            success,
            message: format!(
                "laps {laps:.3} (>= 1), max distance from centerline {worst:.3} m (<= {}), {lap}, top speed {top:.2} m/s",
                self.half_width
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::assert_block_matches_scalar;

    #[test]
    fn step_matches_hand_computation() {
        let m = RacingModel::default();
        let mut next = [0.0; 4];
        // yaw 0, 10 m/s, accelerate 10 (clipped to 4), steer atan(0.25) -> yaw rate 1 rad/s
        let steer = 0.25f64.atan();
        m.step(&[1.0, -2.0, 0.0, 10.0], &[10.0, steer], &mut next);
        assert_eq!(next[0], 1.5);
        assert_eq!(next[1], -2.0);
        assert!((next[2] - 0.05).abs() < 1e-15);
        assert_eq!(next[3], 10.2);
        // speed never goes negative; steering is clipped
        m.step(&[0.0, 0.0, 0.0, 0.1], &[-6.0, 3.0], &mut next);
        assert_eq!(next[3], 0.0);
        assert_eq!(next[2], 0.1 / WHEELBASE * 0.5f64.tan() * DT);
    }

    #[test]
    fn cost_terms() {
        let m = RacingModel::default();
        // on the start line, along the track at V_REF: only the progress reward
        let c = m.running(&[0.0, -RADIUS, 0.0, V_REF], &[0.0, 0.0], 0);
        assert_eq!(c, -V_REF);
        // driving backwards at 2 m/s: +2 + 0.1 * 100
        let c = m.running(&[0.0, -RADIUS, std::f64::consts::PI, 2.0], &[0.0, 0.0], 0);
        assert!((c - 12.0).abs() < 1e-12, "{c}");
        // off the track (inside the oval): penalty
        assert!(m.running(&[0.0, 0.0, 0.0, V_REF], &[0.0, 0.0], 0) > 900.0);
        // within the margin band: penalty too
        let c = m.running(&[0.0, -RADIUS + 1.8, 0.0, V_REF], &[0.0, 0.0], 0);
        assert!(c > 900.0);
    }

    #[test]
    fn block_equals_scalar() {
        let m = RacingModel::default();
        let states = [(-25.0, 25.0), (-14.0, 14.0), (-4.0, 4.0), (0.0, 20.0)];
        let controls = [(-8.0, 8.0), (-8.0, 8.0)];
        // BLOCK_LANES + 5 spans two chunks of the blocked projection
        let lanes = [1, 7, BLOCK_LANES, BLOCK_LANES + 5];
        assert_block_matches_scalar(&m, &states, &controls, &lanes, 3);
    }

    #[test]
    fn lap_counting() {
        let t = Racing::default();
        let track = &t.model.track;
        // sample the centerline forward 1.1 laps
        let n = 200;
        let states: Vec<Vec<f64>> = (0..=n)
            .map(|i| {
                let (x, y, yaw) = track.point_at(1.1 * track.length() * i as f64 / n as f64);
                vec![x, y, yaw, 10.0]
            })
            .collect();
        assert!((laps(track, &states) - 1.1).abs() < 1e-9);
        let o = crate::judge(&t, &states, &[]);
        assert!(o.success, "{}", o.message);
        // the streamed sum is the same sum
        assert!(o.message.starts_with("laps 1.100 "), "{}", o.message);
        // one lap is 1/1.1 of the 200 steps: step 182 (t = 9.10 s at 0.05 s per step)
        assert!(o.message.contains("first lap 9.10 s"), "{}", o.message);
        // backwards does not count
        let mut back = states.clone();
        back.reverse();
        assert!(!crate::judge(&t, &back, &[]).success);
        // leaving the track fails
        let mut off = states;
        off[50][0] = 0.0;
        off[50][1] = 0.0;
        assert!(!crate::judge(&t, &off, &[]).success);
    }
}
