//! Run a task with its default config and print the outcome (a development aid).
use mppi_tasks::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let task = task_by_name(&args[1]).expect("task");
    let mut cfg = task.default_config();
    let mut steps = task.default_steps();
    let mut trace = 0usize;
    for kv in &args[2..] {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "seed" => cfg.seed = v.parse().unwrap(),
            "lambda" => cfg.lambda = v.parse().unwrap(),
            "samples" => cfg.samples = v.parse().unwrap(),
            "horizon" => cfg.horizon = v.parse().unwrap(),
            "sigma" => cfg.noise_sigma = vec![v.parse().unwrap()],
            "iters" => cfg.iterations = v.parse().unwrap(),
            "kappa" => {
                cfg.temperature_mode = mppi::TemperatureMode::StdNormalized;
                cfg.std_temperature = v.parse().unwrap();
            }
            "ess" => {
                cfg.temperature_mode = mppi::TemperatureMode::EssTarget;
                cfg.ess_target = v.parse().unwrap();
            }
            "fixed" => {
                cfg.temperature_mode = mppi::TemperatureMode::Fixed;
                cfg.lambda = v.parse().unwrap();
            }
            "gamma" => cfg.control_cost_gamma = v.parse().unwrap(),
            "threads" => cfg.threads = v.parse().unwrap(),
            "discount" => cfg.discount = v.parse().unwrap(),
            "steps" => steps = v.parse().unwrap(),
            "trace" => trace = v.parse().unwrap(),
            "alpha" => cfg.step_size = v.parse().unwrap(),
            "rho" => {
                let r: f64 = v.parse().unwrap();
                let s2 = cfg.noise_sigma[0] * cfg.noise_sigma[0];
                cfg.noise_covariance = Some(vec![vec![s2, r * s2], vec![r * s2, s2]]);
            }
            _ => panic!("key"),
        }
    }
    let t = std::time::Instant::now();
    let ep = run_episode(
        task.as_ref(),
        &cfg,
        &EpisodeOptions {
            steps,
            ..Default::default()
        },
        |_| {},
    )
    .unwrap();
    let o = task.success(&ep);
    let ess: Vec<f64> = ep
        .reports
        .iter()
        .filter_map(|r| r.iterations.last().map(|i| i.weights.ess))
        .collect();
    let mut sorted = ess.clone();
    sorted.sort_by(f64::total_cmp);
    if !sorted.is_empty() {
        println!(
            "ess: median {:.1} min {:.1} max {:.1}",
            sorted[sorted.len() / 2],
            sorted[0],
            sorted[sorted.len() - 1]
        );
    }
    if trace > 0 {
        for (k, x) in ep.states.iter().enumerate().step_by(trace) {
            let xs: Vec<String> = x.iter().map(|v| format!("{v:8.3}")).collect();
            let us: Vec<String> = ep
                .controls
                .get(k)
                .map(|u| u.iter().map(|v| format!("{v:8.3}")).collect())
                .unwrap_or_default();
            println!("{k:4} {} | {}", xs.join(" "), us.join(" "));
        }
    }
    println!(
        "{} success={} cost={:.2} {} ({:.2}s)",
        task.name(),
        o.success,
        ep.total_cost(),
        o.message,
        t.elapsed().as_secs_f64()
    );
}
