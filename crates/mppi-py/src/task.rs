//! The built-in tasks from Python: `mppi.tasks()`, `mppi.Task(name)` and
//! `mppi.run_episode(name, ...)`, the closed-loop run of `mppi run <task>`.

use mppi_tasks::{EpisodeError, EpisodeOptions, EpisodeSink, StepRecord, Task as CoreTask};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{
    array1, build_config, config_dict, float64_array, matrix, mppi_err, shape_text, vector,
};

/// The task called `name`, or a `ValueError` that lists the tasks.
pub fn find_task(name: &str) -> PyResult<Box<dyn CoreTask>> {
    mppi_tasks::task_by_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown task `{name}`; the tasks are: {}",
            mppi_tasks::task_names().join(", ")
        ))
    })
}

/// The names of the built-in tasks.
#[pyfunction]
pub fn tasks() -> Vec<&'static str> {
    mppi_tasks::task_names()
}

/// A built-in control problem: its model, cost, defaults and success criterion.
#[pyclass(module = "mppi", name = "Task", frozen)]
pub struct Task {
    task: Box<dyn CoreTask>,
}

impl Task {
    /// `(K, n)` rows from a float64 array of shape `(K, n)` or `(n,)` (then `K = 1`, and
    /// whether it was 1-D).
    fn rows(value: &Bound<'_, PyAny>, what: &str, n: usize) -> PyResult<(Vec<f64>, usize, bool)> {
        let (values, shape) = float64_array(value, what)?;
        match shape.as_slice() {
            [len] if *len == n => Ok((values, 1, true)),
            [k, len] if *len == n => Ok((values, *k, false)),
            _ => Err(PyValueError::new_err(format!(
                "{what} must have shape (K, {n}) or ({n},), got shape {}",
                shape_text(&shape)
            ))),
        }
    }

    /// The batch of states and controls of a batched call, with matching row counts.
    fn batch(
        &self,
        x: &Bound<'_, PyAny>,
        u: &Bound<'_, PyAny>,
    ) -> PyResult<(Vec<f64>, Vec<f64>, usize, bool)> {
        let d = self.task.dynamics();
        let (xs, kx, flat_x) = Self::rows(x, "x", d.state_dim())?;
        let (us, ku, flat_u) = Self::rows(u, "u", d.control_dim())?;
        if kx != ku {
            return Err(PyValueError::new_err(format!(
                "x and u must have the same number of rows, got {kx} and {ku}"
            )));
        }
        Ok((xs, us, kx, flat_x && flat_u))
    }
}

#[pymethods]
impl Task {
    /// The built-in task `name` (see `mppi.tasks()`).
    #[new]
    fn new(name: &str) -> PyResult<Self> {
        Ok(Task {
            task: find_task(name)?,
        })
    }

    /// Short name (`mppi run <name>`).
    #[getter]
    fn name(&self) -> &'static str {
        self.task.name()
    }

    /// One-line description.
    #[getter]
    fn description(&self) -> &'static str {
        self.task.description()
    }

    /// Names of the state components.
    #[getter]
    fn state_names(&self) -> Vec<&'static str> {
        self.task.state_names().to_vec()
    }

    /// Names of the control components.
    #[getter]
    fn control_names(&self) -> Vec<&'static str> {
        self.task.control_names().to_vec()
    }

    /// State dimension.
    #[getter]
    fn state_dim(&self) -> usize {
        self.task.dynamics().state_dim()
    }

    /// Control dimension.
    #[getter]
    fn control_dim(&self) -> usize {
        self.task.dynamics().control_dim()
    }

    /// Plant time step in seconds.
    #[getter]
    fn dt(&self) -> f64 {
        self.task.dt()
    }

    /// Episode length in control steps.
    #[getter]
    fn default_steps(&self) -> usize {
        self.task.default_steps()
    }

    /// The state an episode starts from (float64 array).
    #[getter]
    fn initial_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        array1(py, self.task.initial_state())
    }

    /// The planner settings that make this task succeed, as a nested dict.
    #[getter]
    fn default_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        config_dict(py, &self.task.default_config())
    }

    /// Lower control bounds of the default config (`None`: unbounded).
    #[getter]
    fn u_min(&self) -> Option<Vec<f64>> {
        let c = self.task.default_config();
        c.u_min
            .map(|b| broadcast(&b, self.task.dynamics().control_dim()))
    }

    /// Upper control bounds of the default config (`None`: unbounded).
    #[getter]
    fn u_max(&self) -> Option<Vec<f64>> {
        let c = self.task.default_config();
        c.u_max
            .map(|b| broadcast(&b, self.task.dynamics().control_dim()))
    }

    /// The planner's model on a batch: `x: (K, nx)`, `u: (K, nu)` → next states `(K, nx)`
    /// (1-D `x` and `u` give one 1-D state).
    fn dynamics<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        u: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (xs, us, k, flat) = self.batch(x, u)?;
        let d = self.task.dynamics();
        let (nx, nu) = (d.state_dim(), d.control_dim());
        let mut next = vec![0.0; k * nx];
        for ((xr, ur), out) in xs
            .chunks_exact(nx)
            .zip(us.chunks_exact(nu))
            .zip(next.chunks_exact_mut(nx))
        {
            d.step(xr, ur, out);
        }
        if flat {
            Ok(array1(py, next))
        } else {
            matrix(py, next, k, nx)
        }
    }

    /// The planner's running cost on a batch: `x: (K, nx)`, `u: (K, nu)`, step `t` → `(K,)`.
    #[pyo3(signature = (x, u, t=0))]
    fn running_cost<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        u: &Bound<'py, PyAny>,
        t: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (xs, us, _, _) = self.batch(x, u)?;
        let (nx, nu) = (self.state_dim(), self.control_dim());
        let cost = self.task.cost();
        let c: Vec<f64> = xs
            .chunks_exact(nx)
            .zip(us.chunks_exact(nu))
            .map(|(xr, ur)| cost.running(xr, ur, t))
            .collect();
        Ok(array1(py, c))
    }

    /// The planner's terminal cost on a batch of states `(K, nx)` → `(K,)`.
    fn terminal_cost<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let nx = self.state_dim();
        let (xs, _, _) = Self::rows(x, "x", nx)?;
        let cost = self.task.cost();
        let c: Vec<f64> = xs.chunks_exact(nx).map(|xr| cost.terminal(xr)).collect();
        Ok(array1(py, c))
    }

    /// Advance the real system one step from `x` under control `u` (1-D arrays).
    fn plant_step<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        u: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let x = vector(x, "x", self.state_dim())?;
        let u = vector(u, "u", self.control_dim())?;
        let mut next = vec![0.0; x.len()];
        self.task.plant_step(&x, &u, &mut next);
        Ok(array1(py, next))
    }

    /// The cost of one closed-loop step (what an episode's total cost sums).
    fn stage_cost(&self, x: &Bound<'_, PyAny>, u: &Bound<'_, PyAny>) -> PyResult<f64> {
        let x = vector(x, "x", self.state_dim())?;
        let u = vector(u, "u", self.control_dim())?;
        Ok(self.task.stage_cost(&x, &u))
    }

    /// The task's verdict on an episode: `states` `(S + 1, nx)` and `controls` `(S, nu)` →
    /// `(success, message)`.
    fn judge(
        &self,
        states: &Bound<'_, PyAny>,
        controls: &Bound<'_, PyAny>,
    ) -> PyResult<(bool, String)> {
        let (nx, nu) = (self.state_dim(), self.control_dim());
        let (xs, _, _) = Self::rows(states, "states", nx)?;
        let (us, _, _) = Self::rows(controls, "controls", nu)?;
        let xs: Vec<Vec<f64>> = xs.chunks_exact(nx).map(<[f64]>::to_vec).collect();
        let us: Vec<Vec<f64>> = us.chunks_exact(nu).map(<[f64]>::to_vec).collect();
        let outcome = mppi_tasks::judge(self.task.as_ref(), &xs, &us);
        Ok((outcome.success, outcome.message))
    }

    fn __repr__(&self) -> String {
        format!(
            "Task({:?}, state_dim={}, control_dim={}, dt={})",
            self.task.name(),
            self.state_dim(),
            self.control_dim(),
            self.task.dt()
        )
    }
}

/// A bound of one value broadcast to `m` entries.
fn broadcast(bound: &[f64], m: usize) -> Vec<f64> {
    if bound.len() == 1 {
        vec![bound[0]; m]
    } else {
        bound.to_vec()
    }
}

/// Checks for Ctrl-C between control steps, so a long episode can be interrupted. It looks
/// at most every 100 ms: taking the GIL back can wait for another Python thread's switch
/// interval (5 ms), too long to pay at every step.
struct Interruptible {
    last: std::time::Instant,
}

impl EpisodeSink for Interruptible {
    type Error = PyErr;
    fn step(&mut self, _record: &StepRecord<'_>) -> Result<(), PyErr> {
        if self.last.elapsed() < std::time::Duration::from_millis(100) {
            return Ok(());
        }
        self.last = std::time::Instant::now();
        Python::attach(|py| py.check_signals())
    }
}

/// Run the built-in task `task` in closed loop, as `mppi run <task>` does, and return a dict:
/// `total_cost`, `success`, `message`, `steps`, `states` `(steps + 1, nx)`, `controls`
/// `(steps, nu)`, `stage_costs`, `mean_ess`, `planning_time_mean_s` and
/// `planning_time_max_s`, `config` (the settings used).
///
/// The GIL is released while it runs. `steps` defaults to the task's episode length. Settings
/// are config keys, as for `Controller.for_task`: `seed=3`, `threads=2` (the result does not
/// depend on `threads`), `samples=500`, ...
#[pyfunction]
#[pyo3(signature = (task, *, steps=None, initial_state=None, config=None, preset=None, **settings))]
pub fn run_episode<'py>(
    py: Python<'py>,
    task: &str,
    steps: Option<i64>,
    initial_state: Option<&Bound<'py, PyAny>>,
    config: Option<&Bound<'py, PyAny>>,
    preset: Option<&str>,
    settings: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let t = find_task(task)?;
    let (nx, nu) = (t.dynamics().state_dim(), t.dynamics().control_dim());
    let cfg = build_config(&t.default_config(), preset, config, settings, nu)?;
    let steps = match steps {
        None => t.default_steps(),
        Some(n) => usize::try_from(n).map_err(|_| {
            PyValueError::new_err(format!("steps must be a whole number >= 0, got {n}"))
        })?,
    };
    let initial_state = initial_state
        .map(|x| vector(x, "initial_state", nx))
        .transpose()?;
    let options = EpisodeOptions {
        steps,
        initial_state,
        // every row while that stays small; longer episodes keep evenly spaced rows
        record_rows: (steps + 1).min(100_000),
        ..EpisodeOptions::default()
    };
    let result = py.detach(|| {
        let mut sink = Interruptible {
            last: std::time::Instant::now(),
        };
        mppi_tasks::run_episode_with(t.as_ref(), &cfg, &options, &mut sink)
    });
    let episode = match result {
        Ok(e) => e,
        Err(EpisodeError::Mppi(e)) => return Err(mppi_err(&e)),
        Err(EpisodeError::Sink(e)) => return Err(e),
    };
    let out = PyDict::new(py);
    out.set_item("task", t.name())?;
    out.set_item("total_cost", episode.total_cost())?;
    out.set_item("success", episode.outcome.success)?;
    out.set_item("message", &episode.outcome.message)?;
    out.set_item("steps", episode.steps)?;
    let rows = episode.states.len();
    let states: Vec<f64> = episode.states.iter().flatten().copied().collect();
    out.set_item("states", matrix(py, states, rows, nx)?)?;
    let controls: Vec<f64> = episode.controls.iter().flatten().copied().collect();
    out.set_item("controls", matrix(py, controls, rows - 1, nu)?)?;
    out.set_item("stage_costs", array1(py, episode.stage_costs.clone()))?;
    out.set_item("kept_steps", episode.kept_steps.clone())?;
    let stats = &episode.stats;
    out.set_item("mean_ess", stats.mean_ess())?;
    out.set_item("iterations", stats.iterations)?;
    out.set_item(
        "planning_time_mean_s",
        stats.planning_time_total_s / steps.max(1) as f64,
    )?;
    out.set_item("planning_time_max_s", stats.planning_time_max_s)?;
    out.set_item("config", config_dict(py, &cfg)?)?;
    Ok(out)
}
