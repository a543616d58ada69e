//! Pieces shared by the goal-reaching tasks ([`crate::double_integrator`],
//! [`crate::unicycle`], [`crate::diff_drive`]): the goal and collision terms of their costs and
//! their success criteria.
//!
//! States are rows whose first two entries are the planar position `(x, y)`.

use crate::geometry::path_clearance;
use crate::{Circle, Episode, Outcome};

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
/// that only matters near the goal (it makes the robot stop there).
#[inline(always)]
#[must_use]
pub fn goal_cost(
    goal: (f64, f64),
    px: f64,
    py: f64,
    speed_sq: f64,
    w_goal: f64,
    w_vel: f64,
) -> f64 {
    let (dx, dy) = (px - goal.0, py - goal.1);
    let d2 = dx * dx + dy * dy;
    w_goal * d2.sqrt() + w_vel * speed_sq / (1.0 + d2)
}

/// Is `(px, py)` strictly inside `c` inflated by `margin`?
#[inline(always)]
#[must_use]
pub fn inside_inflated(c: &Circle, margin: f64, px: f64, py: f64) -> bool {
    let (dx, dy) = (px - c.x, py - c.y);
    let r = c.r + margin;
    dx * dx + dy * dy < r * r
}

/// Is `(px, py)` inside any of `obstacles` inflated by `margin`?
#[inline(always)]
#[must_use]
pub fn in_collision(obstacles: &[Circle], margin: f64, px: f64, py: f64) -> bool {
    obstacles.iter().any(|c| inside_inflated(c, margin, px, py))
}

/// The block version of [`in_collision`]: `flags[l] = 1.0` if lane `l` of `(px, py)` is inside
/// an inflated obstacle, else `0.0` (obstacles outer, lanes inner, so the loop vectorizes).
/// `flags` has one entry per lane.
#[inline]
pub fn collision_flags(
    obstacles: &[Circle],
    margin: f64,
    px: &[f64],
    py: &[f64],
    flags: &mut [f64],
) {
    let lanes = flags.len();
    let (px, py) = (&px[..lanes], &py[..lanes]);
    flags.fill(0.0);
    for c in obstacles {
        for l in 0..lanes {
            flags[l] = if inside_inflated(c, margin, px[l], py[l]) {
                1.0
            } else {
                flags[l]
            };
        }
    }
}

/// `base` plus the collision penalty `w_collision` if `hit`.
#[inline(always)]
#[must_use]
pub fn with_collision(base: f64, hit: bool, w_collision: f64) -> f64 {
    if hit { base + w_collision } else { base }
}

/// When the episode first had a state satisfying `at_goal`: `"first at goal at t = … s"`, or
/// `"never at goal"`.
#[must_use]
pub fn arrival_message(episode: &Episode, at_goal: impl Fn(&[f64]) -> bool) -> String {
    match episode.states.iter().position(|x| at_goal(x)) {
        Some(k) => format!("first at goal at t = {:.2} s", k as f64 * episode.dt),
        None => "never at goal".to_string(),
    }
}

/// Success test of the goal-reaching tasks with circular obstacles: the last state is within
/// `goal_radius` of `goal` with `speed(x) < max_speed`, and the piecewise-linear path through
/// the states stays out of every (uninflated) obstacle.
#[must_use]
pub fn goal_outcome(
    episode: &Episode,
    obstacles: &[Circle],
    goal: (f64, f64),
    goal_radius: f64,
    max_speed: f64,
    speed: impl Fn(&[f64]) -> f64,
) -> Outcome {
    let mut clearance = f64::INFINITY;
    for w in episode.states.windows(2) {
        if let (Some(a), Some(b)) = (position(&w[0]), position(&w[1])) {
            clearance = clearance.min(path_clearance(a, b, obstacles));
        } else {
            clearance = f64::NEG_INFINITY;
        }
    }
    let arrival = arrival_message(episode, |x| {
        goal_distance(x, goal) < goal_radius && speed(x) < max_speed
    });
    let (final_dist, final_speed) = match episode.states.last() {
        Some(x) => (goal_distance(x, goal), speed(x)),
        None => (f64::INFINITY, f64::INFINITY),
    };
    let success = final_dist < goal_radius
        && final_speed < max_speed
        && clearance >= 0.0
        && episode.states.len() > 1;
    Outcome {
        success,
        message: format!(
            "final distance to goal {final_dist:.3} (< {goal_radius}), final speed \
             {final_speed:.3} (< {max_speed}), min obstacle clearance {clearance:.3} (>= 0), {arrival}"
        ),
    }
}
