//! Whether an iteration's rollouts run on the thread pool or on the calling thread.
//!
//! Handing a batch to the pool pays a fixed cost (waking the workers, scheduling, cache
//! traffic) that no static threshold gets right everywhere: a pool round trip measured 9–24 µs
//! back to back and 30–160 µs after the workers had slept 0.5 ms, and what a sample-step costs
//! depends on the model. So under [`Parallel::Auto`] the planner measures both: its first
//! evaluations alternate between the caller and the pool, and it keeps whichever was faster
//! (the pool only if it saves at least [`MIN_GAIN`]); it measures again every [`RECHECK`]
//! evaluations, so a change of load or rate is followed. The split never changes the results
//! (every sample has its own random stream), only where they are computed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a planner with `threads > 1` decides where an iteration's rollouts run (config key
/// `parallel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Parallel {
    /// Measure the caller and the pool on the problem itself and use the faster (problems
    /// below [`MIN_WORK`] weighted sample-steps stay on the caller without measuring).
    #[default]
    Auto,
    /// Always hand the rollouts to the pool.
    Always,
}

/// Weighted sample-steps (`K · T ·` [`crate::Objective::work_per_sample_step`]) below which
/// an iteration stays on the caller: a few microseconds of work, less than a pool round trip.
pub const MIN_WORK: f64 = 1024.0;

/// Timed evaluations per mode in one measurement.
pub const TRIALS: u32 = 3;

/// Evaluations between two measurements.
pub const RECHECK: u32 = 2000;

/// The pool is kept only if its best time is below `(1 − MIN_GAIN)` times the caller's.
pub const MIN_GAIN: f64 = 0.05;

/// The measured choice between the caller and the pool for one planner.
///
/// ```
/// use std::time::Duration;
/// use mppi::split::{Parallel, Split, TRIALS};
/// let mut split = Split::new(Parallel::Auto, true);
/// // the first evaluation warms up; then the modes alternate until each has TRIALS times
/// for _ in 0..=2 * TRIALS {
///     let pool = split.choose(1e6);
///     let took = if pool { 4.0 } else { 7.0 }; // the pool is faster here
///     split.record(pool, Duration::from_secs_f64(took * 1e-3));
/// }
/// assert!(split.choose(1e6));
/// // without a pool, or for a tiny problem, always the caller
/// assert!(!Split::new(Parallel::Auto, false).choose(1e6));
/// assert!(!split.choose(100.0));
/// ```
#[derive(Debug, Clone)]
pub struct Split {
    policy: Parallel,
    has_pool: bool,
    /// The work of the evaluations being compared; another work restarts the measurement.
    work: f64,
    /// The decision, once measured.
    decided: Option<bool>,
    /// Evaluations since the decision.
    since: u32,
    /// Whether the warm-up evaluation of this measurement is done.
    warm: bool,
    /// Timed evaluations and best time (seconds) per mode: `[caller, pool]`.
    trials: [u32; 2],
    best: [f64; 2],
}

impl Split {
    /// The choice for a planner with (`has_pool`) or without a thread pool.
    #[must_use]
    pub fn new(policy: Parallel, has_pool: bool) -> Self {
        Split {
            policy,
            has_pool,
            work: f64::NAN,
            decided: None,
            since: 0,
            warm: false,
            trials: [0; 2],
            best: [f64::INFINITY; 2],
        }
    }

    /// Whether the next evaluation, of `work` weighted sample-steps, runs on the pool.
    pub fn choose(&mut self, work: f64) -> bool {
        if !self.has_pool {
            return false;
        }
        if self.policy == Parallel::Always {
            return true;
        }
        if work < MIN_WORK {
            return false;
        }
        if self.work.is_nan() || (work - self.work).abs() > 1e-9 * work {
            self.work = work;
            self.restart();
        }
        if let Some(pool) = self.decided {
            if self.since < RECHECK {
                self.since += 1;
                return pool;
            }
            self.restart();
        }
        if !self.warm {
            // the first evaluation pays for cold caches and sleeping workers alike: untimed
            return true;
        }
        // alternate, the mode with fewer trials first
        self.trials[1] < self.trials[0]
    }

    /// Record that an evaluation chosen by [`Split::choose`] took `elapsed` on the pool
    /// (`pool`) or on the caller.
    pub fn record(&mut self, pool: bool, elapsed: Duration) {
        if !self.has_pool || self.policy == Parallel::Always || self.decided.is_some() {
            return;
        }
        if !self.warm {
            self.warm = true;
            return;
        }
        let i = usize::from(pool);
        self.trials[i] += 1;
        self.best[i] = self.best[i].min(elapsed.as_secs_f64());
        if self.trials.iter().all(|t| *t >= TRIALS) {
            self.decided = Some(self.best[1] < (1.0 - MIN_GAIN) * self.best[0]);
            self.since = 0;
        }
    }

    /// The decision in force, if measured: `Some(true)` for the pool.
    #[must_use]
    pub fn decision(&self) -> Option<bool> {
        self.decided
    }

    /// Best measured times (seconds) on the caller and on the pool in the current or last
    /// measurement (infinite where not measured yet).
    #[must_use]
    pub fn best_times(&self) -> [f64; 2] {
        self.best
    }

    fn restart(&mut self) {
        self.decided = None;
        self.since = 0;
        self.trials = [0; 2];
        self.best = [f64::INFINITY; 2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `n` evaluations whose time is `time(pool)` ms, returning the modes chosen.
    fn run(split: &mut Split, work: f64, n: usize, mut time: impl FnMut(bool) -> f64) -> Vec<bool> {
        (0..n)
            .map(|_| {
                let pool = split.choose(work);
                split.record(pool, Duration::from_secs_f64(time(pool) * 1e-3));
                pool
            })
            .collect()
    }

    #[test]
    fn measures_both_then_keeps_the_faster() {
        let warm_and_trials = 1 + 2 * TRIALS as usize;
        // the caller is faster: after the measurement, the caller only
        let mut split = Split::new(Parallel::Auto, true);
        let modes = run(&mut split, 1e5, warm_and_trials + 50, |p| {
            if p { 1.0 } else { 0.8 }
        });
        assert_eq!(
            modes[1..warm_and_trials].iter().filter(|p| **p).count(),
            TRIALS as usize
        );
        assert!(modes[warm_and_trials..].iter().all(|p| !p));
        assert_eq!(split.decision(), Some(false));
        // the pool is faster by more than MIN_GAIN: the pool only
        let mut split = Split::new(Parallel::Auto, true);
        let modes = run(&mut split, 1e5, warm_and_trials + 50, |p| {
            if p { 0.5 } else { 0.8 }
        });
        assert!(modes[warm_and_trials..].iter().all(|p| *p));
        // a gain below MIN_GAIN is not worth the pool
        let mut split = Split::new(Parallel::Auto, true);
        run(
            &mut split,
            1e5,
            warm_and_trials,
            |p| if p { 0.97 } else { 1.0 },
        );
        assert_eq!(split.decision(), Some(false));
    }

    #[test]
    fn the_best_of_the_trials_counts_not_an_outlier() {
        let mut split = Split::new(Parallel::Auto, true);
        let mut k = 0;
        // one pool trial is hit by a 10x outlier; the others are faster than the caller
        run(&mut split, 1e5, 1 + 2 * TRIALS as usize, |p| {
            k += 1;
            match (p, k) {
                (true, 3) => 10.0,
                (true, _) => 0.5,
                (false, _) => 1.0,
            }
        });
        assert_eq!(split.decision(), Some(true));
    }

    #[test]
    fn remeasures_after_recheck_and_when_the_work_changes() {
        let mut split = Split::new(Parallel::Auto, true);
        let n = 1 + 2 * TRIALS as usize;
        run(&mut split, 1e5, n, |p| if p { 0.5 } else { 1.0 });
        assert_eq!(split.decision(), Some(true));
        // the load changes: the caller is now faster; after RECHECK the split follows
        let modes = run(&mut split, 1e5, RECHECK as usize + 2 * n, |p| {
            if p { 2.0 } else { 1.0 }
        });
        assert!(modes[..RECHECK as usize].iter().all(|p| *p));
        assert_eq!(split.decision(), Some(false));
        // another problem size starts over
        split.choose(2e5);
        assert_eq!(split.decision(), None);
    }

    #[test]
    fn fixed_cases() {
        let mut always = Split::new(Parallel::Always, true);
        assert!(run(&mut always, 10.0, 20, |_| 1.0).iter().all(|p| *p));
        let mut no_pool = Split::new(Parallel::Auto, false);
        assert!(run(&mut no_pool, 1e9, 20, |_| 1.0).iter().all(|p| !p));
        let mut tiny = Split::new(Parallel::Auto, true);
        assert!(
            run(&mut tiny, MIN_WORK - 1.0, 20, |_| 1.0)
                .iter()
                .all(|p| !p)
        );
        assert_eq!(tiny.decision(), None);
    }
}
