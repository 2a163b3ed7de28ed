//! The driver: one pipeline from a checked [`Net`] to the programs every generated function is
//! emitted from (lower, saturate, extract, differentiate, saturate, extract per function,
//! hoist), each program named by what it computes.
//!
//! ```text
//! lower --saturate + extract--> forward (roots OUTPUT, LATENT, LOSS)
//!   --differentiate--> adjoints --saturate + extract per function--> Compiled
//! ```

use std::collections::HashMap;

use egg::{Id, RecExpr, Symbol};
use proc_macro2::Span;

use crate::check::Net;
use crate::explain::Before;
use crate::formula::Need;
use crate::grad::differentiate;
use crate::hoist::{split, Split};
use crate::ir::{
    bias_symbol, lower, num, weight_symbol, Dep, Range, Shape, Tensor, TensorAnalysis,
};
use crate::simplify::cost::Amortization;
use crate::simplify::{
    add_all, collapse_chains, extract, saturate, DagExtractor, Graph, Program, Report,
};
use symnet_runtime::catalog::Output;

/// The root of the first extraction that is the network's output.
const OUTPUT: usize = 0;
/// The root that is the latent representation (the input of the last layer).
const LATENT: usize = 1;
/// The root that is the loss of one sample.
const LOSS: usize = 2;

/// Everything the generated functions are emitted from.
///
/// Each function's program is extracted with the amortization that function really has (see
/// [`Amortization`]): the one-sample functions (`forward`, `latent`, `loss`, `backward`) pay
/// parameter-only work in full on every call, so that their estimated FLOPs do not exceed the
/// declaration's (`compiler/tests/flops.rs` checks it for every declaration in the
/// repository; greedy extraction does not prove it in general); the batch functions and `prepare()` may trade parameter-only work for per-sample work.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// Roots: the output.
    pub forward: Program,
    /// Roots: the latent representation.
    pub latent: Program,
    /// Roots: the loss.
    pub loss: Program,
    /// Roots: the loss, then `d.w`, `d.b` of each layer in order (`None` if the loss does not
    /// depend on that tensor).
    pub backward: Program,
    /// For each layer, whether its `w` and `b` gradients are roots of `backward`.
    pub grad_roots: Vec<(Option<usize>, Option<usize>)>,
    /// The forward pass extracted for `prepare()` (parameter-only work done once, for any
    /// number of samples), split into parameter-only and per-sample parts.
    pub prepared_split: Split,
    /// The forward pass extracted for the batch functions (parameter-only work once per call),
    /// split likewise (for `forward_batch`).
    pub forward_split: Split,
    /// The loss extracted and split likewise (for `loss_batch`).
    pub loss_split: Split,
    /// The backward pass extracted and split likewise (for `backward_batch`).
    pub backward_split: Split,
    /// The explanation's figures of the network as declared, before any rewriting (see
    /// [`explain::before_figures`](crate::explain::before_figures)).
    pub before: Before,
    /// The saturation of the forward pass.
    pub forward_report: Report,
    /// The saturation of forward and gradients together.
    pub backward_report: Report,
    /// The weight penalties (`+ l2(..)`): their value and, with `seed`, their gradients,
    /// compiled apart from the per-sample programs because they depend on the parameters only:
    /// the batch functions compute them once per call, not once per sample.
    pub penalty: Option<PenaltyPrograms>,
    /// Where a user's formula takes `ln` or `sqrt` of, or divides by, a value that the range
    /// analysis cannot prove positive, non-negative or nonzero: the token and the note.
    pub domain_notes: Vec<(Span, String)>,
}

/// The programs of the weight penalties.
#[derive(Clone, Debug)]
pub struct PenaltyPrograms {
    /// Roots: the penalty's value.
    pub value: Program,
    /// Roots: the value, then `seed * d penalty / d w` of each layer with a weight gradient.
    pub backward: Program,
    /// For each layer, the index among `backward`'s roots of its weight gradient.
    pub grad_roots: Vec<Option<usize>>,
}

/// Compiles `sum over penalties and layers of lambda * sum(|W|)` (l1) or `lambda * sum(W W)`
/// (l2), and its gradients, through the same saturation and extraction as the loss.
fn compile_penalty(
    net: &Net,
    symbols: &HashMap<Symbol, (Shape, Dep)>,
) -> syn::Result<Option<PenaltyPrograms>> {
    if net.penalties.is_empty() {
        return Ok(None);
    }
    let mut expr: RecExpr<Tensor> = RecExpr::default();
    let mut total: Option<Id> = None;
    for p in &net.penalties {
        for (k, layer) in net.layers.iter().enumerate() {
            let w = expr.add(Tensor::Symbol(weight_symbol(&layer.name.to_string())));
            let e = if p.l1 {
                expr.add(Tensor::Abs(w))
            } else {
                expr.add(Tensor::Mul([w, w]))
            };
            // sum over the matrix: its rows times a vector of ones, summed.
            let one = expr.add(num(1.0));
            let n = expr.add(num(net.fan_in(k) as f64));
            let ones = expr.add(Tensor::Fill([one, n]));
            let rows = expr.add(Tensor::MatVec([e, ones]));
            let s = expr.add(Tensor::Sum(rows));
            let lam = expr.add(num(p.lambda));
            let t = expr.add(Tensor::Mul([lam, s]));
            total = Some(match total {
                Some(a) => expr.add(Tensor::Add([a, t])),
                None => t,
            });
        }
    }
    let Some(total) = total else {
        return Ok(None);
    };
    let analysis = TensorAnalysis {
        symbols: symbols.clone(),
        ..Default::default()
    };
    let mut eg = Graph::new(analysis.clone());
    let ids = add_all(&mut eg, &expr);
    check_conflicts(net, &eg, "penalty lowering")?;
    let (eg, _) = saturate(eg);
    let value = extract(&eg, &[ids[usize::from(total)]], Amortization::PER_CALL)
        .map_err(|e| internal(net, "penalty extraction", &e))?;
    let diff = differentiate(&value, 0, symbols)
        .map_err(|e| internal(net, "penalty differentiation", &e))?;
    let mut eg = Graph::new(analysis);
    let ids = add_all(&mut eg, &diff.expr);
    let (eg, _) = saturate(eg);
    check_conflicts(net, &eg, "penalty saturation")?;
    // Penalties are computed once per call of the functions that use them.
    let extractor = DagExtractor::new(&eg, Amortization::PER_CALL);
    let mut roots = vec![ids[value.roots[0]]];
    let mut grad_roots = Vec::new();
    for layer in &net.layers {
        let g = diff
            .grads
            .get(&weight_symbol(&layer.name.to_string()))
            .map(|&g| {
                roots.push(ids[g]);
                roots.len() - 1
            });
        grad_roots.push(g);
    }
    let program = |roots: &[Id]| {
        extractor
            .program(roots)
            .map_err(|e| internal(net, "penalty extraction", &e))
    };
    Ok(Some(PenaltyPrograms {
        value: program(&roots[..1])?,
        backward: program(&roots)?,
        grad_roots,
    }))
}

fn internal(net: &Net, what: &str, detail: &str) -> syn::Error {
    let span = net.layers.first().map_or(Span::call_site(), |l| l.span);
    syn::Error::new(
        span,
        format!("internal error in symnet's compiler ({what}): {detail}; please report this declaration"),
    )
}

fn check_conflicts(net: &Net, eg: &Graph, what: &str) -> syn::Result<()> {
    match eg.analysis.conflicts.first() {
        Some(c) => Err(internal(net, what, c)),
        None => Ok(()),
    }
}

/// Runs the pipeline: lower, saturate, extract, differentiate, saturate, extract.
pub fn compile(net: &Net) -> syn::Result<Compiled> {
    let lowered = lower(net)?;
    let analysis = TensorAnalysis {
        symbols: lowered.symbols.clone(),
        conflicts: Vec::new(),
        target_sums_to_one: net.loss.is("cross_entropy"),
    };

    // 1. The forward pass and loss.
    let mut eg = Graph::new(analysis.clone());
    let ids = add_all(&mut eg, &lowered.expr);
    check_conflicts(net, &eg, "lowering")?;
    collapse_chains(
        &mut eg,
        lowered.expr.as_ref(),
        &ids,
        &[lowered.output, lowered.latent, lowered.loss],
    );
    check_conflicts(net, &eg, "collapsing linear layers")?;
    let (eg, forward_report) = saturate(eg);
    check_conflicts(net, &eg, "forward saturation")?;
    // What the ranges, after every rewrite, prove about the user's `ln`, `sqrt` and divisions.
    let mut domain_notes = Vec::new();
    for d in &lowered.domain {
        let range = eg[ids[usize::from(d.arg)]].data.range;
        let (ok, what) = match d.need {
            Need::Positive => (range.nonzero() && range >= Range::NonNegative, "positive"),
            Need::NonNegative => (range >= Range::NonNegative, "non-negative"),
            Need::NonZero => (range.nonzero(), "nonzero"),
        };
        if !ok {
            let subject = match d.op {
                "/" => "the denominator of this division".to_string(),
                op => format!("the argument of `{op}`"),
            };
            domain_notes.push((
                d.span,
                format!(
                    "symnet cannot prove {subject} {what} for every input: where it is not, the network computes NaN or infinity. Add `#[symnet(allow_domain)]` to the declaration to silence this note"
                ),
            ));
        }
    }
    // In the order OUTPUT, LATENT, LOSS.
    let roots: Vec<Id> = [lowered.output, lowered.latent, lowered.loss]
        .iter()
        .map(|r| ids[usize::from(*r)])
        .collect();
    // The forward pass twice: as the batch functions price it (parameter-only work spread
    // over a batch, so a stack of linear layers collapses) and as the one-sample functions do
    // (every call pays for everything). Where the two differ, both are differentiated and
    // their values and gradients unioned in one e-graph, so that each function's extraction
    // below finds its own form without the saturation having to rediscover it; where they
    // are the same program (no collapse to trade), once.
    let fwd =
        extract(&eg, &roots, Amortization::BATCH).map_err(|e| internal(net, "extraction", &e))?;
    let fwd_call = extract(&eg, &roots, Amortization::PER_CALL)
        .map_err(|e| internal(net, "extraction", &e))?;
    let fwd_call = (fwd_call.nodes != fwd.nodes || fwd_call.roots != fwd.roots).then_some(fwd_call);

    // 2. Gradients, built on the extracted forward passes.
    let differentiated = |p: &Program| {
        differentiate(p, LOSS, &lowered.symbols).map_err(|e| internal(net, "differentiation", &e))
    };
    let diff = differentiated(&fwd)?;
    let diff_call = fwd_call.as_ref().map(differentiated).transpose()?;

    // 3. Forward and gradients saturated together.
    let mut eg = Graph::new(analysis);
    let ids = add_all(&mut eg, &diff.expr);
    let mut forms = vec![(&diff.expr, ids.clone(), &fwd)];
    if let (Some(fc), Some(dc)) = (&fwd_call, &diff_call) {
        let ids_call = add_all(&mut eg, &dc.expr);
        for r in [OUTPUT, LATENT, LOSS] {
            eg.union(ids[fwd.roots[r]], ids_call[fc.roots[r]]);
        }
        for (s, &g) in &diff.grads {
            if let Some(&gc) = dc.grads.get(s) {
                eg.union(ids[g], ids_call[gc]);
            }
        }
        forms.push((&dc.expr, ids_call, fc));
    }
    // The extractions above keep a chain stacked where an intermediate value is a root (the
    // latent representation); the collapsed forms are added again for the batch functions.
    // The forward programs are the first nodes of the differentiated expressions.
    // (`collapse_chains` rebuilds the e-graph, after the unions above too.)
    for (expr, ids, p) in &forms {
        let n = p.nodes.len();
        let roots: Vec<Id> = p.roots.iter().map(|r| Id::from(*r)).collect();
        collapse_chains(&mut eg, &expr.as_ref()[..n], &ids[..n], &roots);
    }
    check_conflicts(net, &eg, "gradient lowering")?;
    let (eg, backward_report) = saturate(eg);
    check_conflicts(net, &eg, "gradient saturation")?;
    let id = |i: usize| ids[i];

    // One extractor per amortization: its greedy choices do not depend on the roots (each
    // program's refinement does).
    let per_call = DagExtractor::new(&eg, Amortization::PER_CALL);
    let batch = DagExtractor::new(&eg, Amortization::BATCH);
    let prepared = DagExtractor::new(&eg, Amortization::PREPARED);
    let program = |extractor: &DagExtractor, roots: &[Id]| {
        extractor
            .program(roots)
            .map_err(|e| internal(net, "extraction", &e))
    };
    let output = id(fwd.roots[OUTPUT]);
    let forward = program(&per_call, &[output])?;
    let latent = program(&per_call, &[id(fwd.roots[LATENT])])?;
    let loss = program(&per_call, &[id(fwd.roots[LOSS])])?;
    let mut broots = vec![id(fwd.roots[LOSS])];
    let mut grad_roots = Vec::new();
    for layer in &net.layers {
        let name = layer.name.to_string();
        let mut slot = |s: Symbol| {
            diff.grads.get(&s).map(|&g| {
                broots.push(id(g));
                broots.len() - 1
            })
        };
        let w = slot(weight_symbol(&name));
        let b = slot(bias_symbol(&name));
        grad_roots.push((w, b));
    }
    let backward = program(&per_call, &broots)?;
    // A fused loss (cross-entropy on its sigmoid or softmax output) must have lost every
    // logarithm and division to the rules, unless an activation brings its own.
    let fused = net.loss.entry.is_some_and(|e| e.output != Output::Any);
    for (what, p) in [
        ("forward", &forward),
        ("latent", &latent),
        ("loss", &loss),
        ("backward", &backward),
    ] {
        if fused
            && !lowered.activations_divide
            && p.nodes
                .iter()
                .any(|n| matches!(n, Tensor::Ln(_) | Tensor::Div(_)))
        {
            return Err(internal(
                net,
                "stability",
                &format!("the {what} program still takes a logarithm or divides"),
            ));
        }
    }
    // The explanation's "as declared" figures, from the lowering before any rewriting.
    let before = crate::explain::before_figures(net, &lowered)
        .map_err(|e| internal(net, "differentiation", &e))?;
    let mut prepared_split = split(&program(&prepared, &[output])?);
    crate::hoist::store_input_major(&mut prepared_split);
    Ok(Compiled {
        before,
        prepared_split,
        forward_split: split(&program(&batch, &[output])?),
        loss_split: split(&program(&batch, &[broots[0]])?),
        backward_split: split(&program(&batch, &broots)?),
        forward,
        latent,
        loss,
        backward,
        grad_roots,
        forward_report,
        backward_report,
        penalty: compile_penalty(net, &lowered.symbols)?,
        domain_notes,
    })
}
