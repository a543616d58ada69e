//! Tasks on MJCF models, written as TOML files: the model, the planner's settings, residual
//! costs and a success test. The dm_control suite tasks of this crate are such files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;

use mppi::{Cost, Dynamics, MppiConfig};
use mppi_tasks::{BodySegment, Criterion, Outcome, Task};
use mujoco_rs::prelude::*;

use crate::MujocoError;
use crate::cost::{ResidualCost, SensorEval, Term, TermConfig};
use crate::model::{Data, MujocoDynamics, MujocoModel, control_step, read_state, write_state};

/// A task file.
///
/// ```toml
/// name = "mj-cartpole"
/// description = "cart-pole swing-up (dm_control's model)"
/// model = "cartpole.xml"            # relative to this file
/// frame_skip = 2                    # physics steps per control step
/// steps = 300                       # episode length in control steps
/// initial_qpos = [0.0, 3.14159]     # default: the model's qpos0
///
/// [planner]                         # any `mppi config` keys; control bounds default to ctrlrange
/// samples = 256
/// horizon = 40
///
/// [[cost]]                          # see `TermConfig`
/// residual = "sensor:pole_zaxis"
/// target = [0.0, 0.0, 1.0]
/// weight = 10.0
///
/// [success]                         # see `SuccessConfig`
/// value = "sensor:pole_zaxis"
/// target = [0.0, 0.0, 1.0]
/// below = 0.2
/// mode = "hold"
/// window_s = 1.0
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// `mppi run <name>`.
    pub name: String,
    /// One line.
    pub description: String,
    /// The MJCF file, relative to the task file.
    pub model: String,
    /// Physics steps per control step.
    #[serde(default = "one")]
    pub frame_skip: usize,
    /// Episode length in control steps.
    pub steps: usize,
    /// Initial joint positions (default: the model's `qpos0`).
    #[serde(default)]
    pub initial_qpos: Option<Vec<f64>>,
    /// Initial joint velocities (default: zero).
    #[serde(default)]
    pub initial_qvel: Option<Vec<f64>>,
    /// Geom positions to set in the model before use (e.g. the reacher's target).
    #[serde(default)]
    pub geom_pos: Vec<GeomPos>,
    /// The plane bodies are drawn in: `"xz"` (side view, default) or `"xy"` (top view).
    #[serde(default)]
    pub view: View,
    /// The planner's settings, as in `mppi config`.
    #[serde(default)]
    pub planner: toml::Table,
    /// Residual cost terms.
    pub cost: Vec<TermConfig>,
    /// When an episode counts as a success.
    pub success: SuccessConfig,
}

fn one() -> usize {
    1
}

/// `geom_pos = [{ geom = "target", pos = [0.1, 0.1, 0.01] }]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeomPos {
    /// Geom name.
    pub geom: String,
    /// Position in its body's frame.
    pub pos: [f64; 3],
}

/// The plane [`Task::body_segments`] projects onto.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// World x to the right, z up (planar side-view models).
    #[default]
    Xz,
    /// World x to the right, y up (table-top models such as the reacher).
    Xy,
}

/// The success test: a residual's value (`‖r − target‖`, or the signed 1-D value without a
/// target) compared with `below` and/or `above`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessConfig {
    /// A residual, as in a cost term.
    pub value: String,
    /// Subtracted before taking the norm.
    #[serde(default)]
    pub target: Option<Vec<f64>>,
    /// Success needs `value < below`.
    #[serde(default)]
    pub below: Option<f64>,
    /// Success needs `value > above`.
    #[serde(default)]
    pub above: Option<f64>,
    /// `hold`: every state of the last `window_s`; `reach`: some state; `mean`: the mean over
    /// the last `window_s`.
    pub mode: SuccessMode,
    /// Seconds at the end of the episode that `hold` and `mean` look at.
    #[serde(default)]
    pub window_s: f64,
}

/// How [`SuccessConfig`] reads the episode.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SuccessMode {
    /// Every state of the final window passes.
    Hold,
    /// Some state passes.
    Reach,
    /// The mean over the final window passes.
    Mean,
}

/// The plant: one persistent `MjData`, stepped like dm_control steps its physics.
#[derive(Debug)]
struct Plant {
    data: Data,
    /// The state the plant last produced: a step from any other state starts a new episode,
    /// so the data is reset (its solver warm start belongs to the old one).
    last: Vec<f64>,
}

/// A task on an MJCF model ([`TaskSpec`]), usable wherever a built-in task is.
#[derive(Debug)]
pub struct MujocoTask {
    spec: TaskSpec,
    name: &'static str,
    description: &'static str,
    state_names: &'static [&'static str],
    control_names: &'static [&'static str],
    state_units: &'static [&'static str],
    control_units: &'static [&'static str],
    model: MujocoModel,
    dynamics: Arc<MujocoDynamics>,
    cost: Arc<ResidualCost>,
    config: MppiConfig,
    initial: Vec<f64>,
    success: Term,
    success_sensors: SensorEval,
    plant: Mutex<Plant>,
    draw: Mutex<Data>,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_all(v: Vec<String>) -> &'static [&'static str] {
    Box::leak(
        v.into_iter()
            .map(leak)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

impl MujocoTask {
    /// Read a task file; its `model` is found relative to it.
    pub fn from_file(path: &Path) -> Result<Self, MujocoError> {
        let text = std::fs::read_to_string(path).map_err(|e| MujocoError::Load {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let spec = parse_spec(&text, &path.display().to_string())?;
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let model = MujocoModel::from_xml_file(&dir.join(&spec.model), spec.frame_skip)?;
        Self::new(spec, model)
    }

    /// A task from its file's text and its model's MJCF text.
    pub fn from_strings(task_toml: &str, mjcf: &str) -> Result<Self, MujocoError> {
        let spec = parse_spec(task_toml, "<task>")?;
        let model = MujocoModel::from_xml_string(mjcf, spec.frame_skip)?;
        Self::new(spec, model)
    }

    fn new(spec: TaskSpec, mut model: MujocoModel) -> Result<Self, MujocoError> {
        for g in &spec.geom_pos {
            model.set_geom_pos(&g.geom, g.pos)?;
        }
        let (nq, nv, _, _) = model.sizes();
        let mut initial = model.default_state();
        for (values, start, len, what) in [
            (&spec.initial_qpos, 0, nq, "initial_qpos"),
            (&spec.initial_qvel, nq, nv, "initial_qvel"),
        ] {
            if let Some(v) = values {
                if v.len() != len || v.iter().any(|x| !x.is_finite()) {
                    return Err(MujocoError::Invalid(format!(
                        "{what} needs {len} finite entries (got {:?})",
                        v
                    )));
                }
                initial[start..start + len].copy_from_slice(v);
            }
        }
        if spec.steps == 0 {
            return Err(MujocoError::Invalid("steps must be at least 1".into()));
        }
        let cost = ResidualCost::new(&model, &spec.cost)?;
        let success = Term::new(
            &model,
            &TermConfig {
                residual: spec.success.value.clone(),
                target: spec.success.target.clone(),
                norm: Default::default(),
                smoothing: 0.1,
                weight: 1.0,
                terminal_weight: None,
            },
        )?;
        let s = &spec.success;
        if s.below.is_none() && s.above.is_none() {
            return Err(MujocoError::Invalid(
                "[success] needs `below` or `above`".into(),
            ));
        }
        if s.mode != SuccessMode::Reach && !(s.window_s > 0.0 && s.window_s.is_finite()) {
            return Err(MujocoError::Invalid(format!(
                "[success] window_s must be positive for mode {:?}",
                s.mode
            )));
        }
        let success_sensors = SensorEval::new(&model, std::slice::from_ref(&success));
        let config = planner_config(&spec, &model)?;
        let (state_units, control_units) = units(&model);
        Ok(Self {
            name: leak(spec.name.clone()),
            description: leak(spec.description.clone()),
            state_names: leak_all(model.state_names().to_vec()),
            control_names: leak_all(model.control_names().to_vec()),
            state_units: leak_all(state_units),
            control_units: leak_all(control_units),
            dynamics: Arc::new(model.dynamics()),
            cost: Arc::new(cost),
            config,
            initial,
            success,
            success_sensors,
            plant: Mutex::new(Plant {
                data: model.plant_data(),
                last: Vec::new(),
            }),
            draw: Mutex::new(model.plant_data()),
            model,
            spec,
        })
    }

    /// The task file this task was made from.
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    /// The model.
    pub fn model(&self) -> &MujocoModel {
        &self.model
    }

    /// The success test's value at state `x` (see [`SuccessConfig`]).
    pub fn success_value(&self, x: &[f64]) -> f64 {
        let zeros = vec![0.0; self.model.sizes().3];
        self.success_sensors
            .with(x, &zeros, |s| self.success.value(x, &zeros, s))
    }
}

fn parse_spec(text: &str, source: &str) -> Result<TaskSpec, MujocoError> {
    toml::from_str(text).map_err(|e| MujocoError::Load {
        file: source.to_string(),
        reason: e.to_string(),
    })
}

/// The `[planner]` table over `MppiConfig::default()`, with the actuators' control ranges as
/// bounds unless the table sets them.
fn planner_config(spec: &TaskSpec, model: &MujocoModel) -> Result<MppiConfig, MujocoError> {
    let mut config: MppiConfig = spec
        .planner
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| MujocoError::Invalid(format!("[planner]: {e}")))?;
    let (lo, hi) = model.control_bounds();
    if config.u_min.is_none() && lo.iter().all(|v| v.is_finite()) {
        config.u_min = Some(lo.to_vec());
    }
    if config.u_max.is_none() && hi.iter().all(|v| v.is_finite()) {
        config.u_max = Some(hi.to_vec());
    }
    config
        .validate(model.sizes().3)
        .map_err(|e| MujocoError::Invalid(format!("[planner]: {e}")))?;
    Ok(config)
}

/// Units from joint and actuator types: hinge rad, slide m; a motor on a hinge N·m, on a slide
/// N (when its gear is 1; otherwise the control is a fraction of the gear and has no unit).
fn units(model: &MujocoModel) -> (Vec<String>, Vec<String>) {
    let mj = model.mj_model();
    let (nq, nv, na, nu) = model.sizes();
    let mut q = vec![String::new(); nq];
    let mut v = vec![String::new(); nv];
    for (j, ty) in mj.jnt_type().iter().enumerate() {
        let (pos, vel) = match ty {
            MjtJoint::mjJNT_HINGE => ("rad", "rad/s"),
            MjtJoint::mjJNT_SLIDE => ("m", "m/s"),
            _ => continue,
        };
        q[mj.jnt_qposadr()[j] as usize] = pos.into();
        v[mj.jnt_dofadr()[j] as usize] = vel.into();
    }
    let mut state = q;
    state.extend(v);
    state.extend(vec![String::new(); na]);
    let controls = (0..nu)
        .map(|i| {
            let gear = mj.actuator_gear()[i][0];
            let joint = mj.actuator_trnid()[i][0];
            let on_joint = mj.actuator_trntype()[i] == MjtTrn::mjTRN_JOINT && joint >= 0;
            match (
                on_joint && gear == 1.0,
                on_joint.then(|| mj.jnt_type()[joint as usize]),
            ) {
                (true, Some(MjtJoint::mjJNT_HINGE)) => "N·m".to_string(),
                (true, Some(MjtJoint::mjJNT_SLIDE)) => "N".to_string(),
                _ => String::new(),
            }
        })
        .collect();
    (state, controls)
}

impl Task for MujocoTask {
    fn name(&self) -> &'static str {
        self.name
    }

    fn description(&self) -> &'static str {
        self.description
    }

    fn state_names(&self) -> &'static [&'static str] {
        self.state_names
    }

    fn control_names(&self) -> &'static [&'static str] {
        self.control_names
    }

    fn dt(&self) -> f64 {
        self.model.control_dt()
    }

    fn default_config(&self) -> MppiConfig {
        self.config.clone()
    }

    fn default_steps(&self) -> usize {
        self.spec.steps
    }

    fn initial_state(&self) -> Vec<f64> {
        self.initial.clone()
    }

    fn dynamics(&self) -> Arc<dyn Dynamics> {
        self.dynamics.clone()
    }

    fn cost(&self) -> Arc<dyn Cost> {
        self.cost.clone()
    }

    /// The plant keeps one `MjData` across steps, as dm_control does (its solver warm-starts
    /// from the previous step), so a trajectory replays exactly in the Python bindings.
    fn plant_step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let mut plant = self.plant.lock().unwrap_or_else(PoisonError::into_inner);
        let Plant { data, last } = &mut *plant;
        if last.as_slice() != x {
            data.reset();
        }
        control_step(data, &self.model, x, u, next);
        last.clear();
        last.extend_from_slice(next);
    }

    fn state_units(&self) -> &'static [&'static str] {
        self.state_units
    }

    fn control_units(&self) -> &'static [&'static str] {
        self.control_units
    }

    /// Capsules of every geom but planes, from MuJoCo's kinematics of `x`, in the task's view.
    fn body_segments(&self, x: &[f64]) -> Vec<BodySegment> {
        self.segments(x)
    }

    fn criterion(&self) -> Box<dyn Criterion + '_> {
        let s = &self.spec.success;
        let window = ((s.window_s / self.dt()).round() as usize).max(1);
        Box::new(SuccessCriterion {
            task: self,
            window: mppi_tasks::criterion::Tail::new(window),
            reached: None,
        })
    }
}

/// The criterion of a [`MujocoTask`].
struct SuccessCriterion<'a> {
    task: &'a MujocoTask,
    window: mppi_tasks::criterion::Tail<f64>,
    reached: Option<usize>,
}

impl SuccessCriterion<'_> {
    fn passes(&self, value: f64) -> bool {
        let s = &self.task.spec.success;
        s.below.is_none_or(|b| value < b) && s.above.is_none_or(|a| value > a)
    }
}

impl Criterion for SuccessCriterion<'_> {
    fn observe(&mut self, step: usize, state: &[f64], _control: Option<&[f64]>) {
        let value = self.task.success_value(state);
        if self.reached.is_none() && self.passes(value) {
            self.reached = Some(step);
        }
        self.window.push(value);
    }

    fn outcome(&self) -> Outcome {
        let s = &self.task.spec.success;
        let test = match (s.below, s.above) {
            (Some(b), Some(a)) => format!("in ({a}, {b})"),
            (Some(b), None) => format!("< {b}"),
            (None, Some(a)) => format!("> {a}"),
            (None, None) => String::new(),
        };
        let what = &s.value;
        let values: Vec<f64> = self.window.iter().copied().collect();
        let (success, message) = match s.mode {
            SuccessMode::Reach => match self.reached {
                Some(k) => (
                    true,
                    format!("{what} {test} at t = {:.2} s", k as f64 * self.task.dt()),
                ),
                None => (false, format!("{what} never {test}")),
            },
            SuccessMode::Hold => {
                let worst = values.iter().copied().fold(f64::NAN, |w, v| {
                    if w.is_nan() || !self.passes(v) { v } else { w }
                });
                let ok = !values.is_empty() && values.iter().all(|&v| self.passes(v));
                (
                    ok,
                    format!(
                        "{what} {test} for the last {} s: {ok} (e.g. {worst:.3})",
                        s.window_s
                    ),
                )
            }
            SuccessMode::Mean => {
                let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
                let ok = !values.is_empty() && self.passes(mean);
                (
                    ok,
                    format!(
                        "mean {what} over the last {} s = {mean:.3} ({test})",
                        s.window_s
                    ),
                )
            }
        };
        Outcome { success, message }
    }
}

impl MujocoTask {
    /// Body positions for drawing: kinematics of `x` on a private `MjData`.
    pub(crate) fn with_kinematics<R>(&self, x: &[f64], f: impl FnOnce(&Data) -> R) -> R {
        let mut data = self.draw.lock().unwrap_or_else(PoisonError::into_inner);
        let (nq, nv, _, _) = self.model.sizes();
        write_state(&mut data, x, nq, nv);
        data.kinematics();
        f(&data)
    }

    /// Read the plant's full state (for tests).
    #[doc(hidden)]
    pub fn plant_state(&self) -> Vec<f64> {
        let plant = self.plant.lock().unwrap_or_else(PoisonError::into_inner);
        let mut x = vec![0.0; self.model.state_dim()];
        let (nq, nv, _, _) = self.model.sizes();
        read_state(&plant.data, &mut x, nq, nv);
        x
    }
}
