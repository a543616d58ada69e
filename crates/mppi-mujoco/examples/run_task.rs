//! Run a suite task in closed loop and print its outcome and timing:
//! `cargo run --release -p mppi-mujoco --example run_task -- mj-cartpole|FILE.toml [samples] [threads] [steps]`.
use std::time::Instant;

use mppi_tasks::{EpisodeOptions, Task, run_episode};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("mj-cartpole", String::as_str);
    let task = if name.ends_with(".toml") {
        mppi_mujoco::MujocoTask::from_file(std::path::Path::new(name)).expect("a task file")
    } else {
        mppi_mujoco::suite::task_by_name(name).expect("a suite task")
    };
    let mut config = task.default_config();
    if let Some(k) = args.get(2) {
        config.samples = k.parse().expect("samples");
    }
    if let Some(t) = args.get(3) {
        config.threads = t.parse().expect("threads");
    }
    let steps = args
        .get(4)
        .map_or(task.default_steps(), |s| s.parse().expect("steps"));
    let options = EpisodeOptions {
        steps,
        ..Default::default()
    };
    let start = Instant::now();
    let episode = run_episode(&task, &config, &options, |_| {}).expect("episode");
    let wall = start.elapsed().as_secs_f64();
    let sim = steps as f64 * task.dt();
    let values: Vec<f64> = episode
        .states
        .iter()
        .map(|x| task.success_value(x))
        .collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let last = values.last().copied().unwrap_or(f64::NAN);
    println!("success value: min {min:.3} max {max:.3} last {last:.3}");
    println!(
        "{name}: K={} T={} threads={} cost {:.3} success {} ({}) wall {wall:.2} s sim {sim:.2} s rtf {:.2}",
        config.samples,
        config.horizon,
        config.threads,
        episode.cumulative_costs.last().copied().unwrap_or(f64::NAN),
        episode.outcome.success,
        episode.outcome.message,
        sim / wall
    );
}
