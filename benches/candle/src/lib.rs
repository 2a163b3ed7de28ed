//! The candle comparison (see `Cargo.toml`): five shapes with sigmoid hidden layers, an
//! identity output, mean squared error and plain SGD, each as a generated network, the
//! hand-written baseline of `benches/common/handwritten.rs` and a candle model.

#[path = "../../common/handwritten.rs"]
pub mod handwritten;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::optim::{Optimizer, SGD};

/// The learning rate of every training step.
pub const LR: f32 = 1e-3;

/// Candle's CPU kernels on one thread: candle reads `RAYON_NUM_THREADS` when it first sizes
/// its thread pool. Call before anything else uses candle.
pub fn one_thread() {
    // SAFETY (for editions where it is unsafe): called at the start of main, before any other
    // thread exists.
    std::env::set_var("RAYON_NUM_THREADS", "1");
}

/// A dense network in candle: weights `[out, in]` and biases as `Var`s, sigmoid between
/// layers, identity output, MSE, SGD.
pub struct CandleNet {
    layers: Vec<(Var, Var)>,
    sgd: SGD,
}

impl CandleNet {
    /// The network with the generated network's parameters (`params()`: layer after layer,
    /// `w` row-major `[out][in]`, then `b`) for the widths `widths` (input first).
    pub fn from_params(widths: &[usize], params: &[f32]) -> candle_core::Result<Self> {
        let dev = Device::Cpu;
        let mut layers = Vec::new();
        let mut at = 0;
        for pair in widths.windows(2) {
            let (i, o) = (pair[0], pair[1]);
            let w = Tensor::from_slice(&params[at..at + i * o], (o, i), &dev)?;
            at += i * o;
            let b = Tensor::from_slice(&params[at..at + o], o, &dev)?;
            at += o;
            layers.push((Var::from_tensor(&w)?, Var::from_tensor(&b)?));
        }
        assert_eq!(at, params.len(), "the widths do not match the parameters");
        let vars = layers
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect();
        let sgd = SGD::new(vars, LR as f64)?;
        Ok(CandleNet { layers, sgd })
    }

    /// The outputs of a batch `[n, in]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (k, (w, b)) in self.layers.iter().enumerate() {
            h = h.matmul(&w.t()?)?.broadcast_add(b)?;
            if k < last {
                h = candle_nn::ops::sigmoid(&h)?;
            }
        }
        Ok(h)
    }

    /// One SGD step on the batch's mean squared error; returns the loss.
    pub fn train_step(&mut self, x: &Tensor, y: &Tensor) -> candle_core::Result<f32> {
        let loss = candle_nn::loss::mse(&self.forward(x)?, y)?;
        self.sgd.backward_step(&loss)?;
        loss.to_dtype(DType::F32)?.to_scalar::<f32>()
    }

    /// The parameters in the generated network's layout.
    pub fn params(&self) -> candle_core::Result<Vec<f32>> {
        let mut out = Vec::new();
        for (w, b) in &self.layers {
            out.extend(w.as_tensor().flatten_all()?.to_vec1::<f32>()?);
            out.extend(b.as_tensor().to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

/// Rows `[n][N]` as a candle tensor `[n, N]`.
pub fn tensor<const N: usize>(rows: &[[f32; N]]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), N), &Device::Cpu).expect("a tensor")
}

/// `n` samples: inputs in [-1.5, 1.5], targets in [-1, 1].
pub fn batch<const I: usize, const O: usize>(
    n: usize,
    seed: u64,
) -> (Vec<[f32; I]>, Vec<[f32; O]>) {
    let mut rng = symnet::SplitMix64::new(seed);
    let xs = (0..n)
        .map(|_| std::array::from_fn(|_| rng.uniform(-1.5, 1.5) as f32))
        .collect();
    let ys = (0..n)
        .map(|_| std::array::from_fn(|_| rng.uniform(-1.0, 1.0) as f32))
        .collect();
    (xs, ys)
}

/// The five shapes, each a module with `Gen` (generated), `Hand` (hand-written), `WIDTHS`.
macro_rules! shapes {
    ($($m:ident: $name:literal, $hand:ty, [$($w:literal),*], { $($decl:tt)* };)*) => {$(
        pub mod $m {
            use super::handwritten::*;
            symnet::network! { #[derive(Clone)] pub struct Gen<f32> { $($decl)* } }
            pub type Hand = $hand;
            pub const NAME: &str = $name;
            pub const WIDTHS: &[usize] = &[$($w),*];
        }
    )*};
}

shapes! {
    xor: "2-4-1", Net2<Sigmoid, IdentityMse, 2, 4, 1>, [2, 4, 1],
        { input: 2, h: dense(4) -> sigmoid, o: dense(1), loss: mse };
    reg: "6-64-8-4", Net3<Sigmoid, Sigmoid, IdentityMse, 6, 64, 8, 4>, [6, 64, 8, 4],
        { input: 6, a: dense(64) -> sigmoid, b: dense(8) -> sigmoid, c: dense(4), loss: mse };
    iris: "4-16-3", Net2<Sigmoid, IdentityMse, 4, 16, 3>, [4, 16, 3],
        { input: 4, h: dense(16) -> sigmoid, o: dense(3), loss: mse };
    digits: "64-32-10", Net2<Sigmoid, IdentityMse, 64, 32, 10>, [64, 32, 10],
        { input: 64, h: dense(32) -> sigmoid, o: dense(10), loss: mse };
    mnist: "784-128-10", Net2<Sigmoid, IdentityMse, 784, 128, 10>, [784, 128, 10],
        { input: 784, h: dense(128) -> sigmoid, o: dense(10), loss: mse };
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! agree {
        ($m:ident, $i:literal, $o:literal) => {{
            use $m::{Gen, Hand, WIDTHS};
            let gen = Gen::init(5);
            let mut hand = Box::new(Hand::zeros());
            hand.load(gen.params());
            let mut cnet = CandleNet::from_params(WIDTHS, gen.params()).unwrap();
            let (xs, ys) = batch::<$i, $o>(32, 9);
            // Forward.
            let out = cnet.forward(&tensor(&xs)).unwrap().to_vec2::<f32>().unwrap();
            let mut hout = vec![[0f32; $o]; xs.len()];
            hand.forward_batch(&xs, &mut hout);
            for (k, x) in xs.iter().enumerate() {
                let (g, h) = (gen.forward(x), hand.forward(x));
                for j in 0..$o {
                    assert!((g[j] - h[j]).abs() < 1e-4 && (g[j] - out[k][j]).abs() < 1e-4);
                    assert!((h[j] - hout[k][j]).abs() < 1e-6);
                }
            }
            // One SGD step each.
            let mut gen2 = gen.clone();
            let mut grad = Gen::zeros();
            let lg = gen2.backward_batch(&xs, &ys, &mut grad);
            for (p, g) in gen2.params_mut().iter_mut().zip(grad.params()) {
                *p -= LR * g;
            }
            let lh = hand.train_step(&xs, &ys, LR);
            let lc = cnet.train_step(&tensor(&xs), &tensor(&ys)).unwrap();
            assert!((lg - lh).abs() < 1e-4 && (lg - lc).abs() < 1e-4, "{lg} {lh} {lc}");
            let (ph, pc) = (hand.to_vec(), cnet.params().unwrap());
            for ((a, b), c) in gen2.params().iter().zip(&ph).zip(&pc) {
                assert!((a - b).abs() < 1e-5 && (a - c).abs() < 1e-5, "{a} {b} {c}");
            }
        }};
    }

    #[test]
    fn generated_handwritten_and_candle_agree() {
        one_thread();
        agree!(xor, 2, 1);
        agree!(reg, 6, 4);
        agree!(iris, 4, 3);
        agree!(digits, 64, 10);
        agree!(mnist, 784, 10);
    }
}
