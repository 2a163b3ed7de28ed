//! Run-time selection of the machine's vector units for the generated batch code.
//!
//! `network!` writes each batch function (`forward_batch`, `loss_batch`, `backward_sum`) once,
//! as a body generic over an [`Isa`], and calls it through `multiversion!`:
//! with the `simd-dispatch` feature (on by default, needs `std`) on x86-64 that compiles the body three times (the build's baseline, AVX2 + FMA and
//! AVX-512 + FMA, the last two inside `#[target_feature]` functions) and picks one at run time
//! by what the processor has, detected once, as candle's and ndarray's kernels do. Without
//! the feature (or `std`), or on other architectures, it is the baseline body alone: what the
//! target the crate is built for allows.
//!
//! The environment variable `SYMNET_SIMD` (`baseline` or `avx2`; any other value means no cap),
//! read once, caps the choice; it never selects units the processor lacks.
//!
//! The AVX2 and AVX-512 bodies round each multiply-add once (FMA), the baseline body of a
//! build without FMA twice: batch results can differ in the last bits between machines, as
//! they differ from the one-sample functions by summation order.

use crate::Scalar;

/// How the generated lane code multiplies and adds.
///
/// # Safety
/// Code generic over an `Isa` uses the instructions of [`Isa::LEVEL`] (the register
/// transposes of [`transpose`]); an implementation promises that it is used only where the
/// processor has them. The three of this module are: [`Baseline`] names what the build
/// targets, and `multiversion!` runs [`Fused`] and [`Fused512`] only on processors that have
/// their units.
pub unsafe trait Isa {
    /// The vector units the code runs on: the transposes of [`transpose`] use their
    /// instructions.
    const LEVEL: SimdLevel;
    /// The bytes of one vector register. The weight-gradient loop takes inputs in blocks one
    /// register wide, so that a block's inputs for half a chunk's samples stay in registers;
    /// at 64 (AVX-512, 32 registers) products take 16 rows per block instead of 8. By default
    /// the register of [`Isa::LEVEL`].
    const VECTOR_BYTES: usize = match Self::LEVEL {
        SimdLevel::Avx512 => 64,
        SimdLevel::Avx2 => 32,
        SimdLevel::Baseline => 16,
    };
    /// `a * b + c`.
    fn mul_add<T: Scalar>(a: T, b: T, c: T) -> T;
    /// [`Scalar::exp_fast`] with this level's multiply-add (what lane code calls for `exp`).
    #[inline(always)]
    fn exp_fast<T: Scalar>(x: T) -> T {
        x.exp_fast()
    }
    /// [`Scalar::sigmoid_fast`] with this level's multiply-add.
    #[inline(always)]
    fn sigmoid_fast<T: Scalar>(x: T) -> T {
        x.sigmoid_fast()
    }
    /// [`Scalar::tanh_fast`] with this level's multiply-add.
    #[inline(always)]
    fn tanh_fast<T: Scalar>(x: T) -> T {
        x.tanh_fast()
    }
    /// [`Scalar::softplus_fast`] with this level's multiply-add.
    #[inline(always)]
    fn softplus_fast<T: Scalar>(x: T) -> T {
        x.softplus_fast()
    }
}

/// `fused(x)` when `T` is `f32`, `other(x)` otherwise.
#[inline(always)]
fn on_f32<T: Scalar>(x: T, fused: impl Fn(f32) -> f32, other: impl Fn(T) -> T) -> T {
    if core::any::TypeId::of::<T>() == core::any::TypeId::of::<f32>() {
        // SAFETY: `T` is `f32`.
        let v: f32 = unsafe { core::mem::transmute_copy(&x) };
        let r = fused(v);
        // SAFETY: as above.
        unsafe { core::mem::transmute_copy(&r) }
    } else {
        other(x)
    }
}

/// The fast elementwise functions of an FMA level: the `f32` polynomials with each
/// multiply-add one instruction (half the operations on their dependency chains: the sigmoid
/// of 2-4-1's `forward_batch`, AVX-512, was a chain of `vmulps` and `vaddps`).
macro_rules! fused_elementwise {
    () => {
        #[inline(always)]
        fn exp_fast<T: Scalar>(x: T) -> T {
            on_f32(x, crate::scalar::exp_f32_fused, T::exp_fast)
        }
        #[inline(always)]
        fn sigmoid_fast<T: Scalar>(x: T) -> T {
            on_f32(
                x,
                |v| 1.0 / (1.0 + crate::scalar::exp_f32_fused(-v)),
                T::sigmoid_fast,
            )
        }
        #[inline(always)]
        fn tanh_fast<T: Scalar>(x: T) -> T {
            on_f32(x, crate::scalar::tanh_f32_fused, T::tanh_fast)
        }
        #[inline(always)]
        fn softplus_fast<T: Scalar>(x: T) -> T {
            on_f32(x, crate::scalar::softplus_f32_fused, T::softplus_fast)
        }
    };
}

/// The vector register of the build's own target, in bytes.
const BASELINE_BYTES: usize = if cfg!(target_feature = "avx512f") {
    64
} else if cfg!(target_feature = "avx") {
    32
} else {
    16
};

/// The build's own instruction set: one fused multiply-add only where the build targets FMA,
/// a multiplication and an addition otherwise.
pub struct Baseline;

// SAFETY: `LEVEL` names only units the build itself targets.
unsafe impl Isa for Baseline {
    const LEVEL: SimdLevel = if cfg!(all(
        target_feature = "avx512f",
        target_feature = "avx2",
        target_feature = "fma"
    )) {
        SimdLevel::Avx512
    } else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        SimdLevel::Avx2
    } else {
        SimdLevel::Baseline
    };
    const VECTOR_BYTES: usize = BASELINE_BYTES;
    #[inline(always)]
    fn mul_add<T: Scalar>(a: T, b: T, c: T) -> T {
        a.mul_add(b, c)
    }
}

/// AVX2 and FMA (the code runs inside a `#[target_feature(enable = "avx2,fma")]` function):
/// one fused multiply-add instruction, 32-byte registers.
pub struct Fused;

// SAFETY: `multiversion!` runs bodies generic over `Fused` only inside `with_avx2`, after
// `simd_level` found AVX2 and FMA.
unsafe impl Isa for Fused {
    const LEVEL: SimdLevel = SimdLevel::Avx2;
    #[inline(always)]
    fn mul_add<T: Scalar>(a: T, b: T, c: T) -> T {
        a.fused_mul_add(b, c)
    }
    fused_elementwise!();
}

/// AVX-512F and FMA: as [`Fused`], with 64-byte registers.
pub struct Fused512;

// SAFETY: as for `Fused`, inside `with_avx512` after `simd_level` found AVX-512F.
unsafe impl Isa for Fused512 {
    const LEVEL: SimdLevel = SimdLevel::Avx512;
    #[inline(always)]
    fn mul_add<T: Scalar>(a: T, b: T, c: T) -> T {
        a.fused_mul_add(b, c)
    }
    fused_elementwise!();
}

/// The vector units the batch code runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// What the build targets (SSE2 on x86-64 without `-C target-cpu`).
    Baseline = 1,
    /// AVX2 and FMA.
    Avx2 = 2,
    /// AVX-512F, AVX2 and FMA.
    Avx512 = 3,
}

/// The level of this process: detected on first use, capped by `SYMNET_SIMD`.
#[cfg(feature = "std")]
pub fn simd_level() -> SimdLevel {
    use core::sync::atomic::Ordering;
    match LEVEL.load(Ordering::Relaxed) {
        2 => SimdLevel::Avx2,
        3 => SimdLevel::Avx512,
        1 => SimdLevel::Baseline,
        _ => {
            let level = match std::env::var("SYMNET_SIMD").ok().as_deref() {
                Some("baseline") => SimdLevel::Baseline,
                Some("avx2") => detected().min(SimdLevel::Avx2),
                _ => detected(),
            };
            LEVEL.store(level as u8, Ordering::Relaxed);
            level
        }
    }
}

/// Sets the level of this process, capped at what the processor has; returns the level set.
/// For tests and benchmarks that compare the levels in one process.
#[cfg(feature = "std")]
#[doc(hidden)]
pub fn set_simd_level(level: SimdLevel) -> SimdLevel {
    let level = level.min(detected());
    LEVEL.store(level as u8, core::sync::atomic::Ordering::Relaxed);
    level
}

/// The level chosen, 0 until the first call of [`simd_level`].
#[cfg(feature = "std")]
static LEVEL: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// What the processor has.
#[cfg(feature = "std")]
pub fn detected() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        if avx2 && std::is_x86_feature_detected!("avx512f") {
            return SimdLevel::Avx512;
        }
        if avx2 {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Baseline
}

/// Runs `f` compiled for AVX2 and FMA (it is inlined here when it is `#[inline(always)]`).
///
/// # Safety
/// The processor must have AVX2 and FMA ([`simd_level`] says so).
#[cfg(all(feature = "simd-dispatch", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f` compiled for AVX-512F, AVX2 and FMA.
///
/// # Safety
/// The processor must have AVX-512F, AVX2 and FMA ([`simd_level`] says so).
#[cfg(all(feature = "simd-dispatch", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
pub unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Calls `$recv.$f::<I>($args)` with the [`Isa`] and vector units of this processor: the
/// dispatch of the generated batch functions (see the module docs).
#[cfg(all(feature = "simd-dispatch", target_arch = "x86_64"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __symnet_multiversion {
    ($recv:expr, $f:ident, ($($arg:expr),* $(,)?)) => {
        match $crate::__private::simd::simd_level() {
            // SAFETY: simd_level reports only units the processor has.
            $crate::__private::simd::SimdLevel::Avx512 => unsafe {
                $crate::__private::simd::with_avx512(
                    #[inline(always)]
                    || $recv.$f::<$crate::__private::simd::Fused512>($($arg),*),
                )
            },
            // SAFETY: as above.
            $crate::__private::simd::SimdLevel::Avx2 => unsafe {
                $crate::__private::simd::with_avx2(
                    #[inline(always)]
                    || $recv.$f::<$crate::__private::simd::Fused>($($arg),*),
                )
            },
            // SAFETY: the baseline names only units the build targets.
            $crate::__private::simd::SimdLevel::Baseline => unsafe {
                $recv.$f::<$crate::__private::simd::Baseline>($($arg),*)
            },
        }
    };
}

/// Without `simd-dispatch` (or off x86-64): the build's baseline alone.
#[cfg(not(all(feature = "simd-dispatch", target_arch = "x86_64")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __symnet_multiversion {
    ($recv:expr, $f:ident, ($($arg:expr),* $(,)?)) => {
        // SAFETY: the baseline names only units the build targets.
        unsafe { $recv.$f::<$crate::__private::simd::Baseline>($($arg),*) }
    };
}

/// `dst[c][r] = src[r][c]`: a chunk's sample rows into lane vectors (`R` samples of `C`
/// values) or lane vectors into sample rows. For `f32` on AVX-512 or AVX2 it moves whole
/// registers, 16 x 16 (or 8 x 8) blocks through register shuffles and a two-input chunk by
/// two permutes; elsewhere it is the plain loop. (Written as the plain loop in a chunk body,
/// LLVM built the lane vectors with scatters, or with one scalar multiply-add per lane where it
/// fused the loop into the first layer: a third of 64-32-10's `forward_batch` time, AVX-512.)
///
/// # Safety
/// The processor must have the units of `I::LEVEL`: the generated code calls this only in the
/// body that `multiversion!` selected for them.
#[inline(always)]
pub unsafe fn transpose<I: Isa, T: Scalar, const R: usize, const C: usize>(
    src: &[[T; C]; R],
    dst: &mut [[T; R]; C],
) {
    #[cfg(target_arch = "x86_64")]
    if core::any::TypeId::of::<T>() == core::any::TypeId::of::<f32>() {
        // SAFETY: `T` is `f32`, so the arrays have the same layout.
        let (src, dst) = unsafe {
            (
                &*(src as *const [[T; C]; R] as *const [[f32; C]; R]),
                &mut *(dst as *mut [[T; R]; C] as *mut [[f32; R]; C]),
            )
        };
        match I::LEVEL {
            // SAFETY: the caller guarantees the units of `I::LEVEL`.
            SimdLevel::Avx512 if R > 1 && C > 1 => return unsafe { x86::f32_avx512(src, dst) },
            SimdLevel::Avx2 if R > 1 && C > 1 => return unsafe { x86::f32_avx2(src, dst) },
            _ => {}
        }
    }
    transpose_plain(src, dst);
}

/// [`transpose`] as the plain loop.
#[inline(always)]
pub fn transpose_plain<T: Copy, const R: usize, const C: usize>(
    src: &[[T; C]; R],
    dst: &mut [[T; R]; C],
) {
    for c in 0..C {
        for r in 0..R {
            dst[c][r] = src[r][c];
        }
    }
}

/// The register transposes of [`transpose`].
#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// `dst[c][r] = src[r][c]` in 16 x 16 blocks: rows loaded (masked at the right edge),
    /// transposed in registers, stored (masked at the bottom edge). A chunk of two-value rows
    /// is two loads and two permutes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn f32_avx512<const R: usize, const C: usize>(
        src: &[[f32; C]; R],
        dst: &mut [[f32; R]; C],
    ) {
        if R == 16 && C == 2 {
            let p = src.as_ptr().cast::<f32>();
            // SAFETY: `src` is 32 contiguous `f32`, `dst` two rows of 16.
            unsafe {
                let (a, b) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
                let even =
                    _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                let odd =
                    _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
                _mm512_storeu_ps(dst[0].as_mut_ptr(), _mm512_permutex2var_ps(a, even, b));
                _mm512_storeu_ps(dst[1].as_mut_ptr(), _mm512_permutex2var_ps(a, odd, b));
            }
            return;
        }
        blocks::<R, C, 16>(|r0, nr, c0, nc| {
            let (load, store) = (mask16(nc), mask16(nr));
            let mut v = [_mm512_setzero_ps(); 16];
            for (i, v) in v.iter_mut().enumerate().take(nr) {
                // SAFETY: row `r0 + i` exists; the mask keeps to its `nc` values from `c0`.
                *v = unsafe { _mm512_maskz_loadu_ps(load, src[r0 + i].as_ptr().add(c0)) };
            }
            for (j, t) in transpose16(v).iter().enumerate().take(nc) {
                // SAFETY: row `c0 + j` of `dst` exists; the mask keeps to its `nr` values from
                // `r0`.
                unsafe { _mm512_mask_storeu_ps(dst[c0 + j].as_mut_ptr().add(r0), store, *t) };
            }
        });
    }

    /// `block(r0, nr, c0, nc)` for each `B x B` block of an `R x C` array, row by row: rows
    /// `r0..r0 + nr`, columns `c0..c0 + nc` (fewer than `B` at the bottom and right edges).
    #[inline(always)]
    fn blocks<const R: usize, const C: usize, const B: usize>(
        mut block: impl FnMut(usize, usize, usize, usize),
    ) {
        let mut r0 = 0;
        while r0 < R {
            let mut c0 = 0;
            while c0 < C {
                block(r0, (R - r0).min(B), c0, (C - c0).min(B));
                c0 += B;
            }
            r0 += B;
        }
    }

    /// The AVX-512 mask of the first `n` (1 to 16) lanes.
    #[inline(always)]
    fn mask16(n: usize) -> __mmask16 {
        (u32::MAX >> (32 - n)) as __mmask16
    }

    /// The transpose of 16 rows of 16 in four rounds of 16 shuffles: pairs of rows
    /// interleaved, then pairs of pairs (a 128-bit lane `q` of `b[4i + m]` holds column
    /// `4q + m` of rows `4i..4i + 4`), then the 128-bit lanes gathered twice.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        let mut a = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut b = [_mm512_setzero_ps(); 16];
        for i in 0..4 {
            let (lo0, hi0) = (_mm512_castps_pd(a[4 * i]), _mm512_castps_pd(a[4 * i + 2]));
            let (lo1, hi1) = (
                _mm512_castps_pd(a[4 * i + 1]),
                _mm512_castps_pd(a[4 * i + 3]),
            );
            b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, hi0));
            b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, hi0));
            b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo1, hi1));
            b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo1, hi1));
        }
        let mut out = [_mm512_setzero_ps(); 16];
        for m in 0..4 {
            let c0 = _mm512_shuffle_f32x4::<0x88>(b[m], b[4 + m]);
            let c1 = _mm512_shuffle_f32x4::<0xdd>(b[m], b[4 + m]);
            let c2 = _mm512_shuffle_f32x4::<0x88>(b[8 + m], b[12 + m]);
            let c3 = _mm512_shuffle_f32x4::<0xdd>(b[8 + m], b[12 + m]);
            out[m] = _mm512_shuffle_f32x4::<0x88>(c0, c2);
            out[8 + m] = _mm512_shuffle_f32x4::<0xdd>(c0, c2);
            out[4 + m] = _mm512_shuffle_f32x4::<0x88>(c1, c3);
            out[12 + m] = _mm512_shuffle_f32x4::<0xdd>(c1, c3);
        }
        out
    }

    /// `dst[c][r] = src[r][c]` in 8 x 8 blocks, as [`f32_avx512`].
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn f32_avx2<const R: usize, const C: usize>(
        src: &[[f32; C]; R],
        dst: &mut [[f32; R]; C],
    ) {
        // `MASKS[8 - n..16 - n]` has its first `n` lanes set.
        const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        // SAFETY: `8 - n..16 - n` lies in `MASKS` for `n` in 1..=8.
        let mask = |n: usize| unsafe { _mm256_loadu_si256(MASKS.as_ptr().add(8 - n).cast()) };
        blocks::<R, C, 8>(|r0, nr, c0, nc| {
            let (load, store) = (mask(nc), mask(nr));
            let mut v = [_mm256_setzero_ps(); 8];
            for (i, v) in v.iter_mut().enumerate().take(nr) {
                // SAFETY: row `r0 + i` exists; the mask keeps to its `nc` values from `c0`.
                *v = unsafe { _mm256_maskload_ps(src[r0 + i].as_ptr().add(c0), load) };
            }
            for (j, t) in transpose8(v).iter().enumerate().take(nc) {
                // SAFETY: row `c0 + j` of `dst` exists; the mask keeps to its `nr` values from
                // `r0`.
                unsafe { _mm256_maskstore_ps(dst[c0 + j].as_mut_ptr().add(r0), store, *t) };
            }
        });
    }

    /// The transpose of 8 rows of 8: [`transpose16`]'s first two rounds, then the 128-bit
    /// halves exchanged.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let mut a = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            a[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            a[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut b = [_mm256_setzero_ps(); 8];
        for i in 0..2 {
            let (lo0, hi0) = (_mm256_castps_pd(a[4 * i]), _mm256_castps_pd(a[4 * i + 2]));
            let (lo1, hi1) = (
                _mm256_castps_pd(a[4 * i + 1]),
                _mm256_castps_pd(a[4 * i + 3]),
            );
            b[4 * i] = _mm256_castpd_ps(_mm256_unpacklo_pd(lo0, hi0));
            b[4 * i + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(lo0, hi0));
            b[4 * i + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(lo1, hi1));
            b[4 * i + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(lo1, hi1));
        }
        let mut out = [_mm256_setzero_ps(); 8];
        for m in 0..4 {
            out[m] = _mm256_permute2f128_ps::<0x20>(b[m], b[4 + m]);
            out[4 + m] = _mm256_permute2f128_ps::<0x31>(b[m], b[4 + m]);
        }
        out
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    /// `transpose::<I>` of an `R x C` array of distinct values equals the plain loop's.
    fn check<I: Isa, const R: usize, const C: usize>() {
        let src: [[f32; C]; R] =
            core::array::from_fn(|r| core::array::from_fn(|c| (r * C + c) as f32 + 0.5));
        let mut want = [[f32::NAN; R]; C];
        transpose_plain(&src, &mut want);
        let mut got = [[-1.0f32; R]; C];
        // SAFETY: the callers run this only at levels the processor has.
        unsafe { transpose::<I, f32, R, C>(&src, &mut got) };
        assert_eq!(got, want, "{:?}, {R} x {C}", I::LEVEL);
        // `f64` takes the plain loop: this checks that the `f32` dispatch never takes it.
        let src64 = src.map(|row| row.map(f64::from));
        let mut got64 = [[-1.0f64; R]; C];
        // SAFETY: as above.
        unsafe { transpose::<I, f64, R, C>(&src64, &mut got64) };
        assert_eq!(got64, want.map(|row| row.map(f64::from)));
    }

    fn shapes<I: Isa>() {
        check::<I, 16, 1>();
        check::<I, 16, 2>();
        check::<I, 16, 3>();
        check::<I, 16, 4>();
        check::<I, 16, 7>();
        check::<I, 16, 8>();
        check::<I, 16, 9>();
        check::<I, 16, 16>();
        check::<I, 16, 17>();
        check::<I, 16, 33>();
        check::<I, 16, 64>();
        check::<I, 1, 16>();
        check::<I, 2, 16>();
        check::<I, 3, 16>();
        check::<I, 10, 16>();
        check::<I, 17, 16>();
        check::<I, 40, 16>();
        check::<I, 8, 5>();
        check::<I, 8, 13>();
        check::<I, 5, 8>();
        check::<I, 3, 3>();
        check::<I, 20, 37>();
    }

    #[test]
    fn register_transposes_equal_the_plain_loop_at_every_level_the_machine_has() {
        shapes::<Baseline>();
        #[cfg(all(feature = "simd-dispatch", target_arch = "x86_64"))]
        {
            if detected() >= SimdLevel::Avx2 {
                // SAFETY: the processor has AVX2 and FMA.
                unsafe { with_avx2(shapes::<Fused>) };
            }
            if detected() >= SimdLevel::Avx512 {
                // SAFETY: the processor has AVX-512F, AVX2 and FMA.
                unsafe { with_avx512(shapes::<Fused512>) };
            }
        }
    }
}
