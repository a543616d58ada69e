//! Independent Beta distributions on the control box (docs/theory.md §B.4.5).
//!
//! Every coordinate `(t, j)` of a plan is mapped to `y = (u − a_j)/(b_j − a_j) ∈ (0, 1)` with
//! `[a_j, b_j] = [u_min_j, u_max_j]` and gets its own `Beta(α, β)`:
//!
//! ```text
//! p(y) = exp((α−1) log y + (β−1) log(1−y) − log B(α, β)),   T(y) = (log y, log(1−y))
//! A(α, β) = lnΓ(α) + lnΓ(β) − lnΓ(α+β)
//! ∇A      = (ψ(α) − ψ(α+β), ψ(β) − ψ(α+β))                  (the mean parameters)
//! ∇²A     = [[ψ₁(α) − ψ₁(α+β), −ψ₁(α+β)], [−ψ₁(α+β), ψ₁(β) − ψ₁(α+β)]] ≻ 0
//! ```
//!
//! The M-step solves `∇A(α, β) = (Σ w log y, Σ w log(1−y))` by Newton's method with the
//! Hessian `∇²A`, halving the step to keep `α, β > 0` (and an Armijo backtracking far from the
//! solution), started from the weighted method of moments. The concentration is capped,
//! `α + β ≤ κ_max` (`beta_concentration_max`): when the unconstrained maximizer lies beyond the
//! cap, the M-step returns the exact maximizer of `Q̂` on the line `α + β = κ_max` (a 1-D
//! safeguarded Newton solve), which still increases `Q̂`. Samples are clipped to
//! `y ∈ [10⁻⁶, 1 − 10⁻⁶]` before any logarithm, in sampling, densities and fits alike.
//!
//! The cap is the Beta family's spread floor: at mean `y` the standard deviation is at least
//! `√(y(1−y)/(κ_max+1))` of the box width. Without it the concentration grows at every M-step
//! and the warm start carries it over, as for a variance without a floor. The default
//! `κ_max = 30` (at least 9% of the box width at its center) was chosen from closed-loop runs
//! of 8 bounded tasks, seeds 0-9: caps of 1000 / 300 / 100 / 50 / 30 / 20 / 10 succeeded in
//! 17 / 28 / 53 / 61 / 70 / 67 / 63 of 80 runs (too loose a cap collapses, too tight a one
//! cannot hover the quadrotor). The remaining failures are the pendulum, which swings up but
//! balances slightly tilted with any cap, and a few unicycle seeds that arrive late; neither is
//! a collapse. The initial concentration is clamped into `[2, κ_max]` as well.
//!
//! **Schedule spread.** With a [`crate::Schedule`]'s multipliers `s_t` ([`Context::spread`])
//! coordinate `(t, j)` samples the *scaled* Beta
//!
//! ```text
//! p_s: y ~ Beta(α/s_t², β/s_t²)     (same mean α/(α+β), concentration κ/s_t², κ = α+β)
//! Var y = m(1−m)/(κ/s_t² + 1)        (std × √((κ+1)/(κ/s_t²+1)) ≈ s_t for a large κ)
//! ```
//!
//! and `log_prob` and `kl` (instances prepared with the same spread) are those of the scaled
//! Betas. [`Proposal::params`] stay the mean coordinates of the unscaled `Beta(α, β)`. The
//! scaled family is a reparametrization `(α, β) ↦ (α, β)/s_t²` of the same exponential family,
//! so its exact M-step is the usual fit on the scaled shapes: solve
//! `∇A(α', β') = (Σ w log y, Σ w log(1−y))` with the cap `α' + β' ≤ κ_max/s_t²` (the image of
//! `α + β ≤ κ_max`), then `(α, β) = s_t² (α', β')`, and return `∇A(α, β)`. The capped step is
//! therefore still the constrained maximizer of `Q̂` over the scaled family, and the identity
//! `ΔQ̂ = KL(p_s(θ⁺) ‖ p_s(θ_k))` is exact whenever the cap is inactive. To keep the scaled
//! shapes finite, `s_t` is clamped into `[10⁻⁶, 10⁶]` (concentration factors `1/s_t²` within
//! `[10⁻¹², 10¹²]`) in sampling, densities and fits alike.
//!
//! `ψ`, `ψ₁` and `lnΓ` are implemented here ([`digamma`], [`trigamma`], [`ln_gamma`]) by
//! recurrence to `x ≥ 10` and the asymptotic series, accurate to about `1e-14`.

use super::downcast;
use rand_distr::Distribution;

use crate::config::ShiftFill;
use crate::error::{MppiError, check_finite, check_len};
use crate::rng::SampleRng;

use super::{Context, Proposal, shift_rows};

/// Samples are clipped to `[CLIP, 1 − CLIP]` in `y`-units before taking logarithms.
pub const CLIP: f64 = 1e-6;
/// `set_plan` and the initial distribution keep the mean in `[MEAN_MARGIN, 1 − MEAN_MARGIN]`.
const MEAN_MARGIN: f64 = 1e-2;
/// Newton stops when the moment residual (max norm) is below this.
const NEWTON_TOL: f64 = 1e-14;
/// A schedule's spread multipliers are clamped into this range, so that the scaled shapes
/// `(α, β)/s²` stay finite and positive.
const SPREAD_RANGE: (f64, f64) = (1e-6, 1e6);

/// `ln Γ(x)` for `x > 0`: `lnΓ(x) = lnΓ(x+n) − ln(x(x+1)⋯(x+n−1))` with `x + n ≥ 10`, then
/// Stirling's series `(x−½) ln x − x + ½ ln 2π + Σ B_{2k}/(2k(2k−1) x^{2k−1})` (7 terms).
///
/// ```
/// use mppi::proposal::ln_gamma;
/// assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-14);
/// ```
#[must_use]
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let mut x = x;
    let mut shift = 0.0;
    let mut prod = 1.0;
    while x < 10.0 {
        prod *= x;
        if prod > 1e280 {
            shift += prod.ln();
            prod = 1.0;
        }
        x += 1.0;
    }
    shift += prod.ln();
    let r = 1.0 / x;
    let r2 = r * r;
    let series = r
        * (1.0 / 12.0
            + r2 * (-1.0 / 360.0
                + r2 * (1.0 / 1260.0
                    + r2 * (-1.0 / 1680.0
                        + r2 * (1.0 / 1188.0 + r2 * (-691.0 / 360_360.0 + r2 / 156.0))))));
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + series - shift
}

/// Digamma `ψ(x) = d lnΓ(x)/dx` for `x > 0`: `ψ(x) = ψ(x+n) − Σ_{k<n} 1/(x+k)` with
/// `x + n ≥ 10`, then `ψ(x) ~ ln x − 1/(2x) − Σ B_{2k}/(2k x^{2k})` (7 terms).
///
/// ```
/// use mppi::proposal::digamma;
/// assert!((digamma(1.0) + 0.577_215_664_901_532_9).abs() < 1e-14);
/// ```
#[must_use]
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let mut x = x;
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let r2 = 1.0 / (x * x);
    let series = r2
        * (1.0 / 12.0
            - r2 * (1.0 / 120.0
                - r2 * (1.0 / 252.0
                    - r2 * (1.0 / 240.0
                        - r2 * (1.0 / 132.0 - r2 * (691.0 / 32_760.0 - r2 / 12.0))))));
    acc + x.ln() - 0.5 / x - series
}

/// Trigamma `ψ₁(x) = dψ(x)/dx` for `x > 0`: `ψ₁(x) = ψ₁(x+n) + Σ_{k<n} 1/(x+k)²` with
/// `x + n ≥ 10`, then `ψ₁(x) ~ 1/x + 1/(2x²) + Σ B_{2k}/x^{2k+1}` (7 terms).
///
/// ```
/// use mppi::proposal::trigamma;
/// let pi2_6 = std::f64::consts::PI.powi(2) / 6.0;
/// assert!((trigamma(1.0) - pi2_6).abs() < 1e-14);
/// ```
#[must_use]
pub fn trigamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let mut x = x;
    let mut acc = 0.0;
    while x < 10.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let r = 1.0 / x;
    let r2 = r * r;
    let series = r
        * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r2 * (-1.0 / 30.0
                        + r2 * (1.0 / 42.0
                            + r2 * (-1.0 / 30.0
                                + r2 * (5.0 / 66.0 + r2 * (-691.0 / 2730.0 + r2 * 7.0 / 6.0))))))));
    acc + series
}

/// `ln B(α, β) = lnΓ(α) + lnΓ(β) − lnΓ(α+β)`, the log-partition `A`.
fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Mean parameters `∇A(α, β) = (ψ(α) − ψ(α+β), ψ(β) − ψ(α+β)) = (E log y, E log(1−y))`.
#[must_use]
pub fn beta_mean_params(a: f64, b: f64) -> (f64, f64) {
    let dc = digamma(a + b);
    (digamma(a) - dc, digamma(b) - dc)
}

/// Is `(s1, s2)` a valid mean parameter of a Beta, i.e. `e^{s1} + e^{s2} < 1` (Jensen, strict)?
fn in_mean_domain(s1: f64, s2: f64) -> bool {
    s1.is_finite() && s2.is_finite() && s1 < 0.0 && s2 < 0.0 && s1.exp() + s2.exp() < 1.0
}

/// The maximizer of `Q(α, β) = (α−1)s1 + (β−1)s2 − ln B(α, β)` on the line `α + β = κ`:
/// the root of the decreasing `f(α) = s1 − s2 − ψ(α) + ψ(κ−α)` on `(0, κ)` by safeguarded
/// Newton (bisection when Newton leaves the bracket).
fn solve_on_cap(s1: f64, s2: f64, kappa: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0, kappa);
    // guess: the mean e^{s1}/(e^{s1}+e^{s2}) (the geometric means' ratio)
    let (g1, g2) = (s1.exp(), s2.exp());
    let mut a = kappa * (g1 / (g1 + g2)).clamp(1e-6, 1.0 - 1e-6);
    if !a.is_finite() {
        a = 0.5 * kappa;
    }
    for _ in 0..200 {
        let f = s1 - s2 - digamma(a) + digamma(kappa - a);
        if f == 0.0 {
            break;
        }
        if f > 0.0 {
            lo = a;
        } else {
            hi = a;
        }
        let fp = trigamma(a) + trigamma(kappa - a);
        let mut next = a + f / fp;
        if !(next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        let done = (next - a).abs() <= 1e-15 * a || hi - lo <= 1e-15 * hi;
        a = next;
        if done {
            break;
        }
    }
    (a, kappa - a)
}

/// Solve `∇A(α, β) = (s1, s2)` subject to `α + β ≤ κ` (the constrained M-step of one
/// coordinate). `init` is the method-of-moments start `(α₀, β₀)` if available.
///
/// KKT test: at the best point `(α_c, κ − α_c)` on the cap the objective
/// `F = A − (α s1 + β s2)` has equal partials; if `∂F/∂α = ψ(α_c) − ψ(κ) − s1 < 0`, `F`
/// still decreases outward, so the unconstrained minimizer lies beyond the cap and the
/// capped point is the answer. Otherwise Newton with `∇²A` finds the interior solution.
fn solve(s1: f64, s2: f64, init: Option<(f64, f64)>, kappa: f64) -> (f64, f64) {
    let capped = solve_on_cap(s1, s2, kappa);
    let outward = digamma(capped.0) - digamma(kappa) - s1;
    if !in_mean_domain(s1, s2) || outward < 0.0 {
        return capped;
    }
    let (mut a, mut b) = match init {
        Some((a0, b0)) if a0 > 0.0 && b0 > 0.0 && a0.is_finite() && b0.is_finite() => (a0, b0),
        _ => (0.5 * capped.0, 0.5 * capped.1),
    };
    let objective = |a: f64, b: f64| ln_beta(a, b) - a * s1 - b * s2;
    for _ in 0..100 {
        let dc = digamma(a + b);
        let g1 = digamma(a) - dc - s1;
        let g2 = digamma(b) - dc - s2;
        let gmax = g1.abs().max(g2.abs());
        if gmax <= NEWTON_TOL {
            break;
        }
        let tc = trigamma(a + b);
        let (h11, h12, h22) = (trigamma(a) - tc, -tc, trigamma(b) - tc);
        let det = h11 * h22 - h12 * h12;
        if det.is_nan() || det <= 0.0 {
            break;
        }
        let da = -(h22 * g1 - h12 * g2) / det;
        let db = -(h11 * g2 - h12 * g1) / det;
        let mut t = 1.0;
        while (a + t * da <= 0.0 || b + t * db <= 0.0) && t > 1e-30 {
            t *= 0.5;
        }
        let t_pos = t;
        if gmax > 1e-6 {
            // Armijo backtracking on the convex objective, far from the solution only (near
            // it, the decrease is below rounding and Newton converges quadratically); a
            // rounding allowance keeps it from stalling
            let f0 = objective(a, b);
            let slope = g1 * da + g2 * db;
            let allowance = 1e-13 * f0.abs().max(1.0);
            while t > 1e-12 && objective(a + t * da, b + t * db) > f0 + 1e-4 * t * slope + allowance
            {
                t *= 0.5;
            }
            if t <= 1e-12 {
                t = t_pos;
            }
        }
        let (na, nb) = (a + t * da, b + t * db);
        if !(na > 0.0 && nb > 0.0) {
            break;
        }
        let small = t == 1.0 && (na - a).abs() <= 1e-16 * a && (nb - b).abs() <= 1e-16 * b;
        a = na;
        b = nb;
        if small {
            break;
        }
    }
    if !(a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()) || a + b > kappa {
        return capped;
    }
    (a, b)
}

/// Clip `y` into `[CLIP, 1 − CLIP]` (NaN goes to ½).
#[inline]
fn clip_y(y: f64) -> f64 {
    if y.is_nan() {
        0.5
    } else {
        y.clamp(CLIP, 1.0 - CLIP)
    }
}

/// Independent Betas on the control box (`family = "beta"`).
///
/// Parameters (mean coordinates): for every coordinate `c = t·m + j`, the pair
/// `(E log y, E log(1−y))` at entries `2c, 2c+1`. The plan is the mean
/// `a + (b − a) α/(α+β)`.
///
/// Initial distribution: per control dimension, mean at the zero plan clamped into the box
/// (and into `[0.01, 0.99]` in `y`-units) and concentration `c = α + β` chosen so that the
/// Beta's standard deviation `√(m(1−m)/(c+1))` equals `√Σ_jj/(b−a)`, clamped to
/// `c ∈ [2, κ_max]` (a wide `Σ` gives at most the uniform spread of `c = 2`).
///
/// ```
/// use mppi::proposal::{Proposal, BetaFamily};
/// // 2 steps, 1 control in [-1, 1], std 0.5, concentration cap 1000
/// let f = BetaFamily::new(2, 1, &[0.25], &[-1.0], &[1.0], 1e3).unwrap();
/// let mut plan = [1.0; 2];
/// f.plan(&mut plan);
/// assert!(plan.iter().all(|p| p.abs() < 1e-12)); // mean at 0
/// // y = 1/2, c = 0.25/(0.0625) − 1 = 3: Beta(1.5, 1.5), density on u has the 1/(b−a) Jacobian
/// let lp = mppi::proposal::ln_gamma(3.0) - 2.0 * mppi::proposal::ln_gamma(1.5)
///     + 0.5 * 0.5f64.ln() * 2.0 - 2f64.ln();
/// assert!((f.log_prob(&[0.0, 0.0]).unwrap() - 2.0 * lp).abs() < 1e-12);
/// assert!(BetaFamily::new(2, 1, &[0.25], &[f64::NEG_INFINITY], &[1.0], 1e3).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct BetaFamily {
    m: usize,
    lo: Vec<f64>,
    width: Vec<f64>,
    kappa_max: f64,
    /// Mean parameters, `2d` entries.
    theta: Vec<f64>,
    alpha: Vec<f64>,
    beta: Vec<f64>,
    /// `ln B(α, β)` per coordinate.
    ln_b: Vec<f64>,
    /// Cached samplers per coordinate.
    samplers: Vec<rand_distr::Beta<f64>>,
    /// `Σ_t Σ_j ln(b_j − a_j)`, the Jacobian of `u ↦ y` over a whole plan.
    ln_jacobian: f64,
    /// Initial `(α, β)` per control dimension.
    init_alpha: Vec<f64>,
    init_beta: Vec<f64>,
    /// Fit scratch: `Σ w log y`, `Σ w log(1−y)`, `Σ w y`, `Σ w y²` per coordinate.
    acc: Vec<f64>,
    /// The schedule's spread `s_t` per time step as given (all 1 when `!scaled`).
    spread: Vec<f64>,
    /// Per time step: the concentration factor `r_t = 1/s_t²` (`s_t` clamped into
    /// `SPREAD_RANGE`), all 1 when `!scaled`.
    conc_scale: Vec<f64>,
    scaled: bool,
    /// The scaled Betas `(r α, r β)` per coordinate, their `ln B` and samplers (kept in step
    /// with `alpha`, `beta` while `scaled`; stale otherwise).
    scaled_alpha: Vec<f64>,
    scaled_beta: Vec<f64>,
    scaled_ln_b: Vec<f64>,
    scaled_samplers: Vec<rand_distr::Beta<f64>>,
}

impl BetaFamily {
    /// Betas over `horizon` steps of `m` controls in the box `[u_min, u_max]` (both finite),
    /// with initial spread from the per-step covariance `covariance` (row-major `m x m`, only
    /// the diagonal is used) and concentration cap `kappa_max` (> 2).
    pub fn new(
        horizon: usize,
        m: usize,
        covariance: &[f64],
        u_min: &[f64],
        u_max: &[f64],
        kappa_max: f64,
    ) -> Result<Self, MppiError> {
        check_len("u_min", m, u_min.len())?;
        check_len("u_max", m, u_max.len())?;
        check_len("noise covariance", m * m, covariance.len())?;
        if let Some(j) = (0..m).find(|&j| !u_min[j].is_finite()) {
            return Err(MppiError::config(
                "u_min",
                format!(
                    "the beta family needs a bounded control box; u_min[{j}] = {} (set finite u_min and u_max)",
                    u_min[j]
                ),
            ));
        }
        if let Some(j) = (0..m).find(|&j| !u_max[j].is_finite()) {
            return Err(MppiError::config(
                "u_max",
                format!(
                    "the beta family needs a bounded control box; u_max[{j}] = {} (set finite u_min and u_max)",
                    u_max[j]
                ),
            ));
        }
        if let Some(j) =
            (0..m).find(|&j| (u_max[j] - u_min[j]).is_nan() || u_max[j] - u_min[j] <= 0.0)
        {
            return Err(MppiError::config(
                "u_min",
                format!("u_min[{j}] must be below u_max[{j}]"),
            ));
        }
        if !(kappa_max.is_finite() && kappa_max > 2.0) {
            return Err(MppiError::config(
                "proposal.concentration_max",
                format!("must be a finite number > 2, got {kappa_max}"),
            ));
        }
        let width: Vec<f64> = (0..m).map(|j| u_max[j] - u_min[j]).collect();
        let mut init_alpha = vec![0.0; m];
        let mut init_beta = vec![0.0; m];
        for j in 0..m {
            let mean = ((0.0f64.clamp(u_min[j], u_max[j]) - u_min[j]) / width[j])
                .clamp(MEAN_MARGIN, 1.0 - MEAN_MARGIN);
            let var = covariance[j * m + j] / (width[j] * width[j]);
            let c = if var > 0.0 && var.is_finite() {
                (mean * (1.0 - mean) / var - 1.0).clamp(2.0, kappa_max)
            } else {
                2.0
            };
            init_alpha[j] = mean * c;
            init_beta[j] = (1.0 - mean) * c;
        }
        let d = horizon * m;
        let beta0 = rand_distr::Beta::new(1.0, 1.0).map_err(|e| {
            MppiError::config("proposal.concentration_max", format!("internal error: {e}"))
        })?;
        let mut family = BetaFamily {
            m,
            lo: u_min.to_vec(),
            width: width.clone(),
            kappa_max,
            theta: vec![0.0; 2 * d],
            alpha: vec![1.0; d],
            beta: vec![1.0; d],
            ln_b: vec![0.0; d],
            samplers: vec![beta0; d],
            ln_jacobian: horizon as f64 * width.iter().map(|w| w.ln()).sum::<f64>(),
            init_alpha,
            init_beta,
            acc: vec![0.0; 4 * d],
            spread: vec![1.0; horizon],
            conc_scale: vec![1.0; horizon],
            scaled: false,
            scaled_alpha: vec![1.0; d],
            scaled_beta: vec![1.0; d],
            scaled_ln_b: vec![0.0; d],
            scaled_samplers: vec![beta0; d],
        };
        family.reset();
        Ok(family)
    }

    /// Shape parameters `α` per coordinate (`d` entries).
    #[must_use]
    pub fn alpha(&self) -> &[f64] {
        &self.alpha
    }
    /// Shape parameters `β` per coordinate (`d` entries).
    #[must_use]
    pub fn beta(&self) -> &[f64] {
        &self.beta
    }
    /// The concentration cap `κ_max`.
    #[must_use]
    pub fn concentration_max(&self) -> f64 {
        self.kappa_max
    }

    /// Set coordinate `c` to `Beta(a, b)`, refreshing every cache.
    fn set_shape(&mut self, c: usize, a: f64, b: f64) {
        self.alpha[c] = a;
        self.beta[c] = b;
        let (m1, m2) = beta_mean_params(a, b);
        self.theta[2 * c] = m1;
        self.theta[2 * c + 1] = m2;
        self.ln_b[c] = ln_beta(a, b);
        if let Ok(s) = rand_distr::Beta::new(a, b) {
            self.samplers[c] = s;
        }
        if self.scaled {
            self.refresh_scaled(c);
        }
    }

    /// Recompute the scaled Beta `(r_t α, r_t β)` of coordinate `c` (step `t = c / m`).
    fn refresh_scaled(&mut self, c: usize) {
        let r = self.conc_scale[c / self.m];
        let (a, b) = (self.alpha[c] * r, self.beta[c] * r);
        self.scaled_alpha[c] = a;
        self.scaled_beta[c] = b;
        self.scaled_ln_b[c] = ln_beta(a, b);
        if let Ok(s) = rand_distr::Beta::new(a, b) {
            self.scaled_samplers[c] = s;
        }
    }

    /// The shapes `(α, β)`, `ln B` and samplers the samples are drawn from: the scaled ones
    /// while a spread applies.
    fn sampled(&self) -> Shapes<'_> {
        if self.scaled {
            Shapes {
                alpha: &self.scaled_alpha,
                beta: &self.scaled_beta,
                ln_b: &self.scaled_ln_b,
                samplers: &self.scaled_samplers,
            }
        } else {
            Shapes {
                alpha: &self.alpha,
                beta: &self.beta,
                ln_b: &self.ln_b,
                samplers: &self.samplers,
            }
        }
    }

    /// Recompute every cache of coordinates `range` from `alpha`, `beta`.
    fn refresh(&mut self, range: std::ops::Range<usize>) {
        for c in range {
            let (a, b) = (self.alpha[c], self.beta[c]);
            self.set_shape(c, a, b);
        }
    }
}

/// Per-coordinate views of the Betas a [`BetaFamily`] samples from (its own or the scaled ones).
struct Shapes<'a> {
    alpha: &'a [f64],
    beta: &'a [f64],
    ln_b: &'a [f64],
    samplers: &'a [rand_distr::Beta<f64>],
}

impl Proposal for BetaFamily {
    fn name(&self) -> &'static str {
        "beta"
    }
    fn dim(&self) -> usize {
        self.alpha.len()
    }
    fn control_dim(&self) -> usize {
        self.m
    }
    fn params(&self) -> &[f64] {
        &self.theta
    }
    /// Valid iff every pair `(s1, s2)` satisfies `e^{s1} + e^{s2} < 1` (the interior of the
    /// Beta's mean domain). The pair is mapped back to `(α, β)` by the same capped Newton
    /// solve as the M-step, and the stored parameters are `∇A(α, β)` (equal to `theta` when
    /// the cap is inactive, to solver precision).
    fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        check_len("beta parameters", self.theta.len(), theta.len())?;
        check_finite("beta parameters", theta)?;
        if let Some(c) =
            (0..self.alpha.len()).find(|&c| !in_mean_domain(theta[2 * c], theta[2 * c + 1]))
        {
            return Err(MppiError::config(
                "proposal",
                format!(
                    "beta mean parameters of coordinate {c} ({}, {}) are outside the domain exp(s1) + exp(s2) < 1",
                    theta[2 * c],
                    theta[2 * c + 1]
                ),
            ));
        }
        for c in 0..self.alpha.len() {
            let init = Some((self.alpha[c], self.beta[c]));
            let (a, b) = solve(theta[2 * c], theta[2 * c + 1], init, self.kappa_max);
            self.set_shape(c, a, b);
        }
        Ok(())
    }
    fn reset(&mut self) {
        let m = self.m;
        for c in 0..self.alpha.len() {
            self.alpha[c] = self.init_alpha[c % m];
            self.beta[c] = self.init_beta[c % m];
        }
        self.refresh(0..self.alpha.len());
    }
    /// Shift `(α, β)` one step left; `Last` repeats the last step, `Zero` puts the initial
    /// Beta (mean at the clamped zero control) there.
    fn shift(&mut self, fill: ShiftFill) {
        let m = self.m;
        shift_rows(&mut self.alpha, m, fill, &self.init_alpha);
        shift_rows(&mut self.beta, m, fill, &self.init_beta);
        shift_rows(&mut self.theta, 2 * m, ShiftFill::Last, &[]);
        self.ln_b.copy_within(m.., 0);
        self.samplers.copy_within(m.., 0);
        let d = self.alpha.len();
        self.refresh(d - m..d);
        // the spread stays with the time step, not with the shifted Beta
        if self.scaled {
            (0..d).for_each(|c| self.refresh_scaled(c));
        }
    }
    fn plan(&self, out: &mut [f64]) {
        for (c, o) in out.iter_mut().enumerate() {
            let j = c % self.m;
            let (a, b) = (self.alpha[c], self.beta[c]);
            *o = self.lo[j] + self.width[j] * a / (a + b);
        }
    }
    /// Keep each coordinate's concentration `α + β`, move its mean to the plan (clamped into
    /// `[0.01, 0.99]` in `y`-units).
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        check_len("plan", self.alpha.len(), plan.len())?;
        check_finite("plan", plan)?;
        for (c, p) in plan.iter().enumerate() {
            let j = c % self.m;
            let mean = ((p - self.lo[j]) / self.width[j]).clamp(MEAN_MARGIN, 1.0 - MEAN_MARGIN);
            let conc = self.alpha[c] + self.beta[c];
            self.set_shape(c, mean * conc, (1.0 - mean) * conc);
        }
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
                // the scaled caches follow every parameter change while scaled
                if self.scaled && self.spread == s {
                    return Ok(());
                }
                self.spread.copy_from_slice(s);
                for (r, v) in self.conc_scale.iter_mut().zip(s) {
                    let v = v.clamp(SPREAD_RANGE.0, SPREAD_RANGE.1);
                    *r = 1.0 / (v * v);
                }
                self.scaled = s.iter().any(|v| *v != 1.0);
                if self.scaled {
                    (0..self.alpha.len()).for_each(|c| self.refresh_scaled(c));
                }
            }
            None if self.scaled => {
                self.spread.fill(1.0);
                self.conc_scale.fill(1.0);
                self.scaled = false;
            }
            None => {}
        }
        Ok(())
    }
    /// `u = a + (b − a) y`, `y ~ Beta(α, β)` (rand_distr's Cheng samplers; `Beta(α/s_t²,
    /// β/s_t²)` with a spread), clipped to `[10⁻⁶, 1 − 10⁻⁶]`.
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
        let samplers = self.sampled().samplers;
        for (c, ui) in u.iter_mut().enumerate() {
            let j = c % self.m;
            let y = clip_y(samplers[c].sample(rng));
            *ui = self.lo[j] + self.width[j] * y;
        }
    }
    /// `Σ_c [(α_c−1) log y_c + (β_c−1) log(1−y_c) − ln B(α_c, β_c)] − Σ ln(b − a)` with `y`
    /// clipped as in sampling (the scaled shapes with a spread).
    fn log_prob(&self, u: &[f64]) -> Option<f64> {
        let Shapes {
            alpha, beta, ln_b, ..
        } = self.sampled();
        Some({
            let mut total = -self.ln_jacobian;
            for (c, ui) in u.iter().enumerate() {
                let j = c % self.m;
                let y = clip_y((ui - self.lo[j]) / self.width[j]);
                total += (alpha[c] - 1.0) * y.ln() + (beta[c] - 1.0) * (-y).ln_1p() - ln_b[c];
            }
            total
        })
    }
    /// Weighted statistics `s = (Σ w log y, Σ w log(1−y))` per coordinate, then the capped
    /// Newton solve of `∇A(α, β) = s` started at the weighted method of moments
    /// (`c = m(1−m)/v − 1`, `(α₀, β₀) = (m c, (1−m) c)`); `out = ∇A(α⁺, β⁺)`. With a spread
    /// the solve is for the scaled shapes (cap `κ_max/s_t²`), which are then unscaled,
    /// `(α⁺, β⁺) = s_t² (α', β')`.
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
        let d = self.alpha.len();
        let m = self.m;
        self.acc.fill(0.0);
        let mut total = 0.0;
        for (w, u) in weights.iter().zip(samples.chunks_exact(d)) {
            if *w > 0.0 {
                total += w;
                for (c, ui) in u.iter().enumerate() {
                    let j = c % m;
                    let y = clip_y((ui - self.lo[j]) / self.width[j]);
                    let acc = &mut self.acc[4 * c..4 * c + 4];
                    acc[0] += w * y.ln();
                    acc[1] += w * (-y).ln_1p();
                    acc[2] += w * y;
                    acc[3] += w * y * y;
                }
            }
        }
        if total.is_nan() || total <= 0.0 {
            out.copy_from_slice(&self.theta);
            return;
        }
        for c in 0..d {
            let acc = &self.acc[4 * c..4 * c + 4];
            let (s1, s2) = (acc[0] / total, acc[1] / total);
            let mean = acc[2] / total;
            let var = acc[3] / total - mean * mean;
            // r = 1 without a spread: the products and quotients below are then exact
            let r = self.conc_scale[c / m];
            let kappa = self.kappa_max * r;
            let init = if var > 0.0 && var < mean * (1.0 - mean) {
                let conc = (mean * (1.0 - mean) / var - 1.0).min(0.999 * kappa);
                Some((mean * conc, (1.0 - mean) * conc))
            } else {
                None
            };
            let (a, b) = solve(s1, s2, init, kappa);
            let (m1, m2) = beta_mean_params(a / r, b / r);
            out[2 * c] = m1;
            out[2 * c + 1] = m2;
        }
    }
    /// `Σ_c ln B(α₀, β₀) − ln B(α, β) + (α−α₀)ψ(α) + (β−β₀)ψ(β) − (α−α₀+β−β₀)ψ(α+β)`, of
    /// the scaled shapes with a spread; `None` unless `other` has the same box and spread.
    fn kl(&self, other: &dyn Proposal) -> Option<f64> {
        let o = downcast::<BetaFamily>(other)?;
        if o.alpha.len() != self.alpha.len()
            || o.lo != self.lo
            || o.width != self.width
            || o.conc_scale != self.conc_scale
        {
            return None;
        }
        let Shapes {
            alpha, beta, ln_b, ..
        } = self.sampled();
        let Shapes {
            alpha: alpha0,
            beta: beta0,
            ln_b: ln_b0,
            ..
        } = o.sampled();
        let mut total = 0.0;
        for c in 0..alpha.len() {
            let (a, b, a0, b0) = (alpha[c], beta[c], alpha0[c], beta0[c]);
            total += ln_b0[c] - ln_b[c] + (a - a0) * digamma(a) + (b - b0) * digamma(b)
                - (a - a0 + b - b0) * digamma(a + b);
        }
        Some(total)
    }
    fn clone_box(&self) -> Box<dyn Proposal> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::test_support::{
        Z_TOL, assert_sufficient_increase, costs_of, em_step, max_z, recovery_t, sample_set,
        weights_from_costs,
    };
    use crate::proposal::test_support::{prepared, test_spread};

    const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

    fn family(horizon: usize, kappa: f64) -> BetaFamily {
        BetaFamily::new(
            horizon,
            2,
            &[0.25, 0.0, 0.0, 1.0],
            &[-1.0, 0.0],
            &[1.0, 4.0],
            kappa,
        )
        .unwrap()
    }

    #[test]
    fn special_functions_match_known_values() {
        let pi = std::f64::consts::PI;
        let lnfact = |n: u32| (1..n).map(|k| f64::from(k).ln()).sum::<f64>(); // ln (n−1)!
        let harmonic = |n: u32| (1..n).map(|k| 1.0 / f64::from(k)).sum::<f64>();
        let lg = [
            (0.5, 0.5 * pi.ln()),
            (1.0, 0.0),
            (2.0, 0.0),
            (3.5, (1.875 * pi.sqrt()).ln()),
            (10.0, lnfact(10)),
            (100.0, lnfact(100)),
            (1e-3, 6.907_178_885_383_854),
        ];
        for (x, v) in lg {
            let err = (ln_gamma(x) - v).abs();
            assert!(err <= 1e-13 * v.abs().max(1.0), "lnΓ({x}): {err:e}");
        }
        let dg = [
            (1.0, -EULER_GAMMA),
            (0.5, -EULER_GAMMA - 2.0 * 2f64.ln()),
            (2.0, 1.0 - EULER_GAMMA),
            (10.0, harmonic(10) - EULER_GAMMA),
            (100.0, harmonic(100) - EULER_GAMMA),
        ];
        for (x, v) in dg {
            let err = (digamma(x) - v).abs();
            assert!(err <= 1e-14 * v.abs().max(1.0), "ψ({x}): {err:e}");
        }
        let tg = [
            (1.0, pi * pi / 6.0),
            (0.5, pi * pi / 2.0),
            (2.0, pi * pi / 6.0 - 1.0),
            (
                10.0,
                pi * pi / 6.0 - (1..10).map(|k| 1.0 / f64::from(k * k)).sum::<f64>(),
            ),
        ];
        for (x, v) in tg {
            let err = (trigamma(x) - v).abs();
            assert!(err <= 1e-14 * v.abs().max(1.0), "ψ₁({x}): {err:e}");
        }
        // recurrences and derivatives across the switch point x = 10
        for &x in &[1e-4, 0.3, 1.7, 9.2, 9.99, 10.01, 37.0, 1e3] {
            assert!(
                (ln_gamma(x + 1.0) - ln_gamma(x) - x.ln()).abs()
                    < 1e-12 * ln_gamma(x + 1.0).abs().max(1.0)
            );
            assert!((digamma(x + 1.0) - digamma(x) - 1.0 / x).abs() < 1e-13 * (1.0 / x).max(1.0));
            assert!(
                (trigamma(x) - trigamma(x + 1.0) - 1.0 / (x * x)).abs()
                    < 1e-13 * (1.0 / (x * x)).max(1.0)
            );
            let h = 1e-5 * x;
            let fd = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!(
                (fd - digamma(x)).abs() < 1e-6 * digamma(x).abs().max(1.0),
                "x = {x}"
            );
            let fd = (digamma(x + h) - digamma(x - h)) / (2.0 * h);
            assert!((fd - trigamma(x)).abs() < 1e-6 * trigamma(x), "x = {x}");
        }
        assert!(ln_gamma(0.0).is_nan() && digamma(-1.0).is_nan() && trigamma(f64::NAN).is_nan());
    }

    /// H16: the Newton M-step matches moments to ≤ 1e-10, also with skewed weights.
    #[test]
    fn h16_moment_residual() {
        let f = family(5, 1e3);
        let (n, d) = (2000, f.dim());
        let samples = sample_set(&f, n, 1);
        let costs: Vec<f64> = samples
            .chunks_exact(d)
            .map(|u| {
                u.iter()
                    .enumerate()
                    .map(|(c, v)| (v - 0.3 * c as f64 / d as f64).powi(2))
                    .sum()
            })
            .collect();
        let mut worst: f64 = 0.0;
        for lambda in [0.05, 0.5, 5.0] {
            let w = weights_from_costs(&costs, lambda);
            let mut g = f.clone();
            let mut out = vec![0.0; 2 * d];
            g.fit(&samples, &w, &mut out);
            g.set_params(&out).unwrap();
            for c in 0..d {
                let j = c % 2;
                let (mut s1, mut s2) = (0.0, 0.0);
                for (wi, u) in w.iter().zip(samples.chunks_exact(d)) {
                    let y = clip_y((u[c] - f.lo[j]) / f.width[j]);
                    s1 += wi * y.ln();
                    s2 += wi * (1.0 - y).ln();
                }
                assert!(
                    g.alpha[c] + g.beta[c] < f.kappa_max,
                    "cap active at λ = {lambda}"
                );
                let (m1, m2) = beta_mean_params(g.alpha[c], g.beta[c]);
                worst = worst.max((m1 - s1).abs()).max((m2 - s2).abs());
            }
        }
        eprintln!("H16 moment residual: {worst:e}");
        assert!(worst <= 1e-10, "moment residual {worst:e}");
    }

    /// H16: uniform-weight MLE on 1e5 Beta(2, 3) draws recovers (α, β). Tolerance: the MLE
    /// is asymptotically `N((α, β), I⁻¹/N)` with the Fisher information of the exponential
    /// family `I = ∇²A = [[ψ₁(α) − ψ₁(α+β), −ψ₁(α+β)], [−ψ₁(α+β), ψ₁(β) − ψ₁(α+β)]]`, so
    /// `SE(α̂) = √((I⁻¹)₁₁/N)`, `SE(β̂) = √((I⁻¹)₂₂/N)` (0.42% and 0.44% here); both within
    /// `Z_TOL = 5` SE, and `(α, β) × 1.05` must be missed. (Before: 3%, calibrated once.)
    #[test]
    fn h16_mle_recovers_beta_2_3() {
        let mut f = BetaFamily::new(1, 1, &[0.04], &[0.0], &[1.0], 1e3).unwrap();
        f.set_shape(0, 2.0, 3.0);
        let n = 100_000;
        let samples = sample_set(&f, n, 7);
        let w = vec![1.0 / n as f64; n];
        let mut out = vec![0.0; 2];
        let mut g = BetaFamily::new(1, 1, &[0.01], &[0.0], &[1.0], 1e3).unwrap();
        g.fit(&samples, &w, &mut out);
        g.set_params(&out).unwrap();
        let (a, b) = (2.0, 3.0);
        let tc = trigamma(a + b);
        let (i11, i12, i22) = (trigamma(a) - tc, -tc, trigamma(b) - tc);
        let det = i11 * i22 - i12 * i12;
        let (se_a, se_b) = ((i22 / det / n as f64).sqrt(), (i11 / det / n as f64).sqrt());
        let z_at = |s: f64| max_z([(g.alpha[0], s * a, se_a), (g.beta[0], s * b, se_b)]);
        let (z, z_pert) = (z_at(1.0), z_at(1.05));
        eprintln!(
            "H16 MLE: α = {:.5} (SE {se_a:.5}), β = {:.5} (SE {se_b:.5}): max |z| {z:.2} (tol {Z_TOL}); against (α, β) × 1.05: {z_pert:.1}",
            g.alpha[0], g.beta[0]
        );
        assert!(z <= Z_TOL);
        assert!(z_pert > Z_TOL, "no power against a 5% error");
    }

    /// H16: ∇²A ≻ 0 over a wide grid of shapes.
    #[test]
    fn h16_fisher_positive_definite() {
        let grid = [1e-3, 0.05, 0.5, 1.0, 3.0, 20.0, 150.0, 999.0];
        for &a in &grid {
            for &b in &grid {
                let tc = trigamma(a + b);
                let (h11, h12, h22) = (trigamma(a) - tc, -tc, trigamma(b) - tc);
                let det = h11 * h22 - h12 * h12;
                assert!(
                    h11 > 0.0 && h22 > 0.0 && det > 0.0,
                    "({a}, {b}): det {det:e}"
                );
            }
        }
    }

    /// H16: the concentration cap holds for degenerate weights, and the capped M-step still
    /// increases Q̂ and matches the KKT conditions on the cap.
    #[test]
    fn h16_concentration_cap() {
        let kappa = 50.0;
        let f = family(3, kappa);
        let (n, d) = (400, f.dim());
        let samples = sample_set(&f, n, 3);
        let costs: Vec<f64> = samples
            .chunks_exact(d)
            .map(|u| u.iter().map(|v| v * v).sum())
            .collect();
        for lambda in [1e-4, 1e-2] {
            let w = weights_from_costs(&costs, lambda);
            let mut g = f.clone();
            let mut out = vec![0.0; 2 * d];
            g.fit(&samples, &w, &mut out);
            g.set_params(&out).unwrap();
            let q = |fam: &BetaFamily| -> f64 {
                w.iter()
                    .zip(samples.chunks_exact(d))
                    .map(|(wi, u)| wi * fam.log_prob(u).unwrap())
                    .sum()
            };
            assert!(q(&g) >= q(&f) - 1e-10);
            for c in 0..d {
                let conc = g.alpha[c] + g.beta[c];
                assert!(conc <= kappa * (1.0 + 1e-12), "concentration {conc}");
            }
        }
        // one sample with all the weight: the unconstrained M-step has no solution
        let mut w = vec![0.0; n];
        w[5] = 1.0;
        let mut g = f.clone();
        let mut out = vec![0.0; 2 * d];
        g.fit(&samples, &w, &mut out);
        g.set_params(&out).unwrap();
        for c in 0..d {
            assert!((g.alpha[c] + g.beta[c] - kappa).abs() < 1e-9 * kappa);
            assert!(out[2 * c].is_finite() && out[2 * c + 1].is_finite());
        }
    }

    /// H4 for the Beta family: Q̂ gain = KL(p⁺ ‖ p_k) (1e-8 rel.) and KL > 0.1.
    #[test]
    fn h4_sufficient_increase() {
        let mut f = family(4, 1e4);
        let plan: Vec<f64> = (0..f.dim())
            .map(|c| if c % 2 == 0 { 0.3 } else { 1.0 })
            .collect();
        f.set_plan(&plan).unwrap();
        let (n, d) = (3000, f.dim());
        let samples = sample_set(&f, n, 11);
        let costs = costs_of(&samples, d, |u| {
            u.iter()
                .enumerate()
                .map(|(c, v)| (v - if c % 2 == 0 { -0.5 } else { 3.0 }).powi(2))
                .sum()
        });
        let w = weights_from_costs(&costs, 0.5);
        let g = em_step(&f, &samples, &w);
        assert!((0..d).all(|c| g.alpha[c] + g.beta[c] < 1e4));
        let kl = assert_sufficient_increase("H4 beta", &f, &g, &samples, &w).kl;
        assert!(kl > 0.1, "H4 beta: KL {kl} (> 0.1)");
    }

    #[test]
    fn domain_plan_shift_and_errors() {
        let f = family(3, 1e3);
        // unbounded box is an error naming the key
        let err = BetaFamily::new(2, 1, &[1.0], &[-1.0], &[f64::INFINITY], 1e3).unwrap_err();
        assert!(err.to_string().contains("u_max"), "{err}");
        let err = BetaFamily::new(2, 1, &[1.0], &[f64::NEG_INFINITY], &[1.0], 1e3).unwrap_err();
        assert!(err.to_string().contains("u_min"), "{err}");
        // initial: mean at the clamped zero plan, std matched where possible
        let mut plan = vec![9.0; f.dim()];
        f.plan(&mut plan);
        for c in 0..f.dim() {
            let expect = if c % 2 == 0 { 0.0 } else { 0.04 }; // 0 clamped to y ≥ 0.01 on [0, 4]
            assert!((plan[c] - expect).abs() < 1e-12, "{plan:?}");
        }
        let (a, b) = (f.alpha[0], f.beta[0]);
        let sd = 2.0 * (a * b / ((a + b).powi(2) * (a + b + 1.0))).sqrt();
        assert!((sd - 0.5).abs() < 1e-12, "std {sd}");
        // set_params: roundtrip, rejection leaves the family unchanged
        let mut g = f.clone();
        g.set_params(f.params()).unwrap();
        for c in 0..f.dim() {
            assert!((g.alpha[c] - f.alpha[c]).abs() < 1e-9 * f.alpha[c]);
        }
        let before = g.params().to_vec();
        let mut bad = before.clone();
        bad[2] = -0.01; // e^{s1} + e^{s2} > 1
        assert!(g.set_params(&bad).is_err());
        bad[2] = 0.1;
        assert!(g.set_params(&bad).is_err());
        bad[2] = f64::NAN;
        assert!(g.set_params(&bad).is_err());
        assert_eq!(g.params(), &before[..]);
        // set_plan keeps the concentration
        let target: Vec<f64> = (0..f.dim())
            .map(|c| if c % 2 == 0 { 0.5 } else { 3.0 })
            .collect();
        g.set_plan(&target).unwrap();
        let mut got = vec![0.0; f.dim()];
        g.plan(&mut got);
        for c in 0..f.dim() {
            assert!((got[c] - target[c]).abs() < 1e-12);
            assert!((g.alpha[c] + g.beta[c] - f.alpha[c] - f.beta[c]).abs() < 1e-12);
        }
        // shift: Last repeats, Zero restores the initial last step
        let mut h = g.clone();
        h.shift(ShiftFill::Last);
        assert_eq!(h.alpha, g.alpha);
        h.shift(ShiftFill::Zero);
        assert_eq!(h.alpha[4..6], f.alpha[4..6]);
        assert_eq!(h.alpha[..4], g.alpha[2..6]);
        let mut fresh = h.clone();
        fresh.refresh(0..h.dim());
        assert_eq!(fresh.theta, h.theta);
        assert_eq!(fresh.ln_b, h.ln_b);
        // samples inside the box, deterministic; log_prob finite even at the bounds
        let s1 = sample_set(&g, 50, 4);
        assert_eq!(s1, sample_set(&g, 50, 4));
        for u in s1.chunks_exact(6) {
            for (c, v) in u.iter().enumerate() {
                let (lo, hi) = if c % 2 == 0 { (-1.0, 1.0) } else { (0.0, 4.0) };
                assert!(*v > lo && *v < hi);
            }
        }
        assert!(
            g.log_prob(&[-1.0, 0.0, 1.0, 4.0, -5.0, 9.0])
                .unwrap()
                .is_finite()
        );
        assert!(g.kl(&g).unwrap_or(f64::NAN).abs() < 1e-12 && g.kl(&f).unwrap_or(f64::NAN) > 0.0);
    }

    /// `family(horizon, kappa)` with varied moderate shapes (concentration 5 to 8.5).
    fn shaped(horizon: usize, kappa: f64) -> BetaFamily {
        let mut f = family(horizon, kappa);
        for c in 0..f.dim() {
            f.set_shape(c, 2.0 + 0.7 * (c % 3) as f64, 3.0 + 0.5 * (c % 4) as f64);
        }
        f
    }

    /// With a spread the family is the base family at the shapes `(α, β)/s_t²`: its
    /// `log_prob` and `kl` equal those of unscaled instances set to the scaled shapes
    /// (1e-12), and 1e5 samples have the scaled Beta's mean and variance per coordinate
    /// within `Z_TOL` SE (24 statistics) while missing the unscaled variance. The parameters
    /// and the plan do not change; `None` restores the own density bit for bit; invalid
    /// spreads are errors.
    #[test]
    fn spread_is_the_base_family_at_scaled_shapes() {
        let horizon = 6;
        let s: Vec<f64> = (0..horizon).map(|t| 0.5 + 0.5 * (t % 3) as f64).collect();
        let f = shaped(horizon, 1e9);
        let g = prepared(&f, &s);
        assert_eq!(g.params(), f.params());
        let (mut pf, mut pg) = (vec![0.0; f.dim()], vec![0.0; f.dim()]);
        f.plan(&mut pf);
        g.plan(&mut pg);
        assert_eq!(pf, pg);
        let at_scaled = |p: &BetaFamily| {
            let mut h = p.clone();
            h.prepare(&Context::open_loop(0, 0, 1)).unwrap();
            for c in 0..h.dim() {
                let r = 1.0 / s[c / 2].powi(2);
                h.set_shape(c, p.alpha[c] * r, p.beta[c] * r);
            }
            h
        };
        let mut g2 = g.clone();
        let plan: Vec<f64> = (0..g.dim())
            .map(|c| if c % 2 == 0 { -0.4 } else { 2.5 })
            .collect();
        g2.set_plan(&plan).unwrap();
        let (h, h2) = (at_scaled(&g), at_scaled(&g2));
        let u: Vec<f64> = (0..g.dim())
            .map(|c| {
                if c % 2 == 0 {
                    0.1 * c as f64 - 0.5
                } else {
                    0.3 * c as f64
                }
            })
            .collect();
        let lp_err = (g.log_prob(&u).unwrap() - h.log_prob(&u).unwrap()).abs();
        let kl_err = (g2.kl(&g).unwrap() - h2.kl(&h).unwrap()).abs();
        eprintln!(
            "beta spread: log_prob vs base family at scaled shapes {lp_err:.1e}, kl {kl_err:.1e}"
        );
        assert!(lp_err <= 1e-12 && kl_err <= 1e-12 * h2.kl(&h).unwrap().max(1.0));
        assert!(g.kl(&f).is_none());
        // sample moments of y per coordinate
        let n = 100_000;
        let d = g.dim();
        let samples = sample_set(&g, n, 8);
        let (mut z_ok, mut z_own): (f64, f64) = (0.0, 0.0);
        for c in 0..d {
            let j = c % 2;
            let y: Vec<f64> = samples
                .chunks_exact(d)
                .map(|row| (row[c] - g.lo[j]) / g.width[j])
                .collect();
            let mean = y.iter().sum::<f64>() / n as f64;
            let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            let m4 = y.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n as f64;
            let var_of = |a: f64, b: f64| a * b / ((a + b).powi(2) * (a + b + 1.0));
            let (a, b) = (g.scaled_alpha[c], g.scaled_beta[c]);
            let (mu, v) = (a / (a + b), var_of(a, b));
            let se_v = ((m4 - var * var) / n as f64).sqrt();
            z_ok = z_ok.max(max_z([(mean, mu, (v / n as f64).sqrt()), (var, v, se_v)]));
            z_own = z_own.max(max_z([(var, var_of(f.alpha[c], f.beta[c]), se_v)]));
        }
        eprintln!(
            "beta spread sample moments: max |z| {z_ok:.2} (tol {Z_TOL}); against the unscaled variance {z_own:.1}"
        );
        assert!(z_ok <= Z_TOL);
        assert!(z_own > Z_TOL, "no power");
        // None restores the own density, bit for bit
        let mut back = g.clone();
        back.prepare(&Context::open_loop(0, 1, 2)).unwrap();
        assert_eq!(back.log_prob(&u), f.log_prob(&u));
        assert_eq!(sample_set(&back, 20, 3), sample_set(&f, 20, 3));
        let short = Context {
            spread: Some(&s[1..]),
            ..Context::open_loop(0, 0, 1)
        };
        assert!(matches!(
            f.clone().prepare(&short),
            Err(MppiError::DimensionMismatch { .. })
        ));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut v = s.clone();
            v[3] = bad;
            let ctx = Context {
                spread: Some(&v),
                ..Context::open_loop(0, 0, 1)
            };
            match f.clone().prepare(&ctx) {
                Err(MppiError::InvalidConfig { field, .. }) => assert_eq!(field, "schedule"),
                other => panic!("expected a config error for {bad}, got {other:?}"),
            }
        }
        // extreme spreads are clamped: finite shapes, samples and densities
        let extreme: Vec<f64> = (0..horizon)
            .map(|t| if t % 2 == 0 { 1e-200 } else { 1e200 })
            .collect();
        let x = prepared(&f, &extreme);
        let xs = sample_set(&x, 10, 1);
        assert!(
            xs.chunks_exact(d)
                .all(|u| x.log_prob(u).unwrap().is_finite())
        );
    }

    /// With a non-uniform spread (cap off): the conformance suite passes; `ΔQ̂ =
    /// KL(p_s(θ⁺) ‖ p_s(θ_k))` on scaled samples with uneven weights; the fit recovers the
    /// unscaled parameters (|t| ≤ RECOVERY_T). Negative controls: the same fit without the
    /// unscaling (an own-spread clone's fit) misses the parameters and breaks the identity.
    /// With the cap on, a degenerate fit lands on the unscaled cap `α + β = κ_max`.
    #[test]
    fn spread_conformance_em_identity_recovery_and_negative_controls() {
        use crate::testing::check_proposal;
        use crate::testing::theory::{
            EM_IDENTITY_TOLERANCE, MStep, RECOVERY_T, check_em_step, check_fit_recovery,
        };
        let horizon = 6;
        let s = test_spread(horizon);
        let f = shaped(horizon, 1e9);
        let g = prepared(&f, &s);
        check_proposal(&g, 5).unwrap();
        let (n, d) = (3000, g.dim());
        let samples = sample_set(&g, n, 11);
        let costs = costs_of(&samples, d, |u| {
            u.iter()
                .enumerate()
                .map(|(c, v)| (v - if c % 2 == 0 { -0.5 } else { 3.0 }).powi(2))
                .sum()
        });
        let w = weights_from_costs(&costs, 0.5);
        let r = check_em_step(&g, &samples, &w, MStep::Exact).unwrap();
        let rec = check_fit_recovery(&g, 5_000, 30, 5, RECOVERY_T).unwrap();
        // negative controls: fit as if unscaled
        let mut own = g.clone();
        own.prepare(&Context::open_loop(0, 0, 1)).unwrap();
        let t_own = recovery_t(&g, &own, 5_000, 30);
        let mut wrong = vec![0.0; 2 * d];
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
            "beta spread: ΔQ̂ = {:.6}, KL = {:.6}, |ΔQ̂ − KL|/KL = {:.1e} (tol {EM_IDENTITY_TOLERANCE:e}); \
             recovery max |t| = {:.2} (tol {RECOVERY_T}); without unscaling: recovery max |t| = {t_own:.0}, \
             ΔQ̂ = {q_wrong:.4} vs KL = {kl_wrong:.4} ({rel_wrong:.2})",
            r.q_gain,
            r.kl,
            r.gap.abs() / r.kl,
            rec.max_t
        );
        assert!(t_own > RECOVERY_T, "no power");
        assert!(rel_wrong > 1e3 * EM_IDENTITY_TOLERANCE, "no power");
        // the cap applies to the unscaled concentration
        let kappa = 50.0;
        let capped = prepared(&shaped(horizon, kappa), &s);
        let mut w1 = vec![0.0; n];
        w1[5] = 1.0;
        let fitted = em_step(&capped, &samples, &w1);
        for c in 0..d {
            let conc = fitted.alpha[c] + fitted.beta[c];
            assert!(
                (conc - kappa).abs() < 1e-9 * kappa,
                "coordinate {c}: {conc}"
            );
        }
    }
}
