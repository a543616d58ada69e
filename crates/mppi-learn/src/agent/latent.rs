//! The planner in latent space (docs/theory.md §G.2): this library's EM loop with
//!
//! - a whole-batch [`Objective`]: from the encoded state `z₀`, each sampled action sequence
//!   is rolled through the learned dynamics, scored by the learned reward, and closed with
//!   the value of the policy's action at the end,
//!   `V(U) = Σ_{t<H} γ^t R̂(z_t, u_t) + γ^H Q̄(z_H, tanh μ_π(z_H))`, cost `−V`;
//! - a proposal ([`PolicyMixture`]) whose first `P` samples are rollouts of the policy prior
//!   from `z₀`, drawn once per decision, and whose other samples come from the diagonal
//!   Gaussian that the M-step refits to all of them (TD-MPC2's mixture);
//! - TD-MPC2's weighting (top-`k` elites, `w ∝ exp(temperature (V − V_max))`, i.e. a fixed
//!   temperature `λ = 1/temperature` on costs), std clamps, and the warm start that shifts the
//!   mean and restarts the spread.

use std::sync::{Arc, Mutex, PoisonError};

use burn::tensor::{Device, Tensor, TensorData};
use mppi::config::ShiftFill;
use mppi::proposal::{Context, GaussianDiag, Proposal, downcast};
use mppi::rng::{SampleRng, sample_rng};
use mppi::{
    MppiConfig, MppiError, Objective, Planner, ProposalConfig, ProposalKind, WeightingConfig,
};

use super::nets::{PolicyNet, WorldModel, two_hot_decode};
use super::settings::AgentSettings;
use crate::LearnError;

/// The networks the planner and the diagnostics evaluate, on the inference device (no
/// gradient tape): a snapshot of the trained ones, refreshed after updates.
#[derive(Debug)]
pub struct Inference {
    /// World model.
    pub model: WorldModel,
    /// Sampling policy.
    pub policy: PolicyNet,
    /// Two-hot bin centres as a `[bins, 1]` column.
    pub centres: Tensor<2>,
    /// Sizes.
    pub settings: AgentSettings,
    /// Action dimension.
    pub act_dim: usize,
    /// Discount.
    pub discount: f64,
    /// The device.
    pub device: Device,
}

/// `f32` rows as a tensor.
pub(crate) fn tensor(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(values, [rows, cols]), device)
}

/// A tensor's entries as `f32`s.
pub(crate) fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

impl Inference {
    /// Latents of a batch of observations (`rows × obs_dim`).
    pub fn encode(&self, obs: &[f32], rows: usize) -> Tensor<2> {
        let o = obs.len() / rows.max(1);
        self.model.encode(
            tensor(obs.to_vec(), rows, o, &self.device),
            self.settings.simnorm,
        )
    }

    /// The policy's pre-squash mean and log-std at latents `z`.
    pub fn policy_dist(&self, z: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.policy
            .mean_log_std(z, self.settings.log_std_min, self.settings.log_std_max)
    }

    /// Mean over the first two Q members, decoded: `[rows, 1]`.
    pub fn q_mean(&self, z: Tensor<2>, a: Tensor<2>) -> Tensor<2> {
        let qs = self.model.q_logits(z, a);
        let q0 = two_hot_decode(qs[0].clone(), &self.centres);
        let q1 = two_hot_decode(qs[1].clone(), &self.centres);
        (q0 + q1) * 0.5
    }

    /// Values `V(U)` of `n` action sequences (`n × H × m` row-major) from latent `z0`
    /// (`[1, latent]`).
    pub fn sequence_values(&self, z0: &Tensor<2>, plans: &[f64], n: usize) -> Vec<f64> {
        let (h, m) = (self.settings.horizon, self.act_dim);
        let mut z = z0.clone().repeat_dim(0, n);
        let mut total = Tensor::<2>::zeros([n, 1], &self.device);
        let mut discount = 1.0;
        for t in 0..h {
            let a: Vec<f32> = (0..n)
                .flat_map(|i| {
                    plans[i * h * m + t * m..i * h * m + (t + 1) * m]
                        .iter()
                        .map(|v| *v as f32)
                })
                .collect();
            let a = tensor(a, n, m, &self.device);
            let r = two_hot_decode(
                self.model.reward_logits(z.clone(), a.clone()),
                &self.centres,
            );
            total = total + r * discount;
            z = self.model.next(z, a, self.settings.simnorm);
            discount *= self.discount;
        }
        let (mean, _) = self.policy_dist(z.clone());
        let q = self.q_mean(z, mean.tanh());
        total = total + q * discount;
        values(total).into_iter().map(f64::from).collect()
    }

    /// `count` rollouts of the policy prior from `z0` (`count × H × m` row-major): actions
    /// `tanh(μ + σ ε)` with normals from `rng`, latents through the learned dynamics.
    pub fn policy_rollouts(&self, z0: &Tensor<2>, count: usize, rng: &mut SampleRng) -> Vec<f64> {
        let (h, m) = (self.settings.horizon, self.act_dim);
        let mut out = vec![0.0; count * h * m];
        if count == 0 {
            return out;
        }
        let mut z = z0.clone().repeat_dim(0, count);
        for t in 0..h {
            let (mean, log_std) = self.policy_dist(z.clone());
            let eps: Vec<f32> = (0..count * m).map(|_| rng.normal() as f32).collect();
            let eps = tensor(eps, count, m, &self.device);
            let a = (mean + log_std.exp() * eps).tanh();
            let av = values(a.clone());
            for i in 0..count {
                for j in 0..m {
                    out[i * h * m + t * m + j] = f64::from(av[i * m + j]);
                }
            }
            if t + 1 < h {
                z = self.model.next(z, a, self.settings.simnorm);
            }
        }
        out
    }
}

/// The planner's objective at one decision: minus the learned value of each sequence.
struct LatentObjective<'a> {
    inference: &'a Inference,
    z0: Tensor<2>,
    dim: usize,
}

impl Objective for LatentObjective<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn evaluate(&self, decisions: &[f64], costs: &mut [f64], _scratch: &mut [f64]) {
        let v = self
            .inference
            .sequence_values(&self.z0, decisions, costs.len());
        for (c, v) in costs.iter_mut().zip(v) {
            *c = -v;
        }
    }
    fn evaluates_batch(&self) -> bool {
        true
    }
    fn evaluate_batch(&self, decisions: &[f64], costs: &mut [f64]) -> Result<(), MppiError> {
        self.evaluate(decisions, costs, &mut []);
        Ok(())
    }
}

/// TD-MPC2's proposal: samples `0..P` are fixed policy-prior rollouts (set once per decision
/// through a shared slot), the others are drawn from a diagonal Gaussian; the M-step refits
/// the Gaussian to all samples (policy rollouts among the elites pull it toward the policy).
///
/// It reads which sample it draws from [`SampleRng::sample_index`], so the lane-by-lane and
/// block samplers agree.
#[derive(Debug, Clone)]
pub struct PolicyMixture {
    gaussian: GaussianDiag,
    rollouts: Vec<f64>,
    count: usize,
    slot: Arc<Mutex<Vec<f64>>>,
}

impl PolicyMixture {
    /// Around `gaussian`, with `count` rollouts of `gaussian.dim()` entries each that the
    /// owner writes into `slot` before every decision.
    #[must_use]
    pub fn new(gaussian: GaussianDiag, count: usize, slot: Arc<Mutex<Vec<f64>>>) -> Self {
        let d = gaussian.dim();
        PolicyMixture {
            gaussian,
            rollouts: vec![0.0; count * d],
            count,
            slot,
        }
    }

    /// The Gaussian part.
    #[must_use]
    pub fn gaussian(&self) -> &GaussianDiag {
        &self.gaussian
    }
}

impl Proposal for PolicyMixture {
    fn name(&self) -> &'static str {
        "policy_mixture"
    }
    fn dim(&self) -> usize {
        self.gaussian.dim()
    }
    fn control_dim(&self) -> usize {
        self.gaussian.control_dim()
    }
    fn params(&self) -> &[f64] {
        self.gaussian.params()
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        self.gaussian.set_params(theta)
    }
    fn reset(&mut self) {
        self.gaussian.reset();
    }
    fn shift(&mut self, fill: ShiftFill) {
        self.gaussian.shift(fill);
    }
    fn plan(&self, out: &mut [f64]) {
        self.gaussian.plan(out);
    }
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        self.gaussian.set_plan(plan)
    }
    fn prepare(&mut self, ctx: &Context<'_>) -> Result<(), MppiError> {
        if ctx.iteration == 0 {
            let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.len() != self.rollouts.len() {
                return Err(MppiError::DimensionMismatch {
                    what: "policy rollouts",
                    expected: self.rollouts.len(),
                    got: slot.len(),
                });
            }
            self.rollouts.copy_from_slice(&slot);
        }
        self.gaussian.prepare(ctx)
    }
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
        let i = rng.sample_index() as usize;
        if i < self.count {
            let d = u.len();
            u.copy_from_slice(&self.rollouts[i * d..(i + 1) * d]);
        } else {
            self.gaussian.sample(rng, u);
        }
    }
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
        self.gaussian.fit(samples, weights, out);
    }
    fn clone_box(&self) -> Box<dyn Proposal> {
        Box::new(self.clone())
    }
}

/// What one decision of the planner produced.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// The action to apply (`m`, in `[−1, 1]`).
    pub action: Vec<f64>,
    /// The planner's mean for the first action.
    pub plan_mean: Vec<f64>,
    /// The planner's std for the first action.
    pub plan_std: Vec<f64>,
    /// The value `V` of the chosen sample.
    pub value: f64,
}

/// The EM planner over `H × m` action sequences in latent space.
pub struct LatentPlanner {
    planner: Planner,
    slot: Arc<Mutex<Vec<f64>>>,
    settings: AgentSettings,
    act_dim: usize,
    seed: u64,
    sample: Vec<f64>,
}

impl std::fmt::Debug for LatentPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatentPlanner")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl LatentPlanner {
    /// The planner for `act_dim` actions in `[−1, 1]`.
    pub fn new(settings: &AgentSettings, act_dim: usize, seed: u64) -> Result<Self, LearnError> {
        let (h, m) = (settings.horizon, act_dim);
        let mut proposal = ProposalConfig::new(ProposalKind::GaussianDiag)
            .with_noise_sigma(&vec![settings.std_max; m]);
        proposal.std_min = Some(settings.std_min);
        proposal.std_max = Some(settings.std_max);
        proposal.std_reset = Some(true);
        proposal.prior_weight = Some(0.0);
        let config = MppiConfig {
            samples: settings.samples,
            horizon: h,
            iterations: settings.iterations,
            u_min: Some(vec![-1.0; m]),
            u_max: Some(vec![1.0; m]),
            shift_fill: ShiftFill::Zero,
            seed,
            threads: 1,
            proposal,
            weighting: WeightingConfig {
                elites: Some(settings.elites),
                ..WeightingConfig::fixed(1.0 / settings.temperature)
            },
            ..MppiConfig::default()
        };
        let cov: Vec<f64> = (0..m * m)
            .map(|k| {
                if k % (m + 1) == 0 {
                    settings.std_max.powi(2)
                } else {
                    0.0
                }
            })
            .collect();
        let gaussian = GaussianDiag::new(
            h,
            m,
            &cov,
            &vec![-1.0; m],
            &vec![1.0; m],
            settings.std_min,
            settings.std_max,
            0.0,
        )?;
        let slot = Arc::new(Mutex::new(vec![0.0; settings.policy_samples * h * m]));
        let mixture = PolicyMixture::new(gaussian, settings.policy_samples, slot.clone());
        let planner = Planner::with_proposal(&config, Box::new(mixture))?;
        Ok(LatentPlanner {
            planner,
            slot,
            settings: settings.clone(),
            act_dim,
            seed,
            sample: vec![0.0; h * m],
        })
    }

    /// Start of an episode: forget the warm start.
    pub fn reset(&mut self) {
        self.planner.reset();
    }

    /// Plan from observation `obs` at global decision `step`; `explore` adds the planner's
    /// std times a standard normal to the chosen action (training), as TD-MPC2 does.
    pub fn decide(
        &mut self,
        inference: &Inference,
        obs: &[f32],
        step: u64,
        explore: bool,
    ) -> Result<Decision, LearnError> {
        let (h, m) = (self.settings.horizon, self.act_dim);
        let z0 = inference.encode(obs, 1);
        let mut rng = sample_rng(self.seed, step, u64::MAX - 3, 0);
        let rollouts = inference.policy_rollouts(&z0, self.settings.policy_samples, &mut rng);
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = rollouts;
        let objective = LatentObjective {
            inference,
            z0,
            dim: h * m,
        };
        self.planner.optimize(&objective, step, &mut ())?;
        let mixture = downcast::<PolicyMixture>(self.planner.proposal())
            .ok_or_else(|| LearnError::Settings("latent planner lost its proposal".into()))?;
        let plan_mean = mixture.gaussian().mean()[..m].to_vec();
        let plan_std = mixture.gaussian().std()[..m].to_vec();
        // TD-MPC2 applies one sample drawn by weight, not the mean
        let weights = self.planner.weights();
        let mut u = rng.uniform();
        let mut chosen = weights.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                chosen = i;
                break;
            }
            u -= w;
        }
        self.planner.sample(chosen, &mut self.sample)?;
        let value = -self.planner.costs()[chosen];
        let mut action = self.sample[..m].to_vec();
        if explore {
            for (a, s) in action.iter_mut().zip(&plan_std) {
                *a += s * rng.normal();
            }
        }
        for a in &mut action {
            *a = a.clamp(-1.0, 1.0);
        }
        self.planner.shift(ShiftFill::Zero);
        Ok(Decision {
            action,
            plan_mean,
            plan_std,
            value,
        })
    }
}
