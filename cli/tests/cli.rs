//! End-to-end tests of the `shmbus` binary against real buses.
//!
//! Every test uses bus names containing the test process id and removes its
//! segments on drop (also when it fails), so nothing is left in /dev/shm.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_shmbus");

static N: AtomicU64 = AtomicU64::new(0);

/// A unique bus name; the bus (or a fake object of that name) is removed on drop.
struct TempBus(String);

impl TempBus {
    fn new(tag: &str) -> TempBus {
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempBus(format!("clitest-{tag}-{}-{n}", std::process::id()))
    }
    fn path(&self) -> String {
        format!("/dev/shm/shmbus.{}", self.0)
    }
    /// Create the bus with the CLI (1 MiB, plus `extra` flags).
    fn create(tag: &str, extra: &[&str]) -> TempBus {
        let bus = TempBus::new(tag);
        let mut args = vec!["create", &bus.0, "--memory-limit", "1MiB", "--quiet"];
        args.extend_from_slice(extra);
        let out = shmbus(&args);
        assert_ok(&out);
        bus
    }
}

impl Drop for TempBus {
    fn drop(&mut self) {
        let _ = shmbus::Bus::remove(&self.0);
        let _ = std::fs::remove_file(self.path());
    }
}

impl std::ops::Deref for TempBus {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).stdin(Stdio::null());
    c
}

fn shmbus(args: &[&str]) -> Output {
    cmd(args).output().expect("run shmbus")
}

fn shmbus_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmbus");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Assert a one-line error with this exit code containing `needle`.
fn assert_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "error must be one line: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

fn stat_json(name: &str) -> Value {
    let out = shmbus(&["stat", name, "--json"]);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).expect("stat --json is JSON")
}

/// Poll `cond` for up to 10 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_subscribers(name: &str, n: usize) {
    wait_until("subscribers", || {
        stat_json(name)["subscribers"]
            .as_array()
            .is_some_and(|s| s.iter().filter(|x| x["alive"] == true).count() >= n)
    });
}

/// Wait for a child to exit, killing it after `limit`.
fn wait_with_limit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ls_json() -> Vec<Value> {
    let out = shmbus(&["ls", "--json"]);
    assert_ok(&out);
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("ls --json is JSON")
        .as_array()
        .unwrap()
        .clone()
}

fn ls_row(name: &str) -> Option<Value> {
    ls_json().into_iter().find(|r| r["name"] == name)
}

#[test]
fn create_ls_stat_pub_tail_rm_round_trip() {
    let bus = TempBus::new("roundtrip");
    let out = shmbus(&[
        "create",
        &bus,
        "--memory-limit",
        "2MiB",
        "--mode",
        "0640",
        "--max-frame",
        "8KiB",
    ]);
    assert_ok(&out);
    assert!(stdout(&out).contains("created bus"), "{}", stdout(&out));

    let ls = shmbus(&["ls"]);
    assert_ok(&ls);
    let line = stdout(&ls)
        .lines()
        .find(|l| l.starts_with(&*bus.0))
        .expect("ls row")
        .to_string();
    assert!(line.contains("0640") && line.ends_with("ok"), "{line}");
    let row = ls_row(&bus).expect("ls --json row");
    assert_eq!(row["mode"], "0640");
    assert_eq!(row["frames"], 0);
    assert!(row["error"].is_null());

    assert_ok(&shmbus(&["pub", &bus, "events.order.created", "first"]));
    assert_ok(&shmbus(&[
        "pub",
        &bus,
        "events.order.updated",
        "second",
        "--repeat",
        "2",
    ]));

    let stat = stat_json(&bus);
    assert_eq!(stat["published"], 3);
    assert_eq!(stat["next_seq"], 3);
    assert_eq!(stat["config"]["max_frame_size"], 8192);
    assert_eq!(stat["config"]["mode"], "0640");
    let text = shmbus(&["stat", &bus]);
    assert_ok(&text);
    assert!(stdout(&text).contains("published 3"), "{}", stdout(&text));

    let tail = shmbus(&["tail", &bus, "--from", "oldest", "--count", "3"]);
    assert_ok(&tail);
    let lines: Vec<String> = stdout(&tail).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("#0 events.order.created event") && lines[0].ends_with(" first"));
    assert!(lines[2].contains("#2 events.order.updated") && lines[2].ends_with(" second"));
    assert_eq!(ls_row(&bus).unwrap()["frames"], 3);

    assert_ok(&shmbus(&["rm", &bus]));
    assert!(ls_row(&bus).is_none(), "removed bus still listed");
    assert_error(&shmbus(&["stat", &bus]), 1, "not found");
}

#[test]
fn tail_json_output_parses_back_with_metadata() {
    let bus = TempBus::create("json", &[]);
    let p = shmbus(&[
        "pub",
        &bus,
        "alerts.disk.full",
        "{\"free\": 0}",
        "--kind",
        "alert",
        "--event-type",
        "new",
        "--correlation-id",
        "2a",
        "--root-id",
        "0xff",
    ]);
    assert_ok(&p);
    assert_ok(&shmbus_stdin(&["pub", &bus, "bin.data"], b"\xff\xfe\x00\n"));

    let out = shmbus(&[
        "tail",
        &bus,
        "--from",
        "oldest",
        "--format",
        "json",
        "--timeout",
        "300ms",
    ]);
    assert_ok(&out);
    let frames: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(frames.len(), 2);
    let f = &frames[0];
    assert_eq!(f["seq"], 0);
    assert_eq!(f["topic"], "alerts.disk.full");
    assert_eq!(f["kind"], "alert");
    assert_eq!(f["event_type"], "new");
    assert_eq!(f["payload"], "{\"free\": 0}");
    assert_eq!(f["correlation_id"], format!("{:032x}", 0x2a));
    assert_eq!(f["root_id"], format!("{:032x}", 0xff));
    assert!(f["parent_id"].is_null());
    assert!(f["producer"].as_u64().unwrap() > 0);
    assert!(f["timestamp_ns"].as_u64().unwrap() > 1_600_000_000_000_000_000);
    assert!(f.get("payload_encoding").is_none());
    let b = &frames[1];
    assert_eq!(b["payload_encoding"], "base64");
    assert_eq!(b["payload"], "//4A");
}

#[test]
fn stdin_publishes_one_frame_per_line() {
    let bus = TempBus::create("stdin", &[]);
    let out = shmbus_stdin(
        &["pub", &bus, "logs.app", "-", "--kind", "log", "--verbose"],
        b"a\nb\r\n\nlast",
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), "0\n1\n2\n3\n", "--verbose prints each seq");
    let tail = shmbus(&["tail", &bus, "--from", "oldest", "--format", "raw", "--count", "4"]);
    assert_ok(&tail);
    assert_eq!(stdout(&tail), "a\nb\n\nlast\n");
}

#[test]
fn tail_filters_by_pattern_regex_and_start_seq() {
    let bus = TempBus::create("filter", &[]);
    for topic in ["a.x.c", "a.y", "b.x.c", "new:thing"] {
        assert_ok(&shmbus(&["pub", &bus, topic, topic]));
    }
    let raw = |extra: &[&str]| {
        let mut args = vec!["tail", &bus, "--format", "raw", "--timeout", "200ms"];
        args.extend_from_slice(extra);
        let out = shmbus(&args);
        assert_ok(&out);
        stdout(&out)
    };
    assert_eq!(raw(&["+.x.c", "--from", "oldest"]), "a.x.c\nb.x.c\n");
    assert_eq!(raw(&["--regex", "(new|b)", "--from", "oldest"]), "b.x.c\nnew:thing\n");
    assert_eq!(raw(&["a.#", "--regex", "a\\.y", "--from", "oldest"]), "a.y\n");
    assert_eq!(raw(&["--from", "2"]), "b.x.c\nnew:thing\n");
    assert_eq!(raw(&[]), "", "default start is newest");
}

#[test]
fn tail_prints_frames_published_after_it_started() {
    let bus = TempBus::create("follow", &[]);
    let child = cmd(&["tail", &bus, "--format", "raw", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    wait_for_subscribers(&bus, 1);
    assert_ok(&shmbus(&["pub", &bus, "t.one", "hello"]));
    assert_ok(&shmbus(&["pub", &bus, "t.two", "world"]));
    let status = wait_with_limit(&mut child.0, Duration::from_secs(10));
    assert!(status.success());
    let mut text = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    assert_eq!(text, "hello\nworld\n");
}

#[test]
fn tail_group_members_share_the_frames() {
    let bus = TempBus::create("group", &[]);
    let child = cmd(&["tail", &bus, "--group", "workers", "--format", "raw", "--count", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    wait_for_subscribers(&bus, 1);
    let stat = stat_json(&bus);
    assert_eq!(stat["groups"][0]["name"], "workers");
    assert_eq!(stat["subscribers"][0]["group"], "workers");
    assert_ok(&shmbus(&["pub", &bus, "jobs.run", "job-1"]));
    assert!(wait_with_limit(&mut child.0, Duration::from_secs(10)).success());
    let mut text = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    assert_eq!(text, "job-1\n");
}

#[test]
fn tail_exits_quietly_when_the_output_pipe_closes() {
    let bus = TempBus::create("pipe", &[]);
    for i in 0..5 {
        assert_ok(&shmbus(&["pub", &bus, "t.x", &format!("frame {i}")]));
    }
    // Like `shmbus tail BUS --from oldest | head -1`.
    let child = cmd(&["tail", &bus, "--from", "oldest"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let mut reader = BufReader::new(child.0.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("frame 0"), "{first}");
    drop(reader);
    // No more frames are published: tail must notice the closed pipe while idle.
    let status = wait_with_limit(&mut child.0, Duration::from_secs(5));
    let mut err = String::new();
    child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert_eq!(err, "", "a closed pipe is not an error");
}

#[test]
fn tail_exits_quietly_when_the_pipe_closes_under_a_stream_of_frames() {
    let bus = TempBus::create("pipe2", &[]);
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{BIN}' pub {0} t.x x --repeat 2000 && '{BIN}' tail {0} --from oldest | head -1 >/dev/null; \
             echo \"${{PIPESTATUS[0]}}\"",
            &*bus
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "0");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[test]
fn tail_exits_zero_on_sigint_and_sigterm() {
    let bus = TempBus::create("signal", &[]);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let child = cmd(&["tail", &bus]).stdout(Stdio::piped()).spawn().unwrap();
        let mut child = Running(child);
        wait_for_subscribers(&bus, 1);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.0.id() as libc::pid_t, signal) };
        let status = wait_with_limit(&mut child.0, Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "signal {signal}");
        wait_until("subscriber entry freed", || {
            stat_json(&bus)["subscribers"].as_array().unwrap().is_empty()
        });
    }
}

#[test]
fn tail_timeout_exits_zero_without_output() {
    let bus = TempBus::create("timeout", &[]);
    let start = Instant::now();
    let out = shmbus(&["tail", &bus, "--timeout", "200ms"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn stat_watch_shows_rates_and_stops_after_iterations() {
    let bus = TempBus::create("watch", &[]);
    let out = shmbus(&["stat", &bus, "--watch", "--interval", "100ms", "--iterations", "2"]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out).matches("rates      published").count(),
        2,
        "{}",
        stdout(&out)
    );
    let out = shmbus(&[
        "stat",
        &bus,
        "--watch",
        "--json",
        "--interval",
        "50ms",
        "--iterations",
        "3",
    ]);
    assert_ok(&out);
    let docs: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[2]["rates"]["published_per_sec"], 0.0);
}

#[test]
fn stat_shows_subscriber_lag_and_missed() {
    let bus = TempBus::create("lag", &[]);
    let b = shmbus::Bus::open(&bus).unwrap();
    let _sub = b.subscribe(shmbus::Filter::topic("x.#")).unwrap();
    assert_ok(&shmbus(&["pub", &bus, "x.y", "data", "--repeat", "5"]));
    let stat = stat_json(&bus);
    let row = &stat["subscribers"][0];
    assert_eq!(row["pid"], std::process::id());
    assert_eq!(row["alive"], true);
    assert_eq!(row["filter"], "topic:x.#");
    assert_eq!(row["lag_frames"], 5);
    assert!(row["lag_bytes"].as_u64().unwrap() > 0);
    assert_eq!(row["missed"], 0);
    assert_eq!(ls_row(&bus).unwrap()["subscribers"], 1);
}

#[test]
fn publishing_to_a_full_reject_bus_fails_with_exit_1() {
    let bus = TempBus::create("full", &["--overflow", "reject", "--max-frame", "1KiB"]);
    let b = shmbus::Bus::open(&bus).unwrap();
    let _slow = b.subscribe(shmbus::Filter::all()).unwrap();
    let out = shmbus(&["pub", &bus, "x.y", &"z".repeat(1000), "--repeat", "100000"]);
    assert_error(&out, 1, "bus is full");
}

#[test]
fn ls_reports_foreign_and_corrupt_objects_instead_of_failing() {
    let garbage = TempBus::new("garbage");
    std::fs::write(garbage.path(), vec![0xabu8; 8192]).unwrap();
    let empty = TempBus::new("empty");
    std::fs::write(empty.path(), b"").unwrap();
    let good = TempBus::create("good", &[]);

    let start = Instant::now();
    let out = shmbus(&["ls"]);
    assert_ok(&out);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "ls must not wait on bad objects"
    );
    let text = stdout(&out);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row(&garbage).contains("error: not a shmbus segment"), "{text}");
    assert!(row(&garbage).contains(" ? "), "unknown columns are marked: {text}");
    assert!(row(&empty).contains("error: too small"), "{text}");
    assert!(row(&good).ends_with("ok"), "{text}");

    let json = ls_row(&garbage).unwrap();
    assert!(json["error"].as_str().unwrap().contains("bad magic"));
    assert!(json["frames"].is_null());
    assert_error(&shmbus(&["stat", &garbage]), 1, "incompatible segment");
}

#[test]
fn usage_and_runtime_errors_have_one_line_and_the_right_exit_code() {
    let bus = TempBus::create("errors", &[]);
    let missing = TempBus::new("missing");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["stat", &missing], 1, "not found"),
        (vec!["tail", &missing], 1, "not found"),
        (vec!["pub", &missing, "a.b", "x"], 1, "not found"),
        (vec!["rm", &missing], 1, "not found"),
        (vec!["create", &bus], 1, "already exists"),
        (
            vec!["create", &missing, "--memory-limit", "64XB"],
            2,
            "invalid size \"64XB\"",
        ),
        (
            vec!["create", &missing, "--max-frame", "lots"],
            2,
            "invalid size \"lots\"",
        ),
        (vec!["create", &missing, "--mode", "0abc"], 2, "invalid mode \"0abc\""),
        (vec!["create", &missing, "--mode", "0400"], 2, "owner read and write"),
        (vec!["create", &missing, "--keep-ratio", "1.5"], 2, "keep_ratio"),
        (
            vec!["create", &missing, "--claim-timeout", "5 fortnights"],
            2,
            "invalid duration",
        ),
        (vec!["create", "a/b"], 2, "invalid bus name"),
        (vec!["stat", "bad name"], 2, "invalid bus name"),
        (vec!["tail", &bus, "a.#.b"], 2, "invalid topic pattern \"a.#.b\""),
        (
            vec!["tail", &bus, "--regex", "(unclosed"],
            2,
            "invalid regex \"(unclosed\"",
        ),
        (vec!["tail", &bus, "--from", "latest"], 2, "invalid start"),
        (vec!["pub", &bus, "a..b", "x"], 2, "invalid topic \"a..b\""),
        (
            vec!["pub", &bus, "a.b", "x", "--correlation-id", "xyz"],
            2,
            "invalid id",
        ),
    ];
    for (args, code, needle) in cases {
        let out = shmbus(&args);
        assert_error(&out, code, needle);
    }
    assert!(
        !std::path::Path::new(&missing.path()).exists(),
        "no failed create left a segment"
    );
}

#[test]
fn missing_arguments_exit_2_with_usage() {
    let out = shmbus(&["pub"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage:"), "{}", stderr(&out));
    assert_eq!(shmbus(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn permission_denied_is_reported_for_stat_and_ls() {
    let bus = TempBus::create("perm", &["--mode", "0600"]);
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let run = |args: &[&str]| -> std::io::Result<Output> {
        let mut c = cmd(args);
        if root {
            // Root bypasses file permissions: run the binary as `nobody`.
            c.uid(65534).gid(65534);
        }
        c.output()
    };
    if !root {
        std::fs::set_permissions(bus.path(), std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    }
    let out = match run(&["stat", &bus]) {
        Ok(out) => out,
        Err(e) => {
            println!("skipped: cannot run the binary as another user ({e})");
            return;
        }
    };
    if root && stderr(&out).contains("Permission denied (os error 13)") {
        println!("skipped: user nobody cannot execute {BIN}");
        return;
    }
    assert_error(&out, 1, "permission denied");
    let ls = run(&["ls"]).unwrap();
    assert_ok(&ls);
    let line = stdout(&ls)
        .lines()
        .find(|l| l.starts_with(&*bus.0))
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("error: permission denied"), "{}", stdout(&ls));
}

#[test]
fn every_subcommand_has_help_with_examples() {
    let top = shmbus(&["--help"]);
    assert_ok(&top);
    assert!(stdout(&top).contains("Exit codes:"));
    assert!(!stdout(&top).contains("__demo"), "internal subcommands are hidden");
    for sub in ["create", "ls", "stat", "tail", "pub", "rm", "bench", "demo"] {
        let out = shmbus(&[sub, "--help"]);
        assert_ok(&out);
        assert!(stdout(&out).contains("Examples:"), "{sub} --help has no examples");
    }
}

#[test]
fn demo_runs_for_one_second_and_cleans_up() {
    let out = cmd(&["demo", "--seconds", "1", "--rate", "2000"]).output().unwrap();
    assert_ok(&out);
    let text = stdout(&out);
    let name = text
        .lines()
        .find_map(|l| l.strip_prefix("removed bus \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("demo names the bus it removed")
        .to_string();
    assert!(text.contains("sensors/s") && text.contains("p99"), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("1s"))
        .expect("one row per second");
    assert!(row.split_whitespace().count() >= 8, "{row}");
    assert!(!shmbus::Bus::list().unwrap().contains(&name), "demo bus left behind");
}

#[test]
fn bench_quick_prints_a_results_table_and_json() {
    let out = shmbus(&["bench", "--quick", "--quiet", "--scenarios", "throughput"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("throughput") && l.contains("shmbus")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("throughput") && l.contains("crossbeam")),
        "{text}"
    );
    let out = shmbus(&["bench", "--quick", "--quiet", "--scenarios", "throughput", "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("bench --json is JSON");
    let shm = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["peer"] == "shmbus")
        .expect("shmbus row");
    assert_eq!(shm["missed"], 0);
    assert!(shm["delivered"].as_u64().unwrap() > 0);
    assert_error(
        &shmbus(&["bench", "--scenarios", "warp"]),
        2,
        "unknown scenario \"warp\"",
    );
    // `shmbus bench NAME`: NAME labels the temporary buses; a bad one is a
    // usage error, and nothing is left behind either way.
    let label = format!("clitest{}", std::process::id());
    assert_ok(&shmbus(&[
        "bench",
        &label,
        "--quick",
        "--quiet",
        "--scenarios",
        "throughput",
    ]));
    assert!(
        !shmbus::Bus::list().unwrap().iter().any(|b| b.contains(&label)),
        "labelled bench bus left behind"
    );
    assert_error(&shmbus(&["bench", "a/b", "--quick"]), 2, "invalid bus name");
}
