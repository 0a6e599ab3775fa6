//! A counting global allocator: how many bytes an input made live at its peak, and
//! a hard stop for an allocation no input may cause.
//!
//! The runner reads [`peak_since`] after each input and reports an input whose
//! peak is above its soft limit (an allocation out of proportion to a small
//! input). An allocation that would take the process above [`HARD_LIMIT`] cannot
//! be survived, so the allocator itself writes the input in flight (registered by
//! [`set_in_flight`]) to the file registered by [`arm`], prints the line
//! registered with it, and exits with status 1, all without allocating.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Live bytes the process may never reach (2 GiB).
pub const HARD_LIMIT: usize = 2 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The input being run (pointer and length), written out on a hard stop.
static INPUT_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static INPUT_LEN: AtomicUsize = AtomicUsize::new(0);
/// NUL-terminated path to write it to, and the message to print.
static PATH: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static MESSAGE_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static MESSAGE_LEN: AtomicUsize = AtomicUsize::new(0);

/// The allocator: the system's, counting.
pub struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
    if live > HARD_LIMIT {
        hard_stop();
    }
}

/// Writes the input in flight out and exits: called inside the allocator, so it
/// only makes system calls.
#[cold]
fn hard_stop() -> ! {
    const LINE: &[u8] =
        b"\ndiskv-fuzz: FAILURE: an input took the process above the 2 GiB hard allocation limit\n";
    // SAFETY: plain system calls on buffers that outlive them: the static line, the
    // leaked path and message of `arm`, and the input the worker is running, which
    // it keeps alive while the pointer is registered.
    unsafe {
        libc::write(2, LINE.as_ptr().cast(), LINE.len());
        let path = PATH.load(Ordering::Acquire);
        let input = INPUT_PTR.load(Ordering::Acquire);
        if !path.is_null() && !input.is_null() {
            let fd = libc::open(
                path.cast(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                0o644,
            );
            if fd >= 0 {
                libc::write(fd, input.cast(), INPUT_LEN.load(Ordering::Acquire));
                libc::close(fd);
            }
        }
        let message = MESSAGE_PTR.load(Ordering::Acquire);
        if !message.is_null() {
            libc::write(2, message.cast(), MESSAGE_LEN.load(Ordering::Acquire));
        }
        libc::_exit(1)
    }
}

// SAFETY: every call is forwarded to `System` with the same layout; the counters
// are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_LIMIT {
            hard_stop();
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_LIMIT {
            hard_stop();
        }
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HARD_LIMIT {
            hard_stop();
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Starts a new peak measurement; returns the bytes live now.
pub fn start_measuring() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// The highest number of bytes live since [`start_measuring`] returned `base`,
/// above `base`.
pub fn peak_since(base: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

/// Registers where a hard stop writes the input in flight, and the line it prints
/// (the reproduce command). Both are leaked: a handful per run.
pub fn arm(path: &std::path::Path, message: String) {
    use std::os::unix::ffi::OsStrExt;
    let mut p = path.as_os_str().as_bytes().to_vec();
    p.push(0);
    PATH.store(
        Box::leak(p.into_boxed_slice()).as_mut_ptr(),
        Ordering::Release,
    );
    let m = Box::leak(message.into_bytes().into_boxed_slice());
    MESSAGE_LEN.store(m.len(), Ordering::Release);
    MESSAGE_PTR.store(m.as_mut_ptr(), Ordering::Release);
}

/// Registers the input being run (`None` once it is done). The caller keeps the
/// bytes alive until it registers `None`.
pub fn set_in_flight(input: Option<&[u8]>) {
    match input {
        Some(bytes) => {
            INPUT_LEN.store(bytes.len(), Ordering::Release);
            INPUT_PTR.store(bytes.as_ptr().cast_mut(), Ordering::Release);
        }
        None => INPUT_PTR.store(std::ptr::null_mut(), Ordering::Release),
    }
}
