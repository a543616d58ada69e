//! Whether an iteration's rollouts run on the thread pool or on the calling thread.
//!
//! Handing a batch to the pool pays a fixed cost (waking the workers, scheduling, cache
//! traffic) that no static threshold gets right everywhere: a pool round trip measured 9–24 µs
//! back to back and 30–160 µs after the workers had slept 0.5 ms, and what a sample-step costs
//! depends on the model and on what else the machine runs. So under [`Parallel::Auto`] the
//! planner measures both: its first evaluations alternate between the caller and the pool, and
//! it keeps the pool only if the median over the pairs of neighbouring trials of
//! `pool time / caller time` is below `1 −` [`MIN_GAIN`] (the caller is exactly one thread's
//! speed; the pool's second core may be a hyperthread of the first or shared with other work);
//! it measures again after [`RECHECK`] evaluations, so a change of load or rate is followed,
//! and doubles that interval (up to [`RECHECK_MAX`]) each time the answer stays the same, so
//! the measuring itself costs next to nothing in the long run.
//! Ratios of neighbours, because a shared machine's speed drifts between trials; their median,
//! not the best trial, because the pool's best trial is the one where the other core happened
//! to be free, not what it will usually get. The split never changes the results
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
/// an iteration stays on the caller without measuring: at 5–10 ns a sample-step that is
/// 40–80 µs, of which a second thread could save half, while a pool round trip costs 10–30 µs
/// back to back and more after the workers slept.
pub const MIN_WORK: f64 = 8192.0;

/// Timed evaluations per mode in one measurement.
pub const TRIALS: u32 = 7;

/// Evaluations between a measurement and the next, at first.
pub const RECHECK: u32 = 1000;

/// The longest interval between two measurements.
pub const RECHECK_MAX: u32 = 64_000;

/// The pool is kept only if the median ratio of its time to the caller's is below
/// `1 − MIN_GAIN`.
pub const MIN_GAIN: f64 = 0.1;

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
    /// Evaluations between the decision and the next measurement.
    interval: u32,
    /// The decision of the previous measurement, if any.
    previous: Option<bool>,
    /// Whether the warm-up evaluation of this measurement is done.
    warm: bool,
    /// Timed evaluations and their times (seconds) per mode: `[caller, pool]`.
    trials: [u32; 2],
    times: [[f64; TRIALS as usize]; 2],
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
            interval: RECHECK,
            previous: None,
            warm: false,
            trials: [0; 2],
            times: [[f64::INFINITY; TRIALS as usize]; 2],
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
            self.previous = None;
            self.interval = RECHECK;
            self.restart();
        }
        if let Some(pool) = self.decided {
            if self.since < self.interval {
                self.since += 1;
                return pool;
            }
            self.previous = Some(pool);
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
        if self.trials[i] < TRIALS {
            self.times[i][self.trials[i] as usize] = elapsed.as_secs_f64();
            self.trials[i] += 1;
        }
        if self.trials.iter().all(|t| *t >= TRIALS) {
            let pool = self.median_ratio() < 1.0 - MIN_GAIN;
            self.interval = if self.previous == Some(pool) {
                self.interval.saturating_mul(2).min(RECHECK_MAX)
            } else {
                RECHECK
            };
            self.decided = Some(pool);
            self.since = 0;
        }
    }

    /// The median over the measurement's trial pairs of `pool time / caller time` (infinite
    /// until it has all its trials).
    #[must_use]
    pub fn median_ratio(&self) -> f64 {
        let mut ratios = [0.0; TRIALS as usize];
        for ((r, pool), caller) in ratios.iter_mut().zip(&self.times[1]).zip(&self.times[0]) {
            *r = pool / caller;
        }
        ratios.sort_by(f64::total_cmp);
        let r = ratios[ratios.len() / 2];
        if r.is_nan() { f64::INFINITY } else { r }
    }

    /// The decision in force, if measured: `Some(true)` for the pool.
    #[must_use]
    pub fn decision(&self) -> Option<bool> {
        self.decided
    }

    fn restart(&mut self) {
        self.decided = None;
        self.since = 0;
        self.trials = [0; 2];
        self.times = [[f64::INFINITY; TRIALS as usize]; 2];
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
            |p| if p { 0.93 } else { 1.0 },
        );
        assert_eq!(split.decision(), Some(false));
    }

    #[test]
    fn the_median_of_the_trials_counts_not_an_outlier() {
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
    fn the_interval_doubles_while_the_answer_stays() {
        let mut split = Split::new(Parallel::Auto, true);
        let n = 1 + 2 * TRIALS as usize;
        let trials = 2 * TRIALS as usize;
        let caller_faster = |p: bool| if p { 2.0 } else { 1.0 };
        run(&mut split, 1e5, n, caller_faster);
        // measured again after RECHECK, then after 2 RECHECK, 4 RECHECK, ...
        let mut interval = RECHECK as usize;
        for _ in 0..4 {
            let modes = run(&mut split, 1e5, interval + trials, caller_faster);
            assert!(modes[..interval].iter().all(|p| !p));
            assert_eq!(
                modes[interval..].iter().filter(|p| **p).count(),
                TRIALS as usize
            );
            interval *= 2;
        }
        // an answer that flips starts again from RECHECK
        let modes = run(&mut split, 1e5, interval + trials, |p| {
            if p { 0.5 } else { 1.0 }
        });
        assert_eq!(split.decision(), Some(true));
        assert!(modes[interval + trials - 1]);
        let modes = run(&mut split, 1e5, RECHECK as usize + 1, |p| {
            if p { 0.5 } else { 1.0 }
        });
        assert!(modes[..RECHECK as usize].iter().all(|p| *p));
        assert!(!modes[RECHECK as usize], "measuring again after RECHECK");
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
