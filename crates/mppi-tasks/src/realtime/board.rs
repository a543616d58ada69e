//! The hand-over between the plant and the planner: slots the plant only `try_lock`s.

use super::*;

/// Lock a mutex, ignoring poisoning (every writer leaves its slot consistent).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lock a mutex if it is free.
pub(super) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// A tagged value of a [`Board`].
pub(super) struct Slot<T> {
    pub(super) seq: u64,
    pub(super) value: T,
}

/// The latest values one thread publishes for another: a ring of mutex slots (value `seq` in
/// slot `seq % len`) and the newest sequence number. Writer and reader touch different slots
/// unless the reader is a whole ring behind while it copies, so a `try_lock` from the plant's
/// side practically never fails, and never waits.
pub(super) struct Board<T> {
    pub(super) slots: Vec<Mutex<Slot<T>>>,
    /// `seq + 1` of the newest published value; 0 before the first.
    pub(super) latest: AtomicU64,
}

impl<T> Board<T> {
    pub(super) fn new(len: usize, mut make: impl FnMut() -> T) -> Self {
        Board {
            slots: (0..len.max(2))
                .map(|_| {
                    Mutex::new(Slot {
                        seq: u64::MAX,
                        value: make(),
                    })
                })
                .collect(),
            latest: AtomicU64::new(0),
        }
    }

    pub(super) fn slot(&self, seq: u64) -> &Mutex<Slot<T>> {
        &self.slots[(seq % self.slots.len() as u64) as usize]
    }

    /// The newest sequence number published.
    pub(super) fn latest(&self) -> Option<u64> {
        self.latest.load(Ordering::Acquire).checked_sub(1)
    }

    pub(super) fn write(
        &self,
        mut guard: MutexGuard<'_, Slot<T>>,
        seq: u64,
        write: impl FnOnce(&mut T),
    ) {
        write(&mut guard.value);
        guard.seq = seq;
        drop(guard);
        self.latest.fetch_max(seq + 1, Ordering::AcqRel);
    }

    /// Publish value `seq` (waits for the slot: the planner's side).
    pub(super) fn publish(&self, seq: u64, write: impl FnOnce(&mut T)) {
        self.write(lock(self.slot(seq)), seq, write);
    }

    /// Publish value `seq` if its slot is free (never waits: the plant's side).
    pub(super) fn try_publish(&self, seq: u64, write: impl FnOnce(&mut T)) -> bool {
        match try_lock(self.slot(seq)) {
            Some(g) => {
                self.write(g, seq, write);
                true
            }
            None => false,
        }
    }

    /// Read value `seq` (waits for the slot): `false` if it was overwritten already.
    pub(super) fn read(&self, seq: u64, read: impl FnOnce(&T)) -> bool {
        let g = lock(self.slot(seq));
        let found = g.seq == seq;
        if found {
            read(&g.value);
        }
        found
    }

    /// Read value `seq` if its slot is free (never waits): `None` if busy, `Some(false)` if
    /// overwritten.
    pub(super) fn try_read(&self, seq: u64, read: impl FnOnce(&T)) -> Option<bool> {
        let g = try_lock(self.slot(seq))?;
        let found = g.seq == seq;
        if found {
            read(&g.value);
        }
        Some(found)
    }
}

/// A measurement: the state at a tick and the control applied in it.
pub(super) struct Measured {
    pub(super) x: Vec<f64>,
    pub(super) u: Vec<f64>,
}

/// A published plan.
pub(super) struct PlanMsg {
    pub(super) start: u64,
    pub(super) controls: Vec<f64>,
}

/// What the two threads share.
pub(super) struct Shared {
    pub(super) measurements: Board<Measured>,
    pub(super) plans: Board<PlanMsg>,
    /// The plant loop is done: the planner stops (between EM iterations).
    pub(super) stop: AtomicBool,
    /// The planner thread has ended (error, panic or stop).
    pub(super) planner_exited: AtomicBool,
}

/// Sets a flag when dropped (also while a panic unwinds).
pub(super) struct SetOnDrop<'a>(pub(super) &'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Stops the EM loop once the plant loop is done.
pub(super) struct StopWhen<'a>(pub(super) &'a AtomicBool);

impl Observer for StopWhen<'_> {
    fn on_iteration(&mut self, _stats: &IterStats, _planner: &Planner) -> ControlFlow<()> {
        if self.0.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// What the planner thread hands back.
pub(super) struct PlannerOutput {
    pub(super) plans: Vec<PlanRecord>,
    pub(super) plan_controls: Vec<f64>,
    pub(super) plan_states: Vec<f64>,
    pub(super) stats: EpisodeStats,
}

/// Fold a plan's report into the planning aggregates (not the stage cost).
pub(super) fn add_report(stats: &mut EpisodeStats, report: &StepReport) {
    let t = report.planning_time.as_secs_f64();
    stats.planning_time_total_s += t;
    stats.planning_time_max_s = stats.planning_time_max_s.max(t);
    stats.out_of_time_steps += usize::from(report.status == Status::OutOfTime);
    for it in &report.iterations {
        stats.iterations += 1;
        stats.ess_sum += it.weights.ess;
        stats.kept_plan_iterations += usize::from(it.kept_plan);
        if it.mstep_gap.is_finite() {
            let g = it.mstep_gap.abs();
            stats.max_mstep_gap = Some(stats.max_mstep_gap.map_or(g, |v| v.max(g)));
        }
        if it.kl_step.is_finite() {
            stats.kl_step_sum += it.kl_step;
            stats.kl_step_count += 1;
        }
    }
}
