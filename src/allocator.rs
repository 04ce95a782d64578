//! The allocator the `warden` binary runs on: mimalloc, asked for memory the
//! way its fast path is built for.
//!
//! The `mimalloc` crate's allocator asks for every block with its alignment
//! (`mi_malloc_aligned`). mimalloc answers that from its fast path only for
//! blocks of at most 1 KiB; a larger block goes through its generic aligned
//! path, which takes the plain path only for power-of-two sizes and
//! otherwise allocates `size + alignment - 1` and aligns inside it. Each
//! activity allocates a few such blocks (its boxed evaluation, its JSON text,
//! its journal record); asking for them plainly saved 5% of the instructions
//! of an `Engine::evaluate` (BENCHMARKS.md, section 12, *eighth pass*).
//!
//! An alignment of 8 or less needs none of that: mimalloc's blocks are whole
//! words laid out from word-aligned starts, so every block meets it (the
//! test below checks every small size and some large ones; a 1-byte block
//! is 8-aligned, not 16). Those requests (nearly all of Rust's: bytes,
//! integers, pointers) take the plain `mi_malloc` family; larger alignments
//! keep the aligned one. The library leaves the choice of allocator to
//! whoever embeds it; this type is here so that the binary and the benches
//! share one.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// Alignments every mimalloc block already meets.
const WORD_ALIGN: usize = 8;

/// mimalloc as a global allocator (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mimalloc;

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free`
// takes blocks of either family); a block asked for with an alignment of at
// most 8 meets it (module docs, and the test below); larger alignments are
// passed to mimalloc's aligned calls.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            unsafe { mi::mi_malloc(layout.size()) as *mut u8 }
        } else {
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            unsafe { mi::mi_zalloc(layout.size()) as *mut u8 }
        } else {
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            unsafe { mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8 }
        } else {
            unsafe { mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around every small bin, across the 1 KiB bound of mimalloc's
    /// small blocks, and a few large and huge ones.
    fn sizes() -> impl Iterator<Item = usize> {
        (1..=2100).chain([4095, 4096, 4097, 65_537, 1 << 20, (1 << 20) + 3, 5 << 20])
    }

    #[test]
    fn every_block_meets_its_alignment_and_keeps_its_bytes() {
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in sizes() {
                let layout = Layout::from_size_align(size, align).expect("a valid layout");
                // SAFETY: the layout is not zero-sized; the block is freed below.
                let block = unsafe { Mimalloc.alloc(layout) };
                assert!(!block.is_null(), "size {size}, align {align}: no block");
                assert_eq!(block as usize % align, 0, "size {size}, align {align}: misaligned");
                // SAFETY: the block holds `size` bytes.
                unsafe {
                    block.write_bytes(0xa5, size);
                    assert_eq!(*block.add(size - 1), 0xa5);
                }
                let grown = size * 2 + 1;
                // SAFETY: `block` came from this allocator with `layout`.
                let moved = unsafe { Mimalloc.realloc(block, layout, grown) };
                assert!(!moved.is_null(), "size {size}, align {align}: no grown block");
                assert_eq!(moved as usize % align, 0, "size {size}, align {align}: grown block misaligned");
                // SAFETY: the grown block keeps the first `size` bytes.
                assert!(unsafe { std::slice::from_raw_parts(moved, size) }.iter().all(|b| *b == 0xa5));
                // SAFETY: `moved` came from this allocator, now of `grown` bytes.
                unsafe { Mimalloc.dealloc(moved, Layout::from_size_align(grown, align).expect("a valid layout")) };
            }
        }
    }

    #[test]
    fn a_zeroed_block_is_zeroed_even_where_a_freed_one_was_not() {
        for align in [8, 64] {
            for size in sizes() {
                let layout = Layout::from_size_align(size, align).expect("a valid layout");
                // A dirty block freed first: the zeroed one may reuse it.
                // SAFETY: allocated, written within its size and freed with its layout.
                unsafe {
                    let dirty = Mimalloc.alloc(layout);
                    dirty.write_bytes(0xff, size);
                    Mimalloc.dealloc(dirty, layout);
                }
                // SAFETY: the layout is not zero-sized; the block is freed below.
                let block = unsafe { Mimalloc.alloc_zeroed(layout) };
                assert_eq!(block as usize % align, 0, "size {size}, align {align}: misaligned");
                // SAFETY: the block holds `size` bytes.
                assert!(unsafe { std::slice::from_raw_parts(block, size) }.iter().all(|b| *b == 0), "size {size}");
                // SAFETY: `block` came from this allocator with `layout`.
                unsafe { Mimalloc.dealloc(block, layout) };
            }
        }
    }
}
