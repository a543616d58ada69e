//! Python bindings of `mppi` (the `mppi` Python package's native module).
//!
//! The package (`crates/mppi-py/python/mppi`) re-exports these classes and functions; see its
//! docstrings and `docs/python.md`. The module is built twice into one wheel, for baseline
//! x86-64 (`_native`) and for x86-64-v3 (`_native_v3`, feature `v3`), and `import mppi` loads
//! the one the CPU runs.

mod controller;
mod convert;
mod model;
mod task;

use pyo3::prelude::*;

/// Whether this CPU runs x86-64-v3 code (AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE).
#[pyfunction]
fn cpu_supports_v3() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("f16c")
            && std::arch::is_x86_feature_detected!("lzcnt")
            && std::arch::is_x86_feature_detected!("movbe")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The presets: `{name: description}`.
#[pyfunction]
fn presets() -> Vec<(&'static str, &'static str)> {
    mppi_config::presets::PRESETS
        .iter()
        .map(|(name, what, _)| (*name, *what))
        .collect()
}

/// Every config key (dotted path) with its description.
#[pyfunction]
fn config_keys() -> Vec<(&'static str, &'static str)> {
    mppi::keys::KEYS.to_vec()
}

fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<controller::Controller>()?;
    m.add_class::<task::Task>()?;
    m.add_function(wrap_pyfunction!(task::tasks, m)?)?;
    m.add_function(wrap_pyfunction!(task::run_episode, m)?)?;
    m.add_function(wrap_pyfunction!(presets, m)?)?;
    m.add_function(wrap_pyfunction!(config_keys, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_supports_v3, m)?)?;
    // what this copy of the module was compiled for
    let target = if cfg!(target_feature = "avx2") {
        "x86-64-v3"
    } else {
        "baseline"
    };
    m.add("BUILD_TARGET", target)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The module for every CPU.
#[cfg(not(feature = "v3"))]
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    register(m)
}

/// The module for x86-64-v3 CPUs.
#[cfg(feature = "v3")]
#[pymodule]
#[pyo3(name = "_native_v3")]
fn native_v3(m: &Bound<'_, PyModule>) -> PyResult<()> {
    register(m)
}
