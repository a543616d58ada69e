//! The denoiser network and its training (docs/theory.md §F.3): an MLP on the flattened
//! normalized window with a sinusoidal embedding of the noise level, trained with the
//! ε-prediction loss `E ‖ε − ε_θ(√ᾱ_i x_0 + √(1−ᾱ_i) ε, i)‖²` on burn's `flex` CPU backend.

use std::path::Path;
use std::sync::Mutex;

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::Module;
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor, TensorData};
use mppi::diffusion::Vp;
use mppi::guided::{Denoiser, WindowSpec};
use mppi::rng::sample_rng;
use serde::{Deserialize, Serialize};

use crate::LearnError;
use crate::dataset::Dataset;

/// Sizes of the network and of its training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// Hidden width of the three hidden layers.
    pub hidden: usize,
    /// Entries of the sinusoidal level embedding (even).
    pub embedding: usize,
    /// Noise levels `N` of the VP schedule.
    pub levels: usize,
    /// The VP `β` schedule (linear from `beta_min` to `beta_max` by default).
    pub schedule: Vp,
    /// Adam steps.
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seed of the initial weights and of the batches.
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            hidden: 256,
            embedding: 32,
            levels: 20,
            schedule: Vp {
                beta_min: 1e-4,
                beta_max: 0.4,
                ..Vp::default()
            },
            steps: 3000,
            batch: 256,
            learning_rate: 1e-3,
            seed: 0,
        }
    }
}

impl TrainSettings {
    /// Check the sizes, naming the key in the error.
    pub fn validate(&self) -> Result<(), LearnError> {
        let positive = [
            ("hidden", self.hidden),
            ("embedding", self.embedding),
            ("levels", self.levels),
            ("steps", self.steps),
            ("batch", self.batch),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(LearnError::Settings(format!("{key} must be >= 1")));
        }
        if !self.embedding.is_multiple_of(2) {
            return Err(LearnError::Settings(format!(
                "embedding must be even, got {}",
                self.embedding
            )));
        }
        if self.hidden > 8192 || self.batch > 1 << 16 || self.levels > 10_000 {
            return Err(LearnError::Settings(
                "hidden <= 8192, batch <= 65536 and levels <= 10000".into(),
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(LearnError::Settings(format!(
                "learning_rate must be a finite number > 0, got {}",
                self.learning_rate
            )));
        }
        self.schedule
            .validate()
            .map_err(|e| LearnError::Settings(e.to_string()))
    }
}

/// The ε-prediction MLP: `[x, emb(i)] → 3 × (Linear, SiLU) → Linear`.
#[derive(Module, Debug)]
pub struct EpsNet {
    input: Linear,
    hidden1: Linear,
    hidden2: Linear,
    output: Linear,
}

/// The denoiser's layer `layer`, seeded.
fn linear(d_in: usize, d_out: usize, seed: u64, layer: u64, device: &Device) -> Linear {
    crate::seeded_linear(
        d_in,
        d_out,
        sample_rng(seed, u64::MAX, layer, 0),
        false,
        device,
    )
}

impl EpsNet {
    fn new(width: usize, settings: &TrainSettings, device: &Device) -> Self {
        let (h, seed) = (settings.hidden, settings.seed);
        EpsNet {
            input: linear(width + settings.embedding, h, seed, 0, device),
            hidden1: linear(h, h, seed, 1, device),
            hidden2: linear(h, h, seed, 2, device),
            output: linear(h, width, seed, 3, device),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = silu(self.input.forward(x));
        let x = silu(self.hidden1.forward(x));
        let x = silu(self.hidden2.forward(x));
        self.output.forward(x)
    }
}

/// `[sin(t ω_k), cos(t ω_k)]`, `t = level/levels`, `ω_k = 1000^{k/(K/2)}` (K = `out.len()`).
fn embed(level: usize, levels: usize, out: &mut [f32]) {
    let half = out.len() / 2;
    let t = level as f64 / levels as f64;
    for k in 0..half {
        let w = 1000f64.powf(k as f64 / half as f64);
        out[k] = (t * w).sin() as f32;
        out[half + k] = (t * w).cos() as f32;
    }
}

/// What training measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// `(step, mean loss over the last reporting interval)`.
    pub loss_curve: Vec<(usize, f64)>,
    /// Wall time in seconds.
    pub wall_s: f64,
}

/// A trained denoiser: the network, its window and schedule.
#[derive(Debug)]
pub struct TrainedDenoiser {
    net: Mutex<EpsNet>,
    spec: WindowSpec,
    settings: TrainSettings,
    device: Device,
}

/// The checkpoint's description next to the weights (`<path>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointMeta {
    spec: WindowSpec,
    settings: TrainSettings,
    /// What it was trained on.
    provenance: String,
}

impl TrainedDenoiser {
    /// Train on the windows of `data` (normalized by its spec), calling `progress(step,
    /// loss)` every `report_every` steps. Deterministic given `settings.seed`.
    pub fn train(
        data: &Dataset,
        settings: &TrainSettings,
        report_every: usize,
        mut progress: impl FnMut(usize, f64),
    ) -> Result<(Self, TrainReport), LearnError> {
        settings.validate()?;
        let start = std::time::Instant::now();
        let spec = data.spec.clone();
        let width = spec.len();
        let windows = data.normalized_windows();
        let count = windows.len() / width;
        if count == 0 {
            return Err(LearnError::Settings("the dataset has no windows".into()));
        }
        let device = Device::flex().autodiff();
        let mut net = EpsNet::new(width, settings, &device);
        let mut optim = AdamConfig::new().init();
        let (b, e) = (settings.batch, settings.embedding);
        let mut alpha_bar = vec![1.0; settings.levels + 1];
        for i in 1..=settings.levels {
            alpha_bar[i] = alpha_bar[i - 1] * (1.0 - settings.schedule.beta_at(i, settings.levels));
        }
        let mut inputs = vec![0f32; b * (width + e)];
        let mut targets = vec![0f32; b * width];
        let mut curve = Vec::new();
        let (mut sum, mut n) = (0.0, 0usize);
        for step in 0..settings.steps {
            let mut rng = sample_rng(settings.seed, step as u64, 0, 0);
            for r in 0..b {
                let w = (rng.next_bits() % count as u64) as usize;
                let level = 1 + (rng.next_bits() % settings.levels as u64) as usize;
                let (sa, sb) = (alpha_bar[level].sqrt(), (1.0 - alpha_bar[level]).sqrt());
                let row = &mut inputs[r * (width + e)..(r + 1) * (width + e)];
                for j in 0..width {
                    let z = rng.normal();
                    row[j] = (sa * windows[w * width + j] + sb * z) as f32;
                    targets[r * width + j] = z as f32;
                }
                embed(level, settings.levels, &mut row[width..]);
            }
            let x =
                Tensor::<2>::from_data(TensorData::new(inputs.clone(), [b, width + e]), &device);
            let y = Tensor::<2>::from_data(TensorData::new(targets.clone(), [b, width]), &device);
            let loss = (net.forward(x) - y).powi_scalar(2).mean();
            let value = f64::from(loss.clone().into_scalar::<f32>());
            if !value.is_finite() {
                return Err(LearnError::Diverged { step, loss: value });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(ModuleLearningRate::from(settings.learning_rate), net, grads);
            sum += value;
            n += 1;
            if (step + 1) % report_every.max(1) == 0 || step + 1 == settings.steps {
                curve.push((step + 1, sum / n as f64));
                progress(step + 1, sum / n as f64);
                sum = 0.0;
                n = 0;
            }
        }
        let inference = Device::flex();
        let net = net.valid().to_device(&inference);
        Ok((
            TrainedDenoiser {
                net: Mutex::new(net),
                spec,
                settings: *settings,
                device: inference,
            },
            TrainReport {
                loss_curve: curve,
                wall_s: start.elapsed().as_secs_f64(),
            },
        ))
    }

    /// The training settings.
    #[must_use]
    pub fn settings(&self) -> &TrainSettings {
        &self.settings
    }

    /// Predict the noise of a batch of normalized windows at one level (row-major, `rows`
    /// windows).
    pub fn predict_batch(&self, x: &[f64], level: usize, out: &mut [f64]) {
        let width = self.spec.len();
        let e = self.settings.embedding;
        let rows = x.len() / width;
        let mut inputs = vec![0f32; rows * (width + e)];
        let mut emb = vec![0f32; e];
        embed(level, self.settings.levels, &mut emb);
        for r in 0..rows {
            let row = &mut inputs[r * (width + e)..(r + 1) * (width + e)];
            for j in 0..width {
                row[j] = x[r * width + j] as f32;
            }
            row[width..].copy_from_slice(&emb);
        }
        let t = Tensor::<2>::from_data(TensorData::new(inputs, [rows, width + e]), &self.device);
        let net = self
            .net
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let y = net.forward(t).into_data();
        let values = y.as_slice::<f32>().expect("f32 output");
        for (o, v) in out.iter_mut().zip(values) {
            *o = f64::from(*v);
        }
    }

    /// Save the weights to `path` (burn's burnpack format) and the description to
    /// `path.json`.
    pub fn save(&self, path: &Path, provenance: &str) -> Result<(), LearnError> {
        let net = self
            .net
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        net.clone()
            .save_file(path)
            .map_err(|e| LearnError::Checkpoint(format!("{}: {e:?}", path.display())))?;
        let meta = CheckpointMeta {
            spec: self.spec.clone(),
            settings: self.settings,
            provenance: provenance.to_string(),
        };
        crate::write_json(&meta_path(path), &meta)
    }

    /// Load what [`TrainedDenoiser::save`] wrote.
    pub fn load(path: &Path) -> Result<Self, LearnError> {
        let meta: CheckpointMeta = crate::read_json(&meta_path(path))?;
        meta.spec
            .validate()
            .map_err(|e| LearnError::Checkpoint(e.to_string()))?;
        meta.settings.validate()?;
        let device = Device::flex();
        let net = EpsNet::new(meta.spec.len(), &meta.settings, &device)
            .try_load_file(path)
            .map_err(|e| LearnError::Checkpoint(format!("{}: {e:?}", path.display())))?;
        Ok(TrainedDenoiser {
            net: Mutex::new(net),
            spec: meta.spec,
            settings: meta.settings,
            device,
        })
    }
}

fn meta_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".json");
    p.into()
}

impl Denoiser for TrainedDenoiser {
    fn window(&self) -> &WindowSpec {
        &self.spec
    }
    fn schedule(&self) -> (Vp, usize) {
        (self.settings.schedule, self.settings.levels)
    }
    fn predict_noise(&self, x: &[f64], level: usize, out: &mut [f64]) {
        self.predict_batch(x, level, out);
    }
}
