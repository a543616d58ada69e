//! # mppi-learn — the learning parts of mppi
//!
//! Guided diffusion planning with a trained denoiser (docs/theory.md §F.3), kept out of the
//! core so that `mppi` has no neural-network dependency:
//!
//! - [`dataset`]: state-control windows from the library's own MPPI expert, from random initial
//!   states, plus noisy-expert windows, with their normalization and provenance;
//! - [`model`]: an MLP ε-prediction denoiser trained with burn 0.22 on its `flex` CPU backend,
//!   deterministic given its seed, saved and loaded as a checkpoint;
//! - [`plan`]: the trained denoiser as the planner's proposal
//!   ([`mppi::guided::DenoiserProposal`]) around a task's model, guided by the cost's gradient
//!   and/or by MPPI on the real rollouts.
//!
//! The CLI exposes it as `mppi diffusion collect|train <task>` and
//! `mppi run <task> --denoiser FILE`.

use std::path::Path;

pub mod agent;
pub mod dataset;
pub mod env;
pub mod model;
pub mod plan;

pub use dataset::{CollectSettings, Dataset};
pub use env::{Env, make_env};
pub use model::{TrainReport, TrainSettings, TrainedDenoiser};
pub use plan::{Energy, Guidance, PlanSettings, denoising_snapshots, guided_controller};

/// Errors of collecting, training and loading.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// A setting out of range (the message names it).
    #[error("invalid setting: {0}")]
    Settings(String),
    /// The planner or the task refused something.
    #[error(transparent)]
    Mppi(#[from] mppi::MppiError),
    /// Training produced a non-finite loss.
    #[error("training diverged at step {step} (loss {loss}); lower the learning rate")]
    Diverged {
        /// The step.
        step: usize,
        /// The loss.
        loss: f64,
    },
    /// A dataset or checkpoint file could not be read or written.
    #[error("{0}")]
    Checkpoint(String),
}

/// A `[d_in, d_out]` linear layer with weights and bias `U(−k, k)`, `k = 1/√d_in` (burn's
/// default), drawn from `rng` (zero if `zero`): burn's own generator is global and shared by
/// threads, so its initialization would not be a function of the seed.
pub(crate) fn seeded_linear(
    d_in: usize,
    d_out: usize,
    mut rng: mppi::rng::SampleRng,
    zero: bool,
    device: &burn::tensor::Device,
) -> burn::nn::Linear {
    use burn::module::Param;
    use burn::tensor::{Tensor, TensorData};
    let k = 1.0 / (d_in as f64).sqrt();
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                if zero {
                    0.0
                } else {
                    (k * (2.0 * rng.uniform() - 1.0)) as f32
                }
            })
            .collect()
    };
    let mut layer = burn::nn::LinearConfig::new(d_in, d_out).init(device);
    layer.weight = Param::from_tensor(Tensor::<2>::from_data(
        TensorData::new(draw(d_in * d_out), [d_in, d_out]),
        device,
    ));
    layer.bias = Some(Param::from_tensor(Tensor::<1>::from_data(
        TensorData::new(draw(d_out), [d_out]),
        device,
    )));
    layer
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), LearnError> {
    let text = serde_json::to_string(value)
        .map_err(|e| LearnError::Checkpoint(format!("{}: {e}", path.display())))?;
    std::fs::write(path, text)
        .map_err(|e| LearnError::Checkpoint(format!("cannot write `{}`: {e}", path.display())))
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LearnError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LearnError::Checkpoint(format!("cannot read `{}`: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        LearnError::Checkpoint(format!("`{}` is not a valid file: {e}", path.display()))
    })
}

/// CPU seconds (user + system, all threads) this process has used, from `/proc/self/stat`
/// in clock ticks of 1/100 s (Linux's `USER_HZ`); 0 where that file does not exist (the
/// rates computed from it are then NaN, not an error). On a shared machine CPU time is the
/// fair measure of speed: wall-clock time depends on the other load.
///
/// ```
/// let t = mppi_learn::process_cpu_seconds();
/// assert!(t >= 0.0);
/// ```
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // after the command name in parentheses: field 14 (utime) and 15 (stime) of the line
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
