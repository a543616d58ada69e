//! Shared by the integration tests that need a proposal with a deliberately changed M-step
//! (`negative_controls.rs`, `planner.rs`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mppi::proposal::{Proposal, downcast};
use mppi::rng::SampleRng;
use mppi::{MppiError, ShiftFill};

/// What [`Refit`] does to the M-step's result: called with the proposal before the fit, the
/// fit's output (to change in place) and the index of this `fit` call across every clone.
pub type Hook<P> = Arc<dyn Fn(&P, &mut [f64], usize) + Send + Sync>;

/// A correct proposal whose `fit` output goes through a hook; everything else is the inner
/// proposal's (the KL too, between two `Refit`s).
#[derive(Clone)]
pub struct Refit<P> {
    pub inner: P,
    hook: Hook<P>,
    calls: Arc<AtomicUsize>,
}

impl<P> Refit<P> {
    pub fn new(inner: P, hook: impl Fn(&P, &mut [f64], usize) + Send + Sync + 'static) -> Self {
        Refit {
            inner,
            hook: Arc::new(hook),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl<P: fmt::Debug> fmt::Debug for Refit<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<P: Proposal + Clone> Proposal for Refit<P> {
    fn name(&self) -> &'static str {
        "refit"
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn control_dim(&self) -> usize {
        self.inner.control_dim()
    }
    fn params(&self) -> &[f64] {
        self.inner.params()
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<(), MppiError> {
        self.inner.set_params(theta)
    }
    fn reset(&mut self) {
        self.inner.reset();
    }
    fn shift(&mut self, fill: ShiftFill) {
        self.inner.shift(fill);
    }
    fn plan(&self, out: &mut [f64]) {
        self.inner.plan(out);
    }
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), MppiError> {
        self.inner.set_plan(plan)
    }
    fn sample(&self, rng: &mut SampleRng, u: &mut [f64]) {
        self.inner.sample(rng, u);
    }
    fn fit(&mut self, samples: &[f64], weights: &[f64], out: &mut [f64]) {
        let before = self.inner.clone();
        self.inner.fit(samples, weights, out);
        (self.hook)(&before, out, self.calls.fetch_add(1, Ordering::Relaxed));
    }
    fn log_prob(&self, u: &[f64]) -> Option<f64> {
        self.inner.log_prob(u)
    }
    fn kl(&self, other: &dyn Proposal) -> Option<f64> {
        self.inner.kl(&downcast::<Refit<P>>(other)?.inner)
    }
    fn clone_box(&self) -> Box<dyn Proposal> {
        Box::new(self.clone())
    }
}
