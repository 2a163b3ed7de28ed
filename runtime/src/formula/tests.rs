use super::*;
use crate::SplitMix64;

/// The hyperparameters every catalog entry is tested with: defaults, and a value for those
/// without one.
fn entry_params(params: &'static [catalog::Param]) -> Vec<(&'static str, f64)> {
    params
        .iter()
        .map(|p| {
            let v = p.default.unwrap_or_else(|| match p.name {
                "alpha" => 0.1,
                "sigma" => 0.7,
                "tau" => 0.3,
                other => panic!("no test value for `{other}`"),
            });
            (p.name, v)
        })
        .collect()
}

/// Which way every branch of the program goes (`if`, `min`/`max`, the sign of `abs`/`relu`,
/// the argmax of `max(v)`), from every node's value: two points with the same signature are
/// on the same smooth piece.
fn signature(nodes: &[Node], v: impl Fn(Id, usize) -> f64, len: impl Fn(Id) -> usize) -> Vec<u64> {
    let mut sig = Vec::new();
    for (k, node) in nodes.iter().enumerate() {
        for i in 0..len(k as Id) {
            let g = |o: Id| v(o, if nodes[o as usize].vector { i } else { 0 });
            match node.op {
                Op::Select(c, a, b, _, _) => sig.push(u64::from(c.holds(g(a), g(b)))),
                Op::Min(a, b) => sig.push(u64::from(min_is_first(g(a), g(b)))),
                Op::Max(a, b) => sig.push(u64::from(max_is_first(g(a), g(b)))),
                Op::F(Fun::Abs | Fun::Relu, a) => sig.push(g(a).sign() as i64 as u64),
                Op::MaxAll(a) => {
                    let xs: Vec<f64> = (0..len(a)).map(|j| v(a, j)).collect();
                    sig.push(crate::argmax(&xs) as u64);
                }
                _ => {}
            }
        }
    }
    sig
}

fn activation_signature(f: &ActivationFormula, x: f64) -> Vec<u64> {
    let mut buf = Vec::new();
    f.value_with(x, &mut buf);
    signature(&f.program.nodes, |o, _| buf[o as usize], |_| 1)
}

fn loss_signature(f: &LossFormula, yhat: &[f64], y: &[f64]) -> Vec<u64> {
    let (vals, offs) = f.forward(yhat, y);
    let nodes = &f.program.nodes;
    signature(
        nodes,
        |o, i| vals[offs[o as usize] + i],
        |o| {
            if nodes[o as usize].vector {
                yhat.len()
            } else {
                1
            }
        },
    )
}

const KINK: f64 = 1e-4;
const H: f64 = 1e-6;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

/// `eval_with_derivative` against `eval` and central finite differences at random points of
/// `[lo, hi]`, skipping points within `KINK` of a kink. Returns how many points were checked.
fn check_activation(f: &ActivationFormula, lo: f64, hi: f64, seed: u64) -> usize {
    let mut rng = SplitMix64::new(seed);
    let mut checked = 0;
    for _ in 0..60 {
        let x = rng.uniform(lo, hi);
        let sig = activation_signature(f, x);
        if activation_signature(f, x - KINK) != sig || activation_signature(f, x + KINK) != sig {
            continue;
        }
        let (v, d) = f.eval_with_derivative(x);
        assert_eq!(v.to_bits(), f.eval(x).to_bits(), "`{}` at {x}", f.source());
        let fd = (f.eval(x + H) - f.eval(x - H)) / (2.0 * H);
        assert!(
            close(d, fd, 1e-6),
            "`{}` at {x}: derivative {d}, finite difference {fd}",
            f.source()
        );
        assert!(v.is_finite() && d.is_finite(), "`{}` at {x}", f.source());
        checked += 1;
    }
    assert!(checked >= 30, "`{}`: only {checked} points", f.source());
    checked
}

/// `eval_with_gradient` against `eval` and central finite differences in each `yhat[i]`, at
/// random samples of 3 outputs (`yhat` in `[lo, hi]`, `y` in `[ylo, yhi]`).
fn check_loss(f: &LossFormula, (lo, hi): (f64, f64), (ylo, yhi): (f64, f64), seed: u64) {
    let mut rng = SplitMix64::new(seed);
    let mut checked = 0;
    for _ in 0..40 {
        let yhat: Vec<f64> = (0..3).map(|_| rng.uniform(lo, hi)).collect();
        let y: Vec<f64> = (0..3).map(|_| rng.uniform(ylo, yhi)).collect();
        let mut grad = vec![f64::NAN; 3];
        let l = f.eval_with_gradient(&yhat, &y, &mut grad);
        assert_eq!(l.to_bits(), f.eval(&yhat, &y).to_bits(), "`{}`", f.source());
        assert!(l.is_finite(), "`{}` at {yhat:?}, {y:?}", f.source());
        let sig = loss_signature(f, &yhat, &y);
        for i in 0..3 {
            let at = |dx: f64| {
                let mut p = yhat.clone();
                p[i] += dx;
                p
            };
            if loss_signature(f, &at(-KINK), &y) != sig || loss_signature(f, &at(KINK), &y) != sig {
                continue;
            }
            let fd = (f.eval(&at(H), &y) - f.eval(&at(-H), &y)) / (2.0 * H);
            assert!(
                close(grad[i], fd, 1e-6),
                "`{}` at {yhat:?}, {y:?}: d/dyhat[{i}] {} vs finite difference {fd}",
                f.source(),
                grad[i]
            );
            checked += 1;
        }
    }
    assert!(checked >= 60, "`{}`: only {checked} checks", f.source());
}

#[test]
fn every_catalog_entry_parses() {
    for a in catalog::ACTIVATIONS {
        let f = parse_activation(a.formula, &entry_params(a.params))
            .unwrap_or_else(|e| panic!("{}: {e}", a.name));
        assert_eq!(f.is_rowwise(), a.rowwise, "{}", a.name);
    }
    for l in catalog::LOSSES {
        parse_loss(l.formula, &entry_params(l.params))
            .unwrap_or_else(|e| panic!("{}: {e}", l.name));
    }
}

#[test]
fn catalog_activation_derivatives_match_finite_differences() {
    for a in catalog::ACTIVATIONS.iter().filter(|a| !a.rowwise) {
        let f = parse_activation(a.formula, &entry_params(a.params)).unwrap();
        check_activation(&f, -4.0, 4.0, 1);
        // Near 0, where the kinks are.
        check_activation(&f, -0.01, 0.01, 2);
    }
}

#[test]
fn catalog_activation_values() {
    let act = |name: &str, params: &[(&str, f64)]| {
        parse_activation(catalog::activation(name).unwrap().formula, params).unwrap()
    };
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let sp = |x: f64| (1.0 + x.exp()).ln();
    for x in [-3.0, -0.5, 0.0, 0.25, 2.0] {
        let gelu = 0.5
            * x
            * (1.0 + ((2.0 / core::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh());
        assert!(close(act("gelu", &[]).eval(x), gelu, 1e-14));
        assert!(close(act("silu", &[]).eval(x), x * sig(x), 1e-14));
        assert!(close(act("swish", &[]).eval(x), x * sig(x), 1e-14));
        let elu = |a: f64| if x > 0.0 { x } else { a * (x.exp() - 1.0) };
        assert!(close(
            act("elu", &[("alpha", 0.5)]).eval(x),
            elu(0.5),
            1e-14
        ));
        let selu = 1.0507009873554805
            * if x > 0.0 {
                x
            } else {
                1.6732632423543772 * (x.exp() - 1.0)
            };
        assert!(close(act("selu", &[]).eval(x), selu, 1e-14));
        assert!(close(act("mish", &[]).eval(x), x * sp(x).tanh(), 1e-14));
        assert!(close(
            act("softsign", &[]).eval(x),
            x / (1.0 + x.abs()),
            1e-14
        ));
        let leaky = act("leaky_relu", &[("alpha", 0.1)]).eval_with_derivative(x);
        assert_eq!(leaky, (x.leaky_relu(0.1), x.leaky_step(0.1)));
        assert_eq!(
            act("relu", &[]).eval_with_derivative(x),
            (x.relu(), x.step())
        );
        assert_eq!(act("softplus", &[]).eval(x), x.softplus());
        assert_eq!(act("sigmoid", &[]).eval(x), x.sigmoid());
    }
    // The derivatives at the kinks: relu'(0) = 0, elu'(0) = alpha (the else branch).
    assert_eq!(act("relu", &[]).eval_with_derivative(0.0), (0.0, 0.0));
    assert_eq!(
        act("elu", &[("alpha", 0.5)]).eval_with_derivative(0.0).1,
        0.5
    );
    assert_eq!(
        parse_activation("|x| abs(x)", &[])
            .unwrap()
            .eval_with_derivative(0.0),
        (0.0, 0.0)
    );
    // f32 agrees with f64.
    let gelu = act("gelu", &[]);
    for x in [-2.5f32, -0.3, 0.7, 3.0] {
        let (v, d) = gelu.eval_with_derivative(x);
        let (v64, d64) = gelu.eval_with_derivative(f64::from(x));
        assert!((f64::from(v) - v64).abs() < 1e-6 && (f64::from(d) - d64).abs() < 1e-6);
    }
}

#[test]
fn catalog_loss_gradients_match_finite_differences() {
    for l in catalog::LOSSES {
        let f = parse_loss(l.formula, &entry_params(l.params)).unwrap();
        let (yhat, y) = match l.output {
            // Probabilities out of a sigmoid or a softmax.
            Output::Sigmoid | Output::Softmax => ((0.05, 0.95), (0.0, 1.0)),
            Output::Any => ((-2.0, 2.0), (-2.0, 2.0)),
        };
        check_loss(&f, yhat, y, 3);
    }
}

#[test]
fn catalog_loss_values() {
    let loss = |name: &str, params: &[(&str, f64)]| {
        parse_loss(catalog::loss(name).unwrap().formula, params).unwrap()
    };
    let (yhat, y) = ([0.5, -1.0, 2.0], [0.0, 0.5, 0.5]);
    let d: Vec<f64> = yhat.iter().zip(&y).map(|(a, b)| a - b).collect();
    let mean = |f: &dyn Fn(f64) -> f64| d.iter().map(|&v| f(v)).sum::<f64>() / 3.0;
    assert!(close(
        loss("mse", &[]).eval(&yhat, &y),
        mean(&|v| v * v),
        1e-14
    ));
    assert!(close(
        loss("mae", &[]).eval(&yhat, &y),
        mean(&|v| v.abs()),
        1e-14
    ));
    let huber = mean(&|v| {
        if v.abs() <= 1.0 {
            0.5 * v * v
        } else {
            v.abs() - 0.5
        }
    });
    assert!(close(
        loss("huber", &[("delta", 1.0)]).eval(&yhat, &y),
        huber,
        1e-14
    ));
    assert!(close(
        loss("log_cosh", &[]).eval(&yhat, &y),
        mean(&|v| v.cosh().ln()),
        1e-14
    ));
    let q = mean(&|v| (0.3 * -v).max(-0.7 * -v));
    assert!(close(
        loss("quantile", &[("tau", 0.3)]).eval(&yhat, &y),
        q,
        1e-14
    ));
    let p: f64 = yhat
        .iter()
        .zip(&y)
        .map(|(a, b)| a.exp() - b * a)
        .sum::<f64>()
        / 3.0;
    assert!(close(loss("poisson_nll", &[]).eval(&yhat, &y), p, 1e-14));
    let s: f64 = 0.7;
    let g = 1.5 * (2.0 * core::f64::consts::PI).ln()
        + 3.0 * s.ln()
        + d.iter().map(|v| v * v).sum::<f64>() / (2.0 * s * s);
    assert!(close(
        loss("gaussian_nll", &[("sigma", s)]).eval(&yhat, &y),
        g,
        1e-14
    ));
}

#[test]
fn log_cosh_is_finite_for_huge_differences() {
    let f = parse_loss(catalog::loss("log_cosh").unwrap().formula, &[]).unwrap();
    for d in [1e4, -1e4, 800.0, -800.0] {
        let mut g = [0.0; 1];
        let l = f.eval_with_gradient(&[d], &[0.0], &mut g);
        assert_eq!(l, d.abs() - core::f64::consts::LN_2);
        assert_eq!(g, [d.signum()]);
        let l32 = f.eval(&[d as f32], &[0.0]);
        assert!(
            l32.is_finite() && (f64::from(l32) - l).abs() < 1e-3 * l,
            "{l32}"
        );
    }
    // ln(sigmoid(z)) and ln(1 - sigmoid(z)) are rewritten as softplus too.
    let ls = parse_activation("|x| ln(sigmoid(x)) + ln(1.0 - sigmoid(x))", &[]).unwrap();
    assert_eq!(ls.eval_with_derivative(1e4), (-1e4, -1.0));
    assert_eq!(ls.eval_with_derivative(-1e4), (-1e4, 1.0));
}

/// User activations: each passes the finite-difference check; some values are pinned too.
const USER_ACTIVATIONS: &[&str] = &[
    "|x| x * sigmoid(x)",
    "|x| gelu(x) * 0.5",
    "|x| elu(x, 0.5)",
    "|x| powi(1.0 + x * x, -2)",
    "|x| powi(x, 3) - 2.0 * powi(x, 2) + x",
    "|x| if x > 1.0 { ln(x) } else { x - 1.0 }",
    "|x| if x < -1.0 { -1.0 } else if x > 1.0 { 1.0 } else { x }",
    "|x| min(max(x, -0.5), 2.0)",
    "|x| max(x, 0.2 * x)",
    "|x| sqrt(1.0 + x * x) - 1.0",
    "|x| ln(cosh(x))",
    "|x| ln(sigmoid(x))",
    "|x| ln(1.0 - sigmoid(x))",
    "|x| x / (1.0 + abs(x))",
    "|x| exp(-x * x / 2.0) / sqrt(2.0 * pi)",
    "|x| tanh(x) * cosh(x / 4.0)",
    "|x| softplus(x) - relu(x)",
    "|x| selu(x) + leaky_relu(x, 0.2)",
    "|x| mish(x) - swish(x)",
    "|x| softsign(2.0 * x) + identity(x)",
    "|x| -x * -x",
    "|x| 2.0 - x - 3.0",
    "|x| x / 2.0 / 4.0",
    "|x| e * x + pi",
    "|x| { x * 2.0 }",
    "|x| 3.0 * if x >= 0.0 { x } else { 0.0 - x * 0.5 }",
    "|x| if x <= 0.0 { exp(x) - 1.0 } else { powi(x, 2) + x }",
    "|x| abs(x - 0.5) + abs(x + 0.5)",
    "|x| 1e-1 * x + 2.5E+0 * sigmoid(x)",
    "|x| powi(sigmoid(x), -1)",
    "|z| z * tanh(z)",
    "|x| relu(x - 1.0) - relu(-x - 1.0)",
    "|x| elu(x) * elu(-x, 2.0)",
    "|x| powi(x, 0) + powi(x, 1)",
    "|x| (x + 1.0) * (x - 1.0) / (2.0 + x * x)",
    "|x| if exp(x) > 2.0 { exp(x) } else { 2.0 * (1.0 + x - 0.6931471805599453) }",
];

#[test]
fn user_activations_match_finite_differences() {
    for (i, src) in USER_ACTIVATIONS.iter().enumerate() {
        let f = parse_activation(src, &[]).unwrap_or_else(|e| panic!("{e}"));
        check_activation(&f, -3.0, 3.0, 100 + i as u64);
    }
    let f = |src: &str| parse_activation(src, &[]).unwrap();
    for x in [-2.0f64, -0.25, 0.5, 3.0] {
        // Precedence and associativity as in Rust.
        assert_eq!(f("|x| -x * -x").eval(x), x * x);
        assert_eq!(f("|x| 2.0 - x - 3.0").eval(x), (2.0 - x) - 3.0);
        assert_eq!(f("|x| x / 2.0 / 4.0").eval(x), x / 2.0 / 4.0);
        assert_eq!(
            f("|x| 1.0 + 2.0 * x - x / 4.0").eval(x),
            1.0 + 2.0 * x - x / 4.0
        );
        assert_eq!(f("|x| -powi(x, 2)").eval(x), -(x * x));
        assert_eq!(f("|x| powi(x, -2)").eval(x), 1.0 / (x * x));
        let hard = f("|x| if x < -1.0 { -1.0 } else if x > 1.0 { 1.0 } else { x }");
        assert_eq!(
            hard.eval_with_derivative(x),
            (x.clamp(-1.0, 1.0), f64::from(u8::from(x.abs() <= 1.0)))
        );
        assert_eq!(
            f("|x| gelu(x) * 0.5").eval(x),
            f("|x| gelu(x)").eval(x) * 0.5
        );
        assert_eq!(f("|x| elu(x)").eval(x), f("|x| elu(x, 1.0)").eval(x));
    }
    // Ties of min and max follow the first argument.
    assert_eq!(
        f("|x| max(x, 2.0 * x)").eval_with_derivative(0.0),
        (0.0, 1.0)
    );
    assert_eq!(
        f("|x| min(2.0 * x, x)").eval_with_derivative(0.0),
        (0.0, 2.0)
    );
    // An untaken branch's NaN or infinity does not leak into the derivative.
    assert_eq!(
        f("|x| if x > 0.0 { ln(x) } else { x }").eval_with_derivative(-1.0),
        (-1.0, 1.0)
    );
    assert_eq!(
        f("|x| if x > 800.0 { x } else { exp(x) * 0.0 }").eval_with_derivative(900.0),
        (900.0, 1.0)
    );
}

const USER_LOSSES: &[&str] = &[
    "|yhat, y| mean(powi(yhat - y, 2))",
    "|yhat, y| sum(abs(yhat - y)) / n",
    "|yhat, y| max(abs(yhat - y))",
    "|yhat, y| mean(max(yhat - y, 0.0)) + mean(min(yhat - y, 0.0) * -2.0)",
    "|yhat, y| sqrt(mean(powi(yhat - y, 2)) + 1e-3)",
    "|yhat, y| ln(sum(exp(yhat))) - sum(y * yhat)",
    "|yhat, y| mean(if yhat > y { 2.0 * (yhat - y) } else { y - yhat })",
    "|yhat, y| mean(ln(cosh(yhat - y))) * 2.0",
    "|yhat, y| mean(powi(1.0 + powi(yhat - y, 2), -1))",
    "|yhat, y| mean(gelu(yhat - y) * 0.5)",
    "|yhat, y| mean(elu(yhat - y, 0.5))",
    "|yhat, y| n * mean(softplus(yhat) - y * yhat)",
    "|yhat, y| mean(sigmoid(yhat) * y) + max(yhat) - mean(yhat)",
    "|yhat, y| sum(y * ln(sigmoid(yhat)) + (1.0 - y) * ln(1.0 - sigmoid(yhat))) * -1.0",
    "|p, t| mean(abs(p - t) / (1.0 + abs(t)))",
    "|yhat, y| mean(if abs(yhat - y) < 0.5 { powi(yhat - y, 2) } else if yhat > y { yhat - y - 0.25 } else { y - yhat - 0.25 })",
    "|yhat, y| mean(exp(yhat) - y * yhat) + 0.1 * sum(powi(yhat, 2))",
    "|yhat, y| sum(yhat) * sum(y)",
    "|yhat, y| mean(powi(yhat - y, 4)) / (1.0 + mean(powi(yhat - y, 2)))",
    "|yhat, y| mean(softsign(yhat - y) * (yhat - y))",
    "|yhat, y| mean(max(0.3 * (y - yhat), (0.3 - 1.0) * (y - yhat)))",
    "|yhat, y| -mean(y * ln(sigmoid(yhat)))",
    "|yhat, y| powi(max(yhat) - sum(y) / n, 2) + mean(relu(yhat))",
    "|yhat, y| mean(powi(yhat - mean(yhat), 2)) + mean(powi(yhat - y, 2))",
    "|yhat, y| mean(gelu(yhat * max(y - yhat))) + sum(2.0) + mean(3.0 * n)",
    "|yhat, y| sum(exp(yhat - max(yhat))) * sum(softplus(y - yhat)) / n",
];

#[test]
fn user_losses_match_finite_differences() {
    for (i, src) in USER_LOSSES.iter().enumerate() {
        let f = parse_loss(src, &[]).unwrap_or_else(|e| panic!("{e}"));
        check_loss(&f, (-2.0, 2.0), (-1.0, 1.0), 200 + i as u64);
    }
    let f = |src: &str| parse_loss(src, &[]).unwrap();
    let (yhat, y) = ([1.0, 3.0, 2.0], [0.0, 1.0, 0.0]);
    let mut g = [0.0; 3];
    // max(v) takes the gradient of its first largest element.
    assert_eq!(
        f("|yhat, y| max(yhat)").eval_with_gradient(&[1.0, 3.0, 3.0], &y, &mut g),
        3.0
    );
    assert_eq!(g, [0.0, 1.0, 0.0]);
    assert_eq!(
        f("|yhat, y| sum(yhat) * sum(y)").eval_with_gradient(&yhat, &y, &mut g),
        6.0
    );
    assert_eq!(g, [1.0, 1.0, 1.0]);
    assert_eq!(f("|yhat, y| n + 0.0 * sum(yhat)").eval(&yhat, &y), 3.0);
    // Numbers are repeated over the outputs: sum(2) = 2n, mean(2) = 2.
    assert_eq!(
        f("|yhat, y| sum(2.0) + mean(2.0) + max(n)").eval(&yhat, &y),
        11.0
    );
    // Reductions nested in a vector expression: the variance, and its gradient
    // 2 (yhat_i - mean) / n.
    let var = f("|yhat, y| mean(powi(yhat - mean(yhat), 2))");
    assert_eq!(var.eval_with_gradient(&yhat, &y, &mut g), 2.0 / 3.0);
    assert_eq!(g, [-2.0 / 3.0, 2.0 / 3.0, 0.0]);
    // A loss that does not depend on yhat has a zero gradient.
    assert_eq!(
        f("|yhat, y| mean(y)").eval_with_gradient(&yhat, &y, &mut g),
        1.0 / 3.0
    );
    assert_eq!(g, [0.0; 3]);
    // f32.
    let mut g32 = [0.0f32; 3];
    let l = f("|yhat, y| mean(powi(yhat - y, 2))").eval_with_gradient(
        &[1.0f32, 3.0, 2.0],
        &[0.0, 1.0, 0.0],
        &mut g32,
    );
    assert_eq!(l, 3.0);
    assert_eq!(g32, [2.0 / 3.0, 4.0 / 3.0, 4.0 / 3.0]);
}

#[test]
fn hyperparameters_are_bound_by_name_and_folded() {
    let f = parse_activation(
        "|x| if x > 0.0 { x } else { alpha * x }",
        &[("alpha", 0.25)],
    )
    .unwrap();
    assert_eq!(f.eval_with_derivative(-2.0), (-0.5, 0.25));
    assert_eq!(f.params(), &[("alpha".to_owned(), 0.25)]);
    // Constant subexpressions are folded: `2.0 * alpha` is one constant, `0.5 * sqrt(2 / pi)`
    // too.
    let g = parse_activation(
        "|x| elu(x, 2.0 * alpha) + 0.5 * sqrt(2.0 / pi)",
        &[("alpha", 0.25)],
    )
    .unwrap();
    assert!(
        g.program
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Const(_)))
            .count()
            <= 4
    );
    assert_eq!(
        g.eval(-1.0),
        0.5 * ((-1.0f64).exp() - 1.0) + 0.5 * (2.0 / core::f64::consts::PI).sqrt()
    );
    let l = parse_loss("|yhat, y| mean(abs(yhat - y)) * scale", &[("scale", 3.0)]).unwrap();
    assert_eq!(l.eval(&[1.0], &[0.0]), 3.0);
    // The closure's argument shadows a hyperparameter of the same name.
    let s = parse_activation("|alpha| alpha * 2.0", &[("alpha", 10.0)]).unwrap();
    assert_eq!(s.eval(1.0), 2.0);
}

/// `(formula, is a loss, expected message, the text at the expected offset)`; the offset is the
/// first occurrence of that text (after `from` bytes, the fifth field).
const ERRORS: &[(&str, bool, &str, &str, usize)] = &[
    // Syntax.
    ("|x| x +", false, "expected an expression, found the end of the formula", "", 7),
    ("|x| (x + 1.0", false, "expected `)`, found the end of the formula", "", 12),
    ("x + 1.0", false, "a formula starts with its arguments: `|x| ...` for an activation, `|yhat, y| ...` for a loss", "x", 0),
    ("|x| x ^ 2", false, "`^` is not an operator: write a power as `powi(a, k)`", "^", 0),
    ("|x| x.exp()", false, "unexpected `.`: numbers are written `2.0` and functions are called as `exp(x)`", ".", 0),
    ("|x| x # 1.0", false, "unexpected character `#`", "#", 0),
    ("|x| 2x", false, "unexpected `x` right after the number `2`", "x", 4),
    ("|x| x == 1.0", false, "unexpected `=`: the comparisons are `>`, `>=`, `<` and `<=`", "=", 0),
    ("|x| if x > 0.0 { x }", false, "an `if` needs an `else` branch: `if a > b { c } else { d }`", "", 20),
    ("|x| if x > 0.0 x else { 0.0 }", false, "expected `{` after the condition of `if`, found `x`", "x else", 0),
    ("|x| if x { x } else { 0.0 }", false, "expected a comparison (`>`, `>=`, `<` or `<=`) in the condition of `if`, found `{`", "{", 0),
    ("|x| x > 0.0", false, "a comparison is only allowed as the condition of an `if`: `if a > b { c } else { d }`", ">", 0),
    ("|x| x 1.0", false, "expected an operator or the end of the formula, found a number", "1.0", 0),
    ("|x| exp(x 1.0)", false, "expected `,` or `)` in the arguments of `exp`, found a number", "1.0", 0),
    ("|x| exp(x))", false, "expected an operator or the end of the formula, found `)`", ")", 10),
    // Argument lists of the closure.
    ("|x, y| x", false, "an activation takes one argument, as in `|x| ...`, but this formula takes 2", "|", 0),
    ("|yhat| mean(yhat)", true, "a loss takes two arguments, as in `|yhat, y| ...`, but this formula takes 1", "|", 0),
    ("|y, y| mean(y)", true, "the argument `y` is named twice", "y|", 0),
    // Unknown functions, with suggestions.
    ("|x| sigmod(x)", false, "unknown function `sigmod`; did you mean `sigmoid`?", "sigmod", 0),
    ("|x| Exp(x)", false, "unknown function `Exp`; did you mean `exp`?", "Exp", 0),
    ("|x| log(x)", false, "unknown function `log`; did you mean `ln`?", "log", 0),
    ("|x| x + gleu(x)", false, "unknown function `gleu`; did you mean `gelu`?", "gleu", 0),
    ("|x| frobnicate(x)", false, "unknown function `frobnicate`", "frobnicate", 0),
    ("|yhat, y| maen(yhat)", true, "unknown function `maen`; did you mean `mean`?", "maen", 0),
    // Arity.
    ("|x| exp(x, 2.0)", false, "`exp` takes 1 argument (`a`), got 2", "exp", 0),
    ("|x| powi(x)", false, "`powi` takes 2 arguments (`a`, `k`), got 1", "powi", 0),
    ("|x| 1.0 + min(x)", false, "`min` takes 2 arguments (`a`, `b`), got 1", "min", 0),
    ("|x| elu(x, 1.0, 2.0)", false, "`elu` takes 1 or 2 arguments (`x`, `alpha`), got 3", "elu", 0),
    ("|x| leaky_relu(x)", false, "`leaky_relu` takes 2 arguments (`x`, `alpha`), got 1", "leaky_relu", 0),
    ("|x| gelu()", false, "`gelu` takes 1 argument (`x`), got 0", "gelu", 0),
    ("|yhat, y| sum(yhat, y)", true, "`sum` takes 1 argument (a vector over the outputs), got 2", "sum", 0),
    ("|yhat, y| max(yhat, y, 1.0)", true, "`max` takes 1 argument (a vector, reduced to its largest element) or 2 (elementwise), got 3", "max", 0),
    // Unbound variables.
    ("|x| alpah * x", false, "unknown variable `alpah`; did you mean `alpha`?", "alpah", 0),
    ("|x| x * yy", false, "unknown variable `yy`", "yy", 0),
    ("|yhat, y| mean(yhta - y)", true, "unknown variable `yhta`; did you mean `yhat`?", "yhta", 0),
    ("|x| n * x", false, "`n`, the number of outputs, is only defined in a loss", "n", 4),
    ("|x| exp * x", false, "`exp` is a function: call it as `exp(...)`", "exp", 0),
    // powi's exponent.
    ("|x| powi(x, 2.5)", false, "the exponent of `powi` must be an integer literal, such as `2` or `-1`", "2.5", 0),
    ("|x| powi(x, 2.0)", false, "the exponent of `powi` must be an integer literal, such as `2` or `-1`", "2.0", 0),
    ("|x| powi(x, alpha)", false, "the exponent of `powi` must be an integer literal, such as `2` or `-1`", "alpha)", 0),
    ("|x| powi(x, 1 + 1)", false, "the exponent of `powi` must be an integer literal, such as `2` or `-1`", "1 + 1", 0),
    // A loss must reduce.
    ("|yhat, y| yhat - y", true, "a loss must reduce to one number per sample, but this is a vector over the outputs: wrap it in `mean(...)` or `sum(...)`", "yhat", 10),
    ("|yhat, y| (yhat - y) * mean(y)", true, "a loss must reduce to one number per sample, but this is a vector over the outputs: wrap it in `mean(...)` or `sum(...)`", "(", 0),
    ("|yhat, y| sum(mean(yhat))", true, "`sum` of a number that is already reduced over the outputs: its argument must be a vector", "mean", 0),
    ("|yhat, y| mean(2.0 * max(y - yhat))", true, "`mean` of a number that is already reduced over the outputs: its argument must be a vector", "2.0", 0),
    // Reductions in an activation.
    ("|x| x / sum(x)", false, "`sum(v)` reduces over the outputs, which only a loss can do: an activation is elementwise in `x`", "sum", 0),
    ("|x| max(x)", false, "`max(v)` reduces over the outputs, which only a loss can do: an activation is elementwise in `x`", "max", 0),
    // Catalog calls: constant hyperparameters within their bounds.
    ("|x| elu(x, x)", false, "the `alpha` of `elu` must be a constant (numbers and hyperparameters)", "x)", 0),
    ("|x| elu(x, -1.0)", false, "the `alpha` of `elu` must be in (0, inf), got -1", "-1.0", 0),
    ("|x| leaky_relu(x, 1.0)", false, "the `alpha` of `leaky_relu` must be in [0, 1), got 1", "1.0", 0),
    // softmax is row-wise.
    ("|x| 2.0 * softmax(x)", false, "`softmax` is row-wise over a layer's outputs: it can only be a whole activation, `|x| softmax(x)`", "softmax", 0),
    ("|yhat, y| sum(softmax(yhat))", true, "`softmax` is row-wise over a layer's outputs: it can only be a whole activation, `|x| softmax(x)`", "softmax", 0),
];

#[test]
fn errors_have_messages_and_offsets() {
    for &(src, loss, message, at, from) in ERRORS {
        let params = [("alpha", 0.5)];
        let err = if loss {
            parse_loss(src, &params).map(|_| ()).unwrap_err()
        } else {
            parse_activation(src, &params).map(|_| ()).unwrap_err()
        };
        let offset = if at.is_empty() {
            from
        } else {
            from + src[from..].find(at).unwrap()
        };
        assert_eq!(err.message, message, "{src}");
        assert_eq!(err.offset, offset, "{src}: {err}");
        assert_eq!(err.formula, src);
        // The caret is under the offending token.
        let shown = err.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines,
            [
                message,
                &format!("  {src}"),
                &format!("  {}^", " ".repeat(offset))
            ]
        );
    }
}

#[test]
fn long_formulas_are_cut_around_the_error() {
    let src = format!(
        "|yhat, y| mean({} + frobnicate(yhat))",
        "abs(yhat - y) + ".repeat(10).trim_end_matches(" + ")
    );
    let err = parse_loss(&src, &[]).unwrap_err();
    assert_eq!(err.offset, src.find("frobnicate").unwrap());
    let shown = err.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines[1].starts_with("  ...") && lines[1].len() < 90,
        "{shown}"
    );
    let caret = lines[2].find('^').unwrap();
    assert_eq!(&lines[1][caret..caret + 10], "frobnicate", "{shown}");
    // Multi-line formulas show the line of the error.
    let err = parse_activation("|x|\n  x + y", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown variable `y`; did you mean `x`?\n    x + y\n        ^"
    );
    // Non-ASCII text: the offset is in bytes, the caret in characters.
    let err = parse_activation("|x| é + x", &[]).unwrap_err();
    assert_eq!(
        (err.offset, err.message.as_str()),
        (4, "unexpected character `é`")
    );
    assert_eq!(
        err.to_string(),
        "unexpected character `é`\n  |x| é + x\n      ^"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let src = format!("|x| {}x{}", "(".repeat(10_000), ")".repeat(10_000));
    let err = parse_activation(&src, &[]).unwrap_err();
    assert_eq!(err.message, "the formula is nested too deeply");
    let src = format!("|x| {}x", "-".repeat(10_000));
    assert!(parse_activation(&src, &[]).is_err());
    // Reasonable nesting is fine.
    let src = format!("|x| {}x{}", "(".repeat(50), ")".repeat(50));
    assert_eq!(parse_activation(&src, &[]).unwrap().eval(2.0), 2.0);
}

#[test]
fn softmax_is_recognized_as_a_whole_formula() {
    let f = parse_activation("|z| softmax(z)", &[]).unwrap();
    assert!(f.is_rowwise());
    assert!(!parse_activation("|x| sigmoid(x)", &[])
        .unwrap()
        .is_rowwise());
}

#[test]
#[should_panic(expected = "row-wise")]
fn softmax_has_no_value_of_one_element() {
    parse_activation("|x| softmax(x)", &[]).unwrap().eval(1.0);
}

#[test]
fn common_subexpressions_are_shared_and_dead_code_removed() {
    let huber = parse_loss(catalog::loss("huber").unwrap().formula, &[("delta", 1.0)]).unwrap();
    // yhat - y and abs(yhat - y) once each.
    let subs = huber
        .program
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Sub(..)))
        .count();
    let abs = huber
        .program
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::F(Fun::Abs, _)))
        .count();
    assert_eq!((subs, abs), (2, 1)); // yhat - y, and abs(..) - 0.5 * delta
                                     // ln(cosh(d)): no cosh node is left to overflow.
    let lc = parse_loss("|yhat, y| mean(ln(cosh(yhat - y)))", &[]).unwrap();
    assert!(!lc
        .program
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::F(Fun::Cosh, _))));
}

#[test]
fn closest_names() {
    let c = ["exp", "ln", "sigmoid", "softplus", "mean"];
    assert_eq!(closest("sigmoud", c), Some("sigmoid"));
    assert_eq!(closest("SIGMOID", c), Some("sigmoid"));
    assert_eq!(closest("softpuls", c), Some("softplus"));
    assert_eq!(closest("log", c), Some("ln"));
    assert_eq!(closest("zzz", c), None);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}
