//! The E-step: importance weights from costs.
//!
//! For costs `J_i` and temperature `λ > 0`,
//!
//! ```text
//! w_i = exp(-(J_i - J_min)/λ) / Σ_j exp(-(J_j - J_min)/λ)
//! ```
//!
//! computed in log-sum-exp form, so the weights stay finite for any cost spread. A sample whose
//! cost is NaN or infinite gets weight exactly zero and is counted. The same pass returns the
//! diagnostics the theory talks about: the log-likelihood estimate
//! `L̂ = log( (1/N) Σ_i exp(-J_i/λ) )` (docs/theory.md §C.1, `N` counts every sample, finite or not)
//! and the effective sample size `ESS = 1 / Σ w_i²`.
//!
//! The temperature is chosen by a [`Temperature`] rule (`weighting.temperature` in the config):
//! - `fixed`: `λ` as configured, in cost units;
//! - `std_normalized`: `λ = κ · std(J)` over the finite costs (as DIAL-MPC / model-based
//!   diffusion do), so `κ` is scale free;
//! - `ess_target`: bisection on `log λ` until `ESS / N` hits a target fraction (ESS is
//!   increasing in `λ`, so the bisection is well posed).

use serde::Serialize;

/// The temperature rule with its parameter, as used by [`compute_weights`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Temperature {
    /// Fixed `λ > 0` in cost units.
    Fixed(f64),
    /// `λ = κ · std(J)`, with `κ > 0`.
    StdNormalized(f64),
    /// Target `ESS / N` in `(0, 1]`.
    EssTarget(f64),
}

/// What one weighting pass measured.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct WeightStats {
    /// The temperature that was used.
    pub lambda: f64,
    /// `L̂ = logsumexp(-J/λ) - log N` (docs/theory.md §C.1); `-inf` if no cost is finite.
    pub log_likelihood: f64,
    /// Effective sample size `1 / Σ w²`; 0 if no cost is finite.
    pub ess: f64,
    /// Smallest finite cost (`inf` if none).
    pub min_cost: f64,
    /// Mean of the finite costs (`NaN`-free: 0 if none).
    pub mean_cost: f64,
    /// Largest weight.
    pub max_weight: f64,
    /// Number of samples whose cost was NaN or infinite (they got weight 0).
    pub nonfinite: usize,
    /// Number of finite samples left out by elite truncation (they got weight 0).
    pub truncated: usize,
}

impl WeightStats {
    /// True when no sample had a finite cost, so the weights are all zero and the
    /// planner must keep its previous plan.
    #[must_use]
    pub fn all_nonfinite(&self, samples: usize) -> bool {
        self.nonfinite == samples
    }
}

/// Unnormalized exponentials `e_i = exp(-(J_i - J_min)/λ)` into `out`, returning `(Σe, Σe²)`.
/// Non-finite costs and costs above `threshold` give 0.
fn exponentials(
    costs: &[f64],
    min_cost: f64,
    threshold: f64,
    lambda: f64,
    out: &mut [f64],
) -> (f64, f64) {
    // λ ≥ f64::MIN_POSITIVE (both callers keep it there), so 1/λ ≤ 4.5e307 is finite
    let inv = 1.0 / lambda;
    let mut s1 = 0.0;
    let mut s2 = 0.0;
    for (e, &j) in out.iter_mut().zip(costs) {
        *e = if j.is_finite() && j <= threshold {
            // j − J_min may overflow to +inf for finite costs of opposite extreme signs:
            // exp(−inf) = 0, still a valid weight
            (-(j - min_cost) * inv).exp()
        } else {
            0.0
        };
        s1 += *e;
        s2 += *e * *e;
    }
    (s1, s2)
}

/// Compute normalized weights for `costs` into `weights` and return the diagnostics.
///
/// Invariances (docs/theory.md §B.2): adding a constant to every cost, or scaling costs and a
/// fixed `λ` together, leaves the weights unchanged. If no cost is finite, every weight is 0
/// and `stats.nonfinite == costs.len()`.
///
/// # Panics
/// If `weights.len() != costs.len()` (a programming error inside the planner, not user data).
///
/// ```
/// use mppi::weights::{compute_weights, Temperature};
/// let costs = [1.0, 2.0, f64::NAN, 1.0];
/// let mut w = [0.0; 4];
/// let s = compute_weights(&costs, Temperature::Fixed(1.0), &mut w);
/// assert_eq!(w[2], 0.0);
/// assert_eq!(s.nonfinite, 1);
/// assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-15);
/// assert!((w[0] - w[3]).abs() < 1e-15 && w[0] > w[1]);
/// ```
pub fn compute_weights(
    costs: &[f64],
    temperature: Temperature,
    weights: &mut [f64],
) -> WeightStats {
    weights_below(costs, temperature, f64::INFINITY, weights)
}

/// [`compute_weights`] keeping only the `elites` lowest costs (CEM / TD-MPC2 truncation,
/// docs/theory.md §B.2, B.4.9): every other finite sample gets weight 0 and is counted in
/// `truncated`. Ties at the threshold are all kept. `scratch` needs `costs.len()` entries.
///
/// ```
/// use mppi::weights::{compute_weights_elite, Temperature};
/// let costs = [4.0, 1.0, 3.0, 2.0];
/// let (mut w, mut scratch) = ([0.0; 4], [0.0; 4]);
/// let s = compute_weights_elite(&costs, Temperature::Fixed(1.0), Some(2), &mut w, &mut scratch);
/// assert_eq!((w[0], w[2]), (0.0, 0.0));
/// assert!(w[1] > w[3] && w[3] > 0.0);
/// assert_eq!(s.truncated, 2);
/// ```
///
/// # Panics
/// If `weights` or `scratch` is shorter than `costs`.
pub fn compute_weights_elite(
    costs: &[f64],
    temperature: Temperature,
    elites: Option<usize>,
    weights: &mut [f64],
    scratch: &mut [f64],
) -> WeightStats {
    let threshold = match elites {
        Some(e) if e > 0 => {
            let mut n = 0;
            for &j in costs {
                if j.is_finite() {
                    scratch[n] = j;
                    n += 1;
                }
            }
            if e < n {
                let (_, kth, _) = scratch[..n].select_nth_unstable_by(e - 1, f64::total_cmp);
                *kth
            } else {
                f64::INFINITY
            }
        }
        _ => f64::INFINITY,
    };
    weights_below(costs, temperature, threshold, weights)
}

/// Weights of the samples whose cost is finite and `≤ threshold`; the rest get 0.
fn weights_below(
    costs: &[f64],
    temperature: Temperature,
    threshold: f64,
    weights: &mut [f64],
) -> WeightStats {
    assert_eq!(costs.len(), weights.len(), "weights buffer length");
    let n = costs.len();
    let mut min_cost = f64::INFINITY;
    let mut sum = 0.0;
    let mut kept = 0usize;
    let mut truncated = 0usize;
    for &j in costs {
        if j.is_finite() {
            if j > threshold {
                truncated += 1;
                continue;
            }
            kept += 1;
            sum += j;
            if j < min_cost {
                min_cost = j;
            }
        }
    }
    let nonfinite = n - kept - truncated;
    if kept == 0 {
        weights.fill(0.0);
        return WeightStats {
            lambda: match temperature {
                Temperature::Fixed(l) => l,
                _ => f64::NAN,
            },
            log_likelihood: f64::NEG_INFINITY,
            ess: 0.0,
            min_cost,
            mean_cost: 0.0,
            max_weight: 0.0,
            nonfinite,
            truncated,
        };
    }
    let mean_cost = sum / kept as f64;

    let lambda = match temperature {
        Temperature::Fixed(l) => l,
        Temperature::StdNormalized(kappa) => {
            let mut var = 0.0;
            for &j in costs {
                if j.is_finite() && j <= threshold {
                    let d = j - mean_cost;
                    var += d * d;
                }
            }
            let std = (var / kept as f64).sqrt();
            // All kept costs equal: any λ gives uniform weights; keep λ positive and finite.
            // A spread too wide for f64 (var overflows) uses the largest finite λ.
            if std > 0.0 && std.is_finite() {
                (kappa * std).min(f64::MAX)
            } else if std.is_infinite() {
                f64::MAX
            } else {
                kappa
            }
        }
        Temperature::EssTarget(fraction) => {
            ess_target_lambda(costs, min_cost, threshold, fraction * n as f64, weights)
        }
    };
    // a rule (or a schedule's scale) can push λ out of the normal range: clamp it, so the
    // weights stay finite (a no-op for every ordinary λ)
    let lambda = lambda.clamp(f64::MIN_POSITIVE, f64::MAX);

    let (s1, s2) = exponentials(costs, min_cost, threshold, lambda, weights);
    let inv = 1.0 / s1;
    let mut max_weight = 0.0f64;
    for w in weights.iter_mut() {
        *w *= inv;
        max_weight = max_weight.max(*w);
    }
    WeightStats {
        lambda,
        log_likelihood: -min_cost / lambda + s1.ln() - (n as f64).ln(),
        ess: s1 * s1 / s2,
        min_cost,
        mean_cost,
        max_weight,
        nonfinite,
        truncated,
    }
}

/// Bisection on `log λ` so that `ESS = target` (clamped to the reachable range
/// `[1, #kept]`). Uses `scratch` for the exponentials.
fn ess_target_lambda(
    costs: &[f64],
    min_cost: f64,
    threshold: f64,
    target: f64,
    scratch: &mut [f64],
) -> f64 {
    // Scale of the cost spread sets the bracket; ESS(λ) rises from ~1 to #kept.
    let mut spread = 0.0f64;
    for &j in costs {
        if j.is_finite() && j <= threshold {
            spread = spread.max(j - min_cost);
        }
    }
    if spread <= 0.0 {
        return 1.0; // every kept cost is equal: weights are uniform for any λ
    }
    // finite costs of opposite extreme signs overflow the difference: bracket in range
    let spread = spread.min(f64::MAX);
    let ess_at = |log_lambda: f64, scratch: &mut [f64]| {
        let lambda = log_lambda.exp().clamp(f64::MIN_POSITIVE, f64::MAX);
        let (s1, s2) = exponentials(costs, min_cost, threshold, lambda, scratch);
        s1 * s1 / s2
    };
    // ESS ≈ number of ties at the minimum; not below the smallest λ the weighting uses (it
    // clamps λ to the normal range)
    let mut lo = (spread.ln() - 40.0).max(f64::MIN_POSITIVE.ln());
    // ESS ≈ number of kept samples; λ stays finite
    let mut hi = (spread.ln() + 40.0).min(f64::MAX.ln());
    if ess_at(hi, scratch) <= target {
        return hi.exp();
    }
    if ess_at(lo, scratch) >= target {
        return lo.exp();
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        let ess = ess_at(mid, scratch);
        if (ess - target).abs() <= 1e-6 * target {
            return mid.exp();
        }
        if ess < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // not within the tolerance after 60 halvings of the ≤ 80-nat bracket (narrower than one
    // ulp of log λ by then, so ESS jumps there): the end whose ESS reaches the target
    hi.exp()
}

/// The weighting stage (E-step): normalized weights from costs, and what they measured.
///
/// The contract: for any costs (finite, infinite or NaN) every weight is finite and `≥ 0`,
/// non-finite costs get weight 0, and the weights sum to 1 unless no cost is finite (then all
/// are 0). Log-weight corrections that need the samples (the Williams control-cost term, see
/// [`crate::config::WeightingConfig::control_cost_gamma`]) are added to the costs by the loop
/// while it evaluates them, so a weighting only ever sees costs.
pub trait Weighting: Send + Sync + std::fmt::Debug {
    /// Write the weights of `costs` into `weights` (same length). `temperature_scale` comes
    /// from the [`crate::Schedule`] (1 unless annealing).
    fn weigh(&mut self, costs: &[f64], temperature_scale: f64, weights: &mut [f64]) -> WeightStats;
}

/// `w ∝ exp(−J/λ)` over the finite costs, with a temperature rule and optional elite
/// truncation: MPPI's weighting (and CEM / TD-MPC2's with `elites`).
///
/// ```
/// use mppi::{Softmax, Temperature, Weighting};
/// let mut softmax = Softmax::new(Temperature::Fixed(1.0), Some(2), 4);
/// let mut w = [0.0; 4];
/// let stats = softmax.weigh(&[4.0, 1.0, 3.0, f64::NAN], 1.0, &mut w);
/// assert_eq!((w[0], w[3]), (0.0, 0.0));
/// assert_eq!((stats.truncated, stats.nonfinite), (1, 1));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Softmax {
    temperature: Temperature,
    elites: Option<usize>,
    scratch: Vec<f64>,
}

impl Softmax {
    /// A softmax weighting for `samples` costs (its scratch is allocated here, once).
    #[must_use]
    pub fn new(temperature: Temperature, elites: Option<usize>, samples: usize) -> Self {
        Softmax {
            temperature,
            elites,
            scratch: vec![0.0; if elites.is_some() { samples } else { 0 }],
        }
    }
    /// The temperature rule.
    #[must_use]
    pub fn temperature(&self) -> Temperature {
        self.temperature
    }
}

impl Temperature {
    /// The rule with its temperature multiplied by `scale` (`λ` of the fixed rule, `κ` of
    /// the std-normalized rule; the ESS target sets `λ` itself and ignores it).
    #[must_use]
    pub fn scaled(self, scale: f64) -> Temperature {
        if scale == 1.0 {
            return self;
        }
        match self {
            Temperature::Fixed(l) => Temperature::Fixed(l * scale),
            Temperature::StdNormalized(k) => Temperature::StdNormalized(k * scale),
            t @ Temperature::EssTarget(_) => t,
        }
    }
}

impl Weighting for Softmax {
    fn weigh(&mut self, costs: &[f64], temperature_scale: f64, weights: &mut [f64]) -> WeightStats {
        let temperature = self.temperature.scaled(temperature_scale);
        if self.scratch.len() < costs.len() && self.elites.is_some() {
            self.scratch.resize(costs.len(), 0.0);
        }
        compute_weights_elite(costs, temperature, self.elites, weights, &mut self.scratch)
    }
}

#[cfg(test)]
mod tests {
    //! The weighting against a direct evaluation of its definition: each weight, `λ` of every
    //! temperature rule, and every field of [`WeightStats`] (mutation testing found the
    //! weighting covered only through the planner and the theory crate).
    use super::*;

    /// The definition, term by term: `w_i ∝ exp(−J_i/λ)` over the kept samples (finite,
    /// `≤ threshold`), each exponential computed relative to the kept minimum, summed naively.
    fn reference(costs: &[f64], lambda: f64, threshold: f64) -> (Vec<f64>, WeightStats) {
        let kept: Vec<f64> = costs
            .iter()
            .copied()
            .filter(|j| j.is_finite() && *j <= threshold)
            .collect();
        let min = kept.iter().copied().fold(f64::INFINITY, f64::min);
        let e: Vec<f64> = costs
            .iter()
            .map(|j| {
                if j.is_finite() && *j <= threshold {
                    (-(j - min) / lambda).exp()
                } else {
                    0.0
                }
            })
            .collect();
        let s: f64 = e.iter().sum();
        let w: Vec<f64> = e.iter().map(|v| v / s).collect();
        let n = costs.len() as f64;
        let finite = costs.iter().filter(|j| j.is_finite()).count();
        let stats = WeightStats {
            lambda,
            log_likelihood: -min / lambda + s.ln() - n.ln(),
            ess: 1.0 / w.iter().map(|v| v * v).sum::<f64>(),
            min_cost: min,
            mean_cost: kept.iter().sum::<f64>() / kept.len() as f64,
            max_weight: w.iter().copied().fold(0.0, f64::max),
            nonfinite: costs.len() - finite,
            truncated: finite - kept.len(),
        };
        (w, stats)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    fn assert_matches(label: &str, w: &[f64], s: &WeightStats, rw: &[f64], rs: &WeightStats) {
        for (i, (a, b)) in w.iter().zip(rw).enumerate() {
            assert!(close(*a, *b), "{label}: weight {i} {a} vs {b}");
        }
        for (name, a, b) in [
            ("lambda", s.lambda, rs.lambda),
            ("log_likelihood", s.log_likelihood, rs.log_likelihood),
            ("ess", s.ess, rs.ess),
            ("min_cost", s.min_cost, rs.min_cost),
            ("mean_cost", s.mean_cost, rs.mean_cost),
            ("max_weight", s.max_weight, rs.max_weight),
        ] {
            assert!(close(a, b), "{label}: {name} {a} vs {b}");
        }
        assert_eq!(
            (s.nonfinite, s.truncated),
            (rs.nonfinite, rs.truncated),
            "{label}"
        );
    }

    const COSTS: [f64; 9] = [
        3.5,
        1.25,
        f64::NAN,
        2.0,
        1.25,
        7.0,
        f64::INFINITY,
        4.5,
        2.75,
    ];

    #[test]
    fn fixed_temperature_matches_the_definition() {
        for lambda in [0.3, 1.0, 4.0] {
            let mut w = [0.0; 9];
            let s = compute_weights(&COSTS, Temperature::Fixed(lambda), &mut w);
            let (rw, rs) = reference(&COSTS, lambda, f64::INFINITY);
            assert_matches(&format!("λ = {lambda}"), &w, &s, &rw, &rs);
            assert!(!s.all_nonfinite(9));
        }
    }

    #[test]
    fn std_normalized_temperature_is_kappa_times_the_population_std() {
        let kept: Vec<f64> = COSTS.iter().copied().filter(|j| j.is_finite()).collect();
        let mean = kept.iter().sum::<f64>() / kept.len() as f64;
        let std = (kept.iter().map(|j| (j - mean).powi(2)).sum::<f64>() / kept.len() as f64).sqrt();
        let mut w = [0.0; 9];
        let s = compute_weights(&COSTS, Temperature::StdNormalized(0.7), &mut w);
        let (rw, rs) = reference(&COSTS, 0.7 * std, f64::INFINITY);
        assert_matches("κ = 0.7", &w, &s, &rw, &rs);
        // equal costs: uniform weights with λ = κ
        let s = compute_weights(&[2.0; 4], Temperature::StdNormalized(0.7), &mut w[..4]);
        assert_eq!(s.lambda, 0.7);
        assert!(w[..4].iter().all(|v| close(*v, 0.25)));
    }

    #[test]
    fn ess_target_hits_its_fraction() {
        let costs: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64 * 0.05).collect();
        for fraction in [0.05, 0.2, 0.6] {
            let mut w = vec![0.0; 200];
            let s = compute_weights(&costs, Temperature::EssTarget(fraction), &mut w);
            let (rw, rs) = reference(&costs, s.lambda, f64::INFINITY);
            assert_matches(&format!("ESS/N = {fraction}"), &w, &s, &rw, &rs);
            let target = fraction * 200.0;
            assert!(
                (s.ess - target).abs() <= 1e-6 * target,
                "ESS {} vs target {target}",
                s.ess
            );
        }
        // unreachable targets clamp: every kept cost equal → λ = 1 and uniform weights; a
        // target above the kept count → the widest λ of the bracket, ESS at the kept count
        let mut w = vec![0.0; 4];
        let s = compute_weights(&[3.0; 4], Temperature::EssTarget(0.5), &mut w);
        assert_eq!(s.lambda, 1.0);
        let s = compute_weights(
            &[0.0, 1.0, f64::NAN, 2.0],
            Temperature::EssTarget(1.0),
            &mut w,
        );
        assert!(s.ess > 3.0 - 1e-9 && s.ess <= 3.0, "{}", s.ess);
        assert!(s.lambda >= 2.0 * 40f64.exp() * 0.999);
        let s = compute_weights(&[0.0, 1.0, 5.0, 2.0], Temperature::EssTarget(0.01), &mut w);
        assert!(
            close(s.ess, 1.0) && s.lambda <= 5.0 * (-40f64).exp() * 1.001,
            "{s:?}"
        );
    }

    #[test]
    fn elites_keep_the_lowest_costs_and_their_ties() {
        // the 3 lowest finite costs are 1.25, 1.25, 2.0
        let mut w = [0.0; 9];
        let mut scratch = [0.0; 9];
        let s = compute_weights_elite(
            &COSTS,
            Temperature::Fixed(1.0),
            Some(3),
            &mut w,
            &mut scratch,
        );
        let (rw, rs) = reference(&COSTS, 1.0, 2.0);
        assert_matches("elites 3", &w, &s, &rw, &rs);
        assert_eq!(s.truncated, 4);
        // a tie at the threshold is kept: elites 1 keeps both 1.25
        let s = compute_weights_elite(
            &COSTS,
            Temperature::Fixed(1.0),
            Some(1),
            &mut w,
            &mut scratch,
        );
        assert_eq!((w[1], w[4], s.truncated), (0.5, 0.5, 5));
        // elites ≥ the finite count, 0 or None: no truncation
        for elites in [Some(7), Some(0), None] {
            let s = compute_weights_elite(
                &COSTS,
                Temperature::Fixed(1.0),
                elites,
                &mut w,
                &mut scratch,
            );
            assert_eq!(s.truncated, 0, "{elites:?}");
        }
        // the Softmax stage does the same and follows the schedule's temperature scale
        let mut softmax = Softmax::new(Temperature::Fixed(1.0), Some(3), 9);
        assert_eq!(softmax.temperature(), Temperature::Fixed(1.0));
        let s = softmax.weigh(&COSTS, 2.5, &mut w);
        let (rw, rs) = reference(&COSTS, 2.5, 2.0);
        assert_matches("softmax ×2.5", &w, &s, &rw, &rs);
        // a Softmax built for fewer samples grows its scratch
        let mut small = Softmax::new(Temperature::Fixed(1.0), Some(3), 2);
        let s = small.weigh(&COSTS, 1.0, &mut w);
        assert_eq!(s.truncated, 4);
    }

    #[test]
    fn temperature_rules_scale_their_parameter() {
        assert_eq!(Temperature::Fixed(2.0).scaled(3.0), Temperature::Fixed(6.0));
        assert_eq!(
            Temperature::StdNormalized(0.5).scaled(4.0),
            Temperature::StdNormalized(2.0)
        );
        assert_eq!(
            Temperature::EssTarget(0.1).scaled(4.0),
            Temperature::EssTarget(0.1)
        );
        assert_eq!(Temperature::Fixed(2.0).scaled(1.0), Temperature::Fixed(2.0));
    }

    /// A subnormal `λ` is clamped to the smallest normal one (where `1/λ` is still finite):
    /// ties at the minimum share the weight, everything else gets 0, and ESS counts the ties.
    #[test]
    fn subnormal_temperature_weights_the_ties_at_the_minimum() {
        let lambda: f64 = 1e-310;
        assert!(!(1.0 / lambda).is_finite() && (1.0 / f64::MIN_POSITIVE).is_finite());
        let costs = [1.0, 1.0, 2.0, f64::NAN];
        let mut w = [0.0; 4];
        let s = compute_weights(&costs, Temperature::Fixed(lambda), &mut w);
        assert_eq!(w, [0.5, 0.5, 0.0, 0.0]);
        assert_eq!((s.ess, s.max_weight, s.nonfinite), (2.0, 0.5, 1));
        let mut scratch = [0.0; 4];
        let s = compute_weights_elite(
            &costs,
            Temperature::Fixed(lambda),
            Some(1),
            &mut w,
            &mut scratch,
        );
        assert_eq!((w, s.truncated), ([0.5, 0.5, 0.0, 0.0], 1));
    }

    /// Costs whose spread is subnormal: the ESS bisection's bracket reaches below the normal
    /// range, where `1/λ` would overflow; the weights stay finite and sum to 1.
    #[test]
    fn ess_target_with_a_subnormal_spread_stays_finite() {
        let costs = [0.0, 1e-315, 2e-315, 3e-315];
        for fraction in [0.3, 0.9] {
            let mut w = [0.0; 4];
            let s = compute_weights(&costs, Temperature::EssTarget(fraction), &mut w);
            assert!(w.iter().all(|v| v.is_finite() && *v >= 0.0), "{w:?}");
            assert!(close(w.iter().sum::<f64>(), 1.0), "{w:?}");
            assert!(s.lambda >= f64::MIN_POSITIVE && s.ess.is_finite(), "{s:?}");
        }
    }

    #[test]
    fn no_finite_cost_gives_zero_weights() {
        let mut w = [1.0; 3];
        let s = compute_weights(
            &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY],
            Temperature::Fixed(2.0),
            &mut w,
        );
        assert_eq!(w, [0.0; 3]);
        assert!(s.all_nonfinite(3) && !s.all_nonfinite(4));
        assert_eq!((s.lambda, s.ess, s.nonfinite), (2.0, 0.0, 3));
        assert_eq!(s.log_likelihood, f64::NEG_INFINITY);
        let s = compute_weights(&[f64::NAN], Temperature::StdNormalized(1.0), &mut w[..1]);
        assert!(s.lambda.is_nan());
    }
}
