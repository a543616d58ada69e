//! Warnings about settings that let an adapted sampling spread collapse in closed loop.
//!
//! Exact EM with a free spread shrinks it at every M-step (docs/theory.md §B.4.3), and the
//! receding-horizon warm start carries the shrunken spread into the next control step, so
//! without a floor `gaussian_diag`, `gaussian_full` and `mixture` sample ever closer to their
//! plan until they stop exploring. Three settings provide the floor: `prior_weight` (a pull
//! toward the initial spread at every M-step; the default 0.25 keeps every standard deviation
//! at least `√(ν/(1+ν)) ≈ 0.45` of its initial value), `std_reset` (back to the initial spread
//! at every control step) and `std_min`. The Beta family's analogue is
//! `concentration_max`.
//!
//! The thresholds come from closed-loop runs of the built-in tasks with each family (seeds
//! 0-9; `cargo run --release -p mppi-tasks --example spread_trace`):
//!
//! - `prior_weight = 0`, `std_reset = false`, `std_min = 1e-3`: the spread fell to 1e-4–1e-1 of
//!   its initial value and `gaussian_diag` succeeded on 0-2 of 10 seeds of pendulum, cartpole,
//!   acrobot, quadrotor, double_integrator, racing and diff_drive;
//! - `prior_weight = 0.05`: `gaussian_diag` 9/10 on pendulum and diff_drive, the mixture 5/10
//!   on pendulum; `0.1`: 10/10 for every family and task (19/20 for the mixture on pendulum
//!   over seeds 0-19); `0.25` (the default): 20/20 over seeds 0-19 everywhere;
//! - `std_min` alone, at 0.1, 0.3 and 0.5 of the initial spread: pendulum and diff_drive still
//!   failed on most seeds;
//! - Beta with `concentration_max` = 1000 / 300 / 100: 17 / 28 / 53 of 80 runs over 8
//!   tasks; 30: 70 of 80 (the remaining failures are the pendulum, which balances tilted with
//!   any cap, and not a collapse).

use crate::config::{MppiConfig, ProposalKind};

/// `prior_weight` below this is too weak a pull to stop the collapse (measured above).
pub const PRIOR_WEIGHT_MIN: f64 = 0.1;
/// `std_min` below this fraction of the smallest initial standard deviation is no floor.
pub const STD_MIN_RELATIVE: f64 = 0.5;
/// `concentration_max` at or above this lets the Beta family collapse.
pub const BETA_CONCENTRATION_WARN: f64 = 100.0;

/// The smallest initial standard deviation of a config: `√Σ_jj` of `noise_covariance` if it
/// is set, else `noise_sigma` (default 1); `None` if neither has a finite positive entry.
fn smallest_initial_std(config: &MppiConfig) -> Option<f64> {
    let p = &config.proposal;
    let stds: Vec<f64> = match &p.noise_covariance {
        Some(rows) => rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.get(i).map(|v| v.sqrt()))
            .collect(),
        None => p
            .noise_sigma
            .as_deref()
            .unwrap_or(&[1.0])
            .iter()
            .map(|s| s.abs())
            .collect(),
    };
    stds.into_iter()
        .filter(|s| s.is_finite() && *s > 0.0)
        .reduce(f64::min)
}

/// Warnings for a config whose proposal adapts its spread with no floor that holds in closed
/// loop (empty when there is nothing to say). `mppi run` prints them before a run.
///
/// - `gaussian_diag`, `gaussian_full`, `mixture`: warns when `std_reset = false`,
///   `prior_weight` is below [`PRIOR_WEIGHT_MIN`] and `std_min` is below
///   [`STD_MIN_RELATIVE`] times the smallest initial standard deviation (`noise_sigma` or
///   `√diag(noise_covariance)`);
/// - `beta`: warns when `std_reset = false` and `concentration_max` is at least
///   [`BETA_CONCENTRATION_WARN`].
///
/// ```
/// use mppi::{MppiConfig, ProposalConfig, ProposalKind};
/// use mppi::proposal::spread_warnings;
/// let diag = MppiConfig { proposal: ProposalConfig::new(ProposalKind::GaussianDiag), ..MppiConfig::default() };
/// assert!(spread_warnings(&diag).is_empty()); // the default prior_weight is a floor
/// let mut no_floor = diag.clone();
/// no_floor.proposal.prior_weight = Some(0.0);
/// assert_eq!(spread_warnings(&no_floor).len(), 1);
/// ```
#[must_use]
pub fn spread_warnings(config: &MppiConfig) -> Vec<String> {
    let p = &config.proposal;
    let mut out = Vec::new();
    if p.std_reset() {
        return out;
    }
    let name = match p.kind {
        ProposalKind::GaussianDiag | ProposalKind::GaussianFull | ProposalKind::Mixture => {
            p.kind.name()
        }
        ProposalKind::Beta => {
            let cap = p.concentration_max();
            if cap >= BETA_CONCENTRATION_WARN {
                out.push(format!(
                    "proposal kind \"beta\" with proposal.concentration_max = {cap} and \
                     std_reset = false: the concentration can grow until the Beta's standard \
                     deviation is {:.1}% of the control box (at its center), and the warm start \
                     carries the collapsed spread from step to step; set \
                     proposal.concentration_max below {BETA_CONCENTRATION_WARN} (default 30) or \
                     proposal.std_reset = true",
                    100.0 * (0.25 / (cap + 1.0)).sqrt()
                ));
            }
            return out;
        }
        ProposalKind::Gaussian
        | ProposalKind::Colored
        | ProposalKind::Spline
        | ProposalKind::Categorical => return out,
    };
    let nu = p.prior_weight();
    if nu >= PRIOR_WEIGHT_MIN {
        return out;
    }
    let std_min = p.std_min();
    let s0 = smallest_initial_std(config);
    if let Some(s0) = s0
        && std_min >= STD_MIN_RELATIVE * s0
    {
        return out;
    }
    let prior = if nu > 0.0 {
        format!(
            "prior_weight = {nu} (below {PRIOR_WEIGHT_MIN}: too weak a pull toward the initial spread)"
        )
    } else {
        "prior_weight = 0".to_string()
    };
    let floor = match s0 {
        Some(s0) => format!(
            "std_min = {std_min} ({:.2}% of the smallest initial std {s0})",
            100.0 * std_min / s0
        ),
        None => format!("std_min = {std_min}"),
    };
    out.push(format!(
        "proposal kind \"{name}\" adapts its spread with no floor that holds in closed loop: \
         {prior}, std_reset = false and {floor}. Exact EM shrinks the spread at every step and \
         the warm start carries it over, so the planner stops exploring; set \
         proposal.prior_weight >= {PRIOR_WEIGHT_MIN} (default 0.25), proposal.std_reset = true, \
         or proposal.std_min >= {STD_MIN_RELATIVE} x the initial std"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProposalConfig;

    fn cfg(kind: ProposalKind) -> MppiConfig {
        let mut proposal = ProposalConfig::new(kind);
        if kind.keys().contains(&"noise_sigma") {
            proposal.noise_sigma = Some(vec![2.0, 0.5]);
        }
        MppiConfig {
            proposal,
            ..MppiConfig::default()
        }
    }

    fn with(c: &MppiConfig, edit: impl FnOnce(&mut ProposalConfig)) -> MppiConfig {
        let mut c = c.clone();
        edit(&mut c.proposal);
        c
    }

    #[test]
    fn removing_the_floor_of_an_adapted_spread_warns() {
        for kind in [
            ProposalKind::GaussianDiag,
            ProposalKind::GaussianFull,
            ProposalKind::Mixture,
        ] {
            // the defaults hold the spread: no warning
            assert!(spread_warnings(&cfg(kind)).is_empty(), "{kind:?}");
            // no prior, no reset, std_min = 1e-3: the floor is gone
            let bare = with(&cfg(kind), |p| p.prior_weight = Some(0.0));
            let w = spread_warnings(&bare);
            assert_eq!(w.len(), 1, "{kind:?}: {w:?}");
            for key in ["prior_weight = 0", "std_reset = false", "std_min = 0.001"] {
                assert!(w[0].contains(key), "{kind:?}: {key} not in {}", w[0]);
            }
            // relative to the smallest initial std (0.5 of noise_sigma = [2, 0.5])
            assert!(
                w[0].contains("0.20% of the smallest initial std 0.5"),
                "{}",
                w[0]
            );
            // a weak prior still warns; any one real floor silences it
            let weak = with(&bare, |p| p.prior_weight = Some(0.05));
            assert_eq!(spread_warnings(&weak).len(), 1);
            assert!(spread_warnings(&weak)[0].contains("too weak"));
            for floored in [
                with(&bare, |p| p.prior_weight = Some(PRIOR_WEIGHT_MIN)),
                with(&bare, |p| p.std_reset = Some(true)),
                with(&bare, |p| p.std_min = Some(0.25)),
            ] {
                assert!(spread_warnings(&floored).is_empty(), "{floored:?}");
            }
            // std_min just below half the smallest initial std is no floor
            let low = with(&bare, |p| p.std_min = Some(0.24));
            assert_eq!(spread_warnings(&low).len(), 1);
        }
    }

    #[test]
    fn the_initial_std_comes_from_the_covariance_when_set() {
        let c = with(&cfg(ProposalKind::GaussianFull), |p| {
            p.prior_weight = Some(0.0);
            p.std_min = Some(0.3);
            p.noise_sigma = None;
            p.noise_covariance = Some(vec![vec![1.0, 0.5], vec![0.5, 0.36]]);
        });
        // smallest initial std √0.36 = 0.6: std_min = 0.3 is half of it, a floor
        assert!(spread_warnings(&c).is_empty());
        let c = with(&c, |p| p.std_min = Some(0.29));
        assert_eq!(spread_warnings(&c).len(), 1);
    }

    #[test]
    fn beta_warns_on_a_large_concentration_cap_only() {
        assert!(spread_warnings(&cfg(ProposalKind::Beta)).is_empty());
        let loose = with(&cfg(ProposalKind::Beta), |p| {
            p.concentration_max = Some(1e3);
        });
        let w = spread_warnings(&loose);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("proposal.concentration_max = 1000"),
            "{}",
            w[0]
        );
        // 0.5 / √1001 of the box
        assert!(w[0].contains("1.6%"), "{}", w[0]);
        assert!(spread_warnings(&with(&loose, |p| p.std_reset = Some(true))).is_empty());
    }

    #[test]
    fn proposals_with_a_fixed_spread_never_warn() {
        for kind in [
            ProposalKind::Gaussian,
            ProposalKind::Colored,
            ProposalKind::Spline,
            ProposalKind::Categorical,
        ] {
            assert!(spread_warnings(&cfg(kind)).is_empty(), "{kind:?}");
        }
    }
}
