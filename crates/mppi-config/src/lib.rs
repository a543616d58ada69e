//! Layered planner settings: a base [`MppiConfig`] (a task's defaults), then named presets, a
//! TOML file and dotted `key = value` overrides, each checked as it is laid on so that an error
//! names the key and where it came from. The `mppi` command line (`--preset`, `--config`,
//! `--set`) and the Python package (`config=` dicts and keyword arguments) both build their
//! configs here, so a key means the same thing and fails the same way in both.
//!
//! The merge happens on TOML tables: the base config is serialized to a table, every layer's
//! table is laid over it key by key, and the result is deserialized back into an
//! [`MppiConfig`]. Keys that are not given keep the *base's* values; unknown keys and values of
//! the wrong type are rejected (the config is `deny_unknown_fields`).
//!
//! `None` fields (`u_min`, `u_max`, `noise_covariance`) are simply absent from the base's
//! table and deserialize back to `None`, so they round-trip unchanged.
//!
//! ```
//! use mppi_config::{merge, set_layers};
//! let layers = set_layers(&["samples=512".into(), "proposal.noise_sigma=0.3".into()])?;
//! let cfg = merge(&mppi::MppiConfig::default(), &layers)?;
//! assert_eq!(cfg.samples, 512);
//! let err = merge(&cfg, &set_layers(&["sampels=10".into()])?).unwrap_err();
//! assert!(err.to_string().contains("did you mean `samples`"), "{err}");
//! # Ok::<(), mppi_config::ConfigError>(())
//! ```

pub mod presets;
mod render;

pub use render::{keys_help, render_config};

use std::path::Path;

use mppi::config::moved_key;
use mppi::{MppiConfig, ProposalKind};
use toml::{Table, Value};

/// Why a config could not be built: a one-line message that names the key and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A bad key, value, file or preset given by the user.
    Invalid(String),
    /// The base config itself cannot be represented (a bug, not a user error).
    Internal(String),
}

impl ConfigError {
    /// A bad key, value, file or preset.
    pub fn usage(message: impl Into<String>) -> Self {
        ConfigError::Invalid(message.into())
    }

    /// A failure that is not the user's.
    pub fn runtime(message: impl Into<String>) -> Self {
        ConfigError::Internal(message.into())
    }

    /// The message on one line.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            ConfigError::Invalid(m) | ConfigError::Internal(m) => single_line(m),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ConfigError {}

/// Fold a possibly multi-line message into one line: lines are trimmed, empty ones dropped,
/// the rest joined with a space.
#[must_use]
pub fn single_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

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
/// string, so `proposal.kind=gaussian_diag` works without quotes. KEY is a dotted path into
/// the config's sections (`weighting.temperature.lambda`).
pub fn parse_set(arg: &str) -> Result<(String, Value), ConfigError> {
    let Some((key, raw)) = arg.split_once('=') else {
        return Err(ConfigError::usage(format!(
            "--set {arg}: expected KEY=VALUE (e.g. --set samples=512)"
        )));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(ConfigError::usage(format!(
            "--set {arg}: the key before `=` is empty (e.g. --set samples=512)"
        )));
    }
    let raw = raw.trim();
    let value = match raw.parse::<Value>() {
        Ok(v) => v,
        Err(e) => {
            if raw.starts_with(['[', '{', '"', '\'']) {
                return Err(ConfigError::usage(format!(
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
pub fn set_layers(args: &[String]) -> Result<Vec<Layer>, ConfigError> {
    args.iter()
        .map(|arg| {
            let (key, value) = parse_set(arg)?;
            let path: Vec<String> = key.split('.').map(|p| p.trim().to_string()).collect();
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::usage(format!(
                    "--set {arg}: `{key}` has an empty part; write a dotted path such as \
                     proposal.std_min"
                )));
            }
            let mut table = Table::new();
            insert_path(&mut table, &path, value)
                .map_err(|reason| ConfigError::usage(format!("--set {arg}: {reason}")))?;
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
pub fn parse_config_text(text: &str, path: &Path) -> Result<Layer, ConfigError> {
    let source = format!("config file `{}`", path.display());
    let control = text
        .char_indices()
        .find(|&(_, c)| c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r'));
    if let Some((at, c)) = control {
        let (line, column) = line_column(text, at);
        return Err(ConfigError::usage(if c == '\0' {
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
            Err(ConfigError::usage(format!(
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
pub fn read_config_file(path: &Path) -> Result<Layer, ConfigError> {
    use std::io::Read as _;
    /// The largest config file read (real ones are a few hundred bytes).
    const MAX_BYTES: u64 = 1 << 20;
    let cannot_read = |e: &std::io::Error| {
        ConfigError::usage(format!(
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
        return Err(ConfigError::usage(format!(
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
        ConfigError::usage(format!(
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
pub fn config_table(config: &MppiConfig) -> Result<Table, ConfigError> {
    Table::try_from(config).map_err(|e| {
        ConfigError::runtime(format!(
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

/// A dotted key path as the user writes it.
fn dotted(path: &[String]) -> String {
    path.join(".")
}

/// Every leaf `(path, value)` of a table; nested tables are sections, not values.
fn leaves(table: &Table, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    for (key, value) in table {
        prefix.push(key.clone());
        match value {
            Value::Table(inner) => leaves(inner, prefix, out),
            other => out.push((prefix.clone(), other.clone())),
        }
        prefix.pop();
    }
}

/// Set `path = value` in `table`, creating sections on the way. Errors if a key on the way
/// already holds a value that is not a section.
fn insert_path(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (last, sections) = path.split_last().expect("a key path is never empty");
    let mut at = table;
    for (depth, key) in sections.iter().enumerate() {
        let entry = at
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(inner) => at = inner,
            _ => {
                return Err(format!(
                    "`{}` is a value, not a section: `{}` cannot be set",
                    dotted(&path[..=depth]),
                    dotted(path)
                ));
            }
        }
    }
    at.insert(last.clone(), value);
    Ok(())
}

/// `over` laid over `base`, key by key, sections merged recursively.
fn deep_merge(base: &mut Table, over: &Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => deep_merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The `kind` string of the section at `path`, if set.
fn kind_at<'a>(table: &'a Table, path: &[&str]) -> Option<&'a str> {
    let mut at = table;
    for key in path {
        at = at.get(*key)?.as_table()?;
    }
    at.get("kind")?.as_str()
}

fn section_mut<'a>(table: &'a mut Table, path: &[&str]) -> Option<&'a mut Table> {
    let mut at = table;
    for key in path {
        at = at.get_mut(*key)?.as_table_mut()?;
    }
    Some(at)
}

/// When the user changes the `kind` of a section, the task's keys for the old kind no longer
/// apply: drop those the new kind does not have (a tagged rule's keys all belong to its kind;
/// a proposal keeps what the new kind shares, such as `noise_sigma`).
fn switch_kinds(defaults: &mut Table, user: &Table) {
    for path in KIND_SECTIONS {
        let Some(new) = kind_at(user, path) else {
            continue;
        };
        if kind_at(defaults, path) == Some(new) {
            continue;
        }
        let keep = kept_keys(path, new);
        if let Some(section) = section_mut(defaults, path) {
            section.retain(|k, _| keep.contains(&k));
        }
    }
}

/// The sections with a `kind` (a tagged rule or the proposal).
const KIND_SECTIONS: [&[&str]; 3] = [&["proposal"], &["schedule"], &["weighting", "temperature"]];

/// The keys a section keeps when it switches to kind `new` (the proposal keeps what the new
/// kind shares; a tagged rule's keys all belong to its kind).
fn kept_keys(path: &[&str], new: &str) -> &'static [&'static str] {
    match (path, ProposalKind::from_name(new)) {
        (["proposal"], Some(kind)) => kind.keys(),
        _ => &[],
    }
}

/// Where `layer` sets a section's `kind` to another one than earlier layers did, drop the
/// earlier layers' keys of that section that the new kind does not have. Whether any was
/// dropped.
fn drop_switched_kind_keys(user: &mut Table, layer: &Table) -> bool {
    let mut dropped = false;
    for path in KIND_SECTIONS {
        let Some(new) = kind_at(layer, path) else {
            continue;
        };
        match kind_at(user, path) {
            Some(old) if old != new => {}
            _ => continue,
        }
        let keep = kept_keys(path, new);
        if let Some(section) = section_mut(user, path) {
            let before = section.len();
            section.retain(|k, _| keep.contains(&k));
            dropped |= section.len() != before;
        }
    }
    dropped
}

fn has_path(table: &Table, path: &[String]) -> bool {
    let mut at = table;
    for (i, key) in path.iter().enumerate() {
        match at.get(key) {
            Some(Value::Table(t)) if i + 1 < path.len() => at = t,
            Some(_) => return i + 1 == path.len(),
            None => return false,
        }
    }
    true
}

/// `defaults` with the user's keys laid over it, after the kind switches.
fn combine(defaults: &Table, user: &Table) -> Table {
    let mut merged = defaults.clone();
    switch_kinds(&mut merged, user);
    deep_merge(&mut merged, user);
    merged
}

/// Why `path = value` made the config invalid, in words that name the key.
fn explain(
    path: &[String],
    value: &Value,
    message: &str,
    defaults: &Table,
    user: &Table,
) -> String {
    let key = dotted(path);
    if message.starts_with("unknown field") {
        let field = message
            .split('`')
            .nth(1)
            .unwrap_or_else(|| path.last().map_or("", String::as_str));
        // the unknown key sits where serde found it: at the leaf, or a section on the way
        let at = path
            .iter()
            .position(|p| p == field)
            .unwrap_or(path.len() - 1);
        let full = dotted(&path[..=at]);
        let section = dotted(&path[..at]);
        if at == 0
            && let Some(new) = moved_key(field)
        {
            return format!(
                "`{field}` is not a top-level key any more: it is now {new} (e.g. `--set {}=...`; \
                 see `mppi run --help`)",
                new.split(' ').next().unwrap_or(new)
            );
        }
        let keys = listed_keys(message);
        let hint = keys
            .iter()
            .map(|k| (edit_distance(field, k), k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 3))
            .min()
            .map(|(_, k)| {
                if section.is_empty() {
                    format!("did you mean `{k}`? ")
                } else {
                    format!("did you mean `{section}.{k}`? ")
                }
            })
            .unwrap_or_default();
        let place = if section.is_empty() {
            String::new()
        } else {
            format!(" of [{section}]")
        };
        return if keys.is_empty() {
            format!("unknown config key `{full}`: {message}")
        } else {
            format!(
                "unknown config key `{full}`; {hint}valid keys{place}: {}",
                keys.join(", ")
            )
        };
    }
    if message.contains("invalid type: map") && path.len() > 1 {
        return format!(
            "`{}` is a value, not a section: `{key}` cannot be set",
            dotted(&path[..path.len() - 1])
        );
    }
    if message.contains("unknown variant") {
        return format!("invalid value for `{key}`: {}", plain_types(message));
    }
    // a value of the wrong type for a key with named values (an enum): list them
    let mut probe = user.clone();
    if insert_path(&mut probe, path, Value::String("\u{1}".into())).is_ok()
        && let Err(e) = combine(defaults, &probe).try_into::<MppiConfig>()
        && let probed = single_line(e.message())
        && probed.contains("unknown variant")
        && let Some((_, list)) = probed.split_once("expected ")
    {
        let list = list.trim_start_matches("one of ").trim_end_matches('.');
        return format!("invalid value for `{key}`: {value} is not one of {list}");
    }
    format!("invalid value for `{key}`: {}", plain_types(message))
}

/// Lay `layers` over `base`, in order, and deserialize the result.
///
/// Keys are dotted paths (`proposal.std_min`) or sections of a file. Every key of every layer
/// is checked as it is laid on, so an error names the key and the layer it came from. When a
/// layer changes the `kind` of a section, the task's keys that the new kind does not have are
/// dropped (the user's are kept, and an error if they do not fit). The result is *not*
/// validated against a control dimension; see [`build_config`].
pub fn merge(base: &MppiConfig, layers: &[Layer]) -> Result<MppiConfig, ConfigError> {
    let defaults = config_table(base)?;
    let mut user = Table::new();
    let mut sources: Vec<(Vec<String>, &str)> = Vec::new();
    for layer in layers {
        // a layer that switches a kind set by an earlier layer (a preset, the file) replaces
        // that layer's keys of the old kind
        if drop_switched_kind_keys(&mut user, &layer.table) {
            sources.retain(|(path, _)| has_path(&user, path));
        }
        let mut found = Vec::new();
        leaves(&layer.table, &mut Vec::new(), &mut found);
        for (path, value) in found {
            let fail = |reason: String| ConfigError::usage(format!("{}: {reason}", layer.source));
            insert_path(&mut user, &path, value.clone()).map_err(&fail)?;
            if let Err(e) = combine(&defaults, &user).try_into::<MppiConfig>() {
                let message = single_line(e.message());
                return Err(fail(explain(&path, &value, &message, &defaults, &user)));
            }
            sources.push((path, layer.source.as_str()));
        }
    }
    let config = combine(&defaults, &user)
        .try_into::<MppiConfig>()
        .map_err(|e| ConfigError::usage(format!("invalid config: {}", single_line(e.message()))))?;
    // a proposal key the final kind does not have: name the layer that set it
    let kind = config.proposal.kind;
    if let Some((path, source)) = sources.iter().rev().find(|(p, _)| {
        p.len() == 2
            && p[0] == "proposal"
            && p[1] != "kind"
            && !kind.keys().contains(&p[1].as_str())
    }) {
        let owners: Vec<&str> = ProposalKind::kinds_with(&path[1])
            .into_iter()
            .map(ProposalKind::name)
            .collect();
        return Err(ConfigError::usage(format!(
            "{source}: `{}` is not a key of proposal kind \"{}\" (it belongs to {}); set \
             proposal.kind too, or drop it",
            dotted(path),
            kind.name(),
            owners.join(", ")
        )));
    }
    Ok(config)
}

/// Command-line overrides of a run's config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides<'a> {
    /// `--preset NAME` (laid before the file).
    pub preset: Option<&'a str>,
    /// `--config FILE`.
    pub file: Option<&'a Path>,
    /// Every `--set KEY=VALUE`, in order.
    pub set: &'a [String],
    /// `--seed N`.
    pub seed: Option<u64>,
    /// `--threads N`.
    pub threads: Option<usize>,
}

/// The config of a run: `base` (the task's defaults), then the preset, then the file, then every `--set`, then
/// `--seed` / `--threads`; validated for a problem with `control_dim` controls.
pub fn build_config(
    base: &MppiConfig,
    overrides: &Overrides<'_>,
    control_dim: usize,
) -> Result<MppiConfig, ConfigError> {
    let mut layers = Vec::new();
    if let Some(name) = overrides.preset {
        layers.push(crate::presets::layer(name)?);
    }
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
        .map_err(|e| ConfigError::usage(e.to_string()))?;
    Ok(config)
}

#[cfg(test)]
mod tests;
