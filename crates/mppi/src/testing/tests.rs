//! Unit tests of the conformance suite: every built-in proposal passes, broken ones fail.

use super::dynamics::*;
use super::proposal::*;
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
    let full = GaussianFixed::new(T, M, &[1.0, 0.3, 0.3, 0.5], &[-1.0, -1.0], &[1.0, 1.0]).unwrap();
    check_proposal(&full, 5).unwrap();
    // and away from the zero mean, where `ε + μ` and `ε − μ` differ (mutation testing)
    let mut moved = full.clone();
    let plan: Vec<f64> = (0..T * M).map(|j| 0.4 - 0.15 * j as f64).collect();
    moved.set_plan(&plan).unwrap();
    check_proposal(&moved, 8).unwrap();
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
            inner: GaussianFixed::new(T, M, &[0.25, 0.0, 0.0, 1.0], &[-3.0; 2], &[3.0; 2]).unwrap(),
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
        let e =
            check_proposal(&Flawed::new(flaw), 9).expect_err(&format!("{flaw:?} was not caught"));
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
    fn step_block_f32(&self, lanes: usize, x: &[f32], u: &[f32], next: &mut [f32], _: &mut [f64]) {
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
