//! The Rust half of the cross-language tests (tests/c/cross.sh; the C half
//! is tests/c/xlang.c, with the same payload format).
//!
//! ```text
//! xlang pub NAME TOPIC COUNT                        publish COUNT checksummed frames
//! xlang sub NAME PATTERN COUNT TIMEOUT_MS           receive and verify COUNT frames
//! xlang sub-json NAME PATTERN COUNT TIMEOUT_MS WHO  verify `{"i": I, "producer": "WHO", ...}` frames
//! ```
//!
//! Payload of frame I: `[tag u32][I u64][filler][FNV-1a-64 of the rest u64]`,
//! little-endian, `20 + (I * 7) % 300` bytes. `pub` prints `published COUNT SUM`,
//! `sub` prints `received COUNT SUM missed M` (SUM: wrapping sum of checksums).

use std::process::exit;
use std::time::Duration;

use shmbus_core::{Bus, Config, Filter};

const TAG_RUST: u32 = 0x5;

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn payload_len(i: u64) -> usize {
    20 + usize::try_from((i * 7) % 300).expect("small")
}

fn make_payload(tag: u32, i: u64) -> (Vec<u8>, u64) {
    let n = payload_len(i);
    let mut v = vec![0u8; n];
    v[..4].copy_from_slice(&tag.to_le_bytes());
    v[4..12].copy_from_slice(&i.to_le_bytes());
    for (k, b) in v[12..n - 8].iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(k as u64) as u8) ^ (tag as u8);
    }
    let c = fnv1a(&v[..n - 8]);
    v[n - 8..].copy_from_slice(&c.to_le_bytes());
    (v, c)
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("xlang: {msg}");
    exit(1)
}

fn number(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| fail(format!("not a number: {s}")))
}

fn open(name: &str) -> Bus {
    Bus::open_or_create(name, &Config::default()).unwrap_or_else(|e| fail(e))
}

fn publish(name: &str, topic: &str, count: u64) {
    let bus = open(name);
    let mut sum = 0u64;
    for i in 0..count {
        let (payload, c) = make_payload(TAG_RUST, i);
        sum = sum.wrapping_add(c);
        if i % 2 == 0 {
            bus.publish(topic, &payload).unwrap_or_else(|e| fail(e));
        } else {
            let mut claim = bus.claim(topic, payload.len()).unwrap_or_else(|e| fail(e));
            claim.payload_mut().copy_from_slice(&payload);
            claim.commit();
        }
    }
    println!("published {count} {sum}");
}

fn subscribe(name: &str, pattern: &str, count: u64, timeout_ms: u64, json_from: Option<&str>) {
    let bus = open(name);
    let mut sub = bus.subscribe(Filter::topic(pattern)).unwrap_or_else(|e| fail(e));
    let (mut got, mut sum) = (0u64, 0u64);
    let mut status = 0;
    while got < count {
        let frame = match sub.recv_timeout(Duration::from_millis(timeout_ms)) {
            Ok(Some(f)) => f,
            Ok(None) => {
                eprintln!("xlang sub: timed out after {got} frames");
                status = 1;
                break;
            }
            Err(e) => fail(e),
        };
        let p = frame.payload();
        let ok = match json_from {
            Some(who) => {
                let text = std::str::from_utf8(p).unwrap_or("");
                let prefix = format!(r#"{{"i": {got}, "producer": "{who}", "pid": "#);
                let pid = text.strip_prefix(&prefix).and_then(|r| r.strip_suffix('}'));
                sum = sum.wrapping_add(fnv1a(p));
                pid.is_some_and(|pid| pid.parse::<u32>() == Ok(frame.producer()))
            }
            None => {
                let n = p.len();
                let ok = n >= 20
                    && u64::from_le_bytes(p[4..12].try_into().expect("8 bytes")) == got
                    && n == payload_len(got)
                    && u64::from_le_bytes(p[n - 8..].try_into().expect("8 bytes")) == fnv1a(&p[..n - 8]);
                if ok {
                    sum = sum.wrapping_add(u64::from_le_bytes(p[n - 8..].try_into().expect("8 bytes")));
                }
                ok
            }
        };
        if !ok {
            eprintln!(
                "xlang sub: frame seq {} (expected index {got}) is corrupt: {:?}",
                frame.seq(),
                String::from_utf8_lossy(p)
            );
            status = 1;
            break;
        }
        got += 1;
    }
    println!("received {got} {sum} missed {}", sub.missed());
    exit(status);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["pub", name, topic, count] => publish(name, topic, number(count)),
        ["sub", name, pattern, count, timeout] => subscribe(name, pattern, number(count), number(timeout), None),
        ["sub-json", name, pattern, count, timeout, who] => {
            subscribe(name, pattern, number(count), number(timeout), Some(who))
        }
        _ => {
            eprintln!(
                "usage: xlang pub NAME TOPIC COUNT | xlang sub NAME PATTERN COUNT TIMEOUT_MS | \
                 xlang sub-json NAME PATTERN COUNT TIMEOUT_MS WHO"
            );
            exit(2);
        }
    }
}
