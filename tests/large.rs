//! A 64-128-128-10 network compiles (the emitter writes loops, not 26,000 statements) and its
//! gradient is right.

mod common;

use symnet::{network, Network, SplitMix64};

network! {
    pub struct Big<f64> {
        input: 64,
        h1: dense(128) -> relu,
        h2: dense(128) -> tanh,
        out: dense(10) -> softmax,
        loss: cross_entropy,
    }
}

#[test]
fn large_network_gradient_matches_finite_differences_on_a_sample_of_parameters() {
    assert_eq!(Big::PARAMS, 128 * 65 + 128 * 129 + 10 * 129);
    let net: Big = common::random_net(9);
    let mut rng = SplitMix64::new(4);
    let (x, y) = common::sample::<f64>(&mut rng, 64, 10, common::Target::OneHot);
    let mut grad = Big::zeros();
    let loss = net.backward_slice(&x, &y, 1.0, &mut grad);
    assert!(loss.is_finite() && loss > 0.0);
    let mut probe = net.clone_params();
    let h = 1e-5;
    let mut checked = 0;
    for _ in 0..300 {
        let i = rng.below(Big::PARAMS);
        let p0 = probe.params()[i];
        probe.params_mut()[i] = p0 + h;
        let up = probe.loss_slice(&x, &y);
        probe.params_mut()[i] = p0 - h;
        let down = probe.loss_slice(&x, &y);
        probe.params_mut()[i] = p0;
        let fd = (up - down) / (2.0 * h);
        let g = grad.params()[i];
        assert!(
            (g - fd).abs() <= 1e-6 * (g.abs() + fd.abs()) + 1e-9,
            "param {i}: {g} vs {fd}"
        );
        checked += usize::from(g != 0.0);
    }
    assert!(
        checked > 100,
        "too few nonzero components checked: {checked}"
    );
}

trait CloneParams: Network {
    fn clone_params(&self) -> Self {
        let mut n = Self::zeros();
        n.params_mut().copy_from_slice(self.params());
        n
    }
}
impl<N: Network> CloneParams for N {}
