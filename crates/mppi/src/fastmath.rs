//! Branch-free elementary functions for dynamics and cost kernels.
//!
//! `f64::sin` and `rem_euclid` call into libm once per sample-step and never vectorize; they
//! were 40% of a pendulum control step's instructions. The functions here are written without
//! branches or library calls (rounding by the `1.5·2⁵²` trick, quadrant selection by bit masks),
//! so a loop over lanes of a block vectorizes. Accuracy: within a few ulp of libm for
//! `|x| < 1e5` (tested against `std` below).
//!
//! - `sin`/`cos`: Cody–Waite reduction `r = x − k π/2` with a two-part `π/2`, then Taylor
//!   polynomials on `|r| ≤ π/4` (truncation error below `5e-17`), then the quadrant of `k`.
//! - `wrap_angle`: `a − 2π round(a / 2π)`, the angle in `[−π, π]`.

/// `1.5 · 2⁵²`: adding and subtracting it rounds an `f64` of magnitude `< 2⁵¹` to the nearest
/// integer, and leaves that integer in the low mantissa bits.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;
const FRAC_2_PI: f64 = std::f64::consts::FRAC_2_PI;
/// `π/2` split so that `k · PIO2_HI` is exact for `|k| < 2²⁰`.
const PIO2_HI: f64 = 1.570_796_326_734_125_6;
const PIO2_LO: f64 = 6.077_100_506_506_192e-11;
const FRAC_1_TAU: f64 = 1.0 / std::f64::consts::TAU;
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
#[inline(always)]
fn sin_cos_kernel(r: f64) -> (f64, f64) {
    let r2 = r * r;
    let s = r2
        * (-1.0 / 6.0
            + r2 * (1.0 / 120.0
                + r2 * (-1.0 / 5040.0
                    + r2 * (1.0 / 362_880.0
                        + r2 * (-1.0 / 39_916_800.0
                            + r2 * (1.0 / 6_227_020_800.0 + r2 * (-1.0 / 1_307_674_368_000.0)))))));
    let c = r2
        * (1.0 / 24.0
            + r2 * (-1.0 / 720.0
                + r2 * (1.0 / 40_320.0
                    + r2 * (-1.0 / 3_628_800.0
                        + r2 * (1.0 / 479_001_600.0
                            + r2 * (-1.0 / 87_178_291_200.0
                                + r2 * (1.0 / 20_922_789_888_000.0)))))));
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

/// `sin x`, branch-free.
///
/// ```
/// assert!((mppi::fastmath::sin(3.0) - 3.0f64.sin()).abs() < 1e-15);
/// ```
#[inline(always)]
#[must_use]
pub fn sin(x: f64) -> f64 {
    sin_cos(x).0
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

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(sin(x), s);
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
    fn non_finite_inputs_give_nan_not_garbage() {
        assert!(sin(f64::NAN).is_nan());
        assert!(sin(f64::INFINITY).is_nan());
        assert!(wrap_angle(f64::NAN).is_nan());
        assert!(wrap_angle(f64::INFINITY).is_nan());
    }
}
