//! The exception hierarchy of `shmbus` and the mapping from [`shmbus::Error`].
//!
//! Every exception derives from `shmbus.Error`; some also derive from the
//! built-in exception a Python programmer would reach for (`BusNotFound` is a
//! `FileNotFoundError`, `ConfigError` a `ValueError`, ...). They are created
//! once, when `shmbus._native` is imported, with `type(name, bases, dict)`
//! because `pyo3::create_exception!` allows a single base only, and they are
//! re-exported by the `shmbus` package (their `__module__` is `shmbus`).

use pyo3::exceptions::{PyException, PyFileExistsError, PyFileNotFoundError, PyPermissionError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::IntoPyObjectExt;

/// One exception class: name, extra built-in base and docstring.
struct Spec {
    name: &'static str,
    extra_base: Option<fn(Python<'_>) -> Bound<'_, PyType>>,
    doc: &'static str,
}

fn value_error(py: Python<'_>) -> Bound<'_, PyType> {
    py.get_type::<PyValueError>()
}
fn not_found(py: Python<'_>) -> Bound<'_, PyType> {
    py.get_type::<PyFileNotFoundError>()
}
fn exists(py: Python<'_>) -> Bound<'_, PyType> {
    py.get_type::<PyFileExistsError>()
}
fn permission(py: Python<'_>) -> Bound<'_, PyType> {
    py.get_type::<PyPermissionError>()
}

/// Index into [`SPECS`] (and the created classes).
#[derive(Clone, Copy)]
pub(crate) enum Exc {
    BusNotFound = 0,
    BusExists,
    ConfigError,
    FrameTooLarge,
    BusFull,
    Incompatible,
    InvalidName,
    FilterError,
    LimitError,
    BusPermissionError,
    GroupMismatch,
    ProducerConflict,
    Closed,
}

const SPECS: &[Spec] = &[
    Spec {
        name: "BusNotFound",
        extra_base: Some(not_found),
        doc: "No bus with this name exists (`Bus.open`, `Bus.remove`). Attribute `name`.",
    },
    Spec {
        name: "BusExists",
        extra_base: Some(exists),
        doc: "A bus with this name already exists (`Bus.create`). Attribute `name`.",
    },
    Spec {
        name: "ConfigError",
        extra_base: Some(value_error),
        doc: "A configuration value is out of range. Attributes `field` (the keyword argument) and \
              `reason` (the allowed range and the value given).",
    },
    Spec {
        name: "FrameTooLarge",
        extra_base: Some(value_error),
        doc: "A payload is larger than the bus's `max_frame_size`. Attributes `size` and `max`.",
    },
    Spec {
        name: "BusFull",
        extra_base: None,
        doc: "The bus is full and its overflow policy is `reject` or `block` (after the block timeout).",
    },
    Spec {
        name: "Incompatible",
        extra_base: None,
        doc: "The segment is not a shmbus segment of this layout version, or it is corrupt. \
              Attributes `name` and `reason`.",
    },
    Spec {
        name: "InvalidName",
        extra_base: Some(value_error),
        doc: "A bus or group name is not acceptable. Attributes `name` and `reason`.",
    },
    Spec {
        name: "FilterError",
        extra_base: Some(value_error),
        doc: "A topic, topic pattern or regex was rejected; the message names the text and the reason.",
    },
    Spec {
        name: "LimitError",
        extra_base: None,
        doc: "A table in the segment is full (too many subscribers, groups or producers). \
              Attributes `what` and `limit`.",
    },
    Spec {
        name: "BusPermissionError",
        extra_base: Some(permission),
        doc: "The segment's file mode does not let this process in. Attribute `name`.",
    },
    Spec {
        name: "GroupMismatch",
        extra_base: Some(value_error),
        doc: "Joining a consumer group with a filter different from the group's own. \
              Attributes `group`, `existing` and `requested`.",
    },
    Spec {
        name: "ProducerConflict",
        extra_base: None,
        doc: "The bus is single-producer and another producer is active. Attribute `pid`.",
    },
    Spec {
        name: "Closed",
        extra_base: Some(value_error),
        doc: "The bus, subscriber or group member was closed; it cannot be used any more.",
    },
];

struct Classes {
    base: Py<PyType>,
    all: Vec<Py<PyType>>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn make(py: Python<'_>) -> PyResult<Classes> {
    let type_ = py.get_type::<PyType>();
    let new_class = |name: &str, bases: Bound<'_, PyTuple>, doc: &str| -> PyResult<Py<PyType>> {
        let dict = PyDict::new(py);
        dict.set_item("__module__", "shmbus")?;
        dict.set_item("__doc__", doc)?;
        Ok(type_.call1((name, bases, dict))?.cast_into::<PyType>()?.unbind())
    };
    let base = new_class(
        "Error",
        PyTuple::new(py, [py.get_type::<PyException>()])?,
        "Base class of every exception raised by shmbus.",
    )?;
    let mut all = Vec::with_capacity(SPECS.len());
    for spec in SPECS {
        let mut bases = vec![base.bind(py).clone()];
        if let Some(extra) = spec.extra_base {
            bases.push(extra(py));
        }
        all.push(new_class(spec.name, PyTuple::new(py, bases)?, spec.doc)?);
    }
    Ok(Classes { base, all })
}

fn classes(py: Python<'_>) -> &Classes {
    // `register` ran at import time, so this never has to create the classes
    // lazily; but if it does, creating them cannot fail short of memory errors.
    CLASSES.get_or_init(py, || make(py).expect("creating the shmbus exception classes"))
}

/// Create the classes and add them to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let c = match CLASSES.get(py) {
        Some(c) => c,
        None => {
            let made = make(py)?;
            let _ = CLASSES.set(py, made);
            classes(py)
        }
    };
    m.add("Error", c.base.bind(py))?;
    for (spec, class) in SPECS.iter().zip(&c.all) {
        m.add(spec.name, class.bind(py))?;
    }
    Ok(())
}

/// A new exception of class `which` with message `msg` and attributes.
pub(crate) fn new_err(py: Python<'_>, which: Exc, msg: String, attrs: &[(&str, Py<PyAny>)]) -> PyErr {
    let class = classes(py).all[which as usize].bind(py);
    match class.call1((msg,)) {
        Ok(inst) => {
            for (k, v) in attrs {
                if let Err(e) = inst.setattr(*k, v) {
                    return e;
                }
            }
            PyErr::from_value(inst)
        }
        Err(e) => e,
    }
}

/// The error raised when a closed object is used.
pub(crate) fn closed(py: Python<'_>, what: &str) -> PyErr {
    new_err(py, Exc::Closed, format!("{what} is closed"), &[])
}

fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> Py<PyAny> {
    v.into_py_any(py).unwrap_or_else(|_| py.None())
}

/// Map a core error to the matching Python exception.
pub(crate) fn to_py(py: Python<'_>, err: shmbus::Error) -> PyErr {
    use shmbus::Error as E;
    let msg = err.to_string();
    match err {
        E::NotFound { name } => new_err(py, Exc::BusNotFound, msg, &[("name", obj(py, name))]),
        E::Exists { name } => new_err(py, Exc::BusExists, msg, &[("name", obj(py, name))]),
        E::Config { field, reason } => new_err(
            py,
            Exc::ConfigError,
            msg,
            &[("field", obj(py, field)), ("reason", obj(py, reason))],
        ),
        E::TooLarge { size, max } => new_err(
            py,
            Exc::FrameTooLarge,
            msg,
            &[("size", obj(py, size)), ("max", obj(py, max))],
        ),
        E::Full => new_err(py, Exc::BusFull, msg, &[]),
        E::Incompatible { name, reason } => new_err(
            py,
            Exc::Incompatible,
            msg,
            &[("name", obj(py, name)), ("reason", obj(py, reason))],
        ),
        E::InvalidName { name, reason } => new_err(
            py,
            Exc::InvalidName,
            msg,
            &[("name", obj(py, name)), ("reason", obj(py, reason))],
        ),
        E::Filter(_) => new_err(py, Exc::FilterError, msg, &[]),
        E::Limit { what, limit } => new_err(
            py,
            Exc::LimitError,
            msg,
            &[("what", obj(py, what)), ("limit", obj(py, limit))],
        ),
        E::PermissionDenied { name } => new_err(py, Exc::BusPermissionError, msg, &[("name", obj(py, name))]),
        E::GroupFilterMismatch {
            group,
            existing,
            requested,
        } => new_err(
            py,
            Exc::GroupMismatch,
            msg,
            &[
                ("group", obj(py, group)),
                ("existing", obj(py, existing)),
                ("requested", obj(py, requested)),
            ],
        ),
        E::ProducerConflict { pid } => new_err(py, Exc::ProducerConflict, msg, &[("pid", obj(py, pid))]),
        _ => PyErr::from_value(
            classes(py)
                .base
                .bind(py)
                .call1((msg,))
                .unwrap_or_else(|e| e.into_value(py).into_bound(py).into_any()),
        ),
    }
}

/// A `ConfigError` raised by the bindings themselves (argument checks).
pub(crate) fn config_err(py: Python<'_>, field: &str, reason: String) -> PyErr {
    let msg = format!("invalid config: {field} {reason}");
    new_err(
        py,
        Exc::ConfigError,
        msg,
        &[("field", obj(py, field)), ("reason", obj(py, reason))],
    )
}
