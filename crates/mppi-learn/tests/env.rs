//! The reinforcement-learning environments (`mppi_learn::env`): whole episodes, determinism,
//! bad input, and known values of the dm_control rewards and observations.

use mppi_learn::LearnError;
use mppi_learn::env::rewards::{Sigmoid, sigmoid, tolerance};
use mppi_learn::env::{DMC_ENV_NAMES, DmcEnv, DmcState, Env, TaskEnv, env_names, make_env};

/// Uniform actions in `[-1, 1]^m` from a fixed stream.
struct Actions(mppi::rng::SampleRng);

impl Actions {
    fn new(seed: u64) -> Self {
        Self(mppi::rng::sample_rng(seed, 1, 2, 3))
    }
    fn next(&mut self, m: usize) -> Vec<f64> {
        (0..m).map(|_| 2.0 * self.0.uniform() - 1.0).collect()
    }
}

/// One episode with random actions: the first observation, then (reward, observation) per
/// decision.
fn episode(env: &mut dyn Env, seed: u64) -> (Vec<f64>, Vec<(f64, Vec<f64>)>) {
    let mut obs = vec![0.0; env.obs_dim()];
    env.reset(seed, &mut obs).expect("reset");
    let first = obs.clone();
    let mut actions = Actions::new(seed);
    let steps = (0..env.episode_length())
        .map(|k| {
            let a = actions.next(env.action_dim());
            let r = env
                .step(&a, &mut obs)
                .unwrap_or_else(|e| panic!("{} decision {k}: {e}", env.name()));
            (r, obs.clone())
        })
        .collect();
    (first, steps)
}

#[test]
fn every_env_runs_whole_episodes_with_rewards_in_range() {
    let names = env_names();
    for dmc in DMC_ENV_NAMES {
        assert!(names.contains(dmc), "{dmc}");
    }
    assert!(names.contains(&"task:pendulum") && names.contains(&"task:cartpole"));
    for &name in names {
        let mut env = make_env(name).expect(name);
        assert_eq!(env.name(), name);
        let repeat = env.action_repeat() as f64;
        let (first, steps) = episode(env.as_mut(), 11);
        assert_eq!(steps.len(), env.episode_length(), "{name}");
        assert!(first.iter().all(|v| v.is_finite()), "{name}");
        let mut total = 0.0;
        for (r, obs) in &steps {
            assert!((0.0..=repeat).contains(r), "{name}: reward {r}");
            assert_eq!(obs.len(), env.obs_dim());
            assert!(obs.iter().all(|v| v.is_finite()), "{name}: {obs:?}");
            total += r;
        }
        // the state moved
        assert_ne!(first, steps.last().expect("steps").1, "{name}");
        if DMC_ENV_NAMES.contains(&name) {
            assert_eq!(
                (env.episode_length(), env.action_repeat()),
                (500, 2),
                "{name}"
            );
            assert!((0.0..=1000.0).contains(&total), "{name}: return {total}");
        } else {
            assert_eq!(env.action_repeat(), 1, "{name}");
            assert!(
                total <= env.episode_length() as f64,
                "{name}: return {total}"
            );
        }
        // the episode is over; a new one starts on reset
        let mut obs = vec![0.0; env.obs_dim()];
        let action = vec![0.0; env.action_dim()];
        let err = env.step(&action, &mut obs).expect_err("past the end");
        assert!(err.to_string().contains("reset"), "{err}");
        env.reset(12, &mut obs).expect("reset again");
        env.step(&action, &mut obs)
            .expect("a step of the new episode");
    }
}

#[test]
fn dm_control_timing_matches_the_suite() {
    // (name, control timestep, obs_dim, action_dim): every task 1000 control steps
    let expected = [
        ("cartpole-swingup", 0.01, 5, 1),
        ("acrobot-swingup", 0.01, 6, 1),
        ("reacher-easy", 0.02, 6, 2),
        ("reacher-hard", 0.02, 6, 2),
        ("pendulum-swingup", 0.02, 3, 1),
    ];
    for (name, dt, obs_dim, action_dim) in expected {
        let env = DmcEnv::new(name).expect(name);
        assert_eq!(env.control_timestep(), dt, "{name}");
        assert_eq!(env.control_steps(), 1000, "{name}");
        assert_eq!((env.obs_dim(), env.action_dim()), (obs_dim, action_dim));
        // dm_control's ranges are [-1, 1]: actions are the controls unchanged
        let (lo, hi) = env.model().control_bounds();
        assert!(lo.iter().all(|&l| l == -1.0) && hi.iter().all(|&h| h == 1.0));
    }
}

#[test]
fn same_seed_same_episode_bit_for_bit() {
    for name in ["cartpole-swingup", "reacher-easy", "task:acrobot"] {
        let mut a = make_env(name).expect(name);
        let mut b = make_env(name).expect(name);
        let run = |env: &mut dyn Env, seed| {
            let (first, steps) = episode(env, seed);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let mut out = vec![bits(&first)];
            out.extend(
                steps
                    .iter()
                    .take(60)
                    .map(|(r, o)| [vec![r.to_bits()], bits(o)].concat()),
            );
            out
        };
        let first = run(a.as_mut(), 5);
        assert_eq!(first, run(b.as_mut(), 5), "{name}: two envs");
        assert_eq!(
            first,
            run(a.as_mut(), 5),
            "{name}: the same env reset again"
        );
        assert_ne!(first[0], run(a.as_mut(), 6)[0], "{name}: another seed");
    }
}

#[test]
fn initial_states_follow_dm_control_distributions() {
    use std::f64::consts::PI;
    let seeds = 0..300u64;
    let (mut pend, mut acro, mut cart, mut reach) = (
        DmcEnv::new("pendulum-swingup").expect("pendulum"),
        DmcEnv::new("acrobot-swingup").expect("acrobot"),
        DmcEnv::new("cartpole-swingup").expect("cartpole"),
        DmcEnv::new("reacher-easy").expect("reacher"),
    );
    let mut obs = vec![0.0; 6];
    let (mut angles, mut cart_q, mut radii, mut wrists) = (vec![], vec![], vec![], vec![]);
    for seed in seeds.clone() {
        pend.reset(seed, &mut obs[..3]).expect("reset");
        let s = pend.state();
        assert_eq!(s.qvel, [0.0]);
        angles.push(s.qpos[0]);
        acro.reset(seed, &mut obs).expect("reset");
        let s = acro.state();
        angles.extend(&s.qpos);
        assert_eq!(s.qvel, [0.0, 0.0]);
        cart.reset(seed, &mut obs[..5]).expect("reset");
        let s = cart.state();
        cart_q.push([s.qpos[0], s.qpos[1] - PI, s.qvel[0], s.qvel[1]]);
        reach.reset(seed, &mut obs).expect("reset");
        let s = reach.state();
        let [x, y] = s.target.expect("a target");
        radii.push(x.hypot(y));
        wrists.push(s.qpos[1]);
        angles.push(s.qpos[0]);
    }
    // U(-pi, pi): within range, mean ~0, variance pi^2/3
    let n = angles.len() as f64;
    assert!(angles.iter().all(|a| (-PI..PI).contains(a)));
    let mean = angles.iter().sum::<f64>() / n;
    let var = angles.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n;
    assert!(mean.abs() < 4.0 * (PI * PI / 3.0 / n).sqrt(), "mean {mean}");
    assert!((var / (PI * PI / 3.0) - 1.0).abs() < 0.1, "var {var}");
    // cartpole: every entry 0.01 N(0, 1) around (0, pi, 0, 0)
    let all: Vec<f64> = cart_q.iter().flatten().copied().collect();
    let sd = (all.iter().map(|v| v * v).sum::<f64>() / all.len() as f64).sqrt();
    assert!((sd / 0.01 - 1.0).abs() < 0.1, "cartpole sd {sd}");
    // reacher: target radius in [.05, .2], wrist within +-160 degrees and spread over it
    assert!(
        radii
            .iter()
            .all(|r| (0.05 - 1e-12..=0.2 + 1e-12).contains(r))
    );
    let limit = 160f64.to_radians();
    assert!(wrists.iter().all(|w| w.abs() <= limit + 1e-9));
    assert!(wrists.iter().any(|w| w.abs() > 0.9 * limit));
}

fn start(env: &mut DmcEnv, qpos: &[f64], qvel: &[f64], target: Option<[f64; 2]>) -> Vec<f64> {
    let mut obs = vec![0.0; env.obs_dim()];
    let state = DmcState {
        qpos: qpos.to_vec(),
        qvel: qvel.to_vec(),
        target,
    };
    env.reset_to(&state, &mut obs).expect("reset_to");
    obs
}

#[test]
fn known_rewards_and_observations() {
    use std::f64::consts::PI;
    // pendulum: upright and still -> reward 1 per control step; hanging -> 0
    let mut env = DmcEnv::new("pendulum-swingup").expect("pendulum");
    let mut obs = start(&mut env, &[0.0], &[0.0], None);
    assert_eq!(obs, [1.0, 0.0, 0.0]);
    assert_eq!(env.step(&[0.0], &mut obs).expect("step"), 2.0);
    let mut obs = start(&mut env, &[PI], &[0.0], None);
    assert!((obs[0] + 1.0).abs() < 1e-15 && obs[1].abs() < 1e-15);
    assert_eq!(env.step(&[0.0], &mut obs).expect("step"), 0.0);
    // the observation is (cos, sin, velocity) of the hinge
    let obs = start(&mut env, &[0.3], &[-1.5], None);
    assert!((obs[0] - 0.3f64.cos()).abs() < 1e-15 && (obs[1] - 0.3f64.sin()).abs() < 1e-15);
    assert_eq!(obs[2], -1.5);

    // cartpole: upright, centred, still, no force -> 1 per control step
    let mut env = DmcEnv::new("cartpole-swingup").expect("cartpole");
    let mut obs = start(&mut env, &[0.0, 0.0], &[0.0, 0.0], None);
    assert_eq!(obs, [0.0, 1.0, 0.0, 0.0, 0.0]);
    assert_eq!(env.step(&[0.0], &mut obs).expect("step"), 2.0);
    // hanging still at the centre with no force: upright 0 -> reward 0
    let mut obs = start(&mut env, &[0.0, PI], &[0.0, 0.0], None);
    assert!(env.step(&[0.0], &mut obs).expect("step") < 1e-12);
    // upright, full force: small_control = (4 + 0) / 5 on both steps (the pole barely moves)
    let mut obs = start(&mut env, &[0.0, 0.0], &[0.0, 0.0], None);
    let r = env.step(&[1.0], &mut obs).expect("step");
    assert!((r - 2.0 * 0.8).abs() < 1e-2, "{r}");

    // acrobot: upright -> the tip is in the target
    let mut env = DmcEnv::new("acrobot-swingup").expect("acrobot");
    let mut obs = start(&mut env, &[0.0, 0.0], &[0.0, 0.0], None);
    assert_eq!(obs, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    assert_eq!(env.step(&[0.0], &mut obs).expect("step"), 2.0);
    // hanging: the tip 4 m below the target, 3.8 m outside its radius: gaussian ~ 0.1^(3.8^2)
    let mut obs = start(&mut env, &[PI, 0.0], &[0.0, 0.0], None);
    assert!(env.step(&[0.0], &mut obs).expect("step") < 1e-10);

    // reacher: target on the fingertip (x = .24 with both joints at 0) -> 1; far -> 0
    for (name, near) in [("reacher-easy", 0.059), ("reacher-hard", 0.024)] {
        let mut env = DmcEnv::new(name).expect(name);
        let mut obs = start(&mut env, &[0.0, 0.0], &[0.0, 0.0], Some([0.24 - near, 0.0]));
        assert!(
            (obs[2] + near).abs() < 1e-12 && obs[3].abs() < 1e-12,
            "{obs:?}"
        );
        assert_eq!(
            env.step(&[0.0, 0.0], &mut obs).expect("step"),
            2.0,
            "{name}"
        );
        let far = near + 0.002;
        let mut obs = start(&mut env, &[0.0, 0.0], &[0.0, 0.0], Some([0.24 - far, 0.0]));
        assert_eq!(
            env.step(&[0.0, 0.0], &mut obs).expect("step"),
            0.0,
            "{name}"
        );
    }

    // built-in pendulum: (cos, sin, velocity); reward e^-1 at the initial state's cost
    let mut env = TaskEnv::new("pendulum").expect("task:pendulum");
    assert_eq!(env.name(), "task:pendulum");
    assert!((env.cost_scale() - PI * PI).abs() < 1e-12);
    let mut obs = [0.0; 3];
    env.reset(3, &mut obs).expect("reset");
    let x = env.state().to_vec();
    assert!((x[0] - PI).abs() < 0.05 && x[1].abs() < 0.05);
    assert_eq!(obs, [x[0].cos(), x[0].sin(), x[1]]);
    let r = env.step(&[0.0], &mut obs).expect("step");
    assert!((r - (-1.0f64).exp()).abs() < 0.05, "{r}");
    let env = TaskEnv::new("cartpole").expect("task:cartpole");
    assert_eq!(env.obs_dim(), 5);
}

#[test]
fn reward_shaping_matches_dm_control_formulas() {
    let v = 0.1;
    // gaussian: value_at_margin at one margin outside, symmetric
    for x in [3.0, -2.0] {
        let t = tolerance(x, (0.0, 1.0), 2.0, Sigmoid::Gaussian, v).expect("ok");
        assert!((t - 0.1).abs() < 1e-15, "{t}");
    }
    assert_eq!(
        tolerance(
            f64::INFINITY,
            (10.0, f64::INFINITY),
            10.0,
            Sigmoid::Linear,
            0.0
        )
        .expect("ok"),
        1.0
    );
    assert_eq!(
        tolerance(5.0, (10.0, f64::INFINITY), 10.0, Sigmoid::Linear, 0.0).expect("ok"),
        0.5
    );
    // every sigmoid: 1 at 0, value_at_1 at 1, decreasing
    use Sigmoid::*;
    for kind in [
        Gaussian,
        Hyperbolic,
        LongTail,
        Reciprocal,
        Cosine,
        Linear,
        Quadratic,
        TanhSquared,
    ] {
        assert_eq!(sigmoid(0.0, 0.3, kind).expect("ok"), 1.0, "{kind:?}");
        let at1 = sigmoid(1.0, 0.3, kind).expect("ok");
        assert!((at1 - 0.3).abs() < 1e-12, "{kind:?}: {at1}");
        assert!(sigmoid(0.5, 0.3, kind).expect("ok") > at1, "{kind:?}");
    }
    assert!(tolerance(0.0, (1.0, 0.0), 1.0, Gaussian, v).is_err());
    assert!(tolerance(0.0, (0.0, 0.0), -1.0, Gaussian, v).is_err());
    assert!(tolerance(0.0, (0.0, 0.0), f64::NAN, Gaussian, v).is_err());
    assert!(tolerance(2.0, (0.0, 0.0), 1.0, Gaussian, 1.0).is_err());
    assert!(sigmoid(1.0, 0.0, LongTail).is_err());
    assert_eq!(sigmoid(2.0, 0.0, Quadratic).expect("ok"), 0.0);
}

fn is_dimension_error(e: &LearnError) -> bool {
    matches!(
        e,
        LearnError::Mppi(mppi::MppiError::DimensionMismatch { .. })
    )
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    let err = make_env("cartpole-balance").err().expect("unknown");
    let msg = err.to_string();
    for name in env_names() {
        assert!(msg.contains(name), "{msg} lacks {name}");
    }
    assert!(make_env("task:no-such-task").is_err());
    assert!(make_env("task:cartpole_discrete").is_err()); // discrete controls
    assert!(DmcEnv::new("pendulum").is_err());
    assert!(TaskEnv::new("no-such-task").is_err());

    for name in ["pendulum-swingup", "reacher-easy", "task:pendulum"] {
        let mut env = make_env(name).expect(name);
        let (n, m) = (env.obs_dim(), env.action_dim());
        let mut obs = vec![0.0; n];
        let mut short = vec![0.0; n - 1];
        let err = env.step(&vec![0.0; m], &mut obs).expect_err("before reset");
        assert!(err.to_string().contains("reset"), "{err}");
        assert!(is_dimension_error(
            &env.reset(0, &mut short).expect_err("short obs")
        ));
        env.reset(0, &mut obs).expect("reset");
        assert!(is_dimension_error(
            &env.step(&vec![0.0; m + 1], &mut obs)
                .expect_err("long action")
        ));
        assert!(is_dimension_error(
            &env.step(&vec![0.0; m], &mut short).expect_err("short obs")
        ));
        for bad in [f64::NAN, f64::INFINITY] {
            let mut action = vec![0.0; m];
            action[m - 1] = bad;
            let err = env.step(&action, &mut obs).expect_err("non-finite action");
            assert!(
                matches!(
                    err,
                    LearnError::Mppi(mppi::MppiError::NonFinite { index, .. }) if index == m - 1
                ),
                "{err}"
            );
        }
        // refused input changes nothing: the episode goes on, and out-of-range actions clamp
        let before = obs.clone();
        let mut a = obs.clone();
        let mut b = obs.clone();
        let mut twin = make_env(name).expect(name);
        twin.reset(0, &mut b).expect("reset");
        assert_eq!(a, b);
        let r1 = env.step(&vec![7.0; m], &mut a).expect("clamped");
        let r2 = twin.step(&vec![1.0; m], &mut b).expect("bound");
        assert_eq!((r1, &a), (r2, &b), "{name}");
        assert_ne!(a, before);
    }

    // reset_to: lengths, finiteness, the reacher's target
    let mut env = DmcEnv::new("reacher-easy").expect("reacher");
    let mut obs = [0.0; 6];
    let state = |qpos: Vec<f64>, qvel: Vec<f64>, target| DmcState { qpos, qvel, target };
    let ok = [0.1, 0.2];
    for bad in [
        state(vec![0.0], vec![0.0; 2], Some(ok)),
        state(vec![0.0; 2], vec![0.0; 3], Some(ok)),
        state(vec![f64::NAN, 0.0], vec![0.0; 2], Some(ok)),
        state(vec![0.0; 2], vec![0.0; 2], None),
        state(vec![0.0; 2], vec![0.0; 2], Some([f64::NAN, 0.0])),
    ] {
        assert!(env.reset_to(&bad, &mut obs).is_err(), "{bad:?}");
    }
    let mut pendulum = DmcEnv::new("pendulum-swingup").expect("pendulum");
    let mut obs = [0.0; 3];
    let with_target = state(vec![0.0], vec![0.0], Some(ok));
    assert!(pendulum.reset_to(&with_target, &mut obs).is_err());
}

#[test]
fn unstable_physics_is_an_error_and_ends_the_episode() {
    // a velocity beyond MuJoCo's limit (1e10): MuJoCo warns and resets its data, dm_control
    // raises PhysicsError; we return an error rather than the reset state
    let mut env = DmcEnv::new("cartpole-swingup").expect("cartpole");
    let mut obs = vec![0.0; 5];
    let wild = DmcState {
        qpos: vec![0.0, 0.0],
        qvel: vec![0.0, 1e12],
        target: None,
    };
    env.reset_to(&wild, &mut obs)
        .expect("a finite state is accepted");
    let err = env.step(&[0.0], &mut obs).expect_err("unstable");
    assert!(err.to_string().contains("unstable"), "{err}");
    let err = env.step(&[0.0], &mut obs).expect_err("episode over");
    assert!(err.to_string().contains("reset"), "{err}");
    env.reset(0, &mut obs).expect("reset");
    env.step(&[0.0], &mut obs).expect("a new episode");
}
