//! The training loop (docs/theory.md §G.4): act with the latent planner (random actions for
//! the seed steps), store whole episodes with the planner's distribution, update at the
//! update-to-data ratio, evaluate without exploration noise, and measure the two mechanism
//! metrics of the PO-MPC claim:
//!
//! - `KL(π ‖ planner)` on fresh states: at every planned training decision, the Monte-Carlo
//!   estimate of `E_{a∼π(·|z)}[log π(a|z) − log N(a; μ_plan, σ_plan)]` (64 draws);
//! - the value-overestimation gap `Q̂(s_t, a_t) − G_t` on evaluation episodes, with the
//!   discounted Monte-Carlo return `G_t = Σ_k γ^k r_{t+k}` over the first half of each episode
//!   (the return is cut at the episode end: its bias, at most `γ^{T/2}` times the largest
//!   value, is the same for every variant).
//!
//! Runs are deterministic for a seed: every random draw comes from a counter-based stream,
//! and a run resumed from a checkpoint (written at episode ends) continues exactly as the
//! uninterrupted run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use mppi::rng::{sample_rng, stream_seed};
use serde::{Deserialize, Serialize};

use super::latent::{Inference, LatentPlanner, tensor, values};
use super::learner::{Learner, UpdateStats};
use super::math::{TanhGaussian, discount_for, normal_log_density};
use super::replay::{Batch, Episode, Replay};
use super::settings::{AgentSettings, PolicySettings};
use crate::LearnError;
use crate::env::Env;

/// How long to train and what to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// Agent decisions (environment steps after the action repeat).
    pub steps: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// Evaluate every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Episodes per evaluation.
    pub eval_episodes: usize,
    /// Write a checkpoint at the first episode end after every this many steps, and at the
    /// end of the run (0: never).
    pub checkpoint_every: usize,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            steps: 50_000,
            seed: 0,
            eval_every: 5000,
            eval_episodes: 3,
            checkpoint_every: 10_000,
        }
    }
}

impl RunSettings {
    /// Check the keys.
    pub fn validate(&self) -> Result<(), LearnError> {
        if self.steps == 0 || self.steps > 100_000_000 {
            return Err(LearnError::Settings(format!(
                "steps must be in 1..=100000000, got {}",
                self.steps
            )));
        }
        if self.eval_episodes == 0 || self.eval_episodes > 1000 {
            return Err(LearnError::Settings(
                "eval_episodes must be in 1..=1000".into(),
            ));
        }
        Ok(())
    }
}

/// One training episode's record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    /// Agent steps at its end.
    pub step: usize,
    /// Its return.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub ret: f64,
    /// Mean `KL(π ‖ planner)` over its planned decisions (NaN during the seed steps).
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub kl_planner: f64,
    /// Mean losses of the updates during it.
    pub losses: UpdateStats,
    /// Updates during it.
    pub updates: usize,
}

/// One evaluation's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Agent steps when it ran.
    pub step: usize,
    /// Returns of its episodes.
    pub returns: Vec<f64>,
    /// Their mean.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub mean: f64,
    /// Mean `Q̂ − G` over the first half of its episodes.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub q_gap: f64,
    /// Mean `Q̂` there (to read the gap against).
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub q_mean: f64,
    /// Mean `KL(π ‖ planner)` over its decisions.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub kl_planner: f64,
}

/// What a run reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// An agent step finished (`step` decisions done).
    Step(usize),
    /// A training episode ended.
    Episode(&'a EpisodeRecord),
    /// An evaluation ended.
    Eval(&'a EvalRecord),
    /// A checkpoint was written.
    Checkpoint(usize),
}

/// The whole state of a run that a checkpoint stores, besides networks and replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    step: usize,
    episode: u64,
    debt: f64,
    updates: u64,
    scale: super::math::RunningScale,
    episodes: Vec<EpisodeRecord>,
    evals: Vec<EvalRecord>,
    train_seconds: f64,
    /// Process CPU seconds of training (absent in checkpoints written before it existed).
    #[serde(default)]
    train_cpu_seconds: f64,
    next_checkpoint: usize,
    next_eval: usize,
}

/// A training run of the agent on one environment.
pub struct Trainer {
    env: Box<dyn Env>,
    eval_env: Box<dyn Env>,
    agent: AgentSettings,
    policy: PolicySettings,
    run: RunSettings,
    learner: Learner,
    planner: LatentPlanner,
    eval_planner: LatentPlanner,
    replay: Replay,
    state: RunState,
    discount: f64,
    batch: Batch,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("env", &self.env.name())
            .field("step", &self.state.step)
            .finish_non_exhaustive()
    }
}

/// What a finished run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Environment.
    pub env: String,
    /// Variant name (as given).
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Agent steps.
    pub steps: usize,
    /// Updates.
    pub updates: u64,
    /// Mean return of the last evaluation.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub final_return: f64,
    /// Every evaluation.
    pub evals: Vec<EvalRecord>,
    /// `KL(π ‖ planner)` averaged over the training decisions of the last 20% of steps.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub kl_planner: f64,
    /// The last evaluation's `Q̂ − G`.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub q_gap: f64,
    /// Agent steps per second including updates, excluding evaluations.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub steps_per_second: f64,
    /// Seconds of training (without evaluations).
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub train_seconds: f64,
    /// Process CPU seconds (user + system, all threads) of training without evaluations: the
    /// rate to compare on a shared machine, where wall-clock time depends on the load.
    #[serde(default, deserialize_with = "super::math::f64_or_nan")]
    pub train_cpu_seconds: f64,
    /// Agent steps per process CPU second, with updates, without evaluations.
    #[serde(default, deserialize_with = "super::math::f64_or_nan")]
    pub steps_per_cpu_second: f64,
}

impl Trainer {
    /// A fresh run. `env` and `eval_env` must be two instances of the same environment.
    pub fn new(
        env: Box<dyn Env>,
        eval_env: Box<dyn Env>,
        agent: AgentSettings,
        policy: PolicySettings,
        run: RunSettings,
    ) -> Result<Self, LearnError> {
        agent.validate()?;
        policy.validate()?;
        run.validate()?;
        let (o, m) = (env.obs_dim(), env.action_dim());
        if eval_env.obs_dim() != o || eval_env.action_dim() != m {
            return Err(LearnError::Settings(
                "the evaluation environment differs from the training one".into(),
            ));
        }
        let discount = agent
            .discount
            .unwrap_or_else(|| discount_for(env.episode_length()));
        let learner = Learner::new(&agent, &policy, o, m, discount, run.seed);
        let planner = LatentPlanner::new(&agent, m, run.seed)?;
        let eval_planner = LatentPlanner::new(&agent, m, run.seed ^ 0x5eed)?;
        Ok(Trainer {
            replay: Replay::new(o, m, agent.horizon),
            state: RunState {
                step: 0,
                episode: 0,
                debt: 0.0,
                updates: 0,
                scale: learner.scale,
                episodes: Vec::new(),
                evals: Vec::new(),
                train_seconds: 0.0,
                train_cpu_seconds: 0.0,
                next_checkpoint: run.checkpoint_every,
                next_eval: if run.eval_every > 0 {
                    run.eval_every
                } else {
                    run.steps
                },
            },
            env,
            eval_env,
            agent,
            policy,
            run,
            learner,
            planner,
            eval_planner,
            discount,
            batch: Batch::default(),
        })
    }

    /// Agent steps done.
    #[must_use]
    pub fn step(&self) -> usize {
        self.state.step
    }

    /// Training episodes so far.
    #[must_use]
    pub fn episodes(&self) -> &[EpisodeRecord] {
        &self.state.episodes
    }

    /// Evaluations so far.
    #[must_use]
    pub fn evals(&self) -> &[EvalRecord] {
        &self.state.evals
    }

    /// The discount in use.
    #[must_use]
    pub fn discount(&self) -> f64 {
        self.discount
    }

    /// Train until `run.steps` (episodes end at the environment's length; the last one may be
    /// cut), writing checkpoints into `checkpoint_dir` if given. Reports to `progress`.
    pub fn train(
        &mut self,
        checkpoint_dir: Option<&Path>,
        mut progress: impl FnMut(Progress<'_>),
    ) -> Result<(), LearnError> {
        let (o, m) = (self.env.obs_dim(), self.env.action_dim());
        let length = self.env.episode_length();
        let seed = self.run.seed;
        while self.state.step < self.run.steps {
            let (started, started_cpu) = (Instant::now(), crate::process_cpu_seconds());
            let mut obs = vec![0.0; o];
            self.env
                .reset(stream_seed(seed, self.state.episode, 1, 0), &mut obs)?;
            self.planner.reset();
            let mut ep = Episode::default();
            push_f32(&mut ep.obs, &obs);
            let (mut ret, mut kl_sum, mut kl_n) = (0.0, 0.0, 0usize);
            let mut loss_sum = UpdateStats::default();
            let mut updates = 0usize;
            let mut inference = self.learner.inference();
            let (mut eval_seconds, mut eval_cpu) = (0.0, 0.0);
            for _ in 0..length {
                if self.state.step >= self.run.steps {
                    break;
                }
                let step = self.state.step;
                let obs32: Vec<f32> = obs.iter().map(|v| *v as f32).collect();
                let (action, plan_mean, plan_std) = if step < self.agent.seed_steps {
                    let mut rng = sample_rng(seed, step as u64, u64::MAX - 5, 0);
                    let a: Vec<f64> = (0..m).map(|_| 2.0 * rng.uniform() - 1.0).collect();
                    // the behaviour distribution: uniform on [−1, 1], std 1/√3
                    (a, vec![0.0; m], vec![1.0 / 3f64.sqrt(); m])
                } else {
                    let d = self.planner.decide(&inference, &obs32, step as u64, true)?;
                    kl_sum +=
                        kl_to_planner(&inference, &obs32, &d.plan_mean, &d.plan_std, seed, step);
                    kl_n += 1;
                    (d.action, d.plan_mean, d.plan_std)
                };
                let r = self.env.step(&action, &mut obs)?;
                ret += r;
                push_f32(&mut ep.actions, &action);
                push_f32(&mut ep.plan_mean, &plan_mean);
                push_f32(&mut ep.plan_std, &plan_std);
                ep.rewards.push(r as f32);
                push_f32(&mut ep.obs, &obs);
                self.state.step += 1;

                // updates: all the seed steps' share at once, then `utd` per step
                let due = if self.state.step == self.agent.seed_steps {
                    self.agent.seed_steps as f64 * self.agent.utd
                } else if self.state.step > self.agent.seed_steps {
                    self.agent.utd
                } else {
                    0.0
                };
                self.state.debt += due;
                if self.replay.windows() > 0 {
                    let mut did = false;
                    while self.state.debt >= 1.0 {
                        self.state.debt -= 1.0;
                        let stats = self.update_once()?;
                        add_stats(&mut loss_sum, &stats);
                        updates += 1;
                        did = true;
                    }
                    if did {
                        inference = self.learner.inference();
                    }
                }
                progress(Progress::Step(self.state.step));
                if self.state.step >= self.state.next_eval {
                    let (t, cpu) = (Instant::now(), crate::process_cpu_seconds());
                    let record = self.evaluate()?;
                    eval_seconds += t.elapsed().as_secs_f64();
                    eval_cpu += crate::process_cpu_seconds() - cpu;
                    progress(Progress::Eval(&record));
                    self.state.evals.push(record);
                    self.state.next_eval = if self.run.eval_every > 0 {
                        self.state.step + self.run.eval_every
                    } else {
                        usize::MAX
                    };
                }
            }
            let record = EpisodeRecord {
                step: self.state.step,
                ret,
                kl_planner: if kl_n > 0 {
                    kl_sum / kl_n as f64
                } else {
                    f64::NAN
                },
                losses: scale_stats(&loss_sum, updates),
                updates,
            };
            self.state.episodes.push(record);
            progress(Progress::Episode(&record));
            self.state.episode += 1;
            if ep.len() == length {
                self.replay.push(ep)?;
            }
            self.state.train_seconds += started.elapsed().as_secs_f64() - eval_seconds;
            self.state.train_cpu_seconds += crate::process_cpu_seconds() - started_cpu - eval_cpu;
            if let Some(dir) = checkpoint_dir
                && self.run.checkpoint_every > 0
                && self.state.step >= self.state.next_checkpoint
                && self.state.step < self.run.steps
            {
                self.save(dir)?;
                self.state.next_checkpoint = self.state.step + self.run.checkpoint_every;
                progress(Progress::Checkpoint(self.state.step));
            }
        }
        if self
            .state
            .evals
            .last()
            .is_none_or(|e| e.step != self.state.step)
        {
            let record = self.evaluate()?;
            progress(Progress::Eval(&record));
            self.state.evals.push(record);
        }
        // a finished run leaves a checkpoint too, so `resume` with more steps extends it
        if let Some(dir) = checkpoint_dir
            && self.run.checkpoint_every > 0
        {
            self.save(dir)?;
            progress(Progress::Checkpoint(self.state.step));
        }
        Ok(())
    }

    fn update_once(&mut self) -> Result<UpdateStats, LearnError> {
        let n = self.learner.updates;
        let mut rng = sample_rng(self.run.seed, n, u64::MAX - 4, 0);
        self.replay
            .sample(self.agent.batch, &mut rng, &mut self.batch)?;
        let stats = self.learner.update(&self.batch, &mut rng)?;
        if self.policy.reanalyze_every > 0
            && self
                .learner
                .updates
                .is_multiple_of(self.policy.reanalyze_every as u64)
        {
            self.reanalyze()?;
        }
        Ok(stats)
    }

    /// BMPC's lazy reanalysis: re-plan the first states of the last batch with the current
    /// model and store the new planner distributions.
    fn reanalyze(&mut self) -> Result<(), LearnError> {
        let inference = self.learner.inference();
        let o = self.env.obs_dim();
        let count = self.policy.reanalyze_states.min(self.batch.size);
        let mut planner =
            LatentPlanner::new(&self.agent, self.env.action_dim(), self.run.seed ^ 0xa11)?;
        for b in 0..count {
            let obs = self.batch.obs[b * o..(b + 1) * o].to_vec();
            let (e, s) = self.batch.index[b];
            planner.reset();
            let d = planner.decide(
                &inference,
                &obs,
                self.learner.updates * 64 + b as u64,
                false,
            )?;
            let mean: Vec<f32> = d.plan_mean.iter().map(|v| *v as f32).collect();
            let std: Vec<f32> = d.plan_std.iter().map(|v| *v as f32).collect();
            self.replay.set_plan(e, s, &mean, &std);
        }
        Ok(())
    }

    /// Run the evaluation episodes (no exploration noise).
    pub fn evaluate(&mut self) -> Result<EvalRecord, LearnError> {
        let inference = self.learner.inference();
        let (o, length) = (self.eval_env.obs_dim(), self.eval_env.episode_length());
        let round = self.state.evals.len() as u64;
        let mut returns = Vec::new();
        let (mut gap_sum, mut q_sum, mut gap_n) = (0.0, 0.0, 0usize);
        let (mut kl_sum, mut kl_n) = (0.0, 0usize);
        for e in 0..self.run.eval_episodes {
            let mut obs = vec![0.0; o];
            self.eval_env.reset(
                stream_seed(self.run.seed, round * 1000 + e as u64, 2, 0),
                &mut obs,
            )?;
            self.eval_planner.reset();
            let (mut rewards, mut qs) = (Vec::with_capacity(length), Vec::with_capacity(length));
            for t in 0..length {
                let obs32: Vec<f32> = obs.iter().map(|v| *v as f32).collect();
                let step = (1u64 << 40) + round * 1_000_000 + (e * length + t) as u64;
                let d = self.eval_planner.decide(&inference, &obs32, step, false)?;
                kl_sum += kl_to_planner(
                    &inference,
                    &obs32,
                    &d.plan_mean,
                    &d.plan_std,
                    self.run.seed,
                    step as usize,
                );
                kl_n += 1;
                qs.push(q_hat(&inference, &obs32, &d.action));
                rewards.push(self.eval_env.step(&d.action, &mut obs)?);
            }
            returns.push(rewards.iter().sum());
            // discounted returns-to-go, cut at the episode end
            let mut g = vec![0.0; length + 1];
            for t in (0..length).rev() {
                g[t] = rewards[t] + self.discount * g[t + 1];
            }
            for t in 0..length / 2 {
                gap_sum += qs[t] - g[t];
                q_sum += qs[t];
                gap_n += 1;
            }
        }
        let mean = returns.iter().sum::<f64>() / returns.len() as f64;
        Ok(EvalRecord {
            step: self.state.step,
            returns,
            mean,
            q_gap: gap_sum / gap_n.max(1) as f64,
            q_mean: q_sum / gap_n.max(1) as f64,
            kl_planner: kl_sum / kl_n.max(1) as f64,
        })
    }

    /// The run's summary.
    #[must_use]
    pub fn summary(&self, variant: &str) -> Summary {
        let last = self.state.evals.last();
        let from = self.run.steps - self.run.steps / 5;
        let kls: Vec<f64> = self
            .state
            .episodes
            .iter()
            .filter(|e| e.step > from && e.kl_planner.is_finite())
            .map(|e| e.kl_planner)
            .collect();
        Summary {
            env: self.env.name().to_string(),
            variant: variant.to_string(),
            seed: self.run.seed,
            steps: self.state.step,
            updates: self.learner.updates,
            final_return: last.map_or(f64::NAN, |e| e.mean),
            evals: self.state.evals.clone(),
            kl_planner: if kls.is_empty() {
                f64::NAN
            } else {
                kls.iter().sum::<f64>() / kls.len() as f64
            },
            q_gap: last.map_or(f64::NAN, |e| e.q_gap),
            steps_per_second: self.state.step as f64 / self.state.train_seconds.max(1e-9),
            train_seconds: self.state.train_seconds,
            train_cpu_seconds: self.state.train_cpu_seconds,
            steps_per_cpu_second: if self.state.train_cpu_seconds > 0.0 {
                self.state.step as f64 / self.state.train_cpu_seconds
            } else {
                f64::NAN
            },
        }
    }

    /// Write a checkpoint into `dir` (networks, optimizers, targets, replay, counters).
    pub fn save(&mut self, dir: &Path) -> Result<(), LearnError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            LearnError::Checkpoint(format!("cannot create `{}`: {e}", dir.display()))
        })?;
        let err = |what: &str, e: &dyn std::fmt::Debug| {
            LearnError::Checkpoint(format!("{what} in `{}`: {e:?}", dir.display()))
        };
        let l = &self.learner;
        l.model
            .clone()
            .save_file(dir.join("model.bpk"))
            .map_err(|e| err("model", &e))?;
        l.policy
            .clone()
            .save_file(dir.join("policy.bpk"))
            .map_err(|e| err("policy", &e))?;
        if let Some(p) = &l.prior {
            p.clone()
                .save_file(dir.join("prior.bpk"))
                .map_err(|e| err("prior", &e))?;
        }
        for (k, q) in l.target_qs.iter().enumerate() {
            q.clone()
                .save_file(dir.join(format!("target_q{k}.bpk")))
                .map_err(|e| err("target", &e))?;
        }
        for (name, opt) in l.optimizers() {
            opt.save(dir.join(format!("adam_{name}.bpk")))
                .map_err(|e| err("optimizer", &e))?;
        }
        self.replay.save(&dir.join("replay.bin"))?;
        self.state.updates = l.updates;
        self.state.scale = l.scale;
        let meta = CheckpointMeta {
            env: self.env.name().to_string(),
            agent: self.agent.clone(),
            policy: self.policy.clone(),
            run: self.run.clone(),
            state: self.state.clone(),
        };
        crate::write_json(&dir.join("state.json"), &meta)
    }

    /// Continue the run saved in `dir` with the environments `env`/`eval_env` (the same
    /// environment), possibly with a larger `steps`.
    pub fn resume(
        dir: &Path,
        env: Box<dyn Env>,
        eval_env: Box<dyn Env>,
        steps: Option<usize>,
    ) -> Result<Self, LearnError> {
        let meta: CheckpointMeta = crate::read_json(&dir.join("state.json"))?;
        if meta.env != env.name() {
            return Err(LearnError::Checkpoint(format!(
                "the checkpoint in `{}` trained on `{}`, not `{}`",
                dir.display(),
                meta.env,
                env.name()
            )));
        }
        let mut run = meta.run.clone();
        if let Some(s) = steps {
            run.steps = s;
        }
        let mut t = Trainer::new(env, eval_env, meta.agent, meta.policy, run)?;
        let err = |what: &str, e: &dyn std::fmt::Debug| {
            LearnError::Checkpoint(format!("{what} in `{}`: {e:?}", dir.display()))
        };
        let l = &mut t.learner;
        l.model = l
            .model
            .clone()
            .try_load_file(dir.join("model.bpk"))
            .map_err(|e| err("model", &e))?;
        l.policy = l
            .policy
            .clone()
            .try_load_file(dir.join("policy.bpk"))
            .map_err(|e| err("policy", &e))?;
        if let Some(p) = l.prior.take() {
            l.prior = Some(
                p.try_load_file(dir.join("prior.bpk"))
                    .map_err(|e| err("prior", &e))?,
            );
        }
        let targets = std::mem::take(&mut l.target_qs);
        for (k, q) in targets.into_iter().enumerate() {
            l.target_qs.push(
                q.try_load_file(dir.join(format!("target_q{k}.bpk")))
                    .map_err(|e| err("target", &e))?,
            );
        }
        l.load_optimizers(|name, opt| {
            opt.load(dir.join(format!("adam_{name}.bpk")))
                .map_err(|e| err("optimizer", &e))
        })?;
        l.updates = meta.state.updates;
        l.scale = meta.state.scale;
        t.replay = Replay::load(&dir.join("replay.bin"))?;
        t.state = meta.state;
        if t.state.next_eval > t.run.steps {
            t.state.next_eval = t.run.steps;
        }
        Ok(t)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointMeta {
    env: String,
    agent: AgentSettings,
    policy: PolicySettings,
    run: RunSettings,
    state: RunState,
}

impl Learner {
    /// The optimizers by name, for checkpoints.
    fn optimizers(&self) -> [(&'static str, &ModuleOptimizer); 4] {
        let (a, b, c, d) = self.optimizer_refs();
        [("encoder", a), ("model", b), ("policy", c), ("prior", d)]
    }

    fn load_optimizers(
        &mut self,
        mut load: impl FnMut(&str, ModuleOptimizer) -> Result<ModuleOptimizer, LearnError>,
    ) -> Result<(), LearnError> {
        for name in ["encoder", "model", "policy", "prior"] {
            let slot = self.optimizer_mut(name);
            let fresh = slot.clone();
            *self.optimizer_mut(name) = load(name, fresh)?;
        }
        Ok(())
    }
}

fn push_f32(out: &mut Vec<f32>, values: &[f64]) {
    out.extend(values.iter().map(|v| *v as f32));
}

fn add_stats(sum: &mut UpdateStats, s: &UpdateStats) {
    sum.consistency += s.consistency;
    sum.reward += s.reward;
    sum.value += s.value;
    sum.policy += s.policy;
    sum.kl_prior += s.kl_prior;
    sum.entropy += s.entropy;
    sum.scale = s.scale;
    sum.prior_fit += s.prior_fit;
}

fn scale_stats(sum: &UpdateStats, n: usize) -> UpdateStats {
    if n == 0 {
        return UpdateStats {
            consistency: f64::NAN,
            reward: f64::NAN,
            value: f64::NAN,
            policy: f64::NAN,
            kl_prior: f64::NAN,
            entropy: f64::NAN,
            scale: f64::NAN,
            prior_fit: f64::NAN,
        };
    }
    let k = 1.0 / n as f64;
    UpdateStats {
        consistency: sum.consistency * k,
        reward: sum.reward * k,
        value: sum.value * k,
        policy: sum.policy * k,
        kl_prior: sum.kl_prior * k,
        entropy: sum.entropy * k,
        scale: sum.scale,
        prior_fit: sum.prior_fit * k,
    }
}

/// Monte-Carlo `KL(π(·|z) ‖ N(μ_plan, max(σ_plan, 0.05)))` over 64 draws, dimensions summed.
fn kl_to_planner(
    inference: &Inference,
    obs: &[f32],
    plan_mean: &[f64],
    plan_std: &[f64],
    seed: u64,
    step: usize,
) -> f64 {
    let z = inference.encode(obs, 1);
    let (mean, log_std) = inference.policy_dist(z);
    let (mean, log_std) = (values(mean), values(log_std));
    let mut rng = sample_rng(seed, step as u64, u64::MAX - 6, 0);
    let draws = 64;
    let mut total = 0.0;
    for _ in 0..draws {
        for j in 0..plan_mean.len() {
            let d = TanhGaussian {
                mean: f64::from(mean[j]),
                std: f64::from(log_std[j]).exp(),
            };
            let eps = rng.normal();
            let a = d.sample(eps);
            total += d.log_density_of_draw(eps)
                - normal_log_density(a, plan_mean[j], plan_std[j].max(0.05));
        }
    }
    total / f64::from(draws)
}

/// `Q̄(h(s), a)`.
fn q_hat(inference: &Inference, obs: &[f32], action: &[f64]) -> f64 {
    let z = inference.encode(obs, 1);
    let a: Vec<f32> = action.iter().map(|v| *v as f32).collect();
    let a = tensor(a, 1, action.len(), &inference.device);
    f64::from(values(inference.q_mean(z, a))[0])
}

/// The default output directory of a run.
#[must_use]
pub fn default_out_dir(env: &str, variant: &str, seed: u64) -> PathBuf {
    PathBuf::from("out/learn").join(format!("{env}_{variant}_seed{seed}"))
}
