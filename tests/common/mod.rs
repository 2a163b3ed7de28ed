//! Helpers shared by the integration tests.
#![allow(dead_code)]

use symnet::{Network, Scalar, SplitMix64};

/// A sample for a network: uniform inputs, and targets that suit the loss.
pub fn sample<T: Scalar>(
    rng: &mut SplitMix64,
    n_in: usize,
    n_out: usize,
    target: Target,
) -> (Vec<T>, Vec<T>) {
    let x = (0..n_in)
        .map(|_| T::from_f64(rng.uniform(-1.5, 1.5)))
        .collect();
    let y = match target {
        Target::Real => (0..n_out)
            .map(|_| T::from_f64(rng.uniform(-1.0, 1.0)))
            .collect(),
        Target::Binary => (0..n_out)
            .map(|_| T::from_f64(if rng.next_f64() < 0.5 { 0.0 } else { 1.0 }))
            .collect(),
        Target::OneHot => {
            let k = rng.below(n_out);
            (0..n_out)
                .map(|j| T::from_f64(if j == k { 1.0 } else { 0.0 }))
                .collect()
        }
    };
    (x, y)
}

/// What kind of target a loss expects.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Any real number (regression losses).
    Real,
    /// 0 or 1 per output (binary cross-entropy).
    Binary,
    /// A one-hot row (categorical cross-entropy).
    OneHot,
}

/// Random weights with biases too (`init` leaves biases at zero, which would hide bias bugs).
pub fn random_net<N: Network>(seed: u64) -> N {
    let mut net = N::init(seed);
    let mut rng = SplitMix64::new(seed ^ 0xDEAD_BEEF);
    for p in net.params_mut() {
        *p += N::Scalar::from_f64(rng.uniform(-0.3, 0.3));
    }
    net
}

/// The gradient from `backward_slice` and from central finite differences of `loss_slice`, for
/// every parameter.
pub fn gradients<N: Network>(
    net: &N,
    x: &[N::Scalar],
    y: &[N::Scalar],
    h: f64,
) -> (Vec<f64>, Vec<f64>, f64) {
    let mut grad = N::zeros();
    let loss = net.backward_slice(x, y, N::Scalar::ONE, &mut grad).to_f64();
    let analytic: Vec<f64> = grad.params().iter().map(|g| g.to_f64()).collect();
    let mut probe = N::zeros();
    probe.params_mut().copy_from_slice(net.params());
    let mut numeric = Vec::with_capacity(N::PARAMS);
    for i in 0..N::PARAMS {
        let p0 = probe.params()[i];
        // The steps actually taken (for f32 they differ from h by rounding).
        let hi = N::Scalar::from_f64(p0.to_f64() + h);
        let lo = N::Scalar::from_f64(p0.to_f64() - h);
        probe.params_mut()[i] = hi;
        let up = probe.loss_slice(x, y).to_f64();
        probe.params_mut()[i] = lo;
        let down = probe.loss_slice(x, y).to_f64();
        probe.params_mut()[i] = p0;
        numeric.push((up - down) / (hi.to_f64() - lo.to_f64()));
    }
    (analytic, numeric, loss)
}
