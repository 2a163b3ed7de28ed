//! The explanation attached to every generated network: what was declared, what the rewrites
//! made of it, and what it costs. It is the struct's rustdoc and its `EXPLANATION` constant.

use std::fmt::Write;

use egg::{Id, Language};

use crate::check::Net;
use crate::driver::Compiled;
use crate::grad::differentiate;
use crate::ir::{bias_symbol, weight_symbol, Lowered, TensorAnalysis};
use crate::simplify::{add_all, program_of, Graph, Program};

/// The explanation's "as declared" figures: the network as lowered, before any rewriting, and
/// the cost of differentiating it as it stands. Nothing but the explanation reads them.
#[derive(Clone, Debug)]
pub struct Before {
    /// The forward pass and loss as lowered, unsimplified. Roots: the output, the loss.
    pub lowered: Program,
    /// FLOPs of the backward pass derived from `lowered`, without any rewriting:
    /// `(sample, params)`.
    pub backward_flops: (usize, usize),
}

/// The [`Before`] figures of `lowered`. The error is a failed differentiation (an internal
/// error: the simplified program of the same network was differentiated already).
pub fn before_figures(net: &Net, lowered: &Lowered) -> Result<Before, String> {
    let analysis = || TensorAnalysis {
        symbols: lowered.symbols.clone(),
        ..Default::default()
    };
    // The lowered program, unsimplified.
    let mut eg = Graph::new(analysis());
    let ids = add_all(&mut eg, &lowered.expr);
    let program = program_of(&eg, &lowered.expr, &ids, &[lowered.output, lowered.loss]);
    // The backward pass as it would be without any rewriting.
    let raw = differentiate(&program, 1, &lowered.symbols)?;
    let mut eg = Graph::new(analysis());
    let ids = add_all(&mut eg, &raw.expr);
    // The loss and the parameters' gradients, in layer order (not those of x and y).
    let mut roots: Vec<Id> = vec![Id::from(program.roots[1])];
    for layer in &net.layers {
        let name = layer.name.to_string();
        for s in [weight_symbol(&name), bias_symbol(&name)] {
            if let Some(g) = raw.grads.get(&s) {
                roots.push(Id::from(*g));
            }
        }
    }
    let backward = program_of(&eg, &raw.expr, &ids, &roots);
    Ok(Before {
        lowered: program,
        backward_flops: backward.flops(),
    })
}

/// A run of consecutive identity layers that the compiler collapsed: `(first, last)` indices.
pub fn collapsed_runs(net: &Net, c: &Compiled) -> Vec<(usize, usize)> {
    if c.prepared_split.effective_params() >= net.params() {
        return Vec::new();
    }
    let mut runs = Vec::new();
    let mut start = None;
    for (k, l) in net.layers.iter().enumerate() {
        let linear = l.activation.is("identity");
        match (linear, start) {
            (true, None) => start = Some(k),
            (false, Some(s)) => {
                if k - s >= 2 {
                    runs.push((s, k - 1));
                }
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        if net.layers.len() - s >= 2 {
            runs.push((s, net.layers.len() - 1));
        }
    }
    runs
}

/// The program as numbered single assignments, as the emitter sees it.
fn listing(p: &Program, names: &[(usize, String)]) -> String {
    let mut out = String::new();
    let label = |i: usize| -> String {
        let n = &p.nodes[i];
        if n.is_leaf() {
            n.to_string()
        } else {
            format!("%{i}")
        }
    };
    for (i, n) in p.nodes.iter().enumerate() {
        if n.is_leaf() {
            continue;
        }
        let args: Vec<String> = n
            .children()
            .iter()
            .map(|c| label(usize::from(*c)))
            .collect();
        let _ = writeln!(out, "  %{i} = ({n} {})", args.join(" "));
    }
    for (r, name) in names {
        let _ = writeln!(out, "  {name} = {}", label(*r));
    }
    out
}

fn shorten(s: String, max: usize) -> String {
    if s.len() <= max {
        s
    } else {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{} ...", &s[..cut])
    }
}

/// The explanation text.
pub fn explanation(net: &Net, c: &Compiled) -> String {
    let mut o = String::new();
    let declared = net.params();
    let effective = c.prepared_split.effective_params();
    let _ = writeln!(o, "symnet: `{}`", net.ident);
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "parameters: {declared} declared, {effective} effective (read per sample by the prepared forward pass)"
    );
    for (s, e) in collapsed_runs(net, c) {
        let names: Vec<String> = net.layers[s..=e]
            .iter()
            .map(|l| format!("`{}`", l.name))
            .collect();
        let _ = writeln!(
            o,
            "collapse: layers {} are all linear and were proved equal to one affine map",
            names.join(", ")
        );
    }
    let _ = writeln!(o);

    let lowered = &c.before.lowered;
    let lowered_out = lowered.roots[0];
    let _ = writeln!(
        o,
        "forward, as declared:\n  yhat = {}",
        shorten(lowered.term(lowered_out), 800)
    );
    let _ = writeln!(
        o,
        "forward, simplified:\n  yhat = {}",
        shorten(c.forward.term(c.forward.roots[0]), 800)
    );
    let fs = &c.prepared_split;
    if fs.hoists_work() {
        let _ = writeln!(
            o,
            "forward, prepared (per sample):\n  yhat = {}",
            shorten(fs.sample.term(fs.sample.roots[0]), 800)
        );
        for f in &fs.frontier {
            if let Some(r) = f.root {
                let root = fs.hoisted.roots[r];
                let _ = writeln!(
                    o,
                    "  {} = {}  (once per prepare())",
                    f.symbol,
                    shorten(fs.hoisted.term(root), 800)
                );
            }
        }
    }
    let _ = writeln!(
        o,
        "loss, simplified:\n  L = {}",
        shorten(c.loss.term(c.loss.roots[0]), 800)
    );
    if let Some(p) = &c.penalty {
        let terms: Vec<String> = net
            .penalties
            .iter()
            .map(|p| format!("{}({})", if p.l1 { "l1" } else { "l2" }, p.lambda))
            .collect();
        let _ = writeln!(
            o,
            "weight penalties: + {} over every layer's weights (not the biases):\n  P = {}\n  P and its gradient depend on the parameters only: {} FLOPs, computed once per call of the batch functions (backward_batch, the trainers), not once per sample",
            terms.join(" + "),
            shorten(p.value.term(p.value.roots[0]), 400),
            p.backward.flops().0 + p.backward.flops().1
        );
    }
    let _ = writeln!(o);

    let _ = writeln!(
        o,
        "gradients (backward pass as emitted; seed scales the loss's adjoint):"
    );
    let mut names = vec![(c.backward.roots[0], "L".to_string())];
    for (l, (w, b)) in net.layers.iter().zip(&c.grad_roots) {
        if let Some(w) = w {
            names.push((c.backward.roots[*w], format!("d {}.w", l.name)));
        }
        if let Some(b) = b {
            names.push((c.backward.roots[*b], format!("d {}.b", l.name)));
        }
    }
    o.push_str(&listing(&c.backward, &names));
    let _ = writeln!(o);

    let (fb, _) = lowered.flops_of(&[lowered_out]);
    let (fa, fp) = c.forward.flops();
    let (pa, pp) = c.prepared_split.sample.flops();
    let (_, ph) = c.prepared_split.hoisted.flops();
    let (fba, _) = c.forward_split.sample.flops();
    let (_, fbh) = c.forward_split.hoisted.flops();
    let (bb, _) = c.before.backward_flops;
    let (ba, bp) = c.backward.flops();
    let (bba, _) = c.backward_split.sample.flops();
    let (_, bbh) = c.backward_split.hoisted.flops();
    let _ = writeln!(
        o,
        "FLOPs (estimated). Each function is extracted for how often it runs: the one-sample \
         functions pay parameter-only work on every call, the batch functions once per call, \
         prepare() once:"
    );
    let _ = writeln!(
        o,
        "  forward:  {fb} as declared, {} per call of forward, {fba} per sample in forward_batch (+ {fbh} once per call), {} per sample prepared (+ {ph} once per prepare())",
        fa + fp,
        pa + pp
    );
    let _ = writeln!(
        o,
        "  backward: {bb} as declared, {} per call of backward, {bba} per sample in backward_batch (+ {bbh} once per call)",
        ba + bp
    );
    let _ = writeln!(o);

    let fired = |r: &crate::simplify::Report| -> String {
        if r.fired.is_empty() {
            "none".into()
        } else {
            r.fired
                .iter()
                .map(|(n, k)| format!("{n} x{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(
        o,
        "rewrites fired, forward ({}, {} iterations, {} e-nodes): {}",
        c.forward_report.stop,
        c.forward_report.iterations,
        c.forward_report.nodes,
        fired(&c.forward_report)
    );
    let _ = writeln!(
        o,
        "rewrites fired, forward and gradients ({}, {} iterations, {} e-nodes): {}",
        c.backward_report.stop,
        c.backward_report.iterations,
        c.backward_report.nodes,
        fired(&c.backward_report)
    );
    o
}
