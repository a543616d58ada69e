//! What a plot or an animation of a task draws besides its state and control series: the
//! success band of a state component ([`ReferenceBand`]) and the system itself as line
//! segments in the plane ([`BodySegment`]). See [`crate::Task::reference_bands`] and
//! [`crate::Task::body_segments`].

use std::f64::consts::TAU;

/// The band (or, with `low == high`, the target value) a state component should reach: what
/// a plot of that component draws as a shaded band or a dashed reference line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceBand {
    /// Index of the state component.
    pub state: usize,
    /// Lower edge, in the component's unit.
    pub low: f64,
    /// Upper edge (equal to `low` for a target value).
    pub high: f64,
    /// Legend text, e.g. `"upright |θ| < 0.1 rad"`.
    pub label: &'static str,
}

impl ReferenceBand {
    /// A band `[low, high]` on state component `state`.
    #[must_use]
    pub const fn new(state: usize, low: f64, high: f64, label: &'static str) -> Self {
        ReferenceBand {
            state,
            low,
            high,
            label,
        }
    }

    /// A target value on state component `state` (`low == high`).
    #[must_use]
    pub const fn target(state: usize, value: f64, label: &'static str) -> Self {
        Self::new(state, value, value, label)
    }

    /// True when it is a target value rather than a band.
    #[must_use]
    pub fn is_target(&self) -> bool {
        self.low == self.high
    }

    /// The copies of the band shifted by whole turns (`2π k`) that meet `[lo, hi]`: for an
    /// angle whose criterion wraps it, the band at every turn an unwrapped series visits.
    #[must_use]
    pub fn wrapped_copies(&self, lo: f64, hi: f64) -> Vec<(f64, f64)> {
        if !(lo.is_finite() && hi.is_finite()) {
            return vec![(self.low, self.high)];
        }
        let first = ((lo - self.high) / TAU).ceil() as i64;
        let last = ((hi - self.low) / TAU).floor() as i64;
        let mut out: Vec<(f64, f64)> = (first..=last.min(first + 64))
            .map(|k| {
                let s = k as f64 * TAU;
                (self.low + s, self.high + s)
            })
            .collect();
        if out.is_empty() {
            out.push((self.low, self.high));
        }
        out
    }
}

/// One stroke of a drawing of the system: a capsule from `from` to `to` with `radius`, in
/// metres in the drawing plane (`x` right, `y` up); `radius == 0` is a thin line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BodySegment {
    /// Start point `(x, y)` in m.
    pub from: [f64; 2],
    /// End point `(x, y)` in m.
    pub to: [f64; 2],
    /// Half thickness in m (0 for a thin line).
    pub radius: f64,
}

impl BodySegment {
    /// The segment `from`–`to` with `radius`.
    #[must_use]
    pub const fn new(from: [f64; 2], to: [f64; 2], radius: f64) -> Self {
        BodySegment { from, to, radius }
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use super::*;
    use crate::all_tasks;

    #[test]
    fn units_have_one_entry_per_component() {
        for task in all_tasks() {
            let dynamics = task.dynamics();
            let (n, m) = (dynamics.state_dim(), dynamics.control_dim());
            let (su, cu) = (task.state_units(), task.control_units());
            assert!(
                su.is_empty() || su.len() == n,
                "{}: {} state units for {n} states",
                task.name(),
                su.len()
            );
            assert!(
                cu.is_empty() || cu.len() == m,
                "{}: {} control units for {m} controls",
                task.name(),
                cu.len()
            );
            // every built-in task knows its units
            assert_eq!(su.len(), n, "{}", task.name());
            assert_eq!(cu.len(), m, "{}", task.name());
            assert_eq!(task.state_names().len(), n, "{}", task.name());
        }
    }

    #[test]
    fn bands_name_existing_states_and_are_ordered() {
        for task in all_tasks() {
            let n = task.dynamics().state_dim();
            for band in task.reference_bands() {
                assert!(band.state < n, "{}: {band:?}", task.name());
                assert!(band.low <= band.high, "{}: {band:?}", task.name());
                assert!(!band.label.is_empty(), "{}: {band:?}", task.name());
            }
        }
        let pendulum = crate::task_by_name("pendulum").expect("pendulum");
        let bands = pendulum.reference_bands();
        assert_eq!(bands[0].state, 0);
        assert_eq!((bands[0].low, bands[0].high), (-0.1, 0.1));
    }

    #[test]
    fn body_segments_are_finite_for_every_drawn_task() {
        for task in all_tasks() {
            let x0 = task.initial_state();
            for s in task.body_segments(&x0) {
                assert!(
                    s.from.iter().chain(&s.to).all(|v| v.is_finite()) && s.radius >= 0.0,
                    "{}: {s:?}",
                    task.name()
                );
            }
        }
        for name in [
            "pendulum",
            "cartpole",
            "cartpole_discrete",
            "acrobot",
            "quadrotor",
        ] {
            let task = crate::task_by_name(name).expect("task");
            assert!(
                !task.body_segments(&task.initial_state()).is_empty(),
                "{name}"
            );
        }
    }

    /// The tip of the last segment.
    fn tip(task: &str, x: &[f64]) -> [f64; 2] {
        let task = crate::task_by_name(task).expect("task");
        task.body_segments(x).last().expect("a segment").to
    }

    #[test]
    fn pendulum_points_up_at_zero_and_down_at_pi() {
        let up = tip("pendulum", &[0.0, 0.0]);
        assert!(up[0].abs() < 1e-12 && (up[1] - 1.0).abs() < 1e-12, "{up:?}");
        let down = tip("pendulum", &[PI, 0.0]);
        assert!(
            down[0].abs() < 1e-12 && (down[1] + 1.0).abs() < 1e-12,
            "{down:?}"
        );
        // positive θ turns counter-clockwise (gymnasium's rendering): the tip goes left
        let left = tip("pendulum", &[0.5 * PI, 0.0]);
        assert!(
            (left[0] + 1.0).abs() < 1e-12 && left[1].abs() < 1e-12,
            "{left:?}"
        );
    }

    #[test]
    fn cartpole_and_acrobot_point_the_right_way() {
        // pole upright over a cart at x = 1, hanging at θ = π
        let up = tip("cartpole", &[1.0, 0.0, 0.0, 0.0]);
        assert!((up[0] - 1.0).abs() < 1e-12 && up[1] > 0.5, "{up:?}");
        let down = tip("cartpole", &[1.0, PI, 0.0, 0.0]);
        assert!((down[0] - 1.0).abs() < 1e-12 && down[1] < -0.5, "{down:?}");
        // acrobot: hanging at 0, upright at (π, 0), tip height −l₁ cos θ₁ − l₂ cos(θ₁ + θ₂)
        let hanging = tip("acrobot", &[0.0, 0.0, 0.0, 0.0]);
        assert!(hanging[0].abs() < 1e-12 && (hanging[1] + 2.0).abs() < 1e-12);
        let upright = tip("acrobot", &[PI, 0.0, 0.0, 0.0]);
        assert!(upright[0].abs() < 1e-12 && (upright[1] - 2.0).abs() < 1e-12);
        let (t1, t2) = (0.4, -1.1);
        let h = tip("acrobot", &[t1, t2, 0.0, 0.0])[1];
        assert!((h - (-t1.cos() - (t1 + t2).cos())).abs() < 1e-12);
    }

    #[test]
    fn quadrotor_is_drawn_at_its_position_and_tilts() {
        let task = crate::task_by_name("quadrotor").expect("quadrotor");
        let level = task.body_segments(&[2.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let bar = level[0];
        assert!((bar.from[1] - 1.0).abs() < 1e-12 && (bar.to[1] - 1.0).abs() < 1e-12);
        assert!((0.5 * (bar.from[0] + bar.to[0]) - 2.0).abs() < 1e-12);
        // θ > 0 is counter-clockwise: the right end goes up
        let tilted = task.body_segments(&[2.0, 1.0, 0.3, 0.0, 0.0, 0.0])[0];
        assert!(tilted.to[1] > tilted.from[1]);
    }

    #[test]
    fn wrapped_band_copies_cover_the_visited_turns() {
        let band = ReferenceBand::new(0, -0.1, 0.1, "upright");
        assert_eq!(band.wrapped_copies(-0.5, 3.5), vec![(-0.1, 0.1)]);
        let copies = band.wrapped_copies(0.0, 2.0 * PI);
        assert_eq!(copies.len(), 2);
        assert!((copies[1].0 - (2.0 * PI - 0.1)).abs() < 1e-12);
        assert_eq!(band.wrapped_copies(1.0, 2.0), vec![(-0.1, 0.1)]);
        assert!(ReferenceBand::target(1, 3.0, "t").is_target());
    }
}
