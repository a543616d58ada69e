//! Command-line syntax: the `clap` definitions of `mppi` and its subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Model predictive path integral control (MPPI as expectation–maximization) on built-in tasks.
///
/// Run `mppi tasks` to see the tasks, then `mppi run <task>` to control one in closed loop with
/// its tuned default settings. Every planner setting can be changed from a TOML file
/// (`--config`) or a flag (`--set key=value`); `--out DIR` writes CSV, JSON and plots.
#[derive(Debug, Parser)]
#[command(
    name = "mppi",
    version,
    about = "Sampling-based model predictive control (MPPI / EM) on built-in tasks",
    long_about = None,
    after_help = "Examples:\n  \
        mppi tasks\n  \
        mppi run pendulum\n  \
        mppi run pendulum --set samples=256 --set weighting.temperature.lambda=0.5 --out runs/pendulum\n  \
        mppi run pendulum --set 'weighting.temperature={ kind = \"ess_target\", target = 0.05 }'\n  \
        mppi config pendulum > my.toml; mppi run pendulum --config my.toml --seed 3 --require-success",
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every built-in task with its one-line description.
    Tasks,
    /// Run a task in closed loop and print a summary (optionally write CSV, JSON and plots).
    Run(RunArgs),
    /// Print a task's whole planner config as TOML, every key with a comment: a file to edit
    /// and pass to `mppi run --config`.
    Config(ConfigArgs),
    /// Compare the EM-MPPI theory with measurements: contraction rates, sufficient increase
    /// per family, full-covariance O(1/k), acceleration rates and expected ESS.
    Theory(TheoryArgs),
    /// Time one control step (shift + one EM iteration) on the benchmark problems, sweep the
    /// sample count K and the horizon T, and print a table (optionally JSON, Markdown, plots).
    Bench(BenchArgs),
}

/// Options of `mppi bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "Problems (each task's default config with K, T, threads set and \
diagnostics = basic):\n  \
    pendulum T = 30, K = 1000; pendulum T = 15, K = 100; double_integrator and unicycle\n  \
    T = 50, K = 4096; K sweep: diff_drive T = 100, K = 128 ... 16384 (powers of 2);\n  \
    T sweep: double_integrator K = 1024, T = 10 ... 200.\n\n\
Each measurement warms up, then times N blocks of repeated `Controller::act` calls (each block\n\
at least 20 ms) and reports the median time per step, the min-max over blocks and\n\
sample-steps/s = K*T/median. The fixed problems and the sweep at K = 2048 also time the\n\
hand-fused reference kernel (mppi_tasks::reference: same math, same random numbers), its\n\
blocks interleaved with the library's at the first thread count, and print the ratio\n\
library / reference. With --out DIR: bench.json, bench.md and PNG + SVG plots\n\
(bench_scaling_k, bench_scaling_t). Build with --release for meaningful numbers."
)]
pub struct BenchArgs {
    /// Few short blocks and small sweeps (a smoke test of a few seconds, noisy numbers).
    #[arg(long)]
    pub quick: bool,

    /// Write bench.json, bench.md and the plots into DIR (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Thread counts to measure, comma separated.
    #[arg(long, short = 'j', value_name = "N,N", value_delimiter = ',',
          default_values_t = [1, 2], value_parser = parse_threads)]
    pub threads: Vec<usize>,

    /// Timed blocks per measurement (default 15, or 3 with --quick).
    #[arg(long, value_name = "N", value_parser = parse_blocks)]
    pub blocks: Option<usize>,

    /// Do not show the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `--threads`: whole numbers >= 1.
fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected thread counts >= 1, e.g. `--threads 1,2`".to_string()),
    }
}

/// `--blocks`: a whole number >= 1.
fn parse_blocks(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of blocks >= 1".to_string()),
    }
}

/// Options of `mppi theory`.
#[derive(Debug, Args)]
#[command(after_help = "Experiments (theory-spec sections in brackets):\n  \
    (a) contraction     rate ρ((I + ΣH/λ)⁻¹) vs planner runs on a quadratic [C.3, C.4]\n  \
    (b) increase        sufficient-increase margin ΔL̂ − ΔQ̂ ≥ 0 for every family [C.2]\n  \
    (c) full covariance exact O(1/k) closed forms vs fixed-Σ linear rate; gaussian_full planner [B.4.3]\n  \
    (d) acceleration    EM / over-relaxed / heavy-ball rates, exact E-steps and planner [D.3]\n  \
    (e) ESS             expected E[w]²/E[w²] vs measured ESS/N [C.4]\n\n\
With --out DIR: theory.json, theory_checks.csv, theory_families.csv and PNG + SVG plots\n\
(theory_contraction, theory_increase_margin, theory_full_covariance, theory_acceleration,\n\
theory_ess). The exit status is 0 whether or not every check agrees (see the VERDICT column).")]
pub struct TheoryArgs {
    /// Small sample sizes and few repetitions (about a second; wider tolerances).
    #[arg(long)]
    pub quick: bool,

    /// Write the tables (JSON, CSV) and the plots (PNG + SVG) into DIR (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Random seed (the quadratic's rotation and every Monte-Carlo run).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// Do not show the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Options of `mppi config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Task whose config to print (see `mppi tasks`).
    #[arg(value_name = "TASK")]
    pub task: String,

    /// TOML file laid over the task's defaults before printing (as in `mppi run`).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Override one setting before printing (as in `mppi run`); repeatable.
    #[arg(long = "set", short = 's', value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Options of `mppi run`.
#[derive(Debug, Args)]
#[command(after_help = crate::config::keys_help())]
pub struct RunArgs {
    /// Task to run (see `mppi tasks`).
    #[arg(value_name = "TASK")]
    pub task: String,

    /// TOML file of planner settings, applied over the task's defaults: top-level keys
    /// (samples, horizon, ...) and one section per stage ([proposal], [schedule], [weighting],
    /// [update]); keys not in the file keep the task's defaults. Unknown keys are an error.
    /// `mppi config <task>` prints a complete file to start from.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Override one setting, after the config file; repeatable. KEY is a dotted path, VALUE
    /// a TOML value (number, bool, array, inline table, quoted string) or a bare word, e.g.
    /// `--set samples=512`, `--set weighting.temperature.lambda=0.5`,
    /// `--set proposal.noise_sigma=1.0`, `--set proposal.kind=gaussian_diag`.
    #[arg(long = "set", short = 's', value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Episode length in control steps (default: the task's).
    #[arg(long, value_name = "N", value_parser = parse_steps)]
    pub steps: Option<usize>,

    /// Random seed of the planner (same as `--set seed=N`; wins over it).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Worker threads for the rollouts (same as `--set threads=N`; wins over it). Results do
    /// not depend on it.
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<usize>,

    /// Write trajectory.csv, diagnostics.csv, summary.json, episode.json and PNG + SVG plots
    /// (states, controls, cost, diagnostics and, for planar tasks, path) into DIR (created if
    /// missing; existing files are overwritten).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Exit with status 1 if the episode does not meet the task's success criterion.
    #[arg(long)]
    pub require_success: bool,

    /// Do not show the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `--steps`: a whole number >= 1.
fn parse_steps(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of steps >= 1".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_repeated_set() {
        let cli = Cli::try_parse_from([
            "mppi", "run", "pendulum", "--set", "a=1", "--set", "b=2", "--steps", "5",
        ])
        .map_err(|e| e.to_string());
        let Ok(Cli {
            command: Command::Run(args),
        }) = cli
        else {
            panic!("did not parse: {cli:?}");
        };
        assert_eq!(args.set, vec!["a=1", "b=2"]);
        assert_eq!(args.steps, Some(5));
    }

    #[test]
    fn zero_steps_is_rejected() {
        assert!(Cli::try_parse_from(["mppi", "run", "pendulum", "--steps", "0"]).is_err());
    }
}
