//! Heap that glibc keeps after it was freed, handed back to the system. glibc keeps freed
//! memory in its arenas for reuse, where it counts as resident: after a burst of connections
//! (each with its buffers) an idle server stayed at twice its resident size until the next
//! burst. `malloc_trim` returns every free page of every arena; it is thread-safe, but it walks
//! every arena under its lock and takes milliseconds for tens of MiB, so callers run it off the
//! async workers and not while a burst is still growing the heap.

use std::time::{Duration, Instant};

/// What one trim did: resident memory before and after, and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Trimmed {
    pub resident_before_kib: u64,
    pub resident_after_kib: u64,
    pub took: Duration,
}

impl Trimmed {
    pub fn released_kib(&self) -> u64 {
        self.resident_before_kib
            .saturating_sub(self.resident_after_kib)
    }
}

/// Returns the heap's free pages to the system (glibc on Linux; elsewhere nothing to do).
pub fn release_freed_heap() -> Trimmed {
    let started = Instant::now();
    let resident_before_kib = resident_kib();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns glibc's own free pages; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
    Trimmed {
        resident_before_kib,
        resident_after_kib: resident_kib(),
        took: started.elapsed(),
    }
}

/// This process's resident memory (`/proc/self/statm`), 0 where there is none to read.
pub fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page_kib())
}

fn page_kib() -> u64 {
    #[cfg(unix)]
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    let bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    #[cfg(not(unix))]
    let bytes = 4096;
    u64::try_from(bytes).map_or(4, |bytes| bytes / 1024)
}
