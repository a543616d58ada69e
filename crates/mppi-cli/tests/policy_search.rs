//! End-to-end test of `mppi policy-search`: a few EM iterations of a linear policy on the
//! double integrator write every output and lower the policy's cost; bad options are one-line
//! errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn mppi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mppi"))
        .args(args)
        .output()
        .expect("the mppi binary starts")
}

/// A fresh directory under the system temp dir, unique to this process.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mppi-cli-policy-search-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run_and_check(method: &[&str], name: &str) {
    let dir = temp_dir(name);
    let out = dir.to_str().expect("utf-8 path");
    let mut args = vec![
        "policy-search",
        "double_integrator",
        "--iterations",
        "5",
        "--samples",
        "32",
        "--horizon",
        "100",
        "--seed",
        "1",
        "--out",
        out,
    ];
    args.extend_from_slice(method);
    let o = mppi(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{method:?}: {stderr}");
    // one progress line per iteration
    let progress = stdout
        .lines()
        .filter(|l| l.starts_with("iteration"))
        .count();
    assert_eq!(progress, 5, "{stdout}");
    for file in [
        "policy.json",
        "learning_curve.png",
        "learning_curve.svg",
        "trajectory.csv",
        "closed_loop_states.png",
        "closed_loop_controls.png",
    ] {
        let path = dir.join(file);
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(len > 0, "{} is empty", path.display());
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("policy.json")).unwrap()).unwrap();
    let initial = json["initial_policy_cost"].as_f64().expect("initial cost");
    let last = json["final_policy_cost"].as_f64().expect("final cost");
    assert!(
        last < initial,
        "{method:?}: policy cost {initial} -> {last}"
    );
    assert_eq!(json["iterations"].as_array().map(Vec::len), Some(5));
    // u = K x + k: 2 × 4 gains and 2 offsets
    assert_eq!(json["policy"]["params"].as_array().map(Vec::len), Some(10));
    assert_eq!(json["settings"]["samples"].as_u64(), Some(32));
    // the closed loop runs the horizon on the plant (= the model here): its cost is the policy's
    let closed = json["closed_loop"]["total_cost"]
        .as_f64()
        .expect("closed-loop cost");
    assert!(
        (closed - last).abs() <= 1e-9 * last.abs(),
        "{closed} vs {last}"
    );
    // trajectory.csv as `mppi run` writes it: a header and 101 rows (the final state last)
    let csv = std::fs::read_to_string(dir.join("trajectory.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 101);
    assert!(lines[0].starts_with("step,time [s],px [m]"), "{}", lines[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn policy_search_learns_and_writes_its_outputs() {
    run_and_check(&["--method", "em"], "em");
    run_and_check(&["--method", "param", "--sigma", "0.02"], "param");
}

#[test]
fn bad_options_are_one_line_errors() {
    for (args, needle) in [
        (&["--sigma", "-1"][..], "sigma"),
        (&["--lambda", "0"], "weighting.temperature.lambda"),
        (&["--samples", "1"], "samples"),
        (&["--policy", "mlp", "--hidden", "4,4,4"], "hidden"),
    ] {
        let mut all = vec!["policy-search", "double_integrator"];
        all.extend_from_slice(args);
        let o = mppi(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
