//! `mppi diffusion collect|train` and the guided-diffusion planner of `mppi run --denoiser`
//! (docs/theory.md §F.3).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mppi::MppiConfig;
use mppi_learn::{
    CollectSettings, Dataset, Energy, Guidance, PlanSettings, TrainSettings, TrainedDenoiser,
};
use mppi_tasks::{Task, TaskController};

use crate::error::CliError;
use crate::plots::{PlotLine, register_font, write_line_plot};

/// Options of `mppi diffusion`.
#[derive(Debug, Args)]
#[command(after_help = "A whole run, from data to closed loop:\n  \
mppi diffusion collect pendulum --out data.json\n  \
mppi diffusion train data.json --out model.bpk\n  \
mppi run pendulum --denoiser model.bpk --set samples=64 --out out/guided\n\
`run --denoiser` plans with the trained denoiser as the sampling distribution: every control \
step denoises a window over the model's noise levels (one EM iteration each), inpaints the \
state and guides toward low cost (--guidance).")]
pub struct DiffusionArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DiffusionCommand,
}

/// The steps of guided diffusion planning.
#[derive(Debug, Subcommand)]
pub enum DiffusionCommand {
    /// Collect state-control windows from the MPPI expert (the task's default planner) from
    /// random initial states, plus noisy-expert episodes; writes a JSON dataset with its
    /// normalization and provenance.
    Collect(CollectArgs),
    /// Train the ε-prediction denoiser (an MLP with a noise-level embedding, burn on the CPU)
    /// on a dataset; writes the checkpoint (FILE and FILE.json), loss.csv and a loss plot next
    /// to it.
    Train(TrainArgs),
}

/// Options of `mppi diffusion collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Task whose expert to record (see `mppi tasks`).
    #[arg(value_name = "TASK")]
    pub task: String,
    /// Episodes from random initial states.
    #[arg(long, default_value_t = 40)]
    pub episodes: usize,
    /// Control steps per episode.
    #[arg(long, default_value_t = 150)]
    pub steps: usize,
    /// Rows of a window (the planning horizon of the trained model).
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Steps between two windows' starts.
    #[arg(long, default_value_t = 2)]
    pub stride: usize,
    /// Fraction of noisy-expert episodes, in [0, 1].
    #[arg(long, default_value_t = 0.2)]
    pub noisy_fraction: f64,
    /// Their control noise, as a fraction of the control range.
    #[arg(long, default_value_t = 0.1)]
    pub noise_std: f64,
    /// Samples of the expert planner (default: the task's).
    #[arg(long)]
    pub expert_samples: Option<usize>,
    /// Seed of the initial states, the noise and the expert.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The dataset file to write (JSON).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    /// Do not show the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Options of `mppi diffusion train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A dataset written by `mppi diffusion collect`.
    #[arg(value_name = "DATA")]
    pub data: PathBuf,
    /// Adam steps.
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    /// Hidden width of the three hidden layers.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Noise levels N (the planner runs one EM iteration per level).
    #[arg(long, default_value_t = 20)]
    pub levels: usize,
    /// Last β of the linear VP schedule (first: 1e-4).
    #[arg(long, default_value_t = 0.4)]
    pub beta_max: f64,
    /// Windows per step.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed of the initial weights and the batches (training is deterministic given it).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The checkpoint to write (burn's burnpack; the description goes to FILE.json).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    /// Do not show the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Guidance of `mppi run --denoiser` (see `PlanSettings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuidanceArg {
    /// Imitate the data only.
    None,
    /// The gradient of the rollout cost of the window's controls.
    Gradient,
    /// MPPI around the denoised mean on the real rollouts (gradient-free).
    Mppi,
    /// Gradient and MPPI.
    Both,
}

/// `--denoiser` options of `mppi run`.
#[derive(Debug, Clone, Args)]
pub struct DenoiserArgs {
    /// Plan with this trained denoiser (from `mppi diffusion train`) as the proposal: the
    /// horizon is its window, the iterations its noise levels; samples, temperature, bounds
    /// and seed come from the config.
    #[arg(long, value_name = "FILE")]
    pub denoiser: Option<PathBuf>,
    /// How the denoised window is steered toward low cost.
    #[arg(long, value_enum, default_value_t = GuidanceArg::Mppi, requires = "denoiser")]
    pub guidance: GuidanceArg,
    /// Gradient-guidance scale (with --guidance gradient or both).
    #[arg(long, default_value_t = 0.1, requires = "denoiser")]
    pub gradient_scale: f64,
    /// Spread of the MPPI-guidance samples, in units of √β_i.
    #[arg(long, default_value_t = 3.0, requires = "denoiser")]
    pub sample_spread: f64,
    /// Noise between levels, η in [0, 1] (1: DDPM).
    #[arg(long, default_value_t = 1.0, requires = "denoiser")]
    pub level_noise: f64,
}

impl DenoiserArgs {
    /// The plan settings, with samples and seed from `config`.
    pub fn settings(&self, config: &MppiConfig) -> PlanSettings {
        PlanSettings {
            guidance: match self.guidance {
                GuidanceArg::None => Guidance::None,
                GuidanceArg::Gradient => Guidance::Gradient,
                GuidanceArg::Mppi => Guidance::Mppi,
                GuidanceArg::Both => Guidance::Both,
            },
            samples: config.samples,
            gradient_scale: self.gradient_scale,
            energy: Energy::Rollout,
            sample_spread: self.sample_spread,
            noise: self.level_noise,
            seed: config.seed,
        }
    }
}

fn learn_error(e: mppi_learn::LearnError) -> CliError {
    match e {
        mppi_learn::LearnError::Settings(m) => CliError::usage(m),
        other => CliError::runtime(other.to_string()),
    }
}

fn bar(len: usize, prefix: &str, unit: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{prefix:.bold}} [{{bar:32.cyan/blue}}] {{pos}}/{{len}} {unit}  {{elapsed_precise}} (eta {{eta}})  {{msg}}"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix.to_string());
    bar
}

/// `mppi diffusion ...`.
pub fn diffusion(args: &DiffusionArgs) -> Result<(), CliError> {
    match &args.command {
        DiffusionCommand::Collect(a) => collect(a),
        DiffusionCommand::Train(a) => train(a),
    }
}

fn collect(args: &CollectArgs) -> Result<(), CliError> {
    let task = crate::commands::find_task(&args.task)?;
    let settings = CollectSettings {
        episodes: args.episodes,
        steps: args.steps,
        window: args.window,
        stride: args.stride,
        noisy_fraction: args.noisy_fraction,
        noise_std: args.noise_std,
        expert_samples: args.expert_samples,
        seed: args.seed,
    };
    settings.validate().map_err(learn_error)?;
    let progress = bar(args.episodes, task.name(), "episodes", args.quiet);
    let started = std::time::Instant::now();
    let data = Dataset::collect(task.as_ref(), &settings, |e| {
        progress.set_position(e as u64)
    })
    .map_err(learn_error)?;
    progress.finish_and_clear();
    create_parent(&args.out)?;
    data.save(&args.out).map_err(learn_error)?;
    println!(
        "{} windows of {} rows x ({} states + {} controls) from {} episodes ({} noisy) in {:.1} s; expert mean cost {:.1}\nwritten to {}",
        data.len(),
        data.spec.horizon,
        data.spec.state_dim,
        data.spec.control_dim,
        settings.episodes,
        (settings.noisy_fraction * settings.episodes as f64).round(),
        started.elapsed().as_secs_f64(),
        data.expert_mean_cost,
        args.out.display()
    );
    Ok(())
}

fn create_parent(path: &Path) -> Result<(), CliError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => crate::commands::create_out_dir(dir),
        _ => Ok(()),
    }
}

fn train(args: &TrainArgs) -> Result<(), CliError> {
    let data = Dataset::load(&args.data).map_err(learn_error)?;
    let mut settings = TrainSettings {
        hidden: args.hidden,
        levels: args.levels,
        steps: args.steps,
        batch: args.batch,
        learning_rate: args.lr,
        seed: args.seed,
        ..TrainSettings::default()
    };
    settings.schedule.beta_max = args.beta_max;
    settings.validate().map_err(learn_error)?;
    let progress = bar(args.steps, &data.task, "steps", args.quiet);
    let (model, report) = TrainedDenoiser::train(&data, &settings, 50, |step, loss| {
        progress.set_position(step as u64);
        progress.set_message(format!("loss {loss:.4}"));
    })
    .map_err(learn_error)?;
    progress.finish_and_clear();
    create_parent(&args.out)?;
    let provenance = format!(
        "task {}, {} windows from {} ({} episodes, seed {})",
        data.task,
        data.len(),
        args.data.display(),
        data.settings.episodes,
        data.settings.seed
    );
    model.save(&args.out, &provenance).map_err(learn_error)?;
    let dir = args
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let csv: String = std::iter::once("step,loss\n".to_string())
        .chain(report.loss_curve.iter().map(|(s, l)| format!("{s},{l}\n")))
        .collect();
    std::fs::write(dir.join("loss.csv"), csv)
        .map_err(|e| CliError::runtime(format!("cannot write loss.csv: {e}")))?;
    register_font().map_err(|e| CliError::from_anyhow(&e))?;
    let points = report
        .loss_curve
        .iter()
        .map(|(s, l)| (*s as f64, *l))
        .collect();
    write_line_plot(
        dir,
        "loss",
        &format!("denoiser training on {} (ε-prediction MSE)", data.task),
        "Adam step",
        "loss (mean over 50 steps)",
        true,
        &[PlotLine {
            label: "training loss".into(),
            points,
            reference: false,
        }],
    )
    .map_err(|e| CliError::from_anyhow(&e))?;
    println!(
        "trained {} steps in {:.1} s, final loss {:.4}\nwritten to {} (+ .json), {}",
        settings.steps,
        report.wall_s,
        report.loss_curve.last().map_or(f64::NAN, |p| p.1),
        args.out.display(),
        dir.join("loss.csv").display()
    );
    Ok(())
}

/// The controller planning with the denoiser at `path`, and the effective config.
pub fn denoiser_controller(
    task: &dyn Task,
    args: &DenoiserArgs,
    path: &Path,
    config: &MppiConfig,
) -> Result<(TaskController, MppiConfig, Arc<TrainedDenoiser>), CliError> {
    let model = Arc::new(TrainedDenoiser::load(path).map_err(learn_error)?);
    let (ctrl, effective) = mppi_learn::guided_controller(
        task,
        Arc::clone(&model) as _,
        &args.settings(config),
        config,
    )
    .map_err(learn_error)?;
    Ok((ctrl, effective, model))
}

/// Plots of the denoising process of the first control step: the first control and the
/// first state over the window at several noise levels.
pub fn write_denoising_plots(
    dir: &Path,
    task: &dyn Task,
    args: &DenoiserArgs,
    model: Arc<TrainedDenoiser>,
    config: &MppiConfig,
    state: &[f64],
) -> Result<(), CliError> {
    let spec = mppi::guided::Denoiser::window(model.as_ref()).clone();
    let snaps = mppi_learn::denoising_snapshots(task, model, &args.settings(config), config, state)
        .map_err(learn_error)?;
    let n_levels = snaps.len();
    let picks: Vec<usize> = [
        0,
        n_levels / 4,
        n_levels / 2,
        3 * n_levels / 4,
        n_levels - 1,
    ]
    .into_iter()
    .filter(|i| *i < n_levels)
    .collect();
    let w = spec.width();
    for (col, stem, name) in [
        (spec.state_dim, "denoising_control", task.control_names()[0]),
        (0, "denoising_state", task.state_names()[0]),
    ] {
        let lines: Vec<PlotLine> = picks
            .iter()
            .map(|&i| {
                let (level, window) = &snaps[i];
                PlotLine {
                    label: format!("after level {level}"),
                    points: window
                        .chunks_exact(w)
                        .enumerate()
                        .map(|(t, row)| (t as f64 * task.dt(), row[col]))
                        .collect(),
                    reference: false,
                }
            })
            .collect();
        write_line_plot(
            dir,
            stem,
            &format!(
                "{}: the planned window at step 0, level by level",
                task.name()
            ),
            "look-ahead (s)",
            name,
            false,
            &lines,
        )
        .map_err(|e| CliError::from_anyhow(&e))?;
    }
    Ok(())
}
