//! Tests of the layered config: merging, kind switches, errors naming the key, rendering.

use super::*;
use mppi::{ProposalConfig, TemperatureConfig, WeightingConfig};

fn base() -> MppiConfig {
    MppiConfig {
        samples: 700,
        horizon: 25,
        u_min: Some(vec![-2.0]),
        u_max: Some(vec![2.0]),
        seed: 11,
        proposal: ProposalConfig::gaussian(&[0.8]),
        weighting: WeightingConfig::fixed(0.3),
        ..MppiConfig::default()
    }
}

fn sets(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_string()).collect()
}

fn with_sets(args: &[&str]) -> Result<MppiConfig, ConfigError> {
    let args = sets(args);
    build_config(
        &base(),
        &Overrides {
            set: &args,
            ..Overrides::default()
        },
        1,
    )
}

fn err(args: &[&str]) -> String {
    let e = with_sets(args).unwrap_err();
    assert!(matches!(e, ConfigError::Invalid(_)), "{args:?}");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{args:?}: {msg}");
    msg
}

#[test]
fn no_overrides_round_trips_the_task_defaults() {
    assert_eq!(merge(&base(), &[]), Ok(base()));
    let plain = MppiConfig::default();
    assert_eq!(merge(&plain, &[]), Ok(plain));
    for task in mppi_tasks::all_tasks() {
        let defaults = task.default_config();
        assert_eq!(
            merge(&defaults, &[]).as_ref(),
            Ok(&defaults),
            "task {}",
            task.name()
        );
    }
}

#[test]
fn unspecified_keys_keep_task_defaults() {
    let cfg = with_sets(&["samples=64"]).expect("valid");
    assert_eq!(cfg.samples, 64);
    assert_eq!(cfg.horizon, 25);
    assert_eq!(cfg.weighting, WeightingConfig::fixed(0.3));
    assert_eq!(cfg.u_max, Some(vec![2.0]));
    assert_eq!(cfg.seed, 11);
}

#[test]
fn dotted_sets_reach_every_section() {
    let cfg = with_sets(&[
        "weighting.temperature.lambda=2",
        "u_max=[3.0]",
        "u_min = -3",
        "proposal.noise_sigma=0.5",
        "shift_fill=\"zero\"",
        "update.step_size=0.5",
        "weighting.elites=10",
    ])
    .expect("valid");
    assert_eq!(
        cfg.weighting.temperature,
        TemperatureConfig::Fixed { lambda: 2.0 }
    );
    assert_eq!(cfg.u_max, Some(vec![3.0]));
    assert_eq!(cfg.u_min, Some(vec![-3.0]));
    assert_eq!(cfg.proposal.noise_sigma, Some(vec![0.5]));
    assert_eq!(cfg.shift_fill, mppi::ShiftFill::Zero);
    assert_eq!(cfg.update.step_size, 0.5);
    assert_eq!(cfg.weighting.elites, Some(10));
    let cov = with_sets(&["proposal.noise_covariance=[[0.25]]"]);
    // the task's noise_sigma and a user's covariance: the user must choose one
    assert!(cov.unwrap_err().to_string().contains("noise_covariance"));
}

#[test]
fn a_later_layer_switching_a_kind_replaces_an_earlier_layers_keys() {
    let preset = crate::presets::layer("mbd").unwrap();
    let layers: Vec<Layer> = std::iter::once(preset)
        .chain(
            set_layers(&sets(&[
                "weighting.temperature.kind=fixed",
                "schedule.kind=dial",
                "schedule.horizon_factor=0.8",
            ]))
            .unwrap(),
        )
        .collect();
    let cfg = merge(&base(), &layers).expect("the preset's scale and beta keys are dropped");
    assert!(matches!(
        cfg.weighting.temperature,
        mppi::TemperatureConfig::Fixed { .. }
    ));
    assert!(matches!(cfg.schedule, mppi::ScheduleConfig::Dial(d) if d.horizon_factor == 0.8));
    // a key of the old kind set in the same layer as the switch is still an error
    let same = set_layers(&sets(&["schedule={ kind = \"dial\", beta_max = 0.1 }"])).unwrap();
    assert!(merge(&base(), &same).is_err());
}

#[test]
fn switching_a_kind_drops_the_task_keys_it_does_not_have() {
    let cfg = with_sets(&[
        "weighting.temperature.kind=ess_target",
        "weighting.temperature.target=0.2",
    ])
    .expect("valid");
    assert_eq!(
        cfg.weighting.temperature,
        TemperatureConfig::EssTarget { target: 0.2 }
    );
    // inline table form
    let cfg = with_sets(&["weighting.temperature={ kind = \"std_normalized\", scale = 0.3 }"])
        .expect("valid");
    assert_eq!(
        cfg.weighting.temperature,
        TemperatureConfig::StdNormalized { scale: 0.3 }
    );
    // the proposal keeps what the new kind shares (the task's noise_sigma)
    let cfg = with_sets(&["proposal.kind=gaussian_diag", "proposal.std_min=0.1"]).expect("valid");
    assert_eq!(cfg.proposal.kind, ProposalKind::GaussianDiag);
    assert_eq!(cfg.proposal.noise_sigma, Some(vec![0.8]));
    assert_eq!(cfg.proposal.std_min, Some(0.1));
    // order does not matter within the run
    let cfg = with_sets(&["proposal.std_min=0.1", "proposal.kind=gaussian_diag"]).expect("valid");
    assert_eq!(cfg.proposal.std_min, Some(0.1));
    let cat = with_sets(&[
        "proposal.kind=categorical",
        "proposal.categories=[-1.0, 1.0]",
    ])
    .expect("valid");
    assert_eq!(cat.proposal.noise_sigma, None);
    let dial = with_sets(&["schedule.kind=dial"]).expect("valid");
    assert!(matches!(dial.schedule, mppi::ScheduleConfig::Dial(_)));
}

#[test]
fn a_key_of_another_kind_names_the_key_and_the_kinds() {
    let msg = err(&["proposal.std_min=0.1"]);
    assert!(msg.contains("--set proposal.std_min=0.1"), "{msg}");
    assert!(msg.contains("`proposal.std_min`"), "{msg}");
    assert!(msg.contains("\"gaussian\""), "{msg}");
    assert!(msg.contains("gaussian_diag"), "{msg}");
    let msg = err(&["proposal.knots=0"]);
    assert!(msg.contains("spline"), "{msg}");
    let msg = err(&["weighting.temperature.target=1.5"]);
    assert!(msg.contains("weighting.temperature.target"), "{msg}");
}

#[test]
fn old_flat_keys_say_where_they_went() {
    for (old, new) in [
        ("lambda=0.5", "weighting.temperature"),
        ("family=gaussian_diag", "proposal.kind"),
        ("std_min=0.1", "proposal.std_min"),
        ("noise_sigma=1.0", "proposal.noise_sigma"),
        ("ess_target=1.5", "weighting.temperature"),
        ("step_size=0.5", "update.step_size"),
        ("spline_knots=0", "proposal.knots"),
    ] {
        let msg = err(&[old]);
        assert!(msg.contains(new), "{old}: {msg}");
        assert!(msg.contains("not a top-level key"), "{old}: {msg}");
    }
}

#[test]
fn later_sets_win_and_seed_flag_wins_over_set() {
    let args = sets(&["samples=10", "samples=20", "seed=3"]);
    let cfg = build_config(
        &base(),
        &Overrides {
            set: &args,
            seed: Some(99),
            threads: Some(2),
            ..Overrides::default()
        },
        1,
    )
    .expect("valid");
    assert_eq!(cfg.samples, 20);
    assert_eq!(cfg.seed, 99);
    assert_eq!(cfg.threads, 2);
}

#[test]
fn the_largest_seed_is_a_seed() {
    let cfg = with_sets(&["seed=18446744073709551615"]).expect("valid");
    assert_eq!(cfg.seed, u64::MAX);
    // and it survives a round trip through TOML
    assert_eq!(merge(&cfg, &[]), Ok(cfg));
    let msg = err(&["seed=18446744073709551616"]);
    assert!(msg.contains("seed"), "{msg}");
}

#[test]
fn file_sections_then_set() {
    let path = Path::new("test.toml");
    let file = parse_config_text(
        "samples = 128\n[weighting]\ntemperature = { kind = \"fixed\", lambda = 0.7 }\n",
        path,
    )
    .expect("parses");
    let set = set_layers(&sets(&["weighting.temperature.lambda=0.9"])).expect("parses");
    let layers: Vec<Layer> = std::iter::once(file).chain(set).collect();
    let cfg = merge(&base(), &layers).expect("valid");
    assert_eq!(cfg.samples, 128);
    assert_eq!(
        cfg.weighting.temperature,
        TemperatureConfig::Fixed { lambda: 0.9 }
    );
    assert_eq!(cfg.horizon, 25);
}

#[test]
fn unknown_key_is_named_with_its_source() {
    let msg = err(&["sampels=10"]);
    assert!(msg.contains("--set sampels=10"), "{msg}");
    assert!(msg.contains("unknown config key `sampels`"), "{msg}");
    assert!(msg.contains("did you mean `samples`?"), "{msg}");
    assert!(msg.contains("valid keys: samples, horizon,"), "{msg}");
    let far = err(&["zzzzzz=1"]);
    assert!(!far.contains("did you mean"), "{far}");
    let nested = err(&["proposal.std_mn=0.1"]);
    assert!(nested.contains("`proposal.std_mn`"), "{nested}");
    assert!(
        nested.contains("did you mean `proposal.std_min`?"),
        "{nested}"
    );
    let section = err(&["weighting.temprature.lambda=1"]);
    assert!(section.contains("`weighting.temprature`"), "{section}");

    let file = parse_config_text(
        "horizon = 10\n[update]\nstep_sise = 1.0\n",
        Path::new("my.toml"),
    )
    .expect("parses");
    let msg = merge(&base(), &[file]).unwrap_err().to_string();
    assert!(msg.contains("config file `my.toml`"), "{msg}");
    assert!(msg.contains("`update.step_sise`"), "{msg}");
}

#[test]
fn wrong_types_are_rejected_with_the_key_and_the_valid_values() {
    for (arg, key) in [
        ("samples=abc", "samples"),
        ("samples=1.5", "samples"),
        ("samples=-4", "samples"),
        (
            "weighting.temperature.lambda=true",
            "weighting.temperature.lambda",
        ),
        ("u_max=\"x\"", "u_max"),
        ("weighting.temperature.kind=hot", "weighting.temperature"),
    ] {
        let msg = err(&[arg]);
        assert!(msg.contains(&format!("`{key}")), "{arg}: {msg}");
    }
    for (arg, values) in [
        ("precision=32", "`f64` or `f32`"),
        ("proposal.kind=3", "`gaussian`"),
        ("shift_fill=1", "`last` or `zero`"),
    ] {
        let msg = err(&[arg]);
        assert!(msg.contains(values), "{arg}: {msg}");
        assert!(!msg.contains("unit variant"), "{arg}: {msg}");
    }
    let msg = err(&["samples.x=1"]);
    assert!(msg.contains("not a section"), "{msg}");
}

#[test]
fn validation_errors_name_the_key() {
    for (arg, key) in [
        (
            "weighting.temperature.lambda=-1",
            "weighting.temperature.lambda",
        ),
        (
            "weighting.temperature.lambda=1e-310",
            "weighting.temperature.lambda",
        ),
        ("samples=0", "samples"),
        ("horizon=0", "horizon"),
        ("u_max=[1.0, 2.0]", "u_max"),
        ("proposal.noise_sigma=[0.0]", "proposal.noise_sigma"),
        ("proposal.noise_sigma=1e300", "proposal.noise_sigma"),
        ("proposal.noise_sigma=1e-300", "proposal.noise_sigma"),
        ("threads=100000", "threads"),
        ("samples=100000000000", "samples"),
        ("horizon=10000000000000", "horizon"),
        ("iterations=1000000000", "iterations"),
    ] {
        let msg = err(&[arg]);
        assert!(msg.contains(key), "{arg}: {msg}");
    }
    let mem = err(&["samples=100000000000"]);
    assert!(
        mem.contains("GiB") && mem.contains("memory_limit_mb"),
        "{mem}"
    );
}

#[test]
fn smoothing_keys_are_set_and_checked_like_the_others() {
    let cfg = with_sets(&[
        "smoothing.max_step_change=0.2",
        "smoothing.max_step_accel=[0.05]",
        "smoothing.savgol_window=9",
        "smoothing.savgol_order=3",
    ])
    .expect("valid");
    assert_eq!(cfg.smoothing.max_step_change, Some(vec![0.2]));
    assert_eq!(cfg.smoothing.max_step_accel, Some(vec![0.05]));
    assert_eq!(
        (cfg.smoothing.savgol_window, cfg.smoothing.savgol_order),
        (9, 3)
    );
    // absent from every layer: off, as in the base
    assert!(with_sets(&[]).unwrap().smoothing.is_off());
    for (arg, key, text) in [
        (
            "smoothing.savgol_window=4",
            "smoothing.savgol_window",
            "must be odd and at least 3 (got 4)",
        ),
        (
            "smoothing.savgol_window=27",
            "smoothing.savgol_window",
            "at most horizon = 25",
        ),
        (
            "smoothing.max_step_change=0",
            "smoothing.max_step_change",
            "> 0",
        ),
        (
            "smoothing.max_step_accel=[0.1, 0.2]",
            "smoothing.max_step_accel",
            "has 2 entries",
        ),
        (
            "smoothing.max_step_change=\"x\"",
            "smoothing.max_step_change",
            "number",
        ),
        ("smoothing.savgol_window=-1", "smoothing.savgol_window", ""),
    ] {
        let msg = err(&[arg]);
        assert!(msg.contains(&format!("`{key}`")), "{arg}: {msg}");
        assert!(msg.contains(text), "{arg}: {msg}");
    }
    let order = err(&["smoothing.savgol_window=5", "smoothing.savgol_order=5"]);
    assert!(order.contains("`smoothing.savgol_order`"), "{order}");
    let typo = err(&["smoothing.savgol_windw=5"]);
    assert!(
        typo.contains("did you mean `smoothing.savgol_window`?"),
        "{typo}"
    );
}

#[test]
fn malformed_set_arguments() {
    assert!(parse_set("samples").is_err());
    assert!(parse_set("=3").is_err());
    let err = parse_set("u_max=[3.0").unwrap_err().to_string();
    assert!(err.contains("not a valid TOML value"), "{err}");
    assert_eq!(
        parse_set("proposal.kind=gaussian_diag").expect("bare string"),
        (
            "proposal.kind".to_string(),
            Value::String("gaussian_diag".into())
        )
    );
    assert!(set_layers(&sets(&["proposal..kind=x"])).is_err());
}

#[test]
fn bad_file_syntax_reports_line() {
    let err = parse_config_text("samples = 10\nhorizon = = 3\n", Path::new("bad.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let err = read_config_file(Path::new("/definitely/not/here.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/definitely/not/here.toml"), "{err}");
}

#[test]
fn every_key_is_described_and_every_description_is_a_key() {
    // the resolved config of every kind, flattened, against mppi::keys
    let mut seen = std::collections::BTreeSet::new();
    for kind in ProposalKind::ALL {
        for schedule in [
            mppi::ScheduleConfig::Constant,
            mppi::ScheduleConfig::Dial(mppi::schedule::Dial {
                first_step_iterations: Some(3),
                ..Default::default()
            }),
            mppi::ScheduleConfig::DialExp(mppi::schedule::DialExp {
                first_step_iterations: Some(3),
                ..Default::default()
            }),
            mppi::ScheduleConfig::Ve(Default::default()),
            mppi::ScheduleConfig::Vp(Default::default()),
        ] {
            for temperature in [
                TemperatureConfig::Fixed { lambda: 1.0 },
                TemperatureConfig::StdNormalized { scale: 0.1 },
                TemperatureConfig::EssTarget { target: 0.1 },
            ] {
                let mut cfg = MppiConfig {
                    u_min: Some(vec![-1.0]),
                    u_max: Some(vec![1.0]),
                    deadline_ms: Some(5.0),
                    schedule,
                    ..MppiConfig::default()
                };
                cfg.weighting.temperature = temperature;
                cfg.weighting.elites = Some(5);
                cfg.smoothing.max_step_change = Some(vec![0.1]);
                cfg.smoothing.max_step_accel = Some(vec![0.05]);
                cfg.proposal = ProposalConfig::new(kind).resolved();
                if kind == ProposalKind::Categorical {
                    cfg.proposal.categories = Some(vec![-1.0, 1.0]);
                }
                let mut found = Vec::new();
                leaves(&config_table(&cfg).unwrap(), &mut Vec::new(), &mut found);
                seen.extend(found.into_iter().map(|(p, _)| dotted(&p)));
            }
        }
    }
    // noise_covariance is the alternative to noise_sigma
    seen.insert("proposal.noise_covariance".into());
    let described: std::collections::BTreeSet<String> = mppi::keys::KEYS
        .iter()
        .map(|(k, _)| (*k).to_string())
        .collect();
    assert_eq!(seen, described);
}

#[test]
fn rendered_config_parses_back_to_the_same_config() {
    for task in mppi_tasks::all_tasks() {
        let cfg = task.default_config();
        let text = render_config(task.name(), &cfg).unwrap();
        let layer = parse_config_text(&text, Path::new("rendered.toml")).unwrap();
        let back = merge(&MppiConfig::default(), &[layer]).unwrap();
        let mut resolved = cfg.clone();
        resolved.proposal = resolved.proposal.resolved();
        assert_eq!(back, resolved, "{}", task.name());
        assert!(text.contains("# sampled control sequences"), "{text}");
    }
}

#[test]
fn edit_distances() {
    assert_eq!(edit_distance("sampels", "samples"), 2);
    assert_eq!(edit_distance("lamda", "lambda"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("same", "same"), 0);
}

#[test]
fn line_column_counts_from_one() {
    assert_eq!(line_column("ab\ncd", 0), (1, 1));
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
}
