//! Branch-free elementary functions for dynamics and cost kernels.
//!
//! `f64::sin` and `rem_euclid` call into libm once per sample-step and never vectorize; they
//! were 40% of a pendulum control step's instructions. The functions here are written without
//! branches or library calls (rounding by the `1.5·2⁵²` trick, quadrant selection by bit masks),
//! so a loop over lanes of a block vectorizes. Accuracy: within a few ulp of libm for
//! `|x| < 1e5` (tested against `std` below).
//!
//! - `sin_cos`/`cos`: Cody–Waite reduction `r = x − k π/2` with a two-part `π/2`, then Taylor
//!   polynomials on `|r| ≤ π/4` (truncation error below `5e-17`), then the quadrant of `k`.
//! - `sin` alone: reduction by `π` and one odd polynomial on `|r| ≤ π/2` (half the work).
//! - `wrap_angle`: `a − 2π round(a / 2π)`, the angle in `[−π, π]`.
//! - `ln`: exponent from the bits, mantissa `m ∈ [√½, √2)`, then
//!   `ln m = 2 atanh((m − 1)/(m + 1))` as an odd series (truncation error below `1e-18`).

/// `1.5 · 2⁵²`: adding and subtracting it rounds an `f64` of magnitude `< 2⁵¹` to the nearest
/// integer, and leaves that integer in the low mantissa bits.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;
const FRAC_2_PI: f64 = std::f64::consts::FRAC_2_PI;
/// `π/2` split so that `k · PIO2_HI` is exact for `|k| < 2²⁰`.
const PIO2_HI: f64 = 1.570_796_326_734_125_6;
const PIO2_LO: f64 = 6.077_100_506_506_192e-11;
const FRAC_1_TAU: f64 = 1.0 / std::f64::consts::TAU;
const FRAC_1_PI: f64 = std::f64::consts::FRAC_1_PI;
/// `π` split so that `k · PI_HI` is exact for `|k| < 2²⁰`.
const PI_HI: f64 = 2.0 * PIO2_HI;
const PI_LO: f64 = 2.0 * PIO2_LO;
/// `2π` split so that `k · TAU_HI` is exact for `|k| < 2²⁰`.
const TAU_HI: f64 = 4.0 * PIO2_HI;
const TAU_LO: f64 = 4.0 * PIO2_LO;

/// `x` rounded to the nearest integer (ties to even), and that integer modulo 4.
#[inline(always)]
fn round_with_quadrant(x: f64) -> (f64, u64) {
    let t = x + ROUND_MAGIC;
    (t - ROUND_MAGIC, t.to_bits() & 3)
}

/// `sin r` and `cos r` for `|r| ≤ π/4` (Taylor series to degrees 15 and 16).
///
/// The two polynomials in `r²` are evaluated by Estrin's scheme (pairs, then pairs of pairs
/// with `r⁴` and `r⁸`): a dependency chain of 7 operations instead of Horner's 14. Block
/// loops are bound by that chain, not by the number of operations, so this is what sets the
/// speed of a pendulum rollout.
#[inline(always)]
fn sin_cos_kernel(r: f64) -> (f64, f64) {
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    // sin r = r + r·r²·S(r²), S = Σ_k s_k r^{2k}
    let s01 = -1.0 / 6.0 + r2 * (1.0 / 120.0);
    let s23 = -1.0 / 5040.0 + r2 * (1.0 / 362_880.0);
    let s45 = -1.0 / 39_916_800.0 + r2 * (1.0 / 6_227_020_800.0);
    let s6 = -1.0 / 1_307_674_368_000.0;
    let s = r2 * ((s01 + r4 * s23) + r8 * (s45 + r4 * s6));
    // cos r = 1 − r²/2 + r²·r²·C(r²), C = Σ_k c_k r^{2k}
    let c01 = 1.0 / 24.0 + r2 * (-1.0 / 720.0);
    let c23 = 1.0 / 40_320.0 + r2 * (-1.0 / 3_628_800.0);
    let c45 = 1.0 / 479_001_600.0 + r2 * (-1.0 / 87_178_291_200.0);
    let c6 = 1.0 / 20_922_789_888_000.0;
    let c = r2 * ((c01 + r4 * c23) + r8 * (c45 + r4 * c6));
    (r + r * s, 1.0 - 0.5 * r2 + r2 * c)
}

/// Reduce `x` to `r ∈ [−π/4, π/4]` and the quadrant `k mod 4` of `x = k π/2 + r`.
#[inline(always)]
fn reduce(x: f64) -> (f64, u64) {
    let (k, q) = round_with_quadrant(x * FRAC_2_PI);
    ((x - k * PIO2_HI) - k * PIO2_LO, q)
}

/// `(sin x, cos x)`, branch-free.
///
/// ```
/// let (s, c) = mppi::fastmath::sin_cos(1.0);
/// assert!((s - 1.0f64.sin()).abs() < 1e-15 && (c - 1.0f64.cos()).abs() < 1e-15);
/// ```
#[inline(always)]
#[must_use]
pub fn sin_cos(x: f64) -> (f64, f64) {
    let (r, q) = reduce(x);
    let (s, c) = sin_cos_kernel(r);
    // quadrant q: sin x = [s, c, −s, −c][q], cos x = [c, −s, −c, s][q]
    let swap = q & 1 == 1;
    let (a, b) = if swap { (c, s) } else { (s, c) };
    let sin_neg = q & 2 == 2;
    let cos_neg = (q + 1) & 2 == 2;
    (if sin_neg { -a } else { a }, if cos_neg { -b } else { b })
}

/// `sin x`, branch-free, on its own: reduction by `π` (`x = kπ + r`, `|r| ≤ π/2`,
/// `sin x = (−1)^k sin r`) and one odd Taylor polynomial to degree 21 (truncation error below
/// `2e-18` at `π/2`). Half the work of [`sin_cos`] when only the sine is needed.
///
/// ```
/// assert!((mppi::fastmath::sin(3.0) - 3.0f64.sin()).abs() < 1e-15);
/// ```
#[inline(always)]
#[must_use]
pub fn sin(x: f64) -> f64 {
    let (k, q) = round_with_quadrant(x * FRAC_1_PI);
    let r = (x - k * PI_HI) - k * PI_LO;
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    // sin r = r + r·r²·S(r²), S = Σ_{k=0}^{9} (−1)^{k+1} r^{2k} / (2k+3)!, by Estrin's scheme
    let s01 = -1.0 / 6.0 + r2 * (1.0 / 120.0);
    let s23 = -1.0 / 5040.0 + r2 * (1.0 / 362_880.0);
    let s45 = -1.0 / 39_916_800.0 + r2 * (1.0 / 6_227_020_800.0);
    let s67 = -1.0 / 1_307_674_368_000.0 + r2 * (1.0 / 355_687_428_096_000.0);
    let s89 = -1.0 / 121_645_100_408_832_000.0 + r2 * (1.0 / 51_090_942_171_709_440_000.0);
    let poly = (s01 + r4 * s23) + r8 * ((s45 + r4 * s67) + r8 * s89);
    let v = r + r * (r2 * poly);
    if q & 1 == 1 { -v } else { v }
}

/// `cos x`, branch-free.
///
/// ```
/// assert!((mppi::fastmath::cos(3.0) - 3.0f64.cos()).abs() < 1e-15);
/// ```
#[inline(always)]
#[must_use]
pub fn cos(x: f64) -> f64 {
    sin_cos(x).1
}

/// The angle `a` wrapped into `[−π, π]`: `a − 2π round(a / 2π)`, branch-free.
///
/// ```
/// use std::f64::consts::PI;
/// assert!((mppi::fastmath::wrap_angle(3.0 * PI + 0.5) - (-PI + 0.5)).abs() < 1e-14);
/// ```
#[inline(always)]
#[must_use]
pub fn wrap_angle(a: f64) -> f64 {
    let (k, _) = round_with_quadrant(a * FRAC_1_TAU);
    (a - k * TAU_HI) - k * TAU_LO
}

/// `2⁵²`, as the bit pattern OR-ed with a small integer to convert it to `f64` exactly.
const TWO_52_BITS: u64 = 0x4330_0000_0000_0000;
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;

/// Natural logarithm of a positive, normal `x` (not subnormal, not zero), branch-free.
///
/// ```
/// assert!((mppi::fastmath::ln(10.0) - 10.0f64.ln()).abs() < 1e-15);
/// ```
#[inline(always)]
#[must_use]
pub fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    // biased exponent as an exact f64: 2⁵² + e_biased − (2⁵² + 1023)
    let mut e = f64::from_bits(TWO_52_BITS | (bits >> 52)) - (4_503_599_627_370_496.0 + 1023.0);
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m > std::f64::consts::SQRT_2;
    m = if big { 0.5 * m } else { m };
    e = if big { e + 1.0 } else { e };
    let f = (m - 1.0) / (m + 1.0);
    let f2 = f * f;
    let series = f2
        * (1.0 / 3.0
            + f2 * (1.0 / 5.0
                + f2 * (1.0 / 7.0
                    + f2 * (1.0 / 9.0
                        + f2 * (1.0 / 11.0
                            + f2 * (1.0 / 13.0
                                + f2 * (1.0 / 15.0
                                    + f2 * (1.0 / 17.0
                                        + f2 * (1.0 / 19.0 + f2 * (1.0 / 21.0))))))))));
    let ln_m = 2.0 * f + 2.0 * f * series;
    e * LN2_HI + (ln_m + e * LN2_LO)
}

/// Single-precision versions for float32 kernels (8 lanes per AVX2 vector instead of 4): the
/// same branch-free structure with `f32` constants and shorter polynomials, accurate to about
/// 2 ulp of `f32` for `|x| < 1e3` (tested against `f64` `std` below).
pub mod single {
    use std::f32::consts::{FRAC_1_PI, FRAC_2_PI, TAU};

    /// `π/2 = PIO2_HI + PIO2_LO`, `PIO2_HI` with 8 significant bits so `k · PIO2_HI` is exact
    /// for `|k| < 2¹⁵`.
    const PIO2_HI: f32 = 1.570_312_5;
    const PIO2_LO: f32 = 4.838_268e-4;
    /// `π` and `2π` split the same way.
    const PI_HI: f32 = 2.0 * PIO2_HI;
    const PI_LO: f32 = 2.0 * PIO2_LO;
    const TAU_HI: f32 = 4.0 * PIO2_HI;
    const TAU_LO: f32 = 4.0 * PIO2_LO;

    /// `(sin x, cos x)` in `f32`: `r = x − k π/2` with `|r| ≤ π/4`, Taylor polynomials to
    /// degrees 9 and 10 (truncation below `2e-9`), quadrant from `k`.
    ///
    /// ```
    /// let (s, c) = mppi::fastmath::single::sin_cos(1.0);
    /// assert!((s - 1.0f32.sin()).abs() < 3e-7 && (c - 1.0f32.cos()).abs() < 3e-7);
    /// ```
    #[inline(always)]
    #[must_use]
    pub fn sin_cos(x: f32) -> (f32, f32) {
        let k = (x * FRAC_2_PI).round_ties_even();
        let r = (x - k * PIO2_HI) - k * PIO2_LO;
        let r2 = r * r;
        let s =
            r + r * r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 / 362_880.0)));
        let c = 1.0 - 0.5 * r2
            + r2 * r2
                * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40_320.0 - r2 / 3_628_800.0)));
        // the quadrant k mod 4 in float arithmetic (an `as i32` would add saturation checks)
        let q = k - 4.0 * (0.25 * k).floor();
        let (a, b) = if q == 1.0 || q == 3.0 { (c, s) } else { (s, c) };
        (
            if q >= 2.0 { -a } else { a },
            if q == 1.0 || q == 2.0 { -b } else { b },
        )
    }

    /// `sin x` in `f32` on its own: reduction by `π`, one odd polynomial to degree 11 on
    /// `|r| ≤ π/2` (truncation below `6e-8`), sign from the parity of `k`.
    ///
    /// ```
    /// assert!((mppi::fastmath::single::sin(3.0) - 3.0f32.sin()).abs() < 3e-7);
    /// ```
    #[inline(always)]
    #[must_use]
    pub fn sin(x: f32) -> f32 {
        let k = (x * FRAC_1_PI).round_ties_even();
        let r = (x - k * PI_HI) - k * PI_LO;
        let r2 = r * r;
        let p = -1.0 / 6.0
            + r2 * (1.0 / 120.0
                + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362_880.0 - r2 / 39_916_800.0)));
        let v = r + r * r2 * p;
        // (−1)^k in float arithmetic
        if 0.5 * k != (0.5 * k).floor() { -v } else { v }
    }

    /// The angle `a` wrapped into `[−π, π]` in `f32`.
    ///
    /// ```
    /// use std::f32::consts::PI;
    /// assert!((mppi::fastmath::single::wrap_angle(3.0 * PI + 0.5) - (-PI + 0.5)).abs() < 1e-6);
    /// ```
    #[inline(always)]
    #[must_use]
    pub fn wrap_angle(a: f32) -> f32 {
        let k = (a * (1.0 / TAU)).round_ties_even();
        (a - k * TAU_HI) - k * TAU_LO
    }
}

/// The floating-point type of a rollout kernel: `f64`, or `f32` for float32 rollouts
/// ([`crate::config::Precision`]). A task writes its block kernel once, generic over `R: Real`,
/// and calls it from both [`crate::Dynamics::step_block`] (`f64`) and
/// [`crate::Dynamics::step_block_f32`] (`f32`, 8 lanes per AVX2 vector instead of 4).
///
/// Constants go through [`Real::c`], so the `f64` instance computes exactly what a hand-written
/// `f64` kernel with the same operation order computes (bit for bit), and the `f32` instance
/// rounds each constant once.
///
/// ```
/// use mppi::fastmath::Real;
/// fn energy<R: Real>(th: R, thd: R) -> R {
///     R::c(0.5) * thd * thd + R::c(10.0) * (R::c(1.0) - th.sin_cos().1)
/// }
/// assert!((f64::from(energy(0.3f32, 1.0f32)) - energy(0.3f64, 1.0f64)).abs() < 1e-5);
/// ```
pub trait Real:
    Copy
    + Default
    + PartialOrd
    + Send
    + Sync
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + 'static
{
    /// The constant or value `v` in this type (rounded to nearest for `f32`).
    fn c(v: f64) -> Self;
    /// This value as an `f64` (exact).
    fn to_f64(self) -> f64;
    /// `sin x` ([`sin`] or [`single::sin`]).
    fn sin(self) -> Self;
    /// `(sin x, cos x)` ([`sin_cos`] or [`single::sin_cos`]).
    fn sin_cos(self) -> (Self, Self);
    /// The angle wrapped into `[−π, π]` ([`wrap_angle`] or [`single::wrap_angle`]).
    fn wrap_angle(self) -> Self;
    /// Square root (IEEE, correctly rounded).
    fn sqrt(self) -> Self;
    /// `self` restricted to `[lo, hi]` (`lo ≤ hi`), as `f64::clamp`.
    fn clamp(self, lo: Self, hi: Self) -> Self;
}

impl Real for f64 {
    #[inline(always)]
    fn c(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn sin(self) -> Self {
        sin(self)
    }
    #[inline(always)]
    fn sin_cos(self) -> (Self, Self) {
        sin_cos(self)
    }
    #[inline(always)]
    fn wrap_angle(self) -> Self {
        wrap_angle(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn clamp(self, lo: Self, hi: Self) -> Self {
        f64::clamp(self, lo, hi)
    }
}

impl Real for f32 {
    #[inline(always)]
    #[allow(clippy::cast_possible_truncation)]
    fn c(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn sin(self) -> Self {
        single::sin(self)
    }
    #[inline(always)]
    fn sin_cos(self) -> (Self, Self) {
        single::sin_cos(self)
    }
    #[inline(always)]
    fn wrap_angle(self) -> Self {
        single::wrap_angle(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn clamp(self, lo: Self, hi: Self) -> Self {
        f32::clamp(self, lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_precision_matches_f64_std_to_about_two_ulp() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64);
        for i in -200_000..=200_000 {
            let x = i as f32 * 0.005_3; // |x| ≤ 1060
            let xd = f64::from(x);
            let (s, c) = single::sin_cos(x);
            let es = (f64::from(s) - xd.sin()).abs();
            let ec = (f64::from(c) - xd.cos()).abs();
            let e1 = (f64::from(single::sin(x)) - xd.sin()).abs();
            worst = (worst.0.max(es), worst.1.max(ec), worst.2.max(e1));
            let w = f64::from(single::wrap_angle(x));
            assert!(w.abs() <= std::f64::consts::PI + 1e-6, "wrap({x}) = {w}");
            // same angle: sin(w) ≈ sin(x)
            assert!((w.sin() - xd.sin()).abs() < 2e-6, "wrap({x}) = {w}");
        }
        // 2 ulp of f32 at 1.0 is 2.4e-7; the reduction adds |k|·ulp(PIO2_LO) at |x| ~ 1e3
        assert!(
            worst.0 < 3e-7 && worst.1 < 3e-7 && worst.2 < 3e-7,
            "{worst:?}"
        );
    }

    /// Deterministic points covering several periods, the quadrant boundaries and tiny values.
    fn points() -> Vec<f64> {
        let mut v: Vec<f64> = (-200_000..=200_000).map(|i| i as f64 * 1e-3).collect();
        for k in -40..=40 {
            let b = k as f64 * std::f64::consts::FRAC_PI_4;
            v.extend([b, b + 1e-12, b - 1e-12, b.next_up(), b.next_down()]);
        }
        v.extend([0.0, -0.0, 1e-300, -1e-300, 1e-8, 12345.678, -98765.4321]);
        v
    }

    #[test]
    fn sin_and_cos_match_std_to_a_few_ulp() {
        let mut worst = 0.0f64;
        for x in points() {
            let (s, c) = sin_cos(x);
            // absolute error relative to the magnitude of the argument's reduction
            let tol = 4.0 * f64::EPSILON * (1.0 + x.abs() * 1e-11);
            let (es, ec) = ((s - x.sin()).abs(), (c - x.cos()).abs());
            worst = worst.max(es).max(ec);
            assert!(
                es <= tol.max(2.0 * f64::EPSILON * x.sin().abs()),
                "sin({x}): {s} vs {}",
                x.sin()
            );
            assert!(ec <= tol, "cos({x}): {c} vs {}", x.cos());
            let es_alone = (sin(x) - x.sin()).abs();
            worst = worst.max(es_alone);
            assert!(
                es_alone <= tol.max(2.0 * f64::EPSILON * x.sin().abs()),
                "sin alone ({x}): {} vs {}",
                sin(x),
                x.sin()
            );
            assert_eq!(cos(x), c);
        }
        assert!(worst < 1e-15, "worst abs error {worst:e}");
    }

    #[test]
    fn sin_keeps_sign_and_size_of_tiny_arguments() {
        assert_eq!(sin(1e-300), 1e-300);
        assert_eq!(sin(-1e-300), -1e-300);
        assert_eq!(cos(0.0), 1.0);
    }

    #[test]
    fn wrap_angle_matches_the_euclidean_definition() {
        use std::f64::consts::{PI, TAU};
        for x in points() {
            let w = wrap_angle(x);
            let reference = (x + PI).rem_euclid(TAU) - PI;
            assert!((-PI - 1e-12..=PI + 1e-12).contains(&w), "wrap({x}) = {w}");
            // equal up to rounding, or the two representatives ±π of the same angle
            let d = (w - reference).abs();
            assert!(
                d < 1e-11 * (1.0 + x.abs()) || (d - TAU).abs() < 1e-9,
                "wrap({x}): {w} vs {reference}"
            );
        }
    }

    #[test]
    fn ln_matches_std() {
        let mut worst = 0.0f64;
        let mut x = f64::MIN_POSITIVE;
        while x < 1e300 {
            for y in [
                x,
                x * 1.234_567,
                x * std::f64::consts::SQRT_2,
                x * std::f64::consts::SQRT_2.next_up(),
                x * 1.999_999,
            ] {
                let err = (ln(y) - y.ln()).abs() / y.ln().abs().max(1.0);
                worst = worst.max(err);
            }
            x *= 3.7;
        }
        for k in 1..=100_000 {
            let y = k as f64 * 1e-5; // (0, 1]: the Box–Muller range
            let err = (ln(y) - y.ln()).abs() / y.ln().abs().max(1.0);
            worst = worst.max(err);
        }
        assert_eq!(ln(1.0), 0.0);
        assert!(worst < 4.0 * f64::EPSILON, "worst relative error {worst:e}");
    }

    #[test]
    fn non_finite_inputs_give_nan_not_garbage() {
        assert!(sin(f64::NAN).is_nan());
        assert!(sin(f64::INFINITY).is_nan());
        assert!(wrap_angle(f64::NAN).is_nan());
        assert!(wrap_angle(f64::INFINITY).is_nan());
    }
}
