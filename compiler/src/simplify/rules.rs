//! The rewrite rules, grouped by purpose. Every rule keeps the shape of the term it rewrites
//! (the analysis reports a violation as a compiler bug) and carries a one-line reason.
//!
//! There is deliberately no blanket commutativity or associativity on elementwise operations:
//! they make the e-graph explode without making any network cheaper.

use egg::{rewrite as rw, EGraph, Id, Rewrite, Subst, Var};

use crate::ir::{Dep, Shape, Tensor, TensorAnalysis};

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

/// The condition "one of `vars` has the shape of the matched term": a rewrite that drops an
/// operand must not drop the one that gave the term its shape.
fn keeps_shape(
    vars: &'static [&'static str],
) -> impl Fn(&mut EGraph<Tensor, TensorAnalysis>, Id, &Subst) -> bool {
    move |eg, id, s| {
        let target = eg[id].data.shape;
        vars.iter().any(|v| eg[s[var(v)]].data.shape == target)
    }
}

/// The condition "`v` is nonzero everywhere" (from the range analysis).
fn is_nonzero(v: &str) -> impl Fn(&mut EGraph<Tensor, TensorAnalysis>, Id, &Subst) -> bool {
    let v = var(v);
    move |eg, _, s| eg[s[v]].data.range.nonzero()
}

/// The condition "`v` depends on parameters and constants only".
fn is_param_only(v: &str) -> impl Fn(&mut EGraph<Tensor, TensorAnalysis>, Id, &Subst) -> bool {
    let v = var(v);
    move |eg, _, s| eg[s[v]].data.dep <= Dep::Param
}

/// The condition "the target rows sum to 1" (the contract of `cross_entropy`).
fn target_sums_to_one(eg: &mut EGraph<Tensor, TensorAnalysis>, _: Id, _: &Subst) -> bool {
    eg.analysis.target_sums_to_one
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
        // c ((d s) a) = ((c d) s) a: reaches a constant inside a scaled term, as in
        // 2 (0.5 seed) d = (1 seed) d.
        rw!("mul-const-assoc-nested"; "(* ?c (* (* ?d ?s) ?a))" => "(* (* (* ?c ?d) ?s) ?a)"
            if is_const("?c") if is_const("?d")),
        // (a x) c = (a c) x for scalars: keeps constants on the left where the rule above sees them.
        rw!("mul-const-right"; "(* (* ?c ?a) ?d)" => "(* (* ?c ?d) ?a)"
            if is_const("?c") if is_const("?d")),
        rw!("const-mul-swap"; "(* ?a ?c)" => "(* ?c ?a)" if is_const("?c")),
        // (T (T a)) = a.
        rw!("transpose-transpose"; "(T (T ?a))" => "?a"),
        // A negation moves out of a product and into a constant, where it folds.
        rw!("mul-neg"; "(* ?a (neg ?b))" => "(neg (* ?a ?b))"),
        rw!("neg-mul"; "(* (neg ?a) ?b)" => "(neg (* ?a ?b))"),
        rw!("neg-const-mul"; "(neg (* ?c ?a))" => "(* (neg ?c) ?a)" if is_const("?c")),
        // -(a - b) = b - a.
        rw!("neg-sub"; "(neg (- ?a ?b))" => "(- ?b ?a)"),
        // -a + -b = -(a + b) and -a - b = -(a + b).
        rw!("neg-add-neg"; "(+ (neg ?a) (neg ?b))" => "(neg (+ ?a ?b))"),
        rw!("neg-sub-right"; "(- (neg ?a) ?b)" => "(neg (+ ?a ?b))"),
        // 1 - (1 - a) = a.
        rw!("one-minus-twice"; "(- 1 (- 1 ?a))" => "?a"),
        // a - a = 0, for scalars (a vector would change shape).
        rw!("sub-self"; "(- ?a ?a)" => "0" if is_scalar("?a")),
    ]
}

/// Distributivity, factoring and cancellation: the algebra that turns the textbook loss terms
/// into their fused forms. Factoring is the direction that saves work; expansion exists so
/// that cancellation can see the terms.
pub fn algebra() -> Vec<Rule> {
    vec![
        // k a - k b = k (a - b), and its sign-folded variants: one multiplication saved.
        rw!("factor-sub"; "(- (* ?k ?a) (* ?k ?b))" => "(* ?k (- ?a ?b))"),
        rw!("factor-add"; "(+ (* ?k ?a) (* ?k ?b))" => "(* ?k (+ ?a ?b))"),
        rw!("factor-add-neg"; "(+ (* ?k ?a) (* (neg ?k) ?b))" => "(* ?k (- ?a ?b))"),
        rw!("factor-neg-add"; "(+ (* (neg ?k) ?a) (* ?k ?b))" => "(* ?k (- ?b ?a))"),
        rw!("factor-add-neg-product"; "(+ (* ?k ?a) (neg (* ?k ?b)))" => "(* ?k (- ?a ?b))"),
        // a (b - c) = a b - a c and (a - b) c = a c - b c: expansion, for cancellation.
        rw!("distribute-sub-left"; "(* ?a (- ?b ?c))" => "(- (* ?a ?b) (* ?a ?c))"),
        rw!("distribute-sub-right"; "(* (- ?a ?b) ?c)" => "(- (* ?a ?c) (* ?b ?c))"),
        // (a - b) + (c - a) = c - b.
        rw!("cancel-telescope"; "(+ (- ?a ?b) (- ?c ?a))" => "(- ?c ?b)"
            if keeps_shape(&["?b", "?c"])),
        // (a + b) - a = b.
        rw!("cancel-add-sub"; "(- (+ ?a ?b) ?a)" => "?b" if keeps_shape(&["?b"])),
        // a b / b = a and (a / b) b = a, where b is nonzero (a sigmoid, a softmax, an exp).
        rw!("cancel-div"; "(/ (* ?a ?b) ?b)" => "?a" if is_nonzero("?b") if keeps_shape(&["?a"])),
        rw!("cancel-div-mul"; "(* (/ ?a ?b) ?b)" => "?a" if is_nonzero("?b") if keeps_shape(&["?a"])),
        rw!("div-self"; "(/ ?a ?a)" => "1" if is_nonzero("?a") if is_scalar("?a")),
        // sum is linear.
        rw!("sum-neg"; "(sum (neg ?v))" => "(neg (sum ?v))"),
        // (Only for vector operands: sum(v - s) for a broadcast scalar s is sum(v) - n s.)
        rw!("sum-sub"; "(sum (- ?a ?b))" => "(- (sum ?a) (sum ?b))"
            if is_vector("?a") if is_vector("?b")),
        rw!("sum-add"; "(sum (+ ?a ?b))" => "(+ (sum ?a) (sum ?b))"
            if is_vector("?a") if is_vector("?b")),
        rw!("sum-scale-right"; "(sum (* ?v ?k))" => "(* ?k (sum ?v))" if is_scalar("?k")),
    ]
}

/// Activation calculus and numerical stability: every `ln` of a probability becomes a
/// `softplus` or `logsumexp` form that is finite for any logit.
pub fn stability() -> Vec<Rule> {
    vec![
        // ln s(z) = -ln(1 + e^-z) = -softplus(-z).
        rw!("ln-sigmoid"; "(ln (sigmoid ?z))" => "(neg (softplus (neg ?z)))"),
        // ln(1 - s(z)) = ln s(-z) = -softplus(z).
        rw!("ln-one-minus-sigmoid"; "(ln (- 1 (sigmoid ?z)))" => "(neg (softplus ?z))"),
        // softplus(-z) = ln(1 + e^-z) = ln(e^-z (e^z + 1)) = softplus(z) - z.
        rw!("softplus-neg"; "(softplus (neg ?z))" => "(- (softplus ?z) ?z)"),
        // s(-z) = 1 - s(z).
        rw!("sigmoid-neg"; "(sigmoid (neg ?z))" => "(- 1 (sigmoid ?z))"),
        // ln softmax(z) = z - logsumexp(z) (log-softmax).
        rw!("ln-softmax"; "(ln (softmax ?z))" => "(- ?z (logsumexp ?z))"),
        // ln e^z = z.
        rw!("ln-exp"; "(ln (exp ?z))" => "?z"),
    ]
}

/// What a formula written out by hand becomes: the library function it spells (so that
/// `|x| 1.0 / (1.0 + exp(-x))` is `sigmoid`, with its stable evaluation and its derivative),
/// the activation a piecewise form is, and overflow-free forms of `ln cosh`.
pub fn formulas() -> Vec<Rule> {
    vec![
        // 1 / (1 + e^-x) is the logistic function.
        rw!("logistic"; "(/ 1 (+ 1 (exp (neg ?x))))" => "(sigmoid ?x)"),
        rw!("logistic-swapped"; "(/ 1 (+ (exp (neg ?x)) 1))" => "(sigmoid ?x)"),
        // e^x / (1 + e^x) = 1 / (e^-x + 1).
        rw!("logistic-exp"; "(/ (exp ?x) (+ 1 (exp ?x)))" => "(sigmoid ?x)"),
        // ln(1 + e^x) is softplus.
        rw!("softplus-spelled"; "(ln (+ 1 (exp ?x)))" => "(softplus ?x)"),
        // (e^x - e^-x) / (e^x + e^-x) is tanh.
        rw!("tanh-spelled"; "(/ (- (exp ?x) (exp (neg ?x))) (+ (exp ?x) (exp (neg ?x))))" => "(tanh ?x)"),
        // ln cosh a = |a| + ln((1 + e^-2|a|) / 2) = |a| + softplus(-2|a|) - ln 2: no overflow
        // of cosh for large |a|.
        rw!("ln-cosh"; "(ln (cosh ?a))" => "(- (+ (abs ?a) (softplus (* -2 (abs ?a)))) 0.6931471805599453)"),
        // x where x > 0, else 0, is relu, derivative at 0 included (`max(x, 0)`, which takes
        // x at the tie, is not rewritten: its derivative at 0 is 1, relu's 0).
        rw!("select-relu"; "(select (gt ?x 0) ?x 0)" => "(relu ?x)"),
        // x where x > 0, else a x, is leaky_relu with slope a.
        rw!("select-leaky-relu"; "(select (gt ?x 0) ?x (* ?a ?x))" => "(leaky_relu ?x ?a)"
            if is_const("?a")),
    ]
}

/// Facts about the data that a loss's contract guarantees.
pub fn targets() -> Vec<Rule> {
    vec![
        // cross_entropy's targets are one-hot rows (or distributions): sum(y) = 1.
        rw!("one-hot-target"; "(sum y)" => "1" if target_sums_to_one),
    ]
}

/// Linear algebra: what proves that a stack of linear layers is one affine map, and moves
/// parameter-only work (such as `W3 W2 W1`) where it can be computed once per update.
pub fn linear_algebra() -> Vec<Rule> {
    // Associativity of `mm` and `mv` and distribution of `mv` over `+` are not rules: for a
    // chain of n linear layers they would add every bracketing of every sub-chain (O(n^3)
    // e-nodes). `collapse_chains` adds the one collapsed form each chain needs instead.
    let mut rules = vec![
        // (a + b) + c = a + (b + c) when b and c are parameter-only: groups parameter-only
        // terms into one hoistable value. Not a blanket associativity.
        rw!("add-assoc-params"; "(+ (+ ?a ?b) ?c)" => "(+ ?a (+ ?b ?c))"
            if is_param_only("?b") if is_param_only("?c")),
        // (u v^T) B = u (B^T v)^T and A (u v^T) = (A u) v^T.
        rw!("mm-outer-right"; "(mm (outer ?u ?v) ?B)" => "(outer ?u (mv (T ?B) ?v))"),
        rw!("mm-outer-left"; "(mm ?A (outer ?u ?v))" => "(outer (mv ?A ?u) ?v)"),
        // (u v^T)^T = v u^T.
        rw!("transpose-outer"; "(T (outer ?u ?v))" => "(outer ?v ?u)"),
    ];
    // (A B)^T = B^T A^T, both ways.
    rules.extend(rw!("transpose-mm"; "(T (mm ?A ?B))" <=> "(mm (T ?B) (T ?A))"));
    rules
}

/// Rules about broadcasting: `fill` only exists to give the adjoint of `sum` a shape, and
/// disappears as soon as it meets a vector of the same length.
pub fn broadcast() -> Vec<Rule> {
    vec![
        // -fill(s) = fill(-s).
        rw!("neg-fill"; "(neg (fill ?s ?n))" => "(fill (neg ?s) ?n)"),
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
    r.extend(algebra());
    r.extend(stability());
    r.extend(formulas());
    r.extend(targets());
    r.extend(linear_algebra());
    r
}
