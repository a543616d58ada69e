//! Receding-horizon control with a trained denoiser as the planner's proposal: every control
//! step denoises a window from noise over the model's `N` levels (one EM iteration each),
//! inpaints the current state after every level, and guides toward low cost with the
//! gradient of the task's cost (finite differences on the denoised window) and/or MPPI on the
//! real rollouts of the sampled controls (docs/theory.md §F.3).

use std::fmt;
use std::sync::Arc;

use mppi::guided::{Denoiser, DenoiserProposal, GuidanceSettings, WindowEnergy};
use mppi::{Controller, Cost, Dynamics, MppiConfig, RolloutObjective};
use mppi_tasks::{Task, TaskController};
use serde::{Deserialize, Serialize};

use crate::LearnError;

/// What steers the denoised window toward low cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Guidance {
    /// None: imitate the data.
    None,
    /// The gradient of the cost on the denoised window.
    Gradient,
    /// MPPI around the denoised mean, weighted by the real rollouts' costs (gradient-free).
    #[default]
    Mppi,
    /// Both.
    Both,
}

/// What the gradient guidance differentiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Energy {
    /// The cost of the rollout of the window's controls from its first state (through the
    /// task's dynamics): the window's states need not be dynamically consistent.
    #[default]
    Rollout,
    /// The running cost evaluated on the denoised window's own states and controls.
    Window,
}

/// Settings of guided planning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanSettings {
    /// The guidance.
    pub guidance: Guidance,
    /// Samples per level for MPPI guidance (2 without it).
    pub samples: usize,
    /// Gradient guidance scale `α`.
    pub gradient_scale: f64,
    /// What the gradient is of.
    pub energy: Energy,
    /// Spread of the MPPI samples, in units of `√β_i`.
    pub sample_spread: f64,
    /// Level-transition noise `η` (1: DDPM).
    pub noise: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            guidance: Guidance::Mppi,
            samples: 64,
            gradient_scale: 0.1,
            energy: Energy::Rollout,
            sample_spread: 3.0,
            noise: 1.0,
            seed: 0,
        }
    }
}

/// `E = −Σ_t c(s_t, a_t)` of a task's running cost on a window; its gradient by central
/// differences (one row's cost per entry, so `2 (n + m)` cost calls per row).
pub struct CostEnergy {
    cost: Arc<dyn Cost>,
    n: usize,
    m: usize,
}

impl fmt::Debug for CostEnergy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CostEnergy")
            .field("n", &self.n)
            .field("m", &self.m)
            .finish()
    }
}

impl CostEnergy {
    /// The energy of `cost` on windows of `n` states and `m` controls per row.
    #[must_use]
    pub fn new(cost: Arc<dyn Cost>, n: usize, m: usize) -> Self {
        CostEnergy { cost, n, m }
    }
}

impl WindowEnergy for CostEnergy {
    fn gradient(&self, x: &[f64], grad: &mut [f64]) {
        let (n, w) = (self.n, self.n + self.m);
        let mut row = vec![0.0; w];
        for (t, (xr, gr)) in x.chunks_exact(w).zip(grad.chunks_exact_mut(w)).enumerate() {
            row.copy_from_slice(xr);
            for j in 0..w {
                let h = 1e-5 * (1.0 + row[j].abs());
                let v = row[j];
                row[j] = v + h;
                let up = self.cost.running(&row[..n], &row[n..], t);
                row[j] = v - h;
                let down = self.cost.running(&row[..n], &row[n..], t);
                row[j] = v;
                gr[j] = -(up - down) / (2.0 * h);
            }
        }
    }
}

/// `E(a) = −J(s_0, a)`: the total running cost of the rollout of the window's controls from
/// the state in its first row; its gradient in the controls by central differences (`2 H m`
/// rollouts), zero in the states.
pub struct RolloutEnergy {
    dynamics: Arc<dyn Dynamics>,
    cost: Arc<dyn Cost>,
    n: usize,
    m: usize,
}

impl fmt::Debug for RolloutEnergy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RolloutEnergy")
            .field("n", &self.n)
            .field("m", &self.m)
            .finish()
    }
}

impl RolloutEnergy {
    /// The rollout energy of a model.
    #[must_use]
    pub fn new(dynamics: Arc<dyn Dynamics>, cost: Arc<dyn Cost>) -> Self {
        let (n, m) = (dynamics.state_dim(), dynamics.control_dim());
        RolloutEnergy {
            dynamics,
            cost,
            n,
            m,
        }
    }

    fn total_cost(&self, s0: &[f64], u: &[f64], x: &mut [f64], next: &mut [f64]) -> f64 {
        x.copy_from_slice(s0);
        let mut total = 0.0;
        for (t, ut) in u.chunks_exact(self.m).enumerate() {
            total += self.cost.running(x, ut, t);
            self.dynamics.step(x, ut, next);
            x.copy_from_slice(next);
        }
        total + self.cost.terminal(x)
    }
}

impl WindowEnergy for RolloutEnergy {
    fn gradient(&self, window: &[f64], grad: &mut [f64]) {
        let (n, m, w) = (self.n, self.m, self.n + self.m);
        let s0 = &window[..n];
        let mut u: Vec<f64> = window
            .chunks_exact(w)
            .flat_map(|r| r[n..].to_vec())
            .collect();
        let (mut x, mut next) = (vec![0.0; n], vec![0.0; n]);
        grad.fill(0.0);
        for k in 0..u.len() {
            let v = u[k];
            let h = 1e-5 * (1.0 + v.abs());
            u[k] = v + h;
            let up = self.total_cost(s0, &u, &mut x, &mut next);
            u[k] = v - h;
            let down = self.total_cost(s0, &u, &mut x, &mut next);
            u[k] = v;
            grad[(k / m) * w + n + k % m] = -(up - down) / (2.0 * h);
        }
    }
}

/// The controller of `task` that plans with `denoiser` (its window length is the horizon, its
/// levels the iterations per step), guided as `settings` say; the other planner settings
/// (temperature, bounds, threads) come from `base`.
pub fn guided_controller(
    task: &dyn Task,
    denoiser: Arc<dyn Denoiser>,
    settings: &PlanSettings,
    base: &MppiConfig,
) -> Result<(TaskController, MppiConfig), LearnError> {
    let spec = denoiser.window().clone();
    let (n, m) = (task.dynamics().state_dim(), task.dynamics().control_dim());
    if spec.state_dim != n || spec.control_dim != m {
        return Err(LearnError::Settings(format!(
            "the denoiser was trained on windows of {} states and {} controls; task `{}` has {n} and {m}",
            spec.state_dim,
            spec.control_dim,
            task.name()
        )));
    }
    let (_, levels) = denoiser.schedule();
    let mppi = matches!(settings.guidance, Guidance::Mppi | Guidance::Both);
    let gradient = matches!(settings.guidance, Guidance::Gradient | Guidance::Both);
    let config = MppiConfig {
        samples: if mppi { settings.samples.max(2) } else { 2 },
        horizon: spec.horizon,
        iterations: levels,
        seed: settings.seed,
        schedule: mppi::ScheduleConfig::Constant,
        update: mppi::UpdateConfig::default(),
        ..base.clone()
    };
    config.validate(m)?;
    let bound = |b: &Option<Vec<f64>>, default: f64| match b.as_deref() {
        Some([v]) => vec![*v; m],
        Some(v) => v.to_vec(),
        None => vec![default; m],
    };
    let (u_min, u_max) = (
        bound(&config.u_min, f64::NEG_INFINITY),
        bound(&config.u_max, f64::INFINITY),
    );
    let energy: Option<Arc<dyn WindowEnergy>> = gradient.then(|| match settings.energy {
        Energy::Rollout => Arc::new(RolloutEnergy::new(task.dynamics(), task.cost())) as _,
        Energy::Window => Arc::new(CostEnergy::new(task.cost(), n, m)) as _,
    });
    let guidance = GuidanceSettings {
        gradient_scale: if gradient {
            settings.gradient_scale
        } else {
            0.0
        },
        sample_spread: if mppi { settings.sample_spread } else { 0.0 },
        noise: settings.noise,
        seed: settings.seed,
    };
    let proposal = DenoiserProposal::new(denoiser, energy, guidance, &u_min, &u_max)?;
    let objective = RolloutObjective::with_fused_cost(
        task.dynamics(),
        task.cost(),
        config.horizon,
        config.discount,
    )?;
    let ctrl = Controller::with_proposal(objective, Box::new(proposal), &config)?;
    Ok((ctrl, config))
}

/// The denoised window after every level of one control step from `state`: `(level, raw
/// window)` from `N` down to 1 (what the denoising plot shows).
pub fn denoising_snapshots(
    task: &dyn Task,
    denoiser: Arc<dyn Denoiser>,
    settings: &PlanSettings,
    base: &MppiConfig,
    state: &[f64],
) -> Result<Vec<(usize, Vec<f64>)>, LearnError> {
    struct Snapshots {
        levels: usize,
        out: Vec<(usize, Vec<f64>)>,
    }
    impl mppi::Observer for Snapshots {
        fn on_iteration(
            &mut self,
            stats: &mppi::IterStats,
            planner: &mppi::Planner,
        ) -> std::ops::ControlFlow<()> {
            if let Some(p) = mppi::proposal::downcast::<DenoiserProposal>(planner.proposal()) {
                self.out
                    .push((self.levels - stats.iteration as usize, p.raw_window()));
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let (_, levels) = denoiser.schedule();
    let (mut ctrl, _) = guided_controller(task, denoiser, settings, base)?;
    let mut snaps = Snapshots {
        levels,
        out: Vec::new(),
    };
    ctrl.act_observed(state, &mut snaps)?;
    Ok(snaps.out)
}
