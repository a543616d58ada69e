//! The MuJoCo crate against MuJoCo itself and against the theory of its costs.

use std::sync::Arc;

use mppi::{Cost, Dynamics, MppiConfig};
use mppi_mujoco::{MujocoError, MujocoModel, MujocoTask, suite};
use mppi_tasks::{EpisodeOptions, Task, run_episode};
use mujoco_rs::prelude::*;

const PENDULUM: &str = r#"<mujoco><option timestep="0.01"/>
  <worldbody><body name="pole"><joint name="hinge" axis="0 1 0" damping="0.1"/>
  <geom type="capsule" size="0.05" fromto="0 0 0 0 0 0.5" mass="1"/></body></worldbody>
  <actuator><motor name="torque" joint="hinge" ctrlrange="-2 2" ctrllimited="true"/></actuator>
</mujoco>"#;

#[test]
fn a_control_step_is_frame_skip_mujoco_steps() {
    let model = MujocoModel::from_xml_string(PENDULUM, 3).expect("loads");
    let dynamics = model.dynamics();
    let x = [0.3, -0.2];
    let mut next = [0.0; 2];
    dynamics.step(&x, &[1.5], &mut next);
    let mut data = model.rollout_data();
    data.qpos_mut()[0] = 0.3;
    data.qvel_mut()[0] = -0.2;
    data.ctrl_mut()[0] = 1.5;
    for _ in 0..3 {
        data.step();
    }
    assert_eq!(next, [data.qpos()[0], data.qvel()[0]]);
    assert!((model.control_dt() - 0.03).abs() < 1e-15);
}

#[test]
fn a_block_of_lanes_equals_lane_by_lane_steps_whatever_ran_before() {
    let task = suite::task_by_name("mj-cheetah").expect("suite task");
    let dynamics = task.dynamics();
    let (n, m, lanes) = (dynamics.state_dim(), dynamics.control_dim(), 5);
    let x0 = task.initial_state();
    let mut x = vec![0.0; n * lanes];
    let mut u = vec![0.0; m * lanes];
    for l in 0..lanes {
        for i in 0..n {
            x[i * lanes + l] = x0[i] + 0.01 * (l as f64) * ((i % 3) as f64);
        }
        for j in 0..m {
            u[j * lanes + l] = ((l + j) as f64 * 0.37).sin();
        }
    }
    let mut next = vec![0.0; n * lanes];
    let mut tmp = vec![0.0; 2 * n + m];
    dynamics.step_block(lanes, &x, &u, &mut next, &mut tmp);
    // In reverse order, so each lane's pooled data last stepped a different state: with contacts
    // the solver would remember it if the warm start were on.
    for l in (0..lanes).rev() {
        let xl: Vec<f64> = (0..n).map(|i| x[i * lanes + l]).collect();
        let ul: Vec<f64> = (0..m).map(|j| u[j * lanes + l]).collect();
        let mut nl = vec![0.0; n];
        dynamics.step(&xl, &ul, &mut nl);
        for i in 0..n {
            assert_eq!(
                nl[i].to_bits(),
                next[i * lanes + l].to_bits(),
                "lane {l} entry {i}"
            );
        }
    }
}

#[test]
fn a_state_that_is_not_finite_steps_to_nan_not_to_a_reset() {
    let model = MujocoModel::from_xml_string(PENDULUM, 1).expect("loads");
    let mut next = [0.0; 2];
    model.dynamics().step(&[f64::NAN, 0.0], &[0.0], &mut next);
    assert!(next.iter().all(|v| v.is_nan()));
    // A velocity MuJoCo calls unstable (|qvel| > 1e10) is reset to qpos0 by MuJoCo: NaN here.
    model.dynamics().step(&[0.0, 1e12], &[0.0], &mut next);
    assert!(next.iter().all(|v| v.is_nan()), "{next:?}");
}

#[test]
fn the_pole_axis_cost_is_one_minus_cos_theta() {
    let task = suite::task_by_name("mj-cartpole").expect("suite task");
    let cost = task.cost();
    for theta in [0.0, 0.4, -1.3, 3.0, 3.1, 5.0] {
        let x = [0.0, theta, 0.0, 0.0];
        // the cart term, the velocity term and the control term are zero here
        let expected = 10.0 * (1.0 - f64::cos(theta));
        let got = cost.running(&x, &[0.0], 0);
        assert!(
            (got - expected).abs() < 1e-12,
            "θ = {theta}: {got} vs {expected}"
        );
        assert!((cost.terminal(&x) - expected).abs() < 1e-12);
    }
    // weights of the other terms: ½·1·x² + ½·0.02·θ̇² + ½·0.1·u²
    let got = cost.running(&[0.5, 0.0, 0.0, 2.0], &[0.6], 0);
    let expected = 0.5 * 0.25 + 0.5 * 0.02 * 4.0 + 0.5 * 0.1 * 0.36;
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    // and the terminal cost has no control term
    let terminal = cost.terminal(&[0.5, 0.0, 0.0, 2.0]);
    assert!((terminal - (0.5 * 0.25 + 0.5 * 0.02 * 4.0)).abs() < 1e-12);
}

#[test]
fn the_reacher_distance_sensor_is_the_fingertip_to_target_distance() {
    let task = suite::task_by_name("mj-reacher").expect("suite task");
    // fingertip at (0.12 cos a + 0.12 cos(a + b), ...), target at (-0.1, 0.12)
    for (a, b) in [(0.0, 0.0), (1.0, 0.5), (2.5, -1.0)] {
        let tip = [
            0.12 * f64::cos(a) + 0.12 * f64::cos(a + b),
            0.12 * f64::sin(a) + 0.12 * f64::sin(a + b),
        ];
        let d = ((tip[0] + 0.1).powi(2) + (tip[1] - 0.12).powi(2)).sqrt();
        let got = task.success_value(&[a, b, 0.0, 0.0]);
        assert!((got - d).abs() < 1e-12, "{got} vs {d}");
    }
}

#[test]
fn names_units_and_bounds_come_from_the_model() {
    let task = suite::task_by_name("mj-cheetah").expect("suite task");
    assert_eq!(task.state_names().len(), 18);
    assert_eq!(task.state_names()[0], "q.rootx");
    assert_eq!(task.state_names()[9], "v.rootx");
    assert_eq!(task.control_names()[5], "u.ffoot");
    let config = task.default_config();
    assert_eq!(config.u_min.as_deref(), Some(&[-1.0; 6][..]));
    assert_eq!(config.u_max.as_deref(), Some(&[1.0; 6][..]));
    assert!((task.dt() - 0.02).abs() < 1e-15);
}

#[test]
fn bad_models_and_task_files_are_errors_that_say_what_is_wrong() {
    let err = MujocoModel::from_xml_string("<mujoco><worldbody><body/></mujoco>", 1).unwrap_err();
    assert!(matches!(err, MujocoError::Load { .. }), "{err}");
    let err = MujocoModel::from_xml_string(PENDULUM, 0).unwrap_err();
    assert!(err.to_string().contains("frame_skip"), "{err}");
    let no_actuator =
        r#"<mujoco><worldbody><body><joint/><geom size="0.1"/></body></worldbody></mujoco>"#;
    assert!(
        MujocoModel::from_xml_string(no_actuator, 1)
            .unwrap_err()
            .to_string()
            .contains("actuator")
    );
    let err = MujocoModel::from_xml_file(std::path::Path::new("/no/such/file.xml"), 1).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");

    let task = |cost: &str, extra: &str| {
        let toml = format!(
            "name = \"p\"\ndescription = \"d\"\nmodel = \"m.xml\"\nsteps = 10\n{extra}\n\
             [[cost]]\n{cost}\n[success]\nvalue = \"qpos:hinge\"\nbelow = 0.1\nmode = \"reach\"\n"
        );
        MujocoTask::from_strings(&toml, PENDULUM)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(task("residual = \"qpos:hinge\"\nweight = 1.0", ""), Ok(()));
    let cases = [
        (
            "residual = \"qpos:hnge\"\nweight = 1.0",
            "",
            "no joint named `hnge`",
        ),
        (
            "residual = \"angle:hinge\"\nweight = 1.0",
            "",
            "unknown residual",
        ),
        (
            "residual = \"qpos:hinge\"\nweight = 1.0\ntarget = [1.0, 2.0]",
            "",
            "target has 2",
        ),
        (
            "residual = \"qpos:hinge\"\nweight = 1.0\nnorm = \"l3\"",
            "",
            "unknown variant",
        ),
        (
            "residual = \"qpos:hinge\"\nwieght = 1.0",
            "",
            "unknown field",
        ),
        (
            "residual = \"ctrl\"\nweight = 1.0\nterminal_weight = 1.0",
            "",
            "terminal",
        ),
        (
            "residual = \"qpos:hinge\"\nweight = 1.0",
            "initial_qpos = [1.0, 2.0]",
            "initial_qpos",
        ),
        (
            "residual = \"qpos:hinge\"\nweight = 1.0",
            "[planner]\nsamples = 0",
            "samples",
        ),
        (
            "residual = \"qpos:hinge\"\nweight = 1.0",
            "[planner]\nsamplez = 10",
            "samplez",
        ),
        ("residual = \"qpos:hinge\"\nweight = nan", "", "finite"),
    ];
    for (cost, extra, needle) in cases {
        let err = task(cost, extra).expect_err(needle);
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    }
}

fn short_episode(task: &MujocoTask, config: &MppiConfig, steps: usize) -> Vec<Vec<f64>> {
    let options = EpisodeOptions {
        steps,
        ..Default::default()
    };
    run_episode(task, config, &options, |_| {})
        .expect("episode")
        .states
}

#[test]
fn planning_is_deterministic_for_any_thread_count() {
    let task = suite::task_by_name("mj-cheetah").expect("suite task");
    let mut config = task.default_config();
    config.samples = 48;
    let one = short_episode(&task, &config, 12);
    config.threads = 2;
    let two = short_episode(&task, &config, 12);
    assert_eq!(one, two);
    // and a second episode in the same process (the plant's data starts afresh)
    assert_eq!(short_episode(&task, &config, 12), two);
}

#[test]
fn every_suite_task_succeeds_in_closed_loop_with_its_defaults() {
    for task in suite::tasks() {
        let config = task.default_config();
        let options = EpisodeOptions {
            steps: task.default_steps(),
            ..Default::default()
        };
        let episode = run_episode(&task, &config, &options, |_| {}).expect("episode");
        assert!(
            episode.outcome.success,
            "{}: {}",
            task.name(),
            episode.outcome.message
        );
    }
}

#[test]
fn the_plant_is_one_persistent_mjdata_like_dm_control() {
    // Stepping the plant from its own last state keeps the solver's warm start, exactly as a
    // persistent MjData stepped by hand (what dm_control and the Python replay do).
    let task = suite::task_by_name("mj-cheetah").expect("suite task");
    let model = task.model();
    let mut data = MjData::new(Arc::clone(model.mj_model()));
    let mut x = task.initial_state();
    let mut next = vec![0.0; x.len()];
    let (nq, nv, _, nu) = model.sizes();
    data.qpos_mut().copy_from_slice(&x[..nq]);
    for k in 0..60 {
        let u: Vec<f64> = (0..nu).map(|j| ((k * 7 + j) as f64 * 0.3).sin()).collect();
        task.plant_step(&x, &u, &mut next);
        data.ctrl_mut().copy_from_slice(&u);
        for _ in 0..model.frame_skip() {
            data.step();
        }
        assert_eq!(&next[..nq], data.qpos(), "step {k}");
        assert_eq!(&next[nq..nq + nv], data.qvel(), "step {k}");
        x.copy_from_slice(&next);
    }
}

#[test]
fn the_energy_residual_is_mujocos_potential_plus_kinetic_energy() {
    let task = suite::task_by_name("mj-acrobot").expect("suite task");
    let cost = task.cost();
    // Upright at rest: the energy target (m g h = 9.81 · (2.5 + 3.5)) and the tip on the target.
    assert!(cost.running(&[0.0, 0.0, 0.0, 0.0], &[0.0], 0).abs() < 1e-9);
    // Hanging at rest: 9.81 · (1.5 + 0.5) = 19.62 J, the tip 4 m below the target.
    let expected = 0.1 * 0.5 * (58.86f64 - 19.62).powi(2) + 0.5 * 0.5 * 16.0;
    let got = cost.running(&[std::f64::consts::PI, 0.0, 0.0, 0.0], &[0.0], 0);
    assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
    // Moving adds kinetic energy: a spinning shoulder at the bottom has more than at rest.
    let spinning = cost.running(&[std::f64::consts::PI, 0.0, 2.0, 0.0], &[0.0], 0);
    assert!(spinning < got);
}
