//! # shmbus — a lock-free shared-memory event bus
//!
//! One shared-memory segment per bus; many producers and many subscribers in
//! many processes; bounded memory with batch eviction of the oldest frames;
//! topic, regex and correlation filters; broadcast subscribers and
//! competing-consumer groups. See `ARCHITECTURE.md` for the protocol.
//!
//! ```
//! # let name = format!("doc-lib-{}", std::process::id());
//! use std::time::Duration;
//! use shmbus::{Bus, Config, Filter};
//! let bus = Bus::create(&name, &Config::default().memory_limit(1 << 20))?;
//! let mut sub = bus.subscribe(Filter::topic("events.+.start"))?;
//! bus.publish("events.process.start", b"pid=1")?;
//! let frame = sub.recv_timeout(Duration::from_secs(1))?.unwrap();
//! assert_eq!(frame.payload(), b"pid=1");
//! # drop(sub); Bus::remove(&name)?;
//! # Ok::<(), shmbus::Error>(())
//! ```
#![warn(missing_docs)]
// Under loom only the protocol modules are compiled; their helpers for the
// rest of the crate are unused there.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

#[cfg(not(loom))]
mod bus;
#[cfg(not(loom))]
mod clock;
#[cfg(not(loom))]
mod config;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
pub mod filter;
pub mod frame;
pub mod layout;
#[cfg(not(loom))]
pub mod liveness;
mod mem;
#[cfg(not(loom))]
mod producer;
#[cfg(not(loom))]
mod registry;
mod ring;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
mod sigbus;
#[cfg(not(loom))]
mod stats;
#[cfg(not(loom))]
mod subscriber;
mod sync;
#[cfg(not(loom))]
mod wait;

#[cfg(not(loom))]
pub use bus::{Bus, Claim, SubscribeOptions};
#[cfg(not(loom))]
pub use config::{Config, Overflow};
#[cfg(not(loom))]
pub use error::{Error, Result};
#[cfg(not(loom))]
pub use filter::{Filter, FilterError};
pub use frame::{Correlation, EventType, Frame, Kind, Meta};
#[cfg(not(loom))]
pub use segment::{validate_name, MAX_NAME_LEN};
#[cfg(not(loom))]
pub use stats::{GroupStats, ProducerStats, Stats, SubscriberStats};
#[cfg(not(loom))]
pub use subscriber::{Start, Subscriber};
#[cfg(not(loom))]
pub use wait::WaitStrategy;
