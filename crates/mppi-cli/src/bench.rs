//! `mppi bench`: time one receding-horizon control step (`Controller::act`: warm-start shift +
//! one EM iteration) on the benchmark problems, and sweep the sample count `K` and the horizon
//! `T` to show that the cost of a step grows linearly in both.
//!
//! Every measurement builds the task's controller from its default config with `samples`,
//! `horizon`, `threads` set, one EM iteration and `diagnostics = basic` (so the planner alone
//! is timed), warms it up, then times `blocks` blocks of back-to-back calls, each block long
//! enough (≥ 20 ms) that the clock's resolution does not matter. A block's time per step is its
//! duration over its call count; the report gives the median over blocks and their min–max.
//!
//! Every fixed problem is measured with float64 rollouts, with float32 rollouts
//! (`precision = "f32"`: state, dynamics and running costs in single precision, as the peers
//! run; samples, weights and the M-step stay float64), and with float32 rollouts and the fast
//! normal generator (`normals = "fast"`, float32 Box–Muller). The sweeps are float64.
//!
//! Next to the library, the same method times the hand-fused reference kernel of each fixed
//! problem (`mppi_tasks::reference`: the same math, in the same precision, and the same random
//! numbers in one plain loop, 1 thread, the "speed of light"); the tables give its time and the
//! ratio library / reference at 1 thread.
//!
//! The binary's allocator counts the heap allocations made on every thread (rayon's workers
//! included) during the library's timed blocks (`crate::alloc_count`); every row reports its
//! count, and the report sums them per thread count.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mppi::{DiagnosticsLevel, MppiConfig, MppiError, Normals, Precision};
use mppi_tasks::reference::{ReferenceKernel, ReferenceProblem};
use mppi_tasks::{Task, controller};
use serde::Serialize;

use crate::alloc_count::{self, Counts};
use crate::cli::BenchArgs;
use crate::commands::{create_out_dir, find_task, print_stdout};
use crate::error::CliError;
use crate::plots::{PlotLine, register_font, write_line_plot_with_bars};
use crate::theory::table;

/// One benchmark problem: a task at a size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    /// Row label.
    label: String,
    /// Task name (`mppi tasks`).
    task: &'static str,
    /// Samples `K`.
    samples: usize,
    /// Horizon `T`.
    horizon: usize,
    /// Rollout precision.
    precision: Precision,
    /// Standard-normal generator.
    normals: Normals,
}

impl Problem {
    /// A float64 problem.
    fn new(task: &'static str, samples: usize, horizon: usize) -> Self {
        Self::in_precision(task, samples, horizon, Precision::F64, Normals::Exact)
    }

    fn in_precision(
        task: &'static str,
        samples: usize,
        horizon: usize,
        precision: Precision,
        normals: Normals,
    ) -> Self {
        let suffix = match (precision, normals) {
            (Precision::F64, Normals::Exact) => "",
            (Precision::F32, Normals::Exact) => " f32",
            (Precision::F64, Normals::Fast) => " fast normals",
            (Precision::F32, Normals::Fast) => " f32 fast normals",
        };
        Problem {
            label: format!("{task} T={horizon} K={samples}{suffix}"),
            task,
            samples,
            horizon,
            precision,
            normals,
        }
    }
}

/// `"exact"` or `"fast"`.
fn normals_name(n: Normals) -> &'static str {
    match n {
        Normals::Exact => "exact",
        Normals::Fast => "fast",
    }
}

/// `"f64"` or `"f32"`.
fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F64 => "f64",
        Precision::F32 => "f32",
    }
}

/// How long and how often to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plan {
    blocks: usize,
    /// Minimum duration of one timed block.
    min_block: Duration,
    /// Minimum warm-up duration (and at least [`WARMUP_CALLS`] calls).
    warmup: Duration,
}

/// Calls made before timing, whatever the warm-up duration.
const WARMUP_CALLS: usize = 3;

/// `K` of the fixed differential-drive problem (the 2-thread target).
const DIFF_DRIVE_SAMPLES: usize = 2048;

/// The sizes `mppi bench` measures.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Suite {
    problems: Vec<Problem>,
    k_sweep: Vec<Problem>,
    t_sweep: Vec<Problem>,
}

impl Suite {
    fn new(quick: bool) -> Self {
        let sizes = [
            ("pendulum", 1000, 30),
            ("pendulum", 100, 15),
            ("double_integrator", 4096, 50),
            ("unicycle", 4096, 50),
            ("diff_drive", DIFF_DRIVE_SAMPLES, 100),
        ];
        let problems = sizes
            .iter()
            .flat_map(|&(task, k, t)| {
                [
                    (Precision::F64, Normals::Exact),
                    (Precision::F32, Normals::Exact),
                    (Precision::F32, Normals::Fast),
                ]
                .map(|(p, n)| Problem::in_precision(task, k, t, p, n))
            })
            .collect();
        let (k_max, t_values, t_samples): (usize, &[usize], usize) = if quick {
            (1024, &[10, 20, 40, 80], 256)
        } else {
            (16384, &[10, 25, 50, 75, 100, 150, 200], 1024)
        };
        let k_sweep = std::iter::successors(Some(128usize), |k| Some(k * 2))
            .take_while(|k| *k <= k_max)
            .map(|k| Problem::new("diff_drive", k, 100))
            .collect();
        let t_sweep = t_values
            .iter()
            .map(|&t| Problem::new("double_integrator", t_samples, t))
            .collect();
        Suite {
            problems,
            k_sweep,
            t_sweep,
        }
    }

    fn len(&self) -> usize {
        self.problems.len() + self.k_sweep.len() + self.t_sweep.len()
    }

    /// The problems whose reference kernel is timed: every fixed problem that has one.
    fn reference_problems(&self) -> Vec<Problem> {
        let mut list = self.problems.clone();
        list.retain(|p| ReferenceProblem::from_task_name(p.task).is_some());
        list
    }
}

/// One problem at one thread count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// Row label (`task T=.. K=..`).
    pub problem: String,
    /// Task name.
    pub task: String,
    /// Samples `K`.
    pub samples: usize,
    /// Horizon `T`.
    pub horizon: usize,
    /// Rollout precision: `"f64"` or `"f32"`.
    pub precision: String,
    /// Standard-normal generator: `"exact"` or `"fast"`.
    pub normals: String,
    /// Rollout threads.
    pub threads: usize,
    /// Calls per timed block.
    pub calls_per_block: usize,
    /// Median over blocks of the time per control step, in milliseconds.
    pub median_ms: f64,
    /// Fastest block's time per step, in milliseconds.
    pub min_ms: f64,
    /// Slowest block's time per step, in milliseconds.
    pub max_ms: f64,
    /// `K · T / median`: sampled (state, control) steps rolled out and costed per second.
    pub sample_steps_per_s: f64,
    /// `median / (K · T)` in nanoseconds.
    pub ns_per_sample_step: f64,
    /// Time per step of every block, in milliseconds, in the order measured.
    pub block_ms: Vec<f64>,
    /// Control steps timed: `calls_per_block` × blocks (warm-up excluded).
    pub timed_steps: usize,
    /// Heap allocations (and reallocations) counted on every thread of the process during
    /// the timed steps.
    pub allocations: u64,
    /// Their sizes, summed, in bytes.
    pub allocated_bytes: u64,
    /// EM iterations of the timed steps that ran on the thread pool (the others ran on the
    /// calling thread: `parallel = "auto"` measures which is faster).
    pub pool_iterations: u64,
    /// The hand-fused reference kernel on the same problem, 1 thread (`null` where none was
    /// timed).
    pub reference: Option<ReferenceTiming>,
    /// `median_ms / reference.median_ms`, on the 1-thread rows that have a reference (`null`
    /// otherwise): how far the library is from the speed of light.
    pub ratio_to_reference: Option<f64>,
}

/// One timing of a reference kernel (`mppi_tasks::reference`), 1 thread, by the same method as
/// the library: median over blocks of the time per control step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceTiming {
    /// Calls per timed block.
    pub calls_per_block: usize,
    /// Median over blocks of the time per control step, in milliseconds.
    pub median_ms: f64,
    /// Fastest block's time per step, in milliseconds.
    pub min_ms: f64,
    /// Slowest block's time per step, in milliseconds.
    pub max_ms: f64,
    /// Time per step of every block, in milliseconds, in the order measured.
    pub block_ms: Vec<f64>,
}

/// A sweep over one size with the other fixed, at every thread count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// Task name.
    pub task: String,
    /// The swept size: `"samples"` or `"horizon"`.
    pub variable: String,
    /// The fixed size, e.g. `"T = 100"`.
    pub fixed: String,
    /// Every measurement, grouped by thread count.
    pub measurements: Vec<Measurement>,
    /// A least-squares fit per thread count.
    pub fits: Vec<Fit>,
}

/// How the median time per step depends on the swept size, for one thread count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    /// Rollout threads.
    pub threads: usize,
    /// Slope of `log(time)` against `log(size)` over the larger half of the sizes (1 = linear).
    pub log_log_slope: f64,
    /// Straight line `time = intercept + slope · size` fitted over every size, in ms.
    pub intercept_ms: f64,
    /// Its slope, in ms per unit of size.
    pub slope_ms: f64,
    /// Its coefficient of determination.
    pub r_squared: f64,
}

/// Where the numbers were measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`), or `"unknown"`.
    pub cpu: String,
    /// Logical cores available to this process.
    pub logical_cores: usize,
    /// Operating system and architecture.
    pub os: String,
    /// `rustc --version` at run time, or `"unknown"`.
    pub rustc: String,
    /// SIMD features the CPU has (run-time detection).
    pub cpu_features: Vec<String>,
    /// SIMD features the binary was compiled to use unconditionally.
    pub compiled_features: Vec<String>,
    /// `release` (no debug assertions) or `debug`.
    pub build: String,
}

/// The heap allocations counted during the timed control steps of one thread count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllocationTotal {
    /// Rollout threads.
    pub threads: usize,
    /// Control steps timed (every row of this thread count).
    pub steps: usize,
    /// Allocations (and reallocations) counted on every thread during those steps.
    pub allocations: u64,
    /// Their sizes, summed, in bytes.
    pub bytes: u64,
    /// `allocations / steps`.
    pub per_step: f64,
}

/// Sum the counts of every measurement per thread count.
fn allocation_totals(measurements: &[&Measurement], threads: &[usize]) -> Vec<AllocationTotal> {
    threads
        .iter()
        .map(|&n| {
            let rows = measurements.iter().filter(|m| m.threads == n);
            let steps: usize = rows.clone().map(|m| m.timed_steps).sum();
            let allocations: u64 = rows.clone().map(|m| m.allocations).sum();
            AllocationTotal {
                threads: n,
                steps,
                allocations,
                bytes: rows.map(|m| m.allocated_bytes).sum(),
                per_step: if steps == 0 {
                    0.0
                } else {
                    allocations as f64 / steps as f64
                },
            }
        })
        .collect()
}

/// Everything `mppi bench` measured (written as `bench.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// The machine.
    pub machine: Machine,
    /// `--quick`?
    pub quick: bool,
    /// Timed blocks per measurement.
    pub blocks: usize,
    /// Minimum duration of a block in milliseconds.
    pub min_block_ms: f64,
    /// Thread counts measured.
    pub threads: Vec<usize>,
    /// The benchmark problems.
    pub problems: Vec<Measurement>,
    /// `diff_drive`, `T = 100`, `K` = powers of two.
    pub k_sweep: Sweep,
    /// `double_integrator` at fixed `K`, varying `T`.
    pub t_sweep: Sweep,
    /// Heap allocations during the timed control steps, counted on every thread, summed over
    /// every row (problems and sweeps) of each thread count.
    pub allocations: Vec<AllocationTotal>,
    /// Total wall time of the benchmark in seconds.
    pub wall_time_s: f64,
}

/// `mppi bench`.
pub fn bench(args: &BenchArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let suite = Suite::new(args.quick);
    let plan = if args.quick {
        Plan {
            blocks: args.blocks.unwrap_or(3),
            min_block: Duration::from_millis(2),
            warmup: Duration::from_millis(2),
        }
    } else {
        Plan {
            blocks: args.blocks.unwrap_or(15),
            min_block: Duration::from_millis(20),
            warmup: Duration::from_millis(100),
        }
    };
    let mut threads = args.threads.clone();
    threads.sort_unstable();
    threads.dedup();
    if threads.is_empty() {
        return Err(CliError::usage("--threads needs at least one thread count"));
    }
    let out = args.out.as_deref();
    if let Some(dir) = out {
        create_out_dir(dir)?;
        register_font().map_err(|e| CliError::from_anyhow(&e))?;
    }
    let machine = machine();

    let references = suite.reference_problems();
    let bar = progress_bar(suite.len() * threads.len() + references.len(), args.quiet);
    // a problem's thread counts and its reference kernel are timed together, their blocks
    // interleaved, so that all see the same machine state and their ratios stay meaningful
    type Timings = Vec<(String, ReferenceTiming)>;
    let run = |problems: &[Problem],
               with_reference: bool|
     -> Result<(Vec<Measurement>, Timings), CliError> {
        let (mut all, mut timings) = (vec![], vec![]);
        for p in problems {
            let reference = with_reference && references.contains(p);
            bar.set_message(format!(
                "{}, {} thread{}{}",
                p.label,
                threads
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" and "),
                plural(*threads.last().unwrap_or(&1)),
                if reference {
                    " and reference kernel"
                } else {
                    ""
                }
            ));
            let (measured, r) = measure_problem(p, &threads, reference, &plan)?;
            all.extend(measured);
            if let Some(r) = r {
                timings.push((p.label.clone(), r));
            }
            bar.inc((threads.len() + usize::from(reference)) as u64);
        }
        Ok((all, timings))
    };
    let measured = (|| -> Result<_, CliError> {
        Ok((
            run(&suite.problems, true)?,
            run(&suite.k_sweep, false)?,
            run(&suite.t_sweep, false)?,
        ))
    })();
    bar.finish_and_clear();
    let ((mut problems, reference_timings), (k_sweep, _), (t_sweep, _)) = measured?;
    // (the sweeps' rows were timed apart from the reference kernels: no ratio there)
    attach_references(&mut problems, &reference_timings);
    // the table lists a problem's thread counts next to each other
    problems.sort_by_key(|m| {
        (
            suite
                .problems
                .iter()
                .position(|p| p.label == m.problem)
                .unwrap_or(usize::MAX),
            m.threads,
        )
    });

    let t_samples = suite.t_sweep.first().map_or(0, |p| p.samples);
    let every_row: Vec<&Measurement> = problems.iter().chain(&k_sweep).chain(&t_sweep).collect();
    let allocations = allocation_totals(&every_row, &threads);
    let report = BenchReport {
        machine,
        quick: args.quick,
        blocks: plan.blocks,
        min_block_ms: plan.min_block.as_secs_f64() * 1e3,
        threads: threads.clone(),
        problems,
        k_sweep: sweep("diff_drive", "samples", "T = 100", k_sweep, &threads),
        t_sweep: sweep(
            "double_integrator",
            "horizon",
            &format!("K = {t_samples}"),
            t_sweep,
            &threads,
        ),
        allocations,
        wall_time_s: started.elapsed().as_secs_f64(),
    };
    let mut text = render(&report);
    if let Some(dir) = out {
        write_bench_files(dir, &report).map_err(|e| CliError::from_anyhow(&e))?;
        write_bench_plots(dir, &report).map_err(|e| CliError::from_anyhow(&e))?;
        let _ = writeln!(text, "output: {}", dir.display());
    }
    print_stdout(&text)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn bench_error(p: &Problem, e: &MppiError) -> CliError {
    match e {
        MppiError::InvalidConfig { .. } => CliError::usage(format!("{}: {e}", p.label)),
        other => CliError::runtime(format!("benchmark `{}` failed: {other}", p.label)),
    }
}

fn progress_bar(total: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:32.cyan/blue}] {pos}/{len} measurements  {elapsed_precise}  {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix("bench");
    bar
}

/// The task's default config at the problem's size, as every measurement uses it.
fn problem_config(task: &dyn Task, problem: &Problem, threads: usize) -> MppiConfig {
    MppiConfig {
        samples: problem.samples,
        horizon: problem.horizon,
        precision: problem.precision,
        normals: problem.normals,
        threads,
        iterations: 1,
        diagnostics: DiagnosticsLevel::Basic,
        ..task.default_config()
    }
}

/// The timed blocks of one call.
struct Timed {
    calls_per_block: usize,
    /// Every block's time per call in milliseconds.
    block_ms: Vec<f64>,
    /// The heap allocations counted on every thread during the blocks.
    counts: Counts,
    /// EM iterations run on a thread pool during the blocks.
    pool_iterations: u64,
}

/// Warm every call up (at least [`WARMUP_CALLS`] calls and `plan.warmup`), then time
/// `plan.blocks` rounds of one block of back-to-back calls per call (each block long enough to
/// last `plan.min_block`), interleaved (a block of the first, then of the second, ...), so that
/// slow phases of a shared machine fall on all of them alike and their ratio stays meaningful. Each call's allocations are counted during its
/// own blocks only. A call returns how many of its EM iterations ran on a thread pool; those
/// of the timed blocks are summed.
fn time_interleaved<E>(
    plan: &Plan,
    calls: &mut [&mut dyn FnMut() -> Result<u64, E>],
) -> Result<Vec<Timed>, E> {
    // the controllers are built: let their pools' workers start (and a previous measurement's
    // workers exit) before anything is counted
    alloc_count::wait_for_idle_threads();
    let mut calls_per_block = Vec::with_capacity(calls.len());
    for call in calls.iter_mut() {
        let warmup = Instant::now();
        let mut n = 0usize;
        while n < WARMUP_CALLS || warmup.elapsed() < plan.warmup {
            call()?;
            n += 1;
        }
        let per_call = warmup.elapsed().as_secs_f64() / n as f64;
        calls_per_block.push(
            ((plan.min_block.as_secs_f64() / per_call.max(1e-9)).ceil() as usize)
                .clamp(1, 1_000_000),
        );
    }
    let mut block_ms = vec![Vec::with_capacity(plan.blocks); calls.len()];
    let mut counts = vec![Counts::default(); calls.len()];
    let mut pooled = vec![0u64; calls.len()];
    for _ in 0..plan.blocks {
        for ((((call, n), times), counted), pooled) in calls
            .iter_mut()
            .zip(&calls_per_block)
            .zip(&mut block_ms)
            .zip(&mut counts)
            .zip(&mut pooled)
        {
            let window = alloc_count::Window::open();
            let t = Instant::now();
            for _ in 0..*n {
                *pooled += call()?;
            }
            let elapsed = t.elapsed();
            *counted += window.close();
            times.push(elapsed.as_secs_f64() * 1e3 / *n as f64);
        }
    }
    Ok(calls_per_block
        .into_iter()
        .zip(block_ms)
        .zip(counts)
        .zip(pooled)
        .map(
            |(((calls_per_block, block_ms), counts), pool_iterations)| Timed {
                calls_per_block,
                block_ms,
                counts,
                pool_iterations,
            },
        )
        .collect())
}

/// `(median, min, max)` of non-empty block times.
fn block_stats(block_ms: &[f64]) -> (f64, f64, f64) {
    let mut sorted = block_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    (median(&sorted), sorted[0], sorted[sorted.len() - 1])
}

/// The controller a measurement times: the task's default config at the problem's size, and
/// the task's initial plan.
fn build_controller(
    task: &dyn Task,
    problem: &Problem,
    threads: usize,
) -> Result<mppi_tasks::TaskController, MppiError> {
    let config = problem_config(task, problem, threads);
    let mut ctrl = controller(task, &config)?;
    if let Some(first) = task.initial_plan(problem.horizon) {
        ctrl.set_plan(&first)?;
    }
    Ok(ctrl)
}

/// How many EM iterations of the controller's last step ran on its thread pool.
fn pool_iterations(ctrl: &mppi_tasks::TaskController) -> u64 {
    ctrl.report()
        .iterations
        .iter()
        .filter(|i| i.parallel)
        .count() as u64
}

/// A [`Measurement`] from its timed blocks.
fn measurement(problem: &Problem, threads: usize, timed: Timed) -> Measurement {
    let Timed {
        calls_per_block,
        block_ms,
        counts,
        pool_iterations,
    } = timed;
    let (median_ms, min_ms, max_ms) = block_stats(&block_ms);
    let work = (problem.samples * problem.horizon) as f64;
    Measurement {
        problem: problem.label.clone(),
        task: problem.task.to_string(),
        samples: problem.samples,
        horizon: problem.horizon,
        precision: precision_name(problem.precision).to_string(),
        normals: normals_name(problem.normals).to_string(),
        threads,
        calls_per_block,
        median_ms,
        min_ms,
        max_ms,
        sample_steps_per_s: work / (median_ms * 1e-3),
        ns_per_sample_step: median_ms * 1e6 / work,
        timed_steps: calls_per_block * block_ms.len(),
        block_ms,
        allocations: counts.allocations,
        allocated_bytes: counts.bytes,
        pool_iterations,
        reference: None,
        ratio_to_reference: None,
    }
}

/// Time `Controller::act` on `problem` at every thread count of `threads` and, with
/// `reference`, its reference kernel (1 thread), with their blocks interleaved.
fn measure_problem(
    problem: &Problem,
    threads: &[usize],
    reference: bool,
    plan: &Plan,
) -> Result<(Vec<Measurement>, Option<ReferenceTiming>), CliError> {
    let task = find_task(problem.task)?;
    let mut ctrls = threads
        .iter()
        .map(|&n| build_controller(task.as_ref(), problem, n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bench_error(problem, &e))?;
    let mut kernel = if reference {
        let kind = ReferenceProblem::from_task_name(problem.task).ok_or_else(|| {
            CliError::runtime(format!("`{}` has no reference kernel", problem.task))
        })?;
        let config = problem_config(task.as_ref(), problem, 1);
        Some(ReferenceKernel::new(kind, &config).map_err(|e| bench_error(problem, &e))?)
    } else {
        None
    };
    let x = task.initial_state();
    type Call<'a> = Box<dyn FnMut() -> Result<u64, CliError> + 'a>;
    let mut calls: Vec<Call<'_>> = ctrls
        .iter_mut()
        .map(|ctrl| {
            let x = &x;
            Box::new(move || {
                let plan = ctrl
                    .act(black_box(x))
                    .map_err(|e| bench_error(problem, &e))?;
                black_box(plan[0]);
                Ok(pool_iterations(ctrl))
            }) as Call<'_>
        })
        .collect();
    if let Some(kernel) = kernel.as_mut() {
        let x = &x;
        calls.push(Box::new(move || {
            black_box(kernel.step(black_box(x))[0]);
            Ok(0)
        }));
    }
    let mut refs: Vec<&mut dyn FnMut() -> Result<u64, CliError>> =
        calls.iter_mut().map(|c| c.as_mut() as _).collect();
    let mut timed = time_interleaved(plan, &mut refs)?;
    drop(refs);
    drop(calls);
    let reference = kernel.is_some().then(|| {
        let r = timed.pop().expect("the reference's timing");
        let (median_ms, min_ms, max_ms) = block_stats(&r.block_ms);
        ReferenceTiming {
            calls_per_block: r.calls_per_block,
            median_ms,
            min_ms,
            max_ms,
            block_ms: r.block_ms,
        }
    });
    let measured = threads
        .iter()
        .zip(timed)
        .map(|(&n, t)| measurement(problem, n, t))
        .collect();
    Ok((measured, reference))
}

/// Give every measurement of a problem with a timed reference kernel that timing, and the
/// 1-thread rows their ratio library / reference.
fn attach_references(measurements: &mut [Measurement], timings: &[(String, ReferenceTiming)]) {
    for m in measurements {
        if let Some((_, r)) = timings.iter().find(|(label, _)| *label == m.problem) {
            m.reference = Some(r.clone());
            m.ratio_to_reference = (m.threads == 1).then(|| m.median_ms / r.median_ms);
        }
    }
}

/// Median of sorted, non-empty data.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

/// Least squares `y = a + b x`: `(a, b, r²)`.
fn linear_fit(points: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= 0.0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let r2 = if syy > 0.0 {
        (sxy * sxy) / (sxx * syy)
    } else {
        1.0
    };
    (a, b, r2)
}

/// The swept size of `m`: `K` for `"samples"`, else `T`.
fn swept(m: &Measurement, variable: &str) -> usize {
    if variable == "samples" {
        m.samples
    } else {
        m.horizon
    }
}

/// `(size, median ms)` of one thread count of a sweep, sorted by size.
fn curve(measurements: &[Measurement], variable: &str, threads: usize) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = measurements
        .iter()
        .filter(|m| m.threads == threads)
        .map(|m| (swept(m, variable) as f64, m.median_ms))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// `(size, min ms, max ms)` over the timed blocks of one thread count of a sweep, sorted by
/// size (the error bars of [`curve`]).
fn spread(measurements: &[Measurement], variable: &str, threads: usize) -> Vec<(f64, f64, f64)> {
    let mut bars: Vec<(f64, f64, f64)> = measurements
        .iter()
        .filter(|m| m.threads == threads)
        .map(|m| (swept(m, variable) as f64, m.min_ms, m.max_ms))
        .collect();
    bars.sort_by(|a, b| a.0.total_cmp(&b.0));
    bars
}

/// The error bars of the measured curves of [`sweep_lines`], in the same order.
fn sweep_bars(s: &Sweep, threads: &[usize]) -> Vec<Vec<(f64, f64, f64)>> {
    threads
        .iter()
        .map(|&n| spread(&s.measurements, &s.variable, n))
        .collect()
}

fn sweep(
    task: &str,
    variable: &str,
    fixed: &str,
    measurements: Vec<Measurement>,
    threads: &[usize],
) -> Sweep {
    let fits = threads
        .iter()
        .map(|&n| {
            let points = curve(&measurements, variable, n);
            let upper = &points[points.len() / 2..];
            let logs: Vec<(f64, f64)> = upper.iter().map(|p| (p.0.ln(), p.1.ln())).collect();
            let (_, log_log_slope, _) = linear_fit(&logs);
            let (intercept_ms, slope_ms, r_squared) = linear_fit(&points);
            Fit {
                threads: n,
                log_log_slope,
                intercept_ms,
                slope_ms,
                r_squared,
            }
        })
        .collect();
    Sweep {
        task: task.to_string(),
        variable: variable.to_string(),
        fixed: fixed.to_string(),
        measurements,
        fits,
    }
}

/// Describe the machine: CPU, cores, OS, compiler, SIMD features, build.
#[must_use]
pub fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let (cpu_features, compiled_features) = simd_features();
    Machine {
        cpu,
        logical_cores: std::thread::available_parallelism().map_or(1, usize::from),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        rustc,
        cpu_features,
        compiled_features,
        build: if cfg!(debug_assertions) {
            "debug".into()
        } else {
            "release".into()
        },
    }
}

/// `(detected at run time, enabled at compile time)`.
#[cfg(target_arch = "x86_64")]
fn simd_features() -> (Vec<String>, Vec<String>) {
    let mut detected = vec![];
    for (name, present) in [
        ("sse4.2", std::arch::is_x86_feature_detected!("sse4.2")),
        ("avx", std::arch::is_x86_feature_detected!("avx")),
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ("fma", std::arch::is_x86_feature_detected!("fma")),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
    ] {
        if present {
            detected.push(name.to_string());
        }
    }
    let mut compiled = vec![];
    for (name, on) in [
        ("sse4.2", cfg!(target_feature = "sse4.2")),
        ("avx", cfg!(target_feature = "avx")),
        ("avx2", cfg!(target_feature = "avx2")),
        ("fma", cfg!(target_feature = "fma")),
        ("avx512f", cfg!(target_feature = "avx512f")),
    ] {
        if on {
            compiled.push(name.to_string());
        }
    }
    (detected, compiled)
}

/// `(detected at run time, enabled at compile time)`.
#[cfg(not(target_arch = "x86_64"))]
fn simd_features() -> (Vec<String>, Vec<String>) {
    (vec![], vec![])
}

/// A duration given in milliseconds, in a readable unit.
#[must_use]
pub fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() {
        "n/a".into()
    } else if ms.abs() < 1.0 {
        format!("{:.1} µs", ms * 1e3)
    } else if ms.abs() < 100.0 {
        format!("{ms:.3} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// A rate with an SI prefix (`39.5 M`).
#[must_use]
pub fn fmt_rate(per_s: f64) -> String {
    if !per_s.is_finite() {
        "n/a".into()
    } else if per_s >= 1e9 {
        format!("{:.2} G", per_s / 1e9)
    } else if per_s >= 1e6 {
        format!("{:.1} M", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}

fn range_text(m: &Measurement) -> String {
    format!("{} – {}", fmt_ms(m.min_ms), fmt_ms(m.max_ms))
}

fn machine_lines(m: &Machine) -> Vec<(&'static str, String)> {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(" ")
        }
    };
    vec![
        (
            "cpu",
            format!("{} ({} logical cores)", m.cpu, m.logical_cores),
        ),
        ("os", m.os.clone()),
        ("rustc", m.rustc.clone()),
        (
            "simd",
            format!(
                "cpu has: {}; compiled in: {}",
                list(&m.cpu_features),
                list(&m.compiled_features)
            ),
        ),
        (
            "build",
            if m.build == "debug" {
                "debug (debug assertions on: build with --release for meaningful numbers)".into()
            } else {
                m.build.clone()
            },
        ),
    ]
}

/// The reference kernel's median time per step, or `–`.
fn reference_text(m: &Measurement) -> String {
    m.reference
        .as_ref()
        .map_or_else(|| "–".to_string(), |r| fmt_ms(r.median_ms))
}

/// The ratio library / reference (`1.18x`), or `–`.
fn ratio_text(m: &Measurement) -> String {
    m.ratio_to_reference
        .map_or_else(|| "–".to_string(), |r| format!("{r:.2}x"))
}

fn problem_rows(measurements: &[Measurement]) -> Vec<Vec<String>> {
    measurements
        .iter()
        .map(|m| {
            vec![
                m.task.clone(),
                m.samples.to_string(),
                m.horizon.to_string(),
                if m.normals == "fast" {
                    format!("{} fast", m.precision)
                } else {
                    m.precision.clone()
                },
                m.threads.to_string(),
                fmt_ms(m.median_ms),
                range_text(m),
                fmt_rate(m.sample_steps_per_s),
                format!("{:.2}", m.ns_per_sample_step),
                reference_text(m),
                ratio_text(m),
                allocations_text(m),
            ]
        })
        .collect()
}

/// `allocations/steps` of a row: the allocations counted during its timed steps.
fn allocations_text(m: &Measurement) -> String {
    format!("{}/{}", m.allocations, m.timed_steps)
}

/// Column of a row's allocations over its timed steps.
const ALLOCATIONS_HEADER: &str = "ALLOCS/STEPS";

const PROBLEM_HEADER: [&str; 12] = [
    "PROBLEM",
    "K",
    "T",
    "FLOAT",
    "THREADS",
    "MEDIAN/STEP",
    "MIN – MAX",
    "SAMPLE-STEPS/S",
    "NS/SAMPLE-STEP",
    REFERENCE_HEADER,
    RATIO_HEADER,
    ALLOCATIONS_HEADER,
];
const PROBLEM_NUMERIC: [bool; 12] = [
    false, true, true, false, true, true, true, true, true, true, true, true,
];
/// Column of the reference kernel's median time per step.
const REFERENCE_HEADER: &str = "REFERENCE (1 THREAD)";
/// Column of the ratio library / reference.
const RATIO_HEADER: &str = "RATIO LIBRARY/REFERENCE";

/// A sweep as a table: one row per size; per thread count a median, a min – max, a rate and
/// an allocations column.
fn sweep_rows(s: &Sweep, threads: &[usize]) -> (Vec<String>, Vec<Vec<String>>) {
    let size_name = if s.variable == "samples" { "K" } else { "T" };
    let mut header = vec![size_name.to_string()];
    for &n in threads {
        header.push(format!("{n} THREAD{} MEDIAN", plural(n).to_uppercase()));
        header.push("MIN – MAX".into());
        header.push("SAMPLE-STEPS/S".into());
        header.push(ALLOCATIONS_HEADER.into());
    }
    let mut sizes: Vec<usize> = s
        .measurements
        .iter()
        .map(|m| swept(m, &s.variable))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    // the reference columns only where the sweep has a timed reference kernel
    let with_reference = s.measurements.iter().any(|m| m.reference.is_some());
    if with_reference {
        header.push(REFERENCE_HEADER.into());
        header.push(RATIO_HEADER.into());
    }
    let rows = sizes
        .iter()
        .map(|&size| {
            let mut row = vec![size.to_string()];
            let at_size: Vec<&Measurement> = s
                .measurements
                .iter()
                .filter(|m| swept(m, &s.variable) == size)
                .collect();
            for &n in threads {
                match at_size.iter().find(|m| m.threads == n) {
                    Some(m) => {
                        row.push(fmt_ms(m.median_ms));
                        row.push(range_text(m));
                        row.push(fmt_rate(m.sample_steps_per_s));
                        row.push(allocations_text(m));
                    }
                    None => row.extend(std::iter::repeat_n("–".to_string(), 4)),
                }
            }
            if with_reference {
                let timed = at_size.iter().find(|m| m.reference.is_some());
                row.push(timed.map_or_else(|| "–".to_string(), |m| reference_text(m)));
                let ratio = at_size.iter().find(|m| m.ratio_to_reference.is_some());
                row.push(ratio.map_or_else(|| "–".to_string(), |m| ratio_text(m)));
            }
            row
        })
        .collect();
    (header, rows)
}

fn fit_lines(s: &Sweep) -> String {
    let size = if s.variable == "samples" { "K" } else { "T" };
    let mut text = String::new();
    for f in &s.fits {
        let _ = writeln!(
            text,
            "  {} thread{}: log-log slope {:.2} over the larger half (1 = linear); \
             time ≈ {} + {} · {size} (r² = {:.4})",
            f.threads,
            plural(f.threads),
            f.log_log_slope,
            fmt_ms(f.intercept_ms),
            fmt_ms(f.slope_ms),
            f.r_squared
        );
    }
    text
}

/// What the reference columns mean (printed under the problem table).
const REFERENCE_NOTE: &str = "reference: the hand-fused kernel of the same math and the same \
     random numbers (mppi_tasks::reference, bit-identical plans),\n           1 thread, timed the \
     same way in blocks interleaved with the library's; ratio = library median / reference \
     median at 1 thread";

/// What the speed-up lines are (their heading).
const SPEEDUP_TITLE: &str = "speed-up over the first thread count (its median / this median; the \
     thread counts' blocks interleaved), and the share of iterations the planner ran on its pool \
     (parallel = auto: where measured faster)";

/// One line per problem and extra thread count: `pendulum T=30 K=1000: 2 threads 1.08x (pool
/// 0% of iterations)`.
fn speedup_lines(problems: &[Measurement], threads: &[usize]) -> Vec<String> {
    let Some(&first) = threads.first() else {
        return vec![];
    };
    let mut lines = vec![];
    for base in problems.iter().filter(|m| m.threads == first) {
        for m in problems
            .iter()
            .filter(|m| m.problem == base.problem && m.threads != first)
        {
            let share = m.pool_iterations as f64 / m.timed_steps.max(1) as f64;
            lines.push(format!(
                "{}: {} thread{} {:.2}x (pool {:.0}% of iterations)",
                m.problem,
                m.threads,
                plural(m.threads),
                base.median_ms / m.median_ms,
                100.0 * share.min(1.0)
            ));
        }
    }
    lines
}

/// What the allocation counts are (the heading of their lines).
const ALLOCATIONS_TITLE: &str = "allocations per control step, counted on every thread during \
     the timed steps (warm-up excluded)";

/// One line per thread count: `2 threads: 0.0159 (21 allocations, 31920 B, in 1320 steps)`.
fn allocation_lines(totals: &[AllocationTotal]) -> Vec<String> {
    let mut lines: Vec<String> = totals
        .iter()
        .map(|t| {
            let per_step = if t.allocations == 0 {
                "0".to_string()
            } else if t.per_step >= 1e-3 {
                format!("{:.4}", t.per_step)
            } else {
                format!("{:.2e}", t.per_step)
            };
            format!(
                "{} thread{}: {per_step} ({} allocations, {} B, in {} steps)",
                t.threads,
                plural(t.threads),
                t.allocations,
                t.bytes,
                t.steps
            )
        })
        .collect();
    if totals.iter().any(|t| t.threads > 1 && t.allocations > 0) {
        lines.push("(2+ threads: rayon's job queue, see docs/architecture.md)".into());
    }
    lines
}

/// The text `mppi bench` prints.
#[must_use]
pub fn render(r: &BenchReport) -> String {
    let mut s = String::new();
    for (key, value) in machine_lines(&r.machine) {
        let _ = writeln!(s, "{key:<6} {value}");
    }
    let _ = writeln!(
        s,
        "\none control step (Controller::act: shift + 1 EM iteration, diagnostics = basic): \
         median over {} blocks of ≥ {} ms{}",
        r.blocks,
        r.min_block_ms,
        if r.quick { " (--quick)" } else { "" }
    );
    s.push_str(&table(
        &PROBLEM_HEADER,
        &problem_rows(&r.problems),
        &PROBLEM_NUMERIC,
    ));
    let _ = writeln!(s, "{}", REFERENCE_NOTE);
    let speedups = speedup_lines(&r.problems, &r.threads);
    if !speedups.is_empty() {
        let _ = writeln!(s, "\n{SPEEDUP_TITLE}:");
        for line in speedups {
            let _ = writeln!(s, "  {line}");
        }
    }
    for (title, sweep) in [("K sweep", &r.k_sweep), ("T sweep", &r.t_sweep)] {
        let _ = writeln!(s, "\n{title}: {}, {}", sweep.task, sweep.fixed);
        let (header, rows) = sweep_rows(sweep, &r.threads);
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        s.push_str(&table(&header, &rows, &vec![true; header.len()]));
        s.push_str(&fit_lines(sweep));
    }
    let _ = writeln!(s, "\n{ALLOCATIONS_TITLE}:");
    for line in allocation_lines(&r.allocations) {
        let _ = writeln!(s, "  {line}");
    }
    let _ = writeln!(s, "wall time: {:.1} s", r.wall_time_s);
    s
}

/// A column name for Markdown: lower case, except the sizes `K` and `T`.
fn md_header(h: &str) -> String {
    if h.len() == 1 {
        h.to_string()
    } else {
        h.to_lowercase()
    }
}

/// A Markdown table.
fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n", header.join(" | "));
    let _ = writeln!(s, "|{}", " --- |".repeat(header.len()));
    for row in rows {
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s
}

/// `bench.md`: the same tables in Markdown, with the plots.
#[must_use]
pub fn markdown(r: &BenchReport) -> String {
    let mut s = String::from("# mppi bench\n\n");
    for (key, value) in machine_lines(&r.machine) {
        let _ = writeln!(s, "- {key}: {value}");
    }
    let _ = writeln!(
        s,
        "\nOne control step (`Controller::act`: warm-start shift + one EM iteration, \
         `diagnostics = basic`): median time per step over {} blocks of at least {} ms, \
         min – max over the blocks{}.\n",
        r.blocks,
        r.min_block_ms,
        if r.quick { " (`--quick`)" } else { "" }
    );
    let header: Vec<String> = PROBLEM_HEADER.iter().map(|h| md_header(h)).collect();
    s.push_str(&markdown_table(&header, &problem_rows(&r.problems)));
    let _ = writeln!(
        s,
        "\n{}",
        REFERENCE_NOTE
            .replace("mppi_tasks::reference", "`mppi_tasks::reference`")
            .replace("\n           ", " ")
    );
    let speedups = speedup_lines(&r.problems, &r.threads);
    if !speedups.is_empty() {
        let mut title = SPEEDUP_TITLE.to_string();
        title[..1].make_ascii_uppercase();
        let _ = writeln!(s, "\n{title}:\n");
        for line in speedups {
            let _ = writeln!(s, "- {line}");
        }
    }
    for (title, sweep, stem) in [
        ("K sweep", &r.k_sweep, "bench_scaling_k"),
        ("T sweep", &r.t_sweep, "bench_scaling_t"),
    ] {
        let _ = writeln!(s, "\n## {title}: `{}`, {}\n", sweep.task, sweep.fixed);
        let (header, rows) = sweep_rows(sweep, &r.threads);
        let header: Vec<String> = header.iter().map(|h| md_header(h)).collect();
        s.push_str(&markdown_table(&header, &rows));
        s.push('\n');
        for line in fit_lines(sweep).lines() {
            let _ = writeln!(s, "- {}", line.trim());
        }
        let _ = writeln!(s, "\n![{title}]({stem}.png)");
    }
    let mut title = ALLOCATIONS_TITLE.to_string();
    title[..1].make_ascii_uppercase();
    let _ = writeln!(s, "\n{title}:\n");
    for line in allocation_lines(&r.allocations) {
        let _ = writeln!(s, "- {line}");
    }
    s
}

/// Write `bench.json` and `bench.md` into `dir` (which must exist).
pub fn write_bench_files(dir: &Path, report: &BenchReport) -> anyhow::Result<Vec<PathBuf>> {
    let mut json = serde_json::to_string_pretty(report).context("cannot serialize the report")?;
    json.push('\n');
    let mut written = vec![];
    for (name, contents) in [("bench.json", json), ("bench.md", markdown(report))] {
        let path = dir.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The measured curves of a sweep, one per thread count, then one dashed reference line.
fn sweep_lines(s: &Sweep, threads: &[usize], log_log: bool) -> Vec<PlotLine> {
    let mut lines: Vec<PlotLine> = threads
        .iter()
        .map(|&n| PlotLine {
            label: format!(
                "{n} thread{} (median; bars: min–max over blocks)",
                plural(n)
            ),
            points: curve(&s.measurements, &s.variable, n),
            reference: false,
        })
        .collect();
    let Some(first) = lines.first().map(|l| l.points.clone()) else {
        return lines;
    };
    let size = if s.variable == "samples" { "K" } else { "T" };
    if log_log {
        // time ∝ K through the largest size of the first curve
        if let Some(&(x_end, y_end)) = first.last() {
            let points = first.iter().map(|&(x, _)| (x, y_end * x / x_end)).collect();
            lines.push(PlotLine {
                label: format!("∝ {size} (linear, through the largest {size})"),
                points,
                reference: true,
            });
        }
    } else if let Some(fit) = s.fits.first() {
        let points = first
            .iter()
            .map(|&(x, _)| (x, fit.intercept_ms + fit.slope_ms * x))
            .collect();
        lines.push(PlotLine {
            label: format!(
                "least-squares line, {} thread{} (r² = {:.4})",
                fit.threads,
                plural(fit.threads),
                fit.r_squared
            ),
            points,
            reference: true,
        });
    }
    lines
}

/// Write `bench_scaling_k` (log-log) and `bench_scaling_t` (linear axes) as PNG and SVG.
pub fn write_bench_plots(dir: &Path, r: &BenchReport) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = write_line_plot_with_bars(
        dir,
        "bench_scaling_k",
        &format!(
            "Time per control step vs samples K ({}, {})",
            r.k_sweep.task, r.k_sweep.fixed
        ),
        "samples K (log)",
        "median time per step [ms] (log)",
        true,
        &sweep_lines(&r.k_sweep, &r.threads, true),
        &sweep_bars(&r.k_sweep, &r.threads),
    )?;
    written.extend(write_line_plot_with_bars(
        dir,
        "bench_scaling_t",
        &format!(
            "Time per control step vs horizon T ({}, {})",
            r.t_sweep.task, r.t_sweep.fixed
        ),
        "horizon T",
        "median time per step [ms]",
        false,
        &sweep_lines(&r.t_sweep, &r.threads, false),
        &sweep_bars(&r.t_sweep, &r.threads),
    )?);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(samples: usize, horizon: usize, threads: usize, ms: f64) -> Measurement {
        Measurement {
            problem: format!("x T={horizon} K={samples}"),
            task: "x".into(),
            samples,
            horizon,
            precision: "f64".into(),
            normals: "exact".into(),
            threads,
            calls_per_block: 1,
            median_ms: ms,
            min_ms: ms,
            max_ms: ms,
            sample_steps_per_s: (samples * horizon) as f64 / (ms * 1e-3),
            ns_per_sample_step: ms * 1e6 / (samples * horizon) as f64,
            block_ms: vec![ms],
            timed_steps: 1,
            allocations: 0,
            allocated_bytes: 0,
            pool_iterations: 0,
            reference: None,
            ratio_to_reference: None,
        }
    }

    #[test]
    fn fits_recover_a_line() {
        let (a, b, r2) = linear_fit(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]);
        assert!((a - 1.0).abs() < 1e-12 && (b - 2.0).abs() < 1e-12 && (r2 - 1.0).abs() < 1e-12);
        let ms: Vec<Measurement> = [128, 256, 512, 1024]
            .iter()
            .flat_map(|&k| {
                [
                    m(k, 100, 1, 0.01 * k as f64),
                    m(k, 100, 2, 0.005 * k as f64),
                ]
            })
            .collect();
        let s = sweep("x", "samples", "T = 100", ms, &[1, 2]);
        assert_eq!(s.fits.len(), 2);
        for f in &s.fits {
            assert!((f.log_log_slope - 1.0).abs() < 1e-9, "{f:?}");
            assert!(f.intercept_ms.abs() < 1e-9, "{f:?}");
        }
        let (header, rows) = sweep_rows(&s, &[1, 2]);
        assert_eq!(header.len(), 9);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0][0], "128");
        assert_eq!(
            (header[4].as_str(), rows[0][4].as_str()),
            ("ALLOCS/STEPS", "0/1")
        );
    }

    #[test]
    fn units_are_readable() {
        assert_eq!(fmt_ms(0.7612), "761.2 µs");
        assert_eq!(fmt_ms(5.8), "5.800 ms");
        assert_eq!(fmt_ms(250.0), "250.0 ms");
        assert_eq!(fmt_ms(-2.9078), "-2.908 ms");
        assert_eq!(fmt_rate(39.5e6), "39.5 M");
        assert_eq!(fmt_rate(1.5e9), "1.50 G");
        assert_eq!(median(&[1.0, 2.0, 10.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 10.0]), 2.5);
    }

    #[test]
    fn references_attach_to_their_problem_and_ratio_only_at_one_thread() {
        let timing = |ms: f64| ReferenceTiming {
            calls_per_block: 1,
            median_ms: ms,
            min_ms: ms,
            max_ms: ms,
            block_ms: vec![ms],
        };
        let mut ms = vec![
            m(2048, 100, 1, 3.0),
            m(2048, 100, 2, 2.0),
            m(1024, 100, 1, 1.5),
        ];
        attach_references(&mut ms, &[("x T=100 K=2048".to_string(), timing(2.5))]);
        assert_eq!(ms[0].reference.as_ref().map(|r| r.median_ms), Some(2.5));
        assert!((ms[0].ratio_to_reference.unwrap() - 1.2).abs() < 1e-12);
        assert!(ms[1].reference.is_some() && ms[1].ratio_to_reference.is_none());
        assert!(ms[2].reference.is_none() && ms[2].ratio_to_reference.is_none());
        let rows = problem_rows(&ms);
        assert_eq!(rows[0].len(), PROBLEM_HEADER.len());
        assert_eq!(
            (rows[0][9].as_str(), rows[0][10].as_str()),
            ("2.500 ms", "1.20x")
        );
        assert_eq!((rows[1][10].as_str(), rows[2][9].as_str()), ("–", "–"));
        assert_eq!(rows[0][3], "f64");
        // the sweep table gets the two columns, filled at the timed size only
        let s = sweep("x", "samples", "T = 100", ms, &[1, 2]);
        let (header, rows) = sweep_rows(&s, &[1, 2]);
        assert_eq!(header.len(), 11);
        assert_eq!(header[9], REFERENCE_HEADER);
        let row = |k: &str| rows.iter().find(|r| r[0] == k).unwrap().clone();
        assert_eq!(
            (row("2048")[9].as_str(), row("2048")[10].as_str()),
            ("2.500 ms", "1.20x")
        );
        assert_eq!(
            (row("1024")[9].as_str(), row("1024")[10].as_str()),
            ("–", "–")
        );
        // without a reference the sweep table keeps its columns
        let t = sweep("x", "horizon", "K = 1", vec![m(1, 10, 1, 1.0)], &[1]);
        assert_eq!(sweep_rows(&t, &[1]).0.len(), 5);
    }

    #[test]
    fn allocations_are_summed_per_thread_count() {
        let with = |threads: usize, steps: usize, allocations: u64| Measurement {
            timed_steps: steps,
            allocations,
            allocated_bytes: 1520 * allocations,
            pool_iterations: 0,
            ..m(1000, 30, threads, 0.1)
        };
        let rows = [
            with(1, 400, 0),
            with(2, 500, 7),
            with(1, 100, 0),
            with(2, 100, 1),
        ];
        let refs: Vec<&Measurement> = rows.iter().collect();
        let totals = allocation_totals(&refs, &[1, 2, 4]);
        assert_eq!(totals.len(), 3);
        assert_eq!((totals[0].steps, totals[0].allocations), (500, 0));
        assert_eq!(
            (totals[1].steps, totals[1].allocations, totals[1].bytes),
            (600, 8, 12_160)
        );
        assert_eq!((totals[2].steps, totals[2].per_step), (0, 0.0));
        let lines = allocation_lines(&totals);
        assert_eq!(lines[0], "1 thread: 0 (0 allocations, 0 B, in 500 steps)");
        assert_eq!(
            lines[1],
            "2 threads: 0.0133 (8 allocations, 12160 B, in 600 steps)"
        );
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[3].contains("rayon"));
        assert_eq!(allocations_text(&rows[1]), "7/500");
        // without multi-thread allocations there is no note
        assert_eq!(allocation_lines(&totals[..1]).len(), 1);
    }

    #[test]
    fn suite_sizes() {
        let full = Suite::new(false);
        let ks: Vec<usize> = full.k_sweep.iter().map(|p| p.samples).collect();
        assert_eq!(ks, [128, 256, 512, 1024, 2048, 4096, 8192, 16384]);
        assert!(full.k_sweep.iter().all(|p| p.horizon == 100));
        // five problems, each in float64, float32 and float32 with fast normals
        assert_eq!(full.problems.len(), 15);
        assert!(Suite::new(true).len() < full.len());
        // every fixed problem has a reference kernel, in its precision
        let labels = |s: &Suite| -> Vec<String> {
            s.reference_problems()
                .into_iter()
                .map(|p| p.label)
                .collect()
        };
        let full_refs = labels(&full);
        assert_eq!(full_refs.len(), 15);
        assert_eq!(full_refs[0], "pendulum T=30 K=1000");
        assert_eq!(full_refs[1], "pendulum T=30 K=1000 f32");
        assert_eq!(full_refs[2], "pendulum T=30 K=1000 f32 fast normals");
        assert_eq!(full_refs[12], "diff_drive T=100 K=2048");
        assert_eq!(labels(&Suite::new(true)), full_refs);
        let machine = machine();
        assert!(machine.logical_cores >= 1);
    }
}
