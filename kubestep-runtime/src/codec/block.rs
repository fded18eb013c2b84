//! Numbers as raw bytes: the fixed-width element types whose wire encoding is their memory on a
//! little-endian machine, varints, and large buffers filled in one pass.

/// Plain numbers whose every bit pattern is a valid value and whose wire encoding (one byte,
/// or little-endian IEEE 754) is their in-memory representation on a little-endian machine.
pub(super) trait Plain: Copy + 'static {}
impl Plain for u8 {}
impl Plain for i8 {}
impl Plain for f32 {}
impl Plain for f64 {}

/// A slice of plain numbers seen as its bytes.
pub(super) fn as_bytes<T: Plain>(v: &[T]) -> &[u8] {
    // SAFETY: `Plain` types have no padding and no invalid bit patterns; the length is exact.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// A new vector holding `bytes` (a whole number of `T`s) as `T`s, filled by one copy.
pub(super) fn vec_from<T: Plain>(bytes: &[u8]) -> Vec<T> {
    let len = bytes.len() / std::mem::size_of::<T>();
    debug_assert_eq!(len * std::mem::size_of::<T>(), bytes.len());
    // Not zero-filled first: the copy is the only pass over the new memory.
    let mut out: Vec<T> = Vec::with_capacity(len);
    huge_pages(out.as_mut_ptr().cast(), bytes.len());
    // SAFETY: the capacity holds `len` values of a `Plain` type (any bit pattern is valid),
    // all written by the copy before the length is set.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), bytes.len());
        out.set_len(len);
    }
    out
}

/// Asks the kernel to back a large fresh buffer with transparent huge pages (where they are
/// enabled for `madvise`): filling 256 MiB then faults 128 times instead of 65,536. Advice only.
pub(super) fn huge_pages(ptr: *mut u8, len: usize) {
    const PAGE: usize = 4096;
    if len < 4 << 20 {
        return;
    }
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + len) & !(PAGE - 1);
    if end > start {
        // SAFETY: the range lies inside one live allocation; MADV_HUGEPAGE changes no contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// Appends `n` as a varint: seven bits a byte, low first, the high bit set on all but the last.
pub(super) fn push_varint(out: &mut Vec<u8>, mut n: u128) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Maps signed to unsigned so small magnitudes stay short: 0, -1, 1, -2 -> 0, 1, 2, 3.
pub(super) fn zigzag(n: i128) -> u128 {
    ((n << 1) ^ (n >> 127)) as u128
}

/// The inverse of [`zigzag`].
pub(super) fn unzigzag(n: u128) -> i128 {
    (n >> 1) as i128 ^ -((n & 1) as i128)
}
