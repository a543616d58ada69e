//! Conversions between Python values and the library's: config dicts to config layers, numpy
//! arrays to and from slices, and errors to Python exceptions that name the key or argument.

use std::path::PathBuf;

use mppi::{MppiConfig, MppiError};
use mppi_config::{ConfigError, Layer};
use numpy::{PyArray1, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use toml::{Table, Value};

/// A library error as a Python `ValueError` (every [`MppiError`] is about a value the caller
/// gave: a config key, a shape, a non-finite entry, a failed objective).
pub fn mppi_err(e: &MppiError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A config error as `TypeError` (a value of the wrong type) or `ValueError` (anything else),
/// with the message that names the key.
pub fn config_err(e: &ConfigError) -> PyErr {
    let message = e.message();
    if message.contains("invalid type") {
        PyTypeError::new_err(message)
    } else {
        PyValueError::new_err(message)
    }
}

/// A Python value as a TOML config value; `key` names it in errors.
fn toml_value(value: &Bound<'_, PyAny>, key: &str) -> PyResult<Value> {
    // bool before int: Python's bool is an int
    if value.is_instance_of::<PyBool>() {
        return Ok(Value::Boolean(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        return match value.extract::<i64>() {
            Ok(v) => Ok(Value::Integer(v)),
            // seeds up to u64::MAX are valid; TOML integers are i64, so the config reads a
            // larger one from a string
            Err(_) => match value.extract::<u64>() {
                Ok(v) => Ok(Value::String(v.to_string())),
                Err(_) => Err(PyValueError::new_err(format!(
                    "config key `{key}`: the integer {value} is out of range"
                ))),
            },
        };
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(value.extract()?));
    }
    if value.is_instance_of::<PyString>() {
        return Ok(Value::String(value.extract()?));
    }
    if value.is_instance_of::<PyDict>() {
        return Ok(Value::Table(table(value.cast::<PyDict>()?, key)?));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items: Vec<Value> = value
            .try_iter()?
            .map(|item| toml_value(&item?, key))
            .collect::<PyResult<_>>()?;
        return Ok(Value::Array(items));
    }
    if value.is_instance_of::<PyUntypedArray>() || value.hasattr("tolist")? {
        // a numpy array or scalar: through its Python list / scalar
        let plain = value.call_method0("tolist")?;
        return toml_value(&plain, key);
    }
    if value.is_none() {
        return Err(PyTypeError::new_err(format!(
            "config key `{key}`: None is not a config value; leave the key out to keep its \
             default"
        )));
    }
    Err(PyTypeError::new_err(format!(
        "config key `{key}`: a {} is not a config value (use a number, bool, string, list or \
         dict)",
        value.get_type().name()?
    )))
}

/// A Python dict as a TOML table. Keys may be dotted paths (`"proposal.std_min"`), which
/// become nested sections, so `{"proposal.kind": "gaussian"}` and
/// `{"proposal": {"kind": "gaussian"}}` mean the same.
fn table(dict: &Bound<'_, PyDict>, prefix: &str) -> PyResult<Table> {
    let mut out = Table::new();
    for (k, v) in dict.iter() {
        let Ok(key) = k.extract::<String>() else {
            return Err(PyTypeError::new_err(format!(
                "config keys are strings; got {} in {}",
                k.repr()?,
                if prefix.is_empty() {
                    "the config".to_string()
                } else {
                    format!("`{prefix}`")
                }
            )));
        };
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let path: Vec<&str> = key.split('.').map(str::trim).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(PyValueError::new_err(format!(
                "config key `{full}` has an empty part; write a dotted path such as \
                 \"proposal.std_min\""
            )));
        }
        let value = toml_value(&v, &full)?;
        insert(&mut out, &path, value, &full)?;
    }
    Ok(out)
}

fn insert(table: &mut Table, path: &[&str], value: Value, full: &str) -> PyResult<()> {
    let (last, sections) = path.split_last().expect("split never gives an empty path");
    let mut at = table;
    for key in sections {
        let entry = at
            .entry((*key).to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(inner) => at = inner,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "config key `{full}`: `{key}` is a value, not a section"
                )));
            }
        }
    }
    match (at.get_mut(*last), value) {
        (Some(Value::Table(old)), Value::Table(new)) => {
            old.extend(new);
        }
        (_, value) => {
            at.insert((*last).to_string(), value);
        }
    }
    Ok(())
}

/// The config a caller asked for: `base`, then the preset, then `config` (a dict or the path
/// of a TOML file), then every keyword argument in order; validated for `control_dim`
/// controls.
pub fn build_config(
    base: &MppiConfig,
    preset: Option<&str>,
    config: Option<&Bound<'_, PyAny>>,
    settings: Option<&Bound<'_, PyDict>>,
    control_dim: usize,
) -> PyResult<MppiConfig> {
    let mut layers = Vec::new();
    if let Some(name) = preset {
        layers.push(mppi_config::presets::layer(name).map_err(|e| config_err(&e))?);
    }
    if let Some(config) = config.filter(|c| !c.is_none()) {
        if let Ok(dict) = config.cast::<PyDict>() {
            layers.push(Layer {
                source: "config dict".to_string(),
                table: table(dict, "")?,
            });
        } else if let Ok(path) = config.extract::<PathBuf>() {
            layers.push(mppi_config::read_config_file(&path).map_err(|e| config_err(&e))?);
        } else {
            return Err(PyTypeError::new_err(format!(
                "config must be a dict (e.g. {{\"samples\": 512}}) or the path of a TOML file, \
                 not a {}",
                config.get_type().name()?
            )));
        }
    }
    if let Some(settings) = settings {
        for (k, v) in settings.iter() {
            let key: String = k.extract()?;
            let dict = PyDict::new(settings.py());
            dict.set_item(&key, v)?;
            layers.push(Layer {
                source: format!("keyword argument `{key}`"),
                table: table(&dict, "")?,
            });
        }
    }
    let config = mppi_config::merge(base, &layers).map_err(|e| config_err(&e))?;
    config.validate(control_dim).map_err(|e| mppi_err(&e))?;
    Ok(config)
}

/// A TOML value as a Python object (tables become dicts).
fn py_value<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Boolean(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Datetime(d) => d.to_string().into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(py_value(py, item)?)?;
            }
            list.into_any()
        }
        Value::Table(t) => py_table(py, t)?.into_any(),
    })
}

fn py_table<'py>(py: Python<'py>, t: &Table) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in t {
        dict.set_item(k, py_value(py, v)?)?;
    }
    Ok(dict)
}

/// A config as a nested dict, the form `config=` takes back.
pub fn config_dict<'py>(py: Python<'py>, config: &MppiConfig) -> PyResult<Bound<'py, PyDict>> {
    let t = mppi_config::config_table(config).map_err(|e| config_err(&e))?;
    py_table(py, &t)
}

/// A JSON value (a serialized report) as a Python object; `null` (an unmeasured diagnostic,
/// serialized from NaN) becomes `None`.
pub fn json_value<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        serde_json::Value::Null => py.None().into_bound(py),
        serde_json::Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        serde_json::Value::String(s) => s.into_pyobject(py)?.into_any(),
        serde_json::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_value(py, item)?)?;
            }
            list.into_any()
        }
        serde_json::Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_value(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Any serializable value as a Python object (through JSON).
pub fn to_py<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value)
        .map_err(|e| PyValueError::new_err(format!("cannot convert to Python: {e}")))?;
    json_value(py, &json)
}

/// A shape as Python writes it: `(3,)`, `(5, 2)`.
pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The name of a numpy array's dtype (`float64`, `float32`, ...).
fn dtype_name(array: &Bound<'_, PyUntypedArray>) -> String {
    array
        .dtype()
        .str()
        .map_or_else(|_| "?".to_string(), |s| s.to_string())
}

/// A float64 numpy array's entries in C order, with its shape; `what` names the argument in
/// errors. Other dtypes are a `TypeError` that says how to convert.
pub fn float64_array(value: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<f64>, Vec<usize>)> {
    let Ok(untyped) = value.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a numpy float64 array, not a {}",
            value.get_type().name()?
        )));
    };
    let Ok(array) = value.cast::<numpy::PyArrayDyn<f64>>() else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a float64 array, got dtype {}; convert it with \
             np.asarray(..., dtype=np.float64)",
            dtype_name(untyped)
        )));
    };
    let shape = array.shape().to_vec();
    let values = match array.try_readonly() {
        Ok(view) => match view.as_slice() {
            Ok(slice) => slice.to_vec(),
            // not contiguous: numpy copies it into C order
            Err(_) => view.as_array().iter().copied().collect(),
        },
        Err(e) => {
            return Err(PyValueError::new_err(format!(
                "{what}: cannot read the array ({e})"
            )));
        }
    };
    Ok((values, shape))
}

/// A vector of `len` floats from a float64 numpy array (any shape with `len` entries is
/// rejected unless it is 1-D) or a list/tuple of numbers; `what` names it in errors.
pub fn vector(value: &Bound<'_, PyAny>, what: &str, len: usize) -> PyResult<Vec<f64>> {
    let values = if value.is_instance_of::<PyUntypedArray>() {
        let (values, shape) = float64_array(value, what)?;
        if shape.len() != 1 {
            return Err(PyValueError::new_err(format!(
                "{what} must be 1-D with {len} entries, got shape {}",
                shape_text(&shape)
            )));
        }
        values
    } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        value
            .extract::<Vec<f64>>()
            .map_err(|_| PyTypeError::new_err(format!("{what} must be a sequence of numbers")))?
    } else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a numpy float64 array or a list of numbers, not a {}",
            value.get_type().name()?
        )));
    };
    if values.len() != len {
        return Err(PyValueError::new_err(format!(
            "{what} must have {len} entries, got {}",
            values.len()
        )));
    }
    Ok(values)
}

/// `rows × cols` row-major values as a 2-D numpy array.
pub fn matrix<'py>(
    py: Python<'py>,
    values: Vec<f64>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, values)
        .reshape([rows, cols])?
        .into_any())
}

/// Values as a 1-D numpy array.
pub fn array1<'py>(py: Python<'py>, values: Vec<f64>) -> Bound<'py, PyAny> {
    PyArray1::from_vec(py, values).into_any()
}
