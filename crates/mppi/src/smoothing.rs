//! Smooth controls: Savitzky–Golay smoothing of the plan, then per-step rate and acceleration
//! limits, then the control bounds (the `[smoothing]` section, [`crate::config::SmoothingConfig`]).
//!
//! [`crate::Controller::act`] applies a [`Smoother`] to the plan `μ = (u_0, …, u_{T−1})` (rows
//! of `m` controls) after each control step's optimization, in this order:
//!
//! 1. **Savitzky–Golay** (`savgol_window = w = 2h + 1`, `savgol_order = q < w`): every entry
//!    is replaced by the value at its own time of the least-squares polynomial of degree `q`
//!    fitted to the `w` entries of its window, per control component. The fit is linear in
//!    the data, so `ũ_t = Σ_j c_{p,j} u_{s+j}` with fixed coefficients: for the window
//!    `[s, s + w)` and the position `p = t − s` in it, `c_p = A (AᵀA)⁻¹ e(x_p)`, where
//!    `A_{jk} = x_jᵏ` is the window's Vandermonde matrix, `x_j = (j − h)/h` and
//!    `e(x) = (1, x, …, x^q)`. In the interior (`h ≤ t < T − h`) the window is centred
//!    (`s = t − h`, `p = h`; for `w = 5, q = 2` the classic `(−3, 12, 17, 12, −3)/35`); at the
//!    ends of the plan the window is the first (last) `w` entries and `p` the entry's position
//!    in it, the **asymmetric-window fit** (SciPy's `savgol_filter(mode = "interp")`), so a
//!    polynomial of degree `≤ q` is reproduced exactly everywhere. The executed history is
//!    *not* used as a left boundary here: the limits below tie the plan to it instead. The
//!    `w × w` table of coefficients is computed once at construction (a QR factorization of
//!    `A`, which solves the same normal equations `AᵀA z = e(x_p)` without squaring the
//!    condition number); smoothing allocates nothing.
//! 2. **Rate and acceleration limits**, forward in time from the previously executed
//!    controls `u_{−1}, u_{−2}` (remembered by the smoother, forgotten on
//!    [`Smoother::reset`]): per component `i`, with `r = max_step_change[i]` and
//!    `a = max_step_accel[i]` (control units per control step and per step²; a limit of
//!    `R` units/s is `R·dt`, one of `A` units/s² is `A·dt²`),
//!    `|u_t − u_{t−1}| ≤ r` and `|u_t − 2u_{t−1} + u_{t−2}| ≤ a`, where `u_{t−1}`, `u_{t−2}`
//!    are already limited entries or executed controls. Each `u_t` is moved to the nearest
//!    point of the allowed interval (a projection, one entry at a time: `u_t` is unchanged
//!    where it already satisfies the limits). A limit that needs a control not yet known
//!    (right after a reset) does not apply.
//! 3. **Control bounds** `u_min ≤ u_t ≤ u_max`, as part of the same projection. With an
//!    acceleration limit the allowed interval also keeps the change towards a bound small
//!    enough to stop before it at `a` per step² (`v + S(v) ≤` the room left, where
//!    `S(v) = Σ_{k≥1} max(v − k a, 0)` is the way covered while braking), so the bounds,
//!    the rate and the acceleration limits hold together at every step: given a history
//!    that respected them, the allowed interval is never empty (braking at `a` from the
//!    previous change stays in all of them). Only a history that breaks them (a reset
//!    forgets it, and a limit that needs an unknown control does not apply) can make the
//!    interval empty; then the bounds and the rate limit win.
//!
//! The smoothed plan differs from the EM mean, so the controller writes it back into the
//! proposal ([`crate::Planner::set_mean`]): it is what the next step's warm start shifts. A
//! family whose plan is a projection (spline knots, categories, Beta means kept off the
//! bounds) stores the projection of the smoothed plan; the control returned by `act` is
//! always the first entry of the smoothed plan itself, so the limits hold for every executed
//! control.

use nalgebra::{DMatrix, DVector};

use crate::config::{MppiConfig, per_dim};
use crate::error::{MppiError, check_len};

/// Savitzky–Golay smoothing with a fixed window and order (see the [module docs](self)).
///
/// ```
/// use mppi::smoothing::SavitzkyGolay;
/// let sg = SavitzkyGolay::new(5, 2).unwrap();
/// let classic = [-3.0, 12.0, 17.0, 12.0, -3.0].map(|c| c / 35.0);
/// for (c, e) in sg.coefficients(2).iter().zip(classic) {
///     assert!((c - e).abs() < 1e-15);
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SavitzkyGolay {
    window: usize,
    order: usize,
    /// Row-major `w × w`: row `p` weights the window's entries for the value at position `p`.
    coeffs: Vec<f64>,
}

impl SavitzkyGolay {
    /// The smoother of window `window` (odd, at least 3) and polynomial order `order`
    /// (below `window`); errors name `smoothing.savgol_window` or `smoothing.savgol_order`.
    pub fn new(window: usize, order: usize) -> Result<Self, MppiError> {
        if window < 3 || window.is_multiple_of(2) {
            return Err(MppiError::config(
                "smoothing.savgol_window",
                format!("must be odd and at least 3 (got {window})"),
            ));
        }
        if order >= window {
            return Err(MppiError::config(
                "smoothing.savgol_order",
                format!("must be below savgol_window = {window} (got {order})"),
            ));
        }
        let h = (window / 2) as f64;
        let x = |j: usize| (j as f64 - h) / h;
        let cols = order + 1;
        let a = DMatrix::from_fn(window, cols, |j, k| x(j).powi(k as i32));
        let qr = a.qr();
        let (q, r) = (qr.q(), qr.r());
        let rt = r.transpose();
        let mut coeffs = vec![0.0; window * window];
        for (p, row) in coeffs.chunks_exact_mut(window).enumerate() {
            let e = DVector::from_fn(cols, |k, _| x(p).powi(k as i32));
            // distinct points and `order < window`: R is invertible
            let z = rt
                .solve_lower_triangular(&e)
                .expect("the Vandermonde matrix of distinct points has full column rank");
            let c = &q * z;
            row.copy_from_slice(c.as_slice());
        }
        Ok(SavitzkyGolay {
            window,
            order,
            coeffs,
        })
    }

    /// The window length `w`.
    #[must_use]
    pub fn window(&self) -> usize {
        self.window
    }

    /// The polynomial order `q`.
    #[must_use]
    pub fn order(&self) -> usize {
        self.order
    }

    /// The `w` weights that give the fitted value at position `position` of a window
    /// (`w / 2` is the centre, used in the interior of a plan).
    ///
    /// # Panics
    /// If `position >= w`.
    #[must_use]
    pub fn coefficients(&self, position: usize) -> &[f64] {
        assert!(
            position < self.window,
            "position {position} outside the window"
        );
        &self.coeffs[position * self.window..(position + 1) * self.window]
    }

    /// Smooth `input` (rows of `m` controls, at least `w` rows) into `output`, each
    /// component separately; errors on mismatched lengths or too short a plan.
    pub fn smooth(&self, input: &[f64], output: &mut [f64], m: usize) -> Result<(), MppiError> {
        check_len("smoothed plan", input.len(), output.len())?;
        if m == 0 || !input.len().is_multiple_of(m) {
            return Err(MppiError::DimensionMismatch {
                what: "plan length (a multiple of the control dimension)",
                expected: m.max(1) * (input.len() / m.max(1)),
                got: input.len(),
            });
        }
        let (w, t_len) = (self.window, input.len() / m);
        if t_len < w {
            return Err(MppiError::config(
                "smoothing.savgol_window",
                format!("is {w} but the plan has only {t_len} steps"),
            ));
        }
        let h = w / 2;
        for t in 0..t_len {
            // the window: centred in the interior, the first / last w entries at the ends
            let start = t.saturating_sub(h).min(t_len - w);
            let c = self.coefficients(t - start);
            let out = &mut output[t * m..(t + 1) * m];
            out.fill(0.0);
            for (j, cj) in c.iter().enumerate() {
                let row = &input[(start + j) * m..(start + j + 1) * m];
                for (o, u) in out.iter_mut().zip(row) {
                    *o += cj * u;
                }
            }
        }
        Ok(())
    }
}

/// Project `plan` (rows of `m` controls), forward in time, onto the rate limit
/// `|u_t − u_{t−1}| ≤ max_change[i]`, the acceleration limit
/// `|u_t − 2u_{t−1} + u_{t−2}| ≤ max_accel[i]` and the bounds `u_min[i] ≤ u_t ≤ u_max[i]`,
/// starting from the executed controls `prev1 = u_{−1}` and `prev2 = u_{−2}` (`None`: not
/// known, the limits that need them do not apply). Each entry moves to the nearest point of
/// its allowed interval, which with an acceleration limit also keeps the change towards a
/// bound small enough to stop before it (see the [module docs](self)).
///
/// ```
/// // a step from 0 to 1 at 0.4 per control step at most
/// let mut plan = [1.0, 1.0, 1.0, 1.0];
/// let (lo, hi) = ([f64::NEG_INFINITY], [f64::INFINITY]);
/// mppi::smoothing::limit_forward(&mut plan, 1, Some(&[0.0]), None, Some(&[0.4]), None, &lo, &hi);
/// assert_eq!(plan, [0.4, 0.8, 1.0, 1.0]);
/// ```
///
/// The projection is greedy (one entry at a time, forward): it brakes ahead of time only for
/// the bounds, not for a level inside them, so with an acceleration limit a limited plan may
/// overshoot a step of the optimized plan; the next optimization, warm-started from the
/// limited plan, sees that and plans the braking.
pub fn limit_forward(
    plan: &mut [f64],
    m: usize,
    prev1: Option<&[f64]>,
    prev2: Option<&[f64]>,
    max_change: Option<&[f64]>,
    max_accel: Option<&[f64]>,
    u_min: &[f64],
    u_max: &[f64],
) {
    let t_len = plan.len() / m;
    for t in 0..t_len {
        for i in 0..m {
            let at = |s: usize| plan[s * m + i];
            let p1 = if t >= 1 {
                Some(at(t - 1))
            } else {
                prev1.map(|p| p[i])
            };
            let p2 = match t {
                0 => prev2.map(|p| p[i]),
                1 => prev1.map(|p| p[i]),
                _ => Some(at(t - 2)),
            };
            let mut u = at(t);
            if let (Some(a), Some(p1), Some(p2)) = (max_accel, p1, p2) {
                let centre = 2.0 * p1 - p2;
                u = u.max(centre - a[i]).min(centre + a[i]);
            }
            let (mut lo, mut hi) = (u_min[i], u_max[i]);
            if let (Some(r), Some(p1)) = (max_change, p1) {
                lo = lo.max(p1 - r[i]);
                hi = hi.min(p1 + r[i]);
            }
            if let (Some(a), Some(p1)) = (max_accel, p1) {
                // no faster towards a bound than the acceleration limit can stop before it
                lo = lo.max(p1 - braking_change(p1 - u_min[i], a[i]));
                hi = hi.min(p1 + braking_change(u_max[i] - p1, a[i]));
            }
            plan[t * m + i] = u.max(lo).min(hi);
        }
    }
}

/// The largest change `v ≥ 0` towards a bound `room ≥ 0` away after which a control can
/// still stop before the bound at the acceleration limit `a`: the largest `v` with
/// `v + S(v) ≤ room`, where `S(v) = Σ_{k=1}^{⌊v/a⌋} (v − k a)` is the further way covered
/// while braking at `a` per step². On `[n a, (n + 1) a)`, `v + S(v) = (n + 1)(v − a n / 2)`,
/// so `v = room / (n + 1) + a n / 2` with the `n` where `a n (n + 1) / 2 ≤ room <
/// a (n + 1)(n + 2) / 2`.
fn braking_change(room: f64, a: f64) -> f64 {
    if room.is_nan() || room <= 0.0 {
        return 0.0;
    }
    if room == f64::INFINITY {
        return f64::INFINITY;
    }
    let ratio = room / a;
    if ratio > 1e12 {
        // far from the bound: the continuous curve v²/(2a) + v/2 is below v + S(v) by at
        // most a/8, and its slope is over 10⁶ here, so its root less a/8 is safe
        return -0.625 * a + (0.25 * a * a + 2.0 * a * room).sqrt();
    }
    let mut n = ((-1.0 + (1.0 + 8.0 * ratio).sqrt()) / 2.0).floor().max(0.0);
    // undo the square root's rounding
    while n > 0.0 && a * n * (n + 1.0) / 2.0 > room {
        n -= 1.0;
    }
    while a * (n + 1.0) * (n + 2.0) / 2.0 <= room {
        n += 1.0;
    }
    room / (n + 1.0) + a * n / 2.0
}

/// The `[smoothing]` stage of a [`crate::Controller`]: Savitzky–Golay, rate and acceleration
/// limits, bounds, and the executed controls the limits start from (see the
/// [module docs](self)). Everything is allocated at construction.
#[derive(Debug, Clone)]
pub struct Smoother {
    m: usize,
    savgol: Option<SavitzkyGolay>,
    max_change: Option<Vec<f64>>,
    max_accel: Option<Vec<f64>>,
    u_min: Vec<f64>,
    u_max: Vec<f64>,
    /// `[u_{−2} | u_{−1}]`.
    history: Vec<f64>,
    /// How many of the history's rows are known (0, 1 or 2).
    known: usize,
    plan: Vec<f64>,
}

impl Smoother {
    /// The smoother `config.smoothing` describes for `m` controls, or `None` when every
    /// part of it is off (then the controller's results are bit-identical to having no
    /// section). Errors name the key.
    pub fn from_config(config: &MppiConfig, m: usize) -> Result<Option<Self>, MppiError> {
        let s = &config.smoothing;
        s.validate(m, config.horizon)?;
        if s.is_off() {
            return Ok(None);
        }
        let bound = |key, v: &Option<Vec<f64>>, default: f64| match v {
            Some(v) => per_dim(key, v, m),
            None => Ok(vec![default; m]),
        };
        let d = config.horizon * m;
        Ok(Some(Smoother {
            m,
            savgol: match s.savgol_window {
                0 => None,
                w => Some(SavitzkyGolay::new(w, s.savgol_order)?),
            },
            max_change: s
                .max_step_change
                .as_ref()
                .map(|v| per_dim("smoothing.max_step_change", v, m))
                .transpose()?,
            max_accel: s
                .max_step_accel
                .as_ref()
                .map(|v| per_dim("smoothing.max_step_accel", v, m))
                .transpose()?,
            u_min: bound("u_min", &config.u_min, f64::NEG_INFINITY)?,
            u_max: bound("u_max", &config.u_max, f64::INFINITY)?,
            history: vec![0.0; 2 * m],
            known: 0,
            plan: vec![0.0; d],
        }))
    }

    /// Smooth `mean` (the optimized plan) into the smoother's own plan and return it:
    /// Savitzky–Golay, then the limits from the executed history, then the bounds.
    pub fn smooth(&mut self, mean: &[f64]) -> Result<&[f64], MppiError> {
        check_len("plan", self.plan.len(), mean.len())?;
        match &self.savgol {
            Some(sg) => sg.smooth(mean, &mut self.plan, self.m)?,
            None => self.plan.copy_from_slice(mean),
        }
        let (older, last) = self.history.split_at(self.m);
        limit_forward(
            &mut self.plan,
            self.m,
            (self.known >= 1).then_some(last),
            (self.known >= 2).then_some(older),
            self.max_change.as_deref(),
            self.max_accel.as_deref(),
            &self.u_min,
            &self.u_max,
        );
        Ok(&self.plan)
    }

    /// Remember `control` as the executed one (`u_{−1}`; the previous one becomes `u_{−2}`).
    pub fn record(&mut self, control: &[f64]) {
        let m = self.m;
        self.history.copy_within(m.., 0);
        self.history[m..].copy_from_slice(control);
        self.known = (self.known + 1).min(2);
    }

    /// Forget the executed controls: the next plan is limited from nothing.
    pub fn reset(&mut self) {
        self.known = 0;
    }

    /// The executed controls the next plan is limited from: `(u_{−1}, u_{−2})`, each `None`
    /// until known.
    #[must_use]
    pub fn history(&self) -> (Option<&[f64]>, Option<&[f64]>) {
        let (older, last) = self.history.split_at(self.m);
        (
            (self.known >= 1).then_some(last),
            (self.known >= 2).then_some(older),
        )
    }

    /// The last smoothed plan (`T·m`).
    #[must_use]
    pub fn plan(&self) -> &[f64] {
        &self.plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_sum_to_one_and_the_centre_row_is_symmetric() {
        for (w, q) in [(3, 1), (5, 2), (7, 3), (9, 4), (11, 2)] {
            let sg = SavitzkyGolay::new(w, q).unwrap();
            for p in 0..w {
                let s: f64 = sg.coefficients(p).iter().sum();
                assert!((s - 1.0).abs() < 1e-13, "w {w} q {q} p {p}: {s}");
            }
            let c = sg.coefficients(w / 2);
            for j in 0..w {
                assert!((c[j] - c[w - 1 - j]).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn order_window_minus_one_interpolates() {
        let sg = SavitzkyGolay::new(5, 4).unwrap();
        for p in 0..5 {
            for (j, c) in sg.coefficients(p).iter().enumerate() {
                let e = if j == p { 1.0 } else { 0.0 };
                assert!((c - e).abs() < 1e-12, "p {p} j {j}: {c}");
            }
        }
    }

    #[test]
    fn limits_hold_from_the_history() {
        let (r, a) = (0.3, 0.1);
        let mut plan = [5.0, -5.0, 5.0, -5.0, 5.0, -5.0];
        limit_forward(
            &mut plan,
            1,
            Some(&[0.2]),
            Some(&[0.0]),
            Some(&[r]),
            Some(&[a]),
            &[-10.0],
            &[10.0],
        );
        let full = [0.0, 0.2].iter().chain(&plan).copied().collect::<Vec<_>>();
        for t in 2..full.len() {
            assert!((full[t] - full[t - 1]).abs() <= r + 1e-12);
            assert!((full[t] - 2.0 * full[t - 1] + full[t - 2]).abs() <= a + 1e-12);
        }
        // moving towards a bound: the plan brakes in time, and every limit holds
        let mut plan = [5.0; 8];
        limit_forward(
            &mut plan,
            1,
            Some(&[0.2]),
            Some(&[0.0]),
            Some(&[r]),
            Some(&[a]),
            &[-1.0],
            &[0.6],
        );
        let full = [0.0, 0.2].iter().chain(&plan).copied().collect::<Vec<_>>();
        for t in 2..full.len() {
            assert!(full[t] <= 0.6);
            assert!((full[t] - full[t - 1]).abs() <= r + 1e-12);
            assert!((full[t] - 2.0 * full[t - 1] + full[t - 2]).abs() <= a + 1e-12);
        }
        assert!((plan[7] - 0.6).abs() < 1e-12, "{plan:?}");
    }

    #[test]
    fn braking_change_is_the_largest_change_that_can_still_stop() {
        // v + S(v) by summing the braking steps
        let reach = |v: f64, a: f64| {
            let (mut sum, mut step) = (v, v - a);
            while step > 0.0 {
                sum += step;
                step -= a;
            }
            sum
        };
        for a in [0.01, 0.05, 0.3, 2.0] {
            for room in [0.0, 1e-9, 0.004, 0.05, 0.3, 1.0, 7.3, 100.0, 1e4] {
                let v = braking_change(room, a);
                assert!(
                    reach(v, a) <= room * (1.0 + 1e-12) + 1e-15,
                    "a {a} room {room} v {v}"
                );
                // and a little more would overshoot
                assert!(
                    reach(v + 1e-9 * (1.0 + v), a) > room,
                    "a {a} room {room} v {v}"
                );
            }
        }
        assert_eq!(braking_change(-1.0, 0.1), 0.0);
        assert_eq!(braking_change(f64::INFINITY, 0.1), f64::INFINITY);
        // far from the bound (the continuous approximation), against the closed form
        let exact = |v: f64, a: f64| {
            let n = (v / a).floor();
            (n + 1.0) * (v - a * n / 2.0)
        };
        let far = braking_change(1e15, 1e-3);
        assert!(exact(far, 1e-3) <= 1e15, "{far}");
        assert!(exact(far * (1.0 + 1e-9), 1e-3) > 1e15, "{far}");
    }

    #[test]
    fn bounds_rate_and_accel_hold_together_near_a_bound() {
        // full speed towards the upper bound: the plan brakes in time
        let (r, a) = (0.3, 0.05);
        let mut plan = [5.0; 40];
        limit_forward(
            &mut plan,
            1,
            Some(&[0.0]),
            Some(&[-0.3]),
            Some(&[r]),
            Some(&[a]),
            &[-2.0],
            &[1.0],
        );
        let full = [-0.3, 0.0].iter().chain(&plan).copied().collect::<Vec<_>>();
        for t in 2..full.len() {
            assert!(full[t] <= 1.0);
            assert!((full[t] - full[t - 1]).abs() <= r + 1e-12);
            assert!(
                (full[t] - 2.0 * full[t - 1] + full[t - 2]).abs() <= a + 1e-12,
                "{full:?}"
            );
        }
        assert!(plan[39] > 1.0 - 1e-9, "reaches the bound: {plan:?}");
    }

    #[test]
    fn no_history_no_limit_on_the_first_entry() {
        let mut plan = [3.0, 3.0];
        limit_forward(
            &mut plan,
            1,
            None,
            None,
            Some(&[0.5]),
            None,
            &[f64::NEG_INFINITY],
            &[f64::INFINITY],
        );
        assert_eq!(plan, [3.0, 3.0]);
    }
}
