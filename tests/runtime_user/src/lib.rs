//! A `#![no_std]` crate that uses `symnet-macros` with `symnet-runtime` (renamed `rt`) and not
//! the `symnet` facade: generated code must reach the runtime as `::rt`.
#![no_std]
#![forbid(missing_docs)]

symnet_macros::network! {
    /// A small regressor over the runtime crate alone.
    pub struct OnRuntime<f32> {
        input: 3,
        hidden: dense(4) -> relu,
        output: dense(2),
        loss: mse,
    }
}

#[cfg(test)]
mod tests {
    use super::OnRuntime;

    #[test]
    fn generated_code_reaches_the_runtime_crate() {
        let net = OnRuntime::init(1);
        let mut grad = OnRuntime::zeros();
        let loss = net.backward(&[1.0, 2.0, 3.0], &[0.5, -0.5], &mut grad);
        assert!(loss.is_finite());
        assert_eq!(<OnRuntime as rt::Network>::OUTPUTS, 2);
    }
}
