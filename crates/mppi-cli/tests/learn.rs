//! End-to-end test of `mppi learn`: a short run writes every record, plot and checkpoint, a
//! resumed run extends it, and bad settings are one-line errors naming the key.

use std::process::{Command, Output};

fn mppi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mppi"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the mppi binary starts")
}

const SMALL: [&str; 10] = [
    "--config",
    "../../configs/po-mpc-small.toml",
    "--set",
    "agent.seed_steps=500",
    "--set",
    "run.eval_episodes=1",
    "--set",
    "run.checkpoint_every=500",
    "--variant",
    "vlambda-1",
];

#[test]
fn learn_writes_records_plots_and_checkpoints_and_resumes() {
    let dir = std::env::temp_dir().join(format!("mppi-cli-learn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().expect("utf-8 path");
    let mut args = vec![
        "learn",
        "cartpole-swingup",
        "--steps",
        "600",
        "-q",
        "--out",
        out,
    ];
    args.extend(SMALL);
    let run = mppi(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for file in [
        "config.toml",
        "train.csv",
        "eval.csv",
        "summary.json",
        "learning_curve.png",
        "mechanism.png",
        "checkpoint/state.json",
        "checkpoint/replay.bin",
    ] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], 600);
    assert!(
        summary["final_return"]
            .as_f64()
            .is_some_and(|r| (0.0..=1000.0).contains(&r))
    );
    // CPU time is read from /proc (Linux, where CI runs) and carried through the checkpoint
    let cpu = summary["train_cpu_seconds"].as_f64().unwrap();
    assert!(cpu > 0.0 && summary["steps_per_cpu_second"].as_f64().unwrap() > 0.0);
    // extend the finished run
    let resumed = mppi(&[
        "learn",
        "cartpole-swingup",
        "--steps",
        "700",
        "-q",
        "--out",
        out,
        "--resume",
    ]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], 700);
    assert!(summary["train_cpu_seconds"].as_f64().unwrap() > cpu);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_learn_settings_are_one_line_errors() {
    for (args, key) in [
        (
            vec![
                "learn",
                "cartpole-swingup",
                "--set",
                "agent.laten=3",
                "--print-config",
            ],
            "laten",
        ),
        (vec!["learn", "cartpol", "--print-config"], "cartpol"),
        (
            vec![
                "learn",
                "cartpole-swingup",
                "--variant",
                "v7",
                "--print-config",
            ],
            "v7",
        ),
        (
            vec![
                "learn",
                "cartpole-swingup",
                "--set",
                "agent.tau=-1",
                "--steps",
                "5",
            ],
            "tau",
        ),
        (
            vec![
                "learn",
                "cartpole-swingup",
                "--set",
                "bogus=1",
                "--print-config",
            ],
            "bogus",
        ),
    ] {
        let out = mppi(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{args:?}: {err}");
    }
}
