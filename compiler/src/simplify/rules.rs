//! The rewrite rules, grouped by purpose. Every rule keeps the shape of the term it rewrites
//! (the analysis reports a violation as a compiler bug) and carries a one-line reason.
//!
//! There is deliberately no blanket commutativity or associativity on elementwise operations:
//! they make the e-graph explode without making any network cheaper.

use egg::{rewrite as rw, EGraph, Id, Rewrite, Subst, Var};

use crate::ir::{Shape, Tensor, TensorAnalysis};

/// A rewrite over the tensor IR.
pub type Rule = Rewrite<Tensor, TensorAnalysis>;

fn var(s: &str) -> Var {
    s.parse().expect("valid pattern variable")
}

/// The condition "`v` is a scalar".
fn is_scalar(v: &str) -> impl Fn(&mut EGraph<Tensor, TensorAnalysis>, Id, &Subst) -> bool {
    let v = var(v);
    move |eg, _, s| eg[s[v]].data.shape == Some(Shape::Scalar)
}

/// The condition "`v` is a vector".
fn is_vector(v: &str) -> impl Fn(&mut EGraph<Tensor, TensorAnalysis>, Id, &Subst) -> bool {
    let v = var(v);
    move |eg, _, s| matches!(eg[s[v]].data.shape, Some(Shape::Vector(_)))
}

/// The condition "`v` is a known constant".
fn is_const(v: &str) -> impl Fn(&mut EGraph<Tensor, TensorAnalysis>, Id, &Subst) -> bool {
    let v = var(v);
    move |eg, _, s| eg[s[v]].data.constant.is_some()
}

/// Algebraic identities: units, zeros, double negation, and moving scalar constants together
/// so that constant folding (in the analysis) can combine them.
pub fn identities() -> Vec<Rule> {
    vec![
        // x * 1 = x: 1 is the multiplicative unit; broadcasting a scalar 1 keeps x's shape.
        rw!("mul-one"; "(* ?a 1)" => "?a"),
        rw!("one-mul"; "(* 1 ?a)" => "?a"),
        // x + 0 = x and x - 0 = x: 0 is the additive unit.
        rw!("add-zero"; "(+ ?a 0)" => "?a"),
        rw!("zero-add"; "(+ 0 ?a)" => "?a"),
        rw!("sub-zero"; "(- ?a 0)" => "?a"),
        // 0 * x = 0: only for scalar x, or the shape would change.
        rw!("mul-zero"; "(* ?a 0)" => "0" if is_scalar("?a")),
        rw!("zero-mul"; "(* 0 ?a)" => "0" if is_scalar("?a")),
        // -(-x) = x.
        rw!("neg-neg"; "(neg (neg ?a))" => "?a"),
        // a + (-b) = a - b and a - (-b) = a + b: one operation instead of two.
        rw!("add-neg"; "(+ ?a (neg ?b))" => "(- ?a ?b)"),
        rw!("sub-neg"; "(- ?a (neg ?b))" => "(+ ?a ?b)"),
        // -1 * x = -x.
        rw!("mul-minus-one"; "(* -1 ?a)" => "(neg ?a)"),
        // a + a = 2a: the two paths of d(x*x) meet here.
        rw!("add-self"; "(+ ?a ?a)" => "(* 2 ?a)"),
        // c (d x) = (c d) x for constants c, d: the analysis folds c d.
        rw!("mul-const-assoc"; "(* ?c (* ?d ?a))" => "(* (* ?c ?d) ?a)"
            if is_const("?c") if is_const("?d")),
        // (a x) c = (a c) x for scalars: keeps constants on the left where the rule above sees them.
        rw!("mul-const-right"; "(* (* ?c ?a) ?d)" => "(* (* ?c ?d) ?a)"
            if is_const("?c") if is_const("?d")),
        rw!("const-mul-swap"; "(* ?a ?c)" => "(* ?c ?a)" if is_const("?c")),
        // (T (T a)) = a.
        rw!("transpose-transpose"; "(T (T ?a))" => "?a"),
    ]
}

/// Rules about broadcasting: `fill` only exists to give the adjoint of `sum` a shape, and
/// disappears as soon as it meets a vector of the same length.
pub fn broadcast() -> Vec<Rule> {
    vec![
        // fill(s) * v = s * v for a vector v: broadcasting a scalar is what fill does.
        rw!("fill-mul"; "(* (fill ?s ?n) ?v)" => "(* ?s ?v)" if is_vector("?v")),
        rw!("mul-fill"; "(* ?v (fill ?s ?n))" => "(* ?v ?s)" if is_vector("?v")),
        // k fill(s) = fill(k s) for a scalar k.
        rw!("scale-fill"; "(* ?k (fill ?s ?n))" => "(fill (* ?k ?s) ?n)" if is_scalar("?k")),
        // sum(k v) = k sum(v) for a scalar k: one multiplication instead of n.
        rw!("sum-scale"; "(sum (* ?k ?v))" => "(* ?k (sum ?v))" if is_scalar("?k")),
    ]
}

/// The rule set used by the compiler, every group together.
pub fn all() -> Vec<Rule> {
    let mut r = identities();
    r.extend(broadcast());
    r
}
