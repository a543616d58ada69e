//! The `[smoothing]` section: Savitzky–Golay smoothing of the plan, per-step rate and
//! acceleration limits from the executed controls, bounds (`mppi::smoothing`).

use mppi::smoothing::{SavitzkyGolay, limit_forward};
use mppi::{
    Controller, Cost, Dynamics, MppiConfig, MppiError, Planner, ProposalConfig, ProposalKind,
    RolloutObjective, SmoothingConfig, WeightingConfig,
};

/// A small deterministic generator (xorshift64*), uniform in [-1, 1).
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        v as f64 / (1u64 << 52) as f64 - 1.0
    }
}

#[test]
fn savgol_reproduces_polynomials_exactly_in_the_interior_and_at_the_ends() {
    let mut noise = Noise(0x5eed);
    let (t_len, m) = (31, 2);
    for (w, q) in [
        (3, 1),
        (5, 2),
        (5, 3),
        (7, 3),
        (9, 4),
        (11, 5),
        (21, 3),
        (31, 6),
    ] {
        let sg = SavitzkyGolay::new(w, q).unwrap();
        for degree in 0..=q {
            // one polynomial of this degree per component, on x = t / T in [0, 1)
            let coeffs: Vec<Vec<f64>> = (0..m)
                .map(|_| (0..=degree).map(|_| noise.next()).collect())
                .collect();
            let poly = |i: usize, t: usize| {
                let x = t as f64 / t_len as f64;
                coeffs[i].iter().rev().fold(0.0, |acc, c| acc * x + c)
            };
            let plan: Vec<f64> = (0..t_len)
                .flat_map(|t| (0..m).map(move |i| (t, i)))
                .map(|(t, i)| poly(i, t))
                .collect();
            let mut out = vec![0.0; plan.len()];
            sg.smooth(&plan, &mut out, m).unwrap();
            for (k, (o, p)) in out.iter().zip(&plan).enumerate() {
                assert!(
                    (o - p).abs() < 1e-12,
                    "w {w} q {q} degree {degree}: step {} component {}: {o} vs {p}",
                    k / m,
                    k % m
                );
            }
        }
    }
}

#[test]
fn savgol_interior_coefficients_are_the_classic_ones() {
    let classic = [
        (5, 2, vec![-3.0, 12.0, 17.0, 12.0, -3.0], 35.0),
        (7, 2, vec![-2.0, 3.0, 6.0, 7.0, 6.0, 3.0, -2.0], 21.0),
        (5, 3, vec![-3.0, 12.0, 17.0, 12.0, -3.0], 35.0),
        (
            9,
            4,
            vec![15.0, -55.0, 30.0, 135.0, 179.0, 135.0, 30.0, -55.0, 15.0],
            429.0,
        ),
    ];
    for (w, q, numerators, norm) in classic {
        let sg = SavitzkyGolay::new(w, q).unwrap();
        let c = sg.coefficients(w / 2);
        for (got, n) in c.iter().zip(&numerators) {
            assert!((got - n / norm).abs() < 1e-14, "w {w} q {q}: {c:?}");
        }
        // and that is what an impulse in the interior of a plan becomes
        let mut plan = vec![0.0; 3 * w];
        plan[w + w / 2] = 1.0;
        let mut out = vec![0.0; 3 * w];
        sg.smooth(&plan, &mut out, 1).unwrap();
        for (j, n) in numerators.iter().enumerate() {
            assert!((out[w + j] - n / norm).abs() < 1e-14);
        }
    }
    // the first entry of a window-5, order-2 plan: the asymmetric fit (31, 9, -3, -5, 3)/35
    let first = [31.0, 9.0, -3.0, -5.0, 3.0];
    let sg = SavitzkyGolay::new(5, 2).unwrap();
    for (got, n) in sg.coefficients(0).iter().zip(first) {
        assert!((got - n / 35.0).abs() < 1e-14, "{:?}", sg.coefficients(0));
    }
}

/// Fraction of the energy (mean removed) at frequencies above `cutoff` cycles per step,
/// by a plain DFT.
fn high_frequency_fraction(u: &[f64], cutoff: f64) -> f64 {
    let n = u.len();
    let mean = u.iter().sum::<f64>() / n as f64;
    let (mut high, mut total) = (0.0, 0.0);
    for k in 1..n {
        let (mut re, mut im) = (0.0, 0.0);
        for (t, v) in u.iter().enumerate() {
            let a = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
            re += (v - mean) * a.cos();
            im += (v - mean) * a.sin();
        }
        let e = re * re + im * im;
        total += e;
        let f = k.min(n - k) as f64 / n as f64;
        if f > cutoff {
            high += e;
        }
    }
    high / total
}

fn mean_abs_change(u: &[f64]) -> f64 {
    u.windows(2).map(|p| (p[1] - p[0]).abs()).sum::<f64>() / (u.len() - 1) as f64
}

#[test]
fn savgol_reduces_the_high_frequency_content_of_a_noisy_plan() {
    // a slow sine (one period over the plan) plus uniform noise of amplitude 0.5
    let n = 64;
    let mut noise = Noise(42);
    let plan: Vec<f64> = (0..n)
        .map(|t| (2.0 * std::f64::consts::PI * t as f64 / n as f64).sin() + 0.5 * noise.next())
        .collect();
    let sg = SavitzkyGolay::new(9, 3).unwrap();
    let mut out = vec![0.0; n];
    sg.smooth(&plan, &mut out, 1).unwrap();
    // measure: the share of the energy above 1/4 cycle per step, and the mean |Δu|
    let (before, after) = (
        high_frequency_fraction(&plan, 0.25),
        high_frequency_fraction(&out, 0.25),
    );
    let (rough_before, rough_after) = (mean_abs_change(&plan), mean_abs_change(&out));
    println!(
        "energy above 0.25 cycles/step: {before:.4} -> {after:.4}; mean |du|: {rough_before:.4} -> {rough_after:.4}"
    );
    assert!(after < 0.1 * before, "{before} -> {after}");
    assert!(
        rough_after < 0.5 * rough_before,
        "{rough_before} -> {rough_after}"
    );
    // and the slow signal survives: the residual to the sine is smaller than the noise's
    let err = |u: &[f64]| {
        u.iter()
            .enumerate()
            .map(|(t, v)| (v - (2.0 * std::f64::consts::PI * t as f64 / n as f64).sin()).powi(2))
            .sum::<f64>()
    };
    assert!(err(&out) < 0.5 * err(&plan));
}

/// A point mass per control component: state (positions, velocities), control =
/// acceleration, dt = 0.05.
struct PointMass(usize);
impl Dynamics for PointMass {
    fn state_dim(&self) -> usize {
        2 * self.0
    }
    fn control_dim(&self) -> usize {
        self.0
    }
    fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
        let (m, dt) = (self.0, 0.05);
        for i in 0..m {
            next[m + i] = x[m + i] + dt * u[i];
            next[i] = x[i] + dt * next[m + i];
        }
    }
}
/// Reach position 1 in every component and stop there.
struct Goal(usize);
impl Cost for Goal {
    fn running(&self, x: &[f64], u: &[f64], _t: usize) -> f64 {
        let m = self.0;
        (0..m)
            .map(|i| (x[i] - 1.0).powi(2) + 0.1 * x[m + i].powi(2) + 1e-3 * u[i].powi(2))
            .sum()
    }
}

fn base_config(m: usize) -> MppiConfig {
    MppiConfig {
        samples: 128,
        horizon: 20,
        seed: 3,
        proposal: ProposalConfig::gaussian(&vec![2.0; m]),
        weighting: WeightingConfig::fixed(0.5),
        ..MppiConfig::default()
    }
}

/// Executed controls of `steps` closed-loop steps from rest at the origin.
fn closed_loop(ctrl: &mut Controller<RolloutObjective<PointMass, Goal>>, steps: usize) -> Vec<f64> {
    let m = ctrl.objective().dynamics().control_dim();
    let mut x = vec![0.0; 2 * m];
    let mut executed = Vec::new();
    for _ in 0..steps {
        let u = ctrl.act(&x).unwrap().to_vec();
        let mut next = vec![0.0; 2 * m];
        PointMass(m).step(&x, &u, &mut next);
        x = next;
        executed.extend(u);
    }
    executed
}

fn check_limits(executed: &[f64], m: usize, rate: &[f64], accel: Option<&[f64]>, what: &str) {
    let t_len = executed.len() / m;
    for i in 0..m {
        let u: Vec<f64> = (0..t_len).map(|t| executed[t * m + i]).collect();
        for t in 1..t_len {
            let d = (u[t] - u[t - 1]).abs();
            assert!(
                d <= rate[i] + 1e-12,
                "{what}: component {i} step {t}: |du| = {d} > {}",
                rate[i]
            );
        }
        if let Some(a) = accel {
            for t in 2..t_len {
                let dd = (u[t] - 2.0 * u[t - 1] + u[t - 2]).abs();
                assert!(
                    dd <= a[i] + 1e-12,
                    "{what}: component {i} step {t}: |d2u| = {dd} > {}",
                    a[i]
                );
            }
        }
    }
}

#[test]
fn closed_loop_controls_respect_the_rate_and_acceleration_limits() {
    let m = 2;
    let (rate, accel) = ([0.3, 0.1], [0.05, 0.02]);
    for kind in [
        ProposalKind::Gaussian,
        ProposalKind::GaussianDiag,
        ProposalKind::Colored,
        ProposalKind::Spline,
        ProposalKind::Mixture,
    ] {
        for savgol_window in [0, 7] {
            let mut cfg = base_config(m);
            cfg.proposal = ProposalConfig::new(kind).with_noise_sigma(&[2.0, 2.0]);
            cfg.smoothing = SmoothingConfig {
                max_step_change: Some(rate.to_vec()),
                max_step_accel: Some(accel.to_vec()),
                savgol_window,
                savgol_order: 2,
            };
            let mut ctrl = Controller::new(PointMass(m), Goal(m), &cfg).unwrap();
            let executed = closed_loop(&mut ctrl, 60);
            let what = format!("{kind:?}, savgol_window {savgol_window}");
            check_limits(&executed, m, &rate, Some(&accel), &what);
            // the limits do bind: the plan wants to accelerate hard towards the goal
            let max_change = executed
                .chunks(m)
                .zip(executed.chunks(m).skip(1))
                .map(|(a, b)| (b[1] - a[1]).abs())
                .fold(0.0, f64::max);
            assert!(max_change > 0.5 * rate[1], "{what}: {max_change}");
            // and the smoothed plan is what the controller keeps (gaussian families store it
            // exactly; spline and mixture their projection of it)
            let smoother = ctrl.smoother().unwrap();
            assert_eq!(
                &executed[executed.len() - m..],
                smoother.history().0.unwrap()
            );
            if matches!(kind, ProposalKind::Gaussian | ProposalKind::Colored) {
                assert_eq!(ctrl.plan(), smoother.plan(), "{what}");
            }
        }
    }
}

#[test]
fn bounds_and_the_limits_hold_together() {
    // tight bounds that bind (a sharp temperature puts the mean on the best, clamped,
    // samples), a scalar rate limit broadcast to both components; with an acceleration
    // limit the plan brakes before the bounds, so all of them hold at every step
    let m = 2;
    for accel in [None, Some(vec![0.02])] {
        let mut cfg = base_config(m);
        cfg.u_min = Some(vec![-0.5]);
        cfg.u_max = Some(vec![0.4]);
        cfg.weighting = WeightingConfig::fixed(1e-4);
        cfg.smoothing.max_step_change = Some(vec![0.07]);
        cfg.smoothing.max_step_accel = accel.clone();
        let accel = accel.map(|a| vec![a[0]; m]);
        let mut ctrl = Controller::new(PointMass(m), Goal(m), &cfg).unwrap();
        let executed = closed_loop(&mut ctrl, 60);
        check_limits(&executed, m, &[0.07, 0.07], accel.as_deref(), "bounds");
        assert!(executed.iter().all(|u| (-0.5..=0.4).contains(u)));
        let highest = executed.iter().copied().fold(f64::MIN, f64::max);
        assert!(highest > 0.39, "the upper bound binds: {highest}");
        // the whole plan respects them too
        let plan = ctrl.plan();
        check_limits(plan, m, &[0.07, 0.07], accel.as_deref(), "plan");
        assert!(plan.iter().all(|u| (-0.5..=0.4).contains(u)));
    }
}

#[test]
fn default_smoothing_is_bit_identical_to_no_smoothing() {
    let m = 2;
    let base = base_config(m);
    // the section absent, and present with its defaults written out
    let text = toml::to_string(&base).unwrap();
    let at = text.find("[smoothing]").expect("the section is serialized");
    assert!(text[at..].contains("savgol_window = 0"), "{text}");
    let absent: MppiConfig = toml::from_str(&text[..at]).unwrap();
    let present: MppiConfig = toml::from_str(&text).unwrap();
    assert_eq!(absent, present);
    assert!(present.smoothing.is_off());
    let with_section = closed_loop(
        &mut Controller::new(PointMass(m), Goal(m), &present).unwrap(),
        30,
    );
    let without = closed_loop(
        &mut Controller::new(PointMass(m), Goal(m), &absent).unwrap(),
        30,
    );
    assert_eq!(with_section, without);

    // and both equal the loop written out with the planner alone (what `act` did before the
    // section existed: shift, optimize, first control)
    let mut planner = Planner::new(&absent, m).unwrap();
    let mut objective =
        RolloutObjective::new(PointMass(m), Goal(m), absent.horizon, absent.discount).unwrap();
    let mut x = vec![0.0; 2 * m];
    let mut by_hand = Vec::new();
    for step in 0..30u64 {
        objective.set_state(&x).unwrap();
        if step > 0 {
            planner.shift(absent.shift_fill);
        }
        planner
            .optimize_until(&objective, Some(&x), step, mppi::Deadline::NONE, &mut ())
            .unwrap();
        let u = planner.mean()[..m].to_vec();
        let mut next = vec![0.0; 2 * m];
        PointMass(m).step(&x, &u, &mut next);
        x = next;
        by_hand.extend(u);
    }
    assert_eq!(without, by_hand);

    // a limit that never binds goes through the write-back path and changes nothing either
    let mut loose = absent.clone();
    loose.smoothing.max_step_change = Some(vec![1e300]);
    let loose_run = closed_loop(
        &mut Controller::new(PointMass(m), Goal(m), &loose).unwrap(),
        30,
    );
    assert_eq!(loose_run, without);
}

#[test]
fn bad_values_are_errors_naming_the_key() {
    let m = 2;
    let cases: [(&str, &str, &str); 12] = [
        (
            "savgol_window = 4",
            "smoothing.savgol_window",
            "must be odd and at least 3 (got 4)",
        ),
        ("savgol_window = 1", "smoothing.savgol_window", "(got 1)"),
        (
            "savgol_window = 21",
            "smoothing.savgol_window",
            "at most horizon = 20",
        ),
        (
            "savgol_window = 5\nsavgol_order = 5",
            "smoothing.savgol_order",
            "below savgol_window = 5 (got 5)",
        ),
        (
            "max_step_change = 0.0",
            "smoothing.max_step_change",
            "finite number > 0",
        ),
        (
            "max_step_change = -1.0",
            "smoothing.max_step_change",
            "got -1",
        ),
        (
            "max_step_change = inf",
            "smoothing.max_step_change",
            "got inf",
        ),
        (
            "max_step_change = [0.1, 0.2, 0.3]",
            "smoothing.max_step_change",
            "has 3 entries",
        ),
        (
            "max_step_change = []",
            "smoothing.max_step_change",
            "has 0 entries",
        ),
        ("max_step_accel = nan", "smoothing.max_step_accel", "NaN"),
        (
            "max_step_accel = [0.1, -0.2]",
            "smoothing.max_step_accel",
            "entry 1",
        ),
        (
            "max_step_accel = [0.1, inf]",
            "smoothing.max_step_accel",
            "entry 1",
        ),
    ];
    for (body, key, fragment) in cases {
        let mut cfg: MppiConfig =
            toml::from_str(&format!("horizon = 20\n[smoothing]\n{body}")).unwrap();
        cfg.proposal = ProposalConfig::gaussian(&[1.0, 1.0]);
        let err = cfg.validate(m).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, MppiError::InvalidConfig { field, .. } if *field == key),
            "{body}: {text}"
        );
        assert!(text.contains(fragment), "{body}: {text}");
        // the controller refuses it the same way
        let built = Controller::new(PointMass(m), Goal(m), &cfg);
        assert_eq!(built.err().map(|e| e.to_string()), Some(text));
    }
    // an unknown key of the section, and the order alone is fine while the window is off
    let typo = toml::from_str::<MppiConfig>("[smoothing]\nsavgol_windw = 5").unwrap_err();
    assert!(typo.to_string().contains("savgol_windw"), "{typo}");
    let cfg: MppiConfig = toml::from_str("[smoothing]\nsavgol_order = 9").unwrap();
    assert!(cfg.validate(1).is_ok());
    // the standalone smoother checks its arguments as well
    assert!(
        SavitzkyGolay::new(6, 2)
            .unwrap_err()
            .to_string()
            .contains("smoothing.savgol_window")
    );
    assert!(
        SavitzkyGolay::new(5, 7)
            .unwrap_err()
            .to_string()
            .contains("smoothing.savgol_order")
    );
    let sg = SavitzkyGolay::new(5, 2).unwrap();
    assert!(
        sg.smooth(&[0.0; 4], &mut [0.0; 4], 1).is_err(),
        "a plan shorter than the window"
    );
    assert!(sg.smooth(&[0.0; 10], &mut [0.0; 9], 1).is_err());
}

#[test]
fn reset_forgets_the_executed_controls() {
    let m = 1;
    let mut cfg = base_config(m);
    cfg.smoothing.max_step_change = Some(vec![0.1]);
    cfg.smoothing.max_step_accel = Some(vec![0.05]);
    let mut fresh = Controller::new(PointMass(m), Goal(m), &cfg).unwrap();
    let first = fresh.act(&[0.0, 0.0]).unwrap().to_vec();
    // unlimited at the first step: the optimized plan wants far more than 0.1
    assert!(first[0].abs() > 0.1, "{first:?}");

    let mut ctrl = Controller::new(PointMass(m), Goal(m), &cfg).unwrap();
    let executed = closed_loop(&mut ctrl, 10);
    assert!(ctrl.smoother().unwrap().history().1.is_some());
    // from a state far from where the history was made, the next control is limited by it
    let limited = ctrl.act(&[0.0, 0.0]).unwrap()[0];
    assert!((limited - executed[9]).abs() <= 0.1 + 1e-12);
    ctrl.reset();
    assert_eq!(ctrl.smoother().unwrap().history(), (None, None));
    // after the reset the controller starts over: exactly the fresh controller's first step
    assert_eq!(ctrl.act(&[0.0, 0.0]).unwrap(), &first[..]);
}

#[test]
fn limits_start_from_the_history_and_leave_satisfied_plans_alone() {
    // a plan that already respects the limits is unchanged
    let mut plan = [0.1, 0.15, 0.18, 0.2];
    let before = plan;
    let (lo, hi) = ([f64::NEG_INFINITY], [f64::INFINITY]);
    limit_forward(
        &mut plan,
        1,
        Some(&[0.05]),
        Some(&[0.0]),
        Some(&[0.06]),
        Some(&[0.02]),
        &lo,
        &hi,
    );
    assert_eq!(plan, before);
    // a jump is ramped: the accel limit from (u_{-2}, u_{-1}) = (0, 0), rate 1; the projection
    // is greedy (it does not brake ahead of time), so it overshoots the jump's level
    let mut plan = [1.0; 6];
    limit_forward(
        &mut plan,
        1,
        Some(&[0.0]),
        Some(&[0.0]),
        Some(&[1.0]),
        Some(&[0.1]),
        &lo,
        &hi,
    );
    let expected = [0.1, 0.3, 0.6, 1.0, 1.3, 1.5];
    for (p, e) in plan.iter().zip(expected) {
        assert!((p - e).abs() < 1e-12, "{plan:?}");
    }
}
