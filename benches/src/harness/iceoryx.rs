//! The iceoryx2 peer (cargo feature `iceoryx2`): latency and throughput with
//! its publish-subscribe API, in separate processes like shmbus.
//!
//! Settings: `[u8]` slice services, `enable_safe_overflow(true)` (the
//! newest samples overwrite the oldest, like shmbus eviction; throughput is
//! also run lossless, peer `iceoryx2-blocking`: no overflow, the publisher
//! retries until delivered, like the crossbeam baseline), a subscriber
//! buffer of 4096 samples for throughput and 16 for ping-pong, history 0,
//! busy-polling `receive()`. Loss is counted from the stamped payloads: a
//! subscriber's missed = published - delivered, and stamps must increase.

use std::time::{Duration, Instant};

use iceoryx2::prelude::*;

use super::child::start_all_exe;
use super::util::{fill_pattern, mono_ns, payload_intact, read_stamp, stamp, unique_name, Kv, PublishSpan, RttLog};
use super::{base_spec, ping_pong, FlowOutcome, LatencyOutcome};

type Ports = (
    iceoryx2::port::publisher::Publisher<ipc::Service, [u8], ()>,
    iceoryx2::port::subscriber::Subscriber<ipc::Service, [u8], ()>,
);

fn dbg<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("iceoryx2 {what}: {e:?}")
}

fn service(
    node: &Node<ipc::Service>,
    name: &str,
    buffer: usize,
    lossless: bool,
) -> Result<iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>, String> {
    let sn: ServiceName = name.try_into().map_err(dbg("service name"))?;
    node.service_builder(&sn)
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(!lossless)
        .subscriber_max_buffer_size(buffer)
        .history_size(0)
        .max_publishers(2)
        .max_subscribers(2)
        .open_or_create()
        .map_err(dbg("open_or_create"))
}

fn ports(node: &Node<ipc::Service>, out: &str, input: &str, size: usize, buffer: usize) -> Result<Ports, String> {
    let so = service(node, out, buffer, false)?;
    let si = service(node, input, buffer, false)?;
    let p = so
        .publisher_builder()
        .initial_max_slice_len(size)
        .create()
        .map_err(dbg("publisher"))?;
    let s = si
        .subscriber_builder()
        .buffer_size(buffer)
        .create()
        .map_err(dbg("subscriber"))?;
    Ok((p, s))
}

fn send(p: &iceoryx2::port::publisher::Publisher<ipc::Service, [u8], ()>, payload: &[u8]) -> Result<(), String> {
    let s = p.loan_slice_uninit(payload.len()).map_err(dbg("loan"))?;
    s.write_from_slice(payload).send().map_err(dbg("send"))?;
    Ok(())
}

/// Child side of the iceoryx2 roles.
pub(crate) fn run_role(
    spec: &Kv,
    role: &str,
    deadline_ms: u64,
    ready_then_wait_go: fn() -> Result<bool, String>,
) -> Result<Option<Kv>, String> {
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new().create::<ipc::Service>().map_err(dbg("node"))?;
    let size = spec.num("payload")? as usize;
    let mut payload = vec![0u8; size];
    fill_pattern(&mut payload);
    match role {
        "ice-ping" | "ice-pong" => {
            let ping = role == "ice-ping";
            let (p, s) = ports(&node, spec.str("out")?, spec.str("in")?, size, 16)?;
            let (n, warmup) = (spec.num("n")?, spec.num("warmup")?);
            let mut log = RttLog::with_capacity(n);
            if !ready_then_wait_go()? {
                return Ok(None);
            }
            let deadline = Instant::now() + Duration::from_millis(deadline_ms);
            let mut from = mono_ns();
            for i in 0..warmup + n {
                let t0 = Instant::now();
                if ping {
                    if i == warmup {
                        from = mono_ns();
                    }
                    stamp(&mut payload, i);
                    send(&p, &payload)?;
                }
                let mut spins = 0u32;
                let sample = loop {
                    if let Some(x) = s.receive().map_err(dbg("receive"))? {
                        break x;
                    }
                    spins = spins.wrapping_add(1);
                    if spins & 1023 == 0 && Instant::now() >= deadline {
                        return Err(format!("iceoryx2: no sample for round trip {i} before the deadline"));
                    }
                    std::hint::spin_loop();
                };
                if ping {
                    let dt = t0.elapsed();
                    if read_stamp(sample.payload()) != i {
                        return Err(format!("iceoryx2 round trip {i}: wrong echo"));
                    }
                    if i >= warmup {
                        log.record(dt.as_nanos() as u64 / 2);
                    }
                } else {
                    send(&p, sample.payload())?;
                }
            }
            let mut kv = Kv::new().set("elapsed_ns", mono_ns() - from).set("round_trips", n);
            if ping {
                kv = log.add_to(kv);
            }
            Ok(Some(kv))
        }
        "ice-producer" => {
            let lossless = spec.num("lossless")? == 1;
            let svc = service(&node, spec.str("bus")?, 4096, lossless)?;
            let strategy = if lossless {
                BackpressureStrategy::RetryUntilDelivered
            } else {
                BackpressureStrategy::DiscardData
            };
            let p = svc
                .publisher_builder()
                .initial_max_slice_len(size)
                .backpressure_strategy(strategy)
                .create()
                .map_err(dbg("publisher"))?;
            let n = spec.num("n")?;
            if !ready_then_wait_go()? {
                return Ok(None);
            }
            let span = PublishSpan::start();
            for i in 0..n {
                stamp(&mut payload, i);
                send(&p, &payload)?;
            }
            Ok(Some(span.finish(n)))
        }
        "ice-subscriber" => {
            let svc = service(&node, spec.str("bus")?, 4096, spec.num("lossless")? == 1)?;
            let s = svc
                .subscriber_builder()
                .buffer_size(4096)
                .create()
                .map_err(dbg("subscriber"))?;
            let expected = spec.num("expected")?;
            if !ready_then_wait_go()? {
                return Ok(None);
            }
            let deadline = Instant::now() + Duration::from_millis(deadline_ms);
            let (mut delivered, mut next) = (0u64, 0u64);
            let mut spins = 0u32;
            while next < expected {
                match s.receive().map_err(dbg("receive"))? {
                    Some(x) => {
                        let i = read_stamp(x.payload());
                        if i < next {
                            return Err(format!("iceoryx2: stamp {i} after {next} (duplicate or reordered)"));
                        }
                        if !payload_intact(x.payload(), &payload) {
                            return Err(format!("iceoryx2: frame {i} had a wrong payload"));
                        }
                        next = i + 1;
                        delivered += 1;
                    }
                    None => {
                        spins = spins.wrapping_add(1);
                        if spins & 1023 == 0 && Instant::now() >= deadline {
                            return Err(format!(
                                "iceoryx2: {delivered} delivered, next {next} of {expected} at the deadline"
                            ));
                        }
                        std::hint::spin_loop();
                    }
                }
            }
            Ok(Some(
                Kv::new()
                    .set("t_end", mono_ns())
                    .set("delivered", delivered)
                    .set("missed", expected - delivered),
            ))
        }
        other => Err(format!("unknown role {other:?}")),
    }
}

/// Ping-pong latency between two processes over two iceoryx2 services.
pub(crate) fn latency(
    size: usize,
    n: u64,
    warmup: u64,
    cpus: Option<(usize, usize)>,
    timeout: Duration,
) -> Result<LatencyOutcome, String> {
    let (a, b) = (unique_name("ice-ping"), unique_name("ice-pong"));
    let base = base_spec("", size, timeout).set("n", n).set("warmup", warmup);
    ping_pong(None, ["ice-pong", "ice-ping"], (&a, &b), base, cpus, timeout)
}

/// One producer process, one subscriber process; `lossless`: no safe
/// overflow, the publisher retries until delivered (back-pressure, like the
/// crossbeam baseline) instead of overwriting the oldest samples.
/// `cpus`: (producer CPU, subscriber CPU) to pin the processes to, or `None`.
pub(crate) fn throughput(
    size: usize,
    cpus: Option<(usize, usize)>,
    frames: u64,
    timeout: Duration,
    lossless: bool,
) -> Result<FlowOutcome, String> {
    let name = unique_name("ice-throughput");
    let spec = |role: &str, cpu: Option<usize>| {
        base_spec(role, size, timeout)
            .set("bus", &name)
            .set("lossless", u8::from(lossless))
            .pin(cpu)
    };
    let specs = [
        spec("ice-subscriber", cpus.map(|c| c.1)).set("expected", frames),
        spec("ice-producer", cpus.map(|c| c.0)).set("n", frames),
    ];
    let deadline = Instant::now() + timeout + Duration::from_secs(10);
    let mut kids = start_all_exe(None, &specs, deadline)?;
    let sub = kids[0].result(deadline)?;
    let prod = kids[1].result(deadline)?;
    let (d, m) = (sub.num("delivered")?, sub.num("missed")?);
    if d + m != frames || prod.num("published")? != frames {
        return Err(format!("iceoryx2: delivered {d} + missed {m} != published {frames}"));
    }
    Ok(FlowOutcome {
        published: frames,
        delivered: d,
        missed: m,
        abandoned: 0,
        elapsed_ns: sub.num("t_end")?.saturating_sub(prod.num("t0")?).max(1),
        producer_ns: prod.num("t1")?.saturating_sub(prod.num("t0")?),
        producer_cpu_ns: prod.opt_num("cpu_ns")?,
    })
}
