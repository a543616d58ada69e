//! The networks of the TD-MPC2-style agent (docs/theory.md §G.2) on burn: every hidden layer
//! is `Linear → LayerNorm → Mish`; the encoder and the latent dynamics end in
//! `Linear → LayerNorm → SimNorm` (TD-MPC2's normalized output layer); weights start as
//! `N(0, 0.02²)` and biases at zero, as in TD-MPC2; reward
//! and Q heads output logits over the two-hot bins (their last layers start at zero, so they
//! first predict 0); the policy outputs the mean and log-std of a tanh-squashed Gaussian, and
//! the intermediate prior `π̃` those of a plain Gaussian in action space.
//!
//! Every tensor is `[rows, features]`: time and batch are flattened into rows.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use mppi::rng::sample_rng;

use super::settings::AgentSettings;

/// Mish, `x · tanh(softplus(x))`, from one exponential: with `n = eˣ (eˣ + 2)`,
/// `tanh(ln(1 + eˣ)) = n / (n + 2)`. burn's own Mish calls three scalar transcendental
/// functions per element, which made it the bottleneck of the whole update (docs in
/// `rust-ecosystem.md` part C); this form is one `exp` and a division. `x` is capped at 20
/// inside the exponential, where `n/(n+2)` is 1 to `f32` precision.
pub fn mish(x: Tensor<2>) -> Tensor<2> {
    let e = x.clone().clamp_max(20.0).exp();
    let n = e.clone() * (e + 2.0);
    x * n.clone() / (n + 2.0)
}

/// SimNorm over groups of `group` features: a softmax within each group.
pub fn simnorm(x: Tensor<2>, group: usize) -> Tensor<2> {
    let [rows, width] = x.dims();
    let grouped: Tensor<3> = x.reshape([rows, width / group, group]);
    softmax(grouped, 2).reshape([rows, width])
}

/// `Linear → LayerNorm → Mish`.
#[derive(Module, Debug)]
pub struct NormedLinear {
    linear: Linear,
    norm: LayerNorm,
}

impl NormedLinear {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        mish(self.norm.forward(self.linear.forward(x)))
    }
}

/// A multilayer perceptron: hidden [`NormedLinear`] layers and a linear output, optionally
/// layer-normalized (the encoder's and the dynamics' outputs, before SimNorm).
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<NormedLinear>,
    output: Linear,
    output_norm: Option<LayerNorm>,
}

/// How an [`Mlp`]'s output layer starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// A plain linear layer.
    Linear,
    /// A linear layer whose weights start at zero (the reward and Q heads first predict 0).
    Zero,
    /// A linear layer followed by LayerNorm (what SimNorm is applied to).
    Normed,
}

impl Mlp {
    /// `sizes = [in, hidden..., out]`; weights `N(0, 0.02²)` drawn from the stream
    /// `(seed, tag)`, biases zero.
    fn new(sizes: &[usize], seed: u64, tag: u64, output: Output, device: &Device) -> Self {
        let n = sizes.len() - 1;
        let hidden = (0..n - 1)
            .map(|i| NormedLinear {
                linear: linear(
                    sizes[i],
                    sizes[i + 1],
                    seed,
                    tag * 16 + i as u64,
                    false,
                    device,
                ),
                norm: LayerNormConfig::new(sizes[i + 1]).init(device),
            })
            .collect();
        let output_layer = linear(
            sizes[n - 1],
            sizes[n],
            seed,
            tag * 16 + n as u64,
            output == Output::Zero,
            device,
        );
        Mlp {
            hidden,
            output: output_layer,
            output_norm: (output == Output::Normed)
                .then(|| LayerNormConfig::new(sizes[n]).init(device)),
        }
    }

    /// The network on rows `x`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut h = x;
        for layer in &self.hidden {
            h = layer.forward(h);
        }
        let out = self.output.forward(h);
        match &self.output_norm {
            Some(norm) => norm.forward(out),
            None => out,
        }
    }
}

/// TD-MPC2's initial weight scale: `N(0, 0.02²)` (its truncation at ±2 never binds).
const INIT_STD: f64 = 0.02;

/// A seeded linear layer (stream `(seed, −2, stream)`): weights `N(0, 0.02²)`, or zero if
/// `zero`; biases zero.
fn linear(
    d_in: usize,
    d_out: usize,
    seed: u64,
    stream: u64,
    zero: bool,
    device: &Device,
) -> Linear {
    let mut rng = sample_rng(seed, u64::MAX - 1, stream, 0);
    let weights: Vec<f32> = (0..d_in * d_out)
        .map(|_| {
            if zero {
                0.0
            } else {
                (INIT_STD * rng.normal()) as f32
            }
        })
        .collect();
    let mut layer = LinearConfig::new(d_in, d_out).init(device);
    layer.weight = Param::from_tensor(Tensor::<2>::from_data(
        TensorData::new(weights, [d_in, d_out]),
        device,
    ));
    layer.bias = Some(Param::from_tensor(Tensor::<1>::zeros([d_out], device)));
    layer
}

/// Encoder, latent dynamics, reward and the Q ensemble: what the world-model loss trains.
#[derive(Module, Debug)]
pub struct WorldModel {
    /// `h(s)`: observation to latent (SimNorm).
    pub encoder: Mlp,
    /// `d(z, a)`: next latent (SimNorm).
    pub dynamics: Mlp,
    /// `R(z, a)`: reward logits.
    pub reward: Mlp,
    /// `Q_k(z, a)`: value logits, one network per member.
    pub qs: Vec<Mlp>,
}

/// The sampling policy `π(a | z)` (tanh-squashed Gaussian), or the intermediate prior
/// `π̃(a | z)` (Gaussian): both output `[mean, raw log-std]` per action dimension.
#[derive(Module, Debug)]
pub struct PolicyNet {
    /// The network `z → [μ, raw log σ]`.
    pub net: Mlp,
}

impl WorldModel {
    /// A freshly initialized model for observations of `obs_dim` and actions of `act_dim`.
    pub fn new(
        s: &AgentSettings,
        obs_dim: usize,
        act_dim: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        let (l, h) = (s.latent, s.mlp);
        let za = l + act_dim;
        WorldModel {
            encoder: Mlp::new(
                &[obs_dim, s.encoder_hidden, l],
                seed,
                1,
                Output::Normed,
                device,
            ),
            dynamics: Mlp::new(&[za, h, h, l], seed, 2, Output::Normed, device),
            reward: Mlp::new(&[za, h, h, s.bins], seed, 3, Output::Zero, device),
            qs: (0..s.num_q)
                .map(|k| {
                    Mlp::new(
                        &[za, h, h, s.bins],
                        seed,
                        4 + k as u64,
                        Output::Zero,
                        device,
                    )
                })
                .collect(),
        }
    }

    /// `h(s)` with SimNorm.
    pub fn encode(&self, obs: Tensor<2>, group: usize) -> Tensor<2> {
        simnorm(self.encoder.forward(obs), group)
    }

    /// `d(z, a)` with SimNorm.
    pub fn next(&self, z: Tensor<2>, a: Tensor<2>, group: usize) -> Tensor<2> {
        simnorm(self.dynamics.forward(Tensor::cat(vec![z, a], 1)), group)
    }

    /// Reward logits `R(z, a)`.
    pub fn reward_logits(&self, z: Tensor<2>, a: Tensor<2>) -> Tensor<2> {
        self.reward.forward(Tensor::cat(vec![z, a], 1))
    }

    /// Value logits of every member.
    pub fn q_logits(&self, z: Tensor<2>, a: Tensor<2>) -> Vec<Tensor<2>> {
        let za = Tensor::cat(vec![z, a], 1);
        self.qs.iter().map(|q| q.forward(za.clone())).collect()
    }
}

impl PolicyNet {
    /// A freshly initialized policy (`tag` separates the policy's and the prior's streams).
    pub fn new(s: &AgentSettings, act_dim: usize, seed: u64, tag: u64, device: &Device) -> Self {
        PolicyNet {
            net: Mlp::new(
                &[s.latent, s.mlp, s.mlp, 2 * act_dim],
                seed,
                tag,
                Output::Linear,
                device,
            ),
        }
    }

    /// `(μ, log σ)` with `log σ = lo + ½ (hi − lo)(tanh(raw) + 1)`, each `[rows, m]`.
    pub fn mean_log_std(&self, z: Tensor<2>, lo: f64, hi: f64) -> (Tensor<2>, Tensor<2>) {
        let out = self.net.forward(z);
        let m = out.dims()[1] / 2;
        let mean = out.clone().narrow(1, 0, m);
        let raw = out.narrow(1, m, m);
        let log_std = (raw.tanh() + 1.0) * (0.5 * (hi - lo)) + lo;
        (mean, log_std)
    }
}

/// The reparameterized draw of the tanh-Gaussian for standard normals `eps`: the action
/// `tanh(μ + σ ε)` and its log-density `Σ_j [log N(ε_j) − log σ_j − ln(1 − a_j²)]` (`[rows, 1]`).
pub fn squashed_sample(
    mean: Tensor<2>,
    log_std: Tensor<2>,
    eps: Tensor<2>,
) -> (Tensor<2>, Tensor<2>) {
    let u = mean + log_std.clone().exp() * eps.clone();
    let gauss = (eps.powi_scalar(2) * -0.5 - log_std) - 0.5 * (2.0 * std::f64::consts::PI).ln();
    // ln(1 − tanh² u) = 2 (ln 2 − |u| − ln(1 + e^{−2|u|})), stable where tanh rounds to ±1
    let abs = u.clone().abs();
    let log_jac =
        (abs.clone() * -2.0).exp().log1p() * -2.0 - abs * 2.0 + 2.0 * std::f64::consts::LN_2;
    let log_prob = (gauss - log_jac).sum_dim(1);
    (u.tanh(), log_prob)
}

/// `Σ_j log N(a_j; μ_j, σ_j²)` per row (`[rows, 1]`).
pub fn gaussian_log_density(a: Tensor<2>, mean: Tensor<2>, log_std: Tensor<2>) -> Tensor<2> {
    let z = (a - mean) / log_std.clone().exp();
    (z.powi_scalar(2) * -0.5 - log_std - 0.5 * (2.0 * std::f64::consts::PI).ln()).sum_dim(1)
}

/// The log-density of the tanh-Gaussian at actions `a ∈ (−1, 1)` (clamped to `±(1 − 1e-6)`),
/// per row.
pub fn squashed_log_density(a: Tensor<2>, mean: Tensor<2>, log_std: Tensor<2>) -> Tensor<2> {
    let a = a.clamp(-1.0 + 1e-6, 1.0 - 1e-6);
    // atanh a = ½ ln((1 + a)/(1 − a))
    let u = ((a.clone() + 1.0) / (a.clone() * -1.0 + 1.0)).log() * 0.5;
    let log_jac = (a.powi_scalar(2) * -1.0 + 1.0).log().sum_dim(1);
    gaussian_log_density(u, mean, log_std) - log_jac
}

/// The expected value of each row of logits under the two-hot bins `centres` (symlog
/// units), mapped back with symexp: `[rows, 1]`.
pub fn two_hot_decode(logits: Tensor<2>, centres: &Tensor<2>) -> Tensor<2> {
    let p = softmax(logits, 1);
    let y = p.matmul(centres.clone());
    // symexp(y) = sign(y)(e^{|y|} − 1)
    y.clone().sign() * (y.abs().exp() - 1.0)
}

/// The soft cross-entropy `−Σ_i t_i log softmax(logits)_i` per row (`[rows, 1]`), with the
/// two-hot `targets`.
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<2> {
    (log_softmax(logits, 1) * targets).sum_dim(1) * -1.0
}

/// Polyak averaging `target ← τ online + (1 − τ) target` parameter by parameter (both
/// modules have the same structure).
pub fn polyak<M: Module>(target: M, online: &M, tau: f64) -> M {
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            let n = t.shape().num_elements();
            self.0.push(t.reshape([n]));
        }
    }
    struct Blend {
        online: std::vec::IntoIter<Tensor<1>>,
        tau: f64,
    }
    impl ModuleMapper for Blend {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let source = self.online.next().expect("modules of the same structure");
            let tau = self.tau;
            param.map(|t| {
                let shape = t.shape();
                t * (1.0 - tau) + source.reshape(shape) * tau
            })
        }
    }
    let mut collect = Collect(Vec::new());
    online.visit(&mut collect);
    target.map(&mut Blend {
        online: collect.0.into_iter(),
        tau,
    })
}
