//! Success criteria that judge an episode as it runs, in bounded memory.
//!
//! A task's [`Criterion`] sees every visited state (and the control applied in it) once, in
//! order, and keeps only what its verdict needs: running aggregates (a total, a minimum
//! distance, a count) and, for criteria about the end of an episode, a [`Tail`] of the last
//! few states. So an episode of any length is judged exactly, while the [`crate::Episode`]
//! itself keeps only a decimated record.

use std::collections::VecDeque;

use crate::{Outcome, Task};

/// A task's success criterion, fed an episode one state at a time.
pub trait Criterion {
    /// Observe the state at control step `step` (0 for the initial state) and the control
    /// applied in it; `control` is `None` for the final state. Called once per visited state,
    /// in order.
    fn observe(&mut self, step: usize, state: &[f64], control: Option<&[f64]>);
    /// The verdict on the states observed so far.
    fn outcome(&self) -> Outcome;
}

/// Judge a whole sequence of states with `task`'s criterion: state `k` is observed with
/// `controls[k]` (if there is one). `states` usually has one row more than `controls`.
///
/// [`crate::run_episode`] does the same while the episode runs; this is for episodes built
/// by other means (and for tests of the criteria).
#[must_use]
pub fn judge(task: &dyn Task, states: &[Vec<f64>], controls: &[Vec<f64>]) -> Outcome {
    let mut criterion = task.criterion();
    for (k, x) in states.iter().enumerate() {
        criterion.observe(k, x, controls.get(k).map(Vec::as_slice));
    }
    criterion.outcome()
}

/// The last `capacity` values pushed (a ring buffer): what a criterion about the end of an
/// episode keeps instead of every state.
#[derive(Debug, Clone, PartialEq)]
pub struct Tail<T> {
    capacity: usize,
    values: VecDeque<T>,
}

impl<T> Tail<T> {
    /// An empty tail that keeps at most `capacity` values.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Tail {
            capacity,
            values: VecDeque::with_capacity(capacity),
        }
    }

    /// Append `value`, dropping the oldest one when full.
    pub fn push(&mut self, value: T) {
        if self.capacity == 0 {
            return;
        }
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// How many values it holds (`min(pushed, capacity)`).
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True before the first push.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.values.iter()
    }
}

/// The first step at which a state satisfied a goal test, for "first at goal at t = … s".
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Arrival {
    first: Option<usize>,
}

impl Arrival {
    /// Note whether the state at `step` is at the goal.
    pub fn observe(&mut self, step: usize, at_goal: bool) {
        if at_goal && self.first.is_none() {
            self.first = Some(step);
        }
    }

    /// The first step at the goal, if any.
    #[must_use]
    pub fn first(&self) -> Option<usize> {
        self.first
    }

    /// `"first at goal at t = … s"` (with time step `dt`), or `"never at goal"`.
    #[must_use]
    pub fn message(&self, dt: f64) -> String {
        match self.first {
            Some(k) => format!("first at goal at t = {:.2} s", k as f64 * dt),
            None => "never at goal".to_string(),
        }
    }
}

/// The last state observed (copied into a reused buffer), for criteria about the final state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LastState {
    state: Vec<f64>,
    seen: usize,
}

impl LastState {
    /// Remember `state` as the latest.
    pub fn observe(&mut self, state: &[f64]) {
        self.state.clear();
        self.state.extend_from_slice(state);
        self.seen += 1;
    }

    /// The latest state, or `None` before the first.
    #[must_use]
    pub fn get(&self) -> Option<&[f64]> {
        (self.seen > 0).then_some(self.state.as_slice())
    }

    /// How many states were observed.
    #[must_use]
    pub fn seen(&self) -> usize {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_values() {
        let mut t = Tail::new(3);
        assert!(t.is_empty());
        for v in 0..5 {
            t.push(v);
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        let mut none = Tail::new(0);
        none.push(1);
        assert!(none.is_empty());
    }

    #[test]
    fn arrival_and_last_state() {
        let mut a = Arrival::default();
        a.observe(0, false);
        assert_eq!(a.message(0.1), "never at goal");
        a.observe(3, true);
        a.observe(4, true);
        assert_eq!(a.first(), Some(3));
        assert_eq!(a.message(0.5), "first at goal at t = 1.50 s");
        let mut last = LastState::default();
        assert_eq!(last.get(), None);
        last.observe(&[1.0, 2.0]);
        last.observe(&[3.0]);
        assert_eq!((last.get(), last.seen()), (Some(&[3.0][..]), 2));
    }
}
