//! End-to-end tests of `mppi run <task> --realtime`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn mppi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mppi"))
        .args(args)
        .output()
        .expect("the mppi binary starts")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh directory under the system temp dir, unique to this process.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mppi-cli-rt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The command failed cleanly: expected status, exactly one `error: ` line, no panic.
#[track_caller]
fn assert_clean_error(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` missing from: {err}");
    }
}

#[test]
fn realtime_run_writes_the_timing() {
    let dir = temp_dir("pendulum");
    let dir_arg = dir.to_string_lossy().into_owned();
    let o = mppi(&[
        "run",
        "pendulum",
        "--realtime",
        "--rate",
        "100",
        "--steps",
        "40",
        "--set",
        "samples=128",
        "--out",
        &dir_arg,
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {}", stderr(&o));
    for needle in [
        "Hz achieved of 100.00 Hz asked over 40 ticks",
        "p50",
        "p95",
        "missed",
        "jitter",
        "latency",
    ] {
        assert!(out.contains(needle), "`{needle}` missing from:\n{out}");
    }
    for name in [
        "timing.csv",
        "timing.png",
        "timing.svg",
        "timing.json",
        "trajectory.csv",
        "summary.json",
        "states.png",
        "episode.gif",
    ] {
        let path = dir.join(name);
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(len > 0, "{name} is empty");
    }
    let timing = std::fs::read_to_string(dir.join("timing.csv")).expect("timing.csv");
    let lines: Vec<&str> = timing.lines().collect();
    assert_eq!(lines.len(), 1 + 40);
    assert!(lines[0].contains("planning_time [ms]"), "{}", lines[0]);
    let columns = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == columns));
    let trajectory = std::fs::read_to_string(dir.join("trajectory.csv")).expect("trajectory");
    assert_eq!(trajectory.lines().count(), 1 + 41);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("timing.json")).expect("timing.json"),
    )
    .expect("JSON");
    assert_eq!(json["timing"]["ticks"], 40);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn realtime_options_are_checked() {
    // usage errors: one line, status 2
    let cases: [(&[&str], &[&str]); 8] = [
        (&["--rate", "100"], &["--realtime"]),
        (&["--deadline", "5"], &["--realtime"]),
        (&["--latency", "5"], &["--realtime"]),
        (&["--realtime", "--rate", "0"], &["--rate", "> 0"]),
        (&["--realtime", "--rate", "NaN"], &["--rate", "finite"]),
        (&["--realtime", "--deadline", "-1"], &["--deadline", "> 0"]),
        (&["--realtime", "--latency", "-1"], &["--latency", ">= 0"]),
        // pendulum: 30 ticks of 50 ms
        (
            &["--realtime", "--latency", "1500"],
            &["latency", "horizon"],
        ),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["run", "pendulum", "--steps", "5"];
        args.extend_from_slice(flags);
        let o = mppi(&args);
        assert_clean_error(&o, 2, needles);
    }
}

#[test]
fn a_mujoco_task_runs_in_real_time() {
    let dir = std::env::temp_dir().join(format!("mppi-rt-mujoco-{}", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_mppi"))
        .args([
            "run",
            "mj-reacher",
            "--realtime",
            "--steps",
            "25",
            "--quiet",
            "--out",
        ])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let csv = std::fs::read_to_string(dir.join("timing.csv")).expect("timing.csv");
    assert_eq!(csv.lines().count(), 1 + 25, "one row per tick:\n{csv}");
    let trajectory = std::fs::read_to_string(dir.join("trajectory.csv")).expect("trajectory");
    assert!(trajectory.starts_with("step,time [s],q.shoulder [rad],q.wrist [rad]"));
    let _ = std::fs::remove_dir_all(&dir);
}
