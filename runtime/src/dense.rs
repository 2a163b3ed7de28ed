//! One affine layer.

use crate::Scalar;

/// A dense (fully connected) layer `z = W x + b` with `IN` inputs and `OUT` outputs.
///
/// `w[o][i]` is the weight from input `i` to output `o`. The struct is `#[repr(C)]` with no
/// padding (every field is made of `T`), so a network made of `Dense` fields is a flat array of
/// `T`: weights row by row, then biases, layer after layer. That is the order of
/// [`Network::params`](crate::Network::params) and of weight files.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dense<T, const IN: usize, const OUT: usize> {
    /// The weights, one row of `IN` per output.
    pub w: [[T; IN]; OUT],
    /// The biases, one per output.
    pub b: [T; OUT],
}

impl<T: Scalar, const IN: usize, const OUT: usize> Dense<T, IN, OUT> {
    /// The number of parameters, `OUT * (IN + 1)`.
    pub const PARAMS: usize = OUT * (IN + 1);

    /// A layer with every weight and bias zero.
    pub const fn zeros() -> Self {
        Self {
            w: [[T::ZERO; IN]; OUT],
            b: [T::ZERO; OUT],
        }
    }

    /// `W x + b`.
    pub fn apply(&self, x: &[T; IN]) -> [T; OUT] {
        let mut z = self.b;
        for (zo, row) in z.iter_mut().zip(&self.w) {
            for (wi, xi) in row.iter().zip(x) {
                *zo += *wi * *xi;
            }
        }
        z
    }
}

impl<T: Scalar, const IN: usize, const OUT: usize> Default for Dense<T, IN, OUT> {
    fn default() -> Self {
        Self::zeros()
    }
}
