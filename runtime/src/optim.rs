//! Optimizers over the flat parameter view.
//!
//! Every optimizer works on `&mut [T]` parameters and a `&[T]` gradient of the same length (a
//! network's [`params_mut`](crate::Network::params_mut) and its gradient's
//! [`params`](crate::Network::params)). Each is a plain struct of hyperparameters with documented
//! defaults, built with struct-update syntax:
//!
//! ```
//! use symnet_runtime::optim::{Adam, Momentum, Optimizer};
//!
//! let mut opt = Momentum::<f64> { lr: 0.1, ..Default::default() };
//! let mut theta = [1.0, -2.0];
//! opt.step(&mut theta, &[0.5, 0.5]);
//! assert_eq!(theta, [0.95, -2.05]);
//!
//! let _adam = Adam::<f32> { lr: 1e-2, ..Default::default() };
//! ```
//!
//! Minibatch SGD is [`GradientDescent`] or [`Momentum`] applied once per shuffled minibatch: it is
//! chosen by the training loop's [`batch_size`](crate::train::TrainConfig::batch_size).
//!
//! Every optimizer exposes its learning rate through [`Optimizer::learning_rate`] and
//! [`Optimizer::set_learning_rate`], which the training loop's learning-rate
//! [`Schedule`](crate::train::Schedule) uses.

use crate::Scalar;

/// An update rule: moves `params` against `grad`.
pub trait Optimizer<T: Scalar> {
    /// One update. `grad` must have the length of `params` (panics otherwise). Optimizer state
    /// (velocities, moments) is created on the first step, sized to `params`, and recreated
    /// zeroed if the length changes.
    fn step(&mut self, params: &mut [T], grad: &[T]);

    /// Forgets the state (velocities, moments, step count), as if no step had been taken.
    fn reset(&mut self) {}

    /// The learning rate (step size) of the next step.
    fn learning_rate(&self) -> f64;

    /// Sets the learning rate of the following steps; the state is kept. The training loop's
    /// [`Schedule`](crate::train::Schedule) calls this once per epoch.
    fn set_learning_rate(&mut self, lr: f64);
}

impl<T: Scalar, O: Optimizer<T> + ?Sized> Optimizer<T> for &mut O {
    fn step(&mut self, params: &mut [T], grad: &[T]) {
        (**self).step(params, grad)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn learning_rate(&self) -> f64 {
        (**self).learning_rate()
    }
    fn set_learning_rate(&mut self, lr: f64) {
        (**self).set_learning_rate(lr)
    }
}

impl<T: Scalar, O: Optimizer<T> + ?Sized> Optimizer<T> for Box<O> {
    fn step(&mut self, params: &mut [T], grad: &[T]) {
        (**self).step(params, grad)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn learning_rate(&self) -> f64 {
        (**self).learning_rate()
    }
    fn set_learning_rate(&mut self, lr: f64) {
        (**self).set_learning_rate(lr)
    }
}

#[track_caller]
fn check_len(params: usize, grad: usize) {
    assert_eq!(
        params, grad,
        "optimizer step: the gradient has {grad} values but there are {params} parameters"
    );
}

/// Plain gradient descent: `theta <- theta - lr * grad`.
///
/// Default: `lr = 0.01`.
///
/// ```
/// use symnet_runtime::optim::{GradientDescent, Optimizer};
/// let mut opt = GradientDescent { lr: 0.5 };
/// let mut theta = [1.0f32];
/// opt.step(&mut theta, &[2.0]);
/// assert_eq!(theta, [0.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradientDescent {
    /// The learning rate (step size). Default `0.01`.
    pub lr: f64,
}

impl Default for GradientDescent {
    fn default() -> Self {
        Self { lr: 0.01 }
    }
}

impl<T: Scalar> Optimizer<T> for GradientDescent {
    fn step(&mut self, params: &mut [T], grad: &[T]) {
        check_len(params.len(), grad.len());
        let lr = T::from_f64(self.lr);
        for (p, &g) in params.iter_mut().zip(grad) {
            *p -= lr * g;
        }
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}

/// The state of [`Momentum`]: one velocity per parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct MomentumState<T> {
    velocity: Vec<T>,
}

impl<T> Default for MomentumState<T> {
    fn default() -> Self {
        Self {
            velocity: Vec::new(),
        }
    }
}

impl<T: Scalar> MomentumState<T> {
    /// The velocities (empty before the first step).
    pub fn velocity(&self) -> &[T] {
        &self.velocity
    }
}

/// Gradient descent with heavy-ball momentum (Polyak):
/// `v <- momentum * v + grad`, `theta <- theta - lr * v`, with `v = 0` initially.
///
/// Defaults: `lr = 0.01`, `momentum = 0.9`.
///
/// ```
/// use symnet_runtime::optim::{Momentum, Optimizer};
/// let mut opt = Momentum::<f64> { lr: 1.0, momentum: 0.5, ..Default::default() };
/// let mut theta = [0.0];
/// opt.step(&mut theta, &[1.0]); // v = 1
/// opt.step(&mut theta, &[1.0]); // v = 1.5
/// assert_eq!(theta, [-2.5]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Momentum<T> {
    /// The learning rate. Default `0.01`.
    pub lr: f64,
    /// The velocity decay, in `[0, 1)`. Default `0.9`.
    pub momentum: f64,
    /// The velocities; start from `Default::default()`.
    pub state: MomentumState<T>,
}

impl<T> Default for Momentum<T> {
    fn default() -> Self {
        Self {
            lr: 0.01,
            momentum: 0.9,
            state: MomentumState::default(),
        }
    }
}

impl<T: Scalar> Optimizer<T> for Momentum<T> {
    fn step(&mut self, params: &mut [T], grad: &[T]) {
        check_len(params.len(), grad.len());
        let v = &mut self.state.velocity;
        if v.len() != params.len() {
            v.clear();
            v.resize(params.len(), T::ZERO);
        }
        let (lr, mu) = (T::from_f64(self.lr), T::from_f64(self.momentum));
        for ((p, vi), &g) in params.iter_mut().zip(v.iter_mut()).zip(grad) {
            *vi = mu * *vi + g;
            *p -= lr * *vi;
        }
    }

    fn reset(&mut self) {
        self.state.velocity.clear();
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}

/// The state of [`Adam`]: first and second moment estimates and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState<T> {
    m: Vec<T>,
    v: Vec<T>,
    t: u64,
}

impl<T> Default for AdamState<T> {
    fn default() -> Self {
        Self {
            m: Vec::new(),
            v: Vec::new(),
            t: 0,
        }
    }
}

impl<T: Scalar> AdamState<T> {
    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }
}

/// Adam (Kingma and Ba, 2015) with bias correction:
/// `m <- beta1 m + (1 - beta1) g`, `v <- beta2 v + (1 - beta2) g^2`,
/// `theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)` with `m_hat = m / (1 - beta1^t)`,
/// `v_hat = v / (1 - beta2^t)` at step `t = 1, 2, ...`.
///
/// Defaults: `lr = 0.001`, `beta1 = 0.9`, `beta2 = 0.999`, `eps = 1e-8`.
///
/// ```
/// use symnet_runtime::optim::{Adam, Optimizer};
/// let mut opt = Adam::<f64> { lr: 0.1, ..Default::default() };
/// let mut theta = [1.0];
/// opt.step(&mut theta, &[3.0]); // the first step moves by about lr, whatever the scale of g
/// assert!((theta[0] - 0.9).abs() < 1e-6);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Adam<T> {
    /// The learning rate. Default `0.001`.
    pub lr: f64,
    /// The decay of the first moment estimate. Default `0.9`.
    pub beta1: f64,
    /// The decay of the second moment estimate. Default `0.999`.
    pub beta2: f64,
    /// Added to `sqrt(v_hat)` to avoid division by zero. Default `1e-8`.
    pub eps: f64,
    /// The moments and step count; start from `Default::default()`.
    pub state: AdamState<T>,
}

impl<T> Default for Adam<T> {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            state: AdamState::default(),
        }
    }
}

impl<T: Scalar> Optimizer<T> for Adam<T> {
    fn step(&mut self, params: &mut [T], grad: &[T]) {
        check_len(params.len(), grad.len());
        let s = &mut self.state;
        if s.m.len() != params.len() || s.v.len() != params.len() {
            s.m.clear();
            s.m.resize(params.len(), T::ZERO);
            s.v.clear();
            s.v.resize(params.len(), T::ZERO);
            s.t = 0;
        }
        s.t += 1;
        let t = s.t.min(i32::MAX as u64) as i32;
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = 1.0 - self.beta2.powi(t);
        let (b1, b2) = (T::from_f64(self.beta1), T::from_f64(self.beta2));
        let (ob1, ob2) = (T::from_f64(1.0 - self.beta1), T::from_f64(1.0 - self.beta2));
        // theta -= lr / c1 * m / (sqrt(v / c2) + eps)
        let step = T::from_f64(self.lr / c1);
        let inv_c2 = T::from_f64(1.0 / c2);
        let eps = T::from_f64(self.eps);
        for (((p, m), v), &g) in params.iter_mut().zip(&mut s.m).zip(&mut s.v).zip(grad) {
            *m = b1 * *m + ob1 * g;
            *v = b2 * *v + ob2 * g * g;
            *p -= step * *m / ((*v * inv_c2).sqrt() + eps);
        }
    }

    fn reset(&mut self) {
        self.state = AdamState::default();
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f(theta) = 1/2 |A theta - b|^2 with A = [[2, 1], [1, 3]], b = [1, 2]: the optimum is
    /// A^-1 b = [1/5, 3/5].
    fn grad(theta: &[f64], g: &mut [f64]) {
        let a = [[2.0, 1.0], [1.0, 3.0]];
        let b = [1.0, 2.0];
        let r = [
            a[0][0] * theta[0] + a[0][1] * theta[1] - b[0],
            a[1][0] * theta[0] + a[1][1] * theta[1] - b[1],
        ];
        g[0] = a[0][0] * r[0] + a[1][0] * r[1];
        g[1] = a[0][1] * r[0] + a[1][1] * r[1];
    }

    fn run(opt: &mut dyn Optimizer<f64>, steps: usize) -> [f64; 2] {
        let mut theta = [5.0, -3.0];
        let mut g = [0.0; 2];
        for _ in 0..steps {
            grad(&theta, &mut g);
            opt.step(&mut theta, &g);
        }
        theta
    }

    fn assert_optimum(theta: [f64; 2]) {
        assert!((theta[0] - 0.2).abs() < 1e-6, "{theta:?}");
        assert!((theta[1] - 0.6).abs() < 1e-6, "{theta:?}");
    }

    #[test]
    fn gradient_descent_reaches_the_least_squares_optimum() {
        assert_optimum(run(&mut GradientDescent { lr: 0.1 }, 2000));
    }

    #[test]
    fn momentum_reaches_the_least_squares_optimum() {
        assert_optimum(run(
            &mut Momentum {
                lr: 0.05,
                ..Default::default()
            },
            2000,
        ));
    }

    #[test]
    fn adam_reaches_the_least_squares_optimum() {
        let mut opt = Adam {
            lr: 0.05,
            ..Default::default()
        };
        assert_optimum(run(&mut opt, 5000));
        assert_eq!(opt.state.steps(), 5000);
    }

    #[test]
    fn state_is_resized_and_reset() {
        let mut opt = Momentum::<f32>::default();
        let mut p = [1.0f32; 3];
        opt.step(&mut p, &[1.0; 3]);
        assert_eq!(opt.state.velocity().len(), 3);
        let mut q = [1.0f32; 5];
        opt.step(&mut q, &[1.0; 5]);
        assert_eq!(opt.state.velocity(), &[1.0; 5]);
        opt.reset();
        assert!(opt.state.velocity().is_empty());
    }

    #[test]
    fn the_learning_rate_is_read_and_set_and_the_state_kept() {
        fn check(opt: &mut dyn Optimizer<f64>, lr: f64) {
            assert_eq!(opt.learning_rate(), lr);
            let mut theta = [1.0, 1.0];
            opt.step(&mut theta, &[1.0, -1.0]);
            opt.set_learning_rate(0.25);
            assert_eq!(opt.learning_rate(), 0.25);
            // Through the impl for `&mut O`.
            fn via<O: Optimizer<f64>>(mut o: O) -> f64 {
                o.set_learning_rate(0.5);
                o.learning_rate()
            }
            assert_eq!(via(opt), 0.5);
        }
        let mut gd = GradientDescent { lr: 0.1 };
        check(&mut gd, 0.1);
        assert_eq!(gd.lr, 0.5);
        let mut m = Momentum::default();
        check(&mut m, 0.01);
        assert_eq!((m.lr, m.state.velocity()), (0.5, &[1.0, -1.0][..]));
        let mut a = Adam::default();
        check(&mut a, 1e-3);
        assert_eq!((a.lr, a.state.steps()), (0.5, 1));
        let mut boxed: Box<dyn Optimizer<f64>> = Box::new(Adam::default());
        boxed.set_learning_rate(2.0);
        assert_eq!(boxed.learning_rate(), 2.0);
    }

    #[test]
    #[should_panic(expected = "the gradient has 1 values but there are 2 parameters")]
    fn a_gradient_of_the_wrong_length_panics() {
        GradientDescent::default().step(&mut [0.0f64, 0.0], &[1.0]);
    }
}
