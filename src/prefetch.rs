//! A hint to the CPU that memory will be read soon, for loops that read rows at random from a
//! large table: asked far enough ahead, the rows' cache misses overlap instead of stalling the
//! loop one after another.

/// Asks for the cache line holding `data[0]` to be brought into the cache (no effect off
/// x86-64, or for an empty slice).
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(first) = data.first() {
        // SAFETY: a prefetch is only a hint; the pointer is valid.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (first as *const T).cast(),
            )
        };
    }
}
