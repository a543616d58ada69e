//! Building the planner config of a run from the task's defaults, a TOML file and `--set` flags.
//!
//! The merge happens on TOML tables: the task's default [`MppiConfig`] is serialized to a
//! table, the file's table and then every `--set key=value` are laid over it key by key, and
//! the result is deserialized back into an [`MppiConfig`]. Keys that are not given keep the
//! *task's* defaults; unknown keys and values of the wrong type are rejected (the config is
//! `deny_unknown_fields`), each error naming the key and where it came from.
//!
//! `None` fields (`u_min`, `u_max`, `noise_covariance`) are simply absent from the task's
//! table and deserialize back to `None`, so they round-trip unchanged.

use std::path::Path;

use mppi::MppiConfig;
use toml::{Table, Value};

use crate::error::{CliError, single_line};

/// One source of overrides: where it came from (for error messages) and its keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Human-readable origin, e.g. ``config file `run.toml` `` or ``--set samples=abc``.
    pub source: String,
    /// The keys and values it sets.
    pub table: Table,
}

/// Parse one `--set KEY=VALUE` argument.
///
/// VALUE is read as a TOML value (`512`, `0.5`, `true`, `[1.0, 2.0]`, `"text"`); anything
/// else that does not look like the start of a TOML array, table or string is taken as a bare
/// string, so `temperature_mode=ess_target` works without quotes.
pub fn parse_set(arg: &str) -> Result<(String, Value), CliError> {
    let Some((key, raw)) = arg.split_once('=') else {
        return Err(CliError::usage(format!(
            "--set {arg}: expected KEY=VALUE (e.g. --set samples=512)"
        )));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(CliError::usage(format!(
            "--set {arg}: the key before `=` is empty (e.g. --set samples=512)"
        )));
    }
    let raw = raw.trim();
    let value = match raw.parse::<Value>() {
        Ok(v) => v,
        Err(e) => {
            if raw.starts_with(['[', '{', '"', '\'']) {
                return Err(CliError::usage(format!(
                    "--set {arg}: `{raw}` is not a valid TOML value: {}",
                    single_line(e.message())
                )));
            }
            Value::String(raw.to_string())
        }
    };
    Ok((key.to_string(), value))
}

/// Turn the `--set` arguments into one layer per argument (so errors name the exact flag).
pub fn set_layers(args: &[String]) -> Result<Vec<Layer>, CliError> {
    args.iter()
        .map(|arg| {
            let (key, value) = parse_set(arg)?;
            let mut table = Table::new();
            table.insert(key, value);
            Ok(Layer {
                source: format!("--set {arg}"),
                table,
            })
        })
        .collect()
}

/// Parse the text of a TOML config file. `path` is only used in error messages.
///
/// A control character (other than tab and line breaks) is reported with its line and column
/// before parsing: TOML allows none, and a NUL byte means the file is probably not text.
pub fn parse_config_text(text: &str, path: &Path) -> Result<Layer, CliError> {
    let source = format!("config file `{}`", path.display());
    let control = text
        .char_indices()
        .find(|&(_, c)| c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r'));
    if let Some((at, c)) = control {
        let (line, column) = line_column(text, at);
        return Err(CliError::usage(if c == '\0' {
            format!(
                "{source} contains a NUL byte at line {line}, column {column}; it is probably \
                 not a text file (a config file is TOML text, e.g. `samples = 512`)"
            )
        } else {
            format!(
                "{source} contains the control character U+{:04X} at line {line}, column \
                 {column}; TOML allows no control characters other than tab and line breaks",
                u32::from(c)
            )
        }));
    }
    match text.parse::<Table>() {
        Ok(table) => Ok(Layer { source, table }),
        Err(e) => {
            let at = e
                .span()
                .map(|span| {
                    let (line, column) = line_column(text, span.start);
                    format!(" at line {line}, column {column}")
                })
                .unwrap_or_default();
            Err(CliError::usage(format!(
                "{source}: invalid TOML{at}: {}",
                single_line(e.message())
            )))
        }
    }
}

/// Read and parse a TOML config file of at most 1 MiB of UTF-8 text.
///
/// At most one byte past the limit is read, so a device like `/dev/zero` or a huge file is
/// rejected at once instead of being read to the end.
pub fn read_config_file(path: &Path) -> Result<Layer, CliError> {
    use std::io::Read as _;
    /// The largest config file read (real ones are a few hundred bytes).
    const MAX_BYTES: u64 = 1 << 20;
    let cannot_read = |e: &std::io::Error| {
        CliError::usage(format!(
            "cannot read config file `{}`: {}",
            path.display(),
            io_reason(e)
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| cannot_read(&e))?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot_read(&e))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(CliError::usage(format!(
            "config file `{}` is larger than the limit of 1 MiB ({MAX_BYTES} bytes) for a \
             config file; is it the right file?",
            path.display()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        // the prefix before the first invalid byte is valid UTF-8
        let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
        let (line, column) = line_column(&prefix, prefix.len());
        CliError::usage(format!(
            "config file `{}` is not UTF-8 text (invalid byte at line {line}, column \
             {column}); it is probably not a text file",
            path.display()
        ))
    })?;
    parse_config_text(&text, path)
}

/// A short reason for an I/O error (without the OS error code noise).
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// 1-based line and column of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, at)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut i = at.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The task's defaults as a TOML table (absent `None` fields included as absent keys).
pub fn config_table(config: &MppiConfig) -> Result<Table, CliError> {
    Table::try_from(config).map_err(|e| {
        CliError::runtime(format!(
            "cannot represent the task's default config in TOML: {}",
            single_line(&e.to_string())
        ))
    })
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The valid keys listed in serde's "unknown field `x`, expected one of `a`, `b`" message.
fn listed_keys(message: &str) -> Vec<String> {
    message
        .split_once("expected one of")
        .map(|(_, list)| {
            list.split(',')
                .map(|k| k.trim().trim_matches('`').to_string())
                .filter(|k| !k.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Make serde's type names readable.
fn plain_types(message: &str) -> String {
    message
        .replace("expected usize", "expected a non-negative integer")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected f64", "expected a number")
}

/// Check that `key = value` alone is a valid config entry (known key, right type).
fn check_entry(key: &str, value: &Value) -> Result<(), String> {
    let mut table = Table::new();
    table.insert(key.to_string(), value.clone());
    match table.try_into::<MppiConfig>() {
        Ok(_) => Ok(()),
        Err(e) => {
            let msg = single_line(e.message());
            if msg.starts_with("unknown field") {
                let keys = listed_keys(&msg);
                let hint = keys
                    .iter()
                    .map(|k| (edit_distance(key, k), k))
                    .filter(|(d, k)| *d <= 2.max(k.len() / 3))
                    .min()
                    .map(|(_, k)| format!("did you mean `{k}`? "))
                    .unwrap_or_default();
                if keys.is_empty() {
                    Err(format!("unknown config key `{key}`: {msg}"))
                } else {
                    Err(format!(
                        "unknown config key `{key}`; {hint}valid keys: {}",
                        keys.join(", ")
                    ))
                }
            } else {
                Err(format!("invalid value for `{key}`: {}", plain_types(&msg)))
            }
        }
    }
}

/// Lay `layers` over `base`, in order, and deserialize the result.
///
/// Every key of every layer is checked on its own first, so an error names the key and the
/// layer it came from. The result is *not* validated against a control dimension; see
/// [`build_config`].
pub fn merge(base: &MppiConfig, layers: &[Layer]) -> Result<MppiConfig, CliError> {
    let mut merged = config_table(base)?;
    for layer in layers {
        for (key, value) in &layer.table {
            check_entry(key, value)
                .map_err(|reason| CliError::usage(format!("{}: {reason}", layer.source)))?;
            merged.insert(key.clone(), value.clone());
        }
    }
    merged
        .try_into::<MppiConfig>()
        .map_err(|e| CliError::usage(format!("invalid config: {}", single_line(e.message()))))
}

/// Command-line overrides of a run's config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides<'a> {
    /// `--config FILE`.
    pub file: Option<&'a Path>,
    /// Every `--set KEY=VALUE`, in order.
    pub set: &'a [String],
    /// `--seed N`.
    pub seed: Option<u64>,
    /// `--threads N`.
    pub threads: Option<usize>,
}

/// The config of a run: `base` (the task's defaults), then the file, then every `--set`, then
/// `--seed` / `--threads`; validated for a problem with `control_dim` controls.
pub fn build_config(
    base: &MppiConfig,
    overrides: &Overrides<'_>,
    control_dim: usize,
) -> Result<MppiConfig, CliError> {
    let mut layers = Vec::new();
    if let Some(path) = overrides.file {
        layers.push(read_config_file(path)?);
    }
    layers.extend(set_layers(overrides.set)?);
    let mut config = merge(base, &layers)?;
    if let Some(seed) = overrides.seed {
        config.seed = seed;
    }
    if let Some(threads) = overrides.threads {
        config.threads = threads;
    }
    config
        .validate(control_dim)
        .map_err(|e| CliError::usage(e.to_string()))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mppi::TemperatureMode;

    fn base() -> MppiConfig {
        MppiConfig {
            samples: 700,
            horizon: 25,
            lambda: 0.3,
            noise_sigma: vec![0.8],
            u_min: Some(vec![-2.0]),
            u_max: Some(vec![2.0]),
            seed: 11,
            ..MppiConfig::default()
        }
    }

    fn sets(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_string()).collect()
    }

    fn with_sets(args: &[&str]) -> Result<MppiConfig, CliError> {
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
        assert_eq!(cfg.lambda, 0.3);
        assert_eq!(cfg.u_max, Some(vec![2.0]));
        assert_eq!(cfg.seed, 11);
    }

    #[test]
    fn set_parses_numbers_bools_arrays_and_bare_strings() {
        let cfg = with_sets(&[
            "lambda=2",
            "u_max=[3.0]",
            "u_min = [-3]",
            "noise_sigma=[0.5]",
            "temperature_mode=ess_target",
            "ess_target=0.2",
            "shift_fill=\"zero\"",
        ])
        .expect("valid");
        assert_eq!(cfg.lambda, 2.0);
        assert_eq!(cfg.u_max, Some(vec![3.0]));
        assert_eq!(cfg.u_min, Some(vec![-3.0]));
        assert_eq!(cfg.noise_sigma, vec![0.5]);
        assert_eq!(cfg.temperature_mode, TemperatureMode::EssTarget);
        assert_eq!(cfg.shift_fill, mppi::ShiftFill::Zero);
        let cov = with_sets(&["noise_covariance=[[0.25]]"]).expect("valid");
        assert_eq!(cov.noise_covariance, Some(vec![vec![0.25]]));
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
    fn file_then_set() {
        let path = Path::new("test.toml");
        let file = parse_config_text("samples = 128\nlambda = 0.7\n", path).expect("parses");
        let set = set_layers(&sets(&["lambda=0.9"])).expect("parses");
        let layers: Vec<Layer> = std::iter::once(file).chain(set).collect();
        let cfg = merge(&base(), &layers).expect("valid");
        assert_eq!(cfg.samples, 128);
        assert_eq!(cfg.lambda, 0.9);
        assert_eq!(cfg.horizon, 25);
    }

    #[test]
    fn unknown_key_is_named_with_its_source() {
        let err = with_sets(&["sampels=10"]).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.exit_code(), 2);
        assert!(msg.contains("--set sampels=10"), "{msg}");
        assert!(msg.contains("unknown config key `sampels`"), "{msg}");
        assert!(msg.contains("did you mean `samples`?"), "{msg}");
        assert!(msg.contains("valid keys: samples, horizon,"), "{msg}");
        assert!(msg.contains("temperature_mode"), "{msg}");
        let far = with_sets(&["zzzzzz=1"]).unwrap_err().to_string();
        assert!(!far.contains("did you mean"), "{far}");

        let file =
            parse_config_text("horizon = 10\nlamda = 1.0\n", Path::new("my.toml")).expect("parses");
        let err = merge(&base(), &[file]).unwrap_err().to_string();
        assert!(err.contains("config file `my.toml`"), "{err}");
        assert!(err.contains("`lamda`"), "{err}");
    }

    #[test]
    fn wrong_types_are_rejected_with_the_key() {
        for (arg, key) in [
            ("samples=abc", "samples"),
            ("samples=1.5", "samples"),
            ("samples=-4", "samples"),
            ("lambda=true", "lambda"),
            ("u_max=3.0", "u_max"),
            ("temperature_mode=hot", "temperature_mode"),
        ] {
            let msg = with_sets(&[arg]).unwrap_err().to_string();
            assert!(msg.contains(&format!("`{key}`")), "{arg}: {msg}");
            assert!(!msg.contains('\n'), "{arg}: {msg}");
        }
    }

    #[test]
    fn validation_errors_name_the_key() {
        for (arg, key) in [
            ("lambda=-1", "lambda"),
            ("samples=0", "samples"),
            ("horizon=0", "horizon"),
            ("u_max=[1.0, 2.0]", "u_max"),
            ("noise_sigma=[0.0]", "noise_sigma"),
        ] {
            let err = with_sets(&[arg]).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(key), "{arg}: {err}");
        }
    }

    #[test]
    fn malformed_set_arguments() {
        assert!(parse_set("samples").is_err());
        assert!(parse_set("=3").is_err());
        let err = parse_set("u_max=[3.0").unwrap_err().to_string();
        assert!(err.contains("not a valid TOML value"), "{err}");
        assert_eq!(
            parse_set("temperature_mode=ess_target").expect("bare string"),
            (
                "temperature_mode".to_string(),
                Value::String("ess_target".into())
            )
        );
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
}
