//! [`check_dynamics`]: block and `f32` methods against the scalar ones.

use super::*;

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
