//! `shmbus.Message`: one received frame, copied out of the segment.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict};
use shmbus::{EventType, Frame, Kind};

/// A frame copied out of shared memory while holding no GIL (the slow path
/// of `recv`); turned into a [`Message`] once the GIL is back.
pub(crate) struct Owned {
    topic: String,
    payload: Vec<u8>,
    meta: Meta,
}

#[derive(Clone, Copy)]
struct Meta {
    seq: u64,
    timestamp_ns: u64,
    kind: Kind,
    event_type: EventType,
    correlation_id: u128,
    parent_id: u128,
    root_id: u128,
    producer: u32,
}

impl Meta {
    fn of(f: &Frame<'_>) -> Meta {
        let c = f.correlation();
        Meta {
            seq: f.seq(),
            timestamp_ns: f.timestamp(),
            kind: f.kind(),
            event_type: f.event_type(),
            correlation_id: c.id,
            parent_id: c.parent,
            root_id: c.root,
            producer: f.producer(),
        }
    }
}

impl Owned {
    pub(crate) fn of(f: &Frame<'_>) -> Owned {
        Owned {
            topic: f.topic().to_owned(),
            payload: f.payload().to_vec(),
            meta: Meta::of(f),
        }
    }

    pub(crate) fn into_message(self, py: Python<'_>) -> PyResult<Py<Message>> {
        Py::new(
            py,
            Message {
                topic: self.topic,
                payload: PyBytes::new(py, &self.payload).unbind(),
                meta: self.meta,
            },
        )
    }
}

/// A message received from a bus.
///
/// Every field is a copy: the message stays valid after the subscriber moves
/// on or is closed. `topic` is a `str`, `payload` `bytes`, `seq` the bus-wide
/// sequence number, `timestamp` the publish time in float seconds since the
/// Unix epoch (`timestamp_ns`: integer nanoseconds), `kind` and `event_type`
/// plain lower-case strings, `correlation_id`/`parent_id`/`root_id` a
/// `uuid.UUID` or `None`, `producer` the publisher's pid.
#[pyclass(module = "shmbus", name = "Message", frozen)]
pub struct Message {
    topic: String,
    payload: Py<PyBytes>,
    meta: Meta,
}

static UUID: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn uuid_or_none(py: Python<'_>, id: u128) -> PyResult<Py<PyAny>> {
    if id == 0 {
        return Ok(py.None());
    }
    let class = UUID.get_or_try_init(py, || -> PyResult<_> {
        Ok(py.import("uuid")?.getattr("UUID")?.unbind())
    })?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("int", id)?;
    Ok(class.bind(py).call((), Some(&kwargs))?.unbind())
}

impl Message {
    /// Build a message straight from a frame (the fast path, GIL held).
    pub(crate) fn from_frame(py: Python<'_>, f: &Frame<'_>) -> PyResult<Py<Message>> {
        Py::new(
            py,
            Message {
                topic: f.topic().to_owned(),
                payload: PyBytes::new(py, f.payload()).unbind(),
                meta: Meta::of(f),
            },
        )
    }
}

#[pymethods]
impl Message {
    /// The topic the message was published to.
    #[getter]
    fn topic(&self) -> &str {
        &self.topic
    }
    /// The payload, as `bytes`.
    #[getter]
    fn payload(&self, py: Python<'_>) -> Py<PyBytes> {
        self.payload.clone_ref(py)
    }
    /// Bus-wide sequence number (increases by one per published frame).
    #[getter]
    fn seq(&self) -> u64 {
        self.meta.seq
    }
    /// Publish time in seconds since the Unix epoch (float, as `time.time()`).
    #[getter]
    fn timestamp(&self) -> f64 {
        self.meta.timestamp_ns as f64 / 1e9
    }
    /// Publish time in integer nanoseconds since the Unix epoch (as `time.time_ns()`).
    #[getter]
    fn timestamp_ns(&self) -> u64 {
        self.meta.timestamp_ns
    }
    /// What the frame carries: `"event"`, `"log"`, `"alert"` or `"control"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.meta.kind.as_str()
    }
    /// Event type: `"new"`, `"update"`, `"delete"` or `"other"`.
    #[getter]
    fn event_type(&self) -> &'static str {
        self.meta.event_type.as_str()
    }
    /// Correlation id as a `uuid.UUID`, or `None` if the frame has none.
    #[getter]
    fn correlation_id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        uuid_or_none(py, self.meta.correlation_id)
    }
    /// Parent id as a `uuid.UUID`, or `None`.
    #[getter]
    fn parent_id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        uuid_or_none(py, self.meta.parent_id)
    }
    /// Root id as a `uuid.UUID`, or `None`.
    #[getter]
    fn root_id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        uuid_or_none(py, self.meta.root_id)
    }
    /// Process id of the publisher.
    #[getter]
    fn producer(&self) -> u32 {
        self.meta.producer
    }
    /// The payload decoded as UTF-8 text (raises `UnicodeDecodeError` if it is not).
    #[getter]
    fn text(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.payload.bind(py).call_method1("decode", ("utf-8",))?.unbind())
    }
    /// The payload decoded as JSON (`json.loads`); raises `json.JSONDecodeError`
    /// (a `ValueError`) if it is not JSON.
    fn json(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let loads = JSON_LOADS.get_or_try_init(py, || -> PyResult<_> {
            Ok(py.import("json")?.getattr("loads")?.unbind())
        })?;
        Ok(loads.bind(py).call1((self.payload.bind(py),))?.unbind())
    }
    fn __len__(&self, py: Python<'_>) -> usize {
        self.payload.bind(py).as_bytes().len()
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let payload = self.payload.bind(py);
        let shown = if payload.as_bytes().len() > 60 {
            let head = PyBytes::new(py, &payload.as_bytes()[..60]);
            format!("{}...", head.repr()?)
        } else {
            payload.repr()?.to_string()
        };
        Ok(format!(
            "Message(seq={}, topic={:?}, kind={:?}, event_type={:?}, payload={})",
            self.meta.seq,
            self.topic,
            self.meta.kind.as_str(),
            self.meta.event_type.as_str(),
            shown
        ))
    }
}
