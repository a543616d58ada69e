//! How the sampling spread evolves in closed loop (a development aid for choosing the
//! adaptive families' defaults):
//! `spread_trace <task> <seeds> [key=value ...]`, e.g.
//! `cargo run --release -p mppi-tasks --example spread_trace -- double_integrator 0-9 'proposal = { kind = "gaussian_diag", prior_weight = 0.0 }'`.
//!
//! `<seeds>` is `N` or `A-B`. Overrides are TOML `key = value` pairs applied over the task's
//! default config (a section is replaced whole, so give its `kind`; strings need TOML quotes). For every seed it prints success, the total
//! cost, the mean ESS fraction and the sampling spread: the RMS of the perturbations
//! `U_i − μ` over every sample and plan entry, divided by the RMS of the configured
//! `noise_sigma` (1 = the initial spread of a Gaussian family), at the first step, its median
//! over the episode, its minimum and its value at the last step.
use mppi_tasks::{Task, controller, task_by_name};

fn config_with(task: &dyn Task, overrides: &[String]) -> mppi::MppiConfig {
    let mut table = toml::Table::try_from(task.default_config()).expect("config serializes");
    for kv in overrides {
        let extra: toml::Table = toml::from_str(kv).expect("override parses as TOML");
        table.extend(extra);
    }
    table.try_into().expect("overridden config is valid")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = task_by_name(&args[0]).expect("task");
    let seeds: Vec<u64> = match args[1].split_once('-') {
        Some((a, b)) => (a.parse().expect("seed")..=b.parse().expect("seed")).collect(),
        None => vec![args[1].parse().expect("seed")],
    };
    let base = config_with(task.as_ref(), &args[2..]);
    let sigma0 = {
        let s = base
            .proposal
            .noise_sigma
            .clone()
            .unwrap_or_else(|| vec![1.0]);
        (s.iter().map(|v| v * v).sum::<f64>() / s.len() as f64).sqrt()
    };
    let n = task.dynamics().state_dim();
    let (mut passed, mut spreads_min) = (0, f64::INFINITY);
    println!("seed ok   cost      ess%  spread: first median   min      last");
    for seed in &seeds {
        let config = mppi::MppiConfig {
            seed: *seed,
            ..base.clone()
        };
        let mut ctrl = controller(task.as_ref(), &config).expect("controller");
        if let Some(plan) = task.initial_plan(config.horizon) {
            ctrl.set_plan(&plan).expect("plan");
        }
        let mut x = task.initial_state();
        let mut next = vec![0.0; n];
        let (mut states, mut controls, mut total_cost) = (vec![x.clone()], Vec::new(), 0.0);
        let (mut spread, mut ess) = (Vec::new(), 0.0);
        for _ in 0..task.default_steps() {
            let u = ctrl.act(&x).expect("step").to_vec();
            let eps = ctrl.planner().perturbations();
            let rms = (eps.iter().map(|e| e * e).sum::<f64>() / eps.len() as f64).sqrt();
            spread.push(rms / sigma0);
            ess += ctrl.report().last().weights.ess / config.samples as f64;
            total_cost += task.stage_cost(&x, &u);
            task.plant_step(&x, &u, &mut next);
            x.copy_from_slice(&next);
            states.push(x.clone());
            controls.push(u);
        }
        let outcome = mppi_tasks::judge(task.as_ref(), &states, &controls);
        passed += usize::from(outcome.success);
        let mut sorted = spread.clone();
        sorted.sort_by(f64::total_cmp);
        spreads_min = spreads_min.min(sorted[0]);
        println!(
            "{seed:>4} {:<4} {:>9.2} {:>5.1}         {:.4}  {:.4}  {:.2e} {:.2e}",
            if outcome.success { "yes" } else { "NO" },
            total_cost,
            100.0 * ess / spread.len() as f64,
            spread[0],
            sorted[sorted.len() / 2],
            sorted[0],
            spread[spread.len() - 1],
        );
    }
    println!(
        "passed {passed}/{} ; smallest spread {spreads_min:.2e}",
        seeds.len()
    );
}
