//! dm_control suite tasks on MuJoCo, reproduced exactly (see [`DmcEnv`]).

use mppi_mujoco::{Data, MujocoModel};
use serde::{Deserialize, Serialize};

use super::rewards::{DEFAULT_VALUE_AT_MARGIN, Sigmoid, tolerance};
use super::{Env, check_action, check_obs, not_in_episode};
use crate::LearnError;

/// TD-MPC2's action repeat for dm_control.
const ACTION_REPEAT: usize = 2;

/// dm_control's `reacher` target sizes (`_BIG_TARGET`, `_SMALL_TARGET`).
const REACHER_EASY_TARGET: f64 = 0.05;
const REACHER_HARD_TARGET: f64 = 0.015;

/// dm_control's `pendulum._ANGLE_BOUND`, in degrees.
const PENDULUM_ANGLE_BOUND_DEG: f64 = 8.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Domain {
    Cartpole,
    Acrobot,
    Reacher { target_size: f64 },
    Pendulum,
}

/// One dm_control task: its model, `n_sub_steps` (physics steps per control step, from the
/// task's control timestep; none of these tasks sets one, so 1) and `_DEFAULT_TIME_LIMIT`.
struct Spec {
    name: &'static str,
    domain: Domain,
    xml: &'static str,
    n_sub_steps: usize,
    time_limit: f64,
}

const SPECS: &[Spec] = &[
    Spec {
        name: "cartpole-swingup",
        domain: Domain::Cartpole,
        xml: include_str!("../../../mppi-mujoco/models/cartpole.xml"),
        n_sub_steps: 1,
        time_limit: 10.0,
    },
    Spec {
        name: "acrobot-swingup",
        domain: Domain::Acrobot,
        xml: include_str!("../../../mppi-mujoco/models/acrobot.xml"),
        n_sub_steps: 1,
        time_limit: 10.0,
    },
    Spec {
        name: "reacher-easy",
        domain: Domain::Reacher {
            target_size: REACHER_EASY_TARGET,
        },
        xml: include_str!("../../../mppi-mujoco/models/reacher.xml"),
        n_sub_steps: 1,
        time_limit: 20.0,
    },
    Spec {
        name: "reacher-hard",
        domain: Domain::Reacher {
            target_size: REACHER_HARD_TARGET,
        },
        xml: include_str!("../../../mppi-mujoco/models/reacher.xml"),
        n_sub_steps: 1,
        time_limit: 20.0,
    },
    Spec {
        name: "pendulum-swingup",
        domain: Domain::Pendulum,
        xml: include_str!("../../../mppi-mujoco/models/pendulum.xml"),
        n_sub_steps: 1,
        time_limit: 20.0,
    },
];

/// The physics state an episode starts from: what [`DmcEnv::reset_to`] takes and
/// [`DmcEnv::state`] returns (also the JSON of `examples/env_trace.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmcState {
    /// Joint positions, `nq` entries in the model's joint order (rad, m).
    pub qpos: Vec<f64>,
    /// Joint velocities, `nv` entries.
    pub qvel: Vec<f64>,
    /// The reacher's target `(x, y)` in m (dm_control writes it into the model's
    /// `geom_pos['target']` each episode); `None` for the other tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<[f64; 2]>,
}

/// Indices into the model that observations and rewards read.
#[derive(Debug, Clone, Copy, Default)]
struct Ids {
    /// Cartpole `pole_1`, acrobot `upper_arm`, pendulum `pole`.
    body_a: usize,
    /// Acrobot `lower_arm`.
    body_b: usize,
    /// Acrobot sites `target` and `tip`.
    site_target: usize,
    site_tip: usize,
    /// Acrobot: `site_size['target', 0]`, the reward radius.
    target_radius: f64,
    /// Reacher geom `finger` and its radius.
    geom_finger: usize,
    finger_radius: f64,
}

/// A dm_control suite task reproduced on MuJoCo 3.17.0, with TD-MPC2's action repeat.
///
/// The model is this repository's copy of dm_control 1.0.50's (`crates/mppi-mujoco/models`,
/// bit-identical physics); one persistent `MjData` is stepped as dm_control steps its physics
/// (the solver warm-starts from the previous step; after every control step `mj_step1`
/// brings positions and velocities up to date, as dm_control's legacy step does), so an
/// episode started from dm_control's initial state with [`DmcEnv::reset_to`] and driven by
/// the same actions gives dm_control's observations bit for bit, and its rewards to the last
/// place (1 ulp at most: numpy's `exp` and BLAS's norm round differently from Rust's in the
/// last bit now and then); `crates/mppi-mujoco/tests/python/test_envs_match_dm_control.py`
/// checks it.
///
/// | name | control step | obs (dm_control's keys, in order) | reward per control step |
/// | --- | --- | --- | --- |
/// | `cartpole-swingup` | 0.01 s | `position` (cart x, cos, sin of the pole), `velocity` (2): 5 | upright · centered · small control · small velocity |
/// | `acrobot-swingup` | 0.01 s | `orientations` (xz, xz, zz, zz of both links), `velocity` (2): 6 | `tol(‖tip − target‖, (0, .2), margin 1)` |
/// | `reacher-easy`, `-hard` | 0.02 s | `position` (2), `to_target` (2), `velocity` (2): 6 | `‖finger − target‖ ≤` radii sum (.06, .025) |
/// | `pendulum-swingup` | 0.02 s | `orientation` (zz, xz of the pole), `velocity` (1): 3 | pole within 8° of upright |
///
/// Every task lasts 1000 control steps (its `_DEFAULT_TIME_LIMIT` over the control step):
/// 500 decisions of 2 control steps, a return in `[0, 1000]`. Actions map to `ctrl` as
/// dm_control's `action_scale` wrapper maps `[-1, 1]` onto the actuators' `ctrlrange`; these
/// tasks' ranges are all `[-1, 1]`, where the action is the control itself, unchanged.
/// Initial states follow each task's `initialize_episode` (cartpole: cart `0.01 N(0,1)`,
/// pole `π + 0.01 N(0,1)`, velocities `0.01 N(0,1)`; acrobot and pendulum: angles
/// `U(−π, π)`; reacher: shoulder `U(−π, π)`, wrist `U(±160°)`, target at radius
/// `U(.05, .2)` and angle `U(0, 2π)`), drawn with [`mppi::rng::sample_rng`] from the seed.
///
/// ```
/// use mppi_learn::env::{DmcEnv, DmcState, Env};
/// let mut env = DmcEnv::new("pendulum-swingup")?;
/// let mut obs = [0.0; 3];
/// // upright and still: reward 1 for both control steps of the decision
/// env.reset_to(&DmcState { qpos: vec![0.0], qvel: vec![0.0], target: None }, &mut obs)?;
/// assert_eq!(obs, [1.0, 0.0, 0.0]);
/// assert_eq!(env.step(&[0.0], &mut obs)?, 2.0);
/// # Ok::<(), mppi_learn::LearnError>(())
/// ```
pub struct DmcEnv {
    name: &'static str,
    domain: Domain,
    model: MujocoModel,
    data: Data,
    n_sub_steps: usize,
    control_steps: usize,
    ids: Ids,
    /// The reacher's target `(x, y)` this episode.
    target: [f64; 2],
    /// The actuators' control ranges.
    lower: Vec<f64>,
    upper: Vec<f64>,
    /// This decision's controls.
    ctrl: Vec<f64>,
    /// Control steps taken this episode; `None` before the first reset and after a failure.
    steps_done: Option<usize>,
    started: bool,
}

impl std::fmt::Debug for DmcEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmcEnv")
            .field("name", &self.name)
            .field("control_steps", &self.control_steps)
            .field("steps_done", &self.steps_done)
            .finish_non_exhaustive()
    }
}

fn missing(what: &str) -> LearnError {
    LearnError::Settings(format!("the model has no {what}"))
}

impl DmcEnv {
    /// The task `name`: one of [`super::DMC_ENV_NAMES`]; another name is an error listing
    /// them.
    pub fn new(name: &str) -> Result<Self, LearnError> {
        let spec = SPECS.iter().find(|s| s.name == name).ok_or_else(|| {
            LearnError::Settings(format!(
                "unknown dm_control environment `{name}`; valid names: {}",
                super::DMC_ENV_NAMES.join(", ")
            ))
        })?;
        let model = MujocoModel::from_xml_string(spec.xml, spec.n_sub_steps)
            .map_err(|e| LearnError::Settings(format!("{name}: {e}")))?;
        let mj = model.mj_model();
        let body = |n: &str| {
            mj.body(n)
                .map(|b| b.id)
                .ok_or_else(|| missing(&format!("body `{n}`")))
        };
        let site = |n: &str| {
            mj.site(n)
                .map(|b| b.id)
                .ok_or_else(|| missing(&format!("site `{n}`")))
        };
        let mut ids = Ids::default();
        match spec.domain {
            Domain::Cartpole => ids.body_a = body("pole_1")?,
            Domain::Pendulum => ids.body_a = body("pole")?,
            Domain::Acrobot => {
                ids.body_a = body("upper_arm")?;
                ids.body_b = body("lower_arm")?;
                ids.site_target = site("target")?;
                ids.site_tip = site("tip")?;
                ids.target_radius = mj.site_size()[ids.site_target][0];
            }
            Domain::Reacher { .. } => {
                ids.geom_finger = mj
                    .geom("finger")
                    .map(|g| g.id)
                    .ok_or_else(|| missing("geom `finger`"))?;
                ids.finger_radius = mj.geom_size()[ids.geom_finger][0];
            }
        }
        let (lower, upper) = model.control_bounds();
        let (lower, upper) = (lower.to_vec(), upper.to_vec());
        if lower.iter().chain(&upper).any(|b| !b.is_finite()) {
            return Err(LearnError::Settings(format!(
                "{name}: every actuator needs a finite ctrlrange"
            )));
        }
        // dm_control's `Environment`: the episode ends once `step_count >= time_limit /
        // control_timestep`
        let control_steps = (spec.time_limit / model.control_dt()).ceil() as usize;
        let data = model.plant_data();
        let nu = lower.len();
        Ok(Self {
            name: spec.name,
            domain: spec.domain,
            n_sub_steps: spec.n_sub_steps,
            control_steps,
            ids,
            target: [0.0; 2],
            lower,
            upper,
            ctrl: vec![0.0; nu],
            steps_done: None,
            started: false,
            data,
            model,
        })
    }

    /// The MuJoCo model (its sizes, names, control bounds).
    pub fn model(&self) -> &MujocoModel {
        &self.model
    }

    /// Seconds per control step (dm_control's `control_timestep()`).
    pub fn control_timestep(&self) -> f64 {
        self.model.control_dt()
    }

    /// Control steps per episode (1000 for every task here).
    pub fn control_steps(&self) -> usize {
        self.control_steps
    }

    /// The current physics state (and the reacher's target).
    pub fn state(&self) -> DmcState {
        DmcState {
            qpos: self.data.qpos().to_vec(),
            qvel: self.data.qvel().to_vec(),
            target: matches!(self.domain, Domain::Reacher { .. }).then_some(self.target),
        }
    }

    /// Start a new episode from `state` instead of a random one (e.g. dm_control's state after
    /// its `env.reset()`: `physics.data.qpos`, `physics.data.qvel` and, for the reacher,
    /// `physics.named.model.geom_pos['target', :2]`); writes the first observation.
    ///
    /// The data is reset as `mj_resetData` does (zero controls, time and solver warm start),
    /// the state written and `mj_forward` run, as dm_control's reset does. The reacher needs
    /// `target`, the other tasks refuse one; lengths must be the model's `nq` and `nv`, every
    /// entry finite.
    ///
    /// ```
    /// use mppi_learn::env::{DmcEnv, DmcState, Env};
    /// let mut env = DmcEnv::new("reacher-easy")?;
    /// let mut obs = [0.0; 6];
    /// let start = DmcState { qpos: vec![0.0, 0.0], qvel: vec![0.0, 0.0], target: Some([0.1, 0.0]) };
    /// env.reset_to(&start, &mut obs)?;
    /// // position, to_target (target minus fingertip, which is at x = .24), velocity
    /// assert_eq!(obs[..2], [0.0, 0.0]);
    /// assert!((obs[2] - (0.1 - 0.24)).abs() < 1e-12 && obs[3].abs() < 1e-12);
    /// assert_eq!(env.state(), start);
    /// # Ok::<(), mppi_learn::LearnError>(())
    /// ```
    pub fn reset_to(&mut self, state: &DmcState, obs: &mut [f64]) -> Result<(), LearnError> {
        check_obs(obs, self.obs_dim())?;
        let (nq, nv, _, _) = self.model.sizes();
        for (what, values, n) in [("qpos", &state.qpos, nq), ("qvel", &state.qvel, nv)] {
            if values.len() != n {
                return Err(mppi::MppiError::DimensionMismatch {
                    what,
                    expected: n,
                    got: values.len(),
                }
                .into());
            }
            if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                return Err(mppi::MppiError::NonFinite { what, index }.into());
            }
        }
        let target = match (self.domain, state.target) {
            (Domain::Reacher { .. }, Some(t)) if t.iter().all(|v| v.is_finite()) => t,
            (Domain::Reacher { .. }, _) => {
                return Err(LearnError::Settings(format!(
                    "{}: the state needs a finite target [x, y]",
                    self.name
                )));
            }
            (_, None) => [0.0; 2],
            (_, Some(_)) => {
                return Err(LearnError::Settings(format!(
                    "{}: only the reacher has a target",
                    self.name
                )));
            }
        };
        self.start(&state.qpos, &state.qvel, target, obs)
    }

    /// Reset the data to `(qpos, qvel)`, run `mj_forward`, observe.
    fn start(
        &mut self,
        qpos: &[f64],
        qvel: &[f64],
        target: [f64; 2],
        obs: &mut [f64],
    ) -> Result<(), LearnError> {
        self.steps_done = None;
        self.started = true;
        self.data.reset();
        self.data.qpos_mut().copy_from_slice(qpos);
        self.data.qvel_mut().copy_from_slice(qvel);
        self.target = target;
        let before = warnings(&self.data);
        self.data.forward();
        if warnings(&self.data) != before {
            return Err(self.unstable(0));
        }
        self.observe(obs);
        if let Some(index) = obs.iter().position(|v| !v.is_finite()) {
            return Err(mppi::MppiError::NonFinite {
                what: "the first observation",
                index,
            }
            .into());
        }
        self.steps_done = Some(0);
        Ok(())
    }

    fn unstable(&self, step: usize) -> LearnError {
        LearnError::Settings(format!(
            "{}: the simulation went unstable at control step {step} (MuJoCo reported a bad \
             position, velocity or acceleration, as dm_control's PhysicsError); call reset",
            self.name
        ))
    }

    /// dm_control's observation, flattened in its dict's order.
    fn observe(&self, obs: &mut [f64]) {
        let d = &self.data;
        let (qpos, qvel) = (d.qpos(), d.qvel());
        let xmat = d.xmat();
        // row-major 3x3: index 2 is `xz`, 8 is `zz`
        match self.domain {
            Domain::Cartpole => {
                let pole = xmat[self.ids.body_a];
                obs.copy_from_slice(&[qpos[0], pole[8], pole[2], qvel[0], qvel[1]]);
            }
            Domain::Acrobot => {
                let (upper, lower) = (xmat[self.ids.body_a], xmat[self.ids.body_b]);
                obs.copy_from_slice(&[upper[2], lower[2], upper[8], lower[8], qvel[0], qvel[1]]);
            }
            Domain::Reacher { .. } => {
                let finger = d.geom_xpos()[self.ids.geom_finger];
                obs.copy_from_slice(&[
                    qpos[0],
                    qpos[1],
                    self.target[0] - finger[0],
                    self.target[1] - finger[1],
                    qvel[0],
                    qvel[1],
                ]);
            }
            Domain::Pendulum => {
                let pole = xmat[self.ids.body_a];
                obs.copy_from_slice(&[pole[8], pole[2], qvel[0]]);
            }
        }
    }

    /// The task's `get_reward` on the current data (positions and velocities up to date).
    fn reward(&self) -> Result<f64, LearnError> {
        let d = &self.data;
        let v = DEFAULT_VALUE_AT_MARGIN;
        Ok(match self.domain {
            Domain::Cartpole => {
                let cos = d.xmat()[self.ids.body_a][8];
                let upright = (cos + 1.0) / 2.0;
                let centered = tolerance(d.qpos()[0], (0.0, 0.0), 2.0, Sigmoid::Gaussian, v)?;
                let centered = (1.0 + centered) / 2.0;
                let small_control =
                    tolerance(d.ctrl()[0], (0.0, 0.0), 1.0, Sigmoid::Quadratic, 0.0)?;
                let small_control = (4.0 + small_control) / 5.0;
                let small_velocity = tolerance(d.qvel()[1], (0.0, 0.0), 5.0, Sigmoid::Gaussian, v)?;
                let small_velocity = (1.0 + small_velocity) / 2.0;
                upright * small_control * small_velocity * centered
            }
            Domain::Acrobot => {
                let (target, tip) = (
                    d.site_xpos()[self.ids.site_target],
                    d.site_xpos()[self.ids.site_tip],
                );
                let [dx, dy, dz] = [target[0] - tip[0], target[1] - tip[1], target[2] - tip[2]];
                let dist = (dx * dx + dy * dy + dz * dz).sqrt();
                tolerance(
                    dist,
                    (0.0, self.ids.target_radius),
                    1.0,
                    Sigmoid::Gaussian,
                    v,
                )?
            }
            Domain::Reacher { target_size } => {
                let finger = d.geom_xpos()[self.ids.geom_finger];
                let [dx, dy] = [self.target[0] - finger[0], self.target[1] - finger[1]];
                let dist = (dx * dx + dy * dy).sqrt();
                let radii = target_size + self.ids.finger_radius;
                tolerance(dist, (0.0, radii), 0.0, Sigmoid::Gaussian, v)?
            }
            Domain::Pendulum => {
                let cos = d.xmat()[self.ids.body_a][8];
                let bound = PENDULUM_ANGLE_BOUND_DEG.to_radians().cos();
                tolerance(cos, (bound, 1.0), 0.0, Sigmoid::Gaussian, v)?
            }
        })
    }

    /// One control step with `self.ctrl`: `n_sub_steps` physics steps, then `mj_step1`;
    /// returns the reward.
    fn control_step(&mut self, step: usize) -> Result<f64, LearnError> {
        self.data.ctrl_mut().copy_from_slice(&self.ctrl);
        let before = warnings(&self.data);
        for _ in 0..self.n_sub_steps {
            self.data.step();
        }
        self.data.step1();
        let state_ok = self
            .data
            .qpos()
            .iter()
            .chain(self.data.qvel())
            .all(|v| v.is_finite());
        if warnings(&self.data) != before || !state_ok {
            return Err(self.unstable(step));
        }
        self.reward()
    }
}

/// `U(lo, hi)` as numpy's `uniform`: `lo + (hi - lo) · U(0, 1)`.
fn uniform(rng: &mut mppi::rng::SampleRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.uniform()
}

/// How many warnings MuJoCo has issued on `data` (bad qpos/qvel/qacc among them).
fn warnings(data: &Data) -> i64 {
    data.warning().iter().map(|w| i64::from(w.number)).sum()
}

impl Env for DmcEnv {
    fn name(&self) -> &str {
        self.name
    }

    fn obs_dim(&self) -> usize {
        match self.domain {
            Domain::Cartpole => 5,
            Domain::Acrobot | Domain::Reacher { .. } => 6,
            Domain::Pendulum => 3,
        }
    }

    fn action_dim(&self) -> usize {
        self.lower.len()
    }

    fn episode_length(&self) -> usize {
        self.control_steps.div_ceil(ACTION_REPEAT)
    }

    fn action_repeat(&self) -> usize {
        ACTION_REPEAT
    }

    fn reset(&mut self, seed: u64, obs: &mut [f64]) -> Result<(), LearnError> {
        use std::f64::consts::PI;
        check_obs(obs, self.obs_dim())?;
        let mut rng = mppi::rng::sample_rng(seed, 0, 0, 0);
        let (nq, nv, _, _) = self.model.sizes();
        let (mut qpos, mut qvel) = (vec![0.0; nq], vec![0.0; nv]);
        let mut target = [0.0; 2];
        match self.domain {
            Domain::Cartpole => {
                qpos[0] = 0.01 * rng.normal();
                qpos[1] = PI + 0.01 * rng.normal();
                for v in &mut qvel {
                    *v = 0.01 * rng.normal();
                }
            }
            Domain::Acrobot | Domain::Pendulum => {
                for q in &mut qpos {
                    *q = uniform(&mut rng, -PI, PI);
                }
            }
            Domain::Reacher { .. } => {
                // `randomize_limited_and_rotational_joints`: limited joints uniform in their
                // range, unlimited hinges uniform in [-pi, pi]
                let mj = self.model.mj_model();
                for (j, q) in qpos.iter_mut().enumerate() {
                    *q = if mj.jnt_limited()[j] {
                        let [lo, hi] = mj.jnt_range()[j];
                        uniform(&mut rng, lo, hi)
                    } else {
                        uniform(&mut rng, -PI, PI)
                    };
                }
                let angle = uniform(&mut rng, 0.0, 2.0 * PI);
                let radius = uniform(&mut rng, 0.05, 0.20);
                target = [radius * angle.sin(), radius * angle.cos()];
            }
        }
        self.start(&qpos, &qvel, target, obs)
    }

    fn step(&mut self, action: &[f64], obs: &mut [f64]) -> Result<f64, LearnError> {
        check_action(action, self.action_dim())?;
        check_obs(obs, self.obs_dim())?;
        let done = match self.steps_done {
            Some(done) if done < self.control_steps => done,
            _ => {
                return Err(not_in_episode(
                    self.name,
                    self.episode_length(),
                    self.started,
                ));
            }
        };
        for (i, &a) in action.iter().enumerate() {
            let (lo, hi) = (self.lower[i], self.upper[i]);
            let a = a.clamp(-1.0, 1.0);
            // dm_control's action_scale: lo + (hi - lo) / 2 * (a + 1), the identity on [-1, 1]
            self.ctrl[i] = if lo == -1.0 && hi == 1.0 {
                a
            } else {
                (lo + (hi - lo) / 2.0 * (a + 1.0)).clamp(lo, hi)
            };
        }
        self.steps_done = None; // until the decision succeeds
        let repeat = ACTION_REPEAT.min(self.control_steps - done);
        let mut reward = 0.0;
        for k in 0..repeat {
            reward += self.control_step(done + k)?;
        }
        self.observe(obs);
        if let Some(index) = obs.iter().position(|v| !v.is_finite()) {
            return Err(mppi::MppiError::NonFinite {
                what: "the observation",
                index,
            }
            .into());
        }
        self.steps_done = Some(done + repeat);
        Ok(reward)
    }
}
