//! `mppi policy-search <task>`: learn a feedback policy for a task with the library's EM loop
//! (`mppi::policy_search`, docs/theory.md §E.2), then run it in closed loop.
//!
//! The policy (linear `u = K x + k`, or a tanh MLP) is rolled out on the task's model from its
//! initial state for `--horizon` steps with the task's control bounds; `--method em` improves
//! it by EM policy search with action noise `--sigma` and a weighted maximum-likelihood
//! M-step, `--method param` by parameter-space MPPI (the planner over the policy's
//! parameters, noise `--sigma`). Every iteration prints one line; `--out DIR` gets
//! `policy.json` (parameters, settings, the per-iteration reports), `learning_curve.png`/`.svg`
//! and the learned policy's closed-loop run of `--horizon` steps on the task's plant
//! (`trajectory.csv` as `mppi run` writes it, `closed_loop_states` and `closed_loop_controls`
//! plots).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use mppi::policy_search::{
    ClosedLoop, EmSearch, EmSettings, IterationReport, LinearPolicy, MlpPolicy, ParamSearch,
    ParamSettings, Policy, PolicySearch,
};
use mppi::{Dynamics, MppiError, ProposalConfig, StepReport, WeightingConfig};
use mppi_tasks::{Outcome, StepRecord, Task};
use serde::Serialize;

use crate::error::CliError;
use crate::output::{CsvWriter, control_names, control_units, state_names, state_units, with_unit};
use crate::plots::{PlotLine, register_font, write_line_plot};

/// Which search improves the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// EM policy search: noisy actions, weights softmax(−J/λ), weighted maximum likelihood.
    Em,
    /// Parameter-space MPPI: the planner samples the policy's parameters.
    Param,
}

/// The policy's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// `u = K x + k` (exact weighted least squares in EM).
    Linear,
    /// A tanh MLP (`--hidden` widths; Adam M-steps in EM).
    Mlp,
}

/// Options of `mppi policy-search`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mppi policy-search double_integrator --iterations 20\n  \
    mppi policy-search pendulum --policy mlp --hidden 16 --sigma 1.0 --out runs/ps-pendulum\n  \
    mppi policy-search double_integrator --method param --sigma 0.2 --lambda 50\n\n\
Each iteration prints the rollouts' mean cost, the ESS, the temperature λ and the cost of \
the current (noise-free) policy over the horizon. The learned policy then runs in closed \
loop on the task's plant for the same number of steps.")]
pub struct PolicySearchArgs {
    /// Task to learn a policy for (see `mppi tasks`).
    #[arg(value_name = "TASK")]
    pub task: String,

    /// `em`: EM policy search with action noise; `param`: parameter-space MPPI.
    #[arg(long, value_enum, default_value_t = Method::Em)]
    pub method: Method,

    /// `linear`: u = K x + k; `mlp`: a tanh network (see --hidden).
    #[arg(long, value_enum, default_value_t = PolicyKind::Linear)]
    pub policy: PolicyKind,

    /// Hidden widths of the MLP, one or two comma-separated (with --policy mlp).
    #[arg(long, value_name = "N,N", value_delimiter = ',', default_values_t = [16])]
    pub hidden: Vec<usize>,

    /// EM iterations.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub iterations: usize,

    /// Samples per iteration (em: noisy episodes; param: parameter vectors), at least 2.
    #[arg(long, value_name = "K", default_value_t = 64)]
    pub samples: usize,

    /// Exploration noise: em: standard deviation of the action noise in control units
    /// (default: half of the smallest half-range of the control bounds, 1 if unbounded);
    /// param: standard deviation of the parameter noise (default 0.1).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub sigma: Option<f64>,

    /// Fixed temperature λ in cost units (default: λ set each iteration so that ESS/K = 0.1).
    #[arg(long, value_name = "L", allow_negative_numbers = true)]
    pub lambda: Option<f64>,

    /// Random seed of the exploration noise (and of the MLP's initial weights).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// Steps per rollout, and of the closed-loop run of the learned policy (default: the
    /// task's episode length).
    #[arg(long, value_name = "T")]
    pub horizon: Option<usize>,

    /// Output directory (default: out/policy-search/<task>).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// What `policy.json` holds.
#[derive(Debug, Serialize)]
struct PolicyFile<'a> {
    task: &'a str,
    method: Method,
    policy: PolicyRecord<'a>,
    horizon: usize,
    start_state: &'a [f64],
    u_min: &'a [f64],
    u_max: &'a [f64],
    settings: &'a SettingsRecord,
    initial_policy_cost: f64,
    final_policy_cost: f64,
    iterations: &'a [IterationReport],
    closed_loop: ClosedLoopRecord,
}

#[derive(Debug, Serialize)]
struct PolicyRecord<'a> {
    kind: PolicyKind,
    state_dim: usize,
    control_dim: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    hidden: Option<&'a [usize]>,
    /// Linear: `[K row-major (m × n), k]`; MLP: each layer's `W` (row-major) then `b`.
    params: &'a [f64],
}

/// The settings of the search that ran.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum SettingsRecord {
    Em(Box<EmSettings>),
    Param(Box<ParamSettings>),
}

#[derive(Debug, Clone, Serialize)]
struct ClosedLoopRecord {
    steps: usize,
    total_cost: f64,
    success: bool,
    message: String,
}

fn mppi_error(e: MppiError) -> CliError {
    match e {
        MppiError::InvalidConfig { .. } | MppiError::DimensionMismatch { .. } => {
            CliError::usage(e.to_string())
        }
        other => CliError::runtime(format!("policy search failed: {other}")),
    }
}

/// Default action noise of EM: half of the smallest half-range of the bounds, or 1.
fn default_action_sigma(u_min: &[f64], u_max: &[f64]) -> f64 {
    let half = u_min
        .iter()
        .zip(u_max)
        .map(|(lo, hi)| 0.5 * (hi - lo))
        .filter(|h| h.is_finite() && *h > 0.0)
        .fold(f64::INFINITY, f64::min);
    if half.is_finite() { 0.5 * half } else { 1.0 }
}

/// The policy the options ask for, from `n` states to `m` controls.
fn build_policy(args: &PolicySearchArgs, n: usize, m: usize) -> Result<Box<dyn Policy>, CliError> {
    Ok(match args.policy {
        PolicyKind::Linear => Box::new(LinearPolicy::new(n, m).map_err(mppi_error)?),
        PolicyKind::Mlp => {
            Box::new(MlpPolicy::new(n, m, &args.hidden, args.seed).map_err(mppi_error)?)
        }
    })
}

/// The task's control bounds, per component (±∞ where it has none).
fn bounds(task: &dyn Task, m: usize) -> (Vec<f64>, Vec<f64>) {
    let config = task.default_config();
    let expand = |v: Option<Vec<f64>>, fill: f64| match v {
        Some(v) if v.len() == 1 => vec![v[0]; m],
        Some(v) if v.len() == m => v,
        _ => vec![fill; m],
    };
    (
        expand(config.u_min, f64::NEG_INFINITY),
        expand(config.u_max, f64::INFINITY),
    )
}

/// `mppi policy-search`.
pub fn policy_search(args: &PolicySearchArgs) -> Result<(), CliError> {
    let task = crate::commands::find_task(&args.task)?;
    let dynamics = task.dynamics();
    let (n, m) = (dynamics.state_dim(), dynamics.control_dim());
    let horizon = args.horizon.unwrap_or_else(|| task.default_steps());
    if horizon == 0 {
        return Err(CliError::usage("--horizon must be at least 1"));
    }
    let (u_min, u_max) = bounds(task.as_ref(), m);
    let start = task.initial_state();
    let policy = build_policy(args, n, m)?;
    let theta0 = policy.initial_params();
    let problem = ClosedLoop::new(
        policy,
        dynamics,
        task.cost(),
        std::slice::from_ref(&start),
        horizon,
    )
    .and_then(|p| p.with_bounds(&u_min, &u_max))
    .map_err(mppi_error)?;
    let weighting = args.lambda.map(WeightingConfig::fixed);
    let (mut search, settings): (Box<dyn PolicySearch>, SettingsRecord) = match args.method {
        Method::Em => {
            let defaults = EmSettings::default();
            let settings = EmSettings {
                iterations: args.iterations,
                samples: args.samples,
                sigma: args
                    .sigma
                    .unwrap_or_else(|| default_action_sigma(&u_min, &u_max)),
                weighting: weighting.unwrap_or(defaults.weighting),
                seed: args.seed,
                ..defaults
            };
            let search = EmSearch::new(problem, &settings, &theta0).map_err(mppi_error)?;
            (Box::new(search), SettingsRecord::Em(Box::new(settings)))
        }
        Method::Param => {
            let defaults = ParamSettings::default();
            let settings = ParamSettings {
                iterations: args.iterations,
                samples: args.samples,
                proposal: ProposalConfig::gaussian(&[args.sigma.unwrap_or(0.1)]),
                weighting: weighting.unwrap_or(defaults.weighting),
                seed: args.seed,
                ..defaults
            };
            let search = ParamSearch::new(problem, &settings, &theta0).map_err(mppi_error)?;
            (Box::new(search), SettingsRecord::Param(Box::new(settings)))
        }
    };

    let initial = search.policy_cost().map_err(mppi_error)?;
    let total = search.iterations();
    println!(
        "{}: {} policy search, {} policy ({} parameters), {} samples x {} steps; initial policy cost {}",
        task.name(),
        match args.method {
            Method::Em => "EM",
            Method::Param => "parameter-space MPPI",
        },
        match args.policy {
            PolicyKind::Linear => "linear",
            PolicyKind::Mlp => "MLP",
        },
        theta0.len(),
        args.samples,
        horizon,
        fmt_cost(initial)
    );
    let started = std::time::Instant::now();
    let reports = search
        .run(&mut |r| {
            println!(
                "iteration {:>3}/{total}  rollouts: mean cost {}  min {}  ESS {:.1}  λ {:.3}  policy cost {}",
                r.iteration + 1,
                fmt_cost(r.weights.mean_cost),
                fmt_cost(r.weights.min_cost),
                r.weights.ess,
                r.weights.lambda,
                fmt_cost(r.policy_cost)
            );
        })
        .map_err(mppi_error)?;
    let final_cost = search.policy_cost().map_err(mppi_error)?;
    let theta = search.params().to_vec();
    drop(search);

    // the learned policy in closed loop on the task's plant
    let policy = build_policy(args, n, m)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("out").join("policy-search").join(task.name()));
    crate::commands::create_out_dir(&out)?;
    register_font().map_err(|e| CliError::from_anyhow(&e))?;
    let run = closed_loop(
        task.as_ref(),
        policy.as_ref(),
        &theta,
        (&u_min, &u_max),
        horizon,
        &out,
    )?;

    let file = PolicyFile {
        task: task.name(),
        method: args.method,
        policy: PolicyRecord {
            kind: args.policy,
            state_dim: n,
            control_dim: m,
            hidden: (args.policy == PolicyKind::Mlp).then_some(args.hidden.as_slice()),
            params: &theta,
        },
        horizon,
        start_state: &start,
        u_min: &u_min,
        u_max: &u_max,
        settings: &settings,
        initial_policy_cost: initial,
        final_policy_cost: final_cost,
        iterations: &reports,
        closed_loop: run.clone(),
    };
    let json = serde_json::to_string_pretty(&file)
        .map_err(|e| CliError::runtime(format!("cannot serialize policy.json: {e}")))?;
    write(&out.join("policy.json"), json.as_bytes())?;
    write_learning_curve(&out, task.name(), horizon, initial, &reports)?;
    println!(
        "policy cost {} -> {} in {:.1} s; closed loop ({} steps on the plant): cost {}, {}: {}\noutput: {}",
        fmt_cost(initial),
        fmt_cost(final_cost),
        started.elapsed().as_secs_f64(),
        run.steps,
        fmt_cost(run.total_cost),
        if run.success { "success" } else { "no success" },
        run.message,
        out.display()
    );
    Ok(())
}

fn fmt_cost(c: f64) -> String {
    if c.is_finite() && c.abs() < 1e6 {
        format!("{c:.3}")
    } else {
        format!("{c:.3e}")
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes)
        .map_err(|e| CliError::runtime(format!("cannot write `{}`: {e}", path.display())))
}

/// The learning curve: the policy's cost and the best sampled rollout's per iteration.
fn write_learning_curve(
    dir: &Path,
    task: &str,
    horizon: usize,
    initial: f64,
    reports: &[IterationReport],
) -> Result<(), CliError> {
    let finite = |(x, y): (f64, f64)| y.is_finite().then_some((x, y));
    let policy: Vec<(f64, f64)> = std::iter::once((0.0, initial))
        .chain(
            reports
                .iter()
                .map(|r| ((r.iteration + 1) as f64, r.policy_cost)),
        )
        .filter_map(finite)
        .collect();
    // the best sample (on the policy's scale; the mean of noisy rollouts is in policy.json)
    let best: Vec<(f64, f64)> = reports
        .iter()
        .map(|r| ((r.iteration + 1) as f64, r.weights.min_cost))
        .filter_map(finite)
        .collect();
    write_line_plot(
        dir,
        "learning_curve",
        &format!("policy search on {task}: cost over {horizon} steps"),
        "iteration",
        "episode cost",
        false,
        &[
            PlotLine {
                label: "policy (no noise)".into(),
                points: policy,
                reference: false,
            },
            PlotLine {
                label: "best sampled rollout".into(),
                points: best,
                reference: false,
            },
        ],
    )
    .map_err(|e| CliError::from_anyhow(&e))?;
    Ok(())
}

/// Run the policy `theta` on the task's plant for `steps` steps (the horizon it was trained
/// for): write
/// `trajectory.csv` (the format of `mppi run`) and the state and control plots, and judge it
/// with the task's criterion.
fn closed_loop(
    task: &dyn Task,
    policy: &dyn Policy,
    theta: &[f64],
    (u_min, u_max): (&[f64], &[f64]),
    steps: usize,
    dir: &Path,
) -> Result<ClosedLoopRecord, CliError> {
    let dynamics: Arc<dyn Dynamics> = task.dynamics();
    let (n, m) = (dynamics.state_dim(), dynamics.control_dim());
    let dt = task.dt();
    let path = dir.join("trajectory.csv");
    let file = File::create(&path)
        .map_err(|e| CliError::runtime(format!("cannot create `{}`: {e}", path.display())))?;
    let io =
        |e: std::io::Error| CliError::runtime(format!("cannot write `{}`: {e}", path.display()));
    // no planner: the diagnostics rows go nowhere
    let mut csv = CsvWriter::new(
        Box::new(BufWriter::new(file)) as Box<dyn Write>,
        Box::new(std::io::sink()),
        task,
        n,
        m,
    )
    .map_err(io)?;
    let report = StepReport::default();
    let mut x = task.initial_state();
    let mut next = vec![0.0; n];
    let mut u = vec![0.0; m];
    let mut states = vec![x.clone()];
    let mut controls = vec![];
    let mut total = 0.0;
    for k in 0..steps {
        policy.action(theta, &x, k, &mut u);
        for ((v, lo), hi) in u.iter_mut().zip(u_min).zip(u_max) {
            *v = v.clamp(*lo, *hi);
        }
        let stage_cost = task.stage_cost(&x, &u);
        total += stage_cost;
        csv.step(&StepRecord {
            step: k,
            total: steps,
            dt,
            state: &x,
            control: &u,
            stage_cost,
            report: &report,
        })
        .map_err(io)?;
        task.plant_step(&x, &u, &mut next);
        controls.push(u.clone());
        if next.iter().any(|v| !v.is_finite()) {
            csv.flush().map_err(io)?;
            return Err(CliError::runtime(format!(
                "the learned policy drove the plant to a non-finite state at step {} (the rows \
                 before it are in `{}`)",
                k + 1,
                path.display()
            )));
        }
        x.copy_from_slice(&next);
        states.push(x.clone());
    }
    csv.finish(steps, dt, &x).map_err(io)?;
    let Outcome { success, message } = mppi_tasks::judge(task, &states, &controls);
    write_closed_loop_plots(task, &states, &controls, dt, dir)?;
    Ok(ClosedLoopRecord {
        steps,
        total_cost: total,
        success,
        message,
    })
}

/// `closed_loop_states` and `closed_loop_controls`: every component over time, units in the
/// legend.
fn write_closed_loop_plots(
    task: &dyn Task,
    states: &[Vec<f64>],
    controls: &[Vec<f64>],
    dt: f64,
    dir: &Path,
) -> Result<(), CliError> {
    let (n, m) = (states[0].len(), controls.first().map_or(0, Vec::len));
    let lines = |rows: &[Vec<f64>], names: Vec<String>, units: Vec<&str>| -> Vec<PlotLine> {
        names
            .iter()
            .zip(units)
            .enumerate()
            .map(|(i, (name, unit))| PlotLine {
                label: with_unit(name, unit),
                points: rows
                    .iter()
                    .enumerate()
                    .map(|(k, r)| (k as f64 * dt, r[i]))
                    .collect(),
                reference: false,
            })
            .collect()
    };
    for (stem, what, rows, lines) in [
        (
            "closed_loop_states",
            "state",
            states,
            lines(states, state_names(task, n), state_units(task, n)),
        ),
        (
            "closed_loop_controls",
            "control",
            controls,
            lines(controls, control_names(task, m), control_units(task, m)),
        ),
    ] {
        if rows.is_empty() {
            continue;
        }
        write_line_plot(
            dir,
            stem,
            &format!("{}: the learned policy in closed loop", task.name()),
            "time [s]",
            &format!("{what} (units in the legend)"),
            false,
            &lines,
        )
        .map_err(|e| CliError::from_anyhow(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_noise_follows_the_bounds() {
        assert_eq!(default_action_sigma(&[-2.0], &[2.0]), 1.0);
        assert_eq!(default_action_sigma(&[-3.0, -1.0], &[3.0, 1.0]), 0.5);
        assert_eq!(
            default_action_sigma(&[f64::NEG_INFINITY], &[f64::INFINITY]),
            1.0
        );
    }
}
