//! The config as text for people: every key with its description (`mppi run --help`) and a
//! task's whole config as commented TOML (`mppi config <task>`).

use mppi::MppiConfig;
use toml::Value;

use crate::{ConfigError, config_table, dotted, leaves};

/// The presets and every config key with its description (generated from [`mppi::keys`]),
/// for `mppi run --help`.
#[must_use]
pub fn keys_help() -> String {
    let width = mppi::keys::KEYS
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0);
    let mut s = crate::presets::help();
    s.push_str(
        "\nConfig keys (TOML file sections or --set section.key=value; unspecified keys keep the \
         task's defaults; `mppi config <task>` prints a task's whole config):\n",
    );
    for (key, text) in mppi::keys::KEYS {
        s.push_str(&format!("  {key:<width$}  {text}\n"));
    }
    s.push_str(
        "\nProposal keys belong to their kinds (e.g. std_min to gaussian_diag, gaussian_full \
         and mixture); a key of another kind is an error.\n\
         Exit status: 0 when the run finished (successful or not; see --require-success),\n\
         1 when it failed at run time or --require-success was not met, 2 for usage and \
         config errors.",
    );
    s
}

/// A task's whole config as TOML, every key of its stages resolved to its value, each with
/// its description as a comment (`mppi config <task>`).
pub fn render_config(task: &str, config: &MppiConfig) -> Result<String, ConfigError> {
    let mut resolved = config.clone();
    resolved.proposal = resolved.proposal.resolved();
    let table = config_table(&resolved)?;
    let mut found = Vec::new();
    leaves(&table, &mut Vec::new(), &mut found);
    let value_of = |key: &str| {
        found
            .iter()
            .find(|(p, _)| dotted(p) == key)
            .map(|(_, v)| v.clone())
    };
    let mut out = format!(
        "# The config of task `{task}`: its defaults, with every key of the chosen kinds.\n\
         # Save it, edit it and run `mppi run {task} --config FILE`.\n"
    );
    // in the order of mppi::keys (top-level keys, then one section per stage), so a section's
    // `kind` comes first
    let mut section = "";
    for (key, text) in mppi::keys::KEYS {
        let (head, name) = key.rsplit_once('.').unwrap_or(("", key));
        if let Some(rule) = head.strip_suffix(".temperature") {
            // the temperature rule is written inline, once, at its `kind`
            if name != "kind" {
                continue;
            }
            let Some(Value::Table(inline)) =
                table.get(rule).and_then(|w| w.get("temperature")).cloned()
            else {
                continue;
            };
            if rule != section {
                section = rule;
                out.push_str(&format!("\n[{rule}]\n"));
            }
            out.push_str(&format!("# {text}\n"));
            for (param, _) in &inline {
                if param != "kind"
                    && let Some(d) = mppi::keys::describe(&format!("{head}.{param}"))
                {
                    out.push_str(&format!("#   {param}: {d}\n"));
                }
            }
            out.push_str(&format!("temperature = {}\n", Value::Table(inline)));
            continue;
        }
        let Some(value) = value_of(key) else {
            continue;
        };
        if head != section {
            section = head;
            out.push_str(&format!("\n[{head}]\n"));
        }
        out.push_str(&format!("# {text}\n{name} = {value}\n"));
    }
    Ok(out)
}
