//! Train the agent briefly and print its throughput: planning time per decision, update time,
//! and agent steps per second including updates.
//!
//! `cargo run --release -p mppi-learn --example agent_speed -- [env] [variant] [steps] [seed_steps]`

use std::time::Instant;

use mppi_learn::agent::{AgentSettings, PolicySettings, Progress, RunSettings, Trainer};
use mppi_learn::make_env;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let env_name = args.get(1).map_or("pendulum-swingup", String::as_str);
    let variant = args.get(2).map_or("v0", String::as_str);
    let steps: usize = args.get(3).map_or(Ok(1500), |s| s.parse())?;
    let seed_steps: usize = args.get(4).map_or(Ok(1000), |s| s.parse())?;
    let agent = AgentSettings {
        seed_steps,
        ..AgentSettings::default()
    };
    let run = RunSettings {
        steps,
        eval_every: 0,
        eval_episodes: 1,
        checkpoint_every: 0,
        ..RunSettings::default()
    };
    let mut trainer = Trainer::new(
        make_env(env_name)?,
        make_env(env_name)?,
        agent,
        PolicySettings::variant(variant)?,
        run,
    )?;
    let start = Instant::now();
    let mut last = Instant::now();
    trainer.train(None, |p| match p {
        Progress::Step(s) if s % 250 == 0 => {
            println!(
                "step {s}: {:.1} steps/s",
                250.0 / last.elapsed().as_secs_f64()
            );
            last = Instant::now();
        }
        Progress::Episode(e) => println!(
            "episode at {}: return {:.1}, kl {:.3}, losses {:?}",
            e.step, e.ret, e.kl_planner, e.losses
        ),
        Progress::Eval(e) => println!(
            "eval at {}: {:.1} (gap {:.2}, q {:.2}, kl {:.3})",
            e.step, e.mean, e.q_gap, e.q_mean, e.kl_planner
        ),
        _ => {}
    })?;
    println!("total {:.1} s", start.elapsed().as_secs_f64());
    println!("{}", serde_json::to_string(&trainer.summary(variant))?);
    Ok(())
}
