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
pub trait Isa {
    /// The bytes of one vector register. The weight-gradient loop takes inputs in blocks one
    /// register wide, so that a block's inputs for half a chunk's samples stay in registers;
    /// at 64 (AVX-512, 32 registers) products take 16 rows per block instead of 8.
    const VECTOR_BYTES: usize;
    /// `a * b + c`.
    fn mul_add<T: Scalar>(a: T, b: T, c: T) -> T;
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

impl Isa for Baseline {
    const VECTOR_BYTES: usize = BASELINE_BYTES;
    #[inline(always)]
    fn mul_add<T: Scalar>(a: T, b: T, c: T) -> T {
        a.mul_add(b, c)
    }
}

/// AVX2 and FMA (the code runs inside a `#[target_feature(enable = "avx2,fma")]` function):
/// one fused multiply-add instruction, 32-byte registers.
pub struct Fused;

impl Isa for Fused {
    const VECTOR_BYTES: usize = 32;
    #[inline(always)]
    fn mul_add<T: Scalar>(a: T, b: T, c: T) -> T {
        a.fused_mul_add(b, c)
    }
}

/// AVX-512F and FMA: as [`Fused`], with 64-byte registers.
pub struct Fused512;

impl Isa for Fused512 {
    const VECTOR_BYTES: usize = 64;
    #[inline(always)]
    fn mul_add<T: Scalar>(a: T, b: T, c: T) -> T {
        a.fused_mul_add(b, c)
    }
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
            $crate::__private::simd::SimdLevel::Baseline => {
                $recv.$f::<$crate::__private::simd::Baseline>($($arg),*)
            }
        }
    };
}

/// Without `simd-dispatch` (or off x86-64): the build's baseline alone.
#[cfg(not(all(feature = "simd-dispatch", target_arch = "x86_64")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __symnet_multiversion {
    ($recv:expr, $f:ident, ($($arg:expr),* $(,)?)) => {
        $recv.$f::<$crate::__private::simd::Baseline>($($arg),*)
    };
}
