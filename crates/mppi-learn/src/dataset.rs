//! Trajectory windows from the library's own MPPI expert (docs/theory.md §F.3, "Data").
//!
//! Episodes start from random initial states; a fraction of them execute the expert's control
//! plus Gaussian noise (noisy-expert windows, for coverage of states the expert never visits).
//! Every `stride` steps a window of `H` rows of `(state, control)` is cut; angle columns are
//! shifted by whole turns so that the first row is in `[−π, π]`. The normalization maps each
//! column's range onto `[−1, 1]`.

use mppi::guided::WindowSpec;
use mppi::rng::{SampleRng, sample_rng};
use mppi_tasks::Task;
use serde::{Deserialize, Serialize};

use crate::LearnError;

/// How a dataset is collected.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectSettings {
    /// Episodes from random initial states.
    pub episodes: usize,
    /// Control steps per episode.
    pub steps: usize,
    /// Rows `H` of a window.
    pub window: usize,
    /// Steps between the starts of two windows.
    pub stride: usize,
    /// Fraction of episodes whose executed controls are noisy.
    pub noisy_fraction: f64,
    /// Standard deviation of that noise, as a fraction of the control range.
    pub noise_std: f64,
    /// Samples of the expert planner per iteration (`None`: the task's).
    pub expert_samples: Option<usize>,
    /// Seed of the initial states, the noise and the expert.
    pub seed: u64,
}

impl Default for CollectSettings {
    fn default() -> Self {
        CollectSettings {
            episodes: 40,
            steps: 150,
            window: 16,
            stride: 2,
            noisy_fraction: 0.2,
            noise_std: 0.1,
            expert_samples: None,
            seed: 0,
        }
    }
}

impl CollectSettings {
    /// Check the values, naming the key.
    pub fn validate(&self) -> Result<(), LearnError> {
        for (key, v) in [
            ("episodes", self.episodes),
            ("steps", self.steps),
            ("window", self.window),
            ("stride", self.stride),
        ] {
            if v == 0 {
                return Err(LearnError::Settings(format!("{key} must be >= 1")));
            }
        }
        if self.window > self.steps {
            return Err(LearnError::Settings(format!(
                "window ({}) must not exceed steps ({})",
                self.window, self.steps
            )));
        }
        if self.episodes.saturating_mul(self.steps) > 10_000_000 {
            return Err(LearnError::Settings(
                "episodes x steps must be at most 10 million".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.noisy_fraction) {
            return Err(LearnError::Settings(format!(
                "noisy_fraction must be in [0, 1], got {}",
                self.noisy_fraction
            )));
        }
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            return Err(LearnError::Settings(format!(
                "noise_std must be a finite number >= 0, got {}",
                self.noise_std
            )));
        }
        Ok(())
    }
}

/// Windows of one task, raw (un-normalized), with their normalization and provenance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    /// The task's name.
    pub task: String,
    /// Layout and normalization.
    pub spec: WindowSpec,
    /// `count × H × (n + m)` raw values.
    pub windows: Vec<f64>,
    /// How it was made.
    pub settings: CollectSettings,
    /// The expert's planner config (TOML of the task's defaults with the overrides).
    pub expert: String,
    /// Mean total cost of the clean expert episodes.
    pub expert_mean_cost: f64,
}

/// A random initial state of `task`: the task's own, perturbed (pendulum: any angle).
fn initial_state(task: &dyn Task, rng: &mut SampleRng) -> Vec<f64> {
    let mut x = task.initial_state();
    match task.name() {
        "pendulum" => {
            x[0] = std::f64::consts::PI * (2.0 * rng.uniform() - 1.0);
            x[1] = 2.0 * rng.uniform() - 1.0;
        }
        _ => x.iter_mut().for_each(|v| *v += 0.3 * rng.normal()),
    }
    x
}

/// The angle columns of a task's state.
fn angle_columns(task: &dyn Task) -> Vec<usize> {
    match task.name() {
        "pendulum" => vec![0],
        "acrobot" => vec![0, 1],
        "cartpole" | "cartpole_discrete" => vec![2],
        _ => Vec::new(),
    }
}

impl Dataset {
    /// Collect a dataset of `task` (see the module docs); `progress(episode)` after each
    /// episode.
    pub fn collect(
        task: &dyn Task,
        settings: &CollectSettings,
        mut progress: impl FnMut(usize),
    ) -> Result<Self, LearnError> {
        settings.validate()?;
        let mut config = task.default_config();
        if let Some(k) = settings.expert_samples {
            config.samples = k;
        }
        let n = task.dynamics().state_dim();
        let m = task.dynamics().control_dim();
        let (lo, hi) = (
            config.u_min.clone().unwrap_or(vec![-1.0; m]),
            config.u_max.clone().unwrap_or(vec![1.0; m]),
        );
        let lo = if lo.len() == 1 { vec![lo[0]; m] } else { lo };
        let hi = if hi.len() == 1 { vec![hi[0]; m] } else { hi };
        let wrap = angle_columns(task);
        let width = n + m;
        let h = settings.window;
        let noisy_episodes = (settings.noisy_fraction * settings.episodes as f64).round() as usize;
        let mut windows = Vec::new();
        let (mut clean_cost, mut clean) = (0.0, 0usize);
        for e in 0..settings.episodes {
            let mut rng = sample_rng(settings.seed, e as u64, 0, u64::MAX);
            let noisy = e >= settings.episodes - noisy_episodes;
            config.seed = settings.seed.wrapping_add(e as u64);
            let mut ctrl = mppi_tasks::controller(task, &config)?;
            let mut x = initial_state(task, &mut rng);
            let mut rows = Vec::with_capacity(settings.steps * width);
            let mut next = vec![0.0; n];
            let mut cost = 0.0;
            for _ in 0..settings.steps {
                let mut u = ctrl.act(&x)?.to_vec();
                if noisy {
                    for j in 0..m {
                        let sd = settings.noise_std * (hi[j] - lo[j]);
                        u[j] = (u[j] + sd * rng.normal()).clamp(lo[j], hi[j]);
                    }
                }
                rows.extend_from_slice(&x);
                rows.extend_from_slice(&u);
                cost += task.stage_cost(&x, &u);
                task.plant_step(&x, &u, &mut next);
                if next.iter().any(|v| !v.is_finite()) {
                    return Err(LearnError::Settings(format!(
                        "the expert's episode {e} reached a non-finite state"
                    )));
                }
                std::mem::swap(&mut x, &mut next);
            }
            if !noisy {
                clean_cost += cost;
                clean += 1;
            }
            let mut start = 0;
            while start + h <= settings.steps {
                let mut w = rows[start * width..(start + h) * width].to_vec();
                for &j in &wrap {
                    // whole turns, so the first row is in [−π, π] and the rest follow it
                    let turns = ((w[j] + std::f64::consts::PI) / std::f64::consts::TAU).floor();
                    for t in 0..h {
                        w[t * width + j] -= turns * std::f64::consts::TAU;
                    }
                }
                windows.extend_from_slice(&w);
                start += settings.stride;
            }
            progress(e + 1);
        }
        let (offset, scale) = normalization(&windows, width);
        let spec = WindowSpec {
            horizon: h,
            state_dim: n,
            control_dim: m,
            offset,
            scale,
            wrap,
        };
        Ok(Dataset {
            task: task.name().to_string(),
            spec,
            windows,
            settings: *settings,
            expert: format!("{config:?}"),
            expert_mean_cost: if clean > 0 {
                clean_cost / clean as f64
            } else {
                f64::NAN
            },
        })
    }

    /// Windows in the dataset.
    #[must_use]
    pub fn len(&self) -> usize {
        self.windows.len() / self.spec.len().max(1)
    }

    /// Whether it has no windows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The windows normalized by the spec (`(x − offset)/scale` per column).
    #[must_use]
    pub fn normalized_windows(&self) -> Vec<f64> {
        let w = self.spec.width();
        self.windows
            .iter()
            .enumerate()
            .map(|(i, v)| (v - self.spec.offset[i % w]) / self.spec.scale[i % w])
            .collect()
    }

    /// Write it as JSON.
    pub fn save(&self, path: &std::path::Path) -> Result<(), LearnError> {
        crate::write_json(path, self)
    }

    /// Read what [`Dataset::save`] wrote, checking its sizes.
    pub fn load(path: &std::path::Path) -> Result<Self, LearnError> {
        let data: Dataset = crate::read_json(path)?;
        data.spec
            .validate()
            .map_err(|e| LearnError::Checkpoint(format!("{}: {e}", path.display())))?;
        if !data.windows.len().is_multiple_of(data.spec.len())
            || data.windows.iter().any(|v| !v.is_finite())
        {
            return Err(LearnError::Checkpoint(format!(
                "{}: the windows are not whole windows of finite values",
                path.display()
            )));
        }
        Ok(data)
    }
}

/// Per-column `(offset, scale)` mapping the column's range onto `[−1, 1]`.
fn normalization(windows: &[f64], width: usize) -> (Vec<f64>, Vec<f64>) {
    let mut lo = vec![f64::INFINITY; width];
    let mut hi = vec![f64::NEG_INFINITY; width];
    for (i, v) in windows.iter().enumerate() {
        lo[i % width] = lo[i % width].min(*v);
        hi[i % width] = hi[i % width].max(*v);
    }
    let offset = lo.iter().zip(&hi).map(|(l, h)| 0.5 * (l + h)).collect();
    let scale = lo
        .iter()
        .zip(&hi)
        .map(|(l, h)| (0.5 * (h - l)).max(1e-6))
        .collect();
    (offset, scale)
}
