//! Waiting for the process's other threads to go idle, before a window that counts heap
//! allocations on every thread (the `mppi bench` allocation count and
//! `tests/allocations.rs`).

use std::time::{Duration, Instant};

/// Wait (at most 2 s) until no other thread of this process is runnable: on Linux, the states
/// in `/proc/self/task`; elsewhere this returns at once.
///
/// A window counts every thread, so it must not overlap threads that start or stop: a rayon
/// pool's workers start asynchronously and allocate as they start (crossbeam's epoch registers
/// each of them), and a dropped pool's workers exit asynchronously and allocate as they exit
/// (each hands its epoch garbage bag to the global queue: 2072 B per worker measured). Once
/// every other thread sleeps, neither can happen later. Workers spinning before they sleep
/// are runnable too: this waits them out.
pub fn wait_for_idle_threads() {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return;
        };
        let runnable = tasks
            .filter_map(Result::ok)
            .filter(|t| {
                std::fs::read_to_string(t.path().join("stat"))
                    .ok()
                    .and_then(|stat| {
                        // `pid (comm) state ...`; comm may hold spaces and parentheses
                        stat.rsplit_once(')')
                            .map(|(_, rest)| rest.trim_start().starts_with('R'))
                    })
                    .unwrap_or(false)
            })
            .count();
        // this thread is running
        if runnable <= 1 {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
