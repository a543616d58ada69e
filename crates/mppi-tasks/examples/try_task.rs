//! Run a task with its default config and print the outcome (a development aid).
use mppi_tasks::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let task = task_by_name(&args[1]).expect("task");
    let mut cfg = task.default_config();
    for kv in &args[2..] {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "seed" => cfg.seed = v.parse().unwrap(),
            "lambda" => cfg.lambda = v.parse().unwrap(),
            "samples" => cfg.samples = v.parse().unwrap(),
            "horizon" => cfg.horizon = v.parse().unwrap(),
            "sigma" => cfg.noise_sigma = vec![v.parse().unwrap()],
            _ => panic!("key"),
        }
    }
    let t = std::time::Instant::now();
    let ep = run_episode(
        task.as_ref(),
        &cfg,
        &EpisodeOptions {
            steps: task.default_steps(),
            ..Default::default()
        },
        |_| {},
    )
    .unwrap();
    let o = task.success(&ep);
    println!(
        "{} success={} cost={:.2} {} ({:.2}s)",
        task.name(),
        o.success,
        ep.total_cost(),
        o.message,
        t.elapsed().as_secs_f64()
    );
}
