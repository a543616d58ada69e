//! A real-time plant loop: the plant ticks at a fixed rate against the wall clock while the
//! planner runs on its own thread (what MPPI-Generic's `BasePlant` and MuJoCo MPC's agent do).
//!
//! [`run_episode`](crate::run_episode) steps the controller in lock step: the plant waits for
//! every plan. [`run_realtime`] does not wait:
//!
//! - **The plant (actuator) side** runs on the calling thread. Tick `j` is scheduled at
//!   `t₀ + j·P` (`P = 1 / rate`, absolute, so nothing drifts); the loop sleeps until then
//!   (optionally spinning the last [`RealtimeOptions::spin`]), takes the newest published plan
//!   without blocking (it only `try_lock`s), applies the control of the plan in use indexed by
//!   the ticks elapsed since the tick the plan starts at (its last control held past its end),
//!   publishes the measured state with the applied control, and advances the plant one step
//!   with [`Task::plant_step`]. It records state, control, stage cost and the tick's timing.
//! - **The planner** runs on a thread of its own. For every new measurement `x_m` (tick `m`)
//!   it predicts the state at tick `m + L`, when its plan can first act (`L` = the latency in
//!   ticks), by rolling the task's model [`Task::dynamics`] forward through the controls already
//!   committed for ticks `m .. m + L − 1` (the applied `u_m`, then the plans it published
//!   before), plans from that state with the deadline ([`mppi::Controller::set_deadline`]; the first
//!   EM iteration always runs), and publishes the plan tagged with its start tick `m + L`. The
//!   warm start is shifted by the ticks between consecutive plans
//!   ([`mppi::Controller::skip_steps`]).
//!   It takes the newest measurement as soon as it is free, except one that is already too
//!   old for a plan of the last planning time to arrive in time when a plan from the next
//!   measurement would: then it waits for that tick (never twice in a row), so a planner a
//!   little faster than the period stays in step with the ticks instead of always finishing
//!   just late.
//!
//! A plan that is late or never comes is a **miss**: the plant executes the shifted previous
//! plan (its next entry) and counts the tick. Tick `j` is a miss when the plan in use is older
//! than the plan due for it (`age = j − start > 0`, or `> 1` with zero latency, where every
//! plan starts at a tick already under way); the first `max(L, 1)` ticks, before any plan from
//! the loop can arrive, run the initial plan and are never misses. A planner far slower than
//! the period never stalls the plant: the plant only ever `try_lock`s, and on shutdown the
//! planner is stopped between two EM iterations and joined.
//!
//! **Time.** One tick is one control period: the plant advances by the task's `dt` of
//! simulated time per tick, and ticks are paced at `rate_hz` of wall-clock time. The default
//! rate `1 / dt` is real time; another rate is a real-time factor of `rate · dt` (pendulum,
//! `dt = 0.05 s`, at 100 Hz runs 5× faster than real time). The deadline and the latency are
//! wall-clock durations; the latency is rounded up to whole ticks.
//!
//! **Reproducibility.** Plans use the controller's deterministic random streams, so the same
//! seed gives the same plan for the same sequence of (planned-from state, start tick). Which
//! measurements the planner sees, how many EM iterations fit the deadline and which ticks miss
//! depend on timing, so a real-time run is *not* bit-reproducible (lock-step episodes are).
//!
//! Memory is allocated before the clock starts and is proportional to the number of ticks
//! (states, controls, per-tick and per-plan records; the plans themselves only with
//! [`RealtimeOptions::record_plans`]).

use std::collections::VecDeque;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use mppi::{Dynamics, IterStats, MppiConfig, MppiError, Observer, Planner, Status, StepReport};
use serde::Serialize;

use crate::episode::{Episode, EpisodeStats};
use crate::{Outcome, Task, TaskController, controller, judge};

/// Fraction of the period a plan may take by default.
pub const DEFAULT_DEADLINE_FRACTION: f64 = 0.8;

/// Options of [`run_realtime`].
#[derive(Debug, Clone, PartialEq)]
pub struct RealtimeOptions {
    /// Ticks (control periods) to run, at least 1.
    pub ticks: usize,
    /// Ticks per second of wall-clock time, finite and `> 0`; `None`: `1 / dt` (real time).
    pub rate_hz: Option<f64>,
    /// Planning budget per plan, `> 0`; `None`: the config's `deadline_ms` in
    /// [`run_realtime`], else [`DEFAULT_DEADLINE_FRACTION`] of the period.
    pub deadline: Option<Duration>,
    /// Latency to compensate (wall clock, rounded up to whole ticks), shorter than the
    /// horizon's duration; `None`: one period (the planner reads tick `m` and its plan acts
    /// from tick `m + 1`).
    pub latency: Option<Duration>,
    /// Initial state; `None` uses the task's.
    pub initial_state: Option<Vec<f64>>,
    /// Keep every published plan and the state it was planned from
    /// ([`RealtimeRun::plan`], [`RealtimeRun::plan_state`]): `T·m + n` numbers per plan.
    pub record_plans: bool,
    /// Busy-wait this long at the end of each sleep to cut the wake-up jitter (zero: sleep
    /// only).
    pub spin: Duration,
}

impl Default for RealtimeOptions {
    fn default() -> Self {
        RealtimeOptions {
            ticks: 100,
            rate_hz: None,
            deadline: None,
            latency: None,
            initial_state: None,
            record_plans: false,
            spin: Duration::ZERO,
        }
    }
}

/// The loop's timing, resolved from [`RealtimeOptions`] and the task.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RealtimeSettings {
    /// Ticks per second of wall-clock time.
    pub rate_hz: f64,
    /// The control period `1 / rate_hz`.
    pub period: Duration,
    /// Planning budget per plan.
    pub deadline: Duration,
    /// The latency asked for.
    pub latency: Duration,
    /// The latency in whole ticks (rounded up): plans start this many ticks after the
    /// measurement they use.
    pub latency_ticks: usize,
    /// Simulated seconds per wall-clock second: `rate_hz · dt`.
    pub real_time_factor: f64,
}

impl RealtimeOptions {
    /// Check the options against a task with time step `dt` and a planner with `horizon`
    /// steps, and resolve the defaults.
    ///
    /// Errors: `ticks = 0`, a rate that is not finite and `> 0`, a zero deadline, a latency
    /// not shorter than the horizon's duration (`horizon` periods).
    pub fn resolve(&self, dt: f64, horizon: usize) -> Result<RealtimeSettings, RealtimeError> {
        let bad = |m: String| Err(RealtimeError::Options(m));
        if self.ticks == 0 {
            return bad("a real-time run needs at least 1 tick".into());
        }
        let rate_hz = match self.rate_hz {
            Some(r) if r.is_finite() && r > 0.0 => r,
            Some(r) => {
                return bad(format!(
                    "the rate must be a finite number of Hz > 0, got {r}"
                ));
            }
            None if dt.is_finite() && dt > 0.0 => 1.0 / dt,
            None => return bad(format!("the task's dt {dt} gives no rate; set one")),
        };
        let Ok(period) = Duration::try_from_secs_f64(1.0 / rate_hz) else {
            return bad(format!(
                "the rate {rate_hz} Hz gives no representable period"
            ));
        };
        if period.is_zero() {
            return bad(format!(
                "the rate {rate_hz} Hz is too high (period below 1 ns)"
            ));
        }
        let deadline = match self.deadline {
            Some(d) if d.is_zero() => {
                return bad("the deadline must be > 0 ms".into());
            }
            Some(d) => d,
            None => period.mul_f64(DEFAULT_DEADLINE_FRACTION),
        };
        let latency = self.latency.unwrap_or(period);
        let ticks_f = latency.as_secs_f64() / period.as_secs_f64();
        // rounded up, but a latency a hair above a whole number of periods (rounding) is that
        let latency_ticks = (ticks_f - 1e-9).ceil().max(0.0) as usize;
        let horizon_s = horizon as f64 * period.as_secs_f64();
        if latency_ticks >= horizon {
            return bad(format!(
                "the latency {:.3} ms ({latency_ticks} ticks of {:.3} ms) must be shorter than \
                 the horizon's duration ({horizon} ticks = {:.3} ms)",
                latency.as_secs_f64() * 1e3,
                period.as_secs_f64() * 1e3,
                horizon_s * 1e3
            ));
        }
        Ok(RealtimeSettings {
            rate_hz,
            period,
            deadline,
            latency,
            latency_ticks,
            real_time_factor: rate_hz * dt,
        })
    }
}

/// Why [`run_realtime`] stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum RealtimeError {
    /// An option is out of range (the message says which and what is valid).
    Options(String),
    /// Building the controller, the initial plan or the plant failed (invalid config, wrong
    /// initial state, non-finite plant state).
    Mppi(MppiError),
    /// The planner failed; the plant loop stopped at `tick`.
    Planner {
        /// The tick at which the plant loop noticed.
        tick: usize,
        /// The planner's error.
        error: MppiError,
    },
    /// The planner thread panicked (a bug in a model or the library).
    PlannerPanicked(String),
}

impl From<MppiError> for RealtimeError {
    fn from(e: MppiError) -> Self {
        RealtimeError::Mppi(e)
    }
}

impl fmt::Display for RealtimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RealtimeError::Options(m) => write!(f, "invalid real-time option: {m}"),
            RealtimeError::Mppi(e) => e.fmt(f),
            RealtimeError::Planner { tick, error } => {
                write!(
                    f,
                    "the planner failed (plant stopped at tick {tick}): {error}"
                )
            }
            RealtimeError::PlannerPanicked(m) => write!(f, "the planner thread panicked: {m}"),
        }
    }
}

impl std::error::Error for RealtimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RealtimeError::Mppi(e) | RealtimeError::Planner { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

mod board;
mod records;

use board::*;
pub use records::{PlanRecord, RealtimeRun, TickRecord, TimingStats};

/// Roll `dynamics` forward from `x` through `controls` (`k` rows of `m`, one per tick) and
/// write the state after the last row into `out` (`x` itself when `controls` is empty):
/// the latency compensation's prediction. `scratch` has `n` entries.
///
/// Errors on mismatched lengths or a non-finite predicted state.
pub fn predict_state(
    dynamics: &dyn Dynamics,
    x: &[f64],
    controls: &[f64],
    out: &mut [f64],
    scratch: &mut [f64],
) -> Result<(), MppiError> {
    let (n, m) = (dynamics.state_dim(), dynamics.control_dim());
    for (what, expected, got) in [
        ("state", n, x.len()),
        ("predicted state", n, out.len()),
        ("prediction scratch", n, scratch.len()),
    ] {
        if got != expected {
            return Err(MppiError::DimensionMismatch {
                what,
                expected,
                got,
            });
        }
    }
    if m == 0 || !controls.len().is_multiple_of(m) {
        return Err(MppiError::DimensionMismatch {
            what: "committed controls (a multiple of the control dimension)",
            expected: m * (controls.len() / m.max(1)),
            got: controls.len(),
        });
    }
    out.copy_from_slice(x);
    for u in controls.chunks_exact(m) {
        dynamics.step(out, u, scratch);
        out.copy_from_slice(scratch);
    }
    match out.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(MppiError::NonFinite {
            what: "predicted state",
            index,
        }),
        None => Ok(()),
    }
}

/// Entry `age` of a plan of `m`-wide rows, its last row held past its end: the control a plan
/// that started `age` ticks ago applies now.
#[must_use]
pub fn plan_entry(plan: &[f64], m: usize, age: usize) -> &[f64] {
    let rows = plan.len() / m.max(1);
    let i = age.min(rows.saturating_sub(1));
    &plan[i * m..(i + 1) * m]
}

/// The control applied at `tick` given published plans `(start tick, controls)`, oldest
/// first: the newest plan that has started, at entry `tick − start` ([`plan_entry`]); `None`
/// before any plan has started. What the planner assumes the plant commits to.
#[must_use]
pub fn scheduled_control<'a>(
    plans: impl DoubleEndedIterator<Item = (usize, &'a [f64])>,
    tick: usize,
    m: usize,
) -> Option<&'a [f64]> {
    plans
        .rev()
        .find(|&(start, _)| start <= tick)
        .map(|(start, plan)| plan_entry(plan, m, tick - start))
}

/// Seconds from `t0` to `t` (negative before `t0`).
fn since(t0: Instant, t: Instant) -> f64 {
    match t.checked_duration_since(t0) {
        Some(d) => d.as_secs_f64(),
        None => -t0.duration_since(t).as_secs_f64(),
    }
}

/// Run `task` in real time for `options.ticks` ticks with `config`: the plant on the calling
/// thread at a fixed rate, the planner on its own thread (see the [module](self) docs).
///
/// The controller is built like [`run_episode`](crate::run_episode)'s (with the task's initial
/// plan); the deadline is `options.deadline`, else the config's `deadline_ms`, else
/// [`DEFAULT_DEADLINE_FRACTION`] of the period.
pub fn run_realtime(
    task: &dyn Task,
    config: &MppiConfig,
    options: &RealtimeOptions,
) -> Result<RealtimeRun, RealtimeError> {
    let mut ctrl = controller(task, config)?;
    if let Some(plan) = task.initial_plan(config.horizon) {
        ctrl.set_plan(&plan)?;
    }
    let mut options = options.clone();
    if options.deadline.is_none()
        && let Some(ms) = config.deadline_ms
    {
        options.deadline = Duration::try_from_secs_f64(ms / 1e3).ok();
    }
    run_realtime_with(task, ctrl, &options)
}

/// [`run_realtime`] with a controller built by the caller (a proposal or stages of your own
/// around the task's model). Its deadline is replaced by the options'.
///
/// The initial plan is made from the initial state on the calling thread, without a deadline,
/// before the clock starts; then the planner thread starts and tick 0 is due at once.
pub fn run_realtime_with(
    task: &dyn Task,
    mut ctrl: TaskController,
    options: &RealtimeOptions,
) -> Result<RealtimeRun, RealtimeError> {
    let horizon = ctrl.planner().horizon();
    let settings = options.resolve(task.dt(), horizon)?;
    let dynamics = task.dynamics();
    let (n, m) = (dynamics.state_dim(), dynamics.control_dim());
    let x0 = options
        .initial_state
        .clone()
        .unwrap_or_else(|| task.initial_state());
    if x0.len() != n {
        return Err(MppiError::DimensionMismatch {
            what: "initial state",
            expected: n,
            got: x0.len(),
        }
        .into());
    }
    let ticks = options.ticks;
    let d = horizon * m;
    let lat = settings.latency_ticks;

    // the initial plan, before the clock
    let before = Instant::now();
    ctrl.set_deadline(None);
    ctrl.act(&x0)?;
    let initial_done = Instant::now();
    ctrl.set_deadline(Some(settings.deadline));
    let initial_plan = ctrl.plan().to_vec();

    // everything the loop records, allocated now
    let mut states = Vec::with_capacity((ticks + 1) * n);
    let mut controls = Vec::with_capacity(ticks * m);
    let mut stage_costs = Vec::with_capacity(ticks);
    let mut tick_records = Vec::with_capacity(ticks);
    let mut planner_stats = EpisodeStats::default();
    add_report(&mut planner_stats, ctrl.report());
    let initial_report = ctrl.report().clone();

    let plan_slots = lat + 4;
    let shared = Shared {
        measurements: Board::new(3, || Measured {
            x: vec![0.0; n],
            u: vec![0.0; m],
        }),
        plans: Board::new(plan_slots, || PlanMsg {
            start: 0,
            controls: vec![0.0; d],
        }),
        stop: AtomicBool::new(false),
        planner_exited: AtomicBool::new(false),
    };
    // the actuator's copies of plans: the one in use and those that start later
    let mut active = (0u64, 0usize, initial_plan.clone());
    let mut pending: VecDeque<(u64, usize, Vec<f64>)> = VecDeque::with_capacity(plan_slots + 2);
    let mut spare: Vec<Vec<f64>> = (0..plan_slots + 2).map(|_| vec![0.0; d]).collect();
    let mut next_seq = 1u64;

    let mut x = x0;
    let mut next = vec![0.0; n];
    let warm = lat.max(1);
    let expected_age = usize::from(lat == 0);
    let period = settings.period;

    let initial_state = x.clone();
    let t0 = Instant::now();
    let initial_record = PlanRecord {
        measured_tick: 0,
        start_tick: 0,
        started_s: since(t0, before),
        published_s: since(t0, initial_done),
        planning_time_ms: initial_report.planning_time.as_secs_f64() * 1e3,
        status: initial_report.status,
        iterations: initial_report.iterations.len(),
        last: initial_report.last(),
        overrun: false,
    };
    let outcome = thread::scope(|scope| {
        let shared = &shared;
        let dynamics = dynamics.as_ref();
        let planner = thread::Builder::new()
            .name("mppi-planner".into())
            .spawn_scoped(scope, move || {
                let _exit = SetOnDrop(&shared.planner_exited);
                let mut out = PlannerOutput {
                    plans: Vec::with_capacity(ticks + 1),
                    plan_controls: Vec::with_capacity(if options.record_plans {
                        (ticks + 1) * d
                    } else {
                        0
                    }),
                    plan_states: Vec::with_capacity(if options.record_plans {
                        (ticks + 1) * n
                    } else {
                        0
                    }),
                    stats: planner_stats,
                };
                out.plans.push(initial_record);
                if options.record_plans {
                    out.plan_controls.extend_from_slice(&initial_plan);
                    out.plan_states.extend_from_slice(&initial_state);
                }
                let result = plan_loop(
                    shared,
                    &mut ctrl,
                    dynamics,
                    &settings,
                    t0,
                    initial_plan,
                    options.record_plans,
                    &mut out,
                );
                result.map(|()| out)
            })
            .map_err(|e| RealtimeError::PlannerPanicked(format!("cannot start: {e}")))?;
        let planner_thread = planner.thread().clone();

        let mut failure: Option<RealtimeError> = None;
        for j in 0..ticks {
            let scheduled = tick_time(t0, period, j);
            wait_until(scheduled, options.spin);
            let actual = Instant::now();
            // newest plans, never waiting
            if let Some(newest) = shared.plans.latest() {
                next_seq = next_seq.max((newest + 1).saturating_sub(plan_slots as u64));
                while next_seq <= newest {
                    let mut buf = spare.pop().unwrap_or_else(|| vec![0.0; d]);
                    let mut start = 0;
                    match shared.plans.try_read(next_seq, |p| {
                        buf.copy_from_slice(&p.controls);
                        start = p.start;
                    }) {
                        Some(true) => {
                            pending.push_back((next_seq, start as usize, buf));
                            next_seq += 1;
                        }
                        Some(false) => {
                            spare.push(buf);
                            next_seq += 1;
                        }
                        None => {
                            spare.push(buf);
                            break;
                        }
                    }
                }
            }
            while pending.front().is_some_and(|p| p.1 <= j) {
                if let Some(p) = pending.pop_front() {
                    let old = std::mem::replace(&mut active, p);
                    spare.push(old.2);
                }
            }
            let age = j - active.1;
            let u = plan_entry(&active.2, m, age);
            let miss = j >= warm && age > expected_age;
            // the measurement: the state now and the control applied in it
            shared.measurements.try_publish(j as u64, |v| {
                v.x.copy_from_slice(&x);
                v.u.copy_from_slice(u);
            });
            planner_thread.unpark();
            let stage_cost = task.stage_cost(&x, u);
            task.plant_step(&x, u, &mut next);
            states.extend_from_slice(&x);
            controls.extend_from_slice(u);
            stage_costs.push(stage_cost);
            tick_records.push(TickRecord {
                scheduled_s: since(t0, scheduled),
                actual_s: since(t0, actual),
                plan: active.0 as usize,
                age,
                miss,
            });
            if let Some(index) = next.iter().position(|v| !v.is_finite()) {
                failure = Some(
                    MppiError::NonFinite {
                        what: "plant state",
                        index,
                    }
                    .into(),
                );
                break;
            }
            x.copy_from_slice(&next);
            if shared.planner_exited.load(Ordering::Acquire) {
                failure = Some(RealtimeError::Planner {
                    tick: j,
                    error: MppiError::Objective {
                        reason: "the planner stopped".into(),
                    },
                });
                break;
            }
        }
        states.extend_from_slice(&x);
        shared.stop.store(true, Ordering::Release);
        planner_thread.unpark();
        let joined = planner.join();
        match joined {
            Err(payload) => Err(RealtimeError::PlannerPanicked(panic_message(
                payload.as_ref(),
            ))),
            Ok(Err(error)) => Err(RealtimeError::Planner {
                tick: tick_records.len().saturating_sub(1),
                error,
            }),
            Ok(Ok(out)) => match failure {
                Some(e) => Err(e),
                None => Ok(out),
            },
        }
    })?;

    let PlannerOutput {
        plans,
        plan_controls,
        plan_states,
        mut stats,
    } = outcome;
    stats.total_cost = stage_costs.iter().sum();
    let timing = TimingStats::from_records(&settings, &tick_records, &plans);
    Ok(RealtimeRun {
        dt: task.dt(),
        state_dim: n,
        control_dim: m,
        horizon,
        settings,
        states,
        controls,
        stage_costs,
        ticks: tick_records,
        plans,
        plan_controls,
        plan_states,
        stats,
        timing,
    })
}

/// When tick `j` is due: `t0 + j · period` (in whole nanoseconds, so nothing drifts).
fn tick_time(t0: Instant, period: Duration, j: usize) -> Instant {
    let offset = period.as_nanos().saturating_mul(j as u128);
    t0 + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

/// Sleep until `target`, spinning the last `spin` of the wait.
fn wait_until(target: Instant, spin: Duration) {
    loop {
        let Some(left) = target
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        else {
            return;
        };
        if left > spin {
            thread::sleep(left - spin);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// The planner thread: plan from every new measurement until the plant loop stops.
fn plan_loop(
    shared: &Shared,
    ctrl: &mut TaskController,
    dynamics: &dyn Dynamics,
    settings: &RealtimeSettings,
    t0: Instant,
    initial_plan: Vec<f64>,
    record: bool,
    out: &mut PlannerOutput,
) -> Result<(), MppiError> {
    let lat = settings.latency_ticks;
    let (n, m) = (dynamics.state_dim(), dynamics.control_dim());
    // the plans published so far that can still be in use within the next `lat` ticks,
    // oldest first: what the plant will apply before the next plan can act
    let history_len = lat + 2;
    let mut history: VecDeque<(usize, Vec<f64>)> = VecDeque::with_capacity(history_len);
    history.push_back((0, initial_plan));
    let mut x = vec![0.0; n];
    let mut predicted = vec![0.0; n];
    let mut scratch = vec![0.0; n];
    let mut committed = vec![0.0; lat * m];
    let mut last_start = 0usize;
    let mut seq = 1u64;
    let mut observer = StopWhen(&shared.stop);
    // the last planning time (the initial plan's at first), and the measurement last passed
    // over to wait for a fresher one
    let mut estimate = ctrl.report().planning_time;
    let mut passed: Option<u64> = None;
    let mut just_passed = false;
    // a plan from measurement `m` is due at tick `m + max(lat, 1)`
    let window = lat.max(1);
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        // the newest measurement, if a plan from it would start after the last plan
        let Some(tick) = shared
            .measurements
            .latest()
            .filter(|&t| t as usize + lat > last_start && passed.is_none_or(|p| t > p))
        else {
            thread::park_timeout(settings.period);
            continue;
        };
        // Stay in step with the ticks: a measurement that is already too old for a plan of
        // the last planning time to make its tick, where a plan from the next measurement
        // would make its own, is passed over (never twice in a row, so a planning time just
        // under the window cannot starve the plant).
        let due = tick_time(t0, settings.period, tick as usize + window);
        let fits = estimate < settings.period.saturating_mul(window as u32);
        if !just_passed && fits && Instant::now() + estimate > due {
            passed = Some(tick);
            just_passed = true;
            continue;
        }
        just_passed = false;
        let found = shared.measurements.read(tick, |v| {
            x.copy_from_slice(&v.x);
            if lat > 0 {
                committed[..m].copy_from_slice(&v.u);
            }
        });
        if !found {
            continue;
        }
        let tick = tick as usize;
        let started = Instant::now();
        // latency compensation: the controls committed for ticks tick + 1 .. tick + lat − 1
        for i in 1..lat {
            let plans = history.iter().map(|(s, p)| (*s, p.as_slice()));
            if let Some(u) = scheduled_control(plans, tick + i, m) {
                committed[i * m..(i + 1) * m].copy_from_slice(u);
            }
        }
        predict_state(dynamics, &x, &committed, &mut predicted, &mut scratch)?;
        let start = tick + lat;
        // `act` shifts the warm start by one tick; the plans are `start − last_start` apart
        ctrl.skip_steps(start - last_start - 1);
        ctrl.act_observed(&predicted, &mut observer)?;
        let plan = ctrl.plan();
        shared.plans.publish(seq, |p| {
            p.start = start as u64;
            p.controls.copy_from_slice(plan);
        });
        let published = Instant::now();
        let mut buf = if history.len() >= history_len {
            history.pop_front().map(|h| h.1).unwrap_or_default()
        } else {
            vec![0.0; plan.len()]
        };
        buf.copy_from_slice(plan);
        history.push_back((start, buf));
        let report = ctrl.report();
        estimate = report.planning_time;
        add_report(&mut out.stats, report);
        out.plans.push(PlanRecord {
            measured_tick: tick,
            start_tick: start,
            started_s: since(t0, started),
            published_s: since(t0, published),
            planning_time_ms: report.planning_time.as_secs_f64() * 1e3,
            status: report.status,
            iterations: report.iterations.len(),
            last: report.last(),
            overrun: report.planning_time > settings.deadline,
        });
        if record {
            out.plan_controls.extend_from_slice(ctrl.plan());
            out.plan_states.extend_from_slice(&predicted);
        }
        last_start = start;
        seq += 1;
    }
}

#[cfg(test)]
mod tests;
