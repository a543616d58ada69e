//! Bodies as capsules in a plane, for the CLI's animations: MuJoCo's own kinematics of a state
//! (geom positions and orientations from `mj_kinematics`), projected onto the task's view.

use mppi_tasks::BodySegment;
use mujoco_rs::prelude::*;

use crate::task::{MujocoTask, View};

impl MujocoTask {
    /// Every geom except planes, as a capsule in the view plane: capsules and cylinders along
    /// their axis, boxes along their longest side, spheres and ellipsoids as dots.
    pub(crate) fn segments(&self, x: &[f64]) -> Vec<BodySegment> {
        let view = self.spec().view;
        let mj = self.model().mj_model().clone();
        if x.len() != self.model().state_dim() || x.iter().any(|v| !v.is_finite()) {
            return Vec::new();
        }
        self.with_kinematics(x, |data| {
            let project = |p: [f64; 3]| match view {
                View::Xz => [p[0], p[2]],
                View::Xy => [p[0], p[1]],
            };
            let mut out = Vec::new();
            for g in 0..mj.ffi().ngeom as usize {
                let size = mj.geom_size()[g];
                let centre = data.geom_xpos()[g];
                let rot = data.geom_xmat()[g];
                // column k of the row-major rotation matrix = the geom's local axis k in world
                let axis = |k: usize| [rot[k], rot[3 + k], rot[6 + k]];
                let (half, dir, radius) = match mj.geom_type()[g] {
                    MjtGeomBase::mjGEOM_PLANE | MjtGeomBase::mjGEOM_HFIELD => continue,
                    MjtGeomBase::mjGEOM_CAPSULE | MjtGeomBase::mjGEOM_CYLINDER => {
                        (size[1], axis(2), size[0])
                    }
                    MjtGeomBase::mjGEOM_BOX => {
                        let k = (0..3)
                            .max_by(|&a, &b| size[a].total_cmp(&size[b]))
                            .unwrap_or(0);
                        let thin = (0..3)
                            .filter(|&j| j != k)
                            .map(|j| size[j])
                            .fold(f64::INFINITY, f64::min);
                        (size[k], axis(k), thin)
                    }
                    _ => (0.0, [0.0; 3], size[0]),
                };
                let end = |s: f64| project([0, 1, 2].map(|i| centre[i] + s * half * dir[i]));
                out.push(BodySegment {
                    from: end(-1.0),
                    to: end(1.0),
                    radius,
                });
            }
            out
        })
    }
}
