//! The scalar pieces of the agent, in `f64` and free of the network library so that they can
//! be checked against closed forms (docs/theory.md §G.2, §G.3): symlog and two-hot
//! encodings, SimNorm, the tanh-squashed Gaussian, the running value scale and the
//! closed-form maximizer of the KL-regularized objective for a Gaussian prior.

/// `symlog(x) = sign(x) ln(1 + |x|)`.
///
/// ```
/// use mppi_learn::agent::math::{symexp, symlog};
/// assert!((symexp(symlog(-3.5)) + 3.5).abs() < 1e-12);
/// ```
#[must_use]
pub fn symlog(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

/// `symexp(x) = sign(x) (e^{|x|} − 1)`, the inverse of [`symlog`].
#[must_use]
pub fn symexp(x: f64) -> f64 {
    x.signum() * x.abs().exp_m1()
}

/// TD-MPC2's discrete regression target: `bins` equally spaced points on `[vmin, vmax]` in
/// symlog space; a scalar `x` is the two-hot vector on the two bins around `symlog(x)`
/// (weights proportional to closeness), and a distribution `p` over bins decodes to
/// `symexp(Σ_i p_i b_i)`. Encoding then decoding returns `x` exactly (up to rounding) inside
/// the range and the clamped value outside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoHot {
    /// Number of bins (≥ 2).
    pub bins: usize,
    /// Lowest bin (symlog units).
    pub vmin: f64,
    /// Highest bin (symlog units).
    pub vmax: f64,
}

impl Default for TwoHot {
    /// TD-MPC2's 101 bins on `[−10, 10]`.
    fn default() -> Self {
        TwoHot {
            bins: 101,
            vmin: -10.0,
            vmax: 10.0,
        }
    }
}

impl TwoHot {
    /// The spacing of the bins.
    #[must_use]
    pub fn bin_size(&self) -> f64 {
        (self.vmax - self.vmin) / (self.bins - 1) as f64
    }

    /// The bin centres `b_i` (symlog units).
    #[must_use]
    pub fn centres(&self) -> Vec<f64> {
        (0..self.bins)
            .map(|i| self.vmin + i as f64 * self.bin_size())
            .collect()
    }

    /// Write the two-hot vector of `x` into `out` (`bins` entries).
    ///
    /// ```
    /// use mppi_learn::agent::math::TwoHot;
    /// let th = TwoHot::default();
    /// let mut p = vec![0.0; th.bins];
    /// th.encode(12.5, &mut p);
    /// assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    /// assert!((th.decode(&p) - 12.5).abs() < 1e-9);
    /// ```
    pub fn encode(&self, x: f64, out: &mut [f64]) {
        out.fill(0.0);
        let y = symlog(x).clamp(self.vmin, self.vmax);
        let pos = (y - self.vmin) / self.bin_size();
        let lo = (pos.floor() as usize).min(self.bins - 2);
        let frac = (pos - lo as f64).clamp(0.0, 1.0);
        out[lo] = 1.0 - frac;
        out[lo + 1] += frac;
    }

    /// The scalar a distribution `p` over the bins stands for: `symexp(Σ p_i b_i)`.
    #[must_use]
    pub fn decode(&self, p: &[f64]) -> f64 {
        let step = self.bin_size();
        let mean: f64 = p
            .iter()
            .enumerate()
            .map(|(i, w)| w * (self.vmin + i as f64 * step))
            .sum();
        symexp(mean)
    }
}

/// SimNorm: split `x` into groups of `group` entries and replace each by its softmax, so the
/// latent is a concatenation of points on simplices (each group sums to 1).
///
/// ```
/// use mppi_learn::agent::math::simnorm;
/// let mut z = [1.0, 2.0, 3.0, -1.0, 0.0, 5.0];
/// simnorm(&mut z, 3);
/// assert!((z[..3].iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// assert!((z[3..].iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// ```
pub fn simnorm(x: &mut [f64], group: usize) {
    for g in x.chunks_mut(group.max(1)) {
        let max = g.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for v in g.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in g.iter_mut() {
            *v /= sum;
        }
    }
}

/// `log N(x; m, s²)` in one dimension.
#[must_use]
pub fn normal_log_density(x: f64, m: f64, s: f64) -> f64 {
    let z = (x - m) / s;
    -0.5 * z * z - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// The policy's squashed Gaussian in one dimension: `a = tanh(u)`, `u ~ N(m, s²)`.
///
/// Its density is `π(a) = N(atanh a; m, s²) / (1 − a²)`; entropy and KL have no closed form
/// and are estimated by Monte Carlo where needed (the tests compare the estimators against
/// quadrature).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TanhGaussian {
    /// Mean of the pre-squash Gaussian.
    pub mean: f64,
    /// Standard deviation of the pre-squash Gaussian (> 0).
    pub std: f64,
}

impl TanhGaussian {
    /// The action for the standard normal draw `eps`: `tanh(m + s ε)`.
    #[must_use]
    pub fn sample(&self, eps: f64) -> f64 {
        (self.mean + self.std * eps).tanh()
    }

    /// `log π(a)` for `a ∈ (−1, 1)` (−∞ outside).
    #[must_use]
    pub fn log_density(&self, a: f64) -> f64 {
        if a.abs() >= 1.0 {
            return f64::NEG_INFINITY;
        }
        normal_log_density(a.atanh(), self.mean, self.std) - (1.0 - a * a).ln()
    }

    /// `log π(a)` written through the draw: `log N(ε; 0, 1) − ln s − ln(1 − tanh²(m + s ε))`,
    /// the form the network uses (stable where `a` rounds to ±1).
    #[must_use]
    pub fn log_density_of_draw(&self, eps: f64) -> f64 {
        let u = self.mean + self.std * eps;
        // ln(1 − tanh² u) = 2 (ln 2 − |u| − softplus(−2|u|))
        let log_jac = 2.0 * (std::f64::consts::LN_2 - u.abs() - softplus(-2.0 * u.abs()));
        normal_log_density(eps, 0.0, 1.0) - self.std.ln() - log_jac
    }
}

/// `ln(1 + e^x)` without overflow.
#[must_use]
pub fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

/// `KL(N(m1, s1²) ‖ N(m2, s2²))` in one dimension.
///
/// ```
/// use mppi_learn::agent::math::gaussian_kl;
/// assert_eq!(gaussian_kl(0.3, 0.7, 0.3, 0.7), 0.0);
/// assert!(gaussian_kl(0.0, 1.0, 1.0, 1.0) - 0.5 < 1e-12);
/// ```
#[must_use]
pub fn gaussian_kl(m1: f64, s1: f64, m2: f64, s2: f64) -> f64 {
    let r = s1 / s2;
    0.5 * (r * r + ((m1 - m2) / s2).powi(2) - 1.0) - r.ln()
}

/// The maximizer of `J_λ(π) = E_π[Q/S] − λ KL(π ‖ p)` over all distributions, for the
/// Gaussian prior `p = N(m_p, s_p²)` and the quadratic `Q(a) = −½ h (a − a*)²`
/// (docs/theory.md §G.3, α = 0): `π* ∝ p e^{Q/(λS)} = N(m, s²)` with
/// `1/s² = 1/s_p² + h/(λS)` and `m = s² (m_p/s_p² + h a*/(λS))`. Returns `(m, s)`.
///
/// ```
/// use mppi_learn::agent::math::tilted_gaussian;
/// let (m, _) = tilted_gaussian(0.0, 1.0, 2.0, 1.0, 1e-9, 1.0); // λ → 0: the maximizer of Q
/// assert!((m - 1.0).abs() < 1e-6);
/// let (m, s) = tilted_gaussian(0.0, 1.0, 2.0, 1.0, 1e9, 1.0); // λ → ∞: the prior
/// assert!(m.abs() < 1e-6 && (s - 1.0).abs() < 1e-6);
/// ```
#[must_use]
pub fn tilted_gaussian(
    m_p: f64,
    s_p: f64,
    h: f64,
    a_star: f64,
    lambda: f64,
    scale: f64,
) -> (f64, f64) {
    let prec = 1.0 / (s_p * s_p) + h / (lambda * scale);
    let var = 1.0 / prec;
    let m = var * (m_p / (s_p * s_p) + h * a_star / (lambda * scale));
    (m, var.sqrt())
}

/// TD-MPC2's running value scale `S`: an exponential moving average (rate `tau`) of the
/// spread between the 5th and 95th percentiles of a batch of values, floored at 1. The policy
/// divides values by it so its loss does not depend on the reward scale.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunningScale {
    /// The current scale.
    pub value: f64,
    /// EMA rate.
    pub tau: f64,
}

impl Default for RunningScale {
    fn default() -> Self {
        RunningScale {
            value: 1.0,
            tau: 0.01,
        }
    }
}

impl RunningScale {
    /// Move the scale toward `max(1, q95 − q5)` of `values` (non-finite entries ignored).
    pub fn update(&mut self, values: &[f64]) {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return;
        }
        v.sort_by(f64::total_cmp);
        let spread = (percentile(&v, 0.95) - percentile(&v, 0.05)).max(1.0);
        self.value += self.tau * (spread - self.value);
    }
}

/// Linear-interpolation percentile of sorted values (`q ∈ [0, 1]`), as numpy's default.
#[must_use]
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Read a number written by serde_json, where NaN is written as `null`: `null` reads back as
/// NaN (records keep NaN for "not measured yet").
pub fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Option::<f64>::deserialize(d).map(|v| v.unwrap_or(f64::NAN))
}

/// TD-MPC2's discount heuristic for episodes of `length` decisions:
/// `clip((L/5 − 1)/(L/5), 0.95, 0.995)` (0.99 for 500).
#[must_use]
pub fn discount_for(length: usize) -> f64 {
    let f = length as f64 / 5.0;
    ((f - 1.0) / f).clamp(0.95, 0.995)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hot_round_trip_and_clamp() {
        let th = TwoHot::default();
        let mut p = vec![0.0; th.bins];
        for x in [-1e4, -7.3, -1.0, 0.0, 1e-7, 0.37, 2.0, 150.0, 1e4] {
            th.encode(x, &mut p);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(p.iter().all(|w| *w >= 0.0));
            let back = th.decode(&p);
            let clamped = symexp(symlog(x).clamp(th.vmin, th.vmax));
            assert!(
                (back - clamped).abs() <= 1e-9 * clamped.abs().max(1.0),
                "{x} -> {back}"
            );
        }
    }

    #[test]
    fn tanh_gaussian_density_forms_agree_and_integrate_to_one() {
        let d = TanhGaussian {
            mean: 0.4,
            std: 0.8,
        };
        for eps in [-2.0, -0.3, 0.0, 1.1, 2.5] {
            let a = d.sample(eps);
            let direct = d.log_density(a);
            assert!((direct - d.log_density_of_draw(eps)).abs() < 1e-9);
        }
        // ∫ π(a) da over (−1, 1) by the midpoint rule
        let n = 200_000;
        let h = 2.0 / n as f64;
        let total: f64 = (0..n)
            .map(|i| d.log_density(-1.0 + (i as f64 + 0.5) * h).exp() * h)
            .sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
    }

    #[test]
    fn running_scale_floors_at_one_and_tracks_spread() {
        let mut s = RunningScale::default();
        s.update(&[0.1, 0.2]);
        assert_eq!(s.value, 1.0);
        let values: Vec<f64> = (0..=100).map(f64::from).collect();
        for _ in 0..2000 {
            s.update(&values);
        }
        assert!((s.value - 90.0).abs() < 1e-6, "{}", s.value);
    }

    #[test]
    fn discount_matches_td_mpc2() {
        assert!((discount_for(500) - 0.99).abs() < 1e-15);
        assert_eq!(discount_for(10), 0.95);
        assert_eq!(discount_for(100_000), 0.995);
    }
}
