//! Axis ticks: nice linear steps, decades and their subdivisions on log axes, and one label
//! format per axis.

use std::ops::Range;

/// A "nice" step (1, 2 or 5 times a power of ten) close to `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.abs().max(1e-300);
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    let m = if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    };
    m * p
}

/// Ticks of a linear axis: multiples of a nice step inside `range`, about `target` of them;
/// also the minor ticks (five per step).
pub(crate) fn linear_ticks(range: &Range<f64>, target: usize) -> (Vec<f64>, Vec<f64>) {
    let (lo, hi) = (range.start, range.end);
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return (vec![lo], vec![]);
    }
    let step = nice_step((hi - lo) / target.max(2) as f64);
    let ticks = |step: f64| -> Vec<f64> {
        let first = (lo / step).ceil() as i64;
        let last = (hi / step).floor() as i64;
        (first..=last.min(first + 1000))
            .map(|k| {
                let v = k as f64 * step;
                if v.abs() < 1e-9 * step { 0.0 } else { v }
            })
            .collect()
    };
    (ticks(step), ticks(step / 5.0))
}

/// Ticks of a log axis: the decades inside `range`, then 1-2-5 and 1..9 subdivisions while
/// fewer than 3 are labelled (linear ticks if the range is narrower than that); the minor
/// ticks are 1..9 times each decade.
pub(crate) fn log_ticks(range: &Range<f64>) -> (Vec<f64>, Vec<f64>) {
    let (lo, hi) = (range.start, range.end);
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return linear_ticks(range, 5);
    }
    let inside = |mults: &[f64]| -> Vec<f64> {
        let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        let mut out = vec![];
        for d in d0..=d1.min(d0 + 400) {
            for m in mults {
                let v = m * 10f64.powi(d);
                if v >= lo * (1.0 - 1e-12) && v <= hi * (1.0 + 1e-12) {
                    out.push(v);
                }
            }
        }
        out
    };
    let minor = inside(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let mut major = inside(&[1.0]);
    if major.len() > 8 {
        // too many decades: every k-th
        let k = major.len().div_ceil(8);
        major = major.into_iter().step_by(k).collect();
    }
    for mults in [
        &[1.0, 2.0, 5.0][..],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    ] {
        if major.len() >= 3 {
            break;
        }
        major = inside(mults);
    }
    if major.len() < 3 {
        return linear_ticks(range, 4);
    }
    (major, minor)
}

/// `floor(log10(v))`, robust to the rounding of a computed power of ten.
fn decade(v: f64) -> f64 {
    (v.log10() + 1e-9).floor()
}

/// How the labels of one axis are written: every label of an axis the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TickFormat {
    /// Fixed point with this many decimals.
    Fixed(usize),
    /// Scientific notation with this many decimals in the mantissa.
    Sci(usize),
    /// Shortest plain decimal (log axes: 0.01, 0.1, 1, 10).
    Plain,
}

impl TickFormat {
    /// The format for a linear axis with these ticks: fixed point with as many decimals as the
    /// step needs, scientific when the magnitudes are below 10⁻³ or at least 10⁵.
    pub fn linear(ticks: &[f64]) -> Self {
        let big = ticks.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let step = ticks
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(f64::INFINITY, f64::min);
        let step = if step.is_finite() && step > 0.0 {
            step
        } else {
            big.max(1.0)
        };
        if big >= 1e5 || (big > 0.0 && big < 1e-3) {
            // mantissa decimals: enough to tell neighbouring ticks apart
            let digits = (decade(big) - decade(step)).clamp(0.0, 6.0) as usize;
            TickFormat::Sci(digits)
        } else {
            TickFormat::Fixed((-decade(step)).clamp(0.0, 8.0) as usize)
        }
    }

    /// The format for a log axis with these ticks: plain decimals within `[10⁻³, 10⁵)`,
    /// otherwise scientific.
    pub fn log(ticks: &[f64]) -> Self {
        if ticks.iter().all(|v| (1e-3..1e5).contains(&v.abs())) {
            TickFormat::Plain
        } else {
            TickFormat::Sci(0)
        }
    }

    /// The label of `v`.
    pub fn label(self, v: f64) -> String {
        if !v.is_finite() {
            return v.to_string();
        }
        let s = match self {
            TickFormat::Fixed(d) => format!("{v:.d$}"),
            TickFormat::Sci(d) => format!("{v:.d$e}"),
            TickFormat::Plain => {
                let s = format!("{v:.6}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
        };
        // no "-0", "-0.00"
        if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
            s[1..].to_string()
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axes_label_at_least_three_ticks() {
        for range in [
            0.3..0.9,
            0.5..3.0,
            1.0..1e6,
            1e-9..1e-1,
            2.0..2.5,
            0.11..0.13,
        ] {
            let (major, _) = log_ticks(&range);
            assert!(major.len() >= 3, "{range:?}: {major:?}");
            assert!(
                major
                    .iter()
                    .all(|v| *v >= range.start * 0.999 && *v <= range.end * 1.001),
                "{range:?}: {major:?}"
            );
        }
        assert_eq!(log_ticks(&(0.5..300.0)).0, vec![1.0, 10.0, 100.0]);
        assert_eq!(log_ticks(&(0.5..3.0)).0, vec![0.5, 1.0, 2.0]);
    }

    #[test]
    fn linear_ticks_are_nice_multiples() {
        let (major, minor) = linear_ticks(&(0.0..10.0), 5);
        assert_eq!(major, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert!(minor.len() > major.len());
        let (major, _) = linear_ticks(&(-0.33..0.33), 5);
        assert_eq!(major.len(), 7, "{major:?}");
        assert!(
            (major[0] + 0.3).abs() < 1e-12 && major[3] == 0.0,
            "{major:?}"
        );
        assert_eq!(TickFormat::linear(&major).label(major[0]), "-0.3");
    }

    #[test]
    fn one_tick_format_per_axis() {
        let f = TickFormat::linear(&[0.0, 0.5, 1.0, 1.5]);
        assert_eq!(f, TickFormat::Fixed(1));
        let labels: Vec<String> = [0.0, 0.5, 1.0, -1.5].iter().map(|v| f.label(*v)).collect();
        assert_eq!(labels, ["0.0", "0.5", "1.0", "-1.5"]);
        assert_eq!(TickFormat::linear(&[0.0, 200.0, 400.0]).label(200.0), "200");
        assert_eq!(TickFormat::Fixed(2).label(-0.0), "0.00");
        assert_eq!(TickFormat::Fixed(2).label(-1e-17), "0.00");
        let sci = TickFormat::linear(&[1e-5, 2e-5, 3e-5]);
        assert_eq!(sci, TickFormat::Sci(0));
        assert_eq!(sci.label(2e-5), "2e-5");
        let big = TickFormat::linear(&[1.0e5, 1.5e5, 2.0e5]);
        assert_eq!(big.label(1.5e5), "1.5e5");
        let log = TickFormat::log(&[0.01, 0.1, 1.0, 10.0]);
        let labels: Vec<String> = [0.01, 0.1, 1.0, 10.0]
            .iter()
            .map(|v| log.label(*v))
            .collect();
        assert_eq!(labels, ["0.01", "0.1", "1", "10"]);
        let log = TickFormat::log(&[1e-6, 1e-3, 1.0]);
        let labels: Vec<String> = [1e-6, 1e-3, 1.0].iter().map(|v| log.label(*v)).collect();
        assert_eq!(labels, ["1e-6", "1e-3", "1e0"]);
    }
}
