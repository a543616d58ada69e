//! Categorical distributions over a list of control values (docs/theory.md §B.4.6).
//!
//! Every coordinate `(t, j)` of a plan takes one of the `K` values `v_1, …, v_K` of the config
//! list `categories`, independently with probabilities `π_{tj}`:
//!
//! ```text
//! p(U) = Π_{t,j} π_{tj}(k(u_{tj})),   T = one-hot(k),   mean parameters = π (d x K)
//! M-step: π⁺_{tj}(k) = Σ_i w_i 1[u_{i,tj} = v_k]            (weighted counts, exact)
//! floor:  π ← (1 − ε) π + ε/K                                (ε = category_floor)
//! ```
//!
//! The floor is the MAP M-step under a symmetric Dirichlet prior; it keeps every category
//! alive so `KL` and `log_prob` stay finite. A value is mapped to its category by exact match
//! with the list; a value not in the list (which the family never samples) is mapped to the
//! nearest entry (ties: the lowest index), in `fit` and `log_prob` alike.
//!
//! **Schedule spread.** With a [`crate::Schedule`]'s multipliers `s_t` ([`Context::spread`])
//! step `t` samples from the *tempered* probabilities
//!
//! ```text
//! π_s(k) = π(k)^{1/s_t²} / Σ_j π(j)^{1/s_t²}        (s_t > 1 flatter, s_t < 1 sharper)
//! ```
//!
//! (the Boltzmann distribution of the logits `log π` at temperature `s_t²`, the analogue of a
//! Gaussian's variance times `s_t²`), and `log_prob` and `kl` (instances prepared with the same
//! spread) are those of `π_s`. [`Proposal::params`] stay the untempered `π`. Tempering is a
//! bijection of the open simplex (`π ∝ π_s^{s_t²}`), so the exact M-step of the tempered
//! family is: weighted frequencies `p̂`, then `π ∝ p̂^{s_t²}` normalized, then the floor
//! `π ← (1 − ε) π + ε/K` on the untempered result. Without the floor the identity
//! `ΔQ̂ = KL(π_s⁺ ‖ π_s)` is exact. `s_t` is clamped into `[10⁻⁶, 10⁶]` (exponents `1/s_t²`
//! within `[10⁻¹², 10¹²]`) so that the tempered logits stay finite.

use super::downcast;
use crate::config::ShiftFill;
use crate::error::{MppiError, check_finite, check_len};
use crate::rng::SampleRng;

use super::{Context, Proposal, shift_rows};

/// Row sums of the probabilities may deviate from 1 by at most this in `set_params`.
const SUM_TOL: f64 = 1e-9;
/// A schedule's spread multipliers are clamped into this range, so that the tempered logits
/// `log π / s²` stay finite.
const SPREAD_RANGE: (f64, f64) = (1e-6, 1e6);

/// Independent categoricals over `categories` (`family = "categorical"`).
///
/// Parameters (mean coordinates): the probabilities `π_c(k)` at entry `c·K + k` for
/// coordinate `c = t·m + j`. The plan is the value of the most probable category of each
/// coordinate (ties: the lowest index). The initial distribution is uniform.
///
/// ```
/// use mppi::proposal::{Proposal, Categorical};
/// // 2 steps, 1 control, values {-1, 0, 1}, floor 0.01
/// let mut f = Categorical::new(2, 1, &[-1.0, 0.0, 1.0], 0.01).unwrap();
/// assert!((f.log_prob(&[1.0, -1.0]).unwrap() - 2.0 * (1.0f64 / 3.0).ln()).abs() < 1e-12);
/// f.set_plan(&[1.0, 0.2]).unwrap(); // mass on the nearest categories: 1 and 0
/// let mut plan = [0.0; 2];
/// f.plan(&mut plan);
/// assert_eq!(plan, [1.0, 0.0]);
/// assert!((f.params()[2] - (0.99 + 0.01 / 3.0)).abs() < 1e-15);
/// ```
#[derive(Debug, Clone)]
pub struct Categorical {
    m: usize,
    values: Vec<f64>,
    floor: f64,
    /// `π`, `d·K` entries.
    probs: Vec<f64>,
    /// `log π` (cached for `log_prob`).
    log_probs: Vec<f64>,
    /// The uniform row (`K` entries per control dimension, `m·K`).
    uniform_row: Vec<f64>,
    /// The schedule's spread `s_t` per time step as given (all 1 when `!scaled`).
    spread: Vec<f64>,
    /// Per time step: the tempering exponent `e_t = 1/s_t²` (`s_t` clamped into
    /// `SPREAD_RANGE`), all 1 when `!scaled`.
    temper: Vec<f64>,
    scaled: bool,
    /// The tempered probabilities `π_s ∝ π^{e_t}` and their logs, `d·K` each (kept in step
    /// with `probs` while `scaled`; stale otherwise).
    tempered: Vec<f64>,
    tempered_logs: Vec<f64>,
}

impl Categorical {
    /// Categoricals over `horizon` steps of `m` controls, each over `categories` (at least 2
    /// distinct finite values), with floor `floor ∈ [0, 1)`.
    pub fn new(
        horizon: usize,
        m: usize,
        categories: &[f64],
        floor: f64,
    ) -> Result<Self, MppiError> {
        let k = categories.len();
        if k < 2 {
            return Err(MppiError::config(
                "proposal.categories",
                "the categorical family needs at least 2 control values, e.g. categories = [-1.0, 0.0, 1.0]",
            ));
        }
        if let Some(i) = categories.iter().position(|v| !v.is_finite()) {
            return Err(MppiError::config(
                "proposal.categories",
                format!("entry {i} is not finite"),
            ));
        }
        for i in 0..k {
            if let Some(j) = (0..i).find(|&j| categories[j] == categories[i]) {
                return Err(MppiError::config(
                    "proposal.categories",
                    format!(
                        "entries {j} and {i} are both {}; values must be distinct",
                        categories[i]
                    ),
                ));
            }
        }
        if !(floor.is_finite() && (0.0..1.0).contains(&floor)) {
            return Err(MppiError::config(
                "proposal.floor",
                format!("must be in [0, 1), got {floor}"),
            ));
        }
        let d = horizon * m;
        let mut family = Categorical {
            m,
            values: categories.to_vec(),
            floor,
            probs: vec![0.0; d * k],
            log_probs: vec![0.0; d * k],
            uniform_row: vec![1.0 / k as f64; m * k],
            spread: vec![1.0; horizon],
            temper: vec![1.0; horizon],
            scaled: false,
            tempered: vec![0.0; d * k],
            tempered_logs: vec![0.0; d * k],
        };
        family.reset();
        Ok(family)
    }

    /// Number of categories `K`.
    #[must_use]
    pub fn num_categories(&self) -> usize {
        self.values.len()
    }

    /// The control values `v_1, …, v_K`.
    #[must_use]
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The category index of a control value: exact match, else the nearest value (ties: the
    /// lowest index).
    #[must_use]
    pub fn index_of(&self, u: f64) -> usize {
        if let Some(i) = self.values.iter().position(|v| *v == u) {
            return i;
        }
        let mut best = 0;
        let mut best_dist = f64::INFINITY;
        for (i, v) in self.values.iter().enumerate() {
            let dist = (v - u).abs();
            if dist < best_dist {
                best = i;
                best_dist = dist;
            }
        }
        best
    }

    fn refresh_logs(&mut self) {
        for (l, p) in self.log_probs.iter_mut().zip(&self.probs) {
            *l = p.ln();
        }
        if self.scaled {
            self.refresh_tempered();
        }
    }

    /// `π_s ∝ π^{e_t}` from the cached `log π`, through the logits `e_t log π` shifted by
    /// their maximum (a zero probability stays zero, with log `−∞`).
    fn refresh_tempered(&mut self) {
        let k = self.values.len();
        let rows = self
            .tempered
            .chunks_exact_mut(k)
            .zip(self.tempered_logs.chunks_exact_mut(k))
            .zip(self.log_probs.chunks_exact(k));
        for (c, ((p, lp), log_pi)) in rows.enumerate() {
            let e = self.temper[c / self.m];
            let mut max = f64::NEG_INFINITY;
            for (x, l) in lp.iter_mut().zip(log_pi) {
                *x = l * e;
                max = max.max(*x);
            }
            let mut sum = 0.0;
            for (pk, x) in p.iter_mut().zip(lp.iter()) {
                *pk = (x - max).exp();
                sum += *pk;
            }
            let ln_sum = sum.ln();
            for (pk, x) in p.iter_mut().zip(lp.iter_mut()) {
                *pk /= sum;
                *x -= max + ln_sum;
            }
        }
    }

    /// The probabilities and logs samples are drawn from: the tempered ones while a spread
    /// applies.
    fn sampled(&self) -> (&[f64], &[f64]) {
        if self.scaled {
            (&self.tempered, &self.tempered_logs)
        } else {
            (&self.probs, &self.log_probs)
        }
    }
}

impl Proposal for Categorical {
    fn name(&self) -> &'static str {
        "categorical"
    }
    fn dim(&self) -> usize {
        self.probs.len() / self.values.len()
    }
    fn control_dim(&self) -> usize {
        self.m
    }
    fn params(&self) -> &[f64] {
        &self.probs
    }
    /// Valid iff every row is a probability vector: entries finite and `≥ 0`, sum within
    /// `1e-9` of 1 (rows are stored renormalized).
    fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        check_len("categorical parameters", self.probs.len(), theta.len())?;
        check_finite("categorical parameters", theta)?;
        let k = self.values.len();
        for (c, row) in theta.chunks_exact(k).enumerate() {
            let sum: f64 = row.iter().sum();
            if row.iter().any(|p| *p < 0.0) || (sum - 1.0).abs() > SUM_TOL {
                return Err(MppiError::config(
                    "proposal",
                    format!(
                        "categorical probabilities of coordinate {c} are not a probability vector (sum {sum}, min {})",
                        row.iter().copied().fold(f64::INFINITY, f64::min)
                    ),
                ));
            }
        }
        for (dst, src) in self.probs.chunks_exact_mut(k).zip(theta.chunks_exact(k)) {
            let sum: f64 = src.iter().sum();
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s / sum;
            }
        }
        self.refresh_logs();
        Ok(())
    }
    /// Uniform over the categories.
    fn reset(&mut self) {
        let k = self.values.len();
        self.probs.fill(1.0 / k as f64);
        self.refresh_logs();
    }
    /// Shift one step left; `Last` repeats the last step's probabilities, `Zero` makes the last
    /// step uniform (the uninformed initial distribution; there may be no zero category).
    fn shift(&mut self, fill: ShiftFill) {
        let width = self.m * self.values.len();
        shift_rows(&mut self.probs, width, fill, &self.uniform_row);
        shift_rows(&mut self.log_probs, width, ShiftFill::Last, &[]);
        let n = self.probs.len();
        for i in n - width..n {
            self.log_probs[i] = self.probs[i].ln();
        }
        // the spread stays with the time step, not with the shifted probabilities
        if self.scaled {
            self.refresh_tempered();
        }
    }
    /// The value of the most probable category (ties: the lowest index).
    fn plan(&self, out: &mut [f64]) {
        let k = self.values.len();
        for (o, row) in out.iter_mut().zip(self.probs.chunks_exact(k)) {
            let mut best = 0;
            for i in 1..k {
                if row[i] > row[best] {
                    best = i;
                }
            }
            *o = self.values[best];
        }
    }
    /// All mass on the category nearest to the plan's value, then the floor:
    /// `π = (1 − ε) e_k + ε/K`. (With `ε = 0` the distribution becomes deterministic; with
    /// `std_reset = true` this replaces the uniform reset by a near-one-hot distribution.)
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        check_len("plan", self.dim(), plan.len())?;
        check_finite("plan", plan)?;
        let k = self.values.len();
        let base = self.floor / k as f64;
        for c in 0..plan.len() {
            let idx = self.index_of(plan[c]);
            let row = &mut self.probs[c * k..(c + 1) * k];
            row.fill(base);
            row[idx] += 1.0 - self.floor;
        }
        self.refresh_logs();
        Ok(())
    }
    /// Accepts any spread of `T` finite multipliers `> 0` (each clamped into `[10⁻⁶, 10⁶]`);
    /// `None` (or all ones) restores the own spread.
    fn prepare(&mut self, ctx: &Context<'_>) -> Result<(), MppiError> {
        match ctx.spread {
            Some(s) => {
                check_len("schedule spread", self.spread.len(), s.len())?;
                if let Some(t) = s.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(MppiError::config(
                        "schedule",
                        format!(
                            "spread of time step {t} must be a finite number > 0, got {}",
                            s[t]
                        ),
                    ));
                }
                // the tempered cache follows every parameter change while scaled
                if self.scaled && self.spread == s {
                    return Ok(());
                }
                self.spread.copy_from_slice(s);
                for (e, v) in self.temper.iter_mut().zip(s) {
                    let v = v.clamp(SPREAD_RANGE.0, SPREAD_RANGE.1);
                    *e = 1.0 / (v * v);
                }
                self.scaled = s.iter().any(|v| *v != 1.0);
                if self.scaled {
                    self.refresh_tempered();
                }
            }
            None if self.scaled => {
                self.spread.fill(1.0);
                self.temper.fill(1.0);
                self.scaled = false;
            }
            None => {}
        }
        Ok(())
    }
    /// Inverse-CDF draw of a category per coordinate (from `π_s` with a spread); writes its
    /// value.
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
        let k = self.values.len();
        for (ui, row) in u.iter_mut().zip(self.sampled().0.chunks_exact(k)) {
            let r: f64 = rng.uniform();
            let mut cum = 0.0;
            let mut pick = k - 1;
            for (i, p) in row.iter().enumerate() {
                cum += p;
                if r < cum {
                    pick = i;
                    break;
                }
            }
            // never pick a zero-probability category through rounding of the last bin
            if row[pick] == 0.0 {
                pick = (0..k).rev().find(|&i| row[i] > 0.0).unwrap_or(pick);
            }
            *ui = self.values[pick];
        }
    }
    /// `Σ_c log π_c(k(u_c))` (of `π_s` with a spread).
    fn log_prob(&self, u: &[f64]) -> Option<f64> {
        let logs = self.sampled().1;
        Some({
            let k = self.values.len();
            u.iter()
                .enumerate()
                .map(|(c, ui)| logs[c * k + self.index_of(*ui)])
                .sum()
        })
    }
    /// Weighted counts `π⁺_c(k) = Σ_i w_i 1[u_{i,c} = v_k] / Σ_i w_i`, then the floor. With a
    /// spread the counts are the tempered probabilities' fit `p̂`, untempered first:
    /// `π⁺ ∝ p̂^{s_t²}`, normalized, then the floor.
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
        let d = self.dim();
        let k = self.values.len();
        out.fill(0.0);
        let mut total = 0.0;
        for (w, u) in weights.iter().zip(samples.chunks_exact(d)) {
            if *w > 0.0 {
                total += w;
                for (c, ui) in u.iter().enumerate() {
                    out[c * k + self.index_of(*ui)] += w;
                }
            }
        }
        if total.is_nan() || total <= 0.0 {
            out.copy_from_slice(&self.probs);
            return;
        }
        if self.scaled {
            // the normalizer of p̂ cancels: p̂^{s²} ∝ count^{s²}, via logits shifted by their max
            let (keep, add) = (1.0 - self.floor, self.floor / k as f64);
            for (c, row) in out.chunks_exact_mut(k).enumerate() {
                let e = self.temper[c / self.m];
                let mut max = f64::NEG_INFINITY;
                for p in row.iter_mut() {
                    *p = p.ln() / e;
                    max = max.max(*p);
                }
                let mut sum = 0.0;
                for p in row.iter_mut() {
                    *p = (*p - max).exp();
                    sum += *p;
                }
                for p in row.iter_mut() {
                    *p = *p / sum * keep + add;
                }
            }
            return;
        }
        let (keep, add) = ((1.0 - self.floor) / total, self.floor / k as f64);
        for p in out.iter_mut() {
            *p = *p * keep + add;
        }
    }
    /// `Σ_c Σ_k π_c(k) log(π_c(k)/π⁰_c(k))` (`0 log 0 = 0`; `+∞` if `other` gives zero mass
    /// where `self` does not), of `π_s` with a spread; `None` unless `other` has the same
    /// categories, horizon and spread.
    fn kl(&self, other: &dyn Proposal) -> Option<f64> {
        match downcast::<Categorical>(other) {
            Some(o)
                if o.probs.len() == self.probs.len()
                    && o.values == self.values
                    && o.temper == self.temper =>
            {
                let ((p, lp), lq) = (self.sampled(), o.sampled().1);
                Some(
                    p.iter()
                        .zip(lp)
                        .zip(lq)
                        .map(|((p, lp), lq)| if *p > 0.0 { p * (lp - lq) } else { 0.0 })
                        .sum(),
                )
            }
            _ => None,
        }
    }
    fn clone_box(&self) -> Box<dyn Proposal> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::test_support::prepared;
    use crate::proposal::test_support::{
        Z_TOL, assert_sufficient_increase, costs_of, em_step, max_z, recovery_t, sample_set,
        weights_from_costs,
    };

    /// A non-uniform starting distribution.
    fn skewed(floor: f64) -> Categorical {
        let mut f = Categorical::new(3, 2, &[-10.0, 0.0, 10.0], floor).unwrap();
        let theta: Vec<f64> = (0..6)
            .flat_map(|c| {
                let raw = [1.0 + c as f64, 2.0, 3.0 + (c % 2) as f64];
                let s: f64 = raw.iter().sum();
                raw.map(|r| r / s)
            })
            .collect();
        f.set_params(&theta).unwrap();
        f
    }

    /// H17: π⁺ equals the weighted counts (≤ 1e-12) without a floor; the floor is respected.
    #[test]
    fn h17_weighted_counts_and_floor() {
        let f = skewed(0.0);
        let (n, d, k) = (500, f.dim(), 3);
        let samples = sample_set(&f, n, 2);
        let costs: Vec<f64> = samples
            .chunks_exact(d)
            .map(|u| u.iter().map(|v| (v - 3.0).abs()).sum())
            .collect();
        let w = weights_from_costs(&costs, 5.0);
        let mut out = vec![0.0; d * k];
        let mut g = f.clone();
        g.fit(&samples, &w, &mut out);
        let mut worst: f64 = 0.0;
        for c in 0..d {
            for (i, v) in [-10.0, 0.0, 10.0].iter().enumerate() {
                let count: f64 = w
                    .iter()
                    .zip(samples.chunks_exact(d))
                    .filter(|(_, u)| u[c] == *v)
                    .map(|(wi, _)| wi)
                    .sum();
                worst = worst.max((out[c * k + i] - count).abs());
            }
        }
        eprintln!("H17 counts: max |π⁺ − counts| = {worst:e}");
        assert!(worst <= 1e-12);
        let eps = 0.05;
        let mut g = skewed(eps);
        let mut w1 = vec![0.0; n];
        w1[0] = 1.0; // all weight on one sample: the floor is all that is left elsewhere
        g.fit(&samples, &w1, &mut out);
        for row in out.chunks_exact(k) {
            assert!(row.iter().all(|p| *p >= eps / 3.0 - 1e-15));
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(
                row.iter()
                    .any(|p| (p - (1.0 - eps + eps / 3.0)).abs() < 1e-12)
            );
        }
        g.set_params(&out).unwrap();
    }

    /// H17: the exact single-decision iteration is multiplicative weights,
    /// `π_k ∝ π_0 e^{−k c/λ}` (≤ 1e-12).
    #[test]
    fn h17_exact_single_decision_iteration() {
        let values = [-2.0, -1.0, 0.0, 1.0, 2.0];
        let costs: [f64; 5] = [0.9, 0.3, 0.5, 0.35, 1.4];
        let lambda: f64 = 0.7;
        let mut f = Categorical::new(1, 1, &values, 0.0).unwrap();
        let pi0 = [0.1, 0.15, 0.4, 0.3, 0.05];
        f.set_params(&pi0).unwrap();
        let mut out = [0.0; 5];
        let mut worst: f64 = 0.0;
        for k in 1..=40 {
            // exact E-step: each category once, weighted by π_k(j) e^{−c_j/λ}
            let mut w: Vec<f64> = (0..5)
                .map(|j| f.params()[j] * (-costs[j] / lambda).exp())
                .collect();
            let s: f64 = w.iter().sum();
            w.iter_mut().for_each(|x| *x /= s);
            f.fit(&values, &w, &mut out);
            f.set_params(&out).unwrap();
            let theory: Vec<f64> = (0..5)
                .map(|j| pi0[j] * (-(k as f64) * costs[j] / lambda).exp())
                .collect();
            let z: f64 = theory.iter().sum();
            for j in 0..5 {
                worst = worst.max((f.params()[j] - theory[j] / z).abs());
            }
        }
        eprintln!("H17 exact iteration: max error {worst:e}");
        assert!(worst <= 1e-12);
        let mut plan = [9.0];
        f.plan(&mut plan);
        assert_eq!(plan, [-1.0]); // the cheapest action wins
    }

    /// H4 for the categorical family.
    #[test]
    fn h4_sufficient_increase() {
        let f = skewed(0.0);
        let (n, d) = (800, f.dim());
        let samples = sample_set(&f, n, 9);
        let costs = costs_of(&samples, d, |u| {
            u.iter()
                .enumerate()
                .map(|(c, v)| (v - if c % 2 == 0 { 10.0 } else { -4.0 }).abs())
                .sum()
        });
        let w = weights_from_costs(&costs, 8.0);
        let g = em_step(&f, &samples, &w);
        let kl = assert_sufficient_increase("H4 categorical", &f, &g, &samples, &w).kl;
        assert!(kl > 0.1, "H4 categorical: KL {kl} (> 0.1)");
    }

    #[test]
    fn domain_plan_shift_sampling() {
        let f = skewed(0.01);
        let mut g = f.clone();
        let before = g.params().to_vec();
        let mut bad = before.clone();
        bad[0] -= 0.5;
        bad[1] += 0.5; // negative entry
        assert!(g.set_params(&bad).is_err());
        let mut bad = before.clone();
        bad[0] += 0.1; // sum ≠ 1
        assert!(g.set_params(&bad).is_err());
        assert_eq!(g.params(), &before[..]);
        assert!(
            Categorical::new(1, 1, &[1.0, 1.0], 0.0)
                .unwrap_err()
                .to_string()
                .contains("proposal.categories")
        );
        assert!(Categorical::new(1, 1, &[1.0], 0.0).is_err());
        // ties go to the lowest index; the plan is a category value
        let mut u = Categorical::new(2, 1, &[-1.0, 0.0, 1.0], 0.0).unwrap();
        let mut plan = [9.0; 2];
        u.plan(&mut plan);
        assert_eq!(plan, [-1.0, -1.0]);
        u.set_plan(&[0.6, -7.0]).unwrap();
        u.plan(&mut plan);
        assert_eq!(plan, [1.0, -1.0]);
        assert_eq!(u.params()[..3], [0.0, 0.0, 1.0]);
        // shift
        u.shift(ShiftFill::Last);
        assert_eq!(u.params(), &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        u.shift(ShiftFill::Zero);
        assert!(
            u.params()[3..]
                .iter()
                .all(|p| (p - 1.0 / 3.0).abs() < 1e-15)
        );
        assert!((u.log_prob(&[-1.0, 0.0]).unwrap() - (1.0f64 / 3.0).ln()).abs() < 1e-15);
        assert_eq!(u.log_prob(&[0.0, 0.0]).unwrap(), f64::NEG_INFINITY);
        // sampling frequencies, deterministic: each frequency is Binomial(n, p)/n, within
        // `Z_TOL` SE `√(p(1−p)/n)` (18 statistics; all p > 0 here), and π × 1.05 is missed
        let n = 20_000;
        let s = sample_set(&f, n, 5);
        assert_eq!(s, sample_set(&f, n, 5));
        let z_at = |scale: f64| {
            max_z((0..f.dim()).flat_map(|c| {
                let s = &s;
                let f = &f;
                [-10.0, 0.0, 10.0]
                    .into_iter()
                    .enumerate()
                    .map(move |(i, v)| {
                        let freq =
                            s.chunks_exact(f.dim()).filter(|x| x[c] == v).count() as f64 / n as f64;
                        let p = f.params()[c * 3 + i];
                        assert!(p > 0.0);
                        (freq, scale * p, (p * (1.0 - p) / n as f64).sqrt())
                    })
            }))
        };
        let (z, z_pert) = (z_at(1.0), z_at(1.05));
        eprintln!(
            "categorical frequencies: max |z| {z:.2} (tol {Z_TOL}); against π × 1.05: {z_pert:.1}"
        );
        assert!(z <= Z_TOL && z_pert > Z_TOL);
        let s = sample_set(&u, 2000, 1);
        assert!(s.chunks_exact(2).all(|x| x[0] == -1.0));
        let uniform = Categorical::new(3, 2, &[-10.0, 0.0, 10.0], 0.0).unwrap();
        assert!(
            f.kl(&f).unwrap_or(f64::NAN).abs() < 1e-15
                && f.kl(&uniform).unwrap_or(f64::NAN) > 0.0
                && f.kl(&u).unwrap_or(f64::NAN).is_nan()
        );
    }

    /// `π^{1/s²}` normalized per coordinate (steps of `m` coordinates of `k` entries).
    fn tempered_of(pi: &[f64], s: &[f64], m: usize, k: usize) -> Vec<f64> {
        pi.chunks_exact(k)
            .enumerate()
            .flat_map(|(c, row)| {
                let e = 1.0 / s[c / m].powi(2);
                let raw: Vec<f64> = row.iter().map(|p| p.powf(e)).collect();
                let z: f64 = raw.iter().sum();
                raw.into_iter().map(move |r| r / z)
            })
            .collect()
    }

    /// With a spread (`s = 0.5, 1, 1.5` over the 3 steps) the family samples the tempered
    /// `π_s ∝ π^{1/s²}` (≤ 1e-14 from the closed form; sharper at `s < 1`, flatter at `s > 1`);
    /// `log_prob` and `kl` equal those of unscaled instances set to `π_s` (1e-12); 2e4 sample
    /// frequencies match `π_s` within `Z_TOL` SE and miss `π`. The parameters and the plan do
    /// not change; `None` restores the own density; invalid spreads are errors.
    #[test]
    fn spread_samples_the_tempered_probabilities() {
        let (m, k) = (2, 3);
        let s = [0.5, 1.0, 1.5];
        let f = skewed(0.01);
        let g = prepared(&f, &s);
        assert_eq!(g.params(), f.params());
        let (mut pf, mut pg) = ([0.0; 6], [0.0; 6]);
        f.plan(&mut pf);
        g.plan(&mut pg);
        assert_eq!(pf, pg);
        let want = tempered_of(f.params(), &s, m, k);
        let err = g
            .tempered
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err <= 1e-14, "tempered off by {err:e}");
        let entropy = |row: &[f64]| -row.iter().map(|p| p * p.ln()).sum::<f64>();
        for c in 0..f.dim() {
            let (hf, hg) = (
                entropy(&f.params()[c * k..][..k]),
                entropy(&g.tempered[c * k..][..k]),
            );
            match c / m {
                0 => assert!(hg < hf),
                1 => assert!((hg - hf).abs() < 1e-15),
                _ => assert!(hg > hf),
            }
        }
        // the base family at π_s
        let at_tempered = |p: &Categorical| {
            let mut h = p.clone();
            h.prepare(&Context::open_loop(0, 0, 1)).unwrap();
            h.set_params(&p.tempered.clone()).unwrap();
            h
        };
        let mut g2 = g.clone();
        g2.set_plan(&[10.0, 0.0, -10.0, 10.0, 0.0, 0.0]).unwrap();
        let (h, h2) = (at_tempered(&g), at_tempered(&g2));
        let u = [10.0, -10.0, 0.0, 0.0, -10.0, 10.0];
        let lp_err = (g.log_prob(&u).unwrap() - h.log_prob(&u).unwrap()).abs();
        let kl_err = (g2.kl(&g).unwrap() - h2.kl(&h).unwrap()).abs();
        eprintln!(
            "categorical spread: |π_s − closed form| {err:.1e}, log_prob vs base family at π_s {lp_err:.1e}, kl {kl_err:.1e}"
        );
        assert!(lp_err <= 1e-12 && kl_err <= 1e-12);
        assert!(g.kl(&f).is_none());
        // sample frequencies
        let n = 20_000;
        let samples = sample_set(&g, n, 6);
        let z_at = |target: &[f64]| {
            max_z((0..f.dim()).flat_map(|c| {
                let (samples, want) = (&samples, &want);
                [-10.0, 0.0, 10.0]
                    .into_iter()
                    .enumerate()
                    .map(move |(i, v)| {
                        let freq =
                            samples.chunks_exact(6).filter(|x| x[c] == v).count() as f64 / n as f64;
                        let p = want[c * 3 + i];
                        (freq, target[c * 3 + i], (p * (1.0 - p) / n as f64).sqrt())
                    })
            }))
        };
        let (z, z_own) = (z_at(&want), z_at(f.params()));
        eprintln!(
            "categorical spread frequencies: max |z| {z:.2} (tol {Z_TOL}); against the untempered π {z_own:.1}"
        );
        assert!(z <= Z_TOL);
        assert!(z_own > Z_TOL, "no power");
        // None restores the own density and samples
        let mut back = g.clone();
        back.prepare(&Context::open_loop(0, 1, 2)).unwrap();
        assert_eq!(back.log_prob(&u), f.log_prob(&u));
        assert_eq!(sample_set(&back, 50, 3), sample_set(&f, 50, 3));
        let short = Context {
            spread: Some(&s[1..]),
            ..Context::open_loop(0, 0, 1)
        };
        assert!(matches!(
            f.clone().prepare(&short),
            Err(MppiError::DimensionMismatch { .. })
        ));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut v = s.to_vec();
            v[1] = bad;
            let ctx = Context {
                spread: Some(&v),
                ..Context::open_loop(0, 0, 1)
            };
            match f.clone().prepare(&ctx) {
                Err(MppiError::InvalidConfig { field, .. }) => assert_eq!(field, "schedule"),
                other => panic!("expected a config error for {bad}, got {other:?}"),
            }
        }
        // extreme spreads are clamped: finite tempered logs, one-hot or uniform in the limit
        let x = prepared(&f, &[1e-200, 1e200, 1.0]);
        assert!(x.tempered_logs.iter().all(|l| l.is_finite()));
        assert!(x.tempered[..3].iter().any(|p| (p - 1.0).abs() < 1e-12));
        assert!(
            x.tempered[6..9]
                .iter()
                .all(|p| (p - 1.0 / 3.0).abs() < 1e-9)
        );
    }

    /// With a non-uniform spread (floor off): the conformance suite passes; `ΔQ̂ =
    /// KL(π_s⁺ ‖ π_s)` on tempered samples with uneven weights; the fit recovers the
    /// untempered `π` (|t| ≤ RECOVERY_T). Negative controls: the fit without untempering
    /// (an own-spread clone's fit) misses `π` and breaks the identity.
    #[test]
    fn spread_conformance_em_identity_recovery_and_negative_controls() {
        use crate::testing::check_proposal;
        use crate::testing::theory::{
            EM_IDENTITY_TOLERANCE, MStep, RECOVERY_T, check_em_step, check_fit_recovery,
        };
        let s: Vec<f64> = (0..3).map(|t| 0.5 + 0.25 * (t % 3) as f64).collect();
        let f = skewed(0.0);
        let g = prepared(&f, &s);
        check_proposal(&g, 7).unwrap();
        check_proposal(&prepared(&skewed(0.05), &s), 8).unwrap();
        let (n, d) = (800, g.dim());
        let samples = sample_set(&g, n, 9);
        let costs = costs_of(&samples, d, |u| {
            u.iter()
                .enumerate()
                .map(|(c, v)| (v - if c % 2 == 0 { 10.0 } else { -4.0 }).abs())
                .sum()
        });
        let w = weights_from_costs(&costs, 8.0);
        let r = check_em_step(&g, &samples, &w, MStep::Exact).unwrap();
        let rec = check_fit_recovery(&g, 5_000, 30, 5, RECOVERY_T).unwrap();
        let mut own = g.clone();
        own.prepare(&Context::open_loop(0, 0, 1)).unwrap();
        let t_own = recovery_t(&g, &own, 5_000, 30);
        let mut wrong = vec![0.0; g.params().len()];
        own.clone().fit(&samples, &w, &mut wrong);
        let mut g_wrong = g.clone();
        g_wrong.set_params(&wrong).unwrap();
        let q_wrong: f64 = w
            .iter()
            .zip(samples.chunks_exact(d))
            .map(|(wi, u)| wi * (g_wrong.log_prob(u).unwrap() - g.log_prob(u).unwrap()))
            .sum();
        let kl_wrong = g_wrong.kl(&g).unwrap();
        let rel_wrong = (q_wrong - kl_wrong).abs() / kl_wrong;
        eprintln!(
            "categorical spread: ΔQ̂ = {:.6}, KL = {:.6}, |ΔQ̂ − KL|/KL = {:.1e} (tol {EM_IDENTITY_TOLERANCE:e}); \
             recovery max |t| = {:.2} (tol {RECOVERY_T}); without untempering: recovery max |t| = {t_own:.0}, \
             ΔQ̂ = {q_wrong:.4} vs KL = {kl_wrong:.4} ({rel_wrong:.2})",
            r.q_gain,
            r.kl,
            r.gap.abs() / r.kl,
            rec.max_t
        );
        assert!(t_own > RECOVERY_T, "no power");
        assert!(rel_wrong > 1e3 * EM_IDENTITY_TOLERANCE, "no power");
        // the floor applies to the untempered result
        let eps = 0.05;
        let mut w1 = vec![0.0; n];
        w1[0] = 1.0;
        let mut out = vec![0.0; g.params().len()];
        prepared(&skewed(eps), &s).fit(&samples, &w1, &mut out);
        for row in out.chunks_exact(3) {
            assert!(row.iter().all(|p| *p >= eps / 3.0 - 1e-15));
            assert!(
                row.iter()
                    .any(|p| (p - (1.0 - eps + eps / 3.0)).abs() < 1e-12)
            );
        }
    }
}
