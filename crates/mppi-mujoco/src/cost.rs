//! MJCF-side costs: residuals (joint positions and velocities, controls, sensors) with norms
//! and weights, MuJoCo MPC style, written in a config; or a Rust closure over the state.

use serde::Deserialize;

use mppi::Cost;
use mujoco_rs::prelude::*;

use crate::MujocoError;
use crate::model::{DataPool, MujocoModel, write_state};

/// One cost term as written in a task file (`[[cost]]`).
///
/// ```toml
/// [[cost]]
/// residual = "sensor:pole_zaxis"   # or "qpos:<joint>", "qvel:<joint>", "ctrl", "ctrl:<actuator>"
/// target = [0.0, 0.0, 1.0]         # subtracted from the residual (default 0)
/// norm = "quadratic"               # "quadratic" ½‖r‖², "l2" ‖r‖, "smooth_abs" √(‖r‖²+p²)−p, "linear" r (1-D)
/// weight = 5.0                     # running weight
/// terminal_weight = 5.0            # weight at the final state (default: `weight`; control terms: 0)
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TermConfig {
    /// What the residual measures.
    pub residual: String,
    /// Subtracted from the residual; one entry per component, or one for all.
    #[serde(default)]
    pub target: Option<Vec<f64>>,
    /// The norm applied to `residual − target`.
    #[serde(default)]
    pub norm: Norm,
    /// `p` of the smooth-abs norm (default 0.1).
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
    /// Weight of the term in the running cost.
    pub weight: f64,
    /// Weight of the term at the final state of a rollout.
    #[serde(default)]
    pub terminal_weight: Option<f64>,
}

fn default_smoothing() -> f64 {
    0.1
}

/// A norm of a residual vector `r`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// `½‖r‖²`.
    #[default]
    Quadratic,
    /// `‖r‖`.
    L2,
    /// `√(‖r‖² + p²) − p`: quadratic near zero, linear far away.
    SmoothAbs,
    /// `r` itself (a one-dimensional residual; a negative weight rewards it).
    Linear,
}

/// Where a residual's values come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Source {
    /// `x[start..start + len]` (qpos or qvel entries).
    State { start: usize, len: usize },
    /// `u[start..start + len]`.
    Control { start: usize, len: usize },
    /// `sensordata[start..start + len]` after the position (and velocity) stage.
    Sensor {
        start: usize,
        len: usize,
        velocity: bool,
    },
    /// Potential plus kinetic energy (the model must enable the `energy` flag).
    Energy,
}

impl Source {
    pub(crate) fn len(self) -> usize {
        match self {
            Source::State { len, .. }
            | Source::Control { len, .. }
            | Source::Sensor { len, .. } => len,
            Source::Energy => 1,
        }
    }

    /// Parse `qpos:<joint>`, `qvel:<joint>`, `ctrl`, `ctrl:<actuator>`, `sensor:<name>`.
    pub(crate) fn parse(model: &MujocoModel, text: &str) -> Result<Self, MujocoError> {
        let (kind, name) = text.split_once(':').unwrap_or((text, ""));
        let mj = model.mj_model();
        let (nq, _, _, nu) = model.sizes();
        let joint = |name: &str| -> Result<(usize, MjtJoint), MujocoError> {
            let j = model.id(MjtObjBase::mjOBJ_JOINT, name)?;
            Ok((j, mj.jnt_type()[j]))
        };
        match kind {
            "qpos" => {
                let (j, ty) = joint(name)?;
                let len = match ty {
                    MjtJoint::mjJNT_FREE => 7,
                    MjtJoint::mjJNT_BALL => 4,
                    _ => 1,
                };
                Ok(Source::State {
                    start: mj.jnt_qposadr()[j] as usize,
                    len,
                })
            }
            "qvel" => {
                let (j, ty) = joint(name)?;
                let len = match ty {
                    MjtJoint::mjJNT_FREE => 6,
                    MjtJoint::mjJNT_BALL => 3,
                    _ => 1,
                };
                Ok(Source::State {
                    start: nq + mj.jnt_dofadr()[j] as usize,
                    len,
                })
            }
            "ctrl" if name.is_empty() => Ok(Source::Control { start: 0, len: nu }),
            "ctrl" => Ok(Source::Control {
                start: model.id(MjtObjBase::mjOBJ_ACTUATOR, name)?,
                len: 1,
            }),
            "energy" if name.is_empty() => {
                if mj.opt().enableflags & mujoco_rs::mujoco_c::mjtEnableBit::mjENBL_ENERGY as i32
                    == 0
                {
                    return Err(MujocoError::Invalid(
                        "residual `energy` needs <flag energy=\"enable\"/> in the model's <option>"
                            .into(),
                    ));
                }
                Ok(Source::Energy)
            }
            "sensor" => {
                let s = model.id(MjtObjBase::mjOBJ_SENSOR, name)?;
                let stage = mj.sensor_needstage()[s];
                if stage == MjtStage::mjSTAGE_ACC {
                    return Err(MujocoError::Invalid(format!(
                        "sensor `{name}` needs the acceleration stage; a cost can use position \
                         and velocity sensors (framepos, framezaxis, velocimeter, ...)"
                    )));
                }
                Ok(Source::Sensor {
                    start: mj.sensor_adr()[s] as usize,
                    len: mj.sensor_dim()[s] as usize,
                    velocity: stage == MjtStage::mjSTAGE_VEL,
                })
            }
            _ => Err(MujocoError::Invalid(format!(
                "unknown residual `{text}`: write qpos:<joint>, qvel:<joint>, ctrl, \
                 ctrl:<actuator>, sensor:<name> or energy"
            ))),
        }
    }
}

/// What MuJoCo computed for one state: the sensor data and the total energy.
pub(crate) type Readout<'a> = (&'a [f64], f64);

/// A parsed term.
#[derive(Debug, Clone)]
pub(crate) struct Term {
    pub(crate) source: Source,
    target: Vec<f64>,
    norm: Norm,
    smoothing: f64,
    weight: f64,
    terminal_weight: f64,
}

impl Term {
    pub(crate) fn new(model: &MujocoModel, config: &TermConfig) -> Result<Self, MujocoError> {
        let bad =
            |what: String| MujocoError::Invalid(format!("cost `{}`: {what}", config.residual));
        let source = Source::parse(model, &config.residual)?;
        let len = source.len();
        let target = match &config.target {
            None => vec![0.0; len],
            Some(t) if t.len() == 1 => vec![t[0]; len],
            Some(t) if t.len() == len => t.clone(),
            Some(t) => {
                return Err(bad(format!(
                    "target has {} entries, the residual {len}",
                    t.len()
                )));
            }
        };
        if target.iter().any(|v| !v.is_finite()) {
            return Err(bad("target must be finite".into()));
        }
        if config.norm == Norm::Linear && len != 1 {
            return Err(bad(format!(
                "the linear norm needs a 1-D residual (this one has {len})"
            )));
        }
        if !(config.smoothing > 0.0 && config.smoothing.is_finite()) {
            return Err(bad(format!(
                "smoothing must be positive (got {})",
                config.smoothing
            )));
        }
        let is_control = matches!(source, Source::Control { .. });
        let terminal_weight =
            config
                .terminal_weight
                .unwrap_or(if is_control { 0.0 } else { config.weight });
        if !config.weight.is_finite() || !terminal_weight.is_finite() {
            return Err(bad("weights must be finite".into()));
        }
        if is_control && terminal_weight != 0.0 {
            return Err(bad(
                "a control term has no terminal weight (there is no control)".into(),
            ));
        }
        Ok(Self {
            source,
            target,
            norm: config.norm,
            smoothing: config.smoothing,
            weight: config.weight,
            terminal_weight,
        })
    }

    /// `‖r − target‖` for a distance-like success test, or `r[0]` for a 1-D residual without
    /// a target.
    pub(crate) fn value(&self, x: &[f64], u: &[f64], readout: Readout<'_>) -> f64 {
        let (first, sq) = self.residual(x, u, readout);
        if self.target.len() == 1 {
            first
        } else {
            sq.sqrt()
        }
    }

    /// The first component of `r − target` and `‖r − target‖²`, without a buffer.
    fn residual(&self, x: &[f64], u: &[f64], readout: Readout<'_>) -> (f64, f64) {
        let sensors = readout.0;
        let values = match self.source {
            Source::State { start, len } => &x[start..start + len],
            Source::Control { start, len } => &u[start..start + len],
            Source::Sensor { start, len, .. } => &sensors[start..start + len],
            Source::Energy => std::slice::from_ref(&readout.1),
        };
        let first = values[0] - self.target[0];
        let sq = values
            .iter()
            .zip(&self.target)
            .map(|(v, t)| (v - t) * (v - t))
            .sum();
        (first, sq)
    }

    fn cost(&self, x: &[f64], u: &[f64], readout: Readout<'_>, weight: f64) -> f64 {
        if weight == 0.0 {
            return 0.0;
        }
        let (first, sq) = self.residual(x, u, readout);
        let p = self.smoothing;
        weight
            * match self.norm {
                Norm::Quadratic => 0.5 * sq,
                Norm::L2 => sq.sqrt(),
                Norm::SmoothAbs => (sq + p * p).sqrt() - p,
                Norm::Linear => first,
            }
    }
}

/// Computes the sensors the terms read, for one state, with a pooled `MjData`.
#[derive(Debug)]
pub(crate) struct SensorEval {
    model: MujocoModel,
    pool: DataPool,
    position: bool,
    velocity: bool,
    energy: bool,
}

impl SensorEval {
    pub(crate) fn new(model: &MujocoModel, terms: &[Term]) -> Self {
        let mut position = false;
        let mut velocity = false;
        let mut energy = false;
        for t in terms {
            match t.source {
                Source::Sensor { velocity: v, .. } => {
                    position = true;
                    velocity |= v;
                }
                Source::Energy => {
                    (position, velocity, energy) = (true, true, true);
                }
                _ => {}
            }
        }
        let pool = DataPool::new(model, false);
        Self {
            model: model.clone(),
            pool,
            position,
            velocity,
            energy,
        }
    }

    /// Run `f` with the sensor values and energy at `(x, u)` (empty and NaN when no term
    /// reads them).
    pub(crate) fn with<R>(&self, x: &[f64], u: &[f64], f: impl FnOnce(Readout<'_>) -> R) -> R {
        if !self.position {
            return f((&[], f64::NAN));
        }
        let mut data = self.pool.lock();
        let (nq, nv, _, nu) = self.model.sizes();
        write_state(&mut data, x, nq, nv);
        if u.len() == nu {
            data.ctrl_mut().copy_from_slice(u);
        }
        data.fwd_position();
        data.sensor_pos();
        if self.velocity {
            data.fwd_velocity();
            data.sensor_vel();
        }
        let mut energy = f64::NAN;
        if self.energy {
            data.energy_pos();
            data.energy_vel();
            energy = data.energy()[0] + data.energy()[1];
        }
        f((data.sensordata(), energy))
    }
}

/// A running and terminal cost made of residual terms.
///
/// `c(x, u) = Σᵢ wᵢ nᵢ(rᵢ(x, u) − targetᵢ)` and `φ(x) = Σᵢ w̄ᵢ nᵢ(rᵢ(x) − targetᵢ)` over the
/// non-control terms. A sensor residual is MuJoCo's sensor at `(x, u)` after the position
/// stage (and the velocity stage for velocity sensors), computed with a pooled `MjData`.
#[derive(Debug)]
pub struct ResidualCost {
    terms: Vec<Term>,
    sensors: SensorEval,
    nu: usize,
}

impl ResidualCost {
    /// Parse every term against `model` (names are checked, sizes matched).
    pub fn new(model: &MujocoModel, terms: &[TermConfig]) -> Result<Self, MujocoError> {
        if terms.is_empty() {
            return Err(MujocoError::Invalid(
                "a task needs at least one [[cost]] term".into(),
            ));
        }
        let terms = terms
            .iter()
            .map(|t| Term::new(model, t))
            .collect::<Result<Vec<_>, _>>()?;
        let sensors = SensorEval::new(model, &terms);
        Ok(Self {
            terms,
            sensors,
            nu: model.sizes().3,
        })
    }

    fn total(&self, x: &[f64], u: &[f64], terminal: bool) -> f64 {
        if x.iter().any(|v| !v.is_finite()) {
            return f64::NAN;
        }
        self.sensors.with(x, u, |s| {
            self.terms
                .iter()
                .map(|t| {
                    let w = if terminal {
                        t.terminal_weight
                    } else {
                        t.weight
                    };
                    t.cost(x, u, s, w)
                })
                .sum()
        })
    }
}

impl Cost for ResidualCost {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        self.total(x, u, false)
    }

    fn terminal(&self, x: &[f64]) -> f64 {
        let zeros = [0.0; 32];
        self.total(x, &zeros[..self.nu.min(32)], true)
    }
}

/// A cost written as Rust closures over the state vector `(qpos, qvel, act)` and the control.
///
/// ```
/// use mppi::{Controller, MppiConfig};
/// use mppi_mujoco::{FnCost, MujocoModel};
///
/// let model = MujocoModel::from_xml_string(
///     r#"<mujoco><worldbody><body><joint name="hinge" axis="0 1 0"/>
///        <geom type="capsule" size="0.05" fromto="0 0 0 0 0 0.5" mass="1"/></body></worldbody>
///        <actuator><motor joint="hinge" ctrlrange="-2 2" ctrllimited="true"/></actuator></mujoco>"#,
///     2,
/// )?;
/// // upright is hinge = 0
/// let cost = FnCost::new(|x: &[f64], u: &[f64]| (1.0 - x[0].cos()) + 0.01 * u[0] * u[0])
///     .with_terminal(|x: &[f64]| 10.0 * (1.0 - x[0].cos()));
/// let config = MppiConfig { samples: 32, horizon: 20, u_min: Some(vec![-2.0]), u_max: Some(vec![2.0]), ..Default::default() };
/// let mut controller = Controller::new(model.dynamics(), cost, &config)?;
/// let u = controller.act(&[3.0, 0.0])?;
/// assert!(u[0].abs() <= 2.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FnCost<R, T = fn(&[f64]) -> f64> {
    running: R,
    terminal: Option<T>,
}

impl<R: Fn(&[f64], &[f64]) -> f64 + Send + Sync> FnCost<R> {
    /// A running cost `c(x, u)`; no terminal cost.
    pub fn new(running: R) -> Self {
        Self {
            running,
            terminal: None,
        }
    }

    /// Add a terminal cost `φ(x)`.
    pub fn with_terminal<T: Fn(&[f64]) -> f64 + Send + Sync>(self, terminal: T) -> FnCost<R, T> {
        FnCost {
            running: self.running,
            terminal: Some(terminal),
        }
    }
}

impl<R, T> std::fmt::Debug for FnCost<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnCost")
            .field("terminal", &self.terminal.is_some())
            .finish()
    }
}

impl<R, T> Cost for FnCost<R, T>
where
    R: Fn(&[f64], &[f64]) -> f64 + Send + Sync,
    T: Fn(&[f64]) -> f64 + Send + Sync,
{
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        (self.running)(x, u)
    }

    fn terminal(&self, x: &[f64]) -> f64 {
        self.terminal.as_ref().map_or(0.0, |t| t(x))
    }
}
