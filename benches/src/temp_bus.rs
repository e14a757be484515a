//! A bus that removes itself: every benchmark (criterion, the harness, the
//! `rust-path` and `publish-loop` programs) creates its buses through this,
//! so nothing is left in /dev/shm, also when a run panics.

use shmbus::{Bus, Config, Filter, Start, SubscribeOptions, Subscriber, WaitStrategy};

/// A bus created for a benchmark and removed when dropped (also on panic).
///
/// ```
/// let name = format!("doc-temp-bus-{}", std::process::id());
/// {
///     let tb = shmbus_benches::TempBus::create(&name, &shmbus::Config::default().memory_limit(1 << 20))?;
///     tb.bus().publish("t", b"x")?;
/// }
/// assert!(!shmbus::Bus::list()?.contains(&name));
/// # Ok::<(), shmbus::Error>(())
/// ```
pub struct TempBus {
    name: String,
    bus: Option<Bus>,
}

impl TempBus {
    /// Create bus `name` with `cfg`, first removing a leftover of that name
    /// (from an earlier run whose process had the same pid).
    pub fn create(name: &str, cfg: &Config) -> Result<TempBus, shmbus::Error> {
        let _ = Bus::remove(name);
        let bus = Bus::create(name, cfg)?;
        Ok(TempBus {
            name: name.to_string(),
            bus: Some(bus),
        })
    }

    /// The bus name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        self.bus.as_ref().expect("open until dropped")
    }

    /// A subscriber to every topic, from the newest frame on, that
    /// busy-polls (the reader of the in-process benchmarks).
    pub fn spin_subscriber(&self) -> Result<Subscriber, shmbus::Error> {
        self.bus().subscribe_with(
            Filter::all(),
            SubscribeOptions {
                start: Start::Newest,
                wait: WaitStrategy::Spin,
            },
        )
    }
}

impl Drop for TempBus {
    fn drop(&mut self) {
        drop(self.bus.take());
        let _ = Bus::remove(&self.name);
    }
}
