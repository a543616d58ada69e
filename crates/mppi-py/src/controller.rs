//! `mppi.Controller`: the receding-horizon controller, for a built-in task or a model written
//! in Python.

use std::sync::{Mutex, MutexGuard, TryLockError};

use mppi::{Controller as Core, MppiConfig, StepReport};
use mppi_tasks::TaskController;
use numpy::PyArrayMethods;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{array1, build_config, config_dict, matrix, mppi_err, to_py, vector};
use crate::model::{Callbacks, PyModel};
use crate::task::find_task;

/// The controller of either kind of model.
enum Inner {
    /// A built-in task's model, rolled out in Rust (the GIL is released while it plans).
    Task(Box<TaskController>),
    /// A model of Python callables, evaluated batch-wide with the GIL held per call.
    Python(Box<Core<PyModel>>),
}

impl Inner {
    fn act(&mut self, state: &[f64]) -> Result<Vec<f64>, mppi::MppiError> {
        match self {
            Inner::Task(c) => c.act(state).map(<[f64]>::to_vec),
            Inner::Python(c) => c.act(state).map(<[f64]>::to_vec),
        }
    }
    fn plan(&self) -> &[f64] {
        match self {
            Inner::Task(c) => c.plan(),
            Inner::Python(c) => c.plan(),
        }
    }
    fn report(&self) -> &StepReport {
        match self {
            Inner::Task(c) => c.report(),
            Inner::Python(c) => c.report(),
        }
    }
    fn planner(&self) -> &mppi::Planner {
        match self {
            Inner::Task(c) => c.planner(),
            Inner::Python(c) => c.planner(),
        }
    }
    fn set_plan(&mut self, plan: &[f64]) -> Result<(), mppi::MppiError> {
        match self {
            Inner::Task(c) => c.set_plan(plan),
            Inner::Python(c) => c.set_plan(plan),
        }
    }
    fn reset(&mut self) {
        match self {
            Inner::Task(c) => c.reset(),
            Inner::Python(c) => c.reset(),
        }
    }
}

/// MPPI in closed loop: `act(state)` plans from the state and returns the control to apply
/// now; the plan is shifted and warm-starts the next call.
///
/// Build it for a model written in Python (`Controller(dynamics, cost, state_dim=...,
/// control_dim=...)`) or for a built-in task (`Controller.for_task("pendulum")`). Settings come
/// from `config` (a nested dict, dotted keys allowed, or the path of a TOML file), a `preset`
/// (`"dial"`, `"mbd"`, `"ve"`) and keyword arguments, laid in that order over the defaults; an
/// unknown key or a bad value raises `ValueError` / `TypeError` naming the key.
#[pyclass(module = "mppi", name = "Controller")]
pub struct Controller {
    inner: Mutex<Inner>,
    config: MppiConfig,
    state_dim: usize,
    control_dim: usize,
    task: Option<String>,
    /// The task's first plan (a hover or trim control), set again by `reset`.
    initial_plan: Option<Vec<f64>>,
}

/// `(state_dim, control_dim)` of a Python model, both at least 1.
fn dims(state_dim: i64, control_dim: i64) -> PyResult<(usize, usize)> {
    match (usize::try_from(state_dim), usize::try_from(control_dim)) {
        (Ok(nx), Ok(nu)) if nx > 0 && nu > 0 => Ok((nx, nu)),
        _ => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "state_dim and control_dim must be at least 1 (got {state_dim} and {control_dim})"
        ))),
    }
}

/// The config of a Python model: the core's defaults with the caller's settings, in float64
/// (its callbacks get float64 arrays).
fn python_config(
    preset: Option<&str>,
    config: Option<&Bound<'_, PyAny>>,
    settings: Option<&Bound<'_, PyDict>>,
    control_dim: usize,
) -> PyResult<MppiConfig> {
    let config = build_config(
        &MppiConfig::default(),
        preset,
        config,
        settings,
        control_dim,
    )?;
    if config.precision != mppi::Precision::F64 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "precision = \"f32\" applies to the built-in models' rollouts; a Python model gets \
             float64 arrays (leave precision at \"f64\", or use numpy float32 inside your \
             callbacks)",
        ));
    }
    Ok(config)
}

impl Controller {
    /// The controller of a model of Python callables.
    fn python_model(
        callbacks: Callbacks,
        config: MppiConfig,
        state_dim: usize,
        control_dim: usize,
    ) -> PyResult<Self> {
        let model = PyModel::new(
            callbacks,
            state_dim,
            control_dim,
            config.horizon,
            config.discount,
        );
        let core = Core::from_objective(model, &config).map_err(|e| mppi_err(&e))?;
        Ok(Controller {
            inner: Mutex::new(Inner::Python(Box::new(core))),
            config,
            state_dim,
            control_dim,
            task: None,
            initial_plan: None,
        })
    }

    /// The controller, or a `RuntimeError` if another thread is using it (never a hang).
    fn lock(&self) -> PyResult<MutexGuard<'_, Inner>> {
        match self.inner.try_lock() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(
                "this Controller is in use by another thread (or by a callback of its own); \
                 give each thread its own Controller",
            )),
            // a panic while planning poisons the lock; the controller's state is then suspect
            Err(TryLockError::Poisoned(_)) => Err(PyRuntimeError::new_err(
                "this Controller failed while planning and cannot be used any more; build a \
                 new one",
            )),
        }
    }
}

#[pymethods]
impl Controller {
    /// A controller for a model written in Python.
    ///
    /// `dynamics(x, u) -> x_next` and `cost(x, u, t) -> c` are batched numpy callables over
    /// every sample at once (`x: (K, state_dim)`, `u: (K, control_dim)`, `c: (K,)`, all
    /// float64), called once per time step of the horizon per iteration;
    /// `terminal_cost(x) -> (K,)` is optional.
    #[new]
    #[pyo3(signature = (dynamics, cost, config=None, *, state_dim, control_dim, preset=None, terminal_cost=None, **settings))]
    fn new(
        dynamics: Bound<'_, PyAny>,
        cost: Bound<'_, PyAny>,
        config: Option<&Bound<'_, PyAny>>,
        state_dim: i64,
        control_dim: i64,
        preset: Option<&str>,
        terminal_cost: Option<Bound<'_, PyAny>>,
        settings: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        for (name, f) in [("dynamics", Some(&dynamics)), ("cost", Some(&cost))]
            .into_iter()
            .chain([("terminal_cost", terminal_cost.as_ref())])
        {
            if let Some(f) = f
                && !f.is_callable()
            {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "{name} must be callable, got a {}",
                    f.get_type().name()?
                )));
            }
        }
        let (state_dim, control_dim) = dims(state_dim, control_dim)?;
        let config = python_config(preset, config, settings, control_dim)?;
        let callbacks = Callbacks::Steps {
            dynamics: dynamics.unbind(),
            cost: cost.unbind(),
            terminal: terminal_cost.map(Bound::unbind),
        };
        Self::python_model(callbacks, config, state_dim, control_dim)
    }

    /// A controller for a model that rolls out whole plans itself:
    /// `rollout(x0, U) -> costs` with `x0: (state_dim,)`, `U: (K, horizon, control_dim)` and
    /// `costs: (K,)`, all float64, called once per iteration with every sample (a JAX or
    /// torch model, a simulator with its own batch rollout). The `discount` key does not apply:
    /// the costs are the totals the function returns.
    #[staticmethod]
    #[pyo3(signature = (rollout, config=None, *, state_dim, control_dim, preset=None, **settings))]
    fn from_rollout(
        rollout: Bound<'_, PyAny>,
        config: Option<&Bound<'_, PyAny>>,
        state_dim: i64,
        control_dim: i64,
        preset: Option<&str>,
        settings: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        if !rollout.is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "rollout must be callable, got a {}",
                rollout.get_type().name()?
            )));
        }
        let (state_dim, control_dim) = dims(state_dim, control_dim)?;
        let config = python_config(preset, config, settings, control_dim)?;
        Self::python_model(
            Callbacks::Trajectory(rollout.unbind()),
            config,
            state_dim,
            control_dim,
        )
    }

    /// A controller for the built-in task `task` (see `mppi.tasks()`), with the task's tuned
    /// settings as the defaults that `config`, `preset` and keyword arguments override.
    #[staticmethod]
    #[pyo3(signature = (task, *, config=None, preset=None, **settings))]
    fn for_task(
        task: &str,
        config: Option<&Bound<'_, PyAny>>,
        preset: Option<&str>,
        settings: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let t = find_task(task)?;
        let (nx, nu) = (t.dynamics().state_dim(), t.dynamics().control_dim());
        let config = build_config(&t.default_config(), preset, config, settings, nu)?;
        let mut core = mppi_tasks::controller(t.as_ref(), &config).map_err(|e| mppi_err(&e))?;
        let initial_plan = t.initial_plan(config.horizon);
        if let Some(plan) = &initial_plan {
            core.set_plan(plan).map_err(|e| mppi_err(&e))?;
        }
        Ok(Controller {
            inner: Mutex::new(Inner::Task(Box::new(core))),
            config,
            state_dim: nx,
            control_dim: nu,
            task: Some(t.name().to_string()),
            initial_plan,
        })
    }

    /// Plan from `state` (float64, `state_dim` entries) and return the control to apply now,
    /// a float64 array of `control_dim` entries.
    ///
    /// Raises `ValueError` for a state of the wrong length or with NaN, `TypeError` for
    /// another dtype, and re-raises an exception of a Python model's callback.
    fn act<'py>(&self, py: Python<'py>, state: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let x = vector(state, "state", self.state_dim)?;
        let mut inner = self.lock()?;
        let inner = &mut *inner;
        // the GIL is released while Rust plans; a Python model re-attaches for its callbacks
        let result = py.detach(|| inner.act(&x));
        match result {
            Ok(u) => Ok(array1(py, u)),
            Err(e) => {
                if let Inner::Python(c) = inner
                    && let Some(err) = c.objective().take_error()
                {
                    return Err(err);
                }
                Err(mppi_err(&e))
            }
        }
    }

    /// The current plan, shape `(horizon, control_dim)`: the controls the planner intends
    /// from the last state on.
    #[getter]
    fn plan<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.lock()?;
        let plan = inner.plan().to_vec();
        matrix(py, plan, self.config.horizon, self.control_dim)
    }

    /// Replace the plan (shape `(horizon, control_dim)` or flat), e.g. with a good first
    /// guess.
    fn set_plan(&self, plan: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = self.config.horizon * self.control_dim;
        let flat = plan
            .call_method1("reshape", (-1,))
            .unwrap_or_else(|_| plan.clone());
        let values = vector(&flat, "plan", n)?;
        self.lock()?.set_plan(&values).map_err(|e| mppi_err(&e))
    }

    /// Forget the plan and the step counter (a new episode); a task's controller starts again
    /// from the task's first plan.
    fn reset(&self) -> PyResult<()> {
        let mut inner = self.lock()?;
        inner.reset();
        if let Some(plan) = &self.initial_plan {
            inner.set_plan(plan).map_err(|e| mppi_err(&e))?;
        }
        Ok(())
    }

    /// Diagnostics of the last `act`: a dict with `step`, `status` (`"max_iterations"`,
    /// `"out_of_time"`, `"stopped"`), `planning_time` (seconds) and `iterations`, one dict per
    /// EM iteration (temperature, effective sample size, costs, KL step, ...; `None` where a
    /// diagnostic was not measured).
    #[getter]
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.lock()?;
        to_py(py, inner.report())
    }

    /// The sampled control sequences of the last iteration, shape
    /// `(samples, horizon, control_dim)`.
    #[getter]
    fn samples<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.lock()?;
        let p = inner.planner();
        let (n, t, m) = (p.num_samples(), self.config.horizon, self.control_dim);
        Ok(numpy::PyArray1::from_vec(py, p.samples())
            .reshape([n, t, m])?
            .into_any())
    }

    /// The costs of the last iteration's samples, shape `(samples,)` (NaN where a sample's
    /// cost was not finite).
    #[getter]
    fn costs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(array1(py, self.lock()?.planner().costs().to_vec()))
    }

    /// The normalized weights of the last iteration's samples, shape `(samples,)`.
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(array1(py, self.lock()?.planner().weights().to_vec()))
    }

    /// The controller's whole config as a nested dict (what `config=` accepts).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        config_dict(py, &self.config)
    }

    /// State dimension.
    #[getter]
    fn state_dim(&self) -> usize {
        self.state_dim
    }

    /// Control dimension.
    #[getter]
    fn control_dim(&self) -> usize {
        self.control_dim
    }

    /// Controls in the plan.
    #[getter]
    fn horizon(&self) -> usize {
        self.config.horizon
    }

    /// The built-in task's name, or `None` for a Python model.
    #[getter]
    fn task(&self) -> Option<String> {
        self.task.clone()
    }

    fn __repr__(&self) -> String {
        let model = self
            .task
            .as_ref()
            .map_or_else(|| "python model".to_string(), |t| format!("task {t:?}"));
        format!(
            "Controller({model}, state_dim={}, control_dim={}, samples={}, horizon={}, \
             proposal={:?})",
            self.state_dim,
            self.control_dim,
            self.config.samples,
            self.config.horizon,
            self.config.proposal.kind.name()
        )
    }
}
