//! Every task the CLI knows: the built-in ones, the MuJoCo suite and task files.

use std::path::Path;

use mppi_tasks::Task;

use crate::error::CliError;

/// Built-in tasks, then the MuJoCo suite tasks, in the order `mppi tasks` lists them.
pub(crate) fn all_tasks() -> Vec<Box<dyn Task>> {
    let mut tasks = mppi_tasks::all_tasks();
    tasks.extend(
        mppi_mujoco::suite::tasks()
            .into_iter()
            .map(|t| Box::new(t) as Box<dyn Task>),
    );
    tasks
}

/// Every task name.
pub(crate) fn task_names() -> Vec<&'static str> {
    let mut names = mppi_tasks::task_names();
    names.extend(mppi_mujoco::suite::names());
    names
}

/// A task by name, or a MuJoCo task file (`*.toml`, see `mppi_mujoco::TaskSpec`).
pub(crate) fn task_by_name(name: &str) -> Result<Option<Box<dyn Task>>, CliError> {
    if name.ends_with(".toml") {
        return match mppi_mujoco::MujocoTask::from_file(Path::new(name)) {
            Ok(task) => Ok(Some(Box::new(task))),
            Err(e) => Err(CliError::usage(format!("task file {name}: {e}"))),
        };
    }
    if let Some(task) = mppi_tasks::task_by_name(name) {
        return Ok(Some(task));
    }
    Ok(mppi_mujoco::suite::task_by_name(name).map(|t| Box::new(t) as Box<dyn Task>))
}
