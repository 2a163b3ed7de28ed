//! Single-core peak FLOP/s, and the fraction of it that training steps reach.
//!
//! `cargo bench --bench peak` (about 20 s). Build with `RUSTFLAGS="-C target-cpu=native"` to
//! measure the machine's FMA units: without it, x86-64 code is SSE2 only (no FMA instruction),
//! so the kernel below uses separate multiplies and adds and the peak is that of SSE2.
//!
//! # The peak kernel
//!
//! 12 independent accumulator vectors (`__m512` with AVX-512, `__m256` with AVX2 + FMA,
//! `__m128` otherwise), each updated by `acc = acc * m + a` per iteration: a fused
//! multiply-add when the build has FMA, a separate multiply and add otherwise. Twelve chains in
//! flight cover the FMA latency on two pipes. 2 FLOPs per lane per update. (This is the only
//! code in the benches that uses `std::arch`: see [`simd`] for why.)
//!
//! # FLOPs of a training step (batch of n, SGD)
//!
//! For layers `l = 1..L` with `I_l` inputs and `O_l` outputs (`W_l = I_l O_l` weights) and `P`
//! parameters in all, counting multiply and add separately, and only the work that is needed:
//!
//! - forward, per sample: `sum_l 2 W_l` (the matrix-vector products; biases and activations are
//!   left out, they are O(outputs));
//! - backward, per sample: `sum_l 2 W_l` (the weight gradients `dz x^T`, accumulated) plus
//!   `sum_{l >= 2} 2 W_l` (`dx = W^T dz` for every layer but the first: the input's gradient
//!   is not needed);
//! - the update, per step: `2 P` (`theta -= lr * g`).
//!
//! `flops = n (4 sum_l W_l + 2 sum_{l>=2} W_l) + 2 P`. For 784-128-10 that is about 4 P per
//! sample (the "2 P forward + 4 P backward" convention, which also counts the first layer's
//! unneeded `dx`, would give 1.5x more FLOPs and so 1.5x higher GFLOP/s).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::shapes::{self, batch};

/// The peak kernel, with `std::arch` vector types: auto-vectorized array code was tried first,
/// but LLVM's SLP vectorizer merged, shuffled or spilled the chains (it measured 11-26 GFLOP/s
/// for an SSE2 peak of about 66), so the kernel names its vectors explicitly. No other code
/// in the benches uses intrinsics.
#[cfg(target_arch = "x86_64")]
mod simd {
    #[cfg(all(
        target_feature = "avx2",
        target_feature = "fma",
        not(target_feature = "avx512f")
    ))]
    pub use avx2::*;
    #[cfg(target_feature = "avx512f")]
    pub use avx512::*;
    #[cfg(not(all(target_feature = "avx2", target_feature = "fma")))]
    pub use sse::*;

    // The AVX-512 intrinsics are stable since Rust 1.89 (the crate's MSRV is 1.80): this
    // module is compiled only by AVX-512 builds of this bench.
    #[cfg(target_feature = "avx512f")]
    #[allow(clippy::incompatible_msrv)]
    mod avx512 {
        use std::arch::x86_64::*;
        pub type V = __m512;
        pub const W: usize = 16;
        pub const KIND: &str = "AVX-512 vfmadd (__m512)";
        #[inline(always)]
        pub fn splat(x: f32) -> V {
            // SAFETY: this module is compiled only when the build enables the feature.
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        pub fn step(v: V, m: V, a: V) -> V {
            // SAFETY: this module is compiled only when the build enables the feature.
            unsafe { _mm512_fmadd_ps(v, m, a) }
        }
        #[inline(always)]
        pub fn sum(v: V) -> f32 {
            // SAFETY: this module is compiled only when the build enables the feature.
            unsafe { _mm512_reduce_add_ps(v) }
        }
    }

    #[cfg(all(
        target_feature = "avx2",
        target_feature = "fma",
        not(target_feature = "avx512f")
    ))]
    mod avx2 {
        use std::arch::x86_64::*;
        pub type V = __m256;
        pub const W: usize = 8;
        pub const KIND: &str = "AVX2 vfmadd (__m256)";
        #[inline(always)]
        pub fn splat(x: f32) -> V {
            // SAFETY: this module is compiled only when the build enables the feature.
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        pub fn step(v: V, m: V, a: V) -> V {
            // SAFETY: this module is compiled only when the build enables the feature.
            unsafe { _mm256_fmadd_ps(v, m, a) }
        }
        #[inline(always)]
        pub fn sum(v: V) -> f32 {
            let mut out = [0f32; 8];
            // SAFETY: `out` holds 8 floats; the build enables AVX.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
            out.iter().sum()
        }
    }

    #[cfg(not(all(target_feature = "avx2", target_feature = "fma")))]
    mod sse {
        use std::arch::x86_64::*;
        pub type V = __m128;
        pub const W: usize = 4;
        pub const KIND: &str = "SSE mulps + addps (no FMA in this build)";
        #[inline(always)]
        pub fn splat(x: f32) -> V {
            // SAFETY: this module is compiled only when the build enables the feature.
            unsafe { _mm_set1_ps(x) }
        }
        #[inline(always)]
        pub fn step(v: V, m: V, a: V) -> V {
            // SAFETY: this module is compiled only when the build enables the feature.
            unsafe { _mm_add_ps(_mm_mul_ps(v, m), a) }
        }
        #[inline(always)]
        pub fn sum(v: V) -> f32 {
            let mut out = [0f32; 4];
            // SAFETY: `out` holds 4 floats; the build enables SSE.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), v) };
            out.iter().sum()
        }
    }
}

/// Portable fallback: one `[f32; 8]` per chain, left to the auto-vectorizer.
#[cfg(not(target_arch = "x86_64"))]
mod simd {
    pub type V = [f32; 8];
    pub const W: usize = 8;
    pub const KIND: &str = "[f32; 8] mul_add (auto-vectorized)";
    pub fn splat(x: f32) -> V {
        [x; 8]
    }
    #[inline(always)]
    pub fn step(v: V, m: V, a: V) -> V {
        std::array::from_fn(|l| v[l].mul_add(m[l], a[l]))
    }
    pub fn sum(v: V) -> f32 {
        v.iter().sum()
    }
}

use simd::{splat, step, sum, KIND, W};

/// Independent accumulator vectors: enough to cover the FMA latency (4 cycles) on two pipes,
/// few enough to stay in the 16 vector registers of SSE/AVX2 with the two constants.
const CHAINS: usize = 12;

#[inline(never)]
fn fma_kernel(iters: u64, m: f32, a: f32) -> f32 {
    let (m, a) = (splat(m), splat(a));
    // Distinct starting values, hidden from the optimizer (identical chains would be merged).
    let init = |c: usize| splat(black_box(c as f32 + 1.0));
    let (mut c0, mut c1, mut c2, mut c3) = (init(0), init(1), init(2), init(3));
    let (mut c4, mut c5, mut c6, mut c7) = (init(4), init(5), init(6), init(7));
    let (mut c8, mut c9, mut c10, mut c11) = (init(8), init(9), init(10), init(11));
    for _ in 0..iters {
        c0 = step(c0, m, a);
        c1 = step(c1, m, a);
        c2 = step(c2, m, a);
        c3 = step(c3, m, a);
        c4 = step(c4, m, a);
        c5 = step(c5, m, a);
        c6 = step(c6, m, a);
        c7 = step(c7, m, a);
        c8 = step(c8, m, a);
        c9 = step(c9, m, a);
        c10 = step(c10, m, a);
        c11 = step(c11, m, a);
    }
    [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11]
        .into_iter()
        .map(sum)
        .sum()
}

/// The kernel with `__m512` vectors compiled for AVX-512 whatever the build targets: the peak
/// of the units the generated batch code runs on when the runtime's `simd-dispatch` picks
/// AVX-512 in a build without `-C target-cpu`.
///
/// # Safety
/// The processor must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline(never)]
#[allow(unused_unsafe)]
unsafe fn fma_kernel_avx512(iters: u64, m: f32, a: f32) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY (every block): the caller guarantees AVX-512F.
    let (m, a) = unsafe { (_mm512_set1_ps(m), _mm512_set1_ps(a)) };
    let mut c: [__m512; CHAINS] =
        std::array::from_fn(|k| unsafe { _mm512_set1_ps(black_box(k as f32 + 1.0)) });
    for _ in 0..iters {
        for v in c.iter_mut() {
            *v = unsafe { _mm512_fmadd_ps(*v, m, a) };
        }
    }
    c.iter().map(|v| unsafe { _mm512_reduce_add_ps(*v) }).sum()
}

/// Best GFLOP/s of `kernel` (`lanes` f32 per chain) over a few runs of about `secs` each.
fn peak_of(secs: f64, lanes: usize, kernel: impl Fn(u64, f32, f32) -> f32) -> f64 {
    // acc -> acc * 0.999 + 0.001 converges to 1: no overflow, no subnormals.
    let (m, a) = (0.999f32, 0.001f32);
    let mut iters = 1u64 << 16;
    loop {
        let t = Instant::now();
        black_box(kernel(black_box(iters), black_box(m), black_box(a)));
        if t.elapsed().as_secs_f64() > secs / 4.0 {
            break;
        }
        iters *= 2;
    }
    let mut best: f64 = 0.0;
    for _ in 0..5 {
        let t = Instant::now();
        black_box(kernel(black_box(iters), black_box(m), black_box(a)));
        let s = t.elapsed().as_secs_f64();
        best = best.max((iters * (CHAINS * lanes * 2) as u64) as f64 / s / 1e9);
    }
    best
}

/// FLOPs of one training step on a batch of `n`, for layer widths `dims` (input first).
fn step_flops(dims: &[usize], n: usize) -> f64 {
    let weights: Vec<usize> = dims.windows(2).map(|d| d[0] * d[1]).collect();
    let params: usize = dims.windows(2).map(|d| d[1] * (d[0] + 1)).sum();
    let all: usize = weights.iter().sum();
    let later: usize = weights[1..].iter().sum();
    (n * (4 * all + 2 * later) + 2 * params) as f64
}

/// Mean seconds per call of `f`, best of 7 rounds of about `secs / 7` each.
fn time(secs: f64, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    let mut calls = 0u64;
    while t.elapsed() < Duration::from_millis(50) {
        f();
        calls += 1;
    }
    let per = t.elapsed().as_secs_f64() / calls as f64;
    let n = ((secs / 7.0 / per) as u64).max(3);
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / n as f64);
    }
    best
}

const LR: f32 = 1e-3;

macro_rules! report {
    ($m:ident, $dims:expr, $peak:expr) => {{
        use shapes::$m::{Gen, Hand, IN, NAME, OUT, TARGET};
        let (xs, ys) = batch::<IN, OUT>(32, TARGET, 42);
        let flops = step_flops(&$dims, 32);
        let mut net = Box::new(Gen::init(1));
        let mut grad = Box::new(Gen::zeros());
        let gen = time(3.0, || {
            grad.params_mut().fill(0.0);
            black_box(net.backward_batch(black_box(&xs), black_box(&ys), &mut grad));
            for (p, g) in net.params_mut().iter_mut().zip(grad.params()) {
                *p -= LR * g;
            }
        });
        let mut hand = Box::new(Hand::zeros());
        hand.load(Gen::init(1).params());
        let hw = time(3.0, || {
            black_box(hand.train_step(black_box(&xs), black_box(&ys), LR));
        });
        for (who, s) in [("generated", gen), ("handwritten", hw)] {
            let gf = flops / s / 1e9;
            println!(
                "| train_step_32/{NAME} | {who} | {:.2} | {:.2} | {:.1} | {:.1}% |",
                flops / 1e6,
                s * 1e6,
                gf,
                100.0 * gf / $peak
            );
        }
    }};
}

fn main() {
    let features: Vec<&str> = [
        ("sse2", cfg!(target_feature = "sse2")),
        ("avx", cfg!(target_feature = "avx")),
        ("fma", cfg!(target_feature = "fma")),
        ("avx2", cfg!(target_feature = "avx2")),
        ("avx512f", cfg!(target_feature = "avx512f")),
    ]
    .iter()
    .filter(|f| f.1)
    .map(|f| f.0)
    .collect();
    println!("target features: {}", features.join(" "));
    println!("peak kernel: {CHAINS} chains x {W} f32 lanes, {KIND}");
    let built = peak_of(2.0, W, fma_kernel);
    println!("single-core peak of the build's units: {built:.1} GFLOP/s");
    // The generated batch code runs on the units `simd-dispatch` picks at run time: the
    // fraction of peak is taken against those.
    let level = symnet::__private::simd::simd_level();
    println!("batch code runs on (run-time dispatch): {level:?}");
    #[cfg(target_arch = "x86_64")]
    let p = if level == symnet::__private::simd::SimdLevel::Avx512 && W < 16 {
        // SAFETY: simd_level reports AVX-512 only when the processor has it.
        let p = peak_of(2.0, 16, |i, m, a| unsafe { fma_kernel_avx512(i, m, a) });
        println!("single-core peak of AVX-512 FMA (run-time kernel): {p:.1} GFLOP/s");
        p
    } else {
        built
    };
    #[cfg(not(target_arch = "x86_64"))]
    let p = built;
    println!("peak used below: {p:.1} GFLOP/s\n");
    println!("| step | code | MFLOP/step | us/step | GFLOP/s | of peak |");
    println!("|---|---|---:|---:|---:|---:|");
    report!(digits, [64, 32, 10], p);
    report!(mnist, [784, 128, 10], p);
}
