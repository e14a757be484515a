//! `shmbus.Bus`: create/open/remove a bus, publish, subscribe, stats.

use std::cell::RefCell;
use std::sync::{RwLock, RwLockReadGuard};
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString};
use shmbus::{Bus, Config, EventType, Filter, Kind, Meta, Overflow, Start, SubscribeOptions, WaitStrategy};

use crate::errors::{closed, config_err, to_py};
use crate::subscriber::Subscriber;

/// A handle on a bus: one shared-memory segment under `/dev/shm`.
///
/// Get one with `Bus.create(name, **config)`, `Bus.open(name)` or
/// `Bus.open_or_create(name, **config)`. A bus is safe to share between
/// threads; `publish` never blocks with the default `overflow="evict"`.
/// Use it as a context manager (or call `close()`) to release it; closing a
/// bus does not remove it (see `Bus.remove`) and does not close subscribers
/// made from it.
#[pyclass(module = "shmbus", name = "Bus", frozen)]
pub struct PyBus {
    inner: RwLock<Option<Bus>>,
    name: String,
    /// Publishing may wait (overflow "block"): release the GIL while publishing.
    may_block: bool,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// The keyword arguments of `Bus.create`/`Bus.open_or_create` (None: the
/// default).
#[derive(Default)]
struct ConfigArgs {
    memory_limit: Option<i128>,
    keep_ratio: Option<f64>,
    max_frame_size: Option<i128>,
    listener_limit: Option<i128>,
    producer_limit: Option<i128>,
    overflow: Option<String>,
    block_timeout: Option<f64>,
    mode: Option<i128>,
    claim_timeout: Option<f64>,
    checksum: Option<bool>,
    single_producer: Option<bool>,
}

impl ConfigArgs {
    /// Parse `**config` (both constructors take `**config`, with the keyword
    /// list shown by `inspect.signature` set through `text_signature`): unknown keywords and wrong types raise `TypeError`
    /// naming the keyword, like a Python signature would.
    fn from_kwargs(config: Option<&Bound<'_, PyDict>>) -> PyResult<ConfigArgs> {
        fn get<'py, T: FromPyObjectOwned<'py>>(key: &str, v: &Bound<'py, PyAny>) -> PyResult<Option<T>> {
            if v.is_none() {
                return Ok(None);
            }
            v.extract::<T>().map(Some).map_err(|e| {
                let e: PyErr = e.into();
                PyTypeError::new_err(format!("argument '{key}': {}", e.value(v.py())))
            })
        }
        let mut a = ConfigArgs::default();
        let Some(config) = config else { return Ok(a) };
        for (k, v) in config.iter() {
            let key: String = k.extract()?;
            match key.as_str() {
                "memory_limit" => a.memory_limit = get(&key, &v)?,
                "keep_ratio" => a.keep_ratio = get(&key, &v)?,
                "max_frame_size" => a.max_frame_size = get(&key, &v)?,
                "listener_limit" => a.listener_limit = get(&key, &v)?,
                "producer_limit" => a.producer_limit = get(&key, &v)?,
                "overflow" => a.overflow = get(&key, &v)?,
                "block_timeout" => a.block_timeout = get(&key, &v)?,
                "mode" => a.mode = get(&key, &v)?,
                "claim_timeout" => a.claim_timeout = get(&key, &v)?,
                "checksum" => a.checksum = get(&key, &v)?,
                "single_producer" => a.single_producer = get(&key, &v)?,
                other => return Err(PyTypeError::new_err(format!("unexpected keyword argument '{other}'"))),
            }
        }
        Ok(a)
    }
}

/// The `Config` of `args`, checked one by one so a bad value raises
/// `ConfigError` naming the field and its range.
fn build_config(py: Python<'_>, args: ConfigArgs) -> PyResult<Config> {
    let ConfigArgs {
        memory_limit,
        keep_ratio,
        max_frame_size,
        listener_limit,
        producer_limit,
        overflow,
        block_timeout,
        mode,
        claim_timeout,
        checksum,
        single_producer,
    } = args;
    let mut cfg = Config::default();
    let int = |field: &str, v: i128, max: u64| -> PyResult<u64> {
        if v < 0 || v > max as i128 {
            return Err(config_err(py, field, format!("must be in 0..={max}, got {v}")));
        }
        Ok(v as u64)
    };
    let secs = |field: &str, v: f64| -> PyResult<Duration> {
        Duration::try_from_secs_f64(v)
            .map_err(|_| config_err(py, field, format!("must be a non-negative number of seconds, got {v}")))
    };
    if let Some(v) = memory_limit {
        cfg = cfg.memory_limit(int("memory_limit", v, u64::MAX)?);
    }
    if let Some(v) = keep_ratio {
        cfg = cfg.keep_ratio(v);
    }
    if let Some(v) = max_frame_size {
        cfg = cfg.max_frame_size(int("max_frame_size", v, u32::MAX as u64)? as u32);
    }
    if let Some(v) = listener_limit {
        cfg = cfg.listener_limit(int("listener_limit", v, u32::MAX as u64)? as u32);
    }
    if let Some(v) = producer_limit {
        cfg = cfg.producer_limit(int("producer_limit", v, u32::MAX as u64)? as u32);
    }
    if let Some(v) = mode {
        cfg = cfg.mode(int("mode", v, u32::MAX as u64)? as u32);
    }
    if let Some(v) = claim_timeout {
        cfg = cfg.claim_timeout(secs("claim_timeout", v)?);
    }
    if let Some(v) = checksum {
        cfg = cfg.checksum(v);
    }
    if let Some(v) = single_producer {
        cfg = cfg.single_producer(v);
    }
    let block = match block_timeout {
        Some(t) => Some(secs("block_timeout", t)?),
        None => None,
    };
    let overflow = match (overflow.as_deref().unwrap_or("evict"), block) {
        ("evict", None) => Overflow::Evict,
        ("reject", None) => Overflow::Reject,
        ("block", t) => Overflow::Block(t.unwrap_or(Duration::from_secs(1))),
        ("evict" | "reject", Some(_)) => {
            return Err(config_err(
                py,
                "block_timeout",
                "only applies with overflow=\"block\"".to_owned(),
            ))
        }
        (other, _) => {
            return Err(config_err(
                py,
                "overflow",
                format!("must be \"evict\", \"reject\" or \"block\", got {other:?}"),
            ))
        }
    };
    cfg = cfg.overflow(overflow);
    cfg.validate().map_err(|e| to_py(py, e))?;
    Ok(cfg)
}

thread_local! {
    /// The last topic this thread published to, and its UTF-8 text. A loop
    /// publishing to the same `str` object skips the UTF-8 conversion (which
    /// allocates under the stable ABI of Python 3.9). Holding a reference
    /// keeps the object alive, so its address identifies it.
    static LAST_TOPIC: RefCell<Option<(Py<PyString>, String)>> = const { RefCell::new(None) };
}

/// The text of `topic`, handed to `f`.
fn with_topic<R>(topic: &Bound<'_, PyString>, f: impl FnOnce(&str) -> PyResult<R>) -> PyResult<R> {
    LAST_TOPIC.with(|cache| {
        if let Ok(cached) = cache.try_borrow() {
            if let Some((obj, text)) = cached.as_ref() {
                if obj.as_ptr() == topic.as_ptr() {
                    return f(text);
                }
            }
        }
        let text = topic.to_cow()?.into_owned();
        let r = f(&text);
        if let Ok(mut slot) = cache.try_borrow_mut() {
            *slot = Some((topic.clone().unbind(), text));
        }
        r
    })
}

/// `bytes`, `bytearray`, `memoryview` or `str` (UTF-8) as bytes, handed to `f`.
pub(crate) fn with_payload<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_cow()?;
        return Ok(f(text.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(f(&b.to_vec()));
    }
    if obj.cast::<PyMemoryView>().is_ok() {
        let bytes = obj.call_method0("tobytes")?;
        let bytes = bytes.cast::<PyBytes>()?;
        return Ok(f(bytes.as_bytes()));
    }
    Err(PyTypeError::new_err(format!(
        "payload must be bytes, bytearray, memoryview or str, not {}",
        obj.get_type().name()?
    )))
}

/// Payloads `Bus.publish_many` takes per call of the core `publish_many`.
const PUBLISH_MANY_GROUP: usize = 1024;

/// A payload held for a `publish_many` group: a `bytes` object as is (its
/// buffer is immutable and outlives the group), anything else copied.
enum HeldPayload<'py> {
    Bytes(Bound<'py, PyBytes>),
    Owned(Vec<u8>),
}

impl<'py> HeldPayload<'py> {
    fn new(obj: &Bound<'py, PyAny>) -> PyResult<HeldPayload<'py>> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(HeldPayload::Bytes(b.clone()));
        }
        with_payload(obj, |b| HeldPayload::Owned(b.to_vec()))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            HeldPayload::Bytes(b) => b.as_bytes(),
            HeldPayload::Owned(v) => v,
        }
    }
}

/// A correlation id: `uuid.UUID`, a non-negative int below 2**128, or None (0).
pub(crate) fn id_arg(name: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<u128> {
    let Some(obj) = obj else { return Ok(0) };
    if obj.is_none() {
        return Ok(0);
    }
    let int_obj = if obj.hasattr("int")? && !obj.is_instance_of::<pyo3::types::PyInt>() {
        obj.getattr("int")?
    } else {
        obj.clone()
    };
    if !int_obj.is_instance_of::<pyo3::types::PyInt>() || obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a uuid.UUID, an int or None, not {}",
            obj.get_type().name()?
        )));
    }
    int_obj
        .extract::<u128>()
        .map_err(|_| PyValueError::new_err(format!("{name} must be in 0..2**128")))
}

/// A plain lower-case name from a `str` (or a `str` enum, whose value is used).
fn name_arg(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{name} must be a str, not {}",
            obj.get_type().name()?
        ))),
    }
}

pub(crate) fn meta_args(
    kind: Option<&Bound<'_, PyAny>>,
    event_type: Option<&Bound<'_, PyAny>>,
    correlation_id: Option<&Bound<'_, PyAny>>,
    parent_id: Option<&Bound<'_, PyAny>>,
    root_id: Option<&Bound<'_, PyAny>>,
) -> PyResult<Meta> {
    let mut meta = Meta::default();
    if kind.is_none() && event_type.is_none() && correlation_id.is_none() && parent_id.is_none() && root_id.is_none() {
        return Ok(meta);
    }
    if let Some(k) = kind.filter(|k| !k.is_none()) {
        let k = name_arg("kind", k)?;
        meta.kind = Kind::parse(&k).ok_or_else(|| {
            PyValueError::new_err(format!(
                "kind must be \"event\", \"log\", \"alert\" or \"control\", got {k:?}"
            ))
        })?;
    }
    if let Some(e) = event_type.filter(|e| !e.is_none()) {
        let e = name_arg("event_type", e)?;
        meta.event_type = EventType::parse(&e).ok_or_else(|| {
            PyValueError::new_err(format!(
                "event_type must be \"new\", \"update\", \"delete\" or \"other\", got {e:?}"
            ))
        })?;
    }
    meta.correlation.id = id_arg("correlation_id", correlation_id)?;
    meta.correlation.parent = id_arg("parent_id", parent_id)?;
    meta.correlation.root = id_arg("root_id", root_id)?;
    Ok(meta)
}

/// The filter of `subscribe`/`join_group`: every given criterion must match.
pub(crate) fn filter_args(
    pattern: Option<&str>,
    regex: Option<&str>,
    root_id: Option<&Bound<'_, PyAny>>,
) -> PyResult<Filter> {
    let mut parts = Vec::new();
    if let Some(p) = pattern {
        parts.push(Filter::topic(p));
    }
    if let Some(r) = regex {
        parts.push(Filter::regex(r));
    }
    if root_id.is_some_and(|r| !r.is_none()) {
        parts.push(Filter::root_id(id_arg("root_id", root_id)?));
    }
    let mut it = parts.into_iter();
    Ok(match it.next() {
        None => Filter::all(),
        Some(first) => it.fold(first, Filter::and),
    })
}

pub(crate) fn start_arg(from: Option<&Bound<'_, PyAny>>) -> PyResult<Start> {
    let Some(from) = from.filter(|f| !f.is_none()) else {
        return Ok(Start::Newest);
    };
    if let Ok(s) = from.cast::<PyString>() {
        return match &*s.to_cow()? {
            "newest" => Ok(Start::Newest),
            "oldest" => Ok(Start::Oldest),
            other => Err(PyValueError::new_err(format!(
                "from_ must be \"newest\", \"oldest\" or a seq (int >= 0), got {other:?}"
            ))),
        };
    }
    if from.is_instance_of::<pyo3::types::PyInt>() && !from.is_instance_of::<pyo3::types::PyBool>() {
        return from
            .extract::<u64>()
            .map(Start::Seq)
            .map_err(|_| PyValueError::new_err("from_ seq must be an int in 0..2**64"));
    }
    Err(PyTypeError::new_err(format!(
        "from_ must be \"newest\", \"oldest\" or an int seq, not {}",
        from.get_type().name()?
    )))
}

pub(crate) fn wait_arg(wait: Option<&str>, spin_us: Option<f64>) -> PyResult<WaitStrategy> {
    let budget = match spin_us {
        None => Duration::from_micros(50),
        Some(us) => Duration::try_from_secs_f64(us / 1e6)
            .map_err(|_| PyValueError::new_err(format!("spin_us must be a non-negative number, got {us}")))?,
    };
    match wait.unwrap_or("spin_then_park") {
        "spin_then_park" => Ok(WaitStrategy::SpinThenPark(budget)),
        "spin" => Ok(WaitStrategy::Spin),
        "park" => Ok(WaitStrategy::Park),
        other => Err(PyValueError::new_err(format!(
            "wait must be \"spin_then_park\", \"spin\" or \"park\", got {other:?}"
        ))),
    }
}

/// A new `dict` holding `key => value` pairs, in order (`?` on every insert).
macro_rules! py_dict {
    ($py:expr, { $($key:literal => $value:expr),* $(,)? }) => {{
        let d = PyDict::new($py);
        $(d.set_item($key, $value)?;)*
        d
    }};
}

impl PyBus {
    fn wrap(bus: Bus) -> PyBus {
        let may_block = matches!(bus.config().get_overflow(), Overflow::Block(_));
        PyBus {
            name: bus.name().to_owned(),
            inner: RwLock::new(Some(bus)),
            may_block,
        }
    }

    fn with_bus<R>(&self, py: Python<'_>, f: impl FnOnce(&Bus) -> PyResult<R>) -> PyResult<R> {
        let guard = read(&self.inner);
        match guard.as_ref() {
            Some(bus) => f(bus),
            None => Err(closed(py, &format!("Bus({:?})", self.name))),
        }
    }

    /// A `Subscriber` made by `open` (subscribe, or join a group) on the bus
    /// with `filter` and `opts`, outside the GIL.
    fn new_subscriber(
        &self,
        py: Python<'_>,
        filter: Filter,
        opts: SubscribeOptions,
        open: impl FnOnce(&Bus, Filter, SubscribeOptions) -> shmbus::Result<shmbus::Subscriber> + Send,
    ) -> PyResult<Subscriber> {
        let summary = filter.to_string();
        let sub = self.with_bus(py, |bus| {
            py.detach(|| open(bus, filter, opts)).map_err(|e| to_py(py, e))
        })?;
        Ok(Subscriber::new(sub, self.name.clone(), summary))
    }

    fn publish_bytes(&self, py: Python<'_>, bus: &Bus, meta: &Meta, topic: &str, payload: &[u8]) -> PyResult<u64> {
        let r = if self.may_block {
            py.detach(|| bus.publish_with(meta, topic, payload))
        } else {
            bus.publish_with(meta, topic, payload)
        };
        r.map_err(|e| to_py(py, e))
    }
}

#[pymethods]
impl PyBus {
    /// Create bus `name`; raises `BusExists` if it exists, `ConfigError`
    /// (naming the field and its range) if a setting is out of range.
    ///
    /// Settings: `memory_limit` (bytes, default 64 MiB), `keep_ratio` (in
    /// (0, 1), default 0.9: the share of data an eviction keeps),
    /// `max_frame_size` (bytes, default 64 KiB), `listener_limit` (default
    /// 64), `producer_limit` (default 128), `overflow` (`"evict"`, the
    /// default, `"reject"` or `"block"`), `block_timeout` (seconds, with
    /// `overflow="block"`), `mode` (default `0o600`), `claim_timeout`
    /// (seconds), `checksum` and `single_producer` (bools).
    #[staticmethod]
    #[pyo3(signature = (name, **config), text_signature = "(name, *, memory_limit=None, keep_ratio=None, max_frame_size=None, listener_limit=None, producer_limit=None, overflow=None, block_timeout=None, mode=None, claim_timeout=None, checksum=None, single_producer=None)")]
    fn create(py: Python<'_>, name: String, config: Option<&Bound<'_, PyDict>>) -> PyResult<PyBus> {
        let cfg = build_config(py, ConfigArgs::from_kwargs(config)?)?;
        py.detach(|| Bus::create(&name, &cfg))
            .map(PyBus::wrap)
            .map_err(|e| to_py(py, e))
    }

    /// Open bus `name`, creating it with these settings (see `create`) if it
    /// does not exist. An existing bus keeps its own settings.
    #[staticmethod]
    #[pyo3(signature = (name, **config), text_signature = "(name, *, memory_limit=None, keep_ratio=None, max_frame_size=None, listener_limit=None, producer_limit=None, overflow=None, block_timeout=None, mode=None, claim_timeout=None, checksum=None, single_producer=None)")]
    fn open_or_create(py: Python<'_>, name: String, config: Option<&Bound<'_, PyDict>>) -> PyResult<PyBus> {
        let cfg = build_config(py, ConfigArgs::from_kwargs(config)?)?;
        py.detach(|| Bus::open_or_create(&name, &cfg))
            .map(PyBus::wrap)
            .map_err(|e| to_py(py, e))
    }

    /// Open the existing bus `name`; raises `BusNotFound` if there is none.
    #[staticmethod]
    fn open(py: Python<'_>, name: String) -> PyResult<PyBus> {
        py.detach(|| Bus::open(&name))
            .map(PyBus::wrap)
            .map_err(|e| to_py(py, e))
    }

    /// Remove bus `name` (its segment under `/dev/shm`); raises `BusNotFound`
    /// if there is none. Processes that have it open keep using it until they
    /// close it.
    #[staticmethod]
    fn remove(py: Python<'_>, name: String) -> PyResult<()> {
        Bus::remove(&name).map_err(|e| to_py(py, e))
    }

    /// Names of every bus on this machine.
    #[staticmethod]
    fn list(py: Python<'_>) -> PyResult<Vec<String>> {
        Bus::list().map_err(|e| to_py(py, e))
    }

    /// The bus name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        read(&self.inner).is_none()
    }

    /// Publish `payload` (`bytes`, `bytearray`, `memoryview` or `str`, sent as
    /// UTF-8) to `topic`; returns its seq.
    ///
    /// Optional metadata: `kind` (`"event"`, the default, `"log"`, `"alert"`,
    /// `"control"`), `event_type` (`"new"`, `"update"`, `"delete"`,
    /// `"other"`), `correlation_id`, `parent_id`, `root_id` (`uuid.UUID` or
    /// int). Raises `FilterError` for a malformed topic, `FrameTooLarge`,
    /// and `BusFull` with `overflow="reject"`/`"block"`.
    #[pyo3(signature = (topic, payload, *, kind=None, event_type=None, correlation_id=None, parent_id=None,
        root_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyString>,
        payload: &Bound<'_, PyAny>,
        kind: Option<&Bound<'_, PyAny>>,
        event_type: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
        root_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let meta = meta_args(kind, event_type, correlation_id, parent_id, root_id)?;
        self.with_bus(py, |bus| {
            with_topic(topic, |topic| {
                with_payload(payload, |bytes| self.publish_bytes(py, bus, &meta, topic, bytes))?
            })
        })
    }

    /// Publish every payload of the iterable `payloads` to `topic` (same
    /// metadata for all), in order, in one call; returns the seq of the last
    /// one, or None if `payloads` was empty. Much faster than a Python loop
    /// over `publish` for small frames: the payloads go to the bus in groups
    /// of up to 1024 with `Bus::publish_many` (each group's payloads are
    /// checked before any of it is published; a payload of the wrong type
    /// or too large raises, and the groups before it stay published).
    #[pyo3(signature = (topic, payloads, *, kind=None, event_type=None, correlation_id=None, parent_id=None,
        root_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn publish_many(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyString>,
        payloads: &Bound<'_, PyAny>,
        kind: Option<&Bound<'_, PyAny>>,
        event_type: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
        root_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<u64>> {
        let meta = meta_args(kind, event_type, correlation_id, parent_id, root_id)?;
        let topic = topic.to_cow()?;
        self.with_bus(py, |bus| {
            let mut last = None;
            let mut group = Vec::with_capacity(PUBLISH_MANY_GROUP);
            let mut items = payloads.try_iter()?;
            loop {
                group.clear();
                for item in items.by_ref().take(PUBLISH_MANY_GROUP) {
                    group.push(HeldPayload::new(&item?)?);
                }
                if group.is_empty() {
                    return Ok(last);
                }
                let views: Vec<&[u8]> = group.iter().map(HeldPayload::bytes).collect();
                let r = if self.may_block {
                    py.detach(|| bus.publish_many_with(&meta, &topic, &views))
                } else {
                    bus.publish_many_with(&meta, &topic, &views)
                };
                last = r.map_err(|e| to_py(py, e))?.or(last);
            }
        })
    }

    /// Subscribe to frames whose topic matches `pattern` (MQTT-style, `.`
    /// separated: `+` one level, `#` any trailing levels), and/or whose topic
    /// matches `regex` (Python `re.match` semantics: anchored at the start
    /// only), and/or whose `root_id` equals `root_id`. All given criteria
    /// must match; with none, every frame matches.
    ///
    /// `from_` is `"newest"` (default: only frames published from now on),
    /// `"oldest"` (the oldest frame still retained) or a seq. `wait` is how
    /// `recv` waits: `"spin_then_park"` (default; spin `spin_us`
    /// microseconds, default 50, then sleep on a futex), `"spin"` (lowest
    /// latency, burns a core) or `"park"`.
    #[pyo3(signature = (pattern=None, *, regex=None, root_id=None, from_=None, wait=None, spin_us=None))]
    #[allow(clippy::too_many_arguments)]
    fn subscribe(
        &self,
        py: Python<'_>,
        pattern: Option<String>,
        regex: Option<String>,
        root_id: Option<&Bound<'_, PyAny>>,
        from_: Option<&Bound<'_, PyAny>>,
        wait: Option<String>,
        spin_us: Option<f64>,
    ) -> PyResult<Subscriber> {
        let filter = filter_args(pattern.as_deref(), regex.as_deref(), root_id)?;
        let opts = SubscribeOptions {
            start: start_arg(from_)?,
            wait: wait_arg(wait.as_deref(), spin_us)?,
        };
        self.new_subscriber(py, filter, opts, |bus, filter, opts| bus.subscribe_with(filter, opts))
    }

    /// Join (creating it if needed) the consumer group `group`: each frame is
    /// delivered to exactly one member, across processes (competing
    /// consumers). Filter arguments as in `subscribe`; every member must use
    /// the same filter (else `GroupMismatch`). `from_` only applies when this
    /// call creates the group (`"newest"` by default; `"oldest"` makes the
    /// group take the frames still retained). Groups persist while the bus
    /// exists, like a named queue.
    #[pyo3(signature = (group, pattern=None, *, regex=None, root_id=None, from_=None, wait=None, spin_us=None))]
    #[allow(clippy::too_many_arguments)]
    fn join_group(
        &self,
        py: Python<'_>,
        group: String,
        pattern: Option<String>,
        regex: Option<String>,
        root_id: Option<&Bound<'_, PyAny>>,
        from_: Option<&Bound<'_, PyAny>>,
        wait: Option<String>,
        spin_us: Option<f64>,
    ) -> PyResult<Subscriber> {
        let filter = filter_args(pattern.as_deref(), regex.as_deref(), root_id)?;
        let start = start_arg(from_)?;
        if let Start::Seq(_) = start {
            return Err(PyValueError::new_err(
                "join_group: from_ must be \"newest\" or \"oldest\" (a group cursor is shared)",
            ));
        }
        let opts = SubscribeOptions {
            start,
            wait: wait_arg(wait.as_deref(), spin_us)?,
        };
        self.new_subscriber(py, filter, opts, |bus, filter, opts| {
            bus.join_group_with(&group, filter, opts)
        })
    }

    /// A snapshot of the bus as a dict: counters (`published`, `claimed`,
    /// `evicted`, `rejected`, `aborted`, `abandoned`), geometry
    /// (`bytes_used`, `data_capacity`, `memory_limit`, `keep_ratio`,
    /// `partitions`, `oldest_seq`, `next_seq`) and lists of dicts for
    /// `subscribers`, `groups` and `producers`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.with_bus(py, |bus| Ok(py.detach(|| bus.stats())))?;
        let subscribers = PyList::empty(py);
        for r in &s.subscribers {
            subscribers.append(py_dict!(py, {
                "pid" => r.pid,
                "alive" => r.alive,
                "group" => r.group.as_deref(),
                "filter" => &r.filter,
                "position" => r.position,
                "next_seq" => r.next_seq,
                "lag_frames" => r.lag_frames,
                "lag_bytes" => r.lag_bytes,
                "delivered" => r.delivered,
                "missed" => r.missed,
                "abandoned" => r.abandoned,
            }))?;
        }
        let groups = PyList::empty(py);
        for g in &s.groups {
            groups.append(py_dict!(py, {
                "name" => &g.name,
                "filter" => &g.filter,
                "members" => g.members,
                "position" => g.position,
                "next_seq" => g.next_seq,
                "delivered" => g.delivered,
                "missed" => g.missed,
            }))?;
        }
        let producers = PyList::empty(py);
        for p in &s.producers {
            producers.append(py_dict!(py, { "pid" => p.pid, "published" => p.published }))?;
        }
        let d = py_dict!(py, {
            "name" => &s.name,
            "published" => s.published,
            "claimed" => s.claimed,
            "evicted" => s.evicted,
            "rejected" => s.rejected,
            "aborted" => s.aborted,
            "abandoned" => s.abandoned,
            "bytes_used" => s.bytes_used,
            "data_capacity" => s.data_capacity,
            "memory_limit" => s.memory_limit,
            "keep_ratio" => s.keep_ratio,
            "partitions" => s.partitions,
            "oldest_seq" => s.oldest_seq,
            "next_seq" => s.next_seq,
            "subscribers" => subscribers,
            "groups" => groups,
            "producers" => producers,
        });
        Ok(d)
    }

    /// Reclaim subscriber and producer entries of dead processes now (also
    /// done lazily); returns how many subscriber entries were freed.
    fn reap(&self, py: Python<'_>) -> PyResult<usize> {
        self.with_bus(py, |bus| Ok(bus.reap()))
    }

    /// Release this handle (idempotent). Using the bus afterwards raises
    /// `shmbus.Closed`. The segment stays: see `Bus.remove`.
    fn close(&self) {
        let bus = self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(bus);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<shmbus.Bus {:?}{state}>", self.name)
    }
}
