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
    /// Guided diffusion planning: collect expert windows and train a denoiser, then plan with
    /// it (`mppi run <task> --denoiser FILE`).
    Diffusion(crate::diffusion::DiffusionArgs),
    /// Train a TD-MPC2-style agent whose planner is the EM loop in latent space, with one
    /// member of the PO-MPC family of policy updates (V0, V∞, VTD, Vλ, Vλ̃).
    Learn(crate::learn::LearnArgs),
    /// Learn a feedback policy (linear or MLP) for a task with the EM loop: EM policy search
    /// or parameter-space MPPI; writes policy.json, a learning curve and the closed-loop run.
    PolicySearch(crate::policy_search::PolicySearchArgs),
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
sample-steps/s = K*T/median. A problem's thread counts are timed together, their blocks\n\
interleaved, and the speed-up over the first thread count is printed. The fixed problems\n\
also time the hand-fused reference kernel (mppi_tasks::reference: same math, same random\n\
numbers) in the same rounds, and print the ratio library / reference. With --out DIR: bench.json, bench.md and PNG + SVG plots\n\
(bench_scaling_k, bench_scaling_t). Build with --release for meaningful numbers."
)]
pub struct BenchArgs {
    /// Few short blocks and small sweeps (a smoke test of a few seconds, noisy numbers).
    #[arg(long)]
    pub quick: bool,

    /// Write bench.json, bench.md and the plots into DIR (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Thread counts to measure, comma separated (each from 1 to the available cores).
    #[arg(long, short = 'j', value_name = "N,N", value_delimiter = ',',
          default_values_t = [1, 2], value_parser = parse_threads, allow_hyphen_values = true)]
    pub threads: Vec<usize>,

    /// Timed blocks per measurement (default 15, or 3 with --quick).
    #[arg(long, value_name = "N", value_parser = parse_blocks, allow_negative_numbers = true)]
    pub blocks: Option<usize>,

    /// Do not show the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The most rollout threads a run may use (the core library's rule: one per available core,
/// at least 2).
#[must_use]
pub fn max_threads() -> usize {
    mppi::config::max_threads()
}

/// Why a thread count above [`max_threads`] is refused.
#[must_use]
pub fn too_many_threads(threads: usize) -> String {
    let cores = mppi::config::available_cores();
    format!(
        "{threads} threads is more than the {cores} available core{} (at most {} threads)",
        if cores == 1 { "" } else { "s" },
        max_threads()
    )
}

/// A whole number in `min..=max`; `expected` says what is valid (clap prefixes the error with
/// "invalid value 'S' for '--flag <N>'").
fn parse_whole<T>(s: &str, min: T, max: T, expected: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + Copy,
{
    let s = s.trim();
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let why = match s.parse::<T>() {
        Ok(n) if n >= min && n <= max => return Ok(n),
        Ok(_) => "out of range",
        Err(_) if s.strip_prefix('-').is_some_and(digits) => "negative",
        Err(_) if digits(s) => "too large",
        Err(_) => "not a whole number",
    };
    Err(format!("{why}; expected {expected}"))
}

/// `--threads` of `mppi run` and each count of `mppi bench --threads`: 1 to [`max_threads`].
fn parse_threads(s: &str) -> Result<usize, String> {
    let expected = format!(
        "a whole number of threads from 1 to {} (the available cores, at least 2), e.g. `--threads 2`",
        max_threads()
    );
    let threads = parse_whole(s, 1, usize::MAX, &expected)?;
    if threads > max_threads() {
        return Err(too_many_threads(threads));
    }
    Ok(threads)
}

/// `--blocks`: a whole number >= 1.
fn parse_blocks(s: &str) -> Result<usize, String> {
    parse_whole(
        s,
        1,
        usize::MAX,
        "a whole number of blocks >= 1, e.g. `--blocks 15`",
    )
}

/// `--seed`: any `u64`.
fn parse_seed(s: &str) -> Result<u64, String> {
    parse_whole(
        s,
        0,
        u64::MAX,
        &format!("a whole number from 0 to {}, e.g. `--seed 3`", u64::MAX),
    )
}

/// `--steps`: a whole number >= 1 (an episode of 0 steps has nothing to control or judge).
fn parse_steps(s: &str) -> Result<usize, String> {
    if s.trim().parse::<usize>() == Ok(0) {
        return Err(
            "an episode needs at least 1 control step; expected a whole number of steps >= 1, \
             e.g. `--steps 500`"
                .to_string(),
        );
    }
    parse_whole(
        s,
        1,
        usize::MAX,
        "a whole number of steps >= 1, e.g. `--steps 500`",
    )
}

/// A finite number from a flag; `what` says what is valid.
fn parse_number(s: &str, what: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("not a finite number; expected {what}")),
    }
}

/// `--rate`: a finite number of Hz > 0.
fn parse_rate(s: &str) -> Result<f64, String> {
    let what = "a rate in Hz > 0, e.g. `--rate 100`";
    match parse_number(s, what)? {
        v if v > 0.0 => Ok(v),
        _ => Err(format!("must be > 0; expected {what}")),
    }
}

/// `--deadline`: a finite number of milliseconds > 0.
fn parse_deadline(s: &str) -> Result<f64, String> {
    let what = "a planning budget in ms > 0, e.g. `--deadline 5`";
    match parse_number(s, what)? {
        v if v > 0.0 => Ok(v),
        _ => Err(format!("must be > 0; expected {what}")),
    }
}

/// `--latency`: a finite number of milliseconds >= 0.
fn parse_latency(s: &str) -> Result<f64, String> {
    let what = "a latency in ms >= 0, e.g. `--latency 20`";
    match parse_number(s, what)? {
        v if v >= 0.0 => Ok(v),
        _ => Err(format!("must be >= 0; expected {what}")),
    }
}

/// Options of `mppi theory`.
#[derive(Debug, Args)]
#[command(after_help = "Experiments (docs/theory.md sections in brackets):\n  \
    (a) contraction     rate ρ((I + ΣH/λ)⁻¹) vs planner runs on a quadratic [C.3, C.4]\n  \
    (b) increase        every family, floors off: KL > 0, exact M-step ΔQ̂ = KL, and the true\n                        increase ΔL ≥ KL measured on fresh samples [C.2]\n  \
    (c) full covariance exact O(1/k) closed forms vs fixed-Σ linear rate; gaussian_full planner [B.4.3]\n  \
    (d) acceleration    EM / over-relaxed / heavy-ball rates, exact E-steps and planner [D.3]\n  \
    (e) ESS             expected E[w]²/E[w²] vs measured ESS/N [C.4]\n\n\
With --out DIR: theory.json, theory_checks.csv, theory_families.csv and PNG + SVG plots\n\
(theory_contraction, theory_sufficient_increase, theory_full_covariance, theory_acceleration,\n\
theory_ess). The exit status is 0 whether or not every check agrees (see the VERDICT column).")]
pub struct TheoryArgs {
    /// Small sample sizes and few repetitions (about a second; wider tolerances).
    #[arg(long)]
    pub quick: bool,

    /// Write the tables (JSON, CSV) and the plots (PNG + SVG) into DIR (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Random seed (the quadratic's rotation and every Monte-Carlo run).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = parse_seed,
          allow_negative_numbers = true)]
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

    /// Named settings laid over the task's defaults first (as in `mppi run`).
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(mppi_config::presets::names()))]
    pub preset: Option<String>,

    /// TOML file laid over the task's defaults before printing (as in `mppi run`).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Override one setting before printing (as in `mppi run`); repeatable.
    #[arg(long = "set", short = 's', value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Options of `mppi run`.
#[derive(Debug, Args)]
#[command(after_help = mppi_config::keys_help())]
pub struct RunArgs {
    /// Task to run (see `mppi tasks`).
    #[arg(value_name = "TASK")]
    pub task: String,

    /// Named settings laid over the task's defaults before the config file and `--set`:
    /// `dial` (DIAL-MPC annealing), `mbd` (model-based diffusion), `ve` (annealed MPPI on
    /// variance-exploding levels). `mppi config <task> --preset NAME` prints what it sets.
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(mppi_config::presets::names()))]
    pub preset: Option<String>,

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

    /// Episode length in control steps, at least 1 (default: the task's). Memory does not
    /// grow with it: `--out` streams every row to the CSV files.
    #[arg(long, value_name = "N", value_parser = parse_steps, allow_negative_numbers = true)]
    pub steps: Option<usize>,

    /// Random seed of the planner (same as `--set seed=N`; wins over it).
    #[arg(long, value_name = "N", value_parser = parse_seed, allow_negative_numbers = true)]
    pub seed: Option<u64>,

    /// Worker threads for the rollouts (same as `--set threads=N`; wins over it), from 1 to
    /// the available cores (at least 2). Results do not depend on it.
    #[arg(long, short = 'j', value_name = "N", value_parser = parse_threads,
          allow_negative_numbers = true)]
    pub threads: Option<usize>,

    /// Write trajectory.csv, diagnostics.csv, summary.json, episode.json, PNG + SVG plots
    /// (states, controls, cost, diagnostics and, for planar tasks, path) and the animation
    /// episode.gif into DIR (created if missing; existing files are overwritten).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// With --out: do not write the animation episode.gif.
    #[arg(long)]
    pub no_animation: bool,

    /// Exit with status 1 if the episode does not meet the task's success criterion.
    #[arg(long)]
    pub require_success: bool,

    /// Run the plant in real time: the plant ticks at a fixed rate against the wall clock
    /// (one tick = one control period = the task's dt of simulated time) while the planner
    /// plans on its own thread, with a deadline and latency compensation; a plan that is late
    /// is a missed deadline and the plant executes the shifted previous plan. Prints the
    /// timing (rate achieved, planning time, misses, jitter); with --out also writes
    /// timing.csv, timing.json and timing.png. Not bit-reproducible (timing decides what the
    /// planner sees). --steps sets the number of ticks.
    #[arg(long)]
    pub realtime: bool,

    /// With --realtime: ticks per second of wall-clock time, > 0 (default: 1/dt of the task,
    /// i.e. real time; another rate runs the simulation rate·dt times faster than real time).
    #[arg(long, value_name = "HZ", requires = "realtime", value_parser = parse_rate,
          allow_negative_numbers = true)]
    pub rate: Option<f64>,

    /// With --realtime: planning budget per plan in milliseconds of wall-clock time, > 0
    /// (default: `deadline_ms` of the config if set, else 80% of the period). The first EM
    /// iteration always runs.
    #[arg(long, value_name = "MS", requires = "realtime", value_parser = parse_deadline,
          allow_negative_numbers = true)]
    pub deadline: Option<f64>,

    /// With --realtime: latency to compensate in milliseconds of wall-clock time, >= 0 and
    /// shorter than the horizon (horizon ticks): the planner plans from the state predicted
    /// this much later (rounded up to whole ticks) with the controls already committed
    /// (default: one period).
    #[arg(long, value_name = "MS", requires = "realtime", value_parser = parse_latency,
          allow_negative_numbers = true)]
    pub latency: Option<f64>,

    /// Do not show the progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Planning with a trained denoiser.
    #[command(flatten)]
    pub denoiser: crate::diffusion::DenoiserArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    #[cfg_attr(
        not(debug_assertions),
        ignore = "clap checks its command definition only in debug builds: `cargo test -p mppi-cli`"
    )]
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
    fn realtime_flags() {
        let parse = |args: &[&str]| {
            let mut all = vec!["mppi", "run", "pendulum"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all) {
                Ok(Cli {
                    command: Command::Run(args),
                }) => Ok(args),
                Ok(_) => Err("not run".to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        let args = parse(&[
            "--realtime",
            "--rate",
            "100",
            "--deadline",
            "2.5",
            "--latency",
            "0",
        ])
        .expect("parses");
        assert!(args.realtime);
        assert_eq!(
            (args.rate, args.deadline, args.latency),
            (Some(100.0), Some(2.5), Some(0.0))
        );
        for bad in [
            &["--realtime", "--rate", "0"][..],
            &["--realtime", "--rate", "-3"],
            &["--realtime", "--rate", "NaN"],
            &["--realtime", "--rate", "inf"],
            &["--realtime", "--deadline", "0"],
            &["--realtime", "--latency", "-1"],
            &["--rate", "100"],
            &["--deadline", "5"],
            &["--latency", "5"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let e = parse(&["--rate", "100"]).expect_err("needs --realtime");
        assert!(e.contains("--realtime"), "{e}");
    }

    #[test]
    fn zero_steps_is_rejected() {
        assert!(Cli::try_parse_from(["mppi", "run", "pendulum", "--steps", "0"]).is_err());
    }
}
