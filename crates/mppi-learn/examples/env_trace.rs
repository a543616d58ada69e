//! Drive an environment of `mppi_learn::env` with given actions and write what it observes,
//! so that a trace can be compared with dm_control's
//! (`crates/mppi-mujoco/tests/python/test_envs_match_dm_control.py` does):
//!
//! ```sh
//! cargo run --release --locked -p mppi-learn --example env_trace -- IN.json OUT.json
//! ```
//!
//! `IN.json`:
//!
//! ```json
//! {"env": "reacher-easy",
//!  "qpos": [0.1, -0.2], "qvel": [0.0, 0.0], "target": [0.05, 0.12],
//!  "actions": [[0.3, -1.0], ["0.9000000000000001", 0.2]]}
//! ```
//!
//! Every number may also be a string holding a decimal (`"0.9000000000000001"`): serde_json
//! (without its `float_roundtrip` feature) may read a JSON number 1 ulp off, while a string
//! is read with Rust's correctly rounded `str::parse`, so a trace meant to be compared to the
//! bit should give its inputs as strings (Python's `repr` of each float).
//!
//! `qpos`/`qvel` (and the reacher's `target`) start a dm_control port from that physics state
//! ([`mppi_learn::env::DmcEnv::reset_to`]); without them, `"seed": 3` draws the initial state
//! as `Env::reset` does (the only way for the `task:` environments). `actions` are the agent's
//! decisions, each applied for the environment's action repeat.
//!
//! `OUT.json`: `obs` (the first observation, then the one after each decision), `rewards`
//! (one per decision, summed over the repeat), the environment's `obs_dim`, `action_dim`,
//! `action_repeat`, `episode_length`, `control_timestep` (dm_control ports only) and
//! `us_per_decision` (wall-clock microseconds per decision, over the whole trace). Numbers are
//! written with the shortest decimal that reads back to the same `f64`, so nothing is lost.

use std::error::Error;
use std::time::Instant;

use mppi_learn::env::{DmcEnv, DmcState, Env, make_env};
use serde::{Deserialize, Serialize};

/// A JSON number, or a string with a decimal number read exactly.
#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    Number(f64),
    Text(String),
}

impl Num {
    fn value(&self) -> Result<f64, String> {
        match self {
            Num::Number(v) => Ok(*v),
            Num::Text(s) => s
                .trim()
                .parse()
                .map_err(|e| format!("`{s}` is not a number: {e}")),
        }
    }
}

fn values(nums: &[Num]) -> Result<Vec<f64>, String> {
    nums.iter().map(Num::value).collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    env: String,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    qpos: Option<Vec<Num>>,
    #[serde(default)]
    qvel: Option<Vec<Num>>,
    #[serde(default)]
    target: Option<[Num; 2]>,
    actions: Vec<Vec<Num>>,
}

#[derive(Serialize)]
struct Output {
    env: String,
    obs_dim: usize,
    action_dim: usize,
    action_repeat: usize,
    episode_length: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_timestep: Option<f64>,
    obs: Vec<Vec<f64>>,
    rewards: Vec<f64>,
    us_per_decision: f64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        return Err("usage: env_trace IN.json OUT.json".into());
    };
    let text = std::fs::read_to_string(input).map_err(|e| format!("cannot read {input}: {e}"))?;
    let spec: Input = serde_json::from_str(&text).map_err(|e| format!("{input}: {e}"))?;

    let mut control_timestep = None;
    let mut obs;
    let mut env: Box<dyn Env> = match (spec.qpos, spec.qvel) {
        (Some(qpos), Some(qvel)) => {
            let mut env = DmcEnv::new(&spec.env)?;
            control_timestep = Some(env.control_timestep());
            obs = vec![0.0; env.obs_dim()];
            let target = match &spec.target {
                Some([x, y]) => Some([x.value()?, y.value()?]),
                None => None,
            };
            let state = DmcState {
                qpos: values(&qpos)?,
                qvel: values(&qvel)?,
                target,
            };
            env.reset_to(&state, &mut obs)?;
            Box::new(env)
        }
        (None, None) => {
            let seed = spec.seed.ok_or("give either qpos and qvel, or a seed")?;
            let mut env = make_env(&spec.env)?;
            if let Ok(dmc) = DmcEnv::new(&spec.env) {
                control_timestep = Some(dmc.control_timestep());
            }
            obs = vec![0.0; env.obs_dim()];
            env.reset(seed, &mut obs)?;
            env
        }
        _ => return Err("give both qpos and qvel, or neither".into()),
    };

    let actions = spec
        .actions
        .iter()
        .map(|a| values(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut observations = vec![obs.clone()];
    let mut rewards = Vec::with_capacity(actions.len());
    let start = Instant::now();
    for (i, action) in actions.iter().enumerate() {
        let reward = env
            .step(action, &mut obs)
            .map_err(|e| format!("decision {i}: {e}"))?;
        rewards.push(reward);
        observations.push(obs.clone());
    }
    let us_per_decision = start.elapsed().as_secs_f64() * 1e6 / actions.len().max(1) as f64;

    let out = Output {
        env: spec.env,
        obs_dim: env.obs_dim(),
        action_dim: env.action_dim(),
        action_repeat: env.action_repeat(),
        episode_length: env.episode_length(),
        control_timestep,
        obs: observations,
        rewards,
        us_per_decision,
    };
    std::fs::write(output, serde_json::to_string(&out)?)
        .map_err(|e| format!("cannot write {output}: {e}"))?;
    Ok(())
}
