//! Small statistics for tolerances derived from a variance (issue 14: checks that can fail).
//!
//! Every Monte-Carlo comparison of this crate has the form `|estimate − theory| ≤ q·SE (+ a
//! bias allowance)`, with `SE` the standard error of the estimate (the sample standard
//! deviation over independent repetitions divided by `√n`, or a delta-method formula) and `q`
//! the quantile for a stated false-failure probability per check. With repetitions the
//! standardized error is Student-`t` with `n − 1` degrees of freedom, so `q` is a `t`
//! quantile; with a known variance it is the normal quantile (`z = 4.89` for `10⁻⁶`
//! two-sided). Nothing here depends on the planner: these are the textbook special functions
//! (regularized incomplete gamma and beta functions by series and continued fractions,
//! Numerical Recipes §6.2–6.4), accurate to about `1e-12` relative in the range used.
//!
//! ```
//! use mppi_theory::stats;
//! // the normal quantile for a two-sided 1e-6 (z ≈ 4.8916)
//! assert!((stats::normal_quantile(0.5e-6) - 4.891638).abs() < 1e-5);
//! // Student t with 29 degrees of freedom, 2.5% upper tail: 2.04523
//! assert!((stats::t_quantile(0.025, 29.0) - 2.045230).abs() < 1e-5);
//! ```

/// The false-failure probability per check this crate's derived tolerances are set for
/// (two-sided): `10⁻⁶`, i.e. `z = 4.89` standard errors with a known variance.
pub const FALSE_FAILURE: f64 = 1e-6;

use nalgebra::{DMatrix, DVector};

/// `ln Γ(x)` for `x > 0` (Lanczos, `g = 7`, 9 terms; relative error below `1e-14`).
#[must_use]
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // reflection
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized upper incomplete gamma function `Q(a, x) = Γ(a, x)/Γ(a)`.
#[must_use]
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let prefix = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // series for P
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        1.0 - sum * prefix
    } else {
        // continued fraction for Q (modified Lentz)
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-16 {
                break;
            }
        }
        prefix * h
    }
}

/// Regularized incomplete beta function `I_x(a, b)`.
#[must_use]
pub fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    // the continued fraction converges fast for x < (a+1)/(a+b+2)
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of [`beta_inc`] (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    let tiny = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..1000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// Upper tail `P(Z > z)` of the standard normal.
#[must_use]
pub fn normal_sf(z: f64) -> f64 {
    if z >= 0.0 {
        0.5 * gamma_q(0.5, 0.5 * z * z)
    } else {
        1.0 - normal_sf(-z)
    }
}

/// Upper tail `P(T > t)` of Student's `t` with `dof` degrees of freedom.
#[must_use]
pub fn t_sf(t: f64, dof: f64) -> f64 {
    let tail = 0.5 * beta_inc(0.5 * dof, 0.5, dof / (dof + t * t));
    if t >= 0.0 { tail } else { 1.0 - tail }
}

/// Upper tail `P(X > x)` of the chi-square distribution with `dof` degrees of freedom.
#[must_use]
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    gamma_q(0.5 * dof, 0.5 * x)
}

/// Upper tail `P(F > f)` of Fisher's `F` with `(d1, d2)` degrees of freedom.
#[must_use]
pub fn f_sf(f: f64, d1: f64, d2: f64) -> f64 {
    if f <= 0.0 {
        return 1.0;
    }
    beta_inc(0.5 * d2, 0.5 * d1, d2 / (d2 + d1 * f))
}

/// The `x` with `sf(x) = upper` for a decreasing `sf` on `[lo, hi]` (bisection to `1e-12`).
fn invert(sf: impl Fn(f64) -> f64, upper: f64, mut lo: f64, mut hi: f64) -> f64 {
    while sf(hi) > upper {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if sf(mid) > upper {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The normal quantile with upper tail `upper` (`upper < 0.5`).
#[must_use]
pub fn normal_quantile(upper: f64) -> f64 {
    invert(normal_sf, upper, 0.0, 10.0)
}

/// The Student-`t` quantile with upper tail `upper` (`upper < 0.5`) and `dof` degrees of
/// freedom.
#[must_use]
pub fn t_quantile(upper: f64, dof: f64) -> f64 {
    invert(|t| t_sf(t, dof), upper, 0.0, 10.0)
}

/// The chi-square quantile with upper tail `upper` and `dof` degrees of freedom.
#[must_use]
pub fn chi2_quantile(upper: f64, dof: f64) -> f64 {
    invert(|x| chi2_sf(x, dof), upper, 0.0, dof + 10.0)
}

/// The `F` quantile with upper tail `upper` and `(d1, d2)` degrees of freedom.
#[must_use]
pub fn f_quantile(upper: f64, d1: f64, d2: f64) -> f64 {
    invert(|f| f_sf(f, d1, d2), upper, 0.0, 10.0)
}

/// The limit of a Wald statistic of `p` coefficients whose covariance was estimated from `n`
/// independent residuals, for the false-failure probability [`FALSE_FAILURE`]: Hotelling's
/// `T² ~ p(n−1)/(n−p) · F_{p, n−p}` (the `χ²_p` limit plus the uncertainty of the estimated
/// covariance; it tends to the `χ²_p` quantile as `n → ∞`).
#[must_use]
pub fn wald_limit(p: usize, n: usize) -> f64 {
    let (p, n) = (p as f64, n as f64);
    p * (n - 1.0) / (n - p) * f_quantile(FALSE_FAILURE, p, n - p)
}

/// The least-squares fit `Â = (Σ_r y_r x_rᵀ)(Σ_r x_r x_rᵀ)⁻¹` of pairs `(x_r, y_r)` (`y ≈ A x`),
/// with what its Wald statistics need.
#[derive(Debug, Clone)]
pub struct LinearFit {
    /// `Â`.
    pub a_hat: DMatrix<f64>,
    /// The inverse of the heteroscedasticity-robust (HC1) covariance of `vec(Â)`
    /// (column-major): `R/(R − d) · Σ_r (g_r g_rᵀ) ⊗ (ξ_r ξ_rᵀ)`, `g_r = (Σ x xᵀ)⁻¹x_r`,
    /// `ξ_r = y_r − Âx_r`.
    pub cov_inv: DMatrix<f64>,
    /// `(Σ_r x_r x_rᵀ)⁻¹`.
    pub gram_inv: DMatrix<f64>,
    /// Number of pairs `R`.
    pub pairs: usize,
}

impl LinearFit {
    /// Fit `pairs`; `None` if the design or the covariance is singular.
    #[must_use]
    pub fn new(pairs: &[(DVector<f64>, DVector<f64>)]) -> Option<Self> {
        let (d, k) = (pairs.first()?.0.len(), pairs.first()?.1.len());
        let mut xx = DMatrix::<f64>::zeros(d, d);
        let mut yx = DMatrix::<f64>::zeros(k, d);
        for (x, y) in pairs {
            xx += x * x.transpose();
            yx += y * x.transpose();
        }
        let gram_inv = xx.try_inverse()?;
        let a_hat = &yx * &gram_inv;
        let mut v = DMatrix::<f64>::zeros(d * k, d * k);
        for (x, y) in pairs {
            let g = &gram_inv * x;
            let xi = y - &a_hat * x;
            v += (&g * g.transpose()).kronecker(&(&xi * xi.transpose()));
        }
        let r = pairs.len() as f64;
        v *= r / (r - d as f64);
        Some(LinearFit {
            a_hat,
            cov_inv: v.try_inverse()?,
            gram_inv,
            pairs: pairs.len(),
        })
    }

    /// The Wald statistic `vec(M)ᵀ V̂⁻¹ vec(M)` of a deviation `M` of `Â` (e.g. `Â − A₀`).
    #[must_use]
    pub fn wald(&self, m: &DMatrix<f64>) -> f64 {
        let x = DVector::from_column_slice(m.as_slice());
        (x.transpose() * &self.cov_inv * &x)[(0, 0)]
    }

    /// [`LinearFit::wald`] of `Â − a0`.
    #[must_use]
    pub fn wald_against(&self, a0: &DMatrix<f64>) -> f64 {
        self.wald(&(&self.a_hat - a0))
    }

    /// The limit [`wald_limit`] for `Â`'s entries and the number of pairs.
    #[must_use]
    pub fn limit(&self) -> f64 {
        wald_limit(self.a_hat.len(), self.pairs)
    }
}

/// Mean, sample standard deviation and standard error `sd/√n` of `values` (NaN if empty;
/// `sd = se = 0` for a single value).
#[must_use]
pub fn mean_sd_se(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt(), (var / n).sqrt())
}

/// The two-sided quantile multiplying a standard error estimated from `n` independent
/// repetitions: `t_{n−1}(1 − FALSE_FAILURE/2)` (the normal quantile, 4.89, when `n` is huge).
#[must_use]
pub fn rep_quantile(n: usize) -> f64 {
    t_quantile(0.5 * FALSE_FAILURE, (n.max(2) - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_functions_match_tables() {
        // ln Γ
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
        // normal tails (Abramowitz & Stegun 26.2)
        assert!((normal_sf(1.959963984540054) - 0.025).abs() < 1e-13);
        assert!((normal_sf(5.0) - 2.866515718791939e-7).abs() < 1e-18);
        assert!((normal_sf(-1.0) - 0.841344746068543).abs() < 1e-13);
        // t tails: t_5(0.975) = 2.570582, t_1 is Cauchy
        assert!((t_sf(2.570581835636314, 5.0) - 0.025).abs() < 1e-12);
        assert!((t_sf(1.0, 1.0) - 0.25).abs() < 1e-13);
        assert!((t_sf(-1.0, 1.0) - 0.75).abs() < 1e-13);
        // chi-square: χ²_2 is exponential with mean 2
        assert!((chi2_sf(3.0, 2.0) - (-1.5f64).exp()).abs() < 1e-14);
        assert!((chi2_sf(26.29622760486423, 16.0) - 0.05).abs() < 1e-11);
        // quantiles invert the tails
        assert!((normal_quantile(0.5 * FALSE_FAILURE) - 4.891638475).abs() < 1e-7);
        assert!((t_quantile(0.025, 5.0) - 2.570581835636314).abs() < 1e-9);
        assert!((chi2_quantile(0.05, 16.0) - 26.29622760486423).abs() < 1e-8);
        // F: F_{1,ν} = t_ν², F_{4,20}(0.95) = 2.866081
        assert!((f_sf(2.570581835636314f64.powi(2), 1.0, 5.0) - 0.05).abs() < 1e-12);
        assert!((f_quantile(0.05, 4.0, 20.0) - 2.866081).abs() < 1e-5);
        // Hotelling's limit tends to the χ² one
        let chi = chi2_quantile(FALSE_FAILURE, 16.0);
        assert!(wald_limit(16, 60) > wald_limit(16, 400) && wald_limit(16, 400) > chi);
        assert!((wald_limit(16, 1_000_000) - chi).abs() < 0.01 * chi);
        // t approaches the normal
        assert!((rep_quantile(1_000_000) - 4.8916).abs() < 1e-3);
        assert!(rep_quantile(6) > rep_quantile(30));
    }

    #[test]
    fn linear_fit_recovers_a_map_and_its_wald_statistic_is_chi_square_sized() {
        // y = A x + noise with a fixed pseudo-random design
        let a = DMatrix::from_row_slice(2, 2, &[0.9, 0.1, -0.2, 0.5]);
        let mut state = 1u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let pairs: Vec<_> = (0..500)
            .map(|_| {
                let x = DVector::from_vec(vec![uniform(), uniform()]);
                let noise = DVector::from_vec(vec![0.01 * uniform(), 0.01 * uniform()]);
                let y = &a * &x + noise;
                (x, y)
            })
            .collect();
        let fit = LinearFit::new(&pairs).unwrap();
        assert!((&fit.a_hat - &a).amax() < 0.01);
        let w = fit.wald_against(&a);
        assert!(w < fit.limit(), "{w}");
        // a 5% error in A is many standard errors away
        assert!(fit.wald_against(&(&a * 1.05)) > fit.limit());
    }

    #[test]
    fn mean_sd_se_of_a_small_sample() {
        let (m, sd, se) = mean_sd_se(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-15);
        assert!((sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert!((se - sd / 2.0).abs() < 1e-15);
        assert!(mean_sd_se(&[]).0.is_nan());
    }
}
