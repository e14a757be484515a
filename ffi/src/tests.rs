//! Rust-side tests of the C entry points (the exhaustive suite is the C
//! program tests/c/test_ffi.c, run by `make test-c`).

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use shmbus_core::{Bus, EventType, Filter, Kind, Meta, Start, SubscribeOptions};

use crate::status::shmbus_status_t::*;
use crate::*;

/// A unique bus name, removed on drop (also when a test fails).
struct TempBus(CString);

impl TempBus {
    fn new(tag: &str) -> TempBus {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TempBus(CString::new(format!("ffi-unit-{tag}-{}-{n}", std::process::id())).unwrap())
    }
    fn name(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempBus {
    fn drop(&mut self) {
        let _ = Bus::remove(self.name());
    }
}

fn small_config() -> shmbus_config_t {
    shmbus_config_t {
        memory_limit: 1 << 20,
        max_frame_size: 4096,
        ..shmbus_config_default()
    }
}

fn last_error() -> String {
    // SAFETY: never NULL, valid until the next failing call on this thread.
    unsafe { CStr::from_ptr(shmbus_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn create(name: &TempBus) -> *mut shmbus_bus_t {
    let mut bus = null_mut();
    // SAFETY: valid pointers.
    let rc = unsafe { shmbus_create(name.0.as_ptr(), &small_config(), &mut bus) };
    assert_eq!(rc, SHMBUS_OK, "{}", last_error());
    bus
}

#[test]
fn c_publish_is_seen_by_a_rust_subscriber_with_metadata() {
    let name = TempBus::new("c2rust");
    let bus = create(&name);
    let rust_bus = Bus::open(name.name()).unwrap();
    let mut sub = rust_bus.subscribe(Filter::topic("events.#")).unwrap();
    let mut meta = shmbus_meta_default();
    meta.kind = shmbus_kind_t::SHMBUS_KIND_ALERT as i32;
    meta.event_type = shmbus_event_type_t::SHMBUS_EVENT_DELETE as i32;
    meta.root_id[0] = 9;
    meta.parent_id[1] = 1;
    let topic = CString::new("events.process.exit").unwrap();
    let mut seq = u64::MAX;
    // SAFETY: valid pointers and lengths.
    let rc = unsafe { shmbus_publish_with(bus, &meta, topic.as_ptr(), b"bye".as_ptr().cast(), 3, &mut seq) };
    assert_eq!(rc, SHMBUS_OK, "{}", last_error());
    let f = sub.try_recv().unwrap().expect("frame");
    assert_eq!(
        (f.seq(), f.topic(), f.payload()),
        (seq, "events.process.exit", &b"bye"[..])
    );
    assert_eq!((f.kind(), f.event_type()), (Kind::Alert, EventType::Delete));
    assert_eq!((f.correlation().root, f.correlation().parent), (9, 256));
    drop(sub);
    // SAFETY: a live handle, closed once.
    unsafe { shmbus_close(bus) };
}

#[test]
fn rust_publish_is_received_through_c_with_a_nul_terminated_topic() {
    let name = TempBus::new("rust2c");
    let bus = create(&name);
    let rust_bus = Bus::open(name.name()).unwrap();
    let mut sub = null_mut();
    let pattern = CString::new("a.+").unwrap();
    // SAFETY: valid pointers.
    assert_eq!(unsafe { shmbus_subscribe(bus, pattern.as_ptr(), &mut sub) }, SHMBUS_OK);
    rust_bus
        .publish_with(&Meta::log().correlation_id(5), "a.b", b"payload")
        .unwrap();
    rust_bus.publish("x.y", b"not matched").unwrap();
    let mut f = std::mem::MaybeUninit::<shmbus_frame_t>::uninit();
    // SAFETY: valid pointers.
    assert_eq!(unsafe { shmbus_recv(sub, 1000, f.as_mut_ptr()) }, SHMBUS_OK);
    // SAFETY: written on SHMBUS_OK.
    let f = unsafe { f.assume_init() };
    // SAFETY: the frame points into the live subscriber's buffers.
    let (topic, payload) = unsafe {
        (
            CStr::from_ptr(f.topic).to_str().unwrap(),
            std::slice::from_raw_parts(f.payload, f.payload_len),
        )
    };
    assert_eq!((topic, f.topic_len, payload), ("a.b", 3, &b"payload"[..]));
    assert_eq!(f.kind, shmbus_kind_t::SHMBUS_KIND_LOG);
    assert_eq!(u128::from_le_bytes(f.correlation_id), 5);
    assert_eq!(f.producer, std::process::id());
    let mut g = std::mem::MaybeUninit::<shmbus_frame_t>::uninit();
    // SAFETY: valid pointers.
    assert_eq!(unsafe { shmbus_recv(sub, 0, g.as_mut_ptr()) }, SHMBUS_TIMEOUT);
    // SAFETY: valid handle.
    assert_eq!(unsafe { shmbus_sub_delivered(sub) }, 1);
    // SAFETY: live handles, closed once.
    unsafe {
        shmbus_sub_close(sub);
        shmbus_close(bus);
    }
}

#[test]
fn claims_commit_only_on_their_thread_and_outlive_the_bus_handle() {
    let name = TempBus::new("claim");
    let bus = create(&name);
    let rust_bus = Bus::open(name.name()).unwrap();
    let opts = SubscribeOptions {
        start: Start::Oldest,
        ..Default::default()
    };
    let mut sub = rust_bus.subscribe_with(Filter::all(), opts).unwrap();
    let topic = CString::new("t.claim").unwrap();
    let mut claim = null_mut();
    // SAFETY: valid pointers.
    assert_eq!(unsafe { shmbus_claim(bus, topic.as_ptr(), 4, &mut claim) }, SHMBUS_OK);
    // The claim keeps its own reference to the bus.
    // SAFETY: live handle, closed once.
    unsafe { shmbus_close(bus) };
    struct SendPtr(*mut shmbus_claim_t);
    // SAFETY: only used to show that another thread is refused; the claim is not touched there.
    unsafe impl Send for SendPtr {}
    let p = SendPtr(claim);
    let rc = std::thread::spawn(move || {
        let p = p;
        // SAFETY: a live claim; the call refuses the wrong thread without touching it.
        let rc = unsafe { shmbus_claim_commit(p.0, null_mut()) };
        (rc, last_error())
    })
    .join()
    .unwrap();
    assert_eq!(rc.0, SHMBUS_WRONG_THREAD);
    assert!(rc.1.starts_with("shmbus_claim_commit:"), "{}", rc.1);
    // SAFETY: live claim, `len` bytes of payload.
    unsafe {
        assert_eq!(shmbus_claim_len(claim), 4);
        let p = shmbus_claim_payload(claim).cast::<u8>();
        std::ptr::copy_nonoverlapping(b"abcd".as_ptr(), p, 4);
    }
    let mut seq = u64::MAX;
    // SAFETY: live claim, committed once on its thread.
    assert_eq!(unsafe { shmbus_claim_commit(claim, &mut seq) }, SHMBUS_OK);
    let f = sub.try_recv().unwrap().expect("frame");
    assert_eq!((f.seq(), f.payload()), (seq, &b"abcd"[..]));
}

#[test]
fn null_and_bad_utf8_arguments_fail_cleanly() {
    let mut bus = null_mut();
    let cfg = small_config();
    // SAFETY: NULL pointers are part of the contract; they must be reported.
    unsafe {
        assert_eq!(shmbus_create(null(), &cfg, &mut bus), SHMBUS_INVALID_ARGUMENT);
        assert_eq!(last_error(), "shmbus_create: argument `name` is NULL");
        let bad = b"bad\xffname\0";
        assert_eq!(
            shmbus_open(bad.as_ptr().cast::<c_char>(), &mut bus),
            SHMBUS_INVALID_ARGUMENT
        );
        assert!(last_error().contains("not valid UTF-8"), "{}", last_error());
        assert_eq!(
            shmbus_publish(null(), null(), null(), 0, null_mut()),
            SHMBUS_INVALID_ARGUMENT
        );
        assert_eq!(shmbus_sub_missed(null()), 0);
        assert_eq!(last_error(), "shmbus_sub_missed: argument `sub` is NULL");
        assert!(shmbus_claim_payload(null_mut()).is_null());
        assert_eq!(shmbus_claim_abort(null_mut()), SHMBUS_OK);
        shmbus_close(null_mut());
        shmbus_sub_close(null_mut());
    }
    assert!(bus.is_null());
}
