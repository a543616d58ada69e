//! Guided diffusion planning on the pendulum with a denoiser trained on the MPPI expert's data.

use std::sync::Arc;

use mppi_learn::{
    CollectSettings, Dataset, Guidance, PlanSettings, TrainSettings, TrainedDenoiser,
    guided_controller,
};
use mppi_tasks::episode::{EpisodeOptions, run_controller_episode};

#[test]
fn guided_diffusion_planning_swings_the_pendulum_up() {
    let task = mppi_tasks::task_by_name("pendulum").unwrap();
    let t0 = std::time::Instant::now();
    let data = Dataset::collect(
        task.as_ref(),
        &CollectSettings {
            episodes: 40,
            steps: 150,
            window: 16,
            stride: 2,
            expert_samples: Some(256),
            ..CollectSettings::default()
        },
        |_| {},
    )
    .unwrap();
    println!(
        "collect: {} windows in {:.1} s (expert mean cost {:.1})",
        data.len(),
        t0.elapsed().as_secs_f64(),
        data.expert_mean_cost
    );
    let t1 = std::time::Instant::now();
    let settings = TrainSettings {
        steps: 3000,
        hidden: 128,
        ..TrainSettings::default()
    };
    let (model, report) = TrainedDenoiser::train(&data, &settings, 250, |s, l| {
        println!("step {s}: loss {l:.4}")
    })
    .unwrap();
    println!(
        "train: {:.1} s, final loss {:.4}",
        t1.elapsed().as_secs_f64(),
        report.loss_curve.last().unwrap().1
    );
    let model: Arc<dyn mppi::guided::Denoiser> = Arc::new(model);
    for (guidance, spread, scale, samples) in [
        (Guidance::Mppi, 1.0, 0.0, 64),
        (Guidance::Mppi, 3.0, 0.0, 64),
        (Guidance::Mppi, 3.0, 0.0, 256),
        (Guidance::Gradient, 0.0, 0.01, 2),
        (Guidance::Gradient, 0.0, 0.1, 2),
        (Guidance::Gradient, 0.0, 1.0, 2),
        (Guidance::Both, 3.0, 0.1, 64),
        (Guidance::None, 0.0, 0.0, 2),
    ] {
        let t2 = std::time::Instant::now();
        let ps = PlanSettings {
            guidance,
            sample_spread: spread,
            gradient_scale: scale,
            samples,
            ..PlanSettings::default()
        };
        let (ctrl, _) = guided_controller(
            task.as_ref(),
            Arc::clone(&model),
            &ps,
            &task.default_config(),
        )
        .unwrap();
        let options = EpisodeOptions {
            steps: 200,
            ..EpisodeOptions::default()
        };
        let ep = run_controller_episode(task.as_ref(), ctrl, &options, &mut ()).unwrap();
        let outcome = task.success(&ep);
        println!(
            "{guidance:?} spread {spread} scale {scale} K {samples}: cost {:.1}, success {} ({}), {:.2} ms/step",
            ep.total_cost(),
            outcome.success,
            outcome.message,
            t2.elapsed().as_secs_f64() * 1000.0 / 200.0
        );
    }
}
