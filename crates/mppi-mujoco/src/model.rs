//! An MJCF model as `mppi` dynamics: state `(qpos, qvel, act)`, control `ctrl`.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mppi::Dynamics;
use mujoco_rs::mujoco_c::mjtDisableBit;
use mujoco_rs::prelude::*;

use crate::MujocoError;

/// The `MjData` type of this crate: data owning a shared handle to its model.
pub type Data = MjData<Arc<MjModel>>;

/// An MJCF model with the sizes and names the planner needs.
///
/// Two copies of the compiled model are kept. The **plant** copy is the model as written: one
/// persistent `MjData` steps it, warm-starting the constraint solver from its previous step, as
/// dm_control and the Python bindings do. The **rollout** copy has the solver's warm start
/// disabled (`mjDSBL_WARMSTART`), so a rollout step depends only on `(x, u)` and not on which
/// sample the pooled `MjData` stepped before: that is what makes planning deterministic for any
/// thread count. The two differ by less than the solver's tolerance, and only with constraints.
#[derive(Debug, Clone)]
pub struct MujocoModel {
    plant: Arc<MjModel>,
    rollout: Arc<MjModel>,
    frame_skip: usize,
    nq: usize,
    nv: usize,
    na: usize,
    nu: usize,
    state_names: Vec<String>,
    control_names: Vec<String>,
    lower: Vec<f64>,
    upper: Vec<f64>,
}

impl MujocoModel {
    /// Load an MJCF file; one control step lasts `frame_skip` physics steps.
    ///
    /// ```
    /// let model = mppi_mujoco::MujocoModel::from_xml_string(
    ///     r#"<mujoco><worldbody><body><joint name="hinge"/>
    ///        <geom type="capsule" size="0.05" fromto="0 0 0 0 0 0.5"/></body></worldbody>
    ///        <actuator><motor name="torque" joint="hinge" ctrlrange="-1 1"/></actuator></mujoco>"#,
    ///     2,
    /// )?;
    /// assert_eq!(model.state_names(), ["q.hinge", "v.hinge"]);
    /// assert_eq!(model.control_bounds(), (&[-1.0][..], &[1.0][..]));
    /// # Ok::<(), mppi_mujoco::MujocoError>(())
    /// ```
    pub fn from_xml_string(xml: &str, frame_skip: usize) -> Result<Self, MujocoError> {
        let load = || {
            MjModel::from_xml_string(xml).map_err(|e| MujocoError::Load {
                file: "<string>".into(),
                reason: e.to_string(),
            })
        };
        Self::new(load()?, load()?, frame_skip)
    }

    /// Load an MJCF file (includes and meshes resolve relative to it).
    pub fn from_xml_file(path: &Path, frame_skip: usize) -> Result<Self, MujocoError> {
        let load = || {
            if !path.is_file() {
                return Err(MujocoError::Load {
                    file: path.display().to_string(),
                    reason: "no such file".into(),
                });
            }
            MjModel::from_xml(path).map_err(|e| MujocoError::Load {
                file: path.display().to_string(),
                reason: e.to_string(),
            })
        };
        Self::new(load()?, load()?, frame_skip)
    }

    fn new(plant: MjModel, mut rollout: MjModel, frame_skip: usize) -> Result<Self, MujocoError> {
        if frame_skip == 0 {
            return Err(MujocoError::Invalid(
                "frame_skip must be at least 1 (got 0)".into(),
            ));
        }
        rollout.opt_mut().disableflags |= mjtDisableBit::mjDSBL_WARMSTART as i32;
        let ffi = plant.ffi();
        let (nq, nv, na, nu) = (
            ffi.nq as usize,
            ffi.nv as usize,
            ffi.na as usize,
            ffi.nu as usize,
        );
        if nu == 0 {
            return Err(MujocoError::Invalid(
                "the model has no actuators to control".into(),
            ));
        }
        let njnt = ffi.njnt as usize;
        let mut state_names = Vec::with_capacity(nq + nv + na);
        for (prefix, sizes, adr) in [
            ("q", qpos_sizes(&plant), plant.jnt_qposadr()),
            ("v", dof_sizes(&plant), plant.jnt_dofadr()),
        ] {
            let mut names = vec![String::new(); if prefix == "q" { nq } else { nv }];
            for j in 0..njnt {
                let name = plant
                    .id_to_name(MjtObjBase::mjOBJ_JOINT, j)
                    .filter(|n| !n.is_empty())
                    .map_or_else(|| format!("joint{j}"), str::to_string);
                let size = sizes[j];
                for k in 0..size {
                    let suffix = if size > 1 {
                        format!("[{k}]")
                    } else {
                        String::new()
                    };
                    names[adr[j] as usize + k] = format!("{prefix}.{name}{suffix}");
                }
            }
            state_names.extend(names);
        }
        let actuator_name = |i: usize| {
            plant
                .id_to_name(MjtObjBase::mjOBJ_ACTUATOR, i)
                .filter(|n| !n.is_empty())
                .map_or_else(|| format!("actuator{i}"), str::to_string)
        };
        let mut act_names = Vec::with_capacity(na);
        for i in 0..nu {
            if plant.actuator_dyntype()[i] != MjtDyn::mjDYN_NONE {
                act_names.push(format!("a.{}", actuator_name(i)));
            }
        }
        state_names.extend(act_names.into_iter().take(na));
        let control_names = (0..nu).map(|i| format!("u.{}", actuator_name(i))).collect();
        let (mut lower, mut upper) = (vec![f64::NEG_INFINITY; nu], vec![f64::INFINITY; nu]);
        for i in 0..nu {
            if plant.actuator_ctrllimited()[i] {
                [lower[i], upper[i]] = plant.actuator_ctrlrange()[i];
            }
        }
        Ok(Self {
            plant: Arc::new(plant),
            rollout: Arc::new(rollout),
            frame_skip,
            nq,
            nv,
            na,
            nu,
            state_names,
            control_names,
            lower,
            upper,
        })
    }

    /// The compiled model as written (what the plant steps).
    pub fn mj_model(&self) -> &Arc<MjModel> {
        &self.plant
    }

    /// Physics steps per control step.
    pub fn frame_skip(&self) -> usize {
        self.frame_skip
    }

    /// Seconds per control step: the model's timestep times `frame_skip`.
    pub fn control_dt(&self) -> f64 {
        self.plant.opt().timestep * self.frame_skip as f64
    }

    /// `nq + nv + na`.
    pub fn state_dim(&self) -> usize {
        self.nq + self.nv + self.na
    }

    /// `(nq, nv, na, nu)`.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (self.nq, self.nv, self.na, self.nu)
    }

    /// `q.<joint>` per qpos entry, `v.<joint>` per qvel entry, `a.<actuator>` per activation.
    pub fn state_names(&self) -> &[String] {
        &self.state_names
    }

    /// `u.<actuator>` per control.
    pub fn control_names(&self) -> &[String] {
        &self.control_names
    }

    /// The actuators' control ranges (infinite where `ctrllimited` is off).
    pub fn control_bounds(&self) -> (&[f64], &[f64]) {
        (&self.lower, &self.upper)
    }

    /// The model's `qpos0` and zero velocities and activations.
    pub fn default_state(&self) -> Vec<f64> {
        let mut x = vec![0.0; self.state_dim()];
        x[..self.nq].copy_from_slice(self.plant.qpos0());
        x
    }

    /// Index of a named object of `kind`, or an error listing the kind.
    pub fn id(&self, kind: MjtObjBase, name: &str) -> Result<usize, MujocoError> {
        self.plant.name_to_id(kind, name).ok_or_else(|| {
            MujocoError::Invalid(format!(
                "the model has no {} named `{name}`",
                kind_name(kind)
            ))
        })
    }

    /// A fresh `MjData` of the plant model.
    pub fn plant_data(&self) -> Data {
        MjData::new(self.plant.clone())
    }

    /// A fresh `MjData` of the rollout model.
    pub fn rollout_data(&self) -> Data {
        MjData::new(self.rollout.clone())
    }

    /// Rollout dynamics with a pool of `MjData`, one per worker thread.
    pub fn dynamics(&self) -> MujocoDynamics {
        MujocoDynamics {
            model: self.clone(),
            pool: DataPool::new(self, false),
        }
    }
}

fn kind_name(kind: MjtObjBase) -> &'static str {
    match kind {
        MjtObjBase::mjOBJ_JOINT => "joint",
        MjtObjBase::mjOBJ_BODY => "body",
        MjtObjBase::mjOBJ_SITE => "site",
        MjtObjBase::mjOBJ_GEOM => "geom",
        MjtObjBase::mjOBJ_SENSOR => "sensor",
        MjtObjBase::mjOBJ_ACTUATOR => "actuator",
        _ => "object",
    }
}

fn qpos_sizes(model: &MjModel) -> Vec<usize> {
    model
        .jnt_type()
        .iter()
        .map(|t| match t {
            MjtJoint::mjJNT_FREE => 7,
            MjtJoint::mjJNT_BALL => 4,
            _ => 1,
        })
        .collect()
}

fn dof_sizes(model: &MjModel) -> Vec<usize> {
    model
        .jnt_type()
        .iter()
        .map(|t| match t {
            MjtJoint::mjJNT_FREE => 6,
            MjtJoint::mjJNT_BALL => 3,
            _ => 1,
        })
        .collect()
}

/// One `MjData` per worker thread, each behind its own lock.
///
/// The slot is the calling thread's index in its rayon pool (the planner's), so workers never
/// share a slot within one pool; any other caller (a second pool, a plain thread) still gets a
/// valid slot, only possibly a contended one. Which slot a lane uses does not change its result:
/// the rollout model has no warm start, and every step writes the whole state first.
#[derive(Debug)]
pub(crate) struct DataPool {
    slots: Vec<Mutex<Data>>,
}

impl DataPool {
    pub(crate) fn new(model: &MujocoModel, plant: bool) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let slots = (0..threads + 1)
            .map(|_| {
                Mutex::new(if plant {
                    model.plant_data()
                } else {
                    model.rollout_data()
                })
            })
            .collect();
        Self { slots }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Data> {
        let slot = rayon::current_thread_index().map_or(0, |i| 1 + i % (self.slots.len() - 1));
        self.slots[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Write `x = (qpos, qvel, act)` into `data`.
pub(crate) fn write_state(data: &mut Data, x: &[f64], nq: usize, nv: usize) {
    data.qpos_mut().copy_from_slice(&x[..nq]);
    data.qvel_mut().copy_from_slice(&x[nq..nq + nv]);
    data.act_mut().copy_from_slice(&x[nq + nv..]);
}

/// Read `(qpos, qvel, act)` out of `data`.
pub(crate) fn read_state(data: &Data, next: &mut [f64], nq: usize, nv: usize) {
    next[..nq].copy_from_slice(data.qpos());
    next[nq..nq + nv].copy_from_slice(data.qvel());
    next[nq + nv..].copy_from_slice(data.act());
}

/// The number of times MuJoCo found a bad qpos, qvel or qacc and reset the data (it then
/// carries on from `qpos0`, which would be silent garbage to a planner).
fn instabilities(data: &Data) -> i32 {
    let w = data.warning();
    [
        MjtWarning::mjWARN_BADQPOS,
        MjtWarning::mjWARN_BADQVEL,
        MjtWarning::mjWARN_BADQACC,
    ]
    .iter()
    .map(|&k| w[k as usize].number)
    .sum()
}

/// One control step of `data`: `frame_skip` physics steps with `ctrl = u`. Writes NaN into
/// `next` if the state was not finite or the simulation went unstable.
pub(crate) fn control_step(
    data: &mut Data,
    model: &MujocoModel,
    x: &[f64],
    u: &[f64],
    next: &mut [f64],
) {
    if x.iter().chain(u).any(|v| !v.is_finite()) {
        next.fill(f64::NAN);
        return;
    }
    write_state(data, x, model.nq, model.nv);
    data.ctrl_mut().copy_from_slice(u);
    let before = instabilities(data);
    for _ in 0..model.frame_skip {
        data.step();
    }
    if instabilities(data) != before {
        next.fill(f64::NAN);
    } else {
        read_state(data, next, model.nq, model.nv);
    }
}

/// [`Dynamics`] of an MJCF model: `F(x, u)` = `frame_skip` MuJoCo steps from `x` with `ctrl = u`.
///
/// A block of lanes is stepped with one pooled `MjData` (locked once per block). A state that
/// is not finite, or a step where MuJoCo detects an instability, gives a NaN next state (the
/// planner then gives that sample zero weight) instead of MuJoCo's silent reset to `qpos0`.
#[derive(Debug)]
pub struct MujocoDynamics {
    model: MujocoModel,
    pool: DataPool,
}

impl MujocoDynamics {
    /// The model these dynamics step.
    pub fn model(&self) -> &MujocoModel {
        &self.model
    }
}

impl Dynamics for MujocoDynamics {
    fn state_dim(&self) -> usize {
        self.model.state_dim()
    }

    fn control_dim(&self) -> usize {
        self.model.nu
    }

    /// A MuJoCo step of these small models takes 1–20 µs, a few hundred hand-written ODE
    /// steps: even a few dozen samples are worth the planner's threads.
    fn work_per_step(&self) -> f64 {
        100.0 * self.model.frame_skip as f64
    }

    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        control_step(&mut self.pool.lock(), &self.model, x, u, next);
    }

    fn step_block(&self, lanes: usize, x: &[f64], u: &[f64], next: &mut [f64], tmp: &mut [f64]) {
        let (n, m) = (self.state_dim(), self.control_dim());
        let (xs, rest) = tmp.split_at_mut(n);
        let (us, rest) = rest.split_at_mut(m);
        let xn = &mut rest[..n];
        let mut data = self.pool.lock();
        for l in 0..lanes {
            for i in 0..n {
                xs[i] = x[i * lanes + l];
            }
            for j in 0..m {
                us[j] = u[j * lanes + l];
            }
            control_step(&mut data, &self.model, xs, us, xn);
            for i in 0..n {
                next[i * lanes + l] = xn[i];
            }
        }
    }
}

impl MujocoModel {
    /// Move a geom (in its body's frame) in both copies of the model, e.g. a target marker.
    /// Only before any dynamics or data were made from this model.
    pub fn set_geom_pos(&mut self, geom: &str, pos: [f64; 3]) -> Result<(), MujocoError> {
        let id = self.id(MjtObjBase::mjOBJ_GEOM, geom)?;
        if pos.iter().any(|v| !v.is_finite()) {
            return Err(MujocoError::Invalid(format!(
                "geom `{geom}`: position must be finite"
            )));
        }
        for model in [&mut self.plant, &mut self.rollout] {
            let model = Arc::get_mut(model).ok_or_else(|| {
                MujocoError::Invalid("set_geom_pos must come before the model is shared".into())
            })?;
            model.geom_pos_mut()[id] = pos;
        }
        Ok(())
    }
}
