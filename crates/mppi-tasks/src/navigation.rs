//! Pieces shared by the goal-reaching tasks ([`crate::double_integrator`],
//! [`crate::unicycle`], [`crate::diff_drive`]): the goal and collision terms of their costs and
//! their success criteria.
//!
//! States are rows whose first two entries are the planar position `(x, y)`.

use mppi::fastmath::Real;

use crate::criterion::{Arrival, Criterion, LastState};
use crate::geometry::path_clearance;
use crate::{Circle, Outcome};

/// The planar position `(x[0], x[1])` of a state row; `None` if the row is shorter.
#[inline]
#[must_use]
pub fn position(x: &[f64]) -> Option<(f64, f64)> {
    match x {
        [px, py, ..] => Some((*px, *py)),
        _ => None,
    }
}

/// Distance from the position of the state row `x` to `goal`; `+∞` if the row has no
/// position.
#[must_use]
pub fn goal_distance(x: &[f64], goal: (f64, f64)) -> f64 {
    position(x).map_or(f64::INFINITY, |(px, py)| (px - goal.0).hypot(py - goal.1))
}

/// The goal terms of a navigation cost, `w_goal d + w_vel |v|² / (1 + d²)` with
/// `d = |(px, py) − goal|` and `speed_sq = |v|²`: pull towards the goal, and a speed penalty
/// that only matters near the goal (it makes the robot stop there). In `f64` or `f32`.
#[inline(always)]
#[must_use]
pub fn goal_cost<R: Real>(
    goal: (f64, f64),
    px: R,
    py: R,
    speed_sq: R,
    w_goal: f64,
    w_vel: f64,
) -> R {
    let (dx, dy) = (px - R::c(goal.0), py - R::c(goal.1));
    let d2 = dx * dx + dy * dy;
    R::c(w_goal) * d2.sqrt() + R::c(w_vel) * speed_sq / (R::c(1.0) + d2)
}

/// Is `(px, py)` strictly inside `c` inflated by `margin`? In `f64` or `f32` (the squared
/// radius is computed in `f64` and rounded once).
#[inline(always)]
#[must_use]
pub fn inside_inflated<R: Real>(c: &Circle, margin: f64, px: R, py: R) -> bool {
    let (dx, dy) = (px - R::c(c.x), py - R::c(c.y));
    let r = c.r + margin;
    dx * dx + dy * dy < R::c(r * r)
}

/// Is `(px, py)` inside any of `obstacles` inflated by `margin`?
#[inline(always)]
#[must_use]
pub fn in_collision<R: Real>(obstacles: &[Circle], margin: f64, px: R, py: R) -> bool {
    obstacles.iter().any(|c| inside_inflated(c, margin, px, py))
}

/// The block version of [`in_collision`]: `flags[l] = 1` if lane `l` of `(px, py)` is inside
/// an inflated obstacle, else `0`. `flags` has one entry per lane.
///
/// Lanes go in groups of sixteen whose hit flags stay in registers while the loop runs over the
/// obstacles (a fixed-size group unrolls and vectorizes); a pass over all lanes per obstacle
/// would store and reload the flags for every obstacle.
#[inline]
pub fn collision_flags<R: Real>(
    obstacles: &[Circle],
    margin: f64,
    px: &[R],
    py: &[R],
    flags: &mut [R],
) {
    const GROUP: usize = 16;
    let lanes = flags.len();
    let (px, py) = (&px[..lanes], &py[..lanes]);
    let mut groups = flags.chunks_exact_mut(GROUP);
    for (g, out) in (&mut groups).enumerate() {
        let x: [R; GROUP] = std::array::from_fn(|k| px[g * GROUP + k]);
        let y: [R; GROUP] = std::array::from_fn(|k| py[g * GROUP + k]);
        let mut hit = [R::c(0.0); GROUP];
        for c in obstacles {
            let (cx, cy) = (R::c(c.x), R::c(c.y));
            let r = c.r + margin;
            let r2 = R::c(r * r);
            for k in 0..GROUP {
                let (dx, dy) = (x[k] - cx, y[k] - cy);
                hit[k] = if dx * dx + dy * dy < r2 {
                    R::c(1.0)
                } else {
                    hit[k]
                };
            }
        }
        out.copy_from_slice(&hit);
    }
    let first = lanes - lanes % GROUP;
    for (k, f) in groups.into_remainder().iter_mut().enumerate() {
        let hit = in_collision(obstacles, margin, px[first + k], py[first + k]);
        *f = R::c(if hit { 1.0 } else { 0.0 });
    }
}

/// `base` plus the collision penalty `w_collision` if `hit`.
#[inline(always)]
#[must_use]
pub fn with_collision<R: Real>(base: R, hit: bool, w_collision: f64) -> R {
    if hit { base + R::c(w_collision) } else { base }
}

/// Success test of the goal-reaching tasks with circular obstacles: the last state is within
/// `goal_radius` of `goal` with `speed(x) < max_speed`, and the piecewise-linear path through
/// the states stays out of every (uninflated) obstacle. Streaming: it keeps the previous
/// position, the running minimum clearance, the first arrival and the last state.
pub struct GoalCriterion<'a, F> {
    obstacles: &'a [Circle],
    goal: (f64, f64),
    goal_radius: f64,
    max_speed: f64,
    speed: F,
    dt: f64,
    /// Position of the previous state (`Some(None)` if that row had none).
    previous: Option<Option<(f64, f64)>>,
    clearance: f64,
    arrival: Arrival,
    last: LastState,
}

impl<'a, F: Fn(&[f64]) -> f64> GoalCriterion<'a, F> {
    /// The criterion for a task with time step `dt`.
    #[must_use]
    pub fn new(
        obstacles: &'a [Circle],
        goal: (f64, f64),
        goal_radius: f64,
        max_speed: f64,
        speed: F,
        dt: f64,
    ) -> Self {
        GoalCriterion {
            obstacles,
            goal,
            goal_radius,
            max_speed,
            speed,
            dt,
            previous: None,
            clearance: f64::INFINITY,
            arrival: Arrival::default(),
            last: LastState::default(),
        }
    }
}

impl<F: Fn(&[f64]) -> f64> Criterion for GoalCriterion<'_, F> {
    fn observe(&mut self, step: usize, x: &[f64], _u: Option<&[f64]>) {
        let here = position(x);
        if let Some(before) = self.previous {
            if let (Some(a), Some(b)) = (before, here) {
                self.clearance = self.clearance.min(path_clearance(a, b, self.obstacles));
            } else {
                self.clearance = f64::NEG_INFINITY;
            }
        }
        self.previous = Some(here);
        let at_goal =
            goal_distance(x, self.goal) < self.goal_radius && (self.speed)(x) < self.max_speed;
        self.arrival.observe(step, at_goal);
        self.last.observe(x);
    }
    fn outcome(&self) -> Outcome {
        let (goal_radius, max_speed, clearance) =
            (self.goal_radius, self.max_speed, self.clearance);
        let arrival = self.arrival.message(self.dt);
        let (final_dist, final_speed) = match self.last.get() {
            Some(x) => (goal_distance(x, self.goal), (self.speed)(x)),
            None => (f64::INFINITY, f64::INFINITY),
        };
        let success = final_dist < goal_radius
            && final_speed < max_speed
            && clearance >= 0.0
            && self.last.seen() > 1;
        Outcome {
            success,
            message: format!(
                "final distance to goal {final_dist:.3} (< {goal_radius}), final speed \
                 {final_speed:.3} (< {max_speed}), min obstacle clearance {clearance:.3} (>= 0), {arrival}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collision_flags_agree_with_in_collision_in_groups_and_remainder() {
        let obstacles = [
            Circle {
                x: 1.0,
                y: 1.0,
                r: 0.5,
            },
            Circle {
                x: 2.5,
                y: 0.5,
                r: 0.3,
            },
            Circle {
                x: 0.2,
                y: 2.2,
                r: 0.8,
            },
        ];
        // 37 lanes: four groups of eight and a remainder of five, on a grid over the scene
        let px: Vec<f64> = (0..37).map(|l| 0.1 * (l % 31) as f64).collect();
        let py: Vec<f64> = (0..37).map(|l| 0.07 * (l * 7 % 37) as f64).collect();
        let mut flags = vec![f64::NAN; 37];
        collision_flags(&obstacles, 0.15, &px, &py, &mut flags);
        let mut hits = 0;
        for l in 0..37 {
            let expected = in_collision(&obstacles, 0.15, px[l], py[l]);
            assert_eq!(flags[l], if expected { 1.0 } else { 0.0 }, "lane {l}");
            hits += usize::from(expected);
        }
        assert!(
            hits > 3 && hits < 34,
            "{hits} hits: the check covers both outcomes"
        );
        // no obstacles: nothing is hit
        collision_flags(&[], 0.15, &px, &py, &mut flags);
        assert!(flags.iter().all(|f| *f == 0.0));
    }
}
