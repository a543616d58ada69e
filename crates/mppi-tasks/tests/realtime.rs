//! The real-time plant loop (`mppi_tasks::realtime`): it holds its rate, falls back to the
//! shifted previous plan when a plan is late without stalling the plant, compensates the
//! latency with the committed controls, and reports bad options and planner failures as
//! errors. These are functional checks with generous tolerances (loaded CI machines), not
//! benchmarks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mppi::{Cost, Dynamics, MppiConfig};
use mppi_tasks::criterion::Criterion;
use mppi_tasks::pendulum::{Pendulum, PendulumModel};
use mppi_tasks::realtime::{plan_entry, predict_state};
use mppi_tasks::{RealtimeError, RealtimeOptions, RealtimeRun, Task, run_realtime, task_by_name};

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1e3)
}

/// A small, quick pendulum config.
fn pendulum_config(samples: usize) -> MppiConfig {
    let mut config = Pendulum.default_config();
    config.samples = samples;
    config.threads = 1;
    config
}

/// Every tick applied the entry `age` of the plan it names, and the ages and misses agree
/// with the plans' start ticks.
fn check_controls_follow_plans(run: &RealtimeRun) {
    let m = run.control_dim;
    for (j, t) in run.ticks.iter().enumerate() {
        let plan = run.plan(t.plan).expect("plans recorded");
        assert_eq!(t.age, j - run.plans[t.plan].start_tick, "tick {j}");
        assert_eq!(run.control(j), plan_entry(plan, m, t.age), "tick {j}");
    }
}

#[test]
fn the_loop_holds_its_rate_on_pendulum() {
    let options = RealtimeOptions {
        ticks: 50,
        rate_hz: Some(50.0),
        record_plans: true,
        ..RealtimeOptions::default()
    };
    let started = Instant::now();
    let run = run_realtime(&Pendulum, &pendulum_config(128), &options).expect("runs");
    let wall = started.elapsed().as_secs_f64();
    let t = &run.timing;
    assert_eq!(run.ticks.len(), 50);
    assert_eq!(t.ticks, 50);
    assert_eq!(run.states.len(), 51 * 2);
    assert_eq!(run.controls.len(), 50);
    assert!(
        (t.achieved_rate_hz - 50.0).abs() < 5.0,
        "achieved {} Hz",
        t.achieved_rate_hz
    );
    // 49 periods of 20 ms between the first and the last tick
    assert!(wall > 0.9 && wall < 3.0, "{wall} s");
    assert!(t.plans >= 10, "{t:?}");
    assert_eq!(t.latency_ticks, 1);
    assert!(t.planning_p50_ms > 0.0 && t.planning_p50_ms <= t.planning_max_ms);
    // ticks run in order, never early
    for w in run.ticks.windows(2) {
        assert!(w[1].actual_s > w[0].actual_s);
    }
    assert!(run.ticks.iter().all(|t| t.actual_s >= t.scheduled_s));
    check_controls_follow_plans(&run);
    // the record becomes an episode the writers understand
    let episode = run.to_episode(&Pendulum);
    assert_eq!(episode.steps, 50);
    assert_eq!(episode.states.len(), 51);
    assert_eq!(episode.reports.len(), 50);
    assert!(episode.is_complete());
    assert!((episode.total_cost() - run.stage_costs.iter().sum::<f64>()).abs() < 1e-9);
}

/// The pendulum whose planning model sleeps in every step: planning takes many periods. The
/// plant itself is the fast model.
struct SlowPendulum {
    sleep: Duration,
}

struct SlowModel(Duration);

impl Dynamics for SlowModel {
    fn state_dim(&self) -> usize {
        2
    }
    fn control_dim(&self) -> usize {
        1
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        std::thread::sleep(self.0);
        PendulumModel.step(x, u, next);
    }
}

impl Task for SlowPendulum {
    fn name(&self) -> &'static str {
        "slow_pendulum"
    }
    fn description(&self) -> &'static str {
        "pendulum with a planning model that sleeps"
    }
    fn state_names(&self) -> &'static [&'static str] {
        Pendulum.state_names()
    }
    fn control_names(&self) -> &'static [&'static str] {
        Pendulum.control_names()
    }
    fn dt(&self) -> f64 {
        Pendulum.dt()
    }
    fn default_config(&self) -> MppiConfig {
        let mut config = Pendulum.default_config();
        config.samples = 4;
        config.horizon = 5;
        config.threads = 1;
        config
    }
    fn default_steps(&self) -> usize {
        40
    }
    fn initial_state(&self) -> Vec<f64> {
        Pendulum.initial_state()
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(SlowModel(self.sleep))
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Pendulum.cost()
    }
    fn plant_step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        PendulumModel.step(x, u, next);
    }
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        Pendulum.criterion()
    }
}

#[test]
fn a_slow_planner_misses_deadlines_without_stalling_the_plant() {
    // 4 samples x 5 steps x 2 ms: about 40 ms per plan, 4 periods of 10 ms
    let task = SlowPendulum { sleep: ms(2.0) };
    let options = RealtimeOptions {
        ticks: 40,
        rate_hz: Some(100.0),
        record_plans: true,
        ..RealtimeOptions::default()
    };
    let started = Instant::now();
    let run = run_realtime(&task, &task.default_config(), &options).expect("runs");
    let wall = started.elapsed().as_secs_f64();
    let t = &run.timing;
    assert_eq!(run.ticks.len(), 40);
    assert!(
        (t.achieved_rate_hz - 100.0).abs() < 15.0,
        "achieved {} Hz",
        t.achieved_rate_hz
    );
    // 0.39 s of ticks, the initial plan before the clock and one plan to finish at the end
    assert!(wall < 1.5, "{wall} s: the plant loop stalled");
    assert!(t.planning_p50_ms > 2.0 * t.period_ms, "{t:?}");
    assert!(t.missed > 10, "{t:?}");
    assert!(t.overruns > 0, "{t:?}");
    assert!(t.max_plan_age >= 3, "{t:?}");
    check_controls_follow_plans(&run);
    // during a miss the plant executes the next entry of the previous plan
    let mut misses = 0;
    for (j, w) in run.ticks.windows(2).enumerate() {
        if w[1].miss {
            misses += 1;
            assert!(w[1].age >= 1);
            if w[1].plan == w[0].plan {
                assert_eq!(w[1].age, w[0].age + 1, "tick {}", j + 1);
            }
            let plan = run.plan(w[1].plan).expect("recorded");
            assert_eq!(run.control(j + 1), plan_entry(plan, 1, w[1].age));
        }
    }
    assert_eq!(misses, t.missed - usize::from(run.ticks[0].miss));
}

#[test]
fn latency_compensation_plans_from_the_predicted_state() {
    // 2 ticks of latency: every plan starts from the model rolled 2 steps forward from its
    // measurement with the controls the plant actually applied in those ticks
    let options = RealtimeOptions {
        ticks: 30,
        rate_hz: Some(100.0),
        latency: Some(ms(20.0)),
        record_plans: true,
        ..RealtimeOptions::default()
    };
    let run = run_realtime(&Pendulum, &pendulum_config(64), &options).expect("runs");
    assert_eq!(run.timing.latency_ticks, 2);
    assert!(run.plans.len() > 5, "{:?}", run.timing);
    let model = Pendulum.dynamics();
    let mut checked = 0;
    for (p, plan) in run.plans.iter().enumerate().skip(1) {
        assert_eq!(plan.start_tick, plan.measured_tick + 2);
        let k = plan.measured_tick;
        if k + 2 > run.ticks.len() {
            continue;
        }
        let committed: Vec<f64> = (k..k + 2).flat_map(|i| run.control(i).to_vec()).collect();
        let mut predicted = [0.0; 2];
        let mut scratch = [0.0; 2];
        predict_state(
            model.as_ref(),
            run.state(k),
            &committed,
            &mut predicted,
            &mut scratch,
        )
        .expect("finite");
        assert_eq!(run.plan_state(p), Some(&predicted[..]), "plan {p}");
        checked += 1;
    }
    assert!(checked > 5);
    check_controls_follow_plans(&run);
}

#[test]
fn bad_options_are_errors() {
    let task = task_by_name("pendulum").expect("pendulum");
    let config = pendulum_config(16);
    let base = RealtimeOptions {
        ticks: 3,
        ..RealtimeOptions::default()
    };
    let cases = [
        RealtimeOptions {
            rate_hz: Some(0.0),
            ..base.clone()
        },
        RealtimeOptions {
            rate_hz: Some(f64::NAN),
            ..base.clone()
        },
        RealtimeOptions {
            rate_hz: Some(-20.0),
            ..base.clone()
        },
        RealtimeOptions {
            deadline: Some(Duration::ZERO),
            ..base.clone()
        },
        // horizon 30 x 50 ms
        RealtimeOptions {
            latency: Some(ms(1500.0)),
            ..base.clone()
        },
        RealtimeOptions {
            ticks: 0,
            ..base.clone()
        },
    ];
    for options in cases {
        assert!(
            matches!(
                run_realtime(task.as_ref(), &config, &options),
                Err(RealtimeError::Options(_))
            ),
            "{options:?}"
        );
    }
    let wrong_state = RealtimeOptions {
        initial_state: Some(vec![0.0]),
        ..base.clone()
    };
    assert!(matches!(
        run_realtime(task.as_ref(), &config, &wrong_state),
        Err(RealtimeError::Mppi(_))
    ));
    let mut bad_config = config.clone();
    bad_config.samples = 0;
    assert!(matches!(
        run_realtime(task.as_ref(), &bad_config, &base),
        Err(RealtimeError::Mppi(_))
    ));
}

/// A planning model that fails on the planner thread: NaN, or a panic.
struct Broken {
    panic: bool,
}

struct BrokenModel {
    panic: bool,
}

impl Dynamics for BrokenModel {
    fn state_dim(&self) -> usize {
        2
    }
    fn control_dim(&self) -> usize {
        1
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        PendulumModel.step(x, u, next);
        if std::thread::current().name() == Some("mppi-planner") {
            assert!(!self.panic, "the model broke");
            next[0] = f64::NAN;
        }
    }
}

impl Task for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn description(&self) -> &'static str {
        "a model that fails on the planner thread"
    }
    fn state_names(&self) -> &'static [&'static str] {
        Pendulum.state_names()
    }
    fn control_names(&self) -> &'static [&'static str] {
        Pendulum.control_names()
    }
    fn dt(&self) -> f64 {
        Pendulum.dt()
    }
    fn default_config(&self) -> MppiConfig {
        pendulum_config(16)
    }
    fn default_steps(&self) -> usize {
        10
    }
    fn initial_state(&self) -> Vec<f64> {
        Pendulum.initial_state()
    }
    fn dynamics(&self) -> Arc<dyn Dynamics> {
        Arc::new(BrokenModel { panic: self.panic })
    }
    fn cost(&self) -> Arc<dyn Cost> {
        Pendulum.cost()
    }
    fn plant_step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        PendulumModel.step(x, u, next);
    }
    fn criterion(&self) -> Box<dyn Criterion + '_> {
        Pendulum.criterion()
    }
}

#[test]
fn planner_failures_are_returned_not_panics() {
    let options = RealtimeOptions {
        ticks: 200,
        rate_hz: Some(100.0),
        ..RealtimeOptions::default()
    };
    for panic in [false, true] {
        let task = Broken { panic };
        let started = Instant::now();
        let result = run_realtime(&task, &task.default_config(), &options);
        // the plant loop stops when it notices, long before its 2 s
        assert!(started.elapsed() < Duration::from_millis(1500));
        match (panic, result) {
            (false, Err(RealtimeError::Planner { error, .. })) => {
                assert!(error.to_string().contains("predicted state"), "{error}");
            }
            (true, Err(RealtimeError::PlannerPanicked(message))) => {
                assert!(message.contains("the model broke"), "{message}");
            }
            (_, other) => panic!("panic = {panic}: {other:?}"),
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_plans_for_the_same_states() {
    // one EM iteration per plan, so the deadline cannot change a plan: replaying the
    // planned-from states (and the gaps between start ticks) in lock step gives every plan
    // bit for bit
    let config = pendulum_config(64);
    let options = RealtimeOptions {
        ticks: 30,
        rate_hz: Some(100.0),
        record_plans: true,
        ..RealtimeOptions::default()
    };
    let run = run_realtime(&Pendulum, &config, &options).expect("runs");
    let mut ctrl = mppi_tasks::controller(&Pendulum, &config).expect("builds");
    ctrl.act(run.plan_state(0).expect("recorded"))
        .expect("plans");
    assert_eq!(Some(ctrl.plan()), run.plan(0));
    for p in 1..run.plans.len() {
        let gap = run.plans[p].start_tick - run.plans[p - 1].start_tick;
        assert!(gap >= 1);
        ctrl.skip_steps(gap - 1);
        ctrl.act(run.plan_state(p).expect("recorded"))
            .expect("plans");
        assert_eq!(Some(ctrl.plan()), run.plan(p), "plan {p}");
    }
}
