//! Equality saturation: the driver (limits, runner), the rules and the cost model, and the
//! extraction of one shared DAG for several roots.

mod chains;
pub mod cost;
mod extract;
pub mod rules;

use std::time::Duration;

use egg::{EGraph, Id, Language, RecExpr, Runner, StopReason};

use crate::ir::{Dep, Shape, Tensor, TensorAnalysis};
pub use chains::collapse_chains;
pub use extract::DagExtractor;

/// The most e-nodes a saturation run may grow to. Default: 20,000. The largest declarations the
/// checker admits stay far below it (a network's graph grows with its depth, not its widths).
pub const NODE_LIMIT: usize = 20_000;

/// The most iterations a saturation run may take. Default: 24.
pub const ITER_LIMIT: usize = 24;

/// A wall-clock limit on one saturation run. Default: 10 s. It only exists as a guard: the node
/// and iteration limits are reached first on every network the checker admits, and they are
/// what keeps the output deterministic (a time limit would depend on the machine).
pub const TIME_LIMIT: Duration = Duration::from_secs(10);

/// The e-graph type of the compiler.
pub type Graph = EGraph<Tensor, TensorAnalysis>;

/// What one saturation run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Iterations run.
    pub iterations: usize,
    /// E-nodes at the end.
    pub nodes: usize,
    /// Why it stopped (`Saturated` is the best case).
    pub stop: String,
    /// Each rule that fired, with how many times, in first-fired order.
    pub fired: Vec<(String, usize)>,
}

/// Runs the compiler's rules on `egraph` to saturation or to a limit.
pub fn saturate(egraph: Graph) -> (Graph, Report) {
    let runner = Runner::default()
        .with_egraph(egraph)
        .with_node_limit(NODE_LIMIT)
        .with_iter_limit(ITER_LIMIT)
        .with_time_limit(TIME_LIMIT)
        .run(&rules::all());
    let mut fired: Vec<(String, usize)> = Vec::new();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            let name = name.to_string();
            match fired.iter_mut().find(|(f, _)| *f == name) {
                Some(e) => e.1 += n,
                None => fired.push((name, *n)),
            }
        }
    }
    let stop = match &runner.stop_reason {
        Some(StopReason::Saturated) => "saturated".to_string(),
        Some(StopReason::IterationLimit(n)) => format!("iteration limit ({n})"),
        Some(StopReason::NodeLimit(n)) => format!("node limit ({n})"),
        Some(StopReason::TimeLimit(t)) => format!("time limit ({t:.1} s)"),
        Some(StopReason::Other(s)) => s.clone(),
        None => "not run".to_string(),
    };
    let report = Report {
        iterations: runner.iterations.len(),
        nodes: runner.egraph.total_number_of_nodes(),
        stop,
        fired,
    };
    (runner.egraph, report)
}

/// Adds every node of `expr` to `egraph`, returning the e-class of each node, index by index.
pub fn add_all(egraph: &mut Graph, expr: &RecExpr<Tensor>) -> Vec<Id> {
    let mut ids: Vec<Id> = Vec::with_capacity(expr.as_ref().len());
    for node in expr.as_ref() {
        let n = node.clone().map_children(|c| ids[usize::from(c)]);
        ids.push(egraph.add(n));
    }
    ids
}

/// A straight-line program: nodes in dependency order (children before parents, each child an
/// index into `nodes`), each with its shape. Built by [`extract`]; every e-class appears once,
/// so a value used by several roots (a forward activation reused by the backward pass) is
/// computed once.
#[derive(Clone, Debug)]
pub struct Program {
    /// The nodes; a child `Id` is the index of another node.
    pub nodes: Vec<Tensor>,
    /// The shape of each node.
    pub shapes: Vec<Shape>,
    /// What each node depends on.
    pub deps: Vec<Dep>,
    /// The node of each requested root.
    pub roots: Vec<usize>,
}

impl Program {
    /// The s-expression of node `i`, shared nodes written out in full.
    pub fn term(&self, i: usize) -> String {
        fn go(p: &Program, i: usize, out: &mut String) {
            let node = &p.nodes[i];
            if node.is_leaf() {
                out.push_str(&node.to_string());
                return;
            }
            out.push('(');
            out.push_str(&node.to_string());
            for c in node.children() {
                out.push(' ');
                go(p, usize::from(*c), out);
            }
            out.push(')');
        }
        let mut s = String::new();
        go(self, i, &mut s);
        s
    }

    /// FLOPs of node `i` alone.
    pub fn node_flops(&self, i: usize) -> usize {
        cost::node_flops(&self.nodes[i], self.shapes[i], |c| {
            Some(self.shapes[usize::from(c)])
        })
    }

    /// FLOPs of the whole program, each node once: `(per sample, parameter-only)`.
    pub fn flops(&self) -> (usize, usize) {
        self.flops_of(&self.roots)
    }

    /// FLOPs of what `roots` need, each node once: `(per sample, parameter-only)`.
    pub fn flops_of(&self, roots: &[usize]) -> (usize, usize) {
        let mut needed = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(i) = stack.pop() {
            if !needed[i] {
                needed[i] = true;
                stack.extend(self.nodes[i].children().iter().map(|c| usize::from(*c)));
            }
        }
        let mut sample = 0;
        let mut params = 0;
        for i in (0..self.nodes.len()).filter(|&i| needed[i]) {
            if self.deps[i] <= Dep::Param {
                params += self.node_flops(i);
            } else {
                sample += self.node_flops(i);
            }
        }
        (sample, params)
    }
}

/// The program of `expr` exactly as written (no choice made): for "before simplification"
/// figures. `ids` are the e-classes of `expr`'s nodes in `egraph` (from [`add_all`]).
pub fn program_of(egraph: &Graph, expr: &RecExpr<Tensor>, ids: &[Id], roots: &[Id]) -> Program {
    let nodes: Vec<Tensor> = expr.as_ref().to_vec();
    let shapes = ids
        .iter()
        .map(|id| egraph[*id].data.shape.unwrap_or(Shape::Scalar))
        .collect();
    let deps = ids.iter().map(|id| egraph[*id].data.dep).collect();
    Program {
        nodes,
        shapes,
        deps,
        roots: roots.iter().map(|r| usize::from(*r)).collect(),
    }
}

/// Extracts the cheapest program computing all `roots` together, each e-class at most once
/// (see [`DagExtractor`]), parameter-only work charged as `amortization` says.
pub fn extract(
    egraph: &Graph,
    roots: &[Id],
    amortization: cost::Amortization,
) -> Result<Program, String> {
    DagExtractor::new(egraph, amortization).program(roots)
}
