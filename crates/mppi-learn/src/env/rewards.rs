//! dm_control's reward shaping (`dm_control.utils.rewards`), written from its formulas.
//!
//! [`tolerance`] is 1 when `x` lies in `[lower, upper]` and falls off outside it with a
//! [`Sigmoid`] of the distance to the interval measured in units of `margin`, reaching
//! `value_at_margin` at a distance of one margin. With `margin = 0` it is the interval's
//! indicator.

use crate::LearnError;

/// The shape of [`tolerance`]'s fall-off: `s(d)` with `s(0) = 1` and `s(1) = v`
/// (`v` = `value_at_margin`), for a distance `d ≥ 0` in margins.
///
/// | sigmoid | `s(d)` | scale `k` |
/// | --- | --- | --- |
/// | `Gaussian` | `exp(−½ (d k)²)` | `√(−2 ln v)` |
/// | `Hyperbolic` | `1 / cosh(d k)` | `arcosh(1/v)` |
/// | `LongTail` | `1 / ((d k)² + 1)` | `√(1/v − 1)` |
/// | `Reciprocal` | `1 / (abs(d) k + 1)` | `1/v − 1` |
/// | `Cosine` | `(1 + cos(π d k)) / 2` if `abs(d k) < 1`, else 0 | `arccos(2v − 1) / π` |
/// | `Linear` | `1 − d k` if `abs(d k) < 1`, else 0 | `1 − v` |
/// | `Quadratic` | `1 − (d k)²` if `abs(d k) < 1`, else 0 | `√(1 − v)` |
/// | `TanhSquared` | `1 − tanh(d k)²` | `artanh(√(1 − v))` |
///
/// `Cosine`, `Linear` and `Quadratic` take `0 ≤ v < 1`, the others `0 < v < 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sigmoid {
    /// dm_control's `'gaussian'` (its default).
    Gaussian,
    /// `'hyperbolic'`.
    Hyperbolic,
    /// `'long_tail'`.
    LongTail,
    /// `'reciprocal'`.
    Reciprocal,
    /// `'cosine'`.
    Cosine,
    /// `'linear'`.
    Linear,
    /// `'quadratic'`.
    Quadratic,
    /// `'tanh_squared'`.
    TanhSquared,
}

/// dm_control's default `value_at_margin`.
pub const DEFAULT_VALUE_AT_MARGIN: f64 = 0.1;

/// `s(d)` of [`Sigmoid`] with `s(1) = value_at_1`, as dm_control's `_sigmoids`; an error
/// for a `value_at_1` outside the sigmoid's range.
///
/// ```
/// use mppi_learn::env::rewards::{Sigmoid, sigmoid};
/// assert_eq!(sigmoid(0.0, 0.1, Sigmoid::Gaussian)?, 1.0);
/// assert!((sigmoid(1.0, 0.1, Sigmoid::Gaussian)? - 0.1).abs() < 1e-15);
/// assert_eq!(sigmoid(2.0, 0.0, Sigmoid::Linear)?, 0.0);
/// assert!(sigmoid(1.0, 0.0, Sigmoid::Gaussian).is_err());
/// # Ok::<(), mppi_learn::LearnError>(())
/// ```
pub fn sigmoid(x: f64, value_at_1: f64, kind: Sigmoid) -> Result<f64, LearnError> {
    use Sigmoid::*;
    let v = value_at_1;
    let valid = match kind {
        Cosine | Linear | Quadratic => (0.0..1.0).contains(&v),
        _ => v > 0.0 && v < 1.0,
    };
    if !valid {
        return Err(LearnError::Settings(format!(
            "value_at_margin of the {kind:?} sigmoid must be in {}1) (got {v})",
            if matches!(kind, Cosine | Linear | Quadratic) {
                "[0, "
            } else {
                "(0, "
            }
        )));
    }
    Ok(match kind {
        Gaussian => {
            let scale = (-2.0 * v.ln()).sqrt();
            let s = x * scale;
            (-0.5 * (s * s)).exp()
        }
        Hyperbolic => {
            let scale = (1.0 / v).acosh();
            1.0 / (x * scale).cosh()
        }
        LongTail => {
            let scale = (1.0 / v - 1.0).sqrt();
            let s = x * scale;
            1.0 / (s * s + 1.0)
        }
        Reciprocal => {
            let scale = 1.0 / v - 1.0;
            1.0 / (x.abs() * scale + 1.0)
        }
        Cosine => {
            let scale = (2.0 * v - 1.0).acos() / std::f64::consts::PI;
            let s = x * scale;
            if s.abs() < 1.0 {
                (1.0 + (std::f64::consts::PI * s).cos()) / 2.0
            } else {
                0.0
            }
        }
        Linear => {
            let s = x * (1.0 - v);
            if s.abs() < 1.0 { 1.0 - s } else { 0.0 }
        }
        Quadratic => {
            let s = x * (1.0 - v).sqrt();
            if s.abs() < 1.0 { 1.0 - s * s } else { 0.0 }
        }
        TanhSquared => {
            let scale = (1.0 - v).sqrt().atanh();
            let t = (x * scale).tanh();
            1.0 - t * t
        }
    })
}

/// dm_control's `rewards.tolerance(x, bounds=(lower, upper), margin, sigmoid,
/// value_at_margin)`: 1 for `lower ≤ x ≤ upper`, else [`sigmoid`] of the distance to the
/// nearer bound divided by `margin` (with `margin = 0`: 0). Bounds may be infinite. An error
/// for `lower > upper`, a negative or NaN margin, or a `value_at_margin` the sigmoid does not
/// take (checked only when `margin > 0`, as dm_control does).
///
/// ```
/// use mppi_learn::env::rewards::{DEFAULT_VALUE_AT_MARGIN, Sigmoid, tolerance};
/// let v = DEFAULT_VALUE_AT_MARGIN;
/// assert_eq!(tolerance(0.5, (0.0, 1.0), 0.0, Sigmoid::Gaussian, v)?, 1.0);
/// assert_eq!(tolerance(1.5, (0.0, 1.0), 0.0, Sigmoid::Gaussian, v)?, 0.0);
/// assert!((tolerance(3.0, (0.0, 1.0), 2.0, Sigmoid::Gaussian, v)? - 0.1).abs() < 1e-15);
/// // cartpole's small-control term: 1 − u² inside [−1, 1]
/// assert_eq!(tolerance(0.5, (0.0, 0.0), 1.0, Sigmoid::Quadratic, 0.0)?, 0.75);
/// assert!(tolerance(0.0, (1.0, 0.0), 0.0, Sigmoid::Gaussian, v).is_err());
/// # Ok::<(), mppi_learn::LearnError>(())
/// ```
pub fn tolerance(
    x: f64,
    bounds: (f64, f64),
    margin: f64,
    kind: Sigmoid,
    value_at_margin: f64,
) -> Result<f64, LearnError> {
    let (lower, upper) = bounds;
    if lower.is_nan() || upper.is_nan() || lower > upper {
        return Err(LearnError::Settings(format!(
            "tolerance: the lower bound must be <= the upper bound (got {lower} > {upper})"
        )));
    }
    if margin.is_nan() || margin < 0.0 {
        return Err(LearnError::Settings(format!(
            "tolerance: the margin must be non-negative (got {margin})"
        )));
    }
    let in_bounds = lower <= x && x <= upper;
    if margin == 0.0 {
        return Ok(if in_bounds { 1.0 } else { 0.0 });
    }
    let d = (if x < lower { lower - x } else { x - upper }) / margin;
    let value = sigmoid(d, value_at_margin, kind)?;
    Ok(if in_bounds { 1.0 } else { value })
}
