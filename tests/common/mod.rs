//! Helpers shared by the integration tests.
#![allow(dead_code)]

use symnet::{Activation, InterpNet, Loss, Network, Scalar, SplitMix64};

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

/// Agreement of generated code with the interpreted baseline (`InterpNet`): tolerance
/// `|a - b| <= REL * max(|a|, |b|) + ABS`, the absolute floor for components that are sums with
/// cancellation (such as `p - y` of a softmax), where the two implementations round differently.
pub const REL: f64 = 1e-10;
pub const ABS: f64 = 1e-12;
pub const TRIALS: u64 = 6;

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= REL * a.abs().max(b.abs()) + ABS
}

/// Builds the interpreted twin of a declaration.
pub fn interp(inputs: usize, layers: &[(usize, Activation)], loss: Loss) -> InterpNet<f64> {
    layers
        .iter()
        .fold(InterpNet::builder(inputs), |b, (w, a)| {
            b.dense(*w, a.clone())
        })
        .loss(loss)
        .build()
        .unwrap()
}

/// The generated network `N` and its interpreted twin agree: forward, loss, gradient, scaled
/// gradient and the batch path, on random parameters and samples.
pub fn agree<N: Network<Scalar = f64>>(name: &str, mut twin: InterpNet<f64>, target: Target) {
    assert_eq!(twin.num_params(), N::PARAMS, "{name}: parameter count");
    assert_eq!(
        (twin.inputs(), twin.outputs()),
        (N::INPUTS, N::OUTPUTS),
        "{name}: widths"
    );
    let mut rng = SplitMix64::new(0xA11CE);
    let mut nonzero = 0;
    for trial in 0..TRIALS {
        let net: N = random_net(500 + trial);
        twin.params_mut().copy_from_slice(net.params());
        // Several samples per parameter draw.
        for s in 0..3 {
            let (x, y) = sample::<f64>(&mut rng, N::INPUTS, N::OUTPUTS, target);
            let at = format!("{name} (trial {trial}, sample {s})");

            let mut out = vec![0.0; N::OUTPUTS];
            net.forward_slice(&x, &mut out);
            let want = twin.forward(&x);
            for (j, (a, b)) in out.iter().zip(&want).enumerate() {
                assert!(
                    close(*a, *b),
                    "{at}: output {j}: generated {a:e}, interpreted {b:e}"
                );
            }

            let (l, lw) = (net.loss_slice(&x, &y), twin.loss(&x, &y));
            assert!(
                close(l, lw),
                "{at}: loss: generated {l:e}, interpreted {lw:e}"
            );

            let mut grad = N::zeros();
            let lb = net.backward_slice(&x, &y, 1.0, &mut grad);
            let mut gw = vec![0.0; twin.num_params()];
            let lbw = twin.backward(&x, &y, &mut gw);
            assert!(
                close(lb, lw) && close(lbw, lw),
                "{at}: backward's loss {lb:e} / {lbw:e} vs {lw:e}"
            );
            for (i, (a, b)) in grad.params().iter().zip(&gw).enumerate() {
                assert!(
                    close(*a, *b),
                    "{at}: d loss / d param {i}: generated {a:e}, interpreted {b:e}"
                );
                nonzero += usize::from(a.abs() > 1e-8);
            }

            // The scaled, accumulating form used by the trainers: grad += scale * dL/dtheta.
            let mut acc = N::zeros();
            acc.params_mut().fill(0.5);
            net.backward_slice(&x, &y, 0.25, &mut acc);
            let mut accw = vec![0.5; twin.num_params()];
            twin.backward_scaled(&x, &y, 0.25, &mut accw);
            for (i, (a, b)) in acc.params().iter().zip(&accw).enumerate() {
                assert!(
                    close(*a, *b),
                    "{at}: scaled gradient {i}: generated {a:e}, interpreted {b:e}"
                );
            }
        }
    }
    // The batch path (what the trainers call): samples across SIMD lanes and a remainder,
    // against the interpreted gradient summed sample by sample.
    let net: N = random_net(900);
    twin.params_mut().copy_from_slice(net.params());
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..21 {
        let (x, y) = sample::<f64>(&mut rng, N::INPUTS, N::OUTPUTS, target);
        xs.extend(x);
        ys.extend(y);
    }
    let mut grad = N::zeros();
    let total = net.backward_rows(&xs, &ys, 1.0, &mut grad);
    let mut gw = vec![0.0; twin.num_params()];
    let mut total_w = 0.0;
    for (x, y) in xs.chunks(N::INPUTS).zip(ys.chunks(N::OUTPUTS)) {
        total_w += twin.backward_scaled(x, y, 1.0, &mut gw);
    }
    assert!(
        close(total, total_w),
        "{name}: batch loss {total:e} vs {total_w:e}"
    );
    for (i, (a, b)) in grad.params().iter().zip(&gw).enumerate() {
        assert!(
            close(*a, *b),
            "{name}: batch gradient {i}: generated {a:e}, interpreted {b:e}"
        );
    }
    // Agreement on all-zero gradients would prove nothing.
    assert!(
        nonzero > N::PARAMS,
        "{name}: too few nonzero gradient components ({nonzero})"
    );
}
