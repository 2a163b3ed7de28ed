//! A crate that depends on symnet as `sym` (`sym = { package = "symnet", ... }`): the code
//! `network!` generates must reach the runtime as `::sym`, since `::symnet` does not exist here.
#![forbid(missing_docs)]

sym::network! {
    /// A small classifier, declared through the renamed crate.
    pub struct Renamed<f64> {
        input: 2,
        hidden: dense(3) -> tanh,
        output: dense(1) -> sigmoid,
        loss: binary_cross_entropy,
    }
}

#[cfg(test)]
mod tests {
    use super::Renamed;
    use sym::Network;

    #[test]
    fn generated_code_reaches_the_renamed_crate() {
        let net = Renamed::init(3);
        let mut grad = Renamed::zeros();
        let loss = net.backward(&[0.5, -1.0], &[1.0], &mut grad);
        assert!(loss.is_finite() && loss > 0.0);
        assert_eq!(<Renamed as Network>::PARAMS, 13);
        let mut out = [0.0];
        net.forward_slice(&[0.5, -1.0], &mut out);
        assert_eq!(out, net.forward(&[0.5, -1.0]));
    }
}
