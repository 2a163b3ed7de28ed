//! The rewrite rules, one line per case in the style of egg's own tests: the input term and
//! the term saturation must prove equal to it, grouped by rule family. Symbols: scalars `a b k
//! seed`; vectors of length 3 `u v x y z` (sample) and `p q` (parameters); 3x3 parameter
//! matrices `A B C`.

use egg::{RecExpr, Runner};
use symnet_compiler::ir::{Dep, Shape, Tensor, TensorAnalysis};
use symnet_compiler::simplify::rules::{self, Rule};

fn analysis(target_sums_to_one: bool) -> TensorAnalysis {
    let mut a = TensorAnalysis {
        target_sums_to_one,
        ..Default::default()
    };
    for s in ["a", "b", "k", "seed"] {
        a.symbols.insert(s.into(), (Shape::Scalar, Dep::Sample));
    }
    for s in ["u", "v", "x", "y", "z"] {
        a.symbols.insert(s.into(), (Shape::Vector(3), Dep::Sample));
    }
    for s in ["p", "q"] {
        a.symbols.insert(s.into(), (Shape::Vector(3), Dep::Param));
    }
    for s in ["A", "B", "C"] {
        a.symbols
            .insert(s.into(), (Shape::Matrix(3, 3), Dep::Param));
    }
    a
}

/// Whether saturating `from` with `rules` proves it equal to `to`.
fn proves(rules: &[Rule], from: &str, to: &str, target_sums_to_one: bool) -> bool {
    let from: RecExpr<Tensor> = from.parse().unwrap();
    let to: RecExpr<Tensor> = to.parse().unwrap();
    let mut runner = Runner::<Tensor, TensorAnalysis>::new(analysis(target_sums_to_one))
        .with_expr(&from)
        .with_expr(&to)
        .with_iter_limit(12)
        .with_node_limit(5_000)
        .run(rules);
    assert!(
        runner.egraph.analysis.conflicts.is_empty(),
        "{:?}",
        runner.egraph.analysis.conflicts
    );
    let (a, b) = (runner.roots[0], runner.roots[1]);
    runner.egraph.rebuild();
    runner.egraph.find(a) == runner.egraph.find(b)
}

macro_rules! cases {
    ($name:ident, $rules:expr, { $($from:literal => $to:literal),* $(,)? }) => {
        #[test]
        fn $name() {
            let rules = $rules;
            $(assert!(proves(&rules, $from, $to, true), "{} => {}", $from, $to);)*
        }
    };
}

macro_rules! non_cases {
    ($name:ident, $rules:expr, { $($from:literal =/> $to:literal),* $(,)? }) => {
        #[test]
        fn $name() {
            let rules = $rules;
            $(assert!(!proves(&rules, $from, $to, false), "{} must not become {}", $from, $to);)*
        }
    };
}

cases!(identities, rules::identities(), {
    "(* x 1)" => "x",
    "(* 1 x)" => "x",
    "(+ x 0)" => "x",
    "(- x 0)" => "x",
    "(* a 0)" => "0",
    "(neg (neg x))" => "x",
    "(+ x (neg y))" => "(- x y)",
    "(- x (neg y))" => "(+ x y)",
    "(* -1 x)" => "(neg x)",
    "(+ x x)" => "(* 2 x)",
    "(* 2 (* 3 x))" => "(* 6 x)",
    "(* (* 2 x) 3)" => "(* 6 x)",
    "(* 2 (* (* 0.5 seed) x))" => "(* seed x)",
    "(T (T A))" => "A",
    "(neg (- x y))" => "(- y x)",
    "(- 1 (- 1 a))" => "a",
    "(- a a)" => "0",
});

non_cases!(identities_keep_shapes, rules::identities(), {
    // 0 * x is a zero *vector*: it must not become the scalar 0.
    "(* x 0)" =/> "0",
    "(- x x)" =/> "0",
});

cases!(broadcast, rules::all(), {
    "(* (fill k 3) x)" => "(* k x)",
    "(* x (fill k 3))" => "(* x k)",
    "(neg (fill k 3))" => "(fill (neg k) 3)",
    "(sum (* k x))" => "(* k (sum x))",
});

cases!(algebra, rules::all(), {
    "(- (* k x) (* k y))" => "(* k (- x y))",
    "(+ (* k x) (* (neg k) y))" => "(* k (- x y))",
    "(+ (* (neg k) x) (* k y))" => "(* k (- y x))",
    "(+ (- x y) (- z x))" => "(- z y)",
    "(- (+ x y) x)" => "y",
    "(/ (* x (sigmoid z)) (sigmoid z))" => "x",
    "(* (/ x (exp z)) (exp z))" => "x",
    "(sum (- x y))" => "(- (sum x) (sum y))",
    // The textbook BCE term turns into the stable, fused one.
    "(+ (* y (ln (sigmoid z))) (* (- 1 y) (ln (- 1 (sigmoid z)))))" => "(neg (- (softplus z) (* y z)))",
});

non_cases!(algebra_needs_a_nonzero_divisor, rules::all(), {
    // z may be zero: a z / z is not a everywhere.
    "(/ (* x z) z)" =/> "x",
    // Dropping the operand that gave the term its shape would change it.
    "(+ (- x a) (- b x))" =/> "(- b a)",
    // sum(v - s) with a broadcast scalar s is sum(v) - n s: the sum does not distribute (and
    // `(sum a)` of a scalar has no shape; `proves` fails on any shape conflict).
    "(sum (- x a))" =/> "(- (sum x) a)",
    "(mv A (+ x a))" =/> "(+ (mv A x) (* a (mv A (fill 1 3))))",
});

cases!(stability, rules::stability(), {
    "(ln (sigmoid z))" => "(neg (softplus (neg z)))",
    "(ln (- 1 (sigmoid z)))" => "(neg (softplus z))",
    "(softplus (neg z))" => "(- (softplus z) z)",
    "(sigmoid (neg z))" => "(- 1 (sigmoid z))",
    "(ln (softmax z))" => "(- z (logsumexp z))",
    "(ln (exp z))" => "z",
});

cases!(targets, rules::all(), {
    // cross_entropy's contract: target rows sum to 1.
    "(sum y)" => "1",
    "(neg (sum (* y (ln (softmax z)))))" => "(- (logsumexp z) (sum (* y z)))",
});

non_cases!(targets_only_under_the_contract, rules::all(), {
    "(sum y)" =/> "1",
});

cases!(linear_algebra, rules::linear_algebra(), {
    "(T (mm A B))" => "(mm (T B) (T A))",
    "(mm (outer x y) A)" => "(outer x (mv (T A) y))",
    "(T (outer x y))" => "(outer y x)",
    "(+ (+ x p) q)" => "(+ x (+ p q))",
});

/// Whether `collapse_chains` on `from`, then saturation with every rule, proves it equal to
/// `to`.
fn chain_proves(from: &str, to: &str) -> bool {
    let from: RecExpr<Tensor> = from.parse().unwrap();
    let to: RecExpr<Tensor> = to.parse().unwrap();
    let mut eg = symnet_compiler::simplify::Graph::new(analysis(false));
    let ids = symnet_compiler::simplify::add_all(&mut eg, &from);
    let root = *ids.last().unwrap();
    let n = symnet_compiler::simplify::collapse_chains(
        &mut eg,
        from.as_ref(),
        &ids,
        &[egg::Id::from(from.as_ref().len() - 1)],
    );
    assert!(n > 0, "no chain collapsed in {from}");
    let to = symnet_compiler::simplify::add_all(&mut eg, &to);
    let (mut eg, _) = symnet_compiler::simplify::saturate(eg);
    eg.rebuild();
    eg.find(root) == eg.find(*to.last().unwrap())
}

#[test]
fn chains_of_affine_maps_collapse() {
    for (from, to) in [
        ("(mv A (mv B x))", "(mv (mm A B) x)"),
        ("(mv A (+ (mv B x) p))", "(+ (mv (mm A B) x) (mv A p))"),
        // Three linear layers are one affine map: W3 (W2 (W1 x + b1) + b2) + b3
        //   = (W3 W2 W1) x + (W3 (W2 b1 + b2) + b3); square matrices: the product is
        //   bracketed at the dynamic program's first best split, (C B) A.
        (
            "(+ (mv C (+ (mv B (+ (mv A x) p)) q)) p)",
            "(+ (mv (mm (mm C B) A) x) (+ (mv C (+ (mv B p) q)) p))",
        ),
    ] {
        assert!(chain_proves(from, to), "{from} => {to}");
    }
}

non_cases!(linear_algebra_keeps_sample_terms_apart, rules::linear_algebra(), {
    // Only parameter-only terms are regrouped: (x + y) + z stays as written.
    "(+ (+ x y) z)" =/> "(+ x (+ y z))",
});
