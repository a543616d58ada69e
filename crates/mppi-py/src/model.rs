//! A model written in Python: batched numpy callables rolled out over every sample at once.
//!
//! For an iteration with `K` samples of a plan of `T` controls, the objective calls
//! `cost(x, u, t)` and `dynamics(x, u)` once per time step on the whole batch
//! (`x: (K, nx)`, `u: (K, nu)`), never once per sample:
//!
//! `J_k = Σ_{t<T} γᵗ cost(x_t, u_t, t)_k + γᵀ terminal_cost(x_T)_k`, `x_{t+1} = dynamics(x_t, u_t)`.
//!
//! A model that rolls out whole plans itself instead gives `rollout(x0, U) -> (K,)`, called
//! once per iteration with every plan (`U: (K, T, nu)`).
//!
//! A callback that raises stops the iteration: the exception is kept and re-raised by the
//! controller's `act`, unchanged (type, message, traceback). A callback that returns the wrong
//! shape or dtype raises a `ValueError` / `TypeError` that names it. NaN or infinite costs are
//! not errors: those samples get zero weight and are counted in the report.

use std::sync::Mutex;

use mppi::{MppiError, Objective, StateObjective};
use numpy::{PyArray1, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::convert::{float64_array, shape_text};

/// The Python callables of a model.
pub enum Callbacks {
    /// One call of each per time step, on the whole batch.
    Steps {
        /// `dynamics(x: (K, nx), u: (K, nu)) -> (K, nx)`.
        dynamics: Py<PyAny>,
        /// `cost(x: (K, nx), u: (K, nu), t: int) -> (K,)`.
        cost: Py<PyAny>,
        /// `terminal_cost(x: (K, nx)) -> (K,)`, optional.
        terminal: Option<Py<PyAny>>,
    },
    /// `rollout(x0: (nx,), U: (K, T, nu)) -> (K,)`: one call per iteration, whole plans in,
    /// their total costs out (a model that rolls out a horizon itself: JAX, torch, ...).
    Trajectory(Py<PyAny>),
}

/// A [`StateObjective`] whose dynamics and costs are Python callables, evaluated batch-wide.
pub struct PyModel {
    callbacks: Callbacks,
    state_dim: usize,
    control_dim: usize,
    horizon: usize,
    discount: f64,
    state: Vec<f64>,
    /// The exception of the last failed callback, taken by the controller.
    error: Mutex<Option<PyErr>>,
}

impl PyModel {
    /// A model with `state_dim` states and `control_dim` controls over `horizon` steps.
    pub fn new(
        callbacks: Callbacks,
        state_dim: usize,
        control_dim: usize,
        horizon: usize,
        discount: f64,
    ) -> Self {
        PyModel {
            callbacks,
            state_dim,
            control_dim,
            horizon,
            discount,
            state: vec![0.0; state_dim],
            error: Mutex::new(None),
        }
    }

    /// The exception a callback raised during the last iteration, if any.
    pub fn take_error(&self) -> Option<PyErr> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    /// Costs of `K = costs.len()` plans, with the interpreter attached.
    fn rollout(&self, py: Python<'_>, decisions: &[f64], costs: &mut [f64]) -> PyResult<()> {
        let (k, nx, nu, horizon) = (costs.len(), self.state_dim, self.control_dim, self.horizon);
        let (dynamics, cost, terminal) = match &self.callbacks {
            Callbacks::Steps {
                dynamics,
                cost,
                terminal,
            } => (dynamics, cost, terminal),
            Callbacks::Trajectory(rollout) => {
                let x0 = PyArray1::from_slice(py, &self.state);
                let plans = PyArray1::from_slice(py, decisions).reshape([k, horizon, nu])?;
                let c = rollout.bind(py).call1((&x0, &plans))?;
                costs.fill(0.0);
                return accumulate(&c, "rollout(x0, U)", k, 1.0, costs);
            }
        };
        let mut x0 = Vec::with_capacity(k * nx);
        for _ in 0..k {
            x0.extend_from_slice(&self.state);
        }
        let mut x = PyArray1::from_vec(py, x0).reshape([k, nx])?.into_any();
        costs.fill(0.0);
        let mut weight = 1.0;
        let mut u = vec![0.0; k * nu];
        for t in 0..horizon {
            for (row, plan) in u
                .chunks_exact_mut(nu)
                .zip(decisions.chunks_exact(horizon * nu))
            {
                row.copy_from_slice(&plan[t * nu..(t + 1) * nu]);
            }
            let u_arr = PyArray1::from_slice(py, &u).reshape([k, nu])?.into_any();
            let c = cost.bind(py).call1((&x, &u_arr, t))?;
            accumulate(&c, "cost(x, u, t)", k, weight, costs)?;
            let next = dynamics.bind(py).call1((&x, &u_arr))?;
            check_states(&next, k, nx)?;
            x = next;
            weight *= self.discount;
        }
        if let Some(terminal) = terminal {
            let c = terminal.bind(py).call1((&x,))?;
            accumulate(&c, "terminal_cost(x)", k, weight, costs)?;
        }
        Ok(())
    }
}

/// Add `weight · c` to `costs`, checking that `c` is a float64 array of `k` costs.
fn accumulate(
    c: &Bound<'_, PyAny>,
    what: &str,
    k: usize,
    weight: f64,
    costs: &mut [f64],
) -> PyResult<()> {
    let (values, shape) = float64_array(c, &format!("the value returned by {what}"))?;
    if shape != [k] {
        return Err(PyValueError::new_err(format!(
            "{what} must return one cost per sample, shape ({k},), got shape {}",
            shape_text(&shape)
        )));
    }
    for (total, v) in costs.iter_mut().zip(values) {
        *total += weight * v;
    }
    Ok(())
}

/// Check that `dynamics` returned a float64 array of shape `(k, nx)`.
fn check_states(next: &Bound<'_, PyAny>, k: usize, nx: usize) -> PyResult<()> {
    if !next.is_instance_of::<PyUntypedArray>() {
        return Err(PyTypeError::new_err(format!(
            "dynamics(x, u) must return a numpy float64 array of shape ({k}, {nx}), not a {}",
            next.get_type().name()?
        )));
    }
    let Ok(array) = next.cast::<numpy::PyArrayDyn<f64>>() else {
        // not float64: the conversion's error says which dtype it is and how to convert
        return Err(float64_array(next, "the value returned by dynamics(x, u)")
            .err()
            .unwrap_or_else(|| PyTypeError::new_err("dynamics(x, u) must return float64")));
    };
    if array.shape() != [k, nx] {
        return Err(PyValueError::new_err(format!(
            "dynamics(x, u) must return the next states, shape ({k}, {nx}), got shape {}",
            shape_text(array.shape())
        )));
    }
    Ok(())
}

impl Objective for PyModel {
    fn dim(&self) -> usize {
        self.horizon * self.control_dim
    }

    /// Blocks go through the batch path too (an error becomes NaN costs here).
    fn evaluate(&self, decisions: &[f64], costs: &mut [f64], _scratch: &mut [f64]) {
        if self.evaluate_batch(decisions, costs).is_err() {
            costs.fill(f64::NAN);
        }
    }

    fn evaluates_batch(&self) -> bool {
        true
    }

    fn evaluate_batch(&self, decisions: &[f64], costs: &mut [f64]) -> Result<(), MppiError> {
        Python::attach(|py| match self.rollout(py, decisions, costs) {
            Ok(()) => Ok(()),
            Err(e) => {
                let reason = e.to_string();
                if let Ok(mut slot) = self.error.lock() {
                    *slot = Some(e);
                }
                Err(MppiError::Objective { reason })
            }
        })
    }
}

impl StateObjective for PyModel {
    fn control_dim(&self) -> usize {
        self.control_dim
    }

    fn set_state(&mut self, state: &[f64]) -> Result<(), MppiError> {
        if state.len() != self.state_dim {
            return Err(MppiError::DimensionMismatch {
                what: "state",
                expected: self.state_dim,
                got: state.len(),
            });
        }
        if let Some(index) = state.iter().position(|v| !v.is_finite()) {
            return Err(MppiError::NonFinite {
                what: "state",
                index,
            });
        }
        self.state.copy_from_slice(state);
        Ok(())
    }

    fn state(&self) -> &[f64] {
        &self.state
    }
}
