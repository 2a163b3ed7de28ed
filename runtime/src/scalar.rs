//! The scalar types a network can be declared over.

use core::fmt::{Debug, Display};
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point scalar: `f32` or `f64`.
///
/// Besides arithmetic it carries the elementwise functions of the network language, each written
/// so that it is finite for every finite input: [`Scalar::sigmoid`] never evaluates `exp` of a
/// positive number, [`Scalar::softplus`] is `max(x, 0) + ln(1 + exp(-|x|))`.
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
    /// The logistic function `1 / (1 + e^-x)`, without overflow for any `x`.
    #[inline(always)]
    fn sigmoid(self) -> Self {
        // exp of a non-positive number only: e = e^-|x| is in (0, 1].
        let e = (-self.abs()).exp();
        let r = Self::ONE / (Self::ONE + e);
        if self >= Self::ZERO {
            r
        } else {
            e * r
        }
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

macro_rules! impl_scalar {
    ($t:ident, $exp:ident, $ln:ident, $ln1p:ident, $tanh:ident, $sqrt:ident, $fabs:ident) => {
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
                #[cfg(feature = "std")]
                return <$t>::exp(self);
                #[cfg(not(feature = "std"))]
                return libm::$exp(self);
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
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
        }
    };
}

impl_scalar!(f32, expf, logf, log1pf, tanhf, sqrtf, fabsf);
impl_scalar!(f64, exp, log, log1p, tanh, sqrt, fabs);

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
        assert_eq!((-1e4f32).sigmoid(), 0.0);
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
