//! The scalar types a network can be declared over.

use core::fmt::{Debug, Display};
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point scalar: `f32` or `f64`.
///
/// Besides arithmetic it carries the elementwise functions of the network language, each written
/// so that it is finite for every finite input: in [`Scalar::sigmoid`], `1 / (1 + e^-x)`, an
/// overflowing `e^-x` gives `0`, and [`Scalar::softplus`] is `max(x, 0) + ln(1 + exp(-|x|))`.
///
/// With the `std` feature the transcendental functions are the standard library's; without it
/// they come from `libm`, so generated code works in `#![no_std]` crates.
pub trait Scalar:
    Copy
    + Default
    + PartialEq
    + PartialOrd
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
{
    /// `0`.
    const ZERO: Self;
    /// `1`.
    const ONE: Self;
    /// The type's name, `"f32"` or `"f64"` (used in weight files and messages).
    const NAME: &'static str;

    /// Converts from `f64` (rounding to nearest for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` (exactly).
    fn to_f64(self) -> f64;
    /// `e^x`.
    fn exp(self) -> Self;
    /// `e^x` written so that a loop over it vectorizes (no library call): for `f32` the
    /// polynomial `exp_f32` of this module (about 2 ulp, argument clamped to `[-87.3, 88.3]`), for `f64`
    /// the same as [`Scalar::exp`]. What batch code (samples across SIMD lanes) calls for `exp`.
    fn exp_fast(self) -> Self;
    /// [`Scalar::tanh`] written so that a loop over it vectorizes: for `f32` the branch-free
    /// `tanh_f32` of this module (within 4 ulp), for `f64` (and by default) the same as
    /// [`Scalar::tanh`].
    #[inline(always)]
    fn tanh_fast(self) -> Self {
        self.tanh()
    }
    /// [`Scalar::softplus`] written so that a loop over it vectorizes: for `f32` with
    /// `exp_f32` and the polynomial `ln(1 + u)` of `softplus_f32` (within 4 ulp above
    /// `x = -87.3`; below it the result stays about `1.2e-38` where `e^x` is smaller), for
    /// `f64` (and by default) the same as [`Scalar::softplus`].
    #[inline(always)]
    fn softplus_fast(self) -> Self {
        self.softplus()
    }
    /// The natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + x)`, accurate near 0.
    fn ln_1p(self) -> Self;
    /// The hyperbolic tangent.
    fn tanh(self) -> Self;
    /// The square root.
    fn sqrt(self) -> Self;
    /// `|x|`.
    fn abs(self) -> Self;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;

    /// `self * a + b`: one fused multiply-add where the target has the instruction (built
    /// with `-C target-cpu=native` on a machine with FMA), else a multiplication and an
    /// addition (a software FMA would be far slower).
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        #[cfg(target_feature = "fma")]
        {
            self.fused_mul_add(a, b)
        }
        #[cfg(not(target_feature = "fma"))]
        {
            self * a + b
        }
    }

    /// `self * a + b` rounded once (the hardware instruction when available).
    fn fused_mul_add(self, a: Self, b: Self) -> Self;

    /// The larger of two values (the other one if `self` is NaN).
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        if self >= other || other.partial_cmp(&other).is_none() {
            self
        } else {
            other
        }
    }
    /// The smaller of two values.
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        if self <= other || other.partial_cmp(&other).is_none() {
            self
        } else {
            other
        }
    }
    /// The logistic function `1 / (1 + e^-x)`, finite for every `x`: where `e^-x` overflows
    /// (`x` below about -88 in `f32`, -709 in `f64`) the result is `0`, within the smallest
    /// normal number of the exact value. Written as the plain formula: the form that
    /// exponentiates `-|x|` and selects needed a multiply and a select more on the critical
    /// path (2-4-1 `prepare().forward` in `benches/nets`, two consecutive runs: 17.4 ns
    /// before, 14.1 ns after).
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Self::ONE / (Self::ONE + (-self).exp())
    }
    /// [`Scalar::sigmoid`] with [`Scalar::exp_fast`]: what batch code (samples across SIMD
    /// lanes) calls, so that the loop vectorizes.
    #[inline(always)]
    fn sigmoid_fast(self) -> Self {
        Self::ONE / (Self::ONE + (-self).exp_fast())
    }
    /// [`Scalar::exp_fast`]. Generated code no longer calls it; it stays because `Scalar` is
    /// public and callers may.
    #[inline(always)]
    fn exp_lanes(self) -> Self {
        self.exp_fast()
    }
    /// The hyperbolic cosine, `(e^|x| + e^-|x|) / 2` (infinite beyond `|x|` of about 89 in
    /// `f32`, 710 in `f64`; `ln cosh` is rewritten by the compiler so that it never overflows).
    #[inline(always)]
    fn cosh(self) -> Self {
        let e = self.abs().exp();
        Self::from_f64(0.5) * (e + Self::ONE / e)
    }
    /// `ln(1 + e^x)` as `max(x, 0) + ln(1 + e^-|x|)`: finite for every finite `x`.
    #[inline(always)]
    fn softplus(self) -> Self {
        self.max(Self::ZERO) + (-self.abs()).exp().ln_1p()
    }
    /// `max(x, 0)`.
    #[inline(always)]
    fn relu(self) -> Self {
        if self > Self::ZERO {
            self
        } else {
            Self::ZERO
        }
    }
    /// The derivative of [`Scalar::relu`]: `1` for `x > 0`, else `0`.
    #[inline(always)]
    fn step(self) -> Self {
        if self > Self::ZERO {
            Self::ONE
        } else {
            Self::ZERO
        }
    }
    /// `1` if `self > other`, else `0`: the mask of a formula's `if a > b { .. }`.
    #[inline(always)]
    fn gt(self, other: Self) -> Self {
        if self > other {
            Self::ONE
        } else {
            Self::ZERO
        }
    }
    /// `1` if `self >= other`, else `0`.
    #[inline(always)]
    fn ge(self, other: Self) -> Self {
        if self >= other {
            Self::ONE
        } else {
            Self::ZERO
        }
    }
    /// `a` where the mask `self` is nonzero, else `b` (both are computed, so that a loop over
    /// it vectorizes as a blend).
    #[inline(always)]
    fn select(self, a: Self, b: Self) -> Self {
        if self != Self::ZERO {
            a
        } else {
            b
        }
    }
    /// `x` for `x > 0`, else `alpha x`.
    #[inline(always)]
    fn leaky_relu(self, alpha: Self) -> Self {
        if self > Self::ZERO {
            self
        } else {
            alpha * self
        }
    }
    /// The derivative of [`Scalar::leaky_relu`]: `1` for `x > 0`, else `alpha`.
    #[inline(always)]
    fn leaky_step(self, alpha: Self) -> Self {
        if self > Self::ZERO {
            Self::ONE
        } else {
            alpha
        }
    }
    /// The sign: `1`, `-1`, or `0` at `0` (the subgradient of `|x|` that symnet uses).
    #[inline(always)]
    fn sign(self) -> Self {
        if self > Self::ZERO {
            Self::ONE
        } else if self < Self::ZERO {
            -Self::ONE
        } else {
            Self::ZERO
        }
    }
}

/// `e^x` for `f32` without a library call, so that loops over it vectorize: range reduction
/// `x = n ln 2 + r` with `|r| <= ln 2 / 2` (Cody-Waite, two-part `ln 2`), a degree-7 Taylor
/// polynomial for `e^r` (truncation below 1e-8 relative), and `2^n` built in the exponent bits.
/// The argument is clamped to `[-87.3, 88.3]`, where `e^x` is a normal `f32` (so `e^x` never
/// overflows: 2.1e38 at most); NaN stays NaN.
/// Largest relative error against the correctly rounded result: about 2 ulp (tested).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    exp_f32_with::<false>(x)
}

/// [`exp_f32`] with each multiply-add of the reduction and the polynomial rounded once (FMA):
/// half the operations on the polynomial's dependency chain. What the AVX2 and AVX-512 batch
/// bodies call (there `f32::mul_add` is one instruction; elsewhere it is a library call).
#[inline(always)]
pub fn exp_f32_fused(x: f32) -> f32 {
    exp_f32_with::<true>(x)
}

/// `a * b + c`, rounded once if `FMA`.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.fused_mul_add(b, c)
    } else {
        a * b + c
    }
}

/// [`exp_f32`] (`FMA` false) and [`exp_f32_fused`] (`FMA` true).
#[inline(always)]
fn exp_f32_with<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer for |t| < 2^22.
    const ROUND: f32 = 12_582_912.0;
    let m = madd::<FMA>;
    let xc = x.clamp(-87.3, 88.3);
    let t = m(xc, LOG2E, ROUND);
    let n = t - ROUND;
    let r = m(-n, LN2_LO, m(-n, LN2_HI, xc));
    let p = m(r, 1.0 / 5040.0, 1.0 / 720.0);
    let p = m(r, p, 1.0 / 120.0);
    let p = m(r, p, 1.0 / 24.0);
    let p = m(r, p, 1.0 / 6.0);
    let p = m(r, p, 0.5);
    let p = m(r, p, 1.0);
    let p = m(r, p, 1.0);
    // `t` lies in [2^23, 2^24), where the unit in the last place is 1: its low mantissa bits
    // are `n + 2^22`, so `2^n` is built with integer operations alone. (`n as i32` is a
    // saturating conversion, which LLVM does not vectorize: every lane's exponential became
    // scalar code.)
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    let y = p * scale;
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `tanh x` for `f32` without a library call, so that loops over it vectorize. Both forms are
/// computed and one selected, so there is no branch: below `|x| = 0.55` the Taylor series to
/// `x^15` (truncation about 4e-8 relative at `|x| = 0.55`), above it `(1 - e) / (1 + e)` with `e = e^{-2|x|}`
/// from [`exp_f32`] (at most one bit lost to cancellation there), with the sign of `x`. Finite
/// and within `[-1, 1]` for every input but NaN; largest relative error about 4 ulp (tested).
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    tanh_f32_with::<false>(x)
}

/// [`tanh_f32`] with fused multiply-adds, as [`exp_f32_fused`].
#[inline(always)]
pub fn tanh_f32_fused(x: f32) -> f32 {
    tanh_f32_with::<true>(x)
}

#[inline(always)]
fn tanh_f32_with<const FMA: bool>(x: f32) -> f32 {
    let m = madd::<FMA>;
    let a = x.abs();
    let a2 = a * a;
    let p = m(a2, -929_569.0 / 638_512_875.0, 21_844.0 / 6_081_075.0);
    let p = m(a2, p, -1382.0 / 155_925.0);
    let p = m(a2, p, 62.0 / 2835.0);
    let p = m(a2, p, -17.0 / 315.0);
    let p = m(a2, p, 2.0 / 15.0);
    let p = m(a2, p, -1.0 / 3.0);
    let p = m(a2, p, 1.0);
    let series = a * p;
    let e = exp_f32_with::<FMA>(-2.0 * a);
    let ratio = (1.0 - e) / (1.0 + e);
    let t = if a < 0.55 { series } else { ratio };
    t.copysign(x)
}

/// `ln(1 + e^x)` for `f32` without a library call, so that loops over it vectorize:
/// `max(x, 0) + ln(1 + u)` with `u = e^{-|x|}` in `(0, 1]` from [`exp_f32`], and
/// `ln(1 + u) = 2 atanh(s)`, `s = u / (2 + u)` in `(0, 1/3]`, by its series to `s^15`
/// (truncation below 2e-9 relative; no cancellation for small `u`). Finite for every finite
/// input; largest relative error about 4 ulp for `x >= -87.3` (tested over `[-80, 80]`). Below
/// `-87.3` the clamp of `exp_f32` holds the result at about `1.2e-38`, where `e^x` is smaller.
#[inline(always)]
pub fn softplus_f32(x: f32) -> f32 {
    softplus_f32_with::<false>(x)
}

/// [`softplus_f32`] with fused multiply-adds, as [`exp_f32_fused`].
#[inline(always)]
pub fn softplus_f32_fused(x: f32) -> f32 {
    softplus_f32_with::<true>(x)
}

#[inline(always)]
fn softplus_f32_with<const FMA: bool>(x: f32) -> f32 {
    let m = madd::<FMA>;
    let u = exp_f32_with::<FMA>(-x.abs());
    let s = u / (2.0 + u);
    let s2 = s * s;
    let p = m(s2, 1.0 / 15.0, 1.0 / 13.0);
    let p = m(s2, p, 1.0 / 11.0);
    let p = m(s2, p, 1.0 / 9.0);
    let p = m(s2, p, 1.0 / 7.0);
    let p = m(s2, p, 1.0 / 5.0);
    let p = m(s2, p, 1.0 / 3.0);
    let series = m(s2, p, 1.0);
    m(2.0 * s, series, x.max(0.0))
}

macro_rules! exp_impl {
    ($t:ident, $x:expr, $libm:ident) => {{
        #[cfg(feature = "std")]
        let v = <$t>::exp($x);
        #[cfg(not(feature = "std"))]
        let v = libm::$libm($x);
        v
    }};
}

#[inline(always)]
fn exp_f64(x: f64) -> f64 {
    exp_impl!(f64, x, exp)
}

macro_rules! impl_scalar {
    ($t:ident, $exp:ident, $ln:ident, $ln1p:ident, $tanh:ident, $sqrt:ident, $fabs:ident, $fma:ident, $expfast:path, $tanhfast:path, $softplusfast:path) => {
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAME: &'static str = stringify!($t);
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                exp_impl!($t, self, $exp)
            }
            #[inline(always)]
            fn exp_fast(self) -> Self {
                $expfast(self)
            }
            #[inline(always)]
            fn tanh_fast(self) -> Self {
                $tanhfast(self)
            }
            #[inline(always)]
            fn softplus_fast(self) -> Self {
                $softplusfast(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                #[cfg(feature = "std")]
                return <$t>::ln(self);
                #[cfg(not(feature = "std"))]
                return libm::$ln(self);
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                #[cfg(feature = "std")]
                return <$t>::ln_1p(self);
                #[cfg(not(feature = "std"))]
                return libm::$ln1p(self);
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                #[cfg(feature = "std")]
                return <$t>::tanh(self);
                #[cfg(not(feature = "std"))]
                return libm::$tanh(self);
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                #[cfg(feature = "std")]
                return <$t>::sqrt(self);
                #[cfg(not(feature = "std"))]
                return libm::$sqrt(self);
            }
            #[inline(always)]
            fn abs(self) -> Self {
                libm::$fabs(self)
            }
            #[inline(always)]
            fn fused_mul_add(self, a: Self, b: Self) -> Self {
                #[cfg(feature = "std")]
                return <$t>::mul_add(self, a, b);
                #[cfg(not(feature = "std"))]
                return libm::$fma(self, a, b);
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            // The standard library's forms: the same NaN rule (the other operand wins), and
            // one `maxss` / `minss` sequence without a branch.
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
        }
    };
}

impl_scalar!(
    f32,
    expf,
    logf,
    log1pf,
    tanhf,
    sqrtf,
    fabsf,
    fmaf,
    exp_f32,
    tanh_f32,
    softplus_f32
);
impl_scalar!(
    f64,
    exp,
    log,
    log1p,
    tanh,
    sqrt,
    fabs,
    fma,
    exp_f64,
    Scalar::tanh,
    Scalar::softplus
);

#[cfg(test)]
mod tests {
    use super::Scalar;

    #[test]
    fn sigmoid_is_finite_and_symmetric_for_huge_logits() {
        for &x in &[-1e4f64, -800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0, 1e4] {
            let s = x.sigmoid();
            assert!(
                s.is_finite() && (0.0..=1.0).contains(&s),
                "sigmoid({x}) = {s}"
            );
            assert!((s + (-x).sigmoid() - 1.0).abs() < 1e-15);
        }
        assert_eq!(1e4f32.sigmoid(), 1.0);
        assert!((-1e4f32).sigmoid() < 1e-37);
    }

    #[test]
    fn exp_f32_exponent_from_bits_equals_the_saturating_conversion() {
        // The form `exp_f32` had before its exponent came from the bits of `t`.
        fn with_cast(x: f32) -> f32 {
            let xc = x.clamp(-87.3, 88.3);
            let n = (xc * core::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
            let r = (xc - n * 0.693_145_75) - n * 1.428_606_8e-6;
            let p = 1.0
                + r * (1.0
                    + r * (0.5
                        + r * (1.0 / 6.0
                            + r * (1.0 / 24.0
                                + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
            p * f32::from_bits(((n as i32 + 127) as u32) << 23)
        }
        let mut x = -100.0f32;
        while x < 100.0 {
            assert_eq!(
                super::exp_f32(x).to_bits(),
                with_cast(x).to_bits(),
                "x = {x}"
            );
            x += 0.000_97;
        }
        for x in [
            -87.3,
            88.3,
            -0.0,
            f32::MIN,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            assert_eq!(
                super::exp_f32(x).to_bits(),
                with_cast(x).to_bits(),
                "x = {x}"
            );
        }
    }

    #[test]
    fn exp_f32_is_within_two_ulp_of_the_correctly_rounded_result() {
        // The plain form and the fused one (FMA) of the AVX2 and AVX-512 batch bodies.
        for exp in [super::exp_f32, super::exp_f32_fused] {
            let mut worst: f64 = 0.0;
            let mut x = -87.0f32;
            while x < 88.3 {
                let exact = (x as f64).exp();
                let got = exp(x) as f64;
                worst = worst.max(((got - exact) / exact).abs());
                x += 0.001_3;
            }
            assert!(
                worst < 2.5 * f32::EPSILON as f64,
                "worst relative error {worst:e}"
            );
            assert_eq!(exp(0.0), 1.0);
            assert!(exp(f32::NAN).is_nan());
            assert_eq!(exp(1e4), exp(88.3));
            assert!(exp(-1e4) > 0.0 && exp(-1e4) < 1.3e-38);
            assert!(exp(f32::INFINITY).is_finite());
        }
    }

    /// The largest error of `f` against `exact` over `[-lim, lim]`, in ulps of the result.
    fn worst_ulps(f: fn(f32) -> f32, exact: fn(f64) -> f64, lim: f32) -> f64 {
        let mut worst: f64 = 0.0;
        let mut x = -lim;
        while x <= lim {
            let e = exact(x as f64);
            let ulp = (e.abs() as f32).max(f32::MIN_POSITIVE) * f32::EPSILON;
            worst = worst.max((f(x) as f64 - e).abs() / ulp as f64);
            x += 0.000_37 * (1.0 + x.abs());
        }
        worst
    }

    #[test]
    fn tanh_f32_is_within_four_ulp_and_bounded() {
        for tanh in [super::tanh_f32, super::tanh_f32_fused] {
            let worst = worst_ulps(tanh, f64::tanh, 20.0);
            assert!(worst <= 4.0, "worst error {worst} ulp");
            // Tiny arguments keep their relative accuracy (no cancellation).
            for &x in &[1e-30f32, -1e-20, 1e-7, 3e-4, 0.549_9, 0.55, -0.550_1] {
                let e = (x as f64).tanh();
                assert!(
                    ((tanh(x) as f64 - e) / e).abs() < 4.0 * f32::EPSILON as f64,
                    "{x}"
                );
            }
            assert_eq!(tanh(0.0), 0.0);
            assert_eq!(tanh(1e4), 1.0);
            assert_eq!(tanh(-1e4), -1.0);
            assert_eq!(tanh(f32::INFINITY), 1.0);
            assert!(tanh(f32::NAN).is_nan());
        }
    }

    #[test]
    fn softplus_f32_is_within_four_ulp_and_finite() {
        for softplus in [super::softplus_f32, super::softplus_f32_fused] {
            let exact = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
            let worst = worst_ulps(softplus, exact, 80.0);
            assert!(worst <= 4.0, "worst error {worst} ulp");
            assert_eq!(softplus(1e4), 1e4);
            assert!(softplus(-1e4) >= 0.0 && softplus(-1e4) < 1.3e-38);
            assert!((softplus(0.0) - core::f32::consts::LN_2).abs() <= f32::EPSILON);
            assert!(softplus(f32::NAN).is_nan());
        }
    }

    #[test]
    fn softplus_is_finite_and_matches_the_definition() {
        assert_eq!(1e4f64.softplus(), 1e4);
        assert_eq!((-1e4f64).softplus(), 0.0);
        for &x in &[-20.0f64, -1.0, 0.0, 0.5, 20.0] {
            assert!((x.softplus() - (1.0 + x.exp()).ln()).abs() < 1e-14);
        }
    }
}
