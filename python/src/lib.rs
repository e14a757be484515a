//! `shmbus._native`: the Rust extension module behind the `shmbus` Python
//! package. Everything here is re-exported by `shmbus/__init__.py`; see that
//! package (and `shmbus/_native.pyi`) for the Python-facing documentation.

use pyo3::prelude::*;

mod bus;
mod errors;
mod message;
mod subscriber;

/// The compiled part of shmbus: `Bus`, `Subscriber`, `Message` and the exceptions.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_TOPIC_LEN", shmbus::frame::MAX_TOPIC_LEN)?;
    m.add("MAX_NAME_LEN", shmbus::MAX_NAME_LEN)?;
    m.add_class::<bus::PyBus>()?;
    m.add_class::<subscriber::Subscriber>()?;
    m.add_class::<message::Message>()?;
    errors::register(m)?;
    Ok(())
}
