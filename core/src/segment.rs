//! The POSIX shared-memory object behind a bus: naming, creation, opening,
//! validation and removal.
//!
//! Bus `NAME` lives in the shared-memory object `shmbus.NAME`
//! (`/dev/shm/shmbus.NAME` on Linux). Opening validates everything in the
//! header against the real size of the object, so a truncated, foreign or
//! garbage segment is refused with [`Error::Incompatible`] before any of its
//! offsets is used.
//!
//! Memory is paid for at setup: `create` allocates every page and a process
//! maps a ready, fully allocated segment with `MAP_POPULATE`, so the ring's
//! first lap takes no page faults (why and what it costs: ARCHITECTURE.md,
//! "The segment").

use std::ffi::CString;
use std::time::{Duration, Instant};

use zerocopy::IntoBytes;

use crate::config::{Config, Overflow, MAX_MEMORY_LIMIT};
use crate::error::{Error, Result};
use crate::layout::{self, Layout, SegmentHeader};
use crate::mem::Mem;
use crate::ring::Ring;

/// Longest accepted bus name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Prefix of every shared-memory object created by shmbus.
pub const PREFIX: &str = "shmbus.";

/// Check a bus name before any system call sees it.
///
/// ```
/// assert!(shmbus::validate_name("sensors").is_ok());
/// assert!(shmbus::validate_name("../etc").is_err());
/// assert!(shmbus::validate_name("a/b").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("must be at most 200 bytes");
    }
    if name.contains('/') {
        return bad("must not contain '/'");
    }
    if name.contains("..") {
        return bad("must not contain '..'");
    }
    if name.bytes().any(|b| b == 0) {
        return bad("must not contain NUL");
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("must not contain whitespace or control characters");
    }
    Ok(())
}

fn shm_path(name: &str) -> Result<CString> {
    validate_name(name)?;
    CString::new(format!("/{PREFIX}{name}")).map_err(|_| Error::InvalidName {
        name: name.into(),
        reason: "must not contain NUL",
    })
}

/// A mapped segment. Unmapped on drop.
pub(crate) struct Segment {
    pub(crate) name: String,
    base: *mut u8,
    len: usize,
    guard: crate::sigbus::Registration,
    /// `guard.flag()`: one load per check instead of a walk from the
    /// registration to its table entry (publish and receive check twice
    /// each; the walk was about 15 instructions per publish).
    truncated: &'static std::sync::atomic::AtomicBool,
    pub(crate) header: SegmentHeader,
    pub(crate) ring: Ring,
}

// SAFETY: the mapping is process-wide and stays valid until drop; all
// concurrent access goes through atomics or validated copies (ring.rs).
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

impl Drop for Segment {
    fn drop(&mut self) {
        // Unregister from the SIGBUS table before the range is unmapped.
        drop(std::mem::replace(&mut self.guard, crate::sigbus::Registration::none()));
        // SAFETY: `base`/`len` come from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

struct Fd(libc::c_int);
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor.
        unsafe { libc::close(self.0) };
    }
}

fn check_atomics(name: &str) -> Result<()> {
    if !portable_atomic::AtomicU128::is_lock_free() {
        return Err(Error::Incompatible {
            name: name.into(),
            reason: "this CPU has no lock-free 128-bit compare-and-swap".into(),
        });
    }
    Ok(())
}

/// Give a fresh (empty) object its `len` bytes, allocated now: with too
/// little room in `/dev/shm` (or the memory cgroup) the create fails here,
/// with the object removed by the caller, instead of a later write faulting.
///
/// `fallocate` (mode 0) allocates first and sets the size last, so an opener
/// racing the create sees an empty object (and waits) for as long as the
/// allocation takes, tens of ms per 64 MiB, not a sized object with no
/// header yet.
fn size_and_reserve(fd: &Fd, len: usize, name: &str) -> Result<()> {
    loop {
        // SAFETY: fd is ours; mode 0 allocates the range [0, len) and
        // extends the size to `len`.
        if unsafe { libc::fallocate(fd.0, 0, 0, len as libc::off_t) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // A signal arrived while tmpfs was allocating: go on.
            Some(libc::EINTR) => continue,
            // No fallocate here: size it; pages are allocated when first written.
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
                // SAFETY: fd is ours; length validated (<= 1 TiB).
                if unsafe { libc::ftruncate(fd.0, len as libc::off_t) } != 0 {
                    return Err(Error::io("ftruncate", std::io::Error::last_os_error()));
                }
                return Ok(());
            }
            Some(libc::ENOSPC) | Some(libc::ENOMEM) => {
                return Err(Error::io(
                    format!("allocate {len} bytes for bus {name:?}: not enough room in /dev/shm"),
                    e,
                ))
            }
            _ => return Err(Error::io(format!("fallocate bus {name:?}"), e)),
        }
    }
}

/// Is the ready word set? Read through the descriptor, without mapping.
fn peek_ready(fd: &Fd) -> bool {
    let mut w = [0u8; 8];
    // SAFETY: fd is ours; at most 8 bytes are read into `w`.
    let n = unsafe { libc::pread(fd.0, w.as_mut_ptr().cast(), w.len(), layout::OFF_READY as libc::off_t) };
    n == 8 && u64::from_ne_bytes(w) == layout::READY
}

/// Map `len` bytes of the object; `populate`: map every page now (only for
/// a ready object whose pages all exist, see the module docs).
fn map(fd: &Fd, len: usize, name: &str, populate: bool) -> Result<*mut u8> {
    let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
    // SAFETY: mapping a shared-memory fd we own; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd.0,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::io(format!("mmap bus {name:?}"), std::io::Error::last_os_error()));
    }
    Ok(p.cast())
}

impl Segment {
    /// Create a new segment; fails with [`Error::Exists`] if there is one.
    pub(crate) fn create(name: &str, cfg: &Config) -> Result<Segment> {
        let path = shm_path(name)?;
        cfg.validate()?;
        check_atomics(name)?;
        let layout = cfg.layout().expect("validated config has a layout");
        // SAFETY: valid C string; flags and mode are plain integers.
        let fd = unsafe {
            libc::shm_open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                cfg.mode as libc::mode_t,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EEXIST) => Error::Exists { name: name.into() },
                Some(libc::EACCES) => Error::PermissionDenied { name: name.into() },
                _ => Error::io(format!("shm_open bus {name:?}"), e),
            });
        }
        let fd = Fd(fd);
        let cleanup = |e: Error| {
            // SAFETY: valid C string; we created this object and failed to set it up.
            unsafe { libc::shm_unlink(path.as_ptr()) };
            e
        };
        // The umask may have cleared bits from the mode: set it exactly.
        // SAFETY: fd is ours.
        if unsafe { libc::fchmod(fd.0, cfg.mode as libc::mode_t) } != 0 {
            return Err(cleanup(Error::io("fchmod", std::io::Error::last_os_error())));
        }
        size_and_reserve(&fd, layout.segment_len, name).map_err(cleanup)?;
        let base = map(&fd, layout.segment_len, name, true).map_err(cleanup)?;
        let (overflow, block_ns) = match cfg.overflow {
            Overflow::Evict => (0, 0),
            Overflow::Reject => (1, 0),
            Overflow::Block(t) => (2, t.as_nanos() as u64),
        };
        let header = SegmentHeader {
            magic: layout::MAGIC,
            layout_version: layout::LAYOUT_VERSION,
            header_len: layout::HEADER_LEN as u32,
            segment_len: layout.segment_len as u64,
            keep_ratio_bits: cfg.keep_ratio.to_bits(),
            max_frame_size: cfg.max_frame_size,
            listener_limit: cfg.listener_limit,
            producer_limit: cfg.producer_limit,
            partitions: layout.parts as u32,
            partition_size: layout.part_size,
            overflow,
            mode: cfg.mode,
            block_timeout_ns: block_ns,
            claim_timeout_ns: cfg.claim_timeout.as_nanos() as u64,
            flags: (if cfg.checksum { layout::FLAG_CHECKSUM } else { 0 })
                | (if cfg.single_producer {
                    layout::FLAG_SINGLE_PRODUCER
                } else {
                    0
                }),
            creator_pid: std::process::id(),
            created_ns: crate::clock::realtime_ns(),
            off_parts: layout.off_parts as u64,
            off_slots: layout.off_slots as u64,
            off_subs: layout.off_subs as u64,
            off_groups: layout.off_groups as u64,
            off_data: layout.off_data as u64,
        };
        let bytes = header.as_bytes();
        // SAFETY: the mapping is at least one page; nobody else has seen the
        // segment as ready yet (ready word still 0).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), base, bytes.len()) };
        // SAFETY: base..segment_len is our fresh mapping, 4096-aligned.
        let mem = unsafe { Mem::new(base, layout.segment_len) };
        let ring = Ring {
            mem,
            l: layout,
            single: header.flags & layout::FLAG_SINGLE_PRODUCER != 0,
            write_ahead: crate::mem::has_prefetch_w(),
        };
        ring.init();
        mem.u64_at(layout::OFF_READY)
            .store(layout::READY, std::sync::atomic::Ordering::Release);
        let guard = crate::sigbus::register(base, layout.segment_len);
        Ok(Segment {
            name: name.into(),
            base,
            len: layout.segment_len,
            truncated: guard.flag(),
            guard,
            header,
            ring,
        })
    }

    /// Open an existing segment, validating it completely.
    pub(crate) fn open(name: &str) -> Result<Segment> {
        let path = shm_path(name)?;
        check_atomics(name)?;
        // SAFETY: valid C string.
        let fd = unsafe { libc::shm_open(path.as_ptr(), libc::O_RDWR, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENOENT) => Error::NotFound { name: name.into() },
                Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied { name: name.into() },
                _ => Error::io(format!("shm_open bus {name:?}"), e),
            });
        }
        let fd = Fd(fd);
        let incompatible = |reason: String| Error::Incompatible {
            name: name.into(),
            reason,
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            // SAFETY: fstat into a zeroed struct.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fd is ours, st is a valid out-pointer.
            if unsafe { libc::fstat(fd.0, &mut st) } != 0 {
                return Err(Error::io("fstat", std::io::Error::last_os_error()));
            }
            let size = st.st_size as u64;
            // tmpfs counts allocated pages in 512-byte blocks.
            let allocated = (st.st_blocks as u64).saturating_mul(512) >= size;
            if size < layout::HEADER_LEN as u64 {
                if size == 0 && Instant::now() < deadline {
                    // The creator has not sized it yet.
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                return Err(incompatible(format!("segment is {size} bytes, smaller than a header")));
            }
            if size > MAX_MEMORY_LIMIT {
                return Err(incompatible(format!("segment is {size} bytes, larger than any bus")));
            }
            let len = size as usize;
            // Populate only what is ready: a creator still at work makes
            // this loop map the object again, and a foreign object is refused.
            let base = map(&fd, len, name, allocated && peek_ready(&fd))?;
            let seg_guard = MapGuard(base, len);
            // SAFETY: at least HEADER_LEN bytes are mapped.
            let mem = unsafe { Mem::new(base, len) };
            let ready = mem.u64_at(layout::OFF_READY).load(std::sync::atomic::Ordering::Acquire);
            if ready != layout::READY {
                let mut hdr = SegmentHeader::default();
                mem.read(0, hdr.as_mut_bytes());
                // A zero magic is a creator between sizing the object and
                // writing its header (mapping a big bus takes milliseconds):
                // wait for it as for the ready word. Any other magic is not ours.
                if hdr.magic != layout::MAGIC && hdr.magic != [0; 8] {
                    return Err(incompatible("not a shmbus segment (bad magic)".into()));
                }
                if Instant::now() < deadline {
                    drop(seg_guard);
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                return Err(incompatible("segment was never initialised (creator died?)".into()));
            }
            let mut header = SegmentHeader::default();
            mem.read(0, header.as_mut_bytes());
            let layout = validate_header(&header, len).map_err(incompatible)?;
            let ring = Ring {
                mem,
                l: layout,
                single: header.flags & layout::FLAG_SINGLE_PRODUCER != 0,
                write_ahead: crate::mem::has_prefetch_w(),
            };
            std::mem::forget(seg_guard);
            let guard = crate::sigbus::register(base, len);
            return Ok(Segment {
                name: name.into(),
                base,
                len,
                truncated: guard.flag(),
                guard,
                header,
                ring,
            });
        }
    }

    /// Unlink the shared-memory object; processes that have it mapped keep it.
    pub(crate) fn remove(name: &str) -> Result<()> {
        let path = shm_path(name)?;
        // SAFETY: valid C string.
        if unsafe { libc::shm_unlink(path.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENOENT) => Error::NotFound { name: name.into() },
                Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied { name: name.into() },
                _ => Error::io(format!("shm_unlink bus {name:?}"), e),
            });
        }
        Ok(())
    }

    /// Fail if another process truncated the segment under us (sigbus.rs).
    #[inline]
    pub(crate) fn check_truncated(&self) -> Result<()> {
        if self.truncated.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Incompatible {
                name: self.name.clone(),
                reason: "segment was truncated by another process; the bus is unusable".into(),
            });
        }
        Ok(())
    }

    /// The configuration recorded in the header.
    pub(crate) fn config(&self) -> Config {
        let h = &self.header;
        Config {
            memory_limit: h.segment_len,
            keep_ratio: f64::from_bits(h.keep_ratio_bits),
            max_frame_size: h.max_frame_size,
            listener_limit: h.listener_limit,
            producer_limit: h.producer_limit,
            overflow: match h.overflow {
                1 => Overflow::Reject,
                2 => Overflow::Block(Duration::from_nanos(h.block_timeout_ns)),
                _ => Overflow::Evict,
            },
            mode: h.mode,
            claim_timeout: Duration::from_nanos(h.claim_timeout_ns),
            checksum: h.flags & layout::FLAG_CHECKSUM != 0,
            single_producer: h.flags & layout::FLAG_SINGLE_PRODUCER != 0,
        }
    }
}

struct MapGuard(*mut u8, usize);
impl Drop for MapGuard {
    fn drop(&mut self) {
        // SAFETY: a mapping we made and nobody else references.
        unsafe { libc::munmap(self.0.cast(), self.1) };
    }
}

/// Recompute the geometry from the header's config and insist it matches
/// both the header's offsets and the real object size.
pub(crate) fn validate_header(h: &SegmentHeader, real_len: usize) -> std::result::Result<Layout, String> {
    if h.magic != layout::MAGIC {
        return Err("not a shmbus segment (bad magic)".into());
    }
    if h.layout_version != layout::LAYOUT_VERSION {
        return Err(format!(
            "layout version {} (this library speaks version {})",
            h.layout_version,
            layout::LAYOUT_VERSION
        ));
    }
    if h.header_len as usize != layout::HEADER_LEN {
        return Err(format!("header length {}", h.header_len));
    }
    let keep_ratio = f64::from_bits(h.keep_ratio_bits);
    let cfg = Config::default()
        .keep_ratio(keep_ratio)
        .max_frame_size(h.max_frame_size)
        .listener_limit(h.listener_limit)
        .producer_limit(h.producer_limit)
        .memory_limit(h.segment_len);
    if let Err(e) = cfg.validate() {
        return Err(format!("header config is invalid: {e}"));
    }
    // Range-check before any arithmetic on these values (no overflow below).
    if h.partitions < 2
        || h.partitions > 256
        || h.partition_size == 0
        || h.partition_size % 64 != 0
        || h.partition_size > MAX_MEMORY_LIMIT
    {
        return Err("header partition geometry is out of range".into());
    }
    let expect = Layout::with(
        h.partitions as u64,
        h.partition_size,
        h.producer_limit as usize,
        h.listener_limit as usize,
    );
    if expect.off_parts as u64 != h.off_parts
        || expect.off_slots as u64 != h.off_slots
        || expect.off_subs as u64 != h.off_subs
        || expect.off_groups as u64 != h.off_groups
        || expect.off_data as u64 != h.off_data
    {
        return Err("header offsets do not match its configuration".into());
    }
    if expect.part_size as usize <= cfg.max_frame_len() || expect.segment_len as u64 != h.segment_len {
        return Err("header partition geometry is inconsistent".into());
    }
    if h.segment_len as usize != real_len {
        return Err(format!(
            "segment is {real_len} bytes but its header says {}",
            h.segment_len
        ));
    }
    Ok(expect)
}

/// Names of every bus on this machine (entries `shmbus.*` in `/dev/shm`).
pub fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir("/dev/shm") {
        Ok(d) => d,
        Err(e) => return Err(Error::io("read /dev/shm", e)),
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix(PREFIX).map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_before_any_system_call() {
        for bad in ["", "a/b", "..", "x..y", "a\0b", "has space", "tab\t"] {
            assert!(matches!(validate_name(bad), Err(Error::InvalidName { .. })), "{bad:?}");
        }
        assert!(validate_name(&"x".repeat(200)).is_ok());
        assert!(validate_name(&"x".repeat(201)).is_err());
        assert!(validate_name("sensors.v1-test_2").is_ok());
    }

    #[test]
    fn header_validation_catches_lies() {
        let cfg = Config::default().memory_limit(1 << 20);
        let l = cfg.layout().unwrap();
        let mut h = SegmentHeader {
            magic: layout::MAGIC,
            layout_version: layout::LAYOUT_VERSION,
            header_len: layout::HEADER_LEN as u32,
            segment_len: l.segment_len as u64,
            keep_ratio_bits: 0.9f64.to_bits(),
            max_frame_size: cfg.max_frame_size,
            listener_limit: 64,
            producer_limit: 128,
            partitions: l.parts as u32,
            partition_size: l.part_size,
            off_parts: l.off_parts as u64,
            off_slots: l.off_slots as u64,
            off_subs: l.off_subs as u64,
            off_groups: l.off_groups as u64,
            off_data: l.off_data as u64,
            ..Default::default()
        };
        assert!(validate_header(&h, l.segment_len).is_ok());
        assert!(validate_header(&h, l.segment_len - 4096).is_err());
        h.layout_version = 99;
        assert!(validate_header(&h, l.segment_len).unwrap_err().contains("version"));
        h.layout_version = layout::LAYOUT_VERSION;
        h.partition_size *= 2;
        assert!(validate_header(&h, l.segment_len).is_err());
        h.partition_size /= 2;
        h.off_data += 8;
        assert!(validate_header(&h, l.segment_len).is_err());
        h.off_data -= 8;
        h.magic[0] = b'X';
        assert!(validate_header(&h, l.segment_len).is_err());
    }
}
