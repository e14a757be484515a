//! Child processes: spawning (parent side) and the roles a child plays.
//!
//! The parent re-executes [`std::env::current_exe`] with [`ENV`] holding the
//! role spec (`key=value ...`). The child sets up (opens the bus, subscribes),
//! prints `READY`, waits for `GO` on stdin, runs, and prints one
//! `RESULT key=value ...` line (or `ERROR message`). If the parent goes away
//! the child sees EOF on stdin and exits; every wait in a child is bounded by
//! the spec's `deadline_ms`, and the parent bounds every read of a child's
//! output too, so a lost frame shows up as an error, never as a hang.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use shmbus::{Bus, Filter, Start, SubscribeOptions, WaitStrategy};

use super::util::{
    fill_pattern, group_idle, mono_ns, payload_intact, pin_current_thread, read_stamp, stamp, Kv, PublishSpan, RttLog,
    TOPIC,
};

/// Environment variable naming the role of a harness child.
pub(crate) const ENV: &str = "SHMBUS_BENCH_CHILD";

/// A running child process; killed and reaped on drop unless it finished.
pub(crate) struct ChildProc {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    done: bool,
}

impl ChildProc {
    /// Spawn `current_exe` as a child playing `spec`.
    pub(crate) fn spawn(spec: &Kv) -> Result<ChildProc, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        ChildProc::spawn_exe(&exe, spec)
    }

    /// Spawn `exe` (this executable, or another program speaking the same
    /// protocol, such as the C benchmark `bench_c`) as a child playing `spec`.
    pub(crate) fn spawn_exe(exe: &Path, spec: &Kv) -> Result<ChildProc, String> {
        let role = spec.opt("role").unwrap_or("?").to_string();
        let mut child = Command::new(exe)
            .env(ENV, spec.encode())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn {role} child: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ChildProc {
            role,
            child,
            stdin,
            lines: rx,
            done: false,
        })
    }

    fn line(&self, deadline: Instant) -> Result<String, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(l) => Ok(l),
            Err(RecvTimeoutError::Timeout) => Err(format!("{} child: timed out", self.role)),
            Err(RecvTimeoutError::Disconnected) => Err(format!("{} child exited without a result", self.role)),
        }
    }

    fn expect(&self, deadline: Instant, tag: &str) -> Result<String, String> {
        let l = self.line(deadline)?;
        if let Some(rest) = l.strip_prefix("ERROR ") {
            return Err(format!("{} child: {rest}", self.role));
        }
        match l.strip_prefix(tag) {
            Some(rest) => Ok(rest.trim().to_string()),
            None => Err(format!("{} child: expected {tag}, got {l:?}", self.role)),
        }
    }

    /// Wait for the child's `READY`.
    pub(crate) fn ready(&self, deadline: Instant) -> Result<(), String> {
        self.expect(deadline, "READY").map(|_| ())
    }

    /// Tell the child to start.
    pub(crate) fn go(&mut self) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin
            .write_all(b"GO\n")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("{} child: {e}", self.role))
    }

    /// Wait for the child's `RESULT` and its exit.
    pub(crate) fn result(&mut self, deadline: Instant) -> Result<Kv, String> {
        let kv = Kv::decode(&self.expect(deadline, "RESULT")?)?;
        drop(self.stdin.take());
        let status = self.child.wait().map_err(|e| e.to_string())?;
        self.done = true;
        if !status.success() {
            return Err(format!("{} child exited with {status}", self.role));
        }
        Ok(kv)
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if !self.done {
            // Our own child, by its handle: never anything else.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawn all `specs` (children run by `exe`, or by `current_exe` if `None`),
/// wait until every child is ready, then start them all. Children start in
/// the order given (put subscribers first).
pub(crate) fn start_all_exe(exe: Option<&Path>, specs: &[Kv], deadline: Instant) -> Result<Vec<ChildProc>, String> {
    let mut kids = Vec::with_capacity(specs.len());
    for s in specs {
        kids.push(match exe {
            Some(e) => ChildProc::spawn_exe(e, s)?,
            None => ChildProc::spawn(s)?,
        });
    }
    for k in &kids {
        k.ready(deadline)?;
    }
    for k in &mut kids {
        k.go()?;
    }
    Ok(kids)
}

/// Child entry point: run the role in `spec`, report, and return the exit code.
pub(crate) fn main(spec: &str) -> i32 {
    let out = std::io::stdout();
    let result = Kv::decode(spec).and_then(|spec| run_role(&spec));
    let mut out = out.lock();
    match result {
        Ok(Some(kv)) => {
            let _ = writeln!(out, "RESULT {}", kv.encode());
            let _ = out.flush();
            0
        }
        Ok(None) => 0, // the parent went away
        Err(e) => {
            let _ = writeln!(out, "ERROR {}", e.replace('\n', " "));
            let _ = out.flush();
            1
        }
    }
}

/// Print `READY` and block until `GO`; `false` if stdin closed (parent gone).
fn ready_then_wait_go() -> Result<bool, String> {
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY")
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())?;
    }
    let mut line = String::new();
    let n = std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
    Ok(n > 0 && line.trim() == "GO")
}

/// Parse a wait strategy written by [`wait_name`].
pub(crate) fn parse_wait(s: &str) -> Result<WaitStrategy, String> {
    match s {
        "spin" => Ok(WaitStrategy::Spin),
        "park" => Ok(WaitStrategy::Park),
        _ => match s.strip_prefix("spin-then-park-us") {
            Some(us) => Ok(WaitStrategy::SpinThenPark(Duration::from_micros(
                us.parse().map_err(|e| format!("wait {s}: {e}"))?,
            ))),
            None => Err(format!("unknown wait strategy {s:?}")),
        },
    }
}

/// Encode a wait strategy for a child spec.
pub(crate) fn wait_name(w: WaitStrategy) -> String {
    match w {
        WaitStrategy::Spin => "spin".into(),
        WaitStrategy::Park => "park".into(),
        WaitStrategy::SpinThenPark(d) => format!("spin-then-park-us{}", d.as_micros()),
    }
}

fn run_role(spec: &Kv) -> Result<Option<Kv>, String> {
    if let Some(cpu) = spec.opt("cpu") {
        pin_current_thread(cpu.parse().map_err(|e| format!("cpu: {e}"))?)?;
    }
    let deadline_ms = spec.num("deadline_ms")?;
    let role = spec.str("role")?;
    match role {
        "ping" | "pong" => latency_role(spec, role == "ping", deadline_ms),
        "producer" => producer_role(spec),
        "subscriber" => subscriber_role(spec, deadline_ms),
        #[cfg(feature = "iceoryx2")]
        r if r.starts_with("ice-") => super::iceoryx::run_role(spec, r, deadline_ms, ready_then_wait_go),
        other => Err(format!("unknown role {other:?}")),
    }
}

fn open(name: &str) -> Result<Bus, String> {
    Bus::open(name).map_err(|e| format!("open {name}: {e}"))
}

fn err(e: shmbus::Error) -> String {
    e.to_string()
}

/// `ping`: publish on `out`, wait for the echo on `in`, record RTT/2.
/// `pong`: echo every frame of `in` to `out`.
fn latency_role(spec: &Kv, ping: bool, deadline_ms: u64) -> Result<Option<Kv>, String> {
    let out = open(spec.str("out")?)?;
    let inb = open(spec.str("in")?)?;
    let opts = SubscribeOptions {
        start: Start::Newest,
        wait: parse_wait(spec.str("wait")?)?,
    };
    let mut sub = inb.subscribe_with(Filter::all(), opts).map_err(err)?;
    let n = spec.num("n")?;
    let warmup = spec.num("warmup")?;
    let size = spec.num("payload")? as usize;
    let mut payload = vec![0u8; size];
    let mut log = RttLog::with_capacity(n);
    if !ready_then_wait_go()? {
        return Ok(None);
    }
    let deadline = Instant::now() + Duration::from_millis(deadline_ms);
    let timeout = |i: u64| format!("no frame for round trip {i} before the deadline (lost frame?)");
    let mut measured_from = mono_ns();
    for i in 0..warmup + n {
        if ping {
            if i == warmup {
                measured_from = mono_ns();
            }
            stamp(&mut payload, i);
            let t0 = Instant::now();
            out.publish(TOPIC, &payload).map_err(err)?;
            let f = sub.recv_until(Some(deadline)).map_err(err)?.ok_or_else(|| timeout(i))?;
            let dt = t0.elapsed();
            if read_stamp(f.payload()) != i || f.payload().len() != size {
                return Err(format!("round trip {i}: wrong echo"));
            }
            if i >= warmup {
                log.record(dt.as_nanos() as u64 / 2);
            }
        } else {
            let f = sub.recv_until(Some(deadline)).map_err(err)?.ok_or_else(|| timeout(i))?;
            out.publish(TOPIC, f.payload()).map_err(err)?;
        }
    }
    let elapsed = mono_ns() - measured_from;
    let mut kv = Kv::new().set("elapsed_ns", elapsed).set("round_trips", n);
    if ping {
        kv = log.add_to(kv);
    }
    Ok(Some(kv))
}

/// Publish `n` frames as fast as possible: one `publish` each, or with
/// `batch` set, `publish_many` calls of `batch` frames.
fn producer_role(spec: &Kv) -> Result<Option<Kv>, String> {
    let bus = open(spec.str("bus")?)?;
    let n = spec.num("n")?;
    let batch = spec.opt_num("batch")?;
    let mut payload = vec![0u8; spec.num("payload")? as usize];
    fill_pattern(&mut payload);
    let mut payloads = vec![payload.clone(); batch.unwrap_or(0) as usize];
    if !ready_then_wait_go()? {
        return Ok(None);
    }
    let span = PublishSpan::start();
    match batch {
        None => {
            for i in 0..n {
                stamp(&mut payload, i);
                bus.publish(TOPIC, &payload).map_err(err)?;
            }
        }
        Some(b) => {
            let mut i = 0;
            while i < n {
                let k = b.min(n - i) as usize;
                for (j, p) in payloads[..k].iter_mut().enumerate() {
                    stamp(p, i + j as u64);
                }
                bus.publish_many(TOPIC, &payloads[..k]).map_err(err)?;
                i += k as u64;
            }
        }
    }
    Ok(Some(span.finish(n)))
}

/// The error of a subscriber whose counts fall short of `expected` at the
/// deadline.
fn short_of(delivered: u64, sub: &shmbus::Subscriber, expected: u64) -> String {
    format!(
        "delivered {delivered} + missed {} + abandoned {} < published {expected} at the deadline (silent loss?)",
        sub.missed(),
        sub.abandoned()
    )
}

/// Receive until `expected` seqs are accounted for (delivered + missed), as a
/// broadcast subscriber, or until the group cursor passed `expected`. Every
/// frame's payload is checked byte for byte ([`payload_intact`]).
fn subscriber_role(spec: &Kv, deadline_ms: u64) -> Result<Option<Kv>, String> {
    let bus = open(spec.str("bus")?)?;
    let expected = spec.num("expected")?;
    let mut pattern = vec![0u8; spec.num("payload")? as usize];
    fill_pattern(&mut pattern);
    let opts = SubscribeOptions {
        start: Start::Newest,
        wait: WaitStrategy::Spin,
    };
    let group = spec.opt("group").map(str::to_string);
    let mut sub = match &group {
        Some(g) => bus.join_group_with(g, Filter::all(), opts),
        None => bus.subscribe_with(Filter::all(), opts),
    }
    .map_err(err)?;
    if !ready_then_wait_go()? {
        return Ok(None);
    }
    let deadline = Instant::now() + Duration::from_millis(deadline_ms);
    let mut delivered = 0u64;
    let mut bad = 0u64;
    // With `many` set, frames are taken with `recv_many` (up to 4096 per
    // call), every one checked the same way.
    let many = spec.opt("many").is_some();
    if many && group.is_none() {
        while delivered + sub.missed() + sub.abandoned() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            let got = sub
                .recv_many(4096, left, |f| {
                    delivered += 1;
                    bad += u64::from(!payload_intact(f.payload(), &pattern));
                })
                .map_err(err)?;
            if got == 0 {
                return Err(short_of(delivered, &sub, expected));
            }
        }
    } else if group.is_some() {
        let mut spins = 0u32;
        loop {
            if many {
                let got = sub
                    .recv_many(4096, Duration::ZERO, |f| {
                        delivered += 1;
                        bad += u64::from(!payload_intact(f.payload(), &pattern));
                    })
                    .map_err(err)?;
                if got > 0 {
                    continue;
                }
            } else if let Some(f) = sub.try_recv().map_err(err)? {
                delivered += 1;
                bad += u64::from(!payload_intact(f.payload(), &pattern));
                continue;
            }
            if sub.next_seq() >= expected {
                break;
            }
            spins = spins.wrapping_add(1);
            if spins & 1023 == 0 && Instant::now() >= deadline {
                return Err(format!(
                    "group: cursor at {} of {expected} at the deadline",
                    sub.next_seq()
                ));
            }
            group_idle(spins);
        }
    } else {
        // A claim skipped as abandoned (its producer looked dead, or stayed
        // descheduled past `claim_timeout`) is accounted too, and reported.
        while delivered + sub.missed() + sub.abandoned() < expected {
            match sub.recv_until(Some(deadline)).map_err(err)? {
                Some(f) => {
                    delivered += 1;
                    bad += u64::from(!payload_intact(f.payload(), &pattern));
                }
                None => return Err(short_of(delivered, &sub, expected)),
            }
        }
    }
    let t_end = mono_ns();
    if bad > 0 {
        return Err(format!("{bad} frames had a wrong payload (length or bytes)"));
    }
    Ok(Some(
        Kv::new()
            .set("t_end", t_end)
            .set("delivered", delivered)
            .set("missed", sub.missed())
            .set("abandoned", sub.abandoned()),
    ))
}
