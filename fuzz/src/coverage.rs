//! The coverage map: LLVM's SanitizerCoverage inline 8-bit counters, one per edge of every
//! instrumented module, and the operands of its comparisons.
//!
//! `scripts/fuzz` builds with `-C passes=sancov-module` and the options
//! `-sanitizer-coverage-level=3 -sanitizer-coverage-inline-8bit-counters
//! -sanitizer-coverage-trace-compares`. Each instrumented module then registers its
//! counters at start-up through [`__sanitizer_cov_8bit_counters_init`], bumps one counter
//! per edge taken, and calls the `__sanitizer_cov_trace_*cmp*` hooks with the operands of
//! every integer comparison. Without that build nothing registers, and
//! [`Coverage::instrumented`] says so.
//!
//! The comparison hooks are themselves instrumented (every crate of the build is), so they
//! must not compare anything: a comparison in a hook would call the hook again. They are
//! straight-line code: a hash of the operands picks a slot, and the slot is overwritten.

use std::sync::Mutex;

/// The counter arrays the instrumented modules registered, as (start, length).
static REGIONS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Slots of recent comparison operands (a power of two).
const CMP_SLOTS: usize = 4096;
/// Recent comparisons `(a, b, width in bytes)`: material for the mutator, which writes one
/// operand where the other was (how libFuzzer's table of recent compares gets past magic
/// numbers and lengths).
static mut CMP: [(u64, u64, u64); CMP_SLOTS] = [(0, 0, 0); CMP_SLOTS];

/// Called once per instrumented module, before `main`.
///
/// # Safety
/// Called by the instrumentation with a valid `[start, end)` counter array that lives as
/// long as the program.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __sanitizer_cov_8bit_counters_init(start: *mut u8, end: *mut u8) {
    let len = end as usize - start as usize;
    if let Ok(mut regions) = REGIONS.lock() {
        regions.push((start as usize, len));
    }
}

#[inline(always)]
fn record(a: u64, b: u64, width: u64) {
    // No comparison here (see the module's note): the slot is a masked hash.
    let slot = (a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.rotate_left(17) ^ width) as usize
        & (CMP_SLOTS - 1);
    // SAFETY: `slot < CMP_SLOTS` by the mask; a racing write from another thread can only
    // tear one entry, which is mutation material, never trusted.
    unsafe {
        (&raw mut CMP)
            .cast::<(u64, u64, u64)>()
            .add(slot)
            .write((a, b, width));
    }
}

macro_rules! cmp_hooks {
    ($($name:ident: $t:ty, $w:expr;)*) => {$(
        #[doc = "A comparison hook of SanitizerCoverage's trace-compares."]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(a: $t, b: $t) {
            record(a as u64, b as u64, $w);
        }
    )*};
}

cmp_hooks! {
    __sanitizer_cov_trace_cmp1: u8, 1;
    __sanitizer_cov_trace_cmp2: u16, 2;
    __sanitizer_cov_trace_cmp4: u32, 4;
    __sanitizer_cov_trace_cmp8: u64, 8;
    __sanitizer_cov_trace_const_cmp1: u8, 1;
    __sanitizer_cov_trace_const_cmp2: u16, 2;
    __sanitizer_cov_trace_const_cmp4: u32, 4;
    __sanitizer_cov_trace_const_cmp8: u64, 8;
}

/// `switch` statements: the cases are not recorded (that would need a loop, and a loop
/// compares); the value switched on is.
#[unsafe(no_mangle)]
pub extern "C" fn __sanitizer_cov_trace_switch(value: u64, _cases: *const u64) {
    record(value, value, 8);
}

/// Division and GEP hooks that some LLVM versions call under trace-compares' relatives;
/// defined so that a build with them links.
#[unsafe(no_mangle)]
pub extern "C" fn __sanitizer_cov_trace_div4(_v: u32) {}
/// See [`__sanitizer_cov_trace_div4`].
#[unsafe(no_mangle)]
pub extern "C" fn __sanitizer_cov_trace_div8(_v: u64) {}
/// See [`__sanitizer_cov_trace_div4`].
#[unsafe(no_mangle)]
pub extern "C" fn __sanitizer_cov_trace_gep(_v: usize) {}

/// A comparison seen recently: two operands of `width` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    /// One operand.
    pub a: u64,
    /// The other.
    pub b: u64,
    /// 1, 2, 4 or 8.
    pub width: usize,
}

/// A recently recorded comparison, picked by `index` (any number), if that slot is filled
/// with something other than two equal or zero operands.
pub fn comparison(index: usize) -> Option<Comparison> {
    // SAFETY: in bounds by the modulo; see `record` on tearing.
    let (a, b, width) = unsafe {
        (&raw const CMP)
            .cast::<(u64, u64, u64)>()
            .add(index % CMP_SLOTS)
            .read()
    };
    (width != 0 && a != b).then_some(Comparison {
        a,
        b,
        width: width as usize,
    })
}

/// Hit-count buckets as libFuzzer and AFL count them: 1, 2, 3, 4–7, 8–15, 16–31, 32–127,
/// 128+. A bit per bucket.
fn bucket(count: u8) -> u8 {
    match count {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 4,
        4..=7 => 8,
        8..=15 => 16,
        16..=31 => 32,
        32..=127 => 64,
        _ => 128,
    }
}

/// The counters of every instrumented module and, per counter, the buckets seen so far.
pub struct Coverage {
    regions: Vec<(usize, usize)>,
    seen: Vec<u8>,
}

impl Coverage {
    /// The map of this process; empty when it was built without the instrumentation.
    pub fn new() -> Self {
        let regions = REGIONS.lock().map(|r| r.clone()).unwrap_or_default();
        let total = regions.iter().map(|&(_, len)| len).sum();
        Self {
            regions,
            seen: vec![0; total],
        }
    }

    /// Whether any module registered counters.
    pub fn instrumented(&self) -> bool {
        !self.seen.is_empty()
    }

    /// Edge counters in the map.
    pub fn edges(&self) -> usize {
        self.seen.len()
    }

    /// Zeroes the counters before a run.
    pub fn reset(&mut self) {
        for &(start, len) in &self.regions {
            // SAFETY: a region registered by the instrumentation, live for the program.
            unsafe { std::ptr::write_bytes(start as *mut u8, 0, len) };
        }
    }

    /// After a run: folds its counters into what was seen; returns how many new
    /// (edge, bucket) pairs it reached.
    pub fn merge(&mut self) -> usize {
        let mut new = 0;
        let mut base = 0;
        for &(start, len) in &self.regions {
            // SAFETY: as in `reset`.
            let counters = unsafe { std::slice::from_raw_parts(start as *const u8, len) };
            for (i, &c) in counters.iter().enumerate() {
                if c != 0 {
                    let b = bucket(c);
                    let seen = &mut self.seen[base + i];
                    if *seen & b == 0 {
                        *seen |= b;
                        new += 1;
                    }
                }
            }
            base += len;
        }
        new
    }

    /// (edge, bucket) pairs reached so far.
    pub fn features(&self) -> usize {
        self.seen.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// Edges reached so far.
    pub fn covered_edges(&self) -> usize {
        self.seen.iter().filter(|&&b| b != 0).count()
    }
}

impl Default for Coverage {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_single_bits_rising_with_the_count() {
        let mut last = 0;
        for c in 1..=255u8 {
            let b = bucket(c);
            assert_eq!(b.count_ones(), 1);
            assert!(b >= last);
            last = b;
        }
    }

    #[test]
    fn recorded_comparisons_come_back() {
        record(0x2112_A442, 7, 4);
        let found = (0..CMP_SLOTS).filter_map(comparison).any(|c| {
            c == Comparison {
                a: 0x2112_A442,
                b: 7,
                width: 4,
            }
        });
        assert!(found);
    }
}
