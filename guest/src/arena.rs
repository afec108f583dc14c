//! The guest's allocator. The host runs every call in a fresh instance and drops it after,
//! so memory a call frees is never needed again by a later call: allocation is a pointer
//! bump through a static arena, and freeing gives back only the newest block (so a growing
//! `Vec` or `String` extends in place). A call that outgrows the arena goes on in the system
//! allocator (`dlmalloc`).
//!
//! What it saves: `dlmalloc`'s bookkeeping on every allocation and free, 7.6% of a fresh
//! call's instructions (docs/benchmarks.md). The arena is zero-initialised memory (`.bss`),
//! so it adds nothing to the component's image, and its pages cost only where a call
//! touches them. It also keeps a call from growing the guest's memory, which would cost the
//! host an `mprotect` when the next instance takes the slot.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};

/// Room for a call's allocations: every call of the e2e suite stays under 12 KiB, but the
/// one given a 60 KB token.
const ARENA_BYTES: usize = 256 << 10;

/// The arena's bytes, apart from its counters so that they stay zero-initialised (`.bss`).
#[repr(align(16))]
struct Bytes(UnsafeCell<[u8; ARENA_BYTES]>);

impl Bytes {
    const fn new() -> Self {
        Bytes(UnsafeCell::new([0; ARENA_BYTES]))
    }
}

// SAFETY: a guest instance runs on one thread; the bytes are handed out by one `Arena` only.
unsafe impl Sync for Bytes {}

struct Arena {
    bytes: &'static Bytes,
    /// Offset of the first free byte.
    next: Cell<usize>,
    /// Offset of the newest block, the one `dealloc` and `realloc` may work on in place.
    last: Cell<Option<usize>>,
}

impl Arena {
    const fn new(bytes: &'static Bytes) -> Self {
        Arena {
            bytes,
            next: Cell::new(0),
            last: Cell::new(None),
        }
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod global {
    use super::{Arena, Bytes};

    static BYTES: Bytes = Bytes::new();

    // SAFETY: a guest instance runs on one thread.
    unsafe impl Sync for Arena {}

    #[global_allocator]
    static ARENA: Arena = Arena::new(&BYTES);
}

impl Arena {
    fn base(&self) -> *mut u8 {
        self.bytes.0.get().cast()
    }

    /// The offset of `ptr` in the arena, if it is there.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        ptr.addr()
            .checked_sub(self.base().addr())
            .filter(|&offset| offset < ARENA_BYTES)
    }

    /// A block of `size` bytes aligned to `align`, or `None` when the arena is out of room.
    fn bump(&self, size: usize, align: usize) -> Option<*mut u8> {
        let base = self.base().addr();
        let start = (base + self.next.get()).checked_next_multiple_of(align)? - base;
        let end = start.checked_add(size).filter(|&end| end <= ARENA_BYTES)?;
        self.next.set(end);
        self.last.set(Some(start));
        // SAFETY: `start + size` is within the arena.
        Some(unsafe { self.base().add(start) })
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout.size(), layout.align()) {
            Some(ptr) => ptr,
            // SAFETY: the caller's contract, passed on.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset(ptr) {
            Some(offset) if self.last.get() == Some(offset) => {
                self.next.set(offset);
                self.last.set(None);
            }
            Some(_) => {}
            // SAFETY: not the arena's, so the system allocator's.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if let Some(offset) = self.offset(ptr) {
            // The newest block grows or shrinks where it is, when the arena has room.
            if self.last.get() == Some(offset) && offset + new_size <= ARENA_BYTES {
                self.next.set(offset + new_size);
                return ptr;
            }
            // Any other shrinks where it is (its tail is lost until the instance ends).
            if new_size <= layout.size() {
                return ptr;
            }
        } else {
            // SAFETY: not the arena's, so the system allocator's.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `layout` with `new_size` is valid (the caller's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as for `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are at least this long and do not overlap: an arena block
            // that is not the newest ends before the new one starts, and the newest reaches
            // here only when the arena has no room, so the new block is the system's.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh arena over bytes of its own (leaked: a test's arena lives as long as it).
    fn arena() -> Arena {
        Arena::new(Box::leak(Box::new(Bytes::new())))
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    fn in_arena(arena: &Arena, ptr: *mut u8) -> bool {
        arena.offset(ptr).is_some()
    }

    #[test]
    fn blocks_are_aligned_apart_and_the_newest_is_given_back() {
        let arena = arena();
        unsafe {
            let a = arena.alloc(layout(3, 1));
            let b = arena.alloc(layout(8, 8));
            assert_eq!(b.addr() % 8, 0);
            assert!(b.addr() >= a.addr() + 3);
            let c = arena.alloc(layout(32, 16));
            assert_eq!(c.addr() % 16, 0);
            assert!(c.addr() >= b.addr() + 8);
            // The newest freed is reused; an older one freed is not.
            arena.dealloc(c, layout(32, 16));
            assert_eq!(arena.alloc(layout(32, 16)), c);
            arena.dealloc(a, layout(3, 1));
            assert!(arena.alloc(layout(1, 1)).addr() >= c.addr() + 32);
        }
    }

    #[test]
    fn the_newest_block_grows_in_place_and_another_moves_with_its_bytes() {
        let arena = arena();
        unsafe {
            let old = arena.alloc(layout(4, 1));
            old.copy_from_nonoverlapping(b"abcd".as_ptr(), 4);
            let grown = arena.realloc(old, layout(4, 1), 100);
            assert_eq!(grown, old);
            let newer = arena.alloc(layout(1, 1));
            let moved = arena.realloc(old, layout(100, 1), 200);
            assert!(moved.addr() > newer.addr());
            assert_eq!(std::slice::from_raw_parts(moved, 4), b"abcd");
            // Shrinking a block that is not the newest keeps it where it is.
            let _newest = arena.alloc(layout(1, 1));
            assert_eq!(arena.realloc(moved, layout(200, 1), 2), moved);
        }
    }

    #[test]
    fn past_the_arena_the_system_allocator_serves_and_takes_its_blocks_back() {
        let arena = arena();
        unsafe {
            let most = arena.alloc(layout(ARENA_BYTES - 8, 8));
            assert!(in_arena(&arena, most));
            let outside = arena.alloc(layout(64, 8));
            assert!(!outside.is_null() && !in_arena(&arena, outside));
            outside.write_bytes(7, 64);
            let outside = arena.realloc(outside, layout(64, 8), 4096);
            assert!(!in_arena(&arena, outside));
            assert_eq!(*outside.add(63), 7);
            arena.dealloc(outside, layout(4096, 8));
            // The newest arena block grows up to the end, not past it: then it moves out,
            // bytes and all.
            most.write_bytes(9, 16);
            assert_eq!(
                arena.realloc(most, layout(ARENA_BYTES - 8, 8), ARENA_BYTES),
                most
            );
            let moved = arena.realloc(most, layout(ARENA_BYTES, 8), ARENA_BYTES + 1);
            assert!(!in_arena(&arena, moved));
            assert_eq!(*moved.add(15), 9);
            arena.dealloc(moved, layout(ARENA_BYTES + 1, 8));
        }
    }
}
