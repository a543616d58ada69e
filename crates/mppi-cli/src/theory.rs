//! `mppi theory`: the theory-versus-measurement tables and their CSV / JSON files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mppi_theory::experiments::{Check, TheoryReport};

/// Display width of `s`: characters, not counting combining marks (`L̂` is one column).
fn width(s: &str) -> usize {
    s.chars()
        .filter(|c| !('\u{0300}'..='\u{036f}').contains(c))
        .count()
}

/// Pad `s` to `w` columns on the right (`left = true`) or the left.
fn pad(s: &str, w: usize, left: bool) -> String {
    let fill = " ".repeat(w.saturating_sub(width(s)));
    if left {
        format!("{s}{fill}")
    } else {
        format!("{fill}{s}")
    }
}

/// An aligned text table; `numeric[i]` right-aligns column `i`.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], numeric: &[bool]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: Vec<String>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .zip(numeric)
            .map(|((c, w), num)| pad(c, *w, !num))
            .collect();
        format!("  {}", parts.join("  ").trim_end())
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        line(header.iter().map(|h| (*h).to_string()).collect())
    );
    for row in rows {
        let _ = writeln!(s, "{}", line(row.clone()));
    }
    s
}

/// A number for a table: 6 significant digits in plain notation, or scientific notation for
/// very small and very large magnitudes.
#[must_use]
pub fn num(v: f64) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let digits = (5 - a.log10().floor() as i32).clamp(0, 8) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3e}")
    }
}

fn checks_table(checks: &[Check]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            vec![
                c.quantity.clone(),
                c.setting.clone(),
                num(c.theory),
                num(c.measured),
                c.tolerance_text(),
                if c.pass { "ok" } else { "FAIL" }.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "QUANTITY",
            "SETTING",
            "THEORY",
            "MEASURED",
            "TOLERANCE",
            "VERDICT",
        ],
        &rows,
        &[false, false, true, true, false, false],
    )
}

/// The text `mppi theory` prints: one section per experiment, then the verdict count.
#[must_use]
pub fn render(report: &TheoryReport) -> String {
    let mut s = String::new();
    let c = &report.contraction;
    let _ = writeln!(
        s,
        "(a) contraction rate on the C.4 quadratic (d = 4): ρ = ρ((I + ΣH/λ)⁻¹) vs planner \
         (N = {}, {} runs per λ)",
        c.samples, c.repetitions
    );
    s.push_str(&checks_table(&c.checks));

    let f = &report.sufficient_increase;
    let _ = writeln!(
        s,
        "\n(b) sufficient increase per family (C.2), floors off, M-step on N = {}: KL > 0, \
         ΔQ̂ = KL, and ΔL ≥ KL on {} fresh pairs of {} samples; {}",
        f.samples, f.pairs, f.eval_samples, f.objective
    );
    s.push_str(&checks_table(&f.checks));
    let rows: Vec<Vec<String>> = f
        .rows
        .iter()
        .map(|r| {
            vec![
                r.family.clone(),
                if r.reseeded > 0 {
                    format!("{} ({} re-seeded)", r.iterations, r.reseeded)
                } else {
                    r.iterations.to_string()
                },
                num(r.mean_kl),
                num(r.min_excess),
                num(r.min_z),
                num(r.worst_mstep_gap),
                format!("{} → {}", num(r.initial_cost), num(r.final_cost)),
            ]
        })
        .collect();
    s.push('\n');
    s.push_str(&table(
        &[
            "FAMILY",
            "STEPS",
            "MEAN KL",
            "MIN ΔL̂ − KL",
            "MIN z",
            "M-STEP GAP",
            "COST",
        ],
        &rows,
        &[false, true, true, true, true, true, false],
    ));
    for (name, reason) in &f.skipped {
        let _ = writeln!(s, "  skipped {name}: {reason}");
    }

    let fc = &report.full_covariance;
    let _ = writeln!(
        s,
        "\n(c) full-covariance EM: Σ_k = (Σ₀⁻¹ + kH/λ)⁻¹, e_k = (I + kΣ₀H/λ)⁻¹e₀ (O(1/k)) \
         vs fixed Σ: e_k = A^k e₀ (linear)"
    );
    s.push_str(&checks_table(&fc.checks));
    if let Some(reason) = &fc.skipped {
        let _ = writeln!(
            s,
            "  planner part skipped (gaussian_full unavailable): {reason}"
        );
    }

    let a = &report.acceleration;
    let _ = writeln!(
        s,
        "\n(d) acceleration (D.3), λ = {}, s_min = {}, s_max = {}: exact E-steps and planner \
         (N = {}, safeguard off)",
        a.lambda,
        num(a.s_min),
        num(a.s_max),
        a.samples
    );
    s.push_str(&checks_table(&a.checks));

    let e = &report.ess;
    let _ = writeln!(
        s,
        "\n(e) expected ESS/N = E[w]²/E[w²] (C.4 item 4) vs planner (N = {}, mean of {} runs)",
        e.samples, e.repetitions
    );
    s.push_str(&checks_table(&e.checks));

    let all = report.checks();
    let passed = all.iter().filter(|c| c.pass).count();
    let _ = writeln!(
        s,
        "\n{passed}/{} checks agree with the theory ({} size, seed {})",
        all.len(),
        match report.size {
            mppi_theory::experiments::Size::Quick => "quick",
            mppi_theory::experiments::Size::Full => "full",
        },
        report.seed
    );
    s
}

/// Quote a CSV field if needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `theory_checks.csv`: every check of every experiment.
#[must_use]
pub fn checks_csv(report: &TheoryReport) -> String {
    let mut s = String::from(
        "experiment,quantity,setting,theory,measured,criterion,tolerance,basis,pass\n",
    );
    for c in report.checks() {
        let criterion = match c.criterion {
            mppi_theory::experiments::Criterion::Abs => "abs",
            mppi_theory::experiments::Criterion::Rel => "rel",
            mppi_theory::experiments::Criterion::AtLeast => "at_least",
        };
        let _ = writeln!(
            s,
            "{},{},{},{},{},{criterion},{},{},{}",
            c.experiment,
            csv_field(&c.quantity),
            csv_field(&c.setting),
            c.theory,
            c.measured,
            c.tolerance,
            csv_field(&c.basis),
            c.pass
        );
    }
    s
}

/// `theory_families.csv`: the sufficient-increase measurements, one row per family and EM
/// step (`increase` is the fresh-sample `ΔL̂`, `allowance` what the check subtracts from `kl`).
#[must_use]
pub fn families_csv(report: &TheoryReport) -> String {
    let mut s = String::from(
        "family,iteration,moved,reseeded,kl,q_gain,mstep_gap,increase,increase_se,mstep_se,bias,\
         optimism,quantile,allowance,z,holds\n",
    );
    for r in &report.sufficient_increase.rows {
        for st in &r.steps {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.family,
                st.iteration,
                st.moved,
                st.reseeded,
                st.kl,
                st.q_gain,
                st.mstep_gap,
                st.increase,
                st.increase_se,
                st.mstep_se,
                st.bias,
                st.optimism,
                st.quantile,
                st.allowance,
                st.z(),
                st.holds()
            );
        }
    }
    s
}

/// Write `theory.json` (everything, series included), `theory_checks.csv` and
/// `theory_families.csv` into `dir` (which must exist).
pub fn write_theory_files(dir: &Path, report: &TheoryReport) -> anyhow::Result<Vec<PathBuf>> {
    let mut json = serde_json::to_string_pretty(report).context("cannot serialize the report")?;
    json.push('\n');
    let mut written = vec![];
    for (name, contents) in [
        ("theory.json", json),
        ("theory_checks.csv", checks_csv(report)),
        ("theory_families.csv", families_csv(report)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(0.918009), "0.918009");
        assert_eq!(num(3.17651), "3.17651");
        assert_eq!(num(1e-12), "1.000e-12");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(f64::NAN), "n/a");
    }

    #[test]
    fn tables_align_with_combining_marks() {
        let t = table(
            &["A", "B"],
            &[
                vec!["ΔL̂".into(), "1".into()],
                vec!["xyz".into(), "22".into()],
            ],
            &[false, true],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(width(lines[1]), width(lines[2]), "{t}");
    }
}
