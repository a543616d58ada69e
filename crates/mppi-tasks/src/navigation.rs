//! Pieces shared by the goal-reaching tasks ([`crate::double_integrator`],
//! [`crate::unicycle`], [`crate::diff_drive`]): the goal and collision terms of their costs and
//! their success criteria.
//!
//! States are rows whose first two entries are the planar position `(x, y)`.

use mppi::fastmath::Real;

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
