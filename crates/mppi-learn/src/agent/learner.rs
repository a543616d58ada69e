//! One update of the agent (docs/theory.md §G.2–G.4): the world model and Q ensemble with
//! TD-MPC2's losses, then the policy with the PO-MPC family's objective, then (for Vλ̃) the
//! intermediate prior, then the Polyak step of the target Q networks.
//!
//! World-model loss on a batch of sub-trajectories `(s_0, a_0, r_0, …, s_H)`:
//!
//! `20 · Σ_t ρ^t ‖d(z_t, a_t) − sg h(s_{t+1})‖²/H + 0.1 · Σ_t ρ^t CE(R(z_t, a_t), r_t)/H
//!  + 0.1 · Σ_{t,k} ρ^t CE(Q_k(z_t, a_t), r_t + γ min_{k'} Q⁻_{k'}(z'_{t+1}, π(z'_{t+1})))/(H K)`
//!
//! with `z_0 = h(s_0)`, `z_{t+1} = d(z_t, a_t)` and two-hot cross-entropies. Policy loss,
//! per latent `z` (all `H + 1` of each window, detached), `a = tanh(μ + σ ε)`:
//!
//! | objective | loss |
//! |---|---|
//! | value (V0, Vλ, Vλ̃) | `α m log π(a) − Q̄(z, a)/S + λ KL` |
//! | imitate (V∞) | `KL + α m log π(a)` |
//! | residual (VTD) | `α m log π(a) − Q̄(z, a)/S − β log p(a)/S · [S > threshold]` |
//!
//! `KL` is `log π(a) − log p(a)` (reverse, on the reparameterized draw) or `−E_{a'∼p} log π(a')`
//! (forward). The weighted-MLE update instead draws `a_j ∼ p` (or `π` when λ = 0), weights them
//! with the softmax of `Q̄/(λS)` (uniform for imitation) and minimizes
//! `−Σ_j w_j log π(a_j) + α m log π(a)`.

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use mppi::rng::SampleRng;
use serde::{Deserialize, Serialize};

use super::latent::{Inference, tensor, values};
use super::math::{RunningScale, TwoHot};
use super::nets::{
    Mlp, PolicyNet, WorldModel, gaussian_log_density, soft_cross_entropy, squashed_log_density,
    squashed_sample, two_hot_decode,
};
use super::replay::Batch;
use super::settings::{
    AgentSettings, KlDirection, Objective, PolicySettings, PolicyUpdate, PriorSource,
};
use crate::LearnError;

/// Losses and diagnostics of one update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Latent consistency loss.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub consistency: f64,
    /// Reward cross-entropy.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub reward: f64,
    /// Value cross-entropy.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub value: f64,
    /// Policy loss.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub policy: f64,
    /// Mean `log π(a) − log p(a)` on the policy's draws (the reverse-KL estimate to the prior;
    /// NaN without a prior).
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub kl_prior: f64,
    /// Mean `−log π(a)` (entropy estimate).
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub entropy: f64,
    /// The value scale `S`.
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub scale: f64,
    /// Loss of the intermediate prior (NaN without one).
    #[serde(deserialize_with = "super::math::f64_or_nan")]
    pub prior_fit: f64,
}

/// The trainable networks, their optimizers and targets.
pub struct Learner {
    /// World model (autodiff device).
    pub model: WorldModel,
    /// Sampling policy (autodiff device).
    pub policy: PolicyNet,
    /// Intermediate prior `π̃` (Vλ̃ only).
    pub prior: Option<PolicyNet>,
    /// Target Q members (inference device).
    pub target_qs: Vec<Mlp>,
    /// The value scale `S`.
    pub scale: RunningScale,
    /// Updates done.
    pub updates: u64,
    opt_encoder: ModuleOptimizer,
    opt_model: ModuleOptimizer,
    opt_policy: ModuleOptimizer,
    opt_prior: ModuleOptimizer,
    settings: AgentSettings,
    policy_settings: PolicySettings,
    act_dim: usize,
    discount: f64,
    device: Device,
    inference_device: Device,
    centres: Tensor<2>,
    two_hot: TwoHot,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("updates", &self.updates)
            .field("scale", &self.scale)
            .finish_non_exhaustive()
    }
}

fn adam(clip: f64) -> ModuleOptimizer {
    AdamConfig::new()
        .with_grad_clipping(Some(GradientClippingConfig::Norm(clip as f32)))
        .init()
}

impl Learner {
    /// Fresh networks for `obs_dim` observations and `act_dim` actions.
    pub fn new(
        settings: &AgentSettings,
        policy_settings: &PolicySettings,
        obs_dim: usize,
        act_dim: usize,
        discount: f64,
        seed: u64,
    ) -> Self {
        let device = Device::flex().autodiff();
        let inference_device = Device::flex();
        let model = WorldModel::new(settings, obs_dim, act_dim, seed, &device);
        let policy = PolicyNet::new(settings, act_dim, seed, 8, &device);
        let prior = (policy_settings.prior == PriorSource::Intermediate)
            .then(|| PolicyNet::new(settings, act_dim, seed, 9, &device));
        let target_qs = model.valid().qs;
        let two_hot = TwoHot {
            bins: settings.bins,
            vmin: settings.vmin,
            vmax: settings.vmax,
        };
        let centres: Vec<f32> = two_hot.centres().iter().map(|c| *c as f32).collect();
        let clip = settings.grad_clip;
        Learner {
            model,
            policy,
            prior,
            target_qs,
            scale: RunningScale::default(),
            updates: 0,
            opt_encoder: adam(clip),
            opt_model: adam(clip),
            opt_policy: adam(clip),
            opt_prior: adam(clip),
            settings: settings.clone(),
            policy_settings: policy_settings.clone(),
            act_dim,
            discount,
            centres: tensor(centres, settings.bins, 1, &device),
            device,
            inference_device,
            two_hot,
        }
    }

    /// The four optimizers (encoder, rest of the model, policy, prior).
    pub(super) fn optimizer_refs(
        &self,
    ) -> (
        &ModuleOptimizer,
        &ModuleOptimizer,
        &ModuleOptimizer,
        &ModuleOptimizer,
    ) {
        (
            &self.opt_encoder,
            &self.opt_model,
            &self.opt_policy,
            &self.opt_prior,
        )
    }

    /// An optimizer by its checkpoint name.
    pub(super) fn optimizer_mut(&mut self, name: &str) -> &mut ModuleOptimizer {
        match name {
            "encoder" => &mut self.opt_encoder,
            "model" => &mut self.opt_model,
            "policy" => &mut self.opt_policy,
            _ => &mut self.opt_prior,
        }
    }

    /// A snapshot of the current networks for planning and evaluation.
    pub fn inference(&self) -> Inference {
        let centres: Vec<f32> = self.two_hot.centres().iter().map(|c| *c as f32).collect();
        Inference {
            model: self.model.valid(),
            policy: self.policy.valid(),
            centres: tensor(centres, self.settings.bins, 1, &self.inference_device),
            settings: self.settings.clone(),
            act_dim: self.act_dim,
            discount: self.discount,
            device: self.inference_device.clone(),
        }
    }

    /// The intermediate prior's `(μ, log σ)` at latents (inference copy), if there is one.
    fn prior_dist(&self, z: Tensor<2>) -> Option<(Tensor<2>, Tensor<2>)> {
        self.prior.as_ref().map(|p| {
            let (mean, log_std) = p.valid().mean_log_std(
                z,
                self.policy_settings.prior_std_min.ln(),
                self.settings.std_max.ln(),
            );
            (mean.tanh(), log_std)
        })
    }

    /// One update on `batch`, with normals from `rng`.
    pub fn update(
        &mut self,
        batch: &Batch,
        rng: &mut SampleRng,
    ) -> Result<UpdateStats, LearnError> {
        let s = self.settings.clone();
        let (b, h, m) = (batch.size, s.horizon, self.act_dim);
        let o = batch.obs.len() / ((h + 1) * b);
        let dev = self.device.clone();
        let idev = self.inference_device.clone();
        let inference = self.inference();

        // ---- targets, without gradients
        let next_obs = &batch.obs[b * o..];
        let next_z = inference.encode(next_obs, h * b);
        let (mean, log_std) = inference.policy_dist(next_z.clone());
        let eps = tensor(normals(rng, h * b * m), h * b, m, &idev);
        let (next_a, _) = squashed_sample(mean, log_std, eps);
        let za = Tensor::cat(vec![next_z.clone(), next_a], 1);
        let tq0 = two_hot_decode(self.target_qs[0].forward(za.clone()), &inference.centres);
        let tq1 = two_hot_decode(self.target_qs[1].forward(za), &inference.centres);
        let target_q = values(tq0.min_pair(tq1));
        let mut td_hot = vec![0f32; h * b * s.bins];
        let mut r_hot = vec![0f32; h * b * s.bins];
        let mut row = vec![0.0; s.bins];
        for i in 0..h * b {
            let r = f64::from(batch.rewards[i]);
            self.two_hot
                .encode(r + self.discount * f64::from(target_q[i]), &mut row);
            for (d, v) in td_hot[i * s.bins..(i + 1) * s.bins].iter_mut().zip(&row) {
                *d = *v as f32;
            }
            self.two_hot.encode(r, &mut row);
            for (d, v) in r_hot[i * s.bins..(i + 1) * s.bins].iter_mut().zip(&row) {
                *d = *v as f32;
            }
        }
        let next_z = tensor(values(next_z), h * b, s.latent, &dev);
        let td_hot = tensor(td_hot, h * b, s.bins, &dev);
        let r_hot = tensor(r_hot, h * b, s.bins, &dev);

        // ---- world model and Q
        let obs0 = tensor(batch.obs[..b * o].to_vec(), b, o, &dev);
        let actions = tensor(batch.actions.clone(), h * b, m, &dev);
        let mut z = self.model.encode(obs0, s.simnorm);
        let mut zs = vec![z.clone()];
        let mut consistency = Tensor::<2>::zeros([1, 1], &dev);
        for t in 0..h {
            let a = actions.clone().narrow(0, t * b, b);
            z = self.model.next(z, a, s.simnorm);
            let target = next_z.clone().narrow(0, t * b, b);
            let err = (z.clone() - target).powi_scalar(2).mean().reshape([1, 1]);
            consistency = consistency + err * s.rho.powi(t as i32);
            zs.push(z.clone());
        }
        let consistency = consistency / h as f64;
        let zs_h = Tensor::cat(zs[..h].to_vec(), 0);
        let rho_rows = rho_weights(s.rho, h, b, 1.0 / b as f64, &dev);
        let reward_ce = soft_cross_entropy(
            self.model.reward_logits(zs_h.clone(), actions.clone()),
            r_hot,
        );
        let reward_loss = (reward_ce * rho_rows.clone()).sum().reshape([1, 1]) / h as f64;
        let mut value_loss = Tensor::<2>::zeros([1, 1], &dev);
        for logits in self.model.q_logits(zs_h, actions) {
            let ce = soft_cross_entropy(logits, td_hot.clone());
            value_loss = value_loss + (ce * rho_rows.clone()).sum().reshape([1, 1]);
        }
        let value_loss = value_loss / (h * s.num_q) as f64;
        let total = consistency.clone() * s.consistency_coef
            + reward_loss.clone() * s.reward_coef
            + value_loss.clone() * s.value_coef;
        let stats_wm = [
            scalar(&consistency),
            scalar(&reward_loss),
            scalar(&value_loss),
        ];
        if stats_wm.iter().any(|v| !v.is_finite()) {
            return Err(LearnError::Diverged {
                step: self.updates as usize,
                loss: stats_wm.iter().sum(),
            });
        }
        let mut grads = total.backward();
        let g_encoder = GradientsParams::from_module(&mut grads, &self.model.encoder);
        let g_model = GradientsParams::from_module(&mut grads, &self.model);
        let lr = s.learning_rate;
        let encoder = self.model.encoder.clone();
        self.model.encoder = self.opt_encoder.step(
            ModuleLearningRate::from(lr * s.encoder_lr_scale),
            encoder,
            g_encoder,
        );
        let model = self.model.clone();
        self.model = self
            .opt_model
            .step(ModuleLearningRate::from(lr), model, g_model);

        // ---- policy
        let zs_all = Tensor::cat(zs, 0).detach();
        let (policy_loss, kl_prior, entropy) = self.policy_step(zs_all.clone(), batch, rng)?;

        // ---- intermediate prior
        let prior_fit = match self.prior.clone() {
            Some(prior) => self.prior_step(prior, zs_all, batch)?,
            None => f64::NAN,
        };

        // ---- targets
        let online = self.model.valid().qs;
        let targets = std::mem::take(&mut self.target_qs);
        self.target_qs = targets
            .into_iter()
            .zip(&online)
            .map(|(t, q)| super::nets::polyak(t, q, s.tau))
            .collect();
        self.updates += 1;
        Ok(UpdateStats {
            consistency: stats_wm[0],
            reward: stats_wm[1],
            value: stats_wm[2],
            policy: policy_loss,
            kl_prior,
            entropy,
            scale: self.scale.value,
            prior_fit,
        })
    }

    /// The prior `p` at the rows of `zs` as `(mean, log std)` tensors on the training device,
    /// or `None` for [`PriorSource::None`].
    fn prior_at(&self, zs: &Tensor<2>, batch: &Batch) -> Option<(Tensor<2>, Tensor<2>)> {
        let rows = zs.dims()[0];
        let m = self.act_dim;
        match self.policy_settings.prior {
            PriorSource::None => None,
            PriorSource::Planner => {
                let floor = self.policy_settings.prior_std_min as f32;
                let log_std: Vec<f32> = batch.plan_std.iter().map(|s| s.max(floor).ln()).collect();
                Some((
                    tensor(batch.plan_mean.clone(), rows, m, &self.device),
                    tensor(log_std, rows, m, &self.device),
                ))
            }
            PriorSource::Intermediate => {
                let z = tensor(
                    values(zs.clone()),
                    rows,
                    zs.dims()[1],
                    &self.inference_device,
                );
                let (mean, log_std) = self.prior_dist(z)?;
                Some((
                    tensor(values(mean), rows, m, &self.device),
                    tensor(values(log_std), rows, m, &self.device),
                ))
            }
        }
    }

    fn policy_step(
        &mut self,
        zs: Tensor<2>,
        batch: &Batch,
        rng: &mut SampleRng,
    ) -> Result<(f64, f64, f64), LearnError> {
        let s = self.settings.clone();
        let ps = self.policy_settings.clone();
        let (rows, m) = (zs.dims()[0], self.act_dim);
        let b = batch.size;
        let dev = self.device.clone();
        let q_nets: Vec<Mlp> = self.model.qs[..2]
            .iter()
            .map(|q| q.clone().no_grad())
            .collect();
        let q_mean = |z: Tensor<2>, a: Tensor<2>, centres: &Tensor<2>| {
            let za = Tensor::cat(vec![z, a], 1);
            let q0 = two_hot_decode(q_nets[0].forward(za.clone()), centres);
            let q1 = two_hot_decode(q_nets[1].forward(za), centres);
            (q0 + q1) * 0.5
        };
        let (mean, log_std) = self
            .policy
            .mean_log_std(zs.clone(), s.log_std_min, s.log_std_max);
        let eps = tensor(normals(rng, rows * m), rows, m, &dev);
        let (a, log_pi) = squashed_sample(mean.clone(), log_std.clone(), eps);
        let q = q_mean(zs.clone(), a.clone(), &self.centres);
        let q_now = values(q.clone().narrow(0, 0, b));
        self.scale
            .update(&q_now.iter().map(|v| f64::from(*v)).collect::<Vec<_>>());
        let scale = self.scale.value;
        let prior = self.prior_at(&zs, batch);
        let log_p = prior
            .as_ref()
            .map(|(pm, pls)| gaussian_log_density(a.clone(), pm.clone(), pls.clone()));
        let alpha = s.entropy_coef * m as f64;
        let entropy_term = log_pi.clone() * alpha;
        let kl_reverse = log_p.as_ref().map(|lp| log_pi.clone() - lp.clone());
        // −E_{a'∼source} [w(a') log π(a')] on `mle_samples` draws from `source`
        let k = ps.mle_samples;
        let weighted_nll = |source: &(Tensor<2>, Tensor<2>),
                            weights: Option<&dyn Fn(Tensor<2>, Tensor<2>) -> Tensor<2>>,
                            rng: &mut SampleRng| {
            let (sm, sls) = source;
            let sm = sm.clone().detach().repeat_dim(0, k);
            let sls = sls.clone().detach().repeat_dim(0, k);
            let noise = tensor(normals(rng, rows * k * m), rows * k, m, &dev);
            let draws = (sm + sls.exp() * noise)
                .clamp(-1.0 + 1e-4, 1.0 - 1e-4)
                .detach();
            let log_q = squashed_log_density(
                draws.clone(),
                mean.clone().repeat_dim(0, k),
                log_std.clone().repeat_dim(0, k),
            );
            // rows are copy-major: row c·rows + r is draw c of state r
            let w = match weights {
                Some(f) => f(zs.clone().repeat_dim(0, k).detach(), draws),
                None => Tensor::<2>::ones([rows * k, 1], &dev) / k as f64,
            };
            (log_q * w.detach())
                .reshape([k, rows])
                .sum_dim(0)
                .reshape([rows, 1])
                * -1.0
        };
        let loss_rows = match (ps.update, ps.objective) {
            (PolicyUpdate::Reparam, objective) => {
                let kl = |rng: &mut SampleRng| -> Tensor<2> {
                    match (ps.kl, &prior) {
                        (_, None) => Tensor::<2>::zeros([rows, 1], &dev),
                        (KlDirection::Reverse, Some(_)) => {
                            kl_reverse.clone().expect("prior present")
                        }
                        (KlDirection::Forward, Some(p)) => weighted_nll(p, None, rng),
                    }
                };
                match objective {
                    Objective::Value => {
                        let mut l = entropy_term.clone() - q.clone() / scale;
                        if ps.lambda > 0.0 {
                            l = l + kl(rng) * ps.lambda;
                        }
                        l
                    }
                    Objective::Imitate => kl(rng) + entropy_term.clone(),
                    Objective::Residual => {
                        let mut l = entropy_term.clone() - q.clone() / scale;
                        if scale > ps.scale_threshold
                            && let Some(lp) = &log_p
                        {
                            let beta = ps.prior_coef * m as f64 / 61.0;
                            l = l - lp.clone() * (beta / scale);
                        }
                        l
                    }
                }
            }
            (PolicyUpdate::WeightedMle, objective) => {
                // the distribution the E-step draws from: the prior, or the current policy
                let policy_source = (mean.clone().tanh().detach(), log_std.clone().detach());
                let (source, temperature) = match (&prior, objective) {
                    (Some(p), Objective::Imitate) => (p.clone(), None),
                    (Some(p), _) if ps.lambda > 0.0 => (p.clone(), Some(ps.lambda * scale)),
                    _ => (policy_source, Some(ps.mle_temperature * scale)),
                };
                let centres = self.centres.clone();
                let tilt = |z: Tensor<2>, draws: Tensor<2>| -> Tensor<2> {
                    let qd = q_mean(z, draws, &centres).detach();
                    let t = temperature.unwrap_or(1.0);
                    // softmax over the k draws of each state (copy-major rows)
                    let logits = (qd / t).reshape([k, rows]).swap_dims(0, 1);
                    burn::tensor::activation::softmax(logits, 1)
                        .swap_dims(0, 1)
                        .reshape([k * rows, 1])
                };
                let nll = if temperature.is_some() {
                    weighted_nll(&source, Some(&tilt), rng)
                } else {
                    weighted_nll(&source, None, rng)
                };
                nll + entropy_term.clone()
            }
        };
        let weights = rho_weights(
            s.rho,
            h_of(rows, b),
            b,
            1.0 / (b * h_of(rows, b)) as f64,
            &dev,
        );
        let loss = (loss_rows * weights).sum();
        let loss_value = f64::from(loss.clone().into_scalar::<f32>());
        if !loss_value.is_finite() {
            return Err(LearnError::Diverged {
                step: self.updates as usize,
                loss: loss_value,
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.policy);
        let policy = self.policy.clone();
        self.policy =
            self.opt_policy
                .step(ModuleLearningRate::from(s.learning_rate), policy, grads);
        let kl_value = kl_reverse.map_or(f64::NAN, |k| f64::from(k.mean().into_scalar::<f32>()));
        let entropy = -f64::from(log_pi.mean().into_scalar::<f32>());
        Ok((loss_value, kl_value, entropy))
    }

    /// `min_ψ E KL(N(μ_plan, σ_plan) ‖ π̃_ψ)` on the stored planner distributions.
    fn prior_step(
        &mut self,
        prior: PolicyNet,
        zs: Tensor<2>,
        batch: &Batch,
    ) -> Result<f64, LearnError> {
        let (rows, m) = (zs.dims()[0], self.act_dim);
        let dev = self.device.clone();
        let (mean, log_std) = prior.mean_log_std(
            zs,
            self.policy_settings.prior_std_min.ln(),
            self.settings.std_max.ln(),
        );
        let mean = mean.tanh();
        let floor = self.policy_settings.prior_std_min as f32;
        let pm = tensor(batch.plan_mean.clone(), rows, m, &dev);
        let ps: Vec<f32> = batch.plan_std.iter().map(|s| s.max(floor)).collect();
        let ps = tensor(ps, rows, m, &dev);
        // KL(N(μ_b, σ_b²) ‖ N(μ̃, σ̃²)) = log σ̃ − log σ_b + (σ_b² + (μ_b − μ̃)²)/(2σ̃²) − ½
        let var = (log_std.clone() * 2.0).exp();
        let kl = log_std - ps.clone().log()
            + (ps.powi_scalar(2) + (pm - mean).powi_scalar(2)) / (var * 2.0)
            - 0.5;
        let loss = kl.sum_dim(1).mean();
        let value = f64::from(loss.clone().into_scalar::<f32>());
        if !value.is_finite() {
            return Err(LearnError::Diverged {
                step: self.updates as usize,
                loss: value,
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &prior);
        self.prior = Some(self.opt_prior.step(
            ModuleLearningRate::from(self.settings.learning_rate),
            prior,
            grads,
        ));
        Ok(value)
    }
}

/// Time steps of a time-major block of `rows` rows of `b`.
fn h_of(rows: usize, b: usize) -> usize {
    rows / b
}

/// Per-row weights `ρ^t · unit` for `steps` time-major blocks of `b` rows (`[steps·b, 1]`).
fn rho_weights(rho: f64, steps: usize, b: usize, unit: f64, device: &Device) -> Tensor<2> {
    let w: Vec<f32> = (0..steps)
        .flat_map(|t| std::iter::repeat_n((rho.powi(t as i32) * unit) as f32, b))
        .collect();
    tensor(w, steps * b, 1, device)
}

fn normals(rng: &mut SampleRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

fn scalar(t: &Tensor<2>) -> f64 {
    f64::from(t.clone().into_scalar::<f32>())
}
