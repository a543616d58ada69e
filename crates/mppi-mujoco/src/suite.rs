//! dm_control's suite tasks on this crate's MJCF models (`models/`, same physics as
//! dm_control 1.0.50) with costs and success tests in `tasks/*.toml`.

use crate::MujocoTask;

/// `(task file, model file)` texts, compiled into the crate so the binary needs no data files.
const SUITE: &[(&str, &str)] = &[
    (
        include_str!("../tasks/cartpole.toml"),
        include_str!("../models/cartpole.xml"),
    ),
    (
        include_str!("../tasks/acrobot.toml"),
        include_str!("../models/acrobot.xml"),
    ),
    (
        include_str!("../tasks/reacher.toml"),
        include_str!("../models/reacher.xml"),
    ),
    (
        include_str!("../tasks/cheetah.toml"),
        include_str!("../models/cheetah.xml"),
    ),
];

/// Every suite task, in the order `mppi tasks` lists them.
pub fn tasks() -> Vec<MujocoTask> {
    SUITE
        .iter()
        .map(|(task, model)| MujocoTask::from_strings(task, model).expect("suite tasks load"))
        .collect()
}

/// A suite task by name.
pub fn task_by_name(name: &str) -> Option<MujocoTask> {
    tasks()
        .into_iter()
        .find(|t| mppi_tasks::Task::name(t) == name)
}

/// Names of the suite tasks.
pub fn names() -> Vec<&'static str> {
    tasks().iter().map(mppi_tasks::Task::name).collect()
}
