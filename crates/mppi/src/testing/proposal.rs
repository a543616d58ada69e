//! [`check_proposal`]: the properties every proposal must have.

use super::*;

/// Number of samples drawn by [`check_proposal`] for a plan of `d` entries: whole blocks and a
/// partial one, and at least `4 d` so that a full covariance can be fitted.
fn sample_count(d: usize) -> usize {
    (4 * d).max(3 * BLOCK_LANES).next_multiple_of(BLOCK_LANES) + 7
}

/// The streams of the check: iteration `k` of step 0 of `seed`, sample `i` in lane
/// `i % BLOCK_LANES` of block `i / BLOCK_LANES`, as the planner lays them out.
fn block_rng(seed: u64, iteration: u64, block: usize, n: usize, normals: Normals) -> BlockRng {
    let first = block * BLOCK_LANES;
    BlockRng::new(seed, 0, iteration, first, (n - first).min(BLOCK_LANES)).with_normals(normals)
}

/// `n` samples (row-major) drawn with [`Proposal::sample`] from the lanes of the planner's
/// blocks; each row is filled with NaN first, so an entry `sample` does not write shows.
fn draw_rows(p: &dyn Proposal, seed: u64, iteration: u64, n: usize) -> Vec<f64> {
    draw_rows_with(p, seed, iteration, n, Normals::Exact)
}

/// [`draw_rows`] with the normal generator `normals`.
fn draw_rows_with(
    p: &dyn Proposal,
    seed: u64,
    iteration: u64,
    n: usize,
    normals: Normals,
) -> Vec<f64> {
    let d = p.dim();
    let mut rows = vec![f64::NAN; n * d];
    for (b, block) in rows.chunks_mut(BLOCK_LANES * d).enumerate() {
        let rng = block_rng(seed, iteration, b, n, normals);
        for (l, u) in block.chunks_exact_mut(d).enumerate() {
            let mut lane = rng.lane(l);
            p.sample(&mut lane, u);
        }
    }
    rows
}

/// Check that every sample is finite (so every one of its `d` entries was written).
fn check_samples_finite(
    name: &str,
    label: &str,
    rows: &[f64],
    d: usize,
) -> Result<(), ConformanceError> {
    if let Some((k, v)) = first_nonfinite(rows) {
        return failure(
            name,
            "sample writes dim() finite entries",
            format!(
                "{label}: sample {} entry {} of {d} is {v} (entries are NaN before sample is called)",
                k / d,
                k % d
            ),
        );
    }
    Ok(())
}

/// Check [`Proposal::sample_block`] against the rows `want` that [`Proposal::sample`] drew from
/// the same streams, block by block (full blocks and the partial last one).
fn check_blocks(
    p: &dyn Proposal,
    seed: u64,
    iteration: u64,
    want: &[f64],
    label: &str,
) -> Result<(), ConformanceError> {
    check_blocks_with(p, seed, iteration, want, label, Normals::Exact)
}

/// [`check_blocks`] with the normal generator `normals` (`want` drawn with it).
fn check_blocks_with(
    p: &dyn Proposal,
    seed: u64,
    iteration: u64,
    want: &[f64],
    label: &str,
    normals: Normals,
) -> Result<(), ConformanceError> {
    let (name, d) = (p.name(), p.dim());
    let n = want.len() / d;
    for (b, want_rows) in want.chunks(BLOCK_LANES * d).enumerate() {
        let mut rng = block_rng(seed, iteration, b, n, normals);
        let lanes = rng.lanes();
        let mut rows = vec![f64::NAN; lanes * d];
        let mut soa = vec![f64::NAN; lanes * d];
        let rows_filled = p.sample_block(&mut rng, &mut rows, &mut soa);
        let mut want_soa = vec![0.0; lanes * d];
        rows_to_soa(lanes, want_rows, &mut want_soa);
        if let Some(k) = first_bit_difference(&soa, &want_soa) {
            let (i, l) = (k / lanes, k % lanes);
            return failure(
                name,
                "sample_block == sample, bit for bit",
                format!(
                    "{label}: block {b} ({lanes} lanes), lane {l}, entry {i}: sample_block drew \
                     {:e}, sample drew {:e}",
                    soa[k], want_soa[k]
                ),
            );
        }
        if rows_filled && let Some(k) = first_bit_difference(&rows, want_rows) {
            return failure(
                name,
                "sample_block rows == sample when it returns true",
                format!(
                    "{label}: block {b} ({lanes} lanes), sample {} entry {}: the rows hold {:e}, \
                     sample drew {:e}",
                    k / d,
                    k % d,
                    rows[k],
                    want_rows[k]
                ),
            );
        }
    }
    Ok(())
}

/// Samples in the block layout of [`Proposal::fit_blocks`].
fn rows_to_blocks(rows: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows.len()];
    for (block, dst) in rows
        .chunks(BLOCK_LANES * d)
        .zip(out.chunks_mut(BLOCK_LANES * d))
    {
        rows_to_soa(block.len() / d, block, dst);
    }
    out
}

/// Normalized weights of varied size with every fourth one exactly zero.
fn uneven_weights(n: usize) -> Vec<f64> {
    let mut w: Vec<f64> = (0..n)
        .map(|i| {
            if i % 4 == 1 {
                0.0
            } else {
                (-0.3 * (i % 7) as f64).exp()
            }
        })
        .collect();
    let s: f64 = w.iter().sum();
    w.iter_mut().for_each(|v| *v /= s);
    w
}

/// Check a user-written [`Proposal`] against the contract the planner relies on.
///
/// Samples come from the planner's own streams of `seed` ([`BlockRng`], iteration 0 of step
/// 0): enough for whole blocks of [`BLOCK_LANES`] samples, a partial last block and at least
/// `4 · dim()` samples. `proposal` is not modified (every check runs on a
/// [`Proposal::clone_box`]). In order, the properties are:
///
/// 1. `dim()` and `control_dim()` are positive, `dim()` is a multiple of `control_dim()`, and
///    `params()` is finite;
/// 2. `clone_box` keeps the name, the dimension and the parameters;
/// 3. `prepare` accepts [`Context::open_loop`] and a schedule's neutral spread (every
///    `s_t = 1`);
/// 4. `sample` writes `dim()` finite entries and is a function of its stream;
/// 5. `sample_block` draws what `sample` draws from each lane of the block ([`BlockRng::lane`]),
///    bit for bit, for full and partial blocks, in `soa` and (if it says so) in `rows`;
/// 6. if `prepare` accepts a spread `s_t ≠ 1`, the samples change (for a distribution the
///    spread leaves as it is, such as a uniform categorical, those of a refit on uneven
///    weights change), stay finite and still agree between `sample_block` and `sample`; either way, `prepare(open_loop)` afterwards brings
///    back the original samples bit for bit;
/// 7. `set_params(params())` succeeds and keeps the parameters to [`ROUND_OFF_TOLERANCE`];
///    `set_params` rejects a NaN entry and a wrong length, leaving the parameters unchanged;
/// 8. `plan` writes `dim()` finite entries and `set_plan(plan)` keeps the plan to
///    [`ROUND_OFF_TOLERANCE`];
/// 9. `fit` on the samples with uniform weights writes `params().len()` finite entries that
///    `set_params` accepts; with uneven weights, samples of weight zero do not change the
///    result (to [`ROUND_OFF_TOLERANCE`]);
/// 10. if `fit_blocks` returns `true` it gives what `fit` gives, bit for bit; if
///     `fits_blocks()` is `true` it must return `true`;
/// 11. `log_prob` (where `Some`) is finite at every sample, and `Some` for all or none;
/// 12. `kl` (where `Some`) of a clone against itself is within [`KL_TOLERANCE`] of 0, and
///     finite and `≥ −KL_TOLERANCE` against the fitted proposal;
/// 13. after `shift` (both fills) and `reset` the dimensions are kept, the parameters are
///     finite and accepted by `set_params`, and samples and plan are finite;
/// 14. `control_cost` (where `Some`) is finite.
///
/// ```
/// use mppi::proposal::{Proposal, GaussianFixed};
/// use mppi::testing::check_proposal;
/// // every proposal the planner builds passes, and so must yours
/// let cfg = mppi::MppiConfig { horizon: 4, ..mppi::MppiConfig::default() };
/// let planner = mppi::Planner::new(&cfg, 1)?;
/// check_proposal(planner.proposal(), 1).unwrap();
/// # Ok::<(), mppi::MppiError>(())
/// ```
pub fn check_proposal(proposal: &dyn Proposal, seed: u64) -> Result<(), ConformanceError> {
    let name = proposal.name();
    let (d, m) = (proposal.dim(), proposal.control_dim());
    let theta = proposal.params().to_vec();

    // 1. dimensions and parameters
    if d == 0 || m == 0 || !d.is_multiple_of(m) {
        return failure(
            name,
            "dim() is a positive multiple of control_dim()",
            format!("dim() = {d}, control_dim() = {m}"),
        );
    }
    let horizon = d / m;
    if let Some((i, v)) = first_nonfinite(&theta) {
        return failure(
            name,
            "params() is finite",
            format!("entry {i} of {} is {v}", theta.len()),
        );
    }

    // 2. clone_box
    let mut p = proposal.clone_box();
    if p.name() != name || p.dim() != d || p.control_dim() != m {
        return failure(
            name,
            "clone_box keeps name and dimensions",
            format!(
                "clone is `{}` with dim() = {}, control_dim() = {}; original `{name}` has {d}, {m}",
                p.name(),
                p.dim(),
                p.control_dim()
            ),
        );
    }
    if let Some(i) = first_bit_difference(p.params(), &theta)
        .or((p.params().len() != theta.len()).then_some(theta.len().min(p.params().len())))
    {
        return failure(
            name,
            "clone_box keeps the parameters",
            format!(
                "parameter {i}: clone {:?}, original {:?}",
                p.params().get(i),
                theta.get(i)
            ),
        );
    }

    // 3. prepare
    let open = Context::open_loop(0, 0, 1);
    if let Err(e) = p.prepare(&open) {
        return failure(
            name,
            "prepare(Context::open_loop) succeeds",
            format!("it returned: {e}"),
        );
    }
    let ones = vec![1.0; horizon];
    let neutral = Context {
        spread: Some(&ones),
        ..open
    };
    if let Err(e) = p.prepare(&neutral).and_then(|()| p.prepare(&open)) {
        return failure(
            name,
            "prepare accepts a neutral spread (every s_t = 1)",
            format!("it returned: {e}"),
        );
    }

    // 4. sample
    let n = sample_count(d);
    let rows = draw_rows(p.as_ref(), seed, 0, n);
    check_samples_finite(name, "own spread", &rows, d)?;
    if let Some(k) = first_bit_difference(&draw_rows(p.as_ref(), seed, 0, n), &rows) {
        return failure(
            name,
            "sample is a function of its stream",
            format!(
                "sample {} entry {} differs between two draws from the same stream",
                k / d,
                k % d
            ),
        );
    }
    let clone = p.clone_box();
    if let Some(k) = first_bit_difference(&draw_rows(clone.as_ref(), seed, 0, n), &rows) {
        return failure(
            name,
            "clone_box samples what the original samples",
            format!("sample {} entry {} differs", k / d, k % d),
        );
    }

    // 5. sample_block, with either normal generator
    check_blocks(p.as_ref(), seed, 0, &rows, "own spread")?;
    let fast = draw_rows_with(p.as_ref(), seed, 0, n, Normals::Fast);
    check_samples_finite(name, "fast normals", &fast, d)?;
    check_blocks_with(p.as_ref(), seed, 0, &fast, "fast normals", Normals::Fast)?;

    // 6. a schedule's spread
    let spread: Vec<f64> = (0..horizon).map(|t| 0.5 + 0.25 * (t % 3) as f64).collect();
    let scaled = Context {
        spread: Some(&spread),
        ..open
    };
    if p.prepare(&scaled).is_ok() {
        let label = "with a schedule's spread";
        let scaled_rows = draw_rows(p.as_ref(), seed, 0, n);
        check_samples_finite(name, label, &scaled_rows, d)?;
        // a distribution the spread leaves as it is (a uniform categorical under tempering)
        // draws the same samples: then a refitted one (uneven weights) must change
        let changes_when_moved = || {
            let mut moved = p.clone_box();
            if moved.prepare(&open).is_err() {
                return false;
            }
            let total = (n * (n + 1) / 2) as f64;
            let w: Vec<f64> = (0..n).map(|i| (i + 1) as f64 / total).collect();
            let mut theta = vec![f64::NAN; moved.params().len()];
            moved.fit(&rows, &w, &mut theta);
            if moved.set_params(&theta).is_err() {
                return false;
            }
            let own = draw_rows(moved.as_ref(), seed, 0, n);
            moved.prepare(&scaled).is_ok()
                && first_bit_difference(&draw_rows(moved.as_ref(), seed, 0, n), &own).is_some()
        };
        if first_bit_difference(&scaled_rows, &rows).is_none() && !changes_when_moved() {
            return failure(
                name,
                "a spread prepare accepts changes the samples",
                format!("prepare accepted the spread {spread:?} but the samples did not change"),
            );
        }
        check_blocks(p.as_ref(), seed, 0, &scaled_rows, label)?;
        if let Some((i, u)) = scaled_rows
            .chunks_exact(d)
            .enumerate()
            .find(|(_, u)| p.log_prob(u).is_some_and(|lp| !lp.is_finite()))
        {
            return failure(
                name,
                "log_prob is finite at samples",
                format!(
                    "{label}: log_prob(sample {i}) = {:?}",
                    p.log_prob(u).unwrap_or(f64::NAN)
                ),
            );
        }
    }
    if let Err(e) = p.prepare(&open) {
        return failure(
            name,
            "prepare(Context::open_loop) succeeds",
            format!("after a schedule's spread it returned: {e}"),
        );
    }
    if let Some(k) = first_bit_difference(&draw_rows(p.as_ref(), seed, 0, n), &rows) {
        return failure(
            name,
            "prepare(open_loop) restores the proposal's own spread",
            format!(
                "after prepare with the spread {spread:?} and then open_loop, sample {} entry {} \
                 differs from before",
                k / d,
                k % d
            ),
        );
    }

    // 7. parameters
    check_params(p.as_ref(), &theta)?;

    // 8. plan
    let mut plan = vec![f64::NAN; d];
    p.plan(&mut plan);
    if let Some((i, v)) = first_nonfinite(&plan) {
        return failure(
            name,
            "plan writes dim() finite entries",
            format!("entry {i} of {d} is {v} (entries are NaN before plan is called)"),
        );
    }
    let mut q = p.clone_box();
    if let Err(e) = q.set_plan(&plan) {
        return failure(
            name,
            "set_plan(plan()) succeeds",
            format!("it returned: {e}"),
        );
    }
    let mut again = vec![f64::NAN; d];
    q.plan(&mut again);
    let (i, diff) = worst_scaled_diff(&again, &plan);
    if !within(diff, ROUND_OFF_TOLERANCE) {
        return failure(
            name,
            "set_plan(plan()) keeps the plan",
            format!(
                "entry {i}: {} after, {} before (|diff| / (1 + |before|) = {diff:e} > {ROUND_OFF_TOLERANCE:e})",
                again[i], plan[i]
            ),
        );
    }

    // 9. fit
    let np = theta.len();
    let uniform = vec![1.0 / n as f64; n];
    let fitted_theta = fit_with(p.as_ref(), &rows, &uniform, "uniform weights")?;
    let mut fitted = p.clone_box();
    if let Err(e) = fitted.set_params(&fitted_theta) {
        return failure(
            name,
            "set_params accepts what fit returns",
            format!("fit on {n} samples with uniform weights; set_params returned: {e}"),
        );
    }
    let w = uneven_weights(n);
    let with_all = fit_with(p.as_ref(), &rows, &w, "uneven weights")?;
    let other = draw_rows(p.as_ref(), seed, 1, n);
    let mut replaced = rows.clone();
    for (i, (dst, src)) in replaced
        .chunks_exact_mut(d)
        .zip(other.chunks_exact(d))
        .enumerate()
    {
        if w[i] == 0.0 {
            dst.copy_from_slice(src);
        }
    }
    let with_replaced = fit_with(p.as_ref(), &replaced, &w, "uneven weights")?;
    let (i, diff) = worst_scaled_diff(&with_replaced, &with_all);
    if !within(diff, ROUND_OFF_TOLERANCE) {
        return failure(
            name,
            "fit ignores samples of weight zero",
            format!(
                "replacing the {} zero-weight samples by other samples moved parameter {i} from \
                 {} to {} (|diff| / (1 + |value|) = {diff:e} > {ROUND_OFF_TOLERANCE:e})",
                w.iter().filter(|v| **v == 0.0).count(),
                with_all[i],
                with_replaced[i]
            ),
        );
    }

    // 10. fit_blocks
    let blocks = rows_to_blocks(&rows, d);
    let mut f = p.clone_box();
    let mut from_blocks = vec![f64::NAN; np];
    let claimed = f.fits_blocks();
    let done = f.fit_blocks(&blocks, &w, &mut from_blocks);
    if claimed && !done {
        return failure(
            name,
            "fit_blocks returns true when fits_blocks() is true",
            "fits_blocks() is true but fit_blocks returned false",
        );
    }
    if done && let Some(i) = first_bit_difference(&from_blocks, &with_all) {
        return failure(
            name,
            "fit_blocks == fit, bit for bit",
            format!(
                "parameter {i}: fit_blocks gave {:e}, fit gave {:e} ({n} samples in blocks of \
                 {BLOCK_LANES}, uneven weights)",
                from_blocks[i], with_all[i]
            ),
        );
    }

    // 11. log_prob
    let densities: Vec<Option<f64>> = rows.chunks_exact(d).map(|u| p.log_prob(u)).collect();
    let has_density = densities[0].is_some();
    if let Some(i) = densities.iter().position(|lp| lp.is_some() != has_density) {
        return failure(
            name,
            "log_prob is Some for all samples or for none",
            format!(
                "log_prob(sample 0) is {:?} but log_prob(sample {i}) is {:?}",
                densities[0], densities[i]
            ),
        );
    }
    if let Some((i, lp)) = densities
        .iter()
        .enumerate()
        .find_map(|(i, lp)| lp.filter(|v| !v.is_finite()).map(|v| (i, v)))
    {
        return failure(
            name,
            "log_prob is finite at samples",
            format!("log_prob(sample {i}) = {lp}"),
        );
    }

    // 12. kl
    if let Some(kl) = p.kl(p.clone_box().as_ref())
        && !within(kl.abs(), KL_TOLERANCE)
    {
        return failure(
            name,
            "kl(p, p) = 0",
            format!("KL(p ‖ clone of p) = {kl:e} (tolerance {KL_TOLERANCE:e})"),
        );
    }
    for (label, a, b) in [
        ("KL(fitted ‖ p)", fitted.as_ref(), p.as_ref()),
        ("KL(p ‖ fitted)", p.as_ref(), fitted.as_ref()),
    ] {
        if let Some(kl) = a.kl(b)
            && !(kl.is_finite() && kl >= -KL_TOLERANCE)
        {
            return failure(
                name,
                "kl is finite and >= 0",
                format!("{label} = {kl:e}, with fitted = fit on uniform weights"),
            );
        }
    }

    // 13. shift and reset
    for (label, change) in [
        ("shift(ShiftFill::Last)", Change::Shift(ShiftFill::Last)),
        ("shift(ShiftFill::Zero)", Change::Shift(ShiftFill::Zero)),
        ("reset()", Change::Reset),
    ] {
        let mut g = p.clone_box();
        match change {
            Change::Shift(fill) => g.shift(fill),
            Change::Reset => g.reset(),
        }
        check_after_change(g.as_ref(), label, d, m, np, seed)?;
    }

    // 14. control_cost
    let eps: Vec<f64> = rows[..d].iter().zip(&plan).map(|(u, mu)| u - mu).collect();
    if let Some(c) = p.control_cost(&plan, &eps)
        && !c.is_finite()
    {
        return failure(
            name,
            "control_cost is finite",
            format!("control_cost(plan, sample 0 − plan) = {c}"),
        );
    }
    Ok(())
}

/// What property 13 of [`check_proposal`] does to a clone.
#[derive(Clone, Copy)]
enum Change {
    Shift(ShiftFill),
    Reset,
}

/// Property 7 of [`check_proposal`]: round trip and rejections of `set_params`.
fn check_params(p: &dyn Proposal, theta: &[f64]) -> Result<(), ConformanceError> {
    let name = p.name();
    let mut q = p.clone_box();
    if let Err(e) = q.set_params(theta) {
        return failure(
            name,
            "set_params(params()) succeeds",
            format!("it returned: {e}"),
        );
    }
    if q.params().len() != theta.len() {
        return failure(
            name,
            "set_params(params()) keeps the parameters",
            format!(
                "params() has {} entries after, {} before",
                q.params().len(),
                theta.len()
            ),
        );
    }
    let (i, diff) = worst_scaled_diff(q.params(), theta);
    if !within(diff, ROUND_OFF_TOLERANCE) {
        return failure(
            name,
            "set_params(params()) keeps the parameters",
            format!(
                "parameter {i}: {} after, {} before (|diff| / (1 + |before|) = {diff:e} > {ROUND_OFF_TOLERANCE:e})",
                q.params()[i],
                theta[i]
            ),
        );
    }
    let mut bad: Vec<(String, Vec<f64>)> = vec![(
        format!("{} entries instead of {}", theta.len() + 1, theta.len()),
        [theta, &[0.0]].concat(),
    )];
    if !theta.is_empty() {
        let mut nan = theta.to_vec();
        nan[theta.len() / 2] = f64::NAN;
        bad.push((format!("NaN at entry {}", theta.len() / 2), nan));
    }
    for (what, input) in bad {
        let mut q = p.clone_box();
        let before = q.params().to_vec();
        if q.set_params(&input).is_ok() {
            return failure(
                name,
                "set_params rejects invalid parameters",
                format!("set_params accepted {what}"),
            );
        }
        if q.params().len() != before.len() || first_bit_difference(q.params(), &before).is_some() {
            return failure(
                name,
                "a rejected set_params leaves the parameters unchanged",
                format!("set_params rejected {what} but changed params()"),
            );
        }
    }
    Ok(())
}

/// [`Proposal::fit`] on a fresh clone, checked to write `params().len()` finite entries.
fn fit_with(
    p: &dyn Proposal,
    rows: &[f64],
    weights: &[f64],
    label: &str,
) -> Result<Vec<f64>, ConformanceError> {
    let mut f = p.clone_box();
    let mut out = vec![f64::NAN; p.params().len()];
    f.fit(rows, weights, &mut out);
    if let Some((i, v)) = first_nonfinite(&out) {
        return failure(
            p.name(),
            "fit writes params().len() finite entries",
            format!(
                "{label}, {} samples: entry {i} of {} is {v} (entries are NaN before fit is called)",
                weights.len(),
                out.len()
            ),
        );
    }
    Ok(out)
}

/// Property 13 of [`check_proposal`] on a shifted or reset clone `g`.
fn check_after_change(
    g: &dyn Proposal,
    label: &str,
    d: usize,
    m: usize,
    np: usize,
    seed: u64,
) -> Result<(), ConformanceError> {
    let name = g.name();
    if g.dim() != d || g.control_dim() != m || g.params().len() != np {
        return failure(
            name,
            "shift and reset keep the dimensions",
            format!(
                "after {label}: dim() = {}, control_dim() = {}, params().len() = {}; before {d}, \
                 {m}, {np}",
                g.dim(),
                g.control_dim(),
                g.params().len()
            ),
        );
    }
    if let Some((i, v)) = first_nonfinite(g.params()) {
        return failure(
            name,
            "shift and reset keep the parameters valid",
            format!("after {label}: parameter {i} is {v}"),
        );
    }
    let theta = g.params().to_vec();
    if let Err(e) = g.clone_box().set_params(&theta) {
        return failure(
            name,
            "shift and reset keep the parameters valid",
            format!("after {label}: set_params(params()) returned: {e}"),
        );
    }
    let rows = draw_rows(g, seed, 2, BLOCK_LANES);
    check_samples_finite(name, &format!("after {label}"), &rows, d)?;
    let mut plan = vec![f64::NAN; d];
    g.plan(&mut plan);
    if let Some((i, v)) = first_nonfinite(&plan) {
        return failure(
            name,
            "plan writes dim() finite entries",
            format!("after {label}: entry {i} of {d} is {v}"),
        );
    }
    Ok(())
}
