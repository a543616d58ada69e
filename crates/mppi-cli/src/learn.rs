//! `mppi learn <env>`: train the TD-MPC2-style agent with one PO-MPC variant (docs/theory.md
//! §G), with a progress bar, checkpoints that resume, CSV/JSON records and plots.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mppi_learn::agent::{
    AgentSettings, EvalRecord, PolicySettings, Progress, RunSettings, Summary, Trainer,
};
use mppi_learn::make_env;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CliError;
use crate::plots::{PlotLine, register_font, write_line_plot};

/// Options of `mppi learn`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
mppi learn cartpole-swingup --variant v0 --steps 20000 --seed 0 --out out/learn/cp-v0\n  \
mppi learn pendulum-swingup --variant vlambda-1 --set agent.samples=128 --set run.eval_every=2000\n  \
mppi learn cartpole-swingup --out out/learn/cp-v0 --resume --steps 40000\n\n\
Variants (docs/theory.md §G.3, §G.5): v0 (λ = 0, TD-MPC2), vinf (imitate the planner, BMPC),\n\
vinf-reanalyze, vtd (TD-M(PC)²), vlambda-<λ> (PO-MPC with the stored planner prior, e.g.\n\
vlambda-0.1, vlambda-1), vtilde[-<λ>] (PO-MPC with the intermediate prior, λ = 1).\n\
Every setting is a key of [agent], [policy] or [run] in a TOML file (--config) or a --set;\n\
`mppi learn <env> --print-config` prints them all.\n\n\
Writes into --out: config.toml (the effective settings), train.csv (one row per episode),\n\
eval.csv, summary.json, learning_curve.png, losses.png, mechanism.png (KL(π‖planner) and the\n\
value-overestimation gap) and checkpoint/ (resumed with --resume).")]
pub struct LearnArgs {
    /// Environment: a dm_control task on MuJoCo (cartpole-swingup, pendulum-swingup,
    /// acrobot-swingup, reacher-easy) or a built-in task as `task:<name>`.
    #[arg(value_name = "ENV")]
    pub env: String,
    /// The policy update: a member of the PO-MPC family.
    #[arg(long, default_value = "v0")]
    pub variant: String,
    /// Agent steps (decisions) to train for.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of the run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory (default `out/learn/<env>_<variant>_seed<seed>`).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A TOML file with [agent], [policy] and [run] sections.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one setting, `section.key=value` (TOML value), e.g. `agent.samples=128`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue the run checkpointed in the output directory.
    #[arg(long)]
    pub resume: bool,
    /// Print the effective settings as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The settings of a run, as one TOML document.
#[derive(Debug, Serialize)]
struct Settings {
    agent: AgentSettings,
    policy: PolicySettings,
    run: RunSettings,
}

/// Lay `over` onto `base` key by key (tables merged recursively).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A section's defaults with the user's keys laid over, deserialized (unknown keys rejected).
fn section<T: Serialize + DeserializeOwned>(
    name: &str,
    defaults: &T,
    user: &toml::Table,
) -> Result<T, CliError> {
    let mut table = toml::Table::try_from(defaults)
        .map_err(|e| CliError::runtime(format!("[{name}] defaults: {e}")))?;
    if let Some(v) = user.get(name) {
        let Some(t) = v.as_table() else {
            return Err(CliError::usage(format!(
                "`{name}` must be a table ([{name}])"
            )));
        };
        merge(&mut table, t.clone());
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| CliError::usage(format!("[{name}]: {e}")))
}

/// The user's table from `--config` and `--set`.
fn user_table(args: &LearnArgs) -> Result<toml::Table, CliError> {
    let mut table = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("cannot read `{}`: {e}", path.display())))?;
            text.parse::<toml::Table>().map_err(|e| {
                CliError::usage(format!("`{}` is not valid TOML: {e}", path.display()))
            })?
        }
        None => toml::Table::new(),
    };
    for item in &args.set {
        let (key, value) = item.split_once('=').ok_or_else(|| {
            CliError::usage(format!(
                "--set `{item}`: write section.key=value, e.g. agent.samples=128"
            ))
        })?;
        let parsed: toml::Table = format!("{} = {}", key.trim(), value.trim())
            .parse()
            .or_else(|_| format!("{} = \"{}\"", key.trim(), value.trim()).parse())
            .map_err(|e| CliError::usage(format!("--set `{item}`: {e}")))?;
        let sections = ["agent", "policy", "run"];
        if !sections.iter().any(|s| parsed.contains_key(*s)) {
            return Err(CliError::usage(format!(
                "--set `{item}`: the key must start with agent., policy. or run."
            )));
        }
        merge(&mut table, parsed);
    }
    if let Some(k) = table
        .keys()
        .find(|k| !["agent", "policy", "run"].contains(&k.as_str()))
    {
        return Err(CliError::usage(format!(
            "unknown section `{k}`: the settings are [agent], [policy] and [run]"
        )));
    }
    Ok(table)
}

/// `mppi learn`.
pub fn learn(args: &LearnArgs) -> Result<(), CliError> {
    // the errors of `make_env` and `variant` list the valid names themselves
    let make = |name: &str| make_env(name).map_err(|e| CliError::usage(e.to_string()));
    let env = make(&args.env)?;
    let eval_env = make(&args.env)?;
    let user = user_table(args)?;
    let preset =
        PolicySettings::variant(&args.variant).map_err(|e| CliError::usage(e.to_string()))?;
    let agent: AgentSettings = section("agent", &AgentSettings::default(), &user)?;
    let policy: PolicySettings = section("policy", &preset, &user)?;
    let mut run: RunSettings = section("run", &RunSettings::default(), &user)?;
    if let Some(s) = args.steps {
        run.steps = s;
    }
    if let Some(s) = args.seed {
        run.seed = s;
    }
    let settings = Settings { agent, policy, run };
    // bad settings fail before anything is written
    let usage = |e: mppi_learn::LearnError| CliError::usage(e.to_string());
    settings.agent.validate().map_err(usage)?;
    settings.policy.validate().map_err(usage)?;
    settings.run.validate().map_err(usage)?;
    let text = toml::to_string(&settings).map_err(|e| CliError::runtime(e.to_string()))?;
    if args.print_config {
        print!("{text}");
        return Ok(());
    }
    let out = args.out.clone().unwrap_or_else(|| {
        mppi_learn::agent::train::default_out_dir(&args.env, &args.variant, settings.run.seed)
    });
    crate::commands::create_out_dir(&out)?;
    let checkpoint = out.join("checkpoint");
    let mut trainer = if args.resume {
        if !checkpoint.join("state.json").exists() {
            return Err(CliError::usage(format!(
                "--resume: no checkpoint in `{}` (runs write one every run.checkpoint_every steps)",
                checkpoint.display()
            )));
        }
        Trainer::resume(&checkpoint, env, eval_env, args.steps).map_err(runtime)?
    } else {
        Trainer::new(
            env,
            eval_env,
            settings.agent.clone(),
            settings.policy.clone(),
            settings.run.clone(),
        )
        .map_err(|e| CliError::usage(e.to_string()))?
    };
    if !args.resume {
        std::fs::write(out.join("config.toml"), &text)
            .map_err(|e| CliError::runtime(format!("cannot write config.toml: {e}")))?;
    }
    let steps = args.steps.unwrap_or(settings.run.steps);
    let bar = progress_bar(steps, &args.env, args.quiet);
    bar.set_position(trainer.step() as u64);
    let mut last_eval = String::new();
    let result = trainer.train(Some(&checkpoint), |p| match p {
        Progress::Step(s) => bar.set_position(s as u64),
        Progress::Episode(e) => {
            let l = &e.losses;
            bar.set_message(format!(
                "return {:.0} | KL(π‖plan) {:.2} | losses cons {:.2e} rew {:.3} val {:.3} π {:.3}{}",
                e.ret, e.kl_planner, l.consistency, l.reward, l.value, l.policy, last_eval
            ));
        }
        Progress::Eval(e) => {
            last_eval = format!(" | eval {:.0}", e.mean);
            bar.println(format!(
                "eval at step {}: return {:.1} (episodes {:?}), Q̂ − G {:.2}, KL(π‖planner) {:.3}",
                e.step,
                e.mean,
                e.returns.iter().map(|r| r.round()).collect::<Vec<_>>(),
                e.q_gap,
                e.kl_planner
            ));
        }
        Progress::Checkpoint(s) => bar.println(format!("checkpoint at step {s}")),
    });
    bar.finish_and_clear();
    result.map_err(runtime)?;
    let summary = trainer.summary(&args.variant);
    write_records(&out, &trainer, &summary)?;
    println!(
        "{} {}: final return {:.1} after {} steps ({:.1} steps/s with updates, {:.1} per CPU second), \
         KL(π‖planner) {:.3}, Q̂ − G {:.2}\nwritten to {}",
        args.env,
        args.variant,
        summary.final_return,
        summary.steps,
        summary.steps_per_second,
        summary.steps_per_cpu_second,
        summary.kl_planner,
        summary.q_gap,
        out.display()
    );
    Ok(())
}

fn runtime(e: mppi_learn::LearnError) -> CliError {
    CliError::runtime(e.to_string())
}

fn progress_bar(steps: usize, env: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:24.cyan/blue}] {pos}/{len} steps {elapsed_precise} (eta {eta}) {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(env.to_string());
    bar
}

fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text)
        .map_err(|e| CliError::runtime(format!("cannot write `{}`: {e}", path.display())))
}

/// train.csv, eval.csv, summary.json and the plots.
fn write_records(out: &Path, trainer: &Trainer, summary: &Summary) -> Result<(), CliError> {
    let mut train = String::from(
        "step,return,kl_planner,consistency_loss,reward_loss,value_loss,policy_loss,kl_prior,entropy,scale,prior_fit,updates\n",
    );
    for e in trainer.episodes() {
        let l = &e.losses;
        train.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            e.step,
            e.ret,
            e.kl_planner,
            l.consistency,
            l.reward,
            l.value,
            l.policy,
            l.kl_prior,
            l.entropy,
            l.scale,
            l.prior_fit,
            e.updates
        ));
    }
    write_file(&out.join("train.csv"), &train)?;
    let mut eval = String::from("step,return_mean,q_gap,q_mean,kl_planner,returns\n");
    for e in trainer.evals() {
        let returns: Vec<String> = e.returns.iter().map(f64::to_string).collect();
        eval.push_str(&format!(
            "{},{},{},{},{},{}\n",
            e.step,
            e.mean,
            e.q_gap,
            e.q_mean,
            e.kl_planner,
            returns.join(";")
        ));
    }
    write_file(&out.join("eval.csv"), &eval)?;
    let json =
        serde_json::to_string_pretty(summary).map_err(|e| CliError::runtime(e.to_string()))?;
    write_file(&out.join("summary.json"), &json)?;
    register_font().map_err(|e| CliError::from_anyhow(&e))?;
    let plot = |stem: &str, title: &str, y: &str, log: bool, lines: &[PlotLine]| {
        let lines: Vec<PlotLine> = lines
            .iter()
            .filter(|l| l.points.iter().any(|p| p.1.is_finite()))
            .map(|l| PlotLine {
                label: l.label.clone(),
                points: l
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.1.is_finite() && (!log || p.1 > 0.0))
                    .collect(),
                reference: l.reference,
            })
            .filter(|l| !l.points.is_empty())
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        write_line_plot(out, stem, title, "agent steps", y, log, &lines)
            .map(|_| ())
            .map_err(|e| CliError::from_anyhow(&e))
    };
    let episodes = trainer.episodes();
    let series = |f: &dyn Fn(&mppi_learn::agent::EpisodeRecord) -> f64| -> Vec<(f64, f64)> {
        episodes.iter().map(|e| (e.step as f64, f(e))).collect()
    };
    let evals: &[EvalRecord] = trainer.evals();
    let title = format!("{} {}, seed {}", summary.env, summary.variant, summary.seed);
    plot(
        "learning_curve",
        &format!("{title}: return per episode (500 decisions, dm_control scale 0-1000)"),
        "episode return",
        false,
        &[
            PlotLine {
                label: "training episodes (with exploration)".into(),
                points: series(&|e| e.ret),
                reference: false,
            },
            PlotLine {
                label: "evaluation (mean, no exploration noise)".into(),
                points: evals.iter().map(|e| (e.step as f64, e.mean)).collect(),
                reference: true,
            },
        ],
    )?;
    // `write_line_plot`'s log mode is log-log: the first episode's step is > 0, so it reads
    let log_losses: Vec<PlotLine> = [
        (
            "consistency (latent MSE)",
            series(&|e| e.losses.consistency),
        ),
        ("reward cross-entropy", series(&|e| e.losses.reward)),
        ("value cross-entropy", series(&|e| e.losses.value)),
    ]
    .into_iter()
    .map(|(label, points)| PlotLine {
        label: label.into(),
        points,
        reference: false,
    })
    .collect();
    plot(
        "losses",
        &format!("{title}: world-model losses (mean per episode)"),
        "loss",
        true,
        &log_losses,
    )?;
    plot(
        "mechanism",
        &format!("{title}: KL(π ‖ planner) on fresh states and value overestimation Q̂ − G"),
        "KL (nats) / Q̂ − G (return units)",
        false,
        &[
            PlotLine {
                label: "KL(π ‖ planner), training decisions".into(),
                points: series(&|e| e.kl_planner),
                reference: false,
            },
            PlotLine {
                label: "Q̂ − G, evaluation episodes".into(),
                points: evals.iter().map(|e| (e.step as f64, e.q_gap)).collect(),
                reference: true,
            },
        ],
    )
}
