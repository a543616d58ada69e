//! Conformance checks for stages written outside the crate: a [`Proposal`] of your own, and
//! [`Dynamics`] + [`Cost`] models with hand-written block kernels.
//!
//! The planner relies on properties the type system cannot state. It draws samples with
//! [`Proposal::sample_block`] but other code paths (plots, diagnostics, tests) use
//! [`Proposal::sample`], so the two must agree bit for bit, or results change with the code
//! path. It fits with [`Proposal::fit_blocks`] when it can and with [`Proposal::fit`] when it
//! cannot, so those must agree too. Rollouts call the `*_block` methods of a model, and
//! everything else calls the scalar ones. A mistake in any of these compiles, runs, and
//! quietly gives worse plans.
//!
//! [`check_proposal`] and [`check_dynamics`] test those properties. Each returns the first
//! one that fails, with the numbers, as a [`ConformanceError`]. Call them from a unit test of
//! your own:
//!
//! ```
//! use mppi::proposal::GaussianFixed;
//! use mppi::testing::check_proposal;
//! let proposal = GaussianFixed::new(5, 2, &[1.0, 0.3, 0.3, 0.5], &[-2.0, -2.0], &[2.0, 2.0])?;
//! check_proposal(&proposal, 7).expect("conforms");
//! # Ok::<(), mppi::MppiError>(())
//! ```
//!
//! The checks allocate, so don't call them in a control loop.

use std::fmt;

use crate::config::ShiftFill;
use crate::objective::{BLOCK_LANES, Cost, Dynamics};
use crate::proposal::{Context, Proposal, rows_to_soa};
use crate::rng::BlockRng;

/// The first property a checked stage fails, and what was measured.
///
/// ```
/// use mppi::testing::ConformanceError;
/// let e = ConformanceError {
///     subject: "my_proposal".into(),
///     property: "kl(p, p) = 0",
///     detail: "KL = 0.1".into(),
/// };
/// assert_eq!(e.to_string(), "`my_proposal` fails `kl(p, p) = 0`: KL = 0.1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceError {
    /// What was checked: the proposal's [`Proposal::name`], or the type name of the dynamics
    /// or cost.
    pub subject: String,
    /// The property that does not hold, e.g. `sample_block == sample`.
    pub property: &'static str,
    /// Where it fails and by how much (block, lane, entry, both values, the tolerance).
    pub detail: String,
}

impl fmt::Display for ConformanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` fails `{}`: {}",
            self.subject, self.property, self.detail
        )
    }
}

impl std::error::Error for ConformanceError {}

/// Tolerance of [`check_proposal`] on values that must match "up to round-off" (parameter
/// round trips, `set_plan(plan)`, fits with and without zero-weight samples), relative to
/// `1 + |value|`.
pub const ROUND_OFF_TOLERANCE: f64 = 1e-9;

/// Tolerance of [`check_proposal`] on `|KL(p ‖ p)|`.
pub const KL_TOLERANCE: f64 = 1e-9;

/// Tolerance of [`check_dynamics`] on the float32 block methods, relative to `1 + |value|`
/// (about 80 float32 ulps at 1): a kernel in `f32` rounds every operation, so it cannot match
/// the `f64` scalar methods bit for bit. The tolerance actually used is the larger of this and
/// the `tol` argument.
pub const F32_TOLERANCE: f64 = 1e-5;

/// `Err` with the subject, property and detail.
fn failure<T>(
    subject: &str,
    property: &'static str,
    detail: impl Into<String>,
) -> Result<T, ConformanceError> {
    Err(ConformanceError {
        subject: subject.to_string(),
        property,
        detail: detail.into(),
    })
}

/// The first entry of `v` that is not finite, with its index.
fn first_nonfinite(v: &[f64]) -> Option<(usize, f64)> {
    v.iter().copied().enumerate().find(|(_, x)| !x.is_finite())
}

/// `max_i |a_i − b_i| / (1 + |b_i|)` and where it is largest (NaN where either is NaN).
fn worst_scaled_diff(a: &[f64], b: &[f64]) -> (usize, f64) {
    let mut worst = (0, 0.0f64);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (x - y).abs() / (1.0 + y.abs());
        if d.is_nan() {
            return (i, f64::NAN);
        }
        if d > worst.1 {
            worst = (i, d);
        }
    }
    worst
}

/// `value <= tol`, false for NaN (a NaN difference is a failure).
fn within(value: f64, tol: f64) -> bool {
    value <= tol
}

/// The first index where `a` and `b` differ in their bits.
fn first_bit_difference(a: &[f64], b: &[f64]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits())
}

/// Number of samples drawn by [`check_proposal`] for a plan of `d` entries: whole blocks and a
/// partial one, and at least `4 d` so that a full covariance can be fitted.
fn sample_count(d: usize) -> usize {
    (4 * d).max(3 * BLOCK_LANES).next_multiple_of(BLOCK_LANES) + 7
}

/// The streams of the check: iteration `k` of step 0 of `seed`, sample `i` in lane
/// `i % BLOCK_LANES` of block `i / BLOCK_LANES`, as the planner lays them out.
fn block_rng(seed: u64, iteration: u64, block: usize, n: usize) -> BlockRng {
    let first = block * BLOCK_LANES;
    BlockRng::new(seed, 0, iteration, first, (n - first).min(BLOCK_LANES))
}

/// `n` samples (row-major) drawn with [`Proposal::sample`] from the lanes of the planner's
/// blocks; each row is filled with NaN first, so an entry `sample` does not write shows.
fn draw_rows(p: &dyn Proposal, seed: u64, iteration: u64, n: usize) -> Vec<f64> {
    let d = p.dim();
    let mut rows = vec![f64::NAN; n * d];
    for (b, block) in rows.chunks_mut(BLOCK_LANES * d).enumerate() {
        let rng = block_rng(seed, iteration, b, n);
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
    let (name, d) = (p.name(), p.dim());
    let n = want.len() / d;
    for (b, want_rows) in want.chunks(BLOCK_LANES * d).enumerate() {
        let mut rng = block_rng(seed, iteration, b, n);
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
/// 6. if `prepare` accepts a spread `s_t ≠ 1`, the samples change, stay finite and still agree
///    between `sample_block` and `sample`; either way, `prepare(open_loop)` afterwards brings
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

    // 5. sample_block
    check_blocks(p.as_ref(), seed, 0, &rows, "own spread")?;

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
        if first_bit_difference(&scaled_rows, &rows).is_none() {
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

/// `|got − want| ≤ tol (1 + |want|)`; NaN matches NaN and an infinity only itself.
fn close(got: f64, want: f64, tol: f64) -> bool {
    if want.is_nan() {
        got.is_nan()
    } else if want.is_infinite() {
        got == want
    } else {
        (got - want).abs() <= tol * (1.0 + want.abs())
    }
}

/// The lanes of one block, the subject names and the tolerances of [`check_dynamics`].
struct Block<'a> {
    dynamics: &'a str,
    cost: &'a str,
    lanes: usize,
    first: usize,
    n: usize,
    m: usize,
    /// Row-major inputs of the block's lanes.
    x_rows: &'a [f64],
    u_rows: &'a [f64],
}

impl Block<'_> {
    /// Compare a block result (lane `l`, component `i` at `got[i * lanes + l]`) with the
    /// scalar values `want[l][i]`.
    fn compare(
        &self,
        subject: &str,
        property: &'static str,
        what: &str,
        got: &[f64],
        want: &[Vec<f64>],
        tol: f64,
        x_rows: &[f64],
        u_rows: &[f64],
    ) -> Result<(), ConformanceError> {
        let (lanes, n, m) = (self.lanes, self.n, self.m);
        for (l, w) in want.iter().enumerate() {
            for (i, wi) in w.iter().enumerate() {
                let g = got[i * lanes + l];
                if !close(g, *wi, tol) {
                    return failure(
                        subject,
                        property,
                        format!(
                            "{what}, block of {lanes} lanes, lane {l} (input {}), component {i}: \
                             block {g:e}, scalar {wi:e} (|diff| = {:e}, tolerance {tol:e} × \
                             (1 + |scalar|)); x = {:?}, u = {:?}",
                            self.first + l,
                            (g - wi).abs(),
                            &x_rows[l * n..(l + 1) * n],
                            &u_rows[l * m..(l + 1) * m]
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Check the block methods of a model against its scalar methods, on the inputs given.
///
/// `states` holds `k` states (row-major, `k × n`) and `controls` `k` controls (`k × m`); lane
/// `l` pairs state `l` with control `l`. The lanes go through the block methods in blocks of
/// [`BLOCK_LANES`] and again in blocks of 5 (the last one partial), and every block result must
/// match the scalar method on the same lane:
///
/// - [`Dynamics::step_block`] vs [`Dynamics::step`], [`Cost::running_block`] vs
///   [`Cost::running`] at `t = 0` and `t = 1`, [`Cost::terminal_block`] vs [`Cost::terminal`],
///   and [`Dynamics::step_and_cost_block`] (where it returns `true`) vs `step` and `running`,
///   within `tol` relative to `1 + |scalar|` (`tol = 0`: bit for bit, which is what the
///   planner's own models promise);
/// - the `_f32` variants vs the scalar methods evaluated at the inputs rounded to `f32`, within
///   the larger of `tol` and [`F32_TOLERANCE`].
///
/// A NaN from the scalar method must be NaN in the block, an infinity the same infinity.
///
/// ```
/// use mppi::{Cost, Dynamics};
/// use mppi::testing::check_dynamics;
/// struct Integrator;
/// impl Dynamics for Integrator {
///     fn state_dim(&self) -> usize { 1 }
///     fn control_dim(&self) -> usize { 1 }
///     fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) { next[0] = x[0] + 0.1 * u[0]; }
///     // a hand-written block kernel: lanes innermost
///     fn step_block(&self, lanes: usize, x: &[f64], u: &[f64], next: &mut [f64], _: &mut [f64]) {
///         for l in 0..lanes { next[l] = x[l] + 0.1 * u[l]; }
///     }
/// }
/// struct Square;
/// impl Cost for Square {
///     fn running(&self, x: &[f64], _u: &[f64], _t: usize) -> f64 { x[0] * x[0] }
/// }
/// let states: Vec<f64> = (0..40).map(|i| i as f64 / 7.0 - 2.0).collect();
/// let controls: Vec<f64> = (0..40).map(|i| (i as f64).sin()).collect();
/// check_dynamics(&Integrator, &Square, &states, &controls, 0.0).unwrap();
/// ```
pub fn check_dynamics<D: Dynamics + ?Sized, C: Cost + ?Sized>(
    dynamics: &D,
    cost: &C,
    states: &[f64],
    controls: &[f64],
    tol: f64,
) -> Result<(), ConformanceError> {
    let dyn_name = std::any::type_name::<D>();
    let cost_name = std::any::type_name::<C>();
    let (n, m) = (dynamics.state_dim(), dynamics.control_dim());
    if n == 0 || m == 0 {
        return failure(
            dyn_name,
            "state_dim() and control_dim() are positive",
            format!("state_dim() = {n}, control_dim() = {m}"),
        );
    }
    let k = states.len() / n;
    if k == 0 || states.len() != k * n || controls.len() != k * m {
        return failure(
            dyn_name,
            "check_dynamics arguments",
            format!(
                "states has {} entries and controls {}: give k >= 1 states of {n} and k controls \
                 of {m}",
                states.len(),
                controls.len()
            ),
        );
    }
    if !(tol.is_finite() && tol >= 0.0) {
        return failure(
            dyn_name,
            "check_dynamics arguments",
            format!("tol must be a finite number >= 0, got {tol}"),
        );
    }
    for block_size in [BLOCK_LANES, 5] {
        for first in (0..k).step_by(block_size) {
            let lanes = (k - first).min(block_size);
            let block = Block {
                dynamics: dyn_name,
                cost: cost_name,
                lanes,
                first,
                n,
                m,
                x_rows: &states[first * n..(first + lanes) * n],
                u_rows: &controls[first * m..(first + lanes) * m],
            };
            check_block_f64(dynamics, cost, &block, tol)?;
            check_block_f32(dynamics, cost, &block, tol.max(F32_TOLERANCE))?;
        }
    }
    Ok(())
}

/// Scalar references of one block: next states, running costs at `t = 0, 1`, terminal costs.
struct Scalar {
    next: Vec<Vec<f64>>,
    running: [Vec<Vec<f64>>; 2],
    terminal: Vec<Vec<f64>>,
}

fn scalar_reference<D: Dynamics + ?Sized, C: Cost + ?Sized>(
    dynamics: &D,
    cost: &C,
    n: usize,
    m: usize,
    x_rows: &[f64],
    u_rows: &[f64],
) -> Scalar {
    let pairs = || x_rows.chunks_exact(n).zip(u_rows.chunks_exact(m));
    Scalar {
        next: pairs()
            .map(|(x, u)| {
                let mut next = vec![0.0; n];
                dynamics.step(x, u, &mut next);
                next
            })
            .collect(),
        running: [0, 1].map(|t| pairs().map(|(x, u)| vec![cost.running(x, u, t)]).collect()),
        terminal: x_rows
            .chunks_exact(n)
            .map(|x| vec![cost.terminal(x)])
            .collect(),
    }
}

/// The `f64` block methods of one block against the scalar methods.
fn check_block_f64<D: Dynamics + ?Sized, C: Cost + ?Sized>(
    dynamics: &D,
    cost: &C,
    b: &Block<'_>,
    tol: f64,
) -> Result<(), ConformanceError> {
    let (lanes, n, m) = (b.lanes, b.n, b.m);
    let want = scalar_reference(dynamics, cost, n, m, b.x_rows, b.u_rows);
    let mut x = vec![0.0; lanes * n];
    let mut u = vec![0.0; lanes * m];
    rows_to_soa(lanes, b.x_rows, &mut x);
    rows_to_soa(lanes, b.u_rows, &mut u);
    let cmp = |subject, property, what: &str, got: &[f64], want: &[Vec<f64>]| {
        b.compare(subject, property, what, got, want, tol, b.x_rows, b.u_rows)
    };
    // scratch is NaN so that a kernel reading it before writing it shows
    let mut tmp = vec![f64::NAN; 2 * n + m];
    let mut next = vec![f64::NAN; lanes * n];
    dynamics.step_block(lanes, &x, &u, &mut next, &mut tmp);
    cmp(b.dynamics, "step_block == step", "f64", &next, &want.next)?;
    for t in [0, 1] {
        let mut costs = vec![f64::NAN; lanes];
        tmp.fill(f64::NAN);
        cost.running_block(lanes, t, &x, &u, &mut costs, &mut tmp);
        cmp(
            b.cost,
            "running_block == running",
            &format!("f64, t = {t}"),
            &costs,
            &want.running[t],
        )?;
        let (mut fused_next, mut fused_cost) = (vec![f64::NAN; lanes * n], vec![f64::NAN; lanes]);
        tmp.fill(f64::NAN);
        if dynamics.step_and_cost_block(
            lanes,
            t,
            &x,
            &u,
            &mut fused_next,
            &mut fused_cost,
            &mut tmp,
        ) {
            let what = format!("f64, t = {t}");
            cmp(
                b.dynamics,
                "step_and_cost_block == step",
                &what,
                &fused_next,
                &want.next,
            )?;
            cmp(
                b.dynamics,
                "step_and_cost_block == running",
                &what,
                &fused_cost,
                &want.running[t],
            )?;
        }
    }
    let mut terminal = vec![f64::NAN; lanes];
    tmp.fill(f64::NAN);
    cost.terminal_block(lanes, &x, &mut terminal, &mut tmp);
    cmp(
        b.cost,
        "terminal_block == terminal",
        "f64",
        &terminal,
        &want.terminal,
    )
}

/// The `f32` block methods of one block against the scalar methods at the rounded inputs.
fn check_block_f32<D: Dynamics + ?Sized, C: Cost + ?Sized>(
    dynamics: &D,
    cost: &C,
    b: &Block<'_>,
    tol: f64,
) -> Result<(), ConformanceError> {
    let (lanes, n, m) = (b.lanes, b.n, b.m);
    let round = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| f64::from(*x as f32)).collect() };
    let (x_rows, u_rows) = (round(b.x_rows), round(b.u_rows));
    let want = scalar_reference(dynamics, cost, n, m, &x_rows, &u_rows);
    let (mut x, mut u) = (vec![0.0; lanes * n], vec![0.0; lanes * m]);
    rows_to_soa(lanes, &x_rows, &mut x);
    rows_to_soa(lanes, &u_rows, &mut u);
    let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let u32: Vec<f32> = u.iter().map(|v| *v as f32).collect();
    let widen = |v: &[f32]| -> Vec<f64> { v.iter().map(|x| f64::from(*x)).collect() };
    let cmp = |subject, property, what: &str, got: &[f64], want: &[Vec<f64>]| {
        b.compare(subject, property, what, got, want, tol, &x_rows, &u_rows)
    };
    let mut tmp = vec![f64::NAN; 2 * n + m];
    let mut next = vec![f32::NAN; lanes * n];
    dynamics.step_block_f32(lanes, &x32, &u32, &mut next, &mut tmp);
    cmp(
        b.dynamics,
        "step_block_f32 == step (within the f32 tolerance)",
        "f32",
        &widen(&next),
        &want.next,
    )?;
    for t in [0, 1] {
        let what = format!("f32, t = {t}");
        let mut costs = vec![f32::NAN; lanes];
        tmp.fill(f64::NAN);
        cost.running_block_f32(lanes, t, &x32, &u32, &mut costs, &mut tmp);
        cmp(
            b.cost,
            "running_block_f32 == running (within the f32 tolerance)",
            &what,
            &widen(&costs),
            &want.running[t],
        )?;
        let (mut fused_next, mut fused_cost) = (vec![f32::NAN; lanes * n], vec![f32::NAN; lanes]);
        tmp.fill(f64::NAN);
        if dynamics.step_and_cost_block_f32(
            lanes,
            t,
            &x32,
            &u32,
            &mut fused_next,
            &mut fused_cost,
            &mut tmp,
        ) {
            cmp(
                b.dynamics,
                "step_and_cost_block_f32 == step (within the f32 tolerance)",
                &what,
                &widen(&fused_next),
                &want.next,
            )?;
            cmp(
                b.dynamics,
                "step_and_cost_block_f32 == running (within the f32 tolerance)",
                &what,
                &widen(&fused_cost),
                &want.running[t],
            )?;
        }
    }
    let mut terminal = vec![f64::NAN; lanes];
    tmp.fill(f64::NAN);
    cost.terminal_block_f32(lanes, &x32, &mut terminal, &mut tmp);
    cmp(
        b.cost,
        "terminal_block_f32 == terminal (within the f32 tolerance)",
        "f32",
        &terminal,
        &want.terminal,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CovarianceBlock, ProposalKind, ScheduleConfig};
    use crate::error::MppiError;
    use crate::proposal::{GaussianFixed, weighted_sum, weighted_sum_blocks};
    use crate::rng::SampleRng;
    use crate::schedule::Dial;
    use crate::{FnObjective, MppiConfig, Planner, ProposalConfig, WeightingConfig};

    const T: usize = 5;
    const M: usize = 2;

    fn base() -> MppiConfig {
        MppiConfig {
            samples: 100,
            horizon: T,
            iterations: 3,
            u_min: Some(vec![-4.0]),
            u_max: Some(vec![4.0]),
            seed: 3,
            proposal: ProposalConfig::gaussian(&[0.5]),
            weighting: WeightingConfig::fixed(1.0),
            ..MppiConfig::default()
        }
    }

    /// Every built-in kind (both covariance blocks of `gaussian_full`), with the keys it needs.
    fn built_in_configs() -> Vec<(String, MppiConfig)> {
        let mut out = Vec::new();
        for kind in ProposalKind::ALL {
            let mut cfg = MppiConfig {
                proposal: base().proposal.into_kind(kind),
                ..base()
            };
            match kind {
                ProposalKind::Beta => {
                    cfg.u_min = Some(vec![-1.0]);
                    cfg.u_max = Some(vec![1.0]);
                }
                ProposalKind::Categorical => {
                    cfg.u_min = Some(vec![-1.0]);
                    cfg.u_max = Some(vec![1.0]);
                    cfg.proposal.categories = Some(vec![-1.0, -0.25, 0.5, 1.0]);
                }
                ProposalKind::Colored => cfg.proposal.correlation = Some(0.8),
                ProposalKind::Spline => cfg.proposal.knots = Some(3),
                _ => {}
            }
            if kind == ProposalKind::GaussianFull {
                for block in [CovarianceBlock::Step, CovarianceBlock::Sequence] {
                    let mut c = cfg.clone();
                    c.proposal.covariance_block = Some(block);
                    out.push((format!("gaussian_full({block:?})"), c));
                }
            } else {
                out.push((kind.name().to_string(), cfg));
            }
        }
        out
    }

    /// The planner's proposal before and after a few EM iterations (non-default parameters).
    fn initial_and_warmed(cfg: &MppiConfig) -> [Box<dyn Proposal>; 2] {
        let mut planner = Planner::new(cfg, M).unwrap();
        let initial = planner.proposal().clone_box();
        let objective = FnObjective::new(T * M, |u: &[f64]| {
            u.iter()
                .enumerate()
                .map(|(j, v)| (v - 0.6 * (1.3 * j as f64).sin()).powi(2))
                .sum()
        });
        planner.optimize(&objective, 0, &mut ()).unwrap();
        [initial, planner.proposal().clone_box()]
    }

    #[test]
    fn every_built_in_proposal_conforms() {
        for (name, cfg) in built_in_configs() {
            for (state, p) in ["initial", "warmed"].iter().zip(initial_and_warmed(&cfg)) {
                for seed in [0, 17] {
                    check_proposal(p.as_ref(), seed)
                        .unwrap_or_else(|e| panic!("{name} ({state}, seed {seed}): {e}"));
                }
            }
        }
    }

    #[test]
    fn gaussian_with_full_covariance_and_annealed_spread_conforms() {
        // the non-diagonal sampling path (bounds that clip), and one wide control dimension
        // whose samples clip often
        let full =
            GaussianFixed::new(T, M, &[1.0, 0.3, 0.3, 0.5], &[-1.0, -1.0], &[1.0, 1.0]).unwrap();
        check_proposal(&full, 5).unwrap();
        let scalar = GaussianFixed::new(7, 1, &[4.0], &[-1.0], &[1.0]).unwrap();
        check_proposal(&scalar, 6).unwrap();
        // a proposal left scaled by a DIAL schedule: the check works from its own spread
        let cfg = MppiConfig {
            schedule: ScheduleConfig::Dial(Dial::default()),
            ..base()
        };
        let [_, annealed] = initial_and_warmed(&cfg);
        check_proposal(annealed.as_ref(), 7).unwrap();
    }

    /// What is wrong with a [`Flawed`] proposal.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Flaw {
        /// None: the fixed Gaussian as it is.
        None,
        /// `sample` leaves the last entry unwritten.
        ShortSample,
        /// `sample` depends on something besides its stream.
        NotDeterministic,
        /// `sample_block` is one ulp off in the last lane of a full block.
        BlockDiffers,
        /// `sample_block` is one ulp off in partial blocks only.
        PartialBlockDiffers,
        /// `sample_block` claims to fill the rows but leaves them as they are.
        RowsNotFilled,
        /// `prepare` always fails.
        PrepareFails,
        /// `prepare` accepts a spread and ignores it.
        IgnoresSpread,
        /// `prepare` keeps the last spread when the schedule hands none.
        SpreadSticks,
        /// `set_params` stores something else.
        NoRoundTrip,
        /// `set_params` accepts NaN.
        AcceptsNaN,
        /// `plan` writes only the first step.
        ShortPlan,
        /// `fit` returns a NaN parameter.
        FitNaN,
        /// `fit` uses samples whose weight is zero.
        UsesZeroWeights,
        /// `fit_blocks` is one ulp off.
        FitBlocksDiffers,
        /// `fits_blocks()` is true but `fit_blocks` is not implemented.
        FitsBlocksLies,
        /// `log_prob` is NaN.
        LogProbNaN,
        /// `KL(p ‖ p) ≠ 0`.
        KlNonzero,
        /// `shift` drops a step without filling it.
        ShiftDropsStep,
    }

    /// A fixed Gaussian with one deliberate flaw.
    #[derive(Debug, Clone)]
    struct Flawed {
        inner: GaussianFixed,
        flaw: Flaw,
        shifted: bool,
        /// The spread `prepare` last accepted (for `SpreadSticks`).
        sticky: Option<Vec<f64>>,
        draws: std::sync::Arc<std::sync::atomic::AtomicU64>,
    }

    impl Flawed {
        fn new(flaw: Flaw) -> Self {
            Flawed {
                inner: GaussianFixed::new(T, M, &[0.25, 0.0, 0.0, 1.0], &[-3.0; 2], &[3.0; 2])
                    .unwrap(),
                flaw,
                shifted: false,
                sticky: None,
                draws: Default::default(),
            }
        }
    }

    impl Proposal for Flawed {
        fn name(&self) -> &'static str {
            "flawed"
        }
        fn dim(&self) -> usize {
            let dropped = self.shifted && self.flaw == Flaw::ShiftDropsStep;
            self.inner.dim() - if dropped { M } else { 0 }
        }
        fn control_dim(&self) -> usize {
            M
        }
        fn params(&self) -> &[f64] {
            self.inner.params()
        }
        fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
            match self.flaw {
                Flaw::NoRoundTrip => {
                    let moved: Vec<f64> = theta.iter().map(|v| v + 1e-3).collect();
                    self.inner.set_params(&moved)
                }
                Flaw::AcceptsNaN if theta.len() == self.inner.dim() => {
                    let _ = self.inner.set_params(theta);
                    Ok(())
                }
                _ => self.inner.set_params(theta),
            }
        }
        fn reset(&mut self) {
            self.inner.reset();
        }
        fn shift(&mut self, fill: ShiftFill) {
            self.inner.shift(fill);
            self.shifted = true;
        }
        fn plan(&self, out: &mut [f64]) {
            if self.flaw == Flaw::ShortPlan {
                let mut full = vec![0.0; self.inner.dim()];
                self.inner.plan(&mut full);
                out[..M].copy_from_slice(&full[..M]);
            } else {
                self.inner.plan(out);
            }
        }
        fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
            self.inner.set_plan(plan)
        }
        fn prepare(&mut self, ctx: &Context<'_>) -> Result<(), MppiError> {
            match self.flaw {
                Flaw::PrepareFails => Err(MppiError::InvalidConfig {
                    field: "schedule",
                    reason: "flawed".into(),
                }),
                Flaw::IgnoresSpread => Ok(()),
                Flaw::SpreadSticks => match ctx.spread {
                    Some(s) => {
                        self.sticky = Some(s.to_vec());
                        self.inner.prepare(ctx)
                    }
                    None => {
                        let kept = self.sticky.clone();
                        self.inner.prepare(&Context {
                            spread: kept.as_deref(),
                            ..*ctx
                        })
                    }
                },
                _ => self.inner.prepare(ctx),
            }
        }
        fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
            match self.flaw {
                Flaw::ShortSample => {
                    let d = u.len();
                    let mut full = vec![0.0; d];
                    self.inner.sample(rng, &mut full);
                    u[..d - 1].copy_from_slice(&full[..d - 1]);
                }
                Flaw::NotDeterministic => {
                    self.inner.sample(rng, u);
                    let k = self
                        .draws
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    u[0] += 1e-3 * k as f64;
                }
                _ => self.inner.sample(rng, u),
            }
        }
        fn sample_block(&self, rng: &mut BlockRng, rows: &mut [f64], soa: &mut [f64]) -> bool {
            let lanes = rng.lanes();
            match self.flaw {
                Flaw::BlockDiffers | Flaw::PartialBlockDiffers => {
                    let filled = self.inner.sample_block(rng, rows, soa);
                    let full = lanes == BLOCK_LANES;
                    if full == (self.flaw == Flaw::BlockDiffers) {
                        let last = soa.len() - 1;
                        soa[last] = soa[last].next_up();
                    }
                    filled
                }
                Flaw::RowsNotFilled => {
                    self.inner.sample_block(rng, rows, soa);
                    true
                }
                Flaw::ShortSample | Flaw::NotDeterministic => {
                    // the trait's default: lane by lane through `sample`
                    let d = self.dim();
                    for (l, u) in rows.chunks_exact_mut(d).enumerate() {
                        let mut lane = rng.lane(l);
                        self.sample(&mut lane, u);
                    }
                    rows_to_soa(lanes, rows, soa);
                    true
                }
                _ => self.inner.sample_block(rng, rows, soa),
            }
        }
        fn fits_blocks(&self) -> bool {
            !matches!(self.flaw, Flaw::UsesZeroWeights)
        }
        fn fit_blocks(&mut self, blocks: &[f64], weights: &[f64], out: &mut [f64]) -> bool {
            match self.flaw {
                Flaw::FitsBlocksLies | Flaw::UsesZeroWeights => false,
                Flaw::FitBlocksDiffers => {
                    weighted_sum_blocks(blocks, weights, out);
                    out[0] = out[0].next_up();
                    true
                }
                _ => self.inner.fit_blocks(blocks, weights, out),
            }
        }
        fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
            weighted_sum(samples, weights, out);
            match self.flaw {
                Flaw::FitNaN => out[1] = f64::NAN,
                Flaw::UsesZeroWeights => {
                    // a little of every sample, whatever its weight
                    let n = weights.len() as f64;
                    for u in samples.chunks_exact(out.len()) {
                        for (o, v) in out.iter_mut().zip(u) {
                            *o += 1e-3 * v / n;
                        }
                    }
                }
                _ => {}
            }
        }
        fn log_prob(&self, u: &[f64]) -> Option<f64> {
            if self.flaw == Flaw::LogProbNaN {
                Some(f64::NAN)
            } else {
                self.inner.log_prob(u)
            }
        }
        fn kl(&self, other: &dyn Proposal) -> Option<f64> {
            let o = crate::proposal::downcast::<Flawed>(other)?;
            let kl = self.inner.kl(&o.inner)?;
            Some(if self.flaw == Flaw::KlNonzero {
                kl + 0.1
            } else {
                kl
            })
        }
        fn clone_box(&self) -> Box<dyn Proposal> {
            Box::new(self.clone())
        }
    }

    #[test]
    fn the_wrapper_without_a_flaw_passes() {
        // so every failure below comes from its flaw, not from the wrapper
        check_proposal(&Flawed::new(Flaw::None), 1).unwrap();
    }

    #[test]
    fn each_flaw_is_caught_by_its_property() {
        let cases = [
            (Flaw::ShortSample, "sample writes dim() finite entries"),
            (Flaw::NotDeterministic, "sample is a function of its stream"),
            (Flaw::BlockDiffers, "sample_block == sample, bit for bit"),
            (
                Flaw::PartialBlockDiffers,
                "sample_block == sample, bit for bit",
            ),
            (
                Flaw::RowsNotFilled,
                "sample_block rows == sample when it returns true",
            ),
            (Flaw::PrepareFails, "prepare(Context::open_loop) succeeds"),
            (
                Flaw::IgnoresSpread,
                "a spread prepare accepts changes the samples",
            ),
            (
                Flaw::SpreadSticks,
                "prepare(open_loop) restores the proposal's own spread",
            ),
            (
                Flaw::NoRoundTrip,
                "set_params(params()) keeps the parameters",
            ),
            (Flaw::AcceptsNaN, "set_params rejects invalid parameters"),
            (Flaw::ShortPlan, "plan writes dim() finite entries"),
            (Flaw::FitNaN, "fit writes params().len() finite entries"),
            (Flaw::UsesZeroWeights, "fit ignores samples of weight zero"),
            (Flaw::FitBlocksDiffers, "fit_blocks == fit, bit for bit"),
            (
                Flaw::FitsBlocksLies,
                "fit_blocks returns true when fits_blocks() is true",
            ),
            (Flaw::LogProbNaN, "log_prob is finite at samples"),
            (Flaw::KlNonzero, "kl(p, p) = 0"),
            (Flaw::ShiftDropsStep, "shift and reset keep the dimensions"),
        ];
        for (flaw, property) in cases {
            let e = check_proposal(&Flawed::new(flaw), 9)
                .expect_err(&format!("{flaw:?} was not caught"));
            assert_eq!(e.property, property, "{flaw:?}: {e}");
            assert_eq!(e.subject, "flawed");
            assert!(!e.detail.is_empty());
        }
    }

    #[test]
    fn a_block_mismatch_names_block_lane_and_values() {
        let e = check_proposal(&Flawed::new(Flaw::PartialBlockDiffers), 9).unwrap_err();
        // 4 · d = 40 → 96 + 7 samples: the partial block is block 3, of 7 lanes
        assert!(
            e.detail.contains("block 3 (7 lanes)") && e.detail.contains("lane 6"),
            "{e}"
        );
    }

    /// A deliberate bug in one block kernel of [`DoubleIntegrator`].
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Bug {
        None,
        /// `step_block` uses a time step 1e-12 too long in the last lane of a block.
        Step,
        /// `running_block` ignores `t` (the fused pass too).
        RunningIgnoresT,
        /// Only the fused `step_and_cost_block` ignores `t`.
        FusedIgnoresT,
        /// `terminal_block` weights 9.99 instead of 10.
        Terminal,
        /// `step_block_f32` uses `dt = 0.11`.
        StepF32,
    }

    /// `v' = v + dt u`, `x' = x + dt v'`; cost `x² + 0.1 u² + t`, terminal `10 v²`; hand-written
    /// block kernels with an optional bug.
    struct DoubleIntegrator(Bug);

    const DT: f64 = 0.1;

    impl Dynamics for DoubleIntegrator {
        fn state_dim(&self) -> usize {
            2
        }
        fn control_dim(&self) -> usize {
            1
        }
        fn step(&self, x: &[f64], u: &[f64], next: &mut [f64]) {
            next[1] = x[1] + DT * u[0];
            next[0] = x[0] + DT * next[1];
        }
        fn step_block(&self, lanes: usize, x: &[f64], u: &[f64], next: &mut [f64], _: &mut [f64]) {
            let (pos, vel) = x.split_at(lanes);
            let (npos, nvel) = next.split_at_mut(lanes);
            for l in 0..lanes {
                nvel[l] = vel[l] + DT * u[l];
                let dt = if self.0 == Bug::Step && l == lanes - 1 {
                    DT * (1.0 + 1e-12)
                } else {
                    DT
                };
                npos[l] = pos[l] + dt * nvel[l];
            }
        }
        fn step_and_cost_block(
            &self,
            lanes: usize,
            t: usize,
            x: &[f64],
            u: &[f64],
            next: &mut [f64],
            cost: &mut [f64],
            tmp: &mut [f64],
        ) -> bool {
            let t = if self.0 == Bug::FusedIgnoresT { 0 } else { t };
            self.running_block(lanes, t, x, u, cost, tmp);
            self.step_block(lanes, x, u, next, tmp);
            true
        }
        fn step_block_f32(
            &self,
            lanes: usize,
            x: &[f32],
            u: &[f32],
            next: &mut [f32],
            _: &mut [f64],
        ) {
            let dt = if self.0 == Bug::StepF32 {
                0.11f32
            } else {
                DT as f32
            };
            let (pos, vel) = x.split_at(lanes);
            let (npos, nvel) = next.split_at_mut(lanes);
            for l in 0..lanes {
                nvel[l] = vel[l] + dt * u[l];
                npos[l] = pos[l] + dt * nvel[l];
            }
        }
    }

    impl Cost for DoubleIntegrator {
        fn running(&self, x: &[f64], u: &[f64], t: usize) -> f64 {
            x[0] * x[0] + 0.1 * u[0] * u[0] + t as f64
        }
        fn terminal(&self, x: &[f64]) -> f64 {
            10.0 * x[1] * x[1]
        }
        fn running_block(
            &self,
            lanes: usize,
            t: usize,
            x: &[f64],
            u: &[f64],
            out: &mut [f64],
            _: &mut [f64],
        ) {
            let t = if self.0 == Bug::RunningIgnoresT { 0 } else { t };
            for l in 0..lanes {
                out[l] = x[l] * x[l] + 0.1 * u[l] * u[l] + t as f64;
            }
        }
        fn terminal_block(&self, lanes: usize, x: &[f64], out: &mut [f64], _: &mut [f64]) {
            let w = if self.0 == Bug::Terminal { 9.99 } else { 10.0 };
            let vel = &x[lanes..2 * lanes];
            for l in 0..lanes {
                out[l] = w * vel[l] * vel[l];
            }
        }
    }

    fn inputs(k: usize) -> (Vec<f64>, Vec<f64>) {
        let states = (0..2 * k).map(|i| (0.37 * i as f64).sin() * 3.0).collect();
        let controls = (0..k).map(|i| (0.91 * i as f64).cos() * 2.0).collect();
        (states, controls)
    }

    #[test]
    fn sound_model_passes_bit_for_bit() {
        let (x, u) = inputs(45);
        let model = DoubleIntegrator(Bug::None);
        check_dynamics(&model, &model, &x, &u, 0.0).unwrap();
        // one lane, and a trait object
        let boxed: Box<dyn Dynamics> = Box::new(DoubleIntegrator(Bug::None));
        check_dynamics(&boxed, &model, &x[..2], &u[..1], 0.0).unwrap();
    }

    #[test]
    fn model_bugs_are_caught() {
        let (x, u) = inputs(45);
        let check = |bug: Bug, tol: f64| {
            let model = DoubleIntegrator(bug);
            check_dynamics(&model, &model, &x, &u, tol).unwrap_err()
        };
        // a relative error of about 1e-13 in the last lane of each block, caught bit for bit
        let e = check(Bug::Step, 0.0);
        assert_eq!(e.property, "step_block == step", "{e}");
        assert!(e.detail.contains("lane 31 (input 31)"), "{e}");
        assert!(e.subject.contains("DoubleIntegrator"), "{e}");
        // ... and accepted within a tolerance that covers it
        let model = DoubleIntegrator(Bug::Step);
        check_dynamics(&model, &model, &x, &u, 1e-11).unwrap();
        let e = check(Bug::RunningIgnoresT, 1e-9);
        assert_eq!(e.property, "running_block == running", "{e}");
        assert!(e.detail.contains("t = 1"), "{e}");
        let e = check(Bug::FusedIgnoresT, 1e-9);
        assert_eq!(e.property, "step_and_cost_block == running", "{e}");
        let e = check(Bug::Terminal, 1e-9);
        assert_eq!(e.property, "terminal_block == terminal", "{e}");
        let e = check(Bug::StepF32, 0.0);
        assert_eq!(
            e.property, "step_block_f32 == step (within the f32 tolerance)",
            "{e}"
        );
        // bad arguments are an error too, not a panic
        let model = DoubleIntegrator(Bug::None);
        let e = check_dynamics(&model, &model, &x[..3], &u[..1], 0.0).unwrap_err();
        assert_eq!(e.property, "check_dynamics arguments");
        let e = check_dynamics(&model, &model, &x[..2], &u[..1], f64::NAN).unwrap_err();
        assert_eq!(e.property, "check_dynamics arguments");
    }
}
