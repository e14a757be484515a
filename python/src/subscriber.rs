//! `shmbus.Subscriber`: a broadcast subscription or a consumer-group member.
//!
//! The core `Subscriber` needs `&mut` to receive, so it lives in a `Mutex`;
//! the pyclass is `frozen` and can be used from any thread (an `aiter` waits
//! in an executor thread). Receiving first tries the ring while holding the
//! GIL (no allocation beyond the message itself); only when nothing is ready
//! does it release the GIL and wait in slices of [`SLICE`], checking for
//! signals (Ctrl-C) between slices. The mutex is never held while the GIL is
//! being acquired, so the two locks cannot deadlock.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::errors::{closed, to_py};
use crate::message::{Message, Owned};

/// Longest wait without checking for signals or a closed subscriber.
const SLICE: Duration = Duration::from_millis(50);

struct State {
    sub: Option<shmbus::Subscriber>,
    /// A message received by `_wait` and not yet handed out.
    stash: Option<Owned>,
}

enum Got {
    Msg(Owned),
    Nothing,
    Closed,
    Err(shmbus::Error),
}

/// A subscription to a bus, or a member of a consumer group.
///
/// Made by `Bus.subscribe(...)` or `Bus.join_group(...)`. Receive with
/// `recv(timeout)`, `try_recv()`, `recv_many(n)`, by iterating (blocking;
/// Ctrl-C interrupts it) or with `async for msg in sub.aiter()`. Waiting
/// releases the GIL. Use it as a context manager (or call `close()`) to
/// leave the bus; using it afterwards raises `shmbus.Closed`.
#[pyclass(module = "shmbus", name = "Subscriber", frozen)]
pub struct Subscriber {
    state: Mutex<State>,
    bus_name: String,
    filter: String,
    group: Option<String>,
}

fn parse_timeout(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) => Duration::try_from_secs_f64(t)
            .map(Some)
            .map_err(|_| PyValueError::new_err(format!("timeout must be a non-negative number of seconds, got {t}"))),
    }
}

impl Subscriber {
    pub(crate) fn new(sub: shmbus::Subscriber, bus_name: String, filter: String) -> Subscriber {
        Subscriber {
            group: sub.group().map(str::to_owned),
            state: Mutex::new(State {
                sub: Some(sub),
                stash: None,
            }),
            bus_name,
            filter,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the state: at once if the lock is free, else after waiting
    /// for it with the GIL released (another thread may be waiting in `recv`).
    fn locked<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut State) -> R + Send) -> R {
        match self.state.try_lock() {
            Ok(mut st) => f(&mut st),
            Err(std::sync::TryLockError::Poisoned(e)) => f(&mut e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => py.detach(|| f(&mut self.lock())),
        }
    }

    fn what(&self) -> String {
        format!("Subscriber on bus {:?}", self.bus_name)
    }

    fn counter(&self, py: Python<'_>, f: impl FnOnce(&shmbus::Subscriber) -> u64 + Send) -> PyResult<u64> {
        self.locked(py, |st| st.sub.as_ref().map(f))
            .ok_or_else(|| closed(py, &self.what()))
    }

    /// One blocking slice (GIL released): a stashed message, or wait until `until`.
    fn wait_slice(&self, py: Python<'_>, until: Instant) -> Got {
        py.detach(|| {
            let mut st = self.lock();
            if let Some(o) = st.stash.take() {
                return Got::Msg(o);
            }
            match st.sub.as_mut() {
                None => Got::Closed,
                Some(sub) => match sub.recv_until(Some(until)) {
                    Ok(Some(f)) => Got::Msg(Owned::of(&f)),
                    Ok(None) => Got::Nothing,
                    Err(e) => Got::Err(e),
                },
            }
        })
    }

    /// Non-blocking attempt with the GIL held. `Ok(None)` also when another
    /// thread holds the subscriber (the caller then waits for it).
    fn try_fast(&self, py: Python<'_>) -> PyResult<Option<Py<Message>>> {
        let mut st = match self.state.try_lock() {
            Ok(st) => st,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
        };
        if let Some(o) = st.stash.take() {
            return o.into_message(py).map(Some);
        }
        let sub = st.sub.as_mut().ok_or_else(|| closed(py, &self.what()))?;
        match sub.try_recv() {
            Ok(Some(f)) => Message::from_frame(py, &f).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(to_py(py, e)),
        }
    }

    fn recv_impl(&self, py: Python<'_>, timeout: Option<Duration>) -> PyResult<Option<Py<Message>>> {
        if let Some(m) = self.try_fast(py)? {
            return Ok(Some(m));
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let now = Instant::now();
            let until = match deadline {
                Some(d) => d.min(now + SLICE),
                None => now + SLICE,
            };
            match self.wait_slice(py, until) {
                Got::Msg(o) => return o.into_message(py).map(Some),
                Got::Closed => return Err(closed(py, &self.what())),
                Got::Err(e) => return Err(to_py(py, e)),
                Got::Nothing => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl Subscriber {
    /// The next message, waiting at most `timeout` seconds (`None`: as long
    /// as it takes); returns `None` on timeout. The GIL is released while
    /// waiting, and Ctrl-C (any signal handler raising) interrupts the wait.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<Message>>> {
        self.recv_impl(py, parse_timeout(timeout)?)
    }

    /// The next message if one is ready now, else `None`; never waits.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Option<Py<Message>>> {
        if let Some(m) = self.try_fast(py)? {
            return Ok(Some(m));
        }
        self.recv_impl(py, Some(Duration::ZERO))
    }

    /// Up to `max_messages` messages as a list: waits at most `timeout`
    /// seconds (`None`: forever; default 0, no waiting) for the first one,
    /// then takes whatever else is ready without waiting. Empty on timeout.
    #[pyo3(signature = (max_messages=1024, timeout=0.0))]
    fn recv_many<'py>(
        &self,
        py: Python<'py>,
        max_messages: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        if max_messages == 0 {
            return Ok(out);
        }
        let Some(first) = self.recv_impl(py, parse_timeout(timeout)?)? else {
            return Ok(out);
        };
        out.append(first)?;
        let Ok(mut st) = self.state.try_lock() else {
            return Ok(out);
        };
        let Some(sub) = st.sub.as_mut() else {
            return Ok(out);
        };
        // The rest of what is ready now, in one core call (`recv_many`);
        // a Python error while building a message ends the batch.
        let mut failed = None;
        while out.len() < max_messages && failed.is_none() {
            let want = max_messages - out.len();
            let got = sub
                .recv_many(want, Duration::ZERO, |f| {
                    if failed.is_none() {
                        if let Err(e) = Message::from_frame(py, &f).and_then(|m| out.append(m)) {
                            failed = Some(e);
                        }
                    }
                })
                .map_err(|e| to_py(py, e))?;
            if got == 0 {
                break;
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Wait (GIL released) up to `timeout` seconds until a message is ready
    /// and keep it for the next `recv`/`try_recv`; returns whether one is.
    /// Used by `aiter()` from an executor thread: a message is never lost,
    /// even if the awaiting task is cancelled.
    fn _wait(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let t = parse_timeout(Some(timeout))?.unwrap_or_default();
        let deadline = Instant::now() + t;
        loop {
            let until = deadline.min(Instant::now() + SLICE);
            let got = py.detach(|| {
                let mut st = self.lock();
                if st.stash.is_some() {
                    return Ok(true);
                }
                let Some(sub) = st.sub.as_mut() else {
                    return Err(None);
                };
                match sub.recv_until(Some(until)) {
                    Ok(Some(f)) => {
                        let o = Owned::of(&f);
                        st.stash = Some(o);
                        Ok(true)
                    }
                    Ok(None) => Ok(false),
                    Err(e) => Err(Some(e)),
                }
            });
            match got {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(None) => return Err(closed(py, &self.what())),
                Err(Some(e)) => return Err(to_py(py, e)),
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }

    /// An asynchronous iterator over the messages, for `async for`.
    ///
    /// It never blocks the event loop: it takes ready messages at once and
    /// otherwise waits in the loop's default executor (GIL released) in
    /// slices of `poll` seconds. Cancelling the consuming task loses no
    /// message.
    #[pyo3(signature = (poll=0.25))]
    fn aiter(slf: &Bound<'_, Self>, poll: f64) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let f = py.import("shmbus._aio")?.getattr("subscriber_aiter")?;
        Ok(f.call1((slf, poll))?.unbind())
    }

    fn __aiter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Subscriber::aiter(slf, 0.25)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<Message>> {
        loop {
            if let Some(m) = self.recv_impl(py, None)? {
                return Ok(m);
            }
        }
    }

    /// Frames this subscriber lost to eviction (exact; for a group member,
    /// the frames the group lost while this member moved the cursor).
    #[getter]
    fn missed(&self, py: Python<'_>) -> PyResult<u64> {
        self.counter(py, |s| s.missed())
    }
    /// Messages delivered to this subscriber.
    #[getter]
    fn delivered(&self, py: Python<'_>) -> PyResult<u64> {
        self.counter(py, |s| s.delivered())
    }
    /// Claims skipped because their producer died before committing.
    #[getter]
    fn abandoned(&self, py: Python<'_>) -> PyResult<u64> {
        self.counter(py, |s| s.abandoned())
    }
    /// Frames published that this subscriber has not looked at yet (approximate).
    #[getter]
    fn lag(&self, py: Python<'_>) -> PyResult<u64> {
        self.counter(py, |s| s.lag())
    }
    /// Seq of the next frame this subscriber will look at.
    #[getter]
    fn next_seq(&self, py: Python<'_>) -> PyResult<u64> {
        self.counter(py, |s| s.next_seq())
    }
    /// The consumer group's name, or `None` for a broadcast subscriber.
    #[getter]
    fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }
    /// The name of the bus.
    #[getter]
    fn bus_name(&self) -> &str {
        &self.bus_name
    }
    /// A summary of the filter, e.g. `topic:events.#`.
    #[getter]
    fn filter(&self) -> &str {
        &self.filter
    }
    /// True once `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.locked(py, |st| st.sub.is_none())
    }

    /// Leave the bus (idempotent): frees this subscriber's entry in the
    /// segment. A group member leaving does not delete the group.
    fn close(&self, py: Python<'_>) {
        let sub = self.locked(py, |st| {
            st.stash = None;
            st.sub.take()
        });
        drop(sub);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let counts = self.locked(py, |st| st.sub.as_ref().map(|s| (s.delivered(), s.missed())));
        let group = match &self.group {
            Some(g) => format!(" group={g:?}"),
            None => String::new(),
        };
        match counts {
            Some((d, m)) => format!(
                "<shmbus.Subscriber bus={:?} filter={:?}{group} delivered={d} missed={m}>",
                self.bus_name, self.filter
            ),
            None => format!(
                "<shmbus.Subscriber bus={:?} filter={:?}{group} closed>",
                self.bus_name, self.filter
            ),
        }
    }
}
