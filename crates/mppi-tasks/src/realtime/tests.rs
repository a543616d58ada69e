//! Unit tests of the real-time loop.

use super::*;

/// x' = x + u (one state, one control).
struct Line;
impl Dynamics for Line {
    fn state_dim(&self) -> usize {
        1
    }
    fn control_dim(&self) -> usize {
        1
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        next[0] = x[0] + u[0];
    }
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1e3)
}

#[test]
fn options_resolve_defaults() {
    let o = RealtimeOptions::default();
    let s = o.resolve(0.05, 30).expect("valid");
    assert!((s.rate_hz - 20.0).abs() < 1e-9);
    assert_eq!(s.period, ms(50.0));
    assert_eq!(s.deadline, ms(50.0).mul_f64(DEFAULT_DEADLINE_FRACTION));
    assert_eq!(s.latency, s.period);
    assert_eq!(s.latency_ticks, 1);
    assert!((s.real_time_factor - 1.0).abs() < 1e-9);
    let fast = RealtimeOptions {
        rate_hz: Some(100.0),
        ..o.clone()
    };
    let s = fast.resolve(0.05, 30).expect("valid");
    assert_eq!(s.period, ms(10.0));
    assert!((s.real_time_factor - 5.0).abs() < 1e-9);
    // latency rounds up to whole ticks; exact multiples stay
    for (latency, ticks) in [(0.0, 0), (10.0, 1), (15.0, 2), (20.0, 2), (0.001, 1)] {
        let o = RealtimeOptions {
            latency: Some(ms(latency)),
            ..fast.clone()
        };
        assert_eq!(o.resolve(0.05, 30).expect("valid").latency_ticks, ticks);
    }
}

#[test]
fn bad_options_are_errors() {
    let base = RealtimeOptions::default();
    let cases = [
        RealtimeOptions {
            ticks: 0,
            ..base.clone()
        },
        RealtimeOptions {
            rate_hz: Some(0.0),
            ..base.clone()
        },
        RealtimeOptions {
            rate_hz: Some(-5.0),
            ..base.clone()
        },
        RealtimeOptions {
            rate_hz: Some(f64::NAN),
            ..base.clone()
        },
        RealtimeOptions {
            rate_hz: Some(f64::INFINITY),
            ..base.clone()
        },
        RealtimeOptions {
            deadline: Some(Duration::ZERO),
            ..base.clone()
        },
        // 30 ticks of 50 ms: 1.5 s
        RealtimeOptions {
            latency: Some(ms(1500.0)),
            ..base.clone()
        },
        RealtimeOptions {
            latency: Some(ms(1600.0)),
            ..base.clone()
        },
    ];
    for o in cases {
        match o.resolve(0.05, 30) {
            Err(RealtimeError::Options(m)) => assert!(!m.is_empty()),
            other => panic!("{o:?}: {other:?}"),
        }
    }
    // just under the horizon is fine
    let o = RealtimeOptions {
        latency: Some(ms(1450.0)),
        ..base
    };
    assert_eq!(o.resolve(0.05, 30).expect("valid").latency_ticks, 29);
    let e = RealtimeOptions {
        latency: Some(ms(1500.0)),
        ..RealtimeOptions::default()
    }
    .resolve(0.05, 30)
    .expect_err("too long");
    assert!(e.to_string().contains("horizon"), "{e}");
}

#[test]
fn prediction_rolls_the_model_through_the_committed_controls() {
    let mut out = [0.0];
    let mut scratch = [0.0];
    predict_state(&Line, &[1.0], &[0.5, -2.0, 0.25], &mut out, &mut scratch).expect("ok");
    assert_eq!(out, [-0.25]);
    // no latency: the measured state itself
    predict_state(&Line, &[1.0], &[], &mut out, &mut scratch).expect("ok");
    assert_eq!(out, [1.0]);
    assert!(predict_state(&Line, &[1.0, 2.0], &[], &mut out, &mut scratch).is_err());
    assert!(matches!(
        predict_state(&Line, &[1.0], &[f64::NAN], &mut out, &mut scratch),
        Err(MppiError::NonFinite { .. })
    ));
}

#[test]
fn scheduled_controls_follow_the_newest_started_plan() {
    let a = [1.0, 2.0, 3.0];
    let b = [10.0, 20.0, 30.0];
    let plans = || [(0, &a[..]), (4, &b[..])].into_iter();
    assert_eq!(scheduled_control(plans(), 0, 1), Some(&[1.0][..]));
    assert_eq!(scheduled_control(plans(), 2, 1), Some(&[3.0][..]));
    // held past its end
    assert_eq!(scheduled_control(plans(), 3, 1), Some(&[3.0][..]));
    assert_eq!(scheduled_control(plans(), 4, 1), Some(&[10.0][..]));
    assert_eq!(scheduled_control(plans(), 9, 1), Some(&[30.0][..]));
    let later = [(5, &b[..])];
    assert_eq!(scheduled_control(later.into_iter(), 4, 1), None);
    assert_eq!(plan_entry(&[1.0, 2.0, 3.0, 4.0], 2, 1), &[3.0, 4.0]);
    assert_eq!(plan_entry(&[1.0, 2.0, 3.0, 4.0], 2, 7), &[3.0, 4.0]);
}

#[test]
fn boards_hand_over_the_newest_values() {
    let board = Board::new(3, || 0u32);
    assert_eq!(board.latest(), None);
    board.publish(0, |v| *v = 10);
    assert!(board.try_publish(1, |v| *v = 11));
    assert_eq!(board.latest(), Some(1));
    let mut got = 0;
    assert!(board.read(1, |v| got = *v));
    assert_eq!(got, 11);
    // value 3 overwrites value 0's slot
    board.publish(3, |v| *v = 13);
    assert_eq!(board.try_read(0, |_| {}), Some(false));
    assert_eq!(board.try_read(3, |v| got = *v), Some(true));
    assert_eq!(got, 13);
    // a busy slot: the plant's side does not wait
    let guard = lock(board.slot(4));
    assert!(!board.try_publish(4, |v| *v = 14));
    assert_eq!(board.try_read(4, |_| {}), None);
    drop(guard);
    assert_eq!(board.latest(), Some(3));
}

#[test]
fn timing_statistics() {
    let settings = RealtimeOptions {
        rate_hz: Some(100.0),
        ..RealtimeOptions::default()
    }
    .resolve(0.05, 30)
    .expect("valid");
    let ticks: Vec<TickRecord> = (0..11)
        .map(|j| TickRecord {
            scheduled_s: 0.01 * f64::from(j),
            actual_s: 0.01 * f64::from(j) + if j == 5 { 0.002 } else { 0.0001 },
            plan: 0,
            age: if j == 7 { 2 } else { 0 },
            miss: j == 7,
        })
        .collect();
    let plan = |ms: f64| PlanRecord {
        measured_tick: 0,
        start_tick: 1,
        started_s: 0.0,
        published_s: 0.0,
        planning_time_ms: ms,
        status: Status::MaxIterations,
        iterations: 1,
        last: IterStats::default(),
        overrun: ms > 8.0,
    };
    let plans = [plan(100.0), plan(1.0), plan(3.0), plan(9.0), plan(2.0)];
    let t = TimingStats::from_records(&settings, &ticks, &plans);
    assert_eq!(t.ticks, 11);
    assert_eq!(t.plans, 4);
    assert!(
        (t.achieved_rate_hz - 100.0).abs() < 0.5,
        "{}",
        t.achieved_rate_hz
    );
    assert_eq!(t.planning_max_ms, 9.0);
    assert_eq!(t.planning_p50_ms, 2.0);
    assert_eq!(t.planning_p95_ms, 9.0);
    assert_eq!(t.planning_mean_ms, 3.75);
    assert_eq!((t.overruns, t.overrun_fraction), (1, 0.25));
    assert_eq!(t.missed, 1);
    assert_eq!(t.max_plan_age, 2);
    assert!((t.jitter_max_ms - 2.0).abs() < 1e-9);
    assert!((t.jitter_p95_ms - 2.0).abs() < 1e-9);
    assert_eq!(t.period_ms, 10.0);
}
