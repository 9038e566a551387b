//! Numbers as their little-endian bytes: the form of numpy buffers on Jina's wire
//! (`NdArrayProto.dense.buffer`) and of tensors in flotilla's binary encodings (`array_wire`).

mod sealed {
    /// Only this module's numbers are [`super::LeNumber`]s: [`super::as_le_bytes`] relies on it.
    pub trait Sealed {}
}

/// A fixed-size number with a little-endian byte form (f32, f64, i32, i64; sealed).
pub trait LeNumber: Copy + sealed::Sealed {
    const SIZE: usize;
    fn write(self, out: &mut [u8]);
    fn read(b: &[u8]) -> Self;
}

macro_rules! le_number {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}

        impl LeNumber for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn write(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn read(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
le_number!(f32, f64, i32, i64);

/// `v` as one byte string, each number's little-endian bytes in order.
pub fn to_le_bytes<T: LeNumber>(v: &[T]) -> Vec<u8> {
    let mut out = vec![0u8; v.len() * T::SIZE];
    for (chunk, &x) in out.chunks_exact_mut(T::SIZE).zip(v) {
        x.write(chunk);
    }
    out
}

/// `v`'s bytes as they are in memory, which on a little-endian target are its numbers'
/// little-endian bytes in order: [`to_le_bytes`] without the copy.
#[cfg(target_endian = "little")]
pub fn as_le_bytes<T: LeNumber>(v: &[T]) -> &[u8] {
    // SAFETY: `LeNumber` is sealed and implemented only for f32, f64, i32 and i64: numbers
    // without padding, so every byte of `v` is initialized; `u8` has alignment 1 and no invalid
    // values; the new slice covers exactly the `size_of_val(v)` bytes of `v`'s memory, borrowed
    // for `v`'s lifetime, and nothing can write them while it lives.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// The numbers of `b`; a trailing partial number is ignored (callers check the length).
pub fn from_le_bytes<T: LeNumber>(b: &[u8]) -> Vec<T> {
    b.chunks_exact(T::SIZE).map(T::read).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_through_their_little_endian_bytes() {
        let v = [1.5f32, -0.0, f32::INFINITY, 3.25e-7];
        let b = to_le_bytes(&v);
        assert_eq!(&b[..4], &1.5f32.to_le_bytes());
        assert_eq!(from_le_bytes::<f32>(&b), v);
        let w = [i64::MIN, 7, -1];
        assert_eq!(from_le_bytes::<i64>(&to_le_bytes(&w)), w);
        #[cfg(target_endian = "little")]
        {
            assert_eq!(as_le_bytes(&v), &b[..]);
            assert_eq!(as_le_bytes(&w), &to_le_bytes(&w)[..]);
            assert_eq!(
                as_le_bytes(&[1.0f64, -2.5]),
                &to_le_bytes(&[1.0f64, -2.5])[..]
            );
        }
    }
}
