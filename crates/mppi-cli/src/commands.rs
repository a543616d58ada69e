//! What the subcommands do.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mppi::{DiagnosticsLevel, MppiConfig, MppiError};
use mppi_tasks::{
    EpisodeError, EpisodeOptions, EpisodeSink, StepRecord, Task, run_controller_episode,
};

use crate::registry::{all_tasks, task_by_name, task_names};

use crate::cli::{Cli, Command, ConfigArgs, RunArgs, TheoryArgs};
use crate::error::CliError;
use crate::output::{CsvWriter, RunSummary, write_data_files};
use crate::plots::{register_font, write_plots, write_theory_plots};
use crate::theory::{render, write_theory_files};
use mppi_config::{Overrides, build_config, render_config};

/// `mppi run --realtime` (`src/commands/realtime.rs`; a child of this module, so it shares
/// its helpers).
mod realtime;

/// Sampled rollouts drawn per capture in the path plot.
const ROLLOUTS_PER_CAPTURE: usize = 10;

/// Run the parsed command line.
pub fn dispatch(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Tasks => print_stdout(&tasks_table()),
        Command::Run(args) => run(&args),
        Command::Config(args) => show_config(&args),
        Command::Theory(args) => theory(&args),
        Command::Bench(args) => crate::bench::bench(&args),
        Command::Diffusion(args) => crate::diffusion::diffusion(&args),
        Command::Learn(args) => crate::learn::learn(&args),
        Command::PolicySearch(args) => crate::policy_search::policy_search(&args),
    }
}

/// `mppi config <task>`: the task's config, with the file and `--set` overrides laid over it.
fn show_config(args: &ConfigArgs) -> Result<(), CliError> {
    let task = find_task(&args.task)?;
    let overrides = Overrides {
        preset: args.preset.as_deref(),
        file: args.config.as_deref(),
        set: &args.set,
        ..Overrides::default()
    };
    let config = build_config(
        &task.default_config(),
        &overrides,
        task.dynamics().control_dim(),
    )?;
    print_stdout(&render_config(task.name(), &config)?)
}

/// Write to stdout; a closed pipe (e.g. `mppi tasks | head -1`) is not an error.
pub(crate) fn print_stdout(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::runtime(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// The aligned table printed by `mppi tasks`.
#[must_use]
pub fn tasks_table() -> String {
    let tasks = all_tasks();
    let rows: Vec<[String; 4]> = tasks
        .iter()
        .map(|t| {
            let dynamics = t.dynamics();
            [
                t.name().to_string(),
                format!("{}/{}", dynamics.state_dim(), dynamics.control_dim()),
                t.default_steps().to_string(),
                t.description().to_string(),
            ]
        })
        .collect();
    let header = [
        "TASK".to_string(),
        "X/U".to_string(),
        "STEPS".to_string(),
        "DESCRIPTION".to_string(),
    ];
    let mut widths = [0usize; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// Look a task up, or explain which names exist.
pub(crate) fn find_task(name: &str) -> Result<Box<dyn Task>, CliError> {
    task_by_name(name)?.ok_or_else(|| {
        CliError::usage(format!(
            "unknown task `{name}`; valid tasks: {} (see `mppi tasks`), or a MuJoCo task file \
             `*.toml`",
            task_names().join(", ")
        ))
    })
}

fn episode_error(e: MppiError) -> CliError {
    match e {
        MppiError::InvalidConfig { .. } => CliError::usage(e.to_string()),
        other => CliError::runtime(format!("the episode failed: {other}")),
    }
}

/// What `mppi run` does with every step: move the progress bar and, with `--out`, stream the
/// rows to `trajectory.csv` and `diagnostics.csv`.
///
/// The output directory and the files are created at the first step, once the controller was
/// built and has planned a step: a run that fails before that leaves nothing behind.
struct RunSink<'a> {
    task: &'a dyn Task,
    out: Option<&'a Path>,
    bar: &'a ProgressBar,
    csv: Option<CsvWriter<BufWriter<File>>>,
}

impl RunSink<'_> {
    /// The CSV writer, creating the output directory and the files at the first call.
    fn csv(&mut self) -> Result<Option<&mut CsvWriter<BufWriter<File>>>, CliError> {
        let Some(dir) = self.out else {
            return Ok(None);
        };
        if self.csv.is_none() {
            create_out_dir(dir)?;
            let open = |name: &str| {
                let path = dir.join(name);
                File::create(&path).map(BufWriter::new).map_err(|e| {
                    CliError::runtime(format!("cannot create `{}`: {e}", path.display()))
                })
            };
            let dynamics = self.task.dynamics();
            let writer = CsvWriter::new(
                open("trajectory.csv")?,
                open("diagnostics.csv")?,
                self.task,
                dynamics.state_dim(),
                dynamics.control_dim(),
            )
            .map_err(|e| self.write_error(&e))?;
            self.csv = Some(writer);
        }
        Ok(self.csv.as_mut())
    }

    fn write_error(&self, e: &std::io::Error) -> CliError {
        let dir = self.out.unwrap_or(Path::new("."));
        CliError::runtime(format!(
            "cannot write the CSV files in `{}`: {e}",
            dir.display()
        ))
    }
}

impl EpisodeSink for RunSink<'_> {
    type Error = CliError;

    fn step(&mut self, record: &StepRecord<'_>) -> Result<(), CliError> {
        self.bar.set_position((record.step + 1) as u64);
        let last = record.report.last();
        self.bar.set_message(format!(
            "ESS {:.0}  λ {:.3}",
            last.weights.ess, last.weights.lambda
        ));
        if let Some(csv) = self.csv()?
            && let Err(e) = csv.step(record)
        {
            return Err(self.write_error(&e));
        }
        Ok(())
    }

    fn finish(&mut self, steps: usize, state: &[f64]) -> Result<(), CliError> {
        let dt = self.task.dt();
        if let Some(csv) = self.csv()?
            && let Err(e) = csv.finish(steps, dt, state)
        {
            return Err(self.write_error(&e));
        }
        Ok(())
    }
}

fn progress_bar(steps: usize, task: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:32.cyan/blue}] {pos}/{len} steps  {elapsed_precise} (eta {eta})  {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(task.to_string());
    bar
}

pub(crate) fn create_out_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::runtime(format!(
            "cannot create output directory `{}`: {e}",
            dir.display()
        ))
    })
}

/// `mppi run`.
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let task = find_task(&args.task)?;
    let control_dim = task.dynamics().control_dim();
    // full diagnostics unless the user sets `diagnostics` (file or --set layers override it);
    // in real time the task's own level, as full diagnostics cost planning time
    let base = MppiConfig {
        diagnostics: if args.realtime {
            task.default_config().diagnostics
        } else {
            DiagnosticsLevel::Full
        },
        ..task.default_config()
    };
    let config = build_config(
        &base,
        &Overrides {
            preset: args.preset.as_deref(),
            file: args.config.as_deref(),
            set: &args.set,
            seed: args.seed,
            threads: args.threads,
        },
        control_dim,
    )?;
    // settings that let an adapted spread collapse: the run goes on, the user is told why it
    // may fail
    for warning in mppi::proposal::spread_warnings(&config) {
        eprintln!("warning: {warning}");
    }
    let steps = args.steps.unwrap_or_else(|| task.default_steps());
    let out = args.out.as_deref();
    if out.is_some() {
        // the directory itself is created once the episode has taken its first step
        register_font().map_err(|e| CliError::from_anyhow(&e))?;
    }
    let capture = out.is_some() && task.scene().is_some();
    let options = EpisodeOptions {
        steps,
        rollout_every: if capture {
            crate::animate::capture_interval(steps, !args.no_animation)
        } else {
            0
        },
        rollouts_per_capture: ROLLOUTS_PER_CAPTURE,
        ..EpisodeOptions::default()
    };

    let bar = progress_bar(steps, task.name(), args.quiet);
    let mut sink = RunSink {
        task: task.as_ref(),
        out,
        bar: &bar,
        csv: None,
    };
    // the controller: the config's planner, or the trained denoiser as its proposal
    let (ctrl, config, denoiser) = match &args.denoiser.denoiser {
        Some(path) => {
            let (ctrl, effective, model) = crate::diffusion::denoiser_controller(
                task.as_ref(),
                &args.denoiser,
                path,
                &config,
            )?;
            (ctrl, effective, Some(model))
        }
        None => {
            let mut ctrl = mppi_tasks::controller(task.as_ref(), &config)
                .map_err(|e| CliError::usage(e.to_string()))?;
            if let Some(plan) = task.initial_plan(config.horizon) {
                ctrl.set_plan(&plan)
                    .map_err(|e| CliError::usage(e.to_string()))?;
            }
            (ctrl, config, None)
        }
    };
    if args.realtime {
        bar.finish_and_clear();
        return realtime::run(task.as_ref(), ctrl, &config, args, steps, out);
    }
    let started = Instant::now();
    let result = run_controller_episode(task.as_ref(), ctrl, &options, &mut sink);
    let wall = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut episode = match result {
        Ok(episode) => episode,
        Err(EpisodeError::Sink(e)) => return Err(e),
        Err(EpisodeError::Mppi(e)) => {
            let mut error = episode_error(e);
            if let (Some(csv), Some(dir), CliError::Runtime(message)) =
                (sink.csv.as_mut(), out, &mut error)
            {
                // keep what was written: the rows up to the failure
                if csv.flush().is_ok() {
                    message.push_str(&format!(
                        " (the steps before it are in `{}`)",
                        dir.join("trajectory.csv").display()
                    ));
                }
            }
            return Err(error);
        }
    };

    let outcome = task.success(&episode);
    let summary = RunSummary::new(task.as_ref(), &config, &episode, &outcome, wall);
    if let Some(dir) = out {
        if !args.no_animation {
            crate::animate::write_animation(dir, task.as_ref(), &episode)
                .map_err(|e| CliError::from_anyhow(&e))?;
        }
        write_plots(dir, task.as_ref(), &config, &episode)
            .map_err(|e| CliError::from_anyhow(&e))?;
        // episode.json keeps the captures the path plot draws, not every frame's
        episode.rollouts = crate::plots::scene::plotted_captures(&episode.rollouts)
            .into_iter()
            .cloned()
            .collect();
        write_data_files(dir, &episode, &summary).map_err(|e| CliError::from_anyhow(&e))?;
        if let Some(model) = denoiser {
            crate::diffusion::write_denoising_plots(
                dir,
                task.as_ref(),
                &args.denoiser,
                model,
                &config,
                &task.initial_state(),
            )?;
        }
    }
    print_stdout(&summary.render(out))?;
    if args.require_success && !outcome.success {
        return Err(CliError::runtime(format!(
            "task `{}` did not meet its success criterion (--require-success): {}",
            task.name(),
            outcome.message
        )));
    }
    Ok(())
}

/// `mppi theory`.
pub fn theory(args: &TheoryArgs) -> Result<(), CliError> {
    use mppi_theory::experiments::{EXPERIMENTS, Size, run_all};
    let out = args.out.as_deref();
    if let Some(dir) = out {
        create_out_dir(dir)?;
        register_font().map_err(|e| CliError::from_anyhow(&e))?;
    }
    let size = if args.quick { Size::Quick } else { Size::Full };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(
            Some(EXPERIMENTS.len() as u64),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:32.cyan/blue}] {pos}/{len} experiments  {elapsed_precise}  {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix("theory");
        bar
    };
    let mut started = 0u64;
    let report = run_all(size, args.seed, &mut |name| {
        bar.set_position(started);
        bar.set_message(name.to_string());
        started += 1;
    });
    bar.finish_and_clear();
    let report =
        report.map_err(|e| CliError::runtime(format!("a theory experiment failed: {e}")))?;
    let mut text = render(&report);
    if let Some(dir) = out {
        write_theory_files(dir, &report).map_err(|e| CliError::from_anyhow(&e))?;
        write_theory_plots(dir, &report).map_err(|e| CliError::from_anyhow(&e))?;
        text.push_str(&format!("output: {}\n", dir.display()));
    }
    print_stdout(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_task_aligned() {
        let table = tasks_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 1 + all_tasks().len());
        assert!(lines[0].starts_with("TASK"));
        let col = lines[0].find("DESCRIPTION").expect("header");
        for (line, task) in lines[1..].iter().zip(all_tasks()) {
            assert!(line.starts_with(task.name()));
            assert_eq!(line.find(task.description()), Some(col), "{line}");
        }
    }

    #[test]
    fn unknown_task_lists_names() {
        let Err(err) = find_task("nope") else {
            panic!("found a task called nope");
        };
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("pendulum"), "{err}");
    }
}
