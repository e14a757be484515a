//! Child processes for the multi-process tests.
//!
//! A child is the test binary itself re-executed with [`ROLE`] set; its
//! `child_entry_point` test reads the role with [`role`] and plays it. The
//! parent passes arguments as `SHMBUS_ARG_<KEY>` environment variables
//! (read with [`arg`]); the child reports with [`result`] lines
//! (`RESULT ...` on stdout). Every child is wrapped in a [`Proc`] that kills
//! it on drop, so a failing test leaves no process behind.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmbus::Bus;

/// The environment variable that names a child's role.
pub const ROLE: &str = "SHMBUS_TEST_ROLE";

const ARG_PREFIX: &str = "SHMBUS_ARG_";

// ---------------------------------------------------------------------------
// child side
// ---------------------------------------------------------------------------

/// The role this process plays, or `None` in the parent.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// An argument passed by the parent; panics if it is missing.
pub fn arg(k: &str) -> String {
    std::env::var(format!("{ARG_PREFIX}{k}")).unwrap_or_else(|_| panic!("missing arg {k}"))
}

/// A numeric argument passed by the parent.
pub fn arg_u64(k: &str) -> u64 {
    arg(k).parse().unwrap_or_else(|_| panic!("arg {k} is not a number"))
}

/// Print a result line and flush it (the parent may kill us right after).
pub fn result(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "RESULT {line}");
    let _ = out.flush();
}

/// A flag that is set once the parent closes our stdin (see
/// [`spawn_with_stdin`]).
pub fn stop_on_stdin_eof() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        s.store(true, Ordering::SeqCst);
    });
    stop
}

// ---------------------------------------------------------------------------
// parent side
// ---------------------------------------------------------------------------

/// Make `cmd` run this test binary's `child_entry_point` as `role` with
/// `args` (stdin null, stdout piped, stderr inherited). `cmd` must already
/// name the program: the test binary itself or a wrapper (strace) followed
/// by the path of the test binary.
pub fn configure(cmd: &mut Command, role: &str, args: &[(&str, String)]) {
    cmd.args(["--exact", "child_entry_point", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in args {
        cmd.env(format!("{ARG_PREFIX}{k}"), v);
    }
}

/// The command for a child playing `role`, for callers that adjust it
/// before [`Proc::new`].
pub fn child_command(role: &str, args: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    configure(&mut cmd, role, args);
    cmd
}

/// Spawn a child playing `role`.
pub fn spawn(role: &str, args: &[(&str, String)]) -> Proc {
    Proc::new(role, child_command(role, args))
}

/// Spawn a child playing `role` with its stdin piped; the child sees EOF
/// (see [`stop_on_stdin_eof`]) when the returned handle is dropped.
pub fn spawn_with_stdin(role: &str, args: &[(&str, String)]) -> (Proc, ChildStdin) {
    let mut cmd = child_command(role, args);
    cmd.stdin(Stdio::piped());
    let mut p = Proc::new(role, cmd);
    let stdin = p.child.as_mut().unwrap().stdin.take().unwrap();
    (p, stdin)
}

/// `(key, value)` pairs of a result line, values parsed as numbers; words
/// that are not `key=number` are left out.
pub fn kv(line: &str) -> HashMap<String, u64> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// Wait (at most 20 s) until `n` live subscribers are registered on `bus`.
pub fn wait_for_subscribers(bus: &Bus, n: usize) {
    let t0 = Instant::now();
    while bus.stats().subscribers.iter().filter(|s| s.alive).count() < n {
        assert!(t0.elapsed() < Duration::from_secs(20), "children never subscribed");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How a child ended.
pub struct Outcome {
    pub name: String,
    pub pid: u32,
    pub status: Option<ExitStatus>,
    pub hung: bool,
    pub diag: String,
    pub lines: Vec<String>,
}

impl Outcome {
    pub fn clean(&self) -> bool {
        !self.hung && self.status.is_some_and(|s| s.success())
    }
    pub fn describe(&self) -> String {
        if self.hung {
            format!(
                "{} (pid {}) HUNG past its deadline:\n{}",
                self.name, self.pid, self.diag
            )
        } else {
            match self.status {
                Some(s) => match s.signal() {
                    Some(sig) => format!("{} (pid {}) killed by signal {sig}", self.name, self.pid),
                    None => format!("{} (pid {}) exited with {:?}", self.name, self.pid, s.code()),
                },
                None => format!("{} (pid {}): no status", self.name, self.pid),
            }
        }
    }
    /// Panic (with the description and the result lines) unless the child
    /// exited successfully in time.
    pub fn assert_clean(self) -> Outcome {
        assert!(self.clean(), "{} {:?}", self.describe(), self.lines);
        self
    }
    /// The first `RESULT` line with `key=` parsed as numbers.
    pub fn kv(&self, key: &str) -> HashMap<String, u64> {
        self.lines
            .iter()
            .map(|l| kv(l))
            .find(|m| m.contains_key(key))
            .unwrap_or_else(|| panic!("{}: no result line with {key}= in {:?}", self.name, self.lines))
    }
}

/// A child process, killed (SIGKILL) and reaped on drop; its `RESULT` lines
/// are collected by a reader thread so a hung child cannot block the test.
pub struct Proc {
    name: String,
    pid: u32,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Proc {
    /// Spawn `cmd` (its stdout must be piped); `name` is used in messages.
    pub fn new(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().expect("spawn child");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(r) = l.strip_prefix("RESULT ") {
                    sink.lock().unwrap().push(r.to_string());
                }
            }
        });
        Proc {
            name: name.to_string(),
            pid: child.id(),
            child: Some(child),
            lines,
            reader: Some(reader),
        }
    }
    /// Use `name` instead of the role in messages.
    pub fn named(mut self, name: &str) -> Proc {
        self.name = name.to_string();
        self
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// The result lines received so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
    /// Wait until a result line starting with `prefix` arrives.
    pub fn wait_line(&mut self, prefix: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                return l;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                // It exited: give the reader a moment to deliver the last lines.
                std::thread::sleep(Duration::from_millis(20));
                if let Some(l) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                    return l;
                }
                panic!("{} exited ({st}) before printing {prefix:?}", self.name);
            }
            assert!(t0.elapsed() < limit, "{} never printed {prefix:?}", self.name);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    /// SIGKILL and reap; returns the status.
    pub fn kill9(&mut self) -> ExitStatus {
        let c = self.child.as_mut().unwrap();
        // Child::kill sends SIGKILL.
        let _ = c.kill();
        c.wait().unwrap()
    }
    /// Wait at most `limit` for the child to exit; a child still running then
    /// is diagnosed (process state, stacks), killed and reported as hung.
    pub fn finish(&mut self, limit: Duration) -> Outcome {
        let mut child = self.child.take().expect("finish called twice");
        let pid = child.id();
        let deadline = Instant::now() + limit;
        let mut hung = false;
        let mut diag = String::new();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if Instant::now() > deadline {
                hung = true;
                diag = diagnose(pid);
                let _ = child.kill();
                break child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Outcome {
            name: self.name.clone(),
            pid,
            status,
            hung,
            diag,
            lines: self.lines(),
        }
    }
    /// [`Proc::finish`], asserting a clean exit.
    pub fn finish_clean(&mut self, limit: Duration) -> Outcome {
        self.finish(limit).assert_clean()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `kB` field (`VmRSS`, `VmHWM`, ...) of `/proc/<pid>/status` (`pid` may
/// be `self`); `None` if the process is gone.
pub fn status_kib(pid: impl std::fmt::Display, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// What a hung process is doing: its state and, when gdb is there, the
/// stack frames in shmbus and in this test binary.
fn diagnose(pid: u32) -> String {
    // `module_path!()` is `<test binary>::common::child`.
    let test_crate = module_path!().split("::").next().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let state = status.lines().find(|l| l.starts_with("State:")).unwrap_or("State: ?");
    let mut out = format!("  {state}\n");
    let gdb = Command::new("timeout")
        .args([
            "20",
            "gdb",
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 12",
        ])
        .stdin(Stdio::null())
        .output();
    if let Ok(o) = gdb {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            // Only our frames: where in shmbus (or in the role) it is stuck.
            let Some(rest) = l.strip_prefix('#') else { continue };
            let rest = rest.split_once(" in ").map_or(rest, |(_, r)| r);
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
            if rest.starts_with("shmbus::") || rest.strip_prefix(test_crate).is_some_and(|r| r.starts_with("::")) {
                let func = rest.split(" (").next().unwrap_or(rest);
                let at = rest.rsplit_once(" at ").map_or("", |(_, a)| a);
                out.push_str(&format!("  {func} at {at}\n"));
            }
        }
    }
    out
}
