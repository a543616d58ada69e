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

use mppi::ProposalConfig;
use std::sync::Arc;

use mppi::{Cost, Dynamics, MppiConfig, ProposalKind};

use crate::criterion::Criterion;
use crate::double_integrator::DoubleIntegrator;
use crate::{Circle, ReferenceBand, Scene, Task};

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

/// The two-routes task: the [`DoubleIntegrator`] from [`START`] to [`GOAL`] behind the
/// [`wall`], planned with a mixture by default.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoRoutes {
    task: DoubleIntegrator,
}

impl Default for TwoRoutes {
    fn default() -> Self {
        TwoRoutes {
            task: DoubleIntegrator::new(START, GOAL, wall()),
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
        self.task.state_names()
    }
    fn control_names(&self) -> &'static [&'static str] {
        self.task.control_names()
    }
    fn state_units(&self) -> &'static [&'static str] {
        self.task.state_units()
    }
    fn control_units(&self) -> &'static [&'static str] {
        self.task.control_units()
    }
    fn reference_bands(&self) -> Vec<ReferenceBand> {
        self.task.reference_bands()
    }
    fn dt(&self) -> f64 {
        self.task.dt()
    }
    /// The double integrator's config with the mixture family.
    /// The double integrator's config with the mixture proposal, reset to its initial
    /// distribution at every control step (`std_reset`, which is its floor: no prior pull).
    ///
    /// The reset matters here: it puts the non-dominant component back on its initial detour
    /// (a constant acceleration to one side) and every spread back to `noise_sigma` at every
    /// step, so the alternative route is always sampled. Without it (a prior pull or a
    /// `std_min` floor only) both components can settle on the straight line and the mass
    /// stalls in the notch in front of the wall: 35/40 seeds with `prior_weight = 0`, 39/40
    /// with `prior_weight = 0.25`, 300/300 with the reset.
    fn default_config(&self) -> MppiConfig {
        MppiConfig {
            proposal: ProposalConfig {
                components: Some(2),
                inner_iterations: Some(2),
                std_min: Some(0.3),
                std_max: Some(3.0),
                std_reset: Some(true),
                prior_weight: Some(0.0),
                ..self
                    .task
                    .default_config()
                    .proposal
                    .clone()
                    .into_kind(ProposalKind::Mixture)
            },
            ..self.task.default_config()
        }
    }
    fn default_steps(&self) -> usize {
        self.task.default_steps()
    }
    fn initial_state(&self) -> Vec<f64> {
        self.task.initial_state()
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        self.task.dynamics()
    }
    fn cost(&self) -> Arc<dyn Cost> {
        self.task.cost()
    }
    /// At the goal (within [`GOAL_RADIUS`](crate::double_integrator::GOAL_RADIUS), speed below
    /// [`GOAL_SPEED`](crate::double_integrator::GOAL_SPEED)) at the end, on a path that never
    /// touches the wall.
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        self.task.criterion()
    }
    fn scene(&self) -> Option<Scene> {
        self.task.scene()
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
