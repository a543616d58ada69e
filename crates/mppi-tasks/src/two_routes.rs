//! Two equally good routes around a wide wall: a task where a single Gaussian gets stuck and a
//! mixture commits to one route.
//!
//! The planar double integrator of [`crate::double_integrator`] (same dynamics, same cost
//! terms, acceleration bound [`A_MAX`] per axis) flies from [`START`] to [`GOAL`]. A wall of
//! discs stands across the straight line between them, symmetric about it, so going around
//! on the left or on the right is equally good. Starting from rest with a zero plan:
//!
//! - the fixed-covariance Gaussian (`family = "gaussian"`) samples both routes, and its
//!   weighted *mean* — the average of a left and a right detour — runs straight into the wall;
//!   it ends up stalled in front of it, where every short move is uphill on the distance cost;
//! - the mixture (`family = "mixture"`, the default config here) fits one component per route
//!   and follows the dominant one (mode seeking), so it commits to a side and arrives.
//!
//! The cost is the double integrator's (goal distance, speed near the goal, control effort,
//! collision indicator on the discs inflated by
//! [`MARGIN`](crate::double_integrator::MARGIN)); success is the same criterion: at the goal,
//! slow, and a collision-free path.

use std::sync::Arc;

use mppi::{Cost, Dynamics, FamilyKind, MppiConfig};

use crate::double_integrator::{A_MAX, DT, DoubleIntegratorModel, GOAL_RADIUS, GOAL_SPEED};
use crate::navigation::goal_outcome;
use crate::{Circle, Episode, Outcome, Scene, Task};

/// Start position.
pub const START: (f64, f64) = (0.0, 8.0);
/// Goal position.
pub const GOAL: (f64, f64) = (8.0, 0.0);
/// Radius of every disc of the wall.
pub const WALL_RADIUS: f64 = 0.7;
/// Number of discs in the wall.
pub const WALL_DISCS: usize = 3;
/// Spacing of the disc centers along the wall.
pub const WALL_SPACING: f64 = 1.0;

/// The wall: [`WALL_DISCS`] discs centered on the midpoint of start and goal, in a row
/// perpendicular to the start–goal line.
#[must_use]
pub fn wall() -> Vec<Circle> {
    let (mx, my) = (0.5 * (START.0 + GOAL.0), 0.5 * (START.1 + GOAL.1));
    let (dx, dy) = (GOAL.0 - START.0, GOAL.1 - START.1);
    let len = dx.hypot(dy);
    // unit normal to the start–goal line
    let (nx, ny) = (-dy / len, dx / len);
    (0..WALL_DISCS)
        .map(|k| {
            let s = (k as f64 - 0.5 * (WALL_DISCS as f64 - 1.0)) * WALL_SPACING;
            Circle {
                x: mx + s * nx,
                y: my + s * ny,
                r: WALL_RADIUS,
            }
        })
        .collect()
}

/// The two-routes task.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoRoutes {
    model: DoubleIntegratorModel,
}

impl Default for TwoRoutes {
    fn default() -> Self {
        TwoRoutes {
            model: DoubleIntegratorModel {
                goal: GOAL,
                obstacles: wall(),
            },
        }
    }
}

impl Task for TwoRoutes {
    fn name(&self) -> &'static str {
        "two_routes"
    }
    fn description(&self) -> &'static str {
        "2-D point mass from (0,8) to (8,0) behind a symmetric wall: two equal routes (mixture family)"
    }
    fn state_names(&self) -> &'static [&'static str] {
        &["px", "py", "vx", "vy"]
    }
    fn control_names(&self) -> &'static [&'static str] {
        &["ax", "ay"]
    }
    fn dt(&self) -> f64 {
        DT
    }
    fn default_config(&self) -> MppiConfig {
        MppiConfig {
            samples: 512,
            horizon: 40,
            iterations: 1,
            noise_sigma: vec![2.0],
            lambda: 1.0,
            u_min: Some(vec![-A_MAX]),
            u_max: Some(vec![A_MAX]),
            family: FamilyKind::Mixture,
            mixture_components: 2,
            mixture_inner_iterations: 2,
            std_min: 0.3,
            std_max: 3.0,
            ..MppiConfig::default()
        }
    }
    fn default_steps(&self) -> usize {
        200
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![START.0, START.1, 0.0, 0.0]
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(self.model.clone())
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Arc::new(self.model.clone())
    }
    /// At the goal (within [`GOAL_RADIUS`], speed below [`GOAL_SPEED`]) at the end, on a path
    /// that never touches the wall.
    fn success(&self, episode: &Episode) -> Outcome {
        goal_outcome(
            episode,
            &self.model.obstacles,
            self.model.goal,
            GOAL_RADIUS,
            GOAL_SPEED,
            |x| x[2].hypot(x[3]),
        )
    }
    fn scene(&self) -> Option<Scene> {
        Some(Scene {
            position: (0, 1),
            obstacles: self.model.obstacles.clone(),
            goal: Some(Circle {
                x: self.model.goal.0,
                y: self.model.goal.1,
                r: GOAL_RADIUS,
            }),
            track: None,
            extent: ((-1.0, 9.5), (-1.0, 9.5)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_is_symmetric_and_blocks_the_straight_line() {
        let w = wall();
        assert_eq!(w.len(), WALL_DISCS);
        // symmetric about the start–goal line x + y = 8: reflecting (x, y) -> (8 − y, 8 − x)
        // maps the set onto itself
        for c in &w {
            assert!(w.iter().any(
                |o| (o.x - (8.0 - c.y)).abs() < 1e-12 && (o.y - (8.0 - c.x)).abs() < 1e-12
            ));
        }
        let straight = crate::geometry::path_clearance(START, GOAL, &w);
        assert!(straight < 0.0);
    }
}
