//! The process's allocator: the system's, with every block of 4 KiB or more
//! aligned to 64 bytes (a cache line, and one AVX-512 vector).
//!
//! The kernels load B's rows and store C's as whole vectors at multiples of
//! 64 bytes from a buffer's start. glibc returns large blocks 16 bytes past
//! a page boundary, so each of those vectors straddled two cache lines. On
//! an Intel Xeon (AVX-512) a 12×32 block with its operands in L1 ran 5–20 %
//! slower so than aligned. Where a value lives never changes its bits.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks this large or larger are aligned to [`LINE`].
const LARGE: usize = 4096;
/// Bytes per cache line.
pub(crate) const LINE: usize = 64;

pub struct LineAligned;

#[global_allocator]
static ALLOCATOR: LineAligned = LineAligned;

/// The layout a block of `layout` is given: the same size, aligned to at
/// least a line when it is large. Allocating and freeing a block both ask
/// this, so they agree.
fn widened(layout: Layout) -> Layout {
    if layout.size() >= LARGE && layout.align() < LINE {
        Layout::from_size_align(layout.size(), LINE).unwrap_or(layout)
    } else {
        layout
    }
}

// SAFETY: every call passes on to the system allocator with the layout the
// block was (or is to be) allocated with, `widened`.
unsafe impl GlobalAlloc for LineAligned {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(widened(layout)) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(widened(layout)) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, widened(layout)) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller vouches that new_size, at this alignment, is a valid layout.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if widened(layout).align() == widened(new).align() {
            return unsafe { System.realloc(ptr, widened(layout), new_size) };
        }
        // Growing past LARGE or shrinking below it: a new block of the other alignment.
        let moved = unsafe { self.alloc(new) };
        if !moved.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_start_on_a_line_whatever_their_history() {
        let mut v: Vec<f32> = Vec::new();
        for len in [1, 100, 1023, 1024, 5000, 300_000, 700, 2] {
            v.resize(len, 1.5);
            if len * 4 >= LARGE {
                assert_eq!(v.as_ptr() as usize % LINE, 0, "{len} values");
            }
            assert!(v.iter().all(|&x| x == 1.5), "{len} values keep their contents");
            v.shrink_to_fit();
        }
        for len in [1024usize, 1 << 20] {
            let zeros = vec![0f32; len];
            assert_eq!(zeros.as_ptr() as usize % LINE, 0, "vec![0; {len}]");
        }
    }
}
