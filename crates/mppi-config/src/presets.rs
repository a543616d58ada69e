//! Named settings (`mppi run <task> --preset NAME`): config layers laid over the task's
//! defaults before the config file and the `--set` flags, so either can still change any key.
//!
//! Each preset is TOML text, checked key by key like a config file (a test parses them all).

use std::path::Path;

use crate::ConfigError;
use crate::{Layer, parse_config_text};

/// `(name, what it is, TOML layer)` of every preset.
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "dial",
        "DIAL-MPC: annealed MPPI, spread 0.5^k per iteration and growing with look-ahead, 2 iterations per step (10 at the first)",
        // DIAL anneals over 4 knots with b = 0.9 per knot; over a per-step horizon of ~30 steps
        // the same growth is about 0.98 per step
        "iterations = 2\n[schedule]\nkind = \"dial\"\niteration_factor = 0.5\nhorizon_factor = 0.98\nfirst_step_iterations = 10\n",
    ),
    (
        "mbd",
        "model-based diffusion: VP schedule with spread sqrt(1 - abar_i), std-normalized temperature, 4 levels per step",
        // MBD's own N = 100 levels with beta up to 1e-2 anneal the spread from 0.63 to 0.01;
        // with 4 levels per control step beta_max = 0.3 spans a similar range
        "iterations = 4\n[schedule]\nkind = \"vp\"\nbeta = \"linear\"\nbeta_min = 1e-4\nbeta_max = 0.3\nspread = \"mbd\"\nsampler = \"annealed\"\n[weighting]\ntemperature = { kind = \"std_normalized\", scale = 0.05 }\n",
    ),
    (
        "ve",
        "annealed MPPI on variance-exploding levels, spread 1 -> 0.05, 3 iterations per step",
        "iterations = 3\n[schedule]\nkind = \"ve\"\nsigma_max = 1.0\nsigma_min = 0.05\nsampler = \"annealed\"\n",
    ),
];

/// The names of the presets, for `--preset`'s possible values.
#[must_use]
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _, _)| *n).collect()
}

/// The config layer of preset `name`.
pub fn layer(name: &str) -> Result<Layer, ConfigError> {
    let Some((_, _, text)) = PRESETS.iter().find(|(n, _, _)| *n == name) else {
        return Err(ConfigError::usage(format!(
            "unknown preset `{name}`; the presets are: {}",
            names().join(", ")
        )));
    };
    let mut layer = parse_config_text(text, Path::new(name))?;
    layer.source = format!("preset `{name}`");
    Ok(layer)
}

/// `--preset`'s help: every preset and what it sets.
#[must_use]
pub fn help() -> String {
    let mut out =
        String::from("Presets (--preset NAME; the config file and --set apply after it):\n");
    for (name, what, _) in PRESETS {
        out.push_str(&format!("  {name:<6} {what}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_a_valid_layer_over_every_task() {
        for name in names() {
            for task in mppi_tasks::all_tasks() {
                let layers = [layer(name).unwrap()];
                let cfg = crate::merge(&task.default_config(), &layers)
                    .unwrap_or_else(|e| panic!("{name} on {}: {e}", task.name()));
                cfg.validate(task.dynamics().control_dim())
                    .unwrap_or_else(|e| panic!("{name} on {}: {e}", task.name()));
            }
        }
        assert!(
            layer("mdb")
                .unwrap_err()
                .to_string()
                .contains("dial, mbd, ve")
        );
    }
}
