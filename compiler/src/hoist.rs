//! Hoisting: the parameter-only part of a program (such as `W' = W3 W2 W1` and
//! `b' = W3 W2 b1 + W3 b2 + b3` of a collapsed linear stack) is split off, to be computed once
//! per parameter set (`prepare()`) or once per batch, and the per-sample part reads it.

use std::collections::HashMap;

use egg::{Id, Language, Symbol};

use crate::ir::{Dep, Shape, Tensor};
use crate::simplify::Program;

/// A program split into its parameter-only and per-sample parts.
#[derive(Clone, Debug)]
pub struct Split {
    /// Computes the hoisted values: one root per entry of `frontier` that is not a plain symbol.
    pub hoisted: Program,
    /// The per-sample work; each frontier value appears as the symbol `__h<k>`.
    pub sample: Program,
    /// The values the per-sample part reads from the parameter-only part, in order: the symbol
    /// `__h<k>` stands for entry `k`, which is either a parameter tensor itself or a root of
    /// `hoisted`.
    pub frontier: Vec<Frontier>,
}

/// One value crossing from the parameter-only part to the per-sample part.
#[derive(Clone, Debug)]
pub struct Frontier {
    /// Its symbol in the per-sample program.
    pub symbol: Symbol,
    /// Its shape.
    pub shape: Shape,
    /// The parameter tensor it is, if it is one (`hidden.w`), else computed by `hoisted`.
    pub param: Option<Symbol>,
    /// Its index among `hoisted.roots`, if computed.
    pub root: Option<usize>,
    /// Whether it is stored transposed (input-major, see [`store_input_major`]): a matrix
    /// `[[T; C]; R]` kept as `[[T; R]; C]`.
    pub input_major: bool,
}

impl Frontier {
    /// The shape it is stored in: [`Frontier::shape`], transposed if input-major.
    pub fn stored_shape(&self) -> Shape {
        match (self.input_major, self.shape) {
            (true, Shape::Matrix(r, c)) => Shape::Matrix(c, r),
            (_, s) => s,
        }
    }
}

impl Split {
    /// Whether anything is computed once instead of per sample.
    pub fn hoists_work(&self) -> bool {
        !self.hoisted.roots.is_empty()
    }

    /// The number of scalars the per-sample part reads from parameters: the *effective*
    /// parameter count of what the program computes per sample.
    pub fn effective_params(&self) -> usize {
        self.frontier.iter().map(|f| f.shape.len()).sum()
    }
}

/// Views that cost nothing to read: constants, symbols, transposes of views.
fn is_view(prog: &Program, i: usize) -> bool {
    match &prog.nodes[i] {
        Tensor::Num(_) | Tensor::Symbol(_) => true,
        Tensor::Transpose(a) => is_view(prog, usize::from(*a)),
        _ => false,
    }
}

/// Splits `prog` at the boundary between parameter-only and per-sample work.
pub fn split(prog: &Program) -> Split {
    let n = prog.nodes.len();
    let param_only = |i: usize| prog.deps[i] <= Dep::Param;
    // A parameter-only value read by per-sample work (or a parameter-only root).
    let mut on_frontier = vec![false; n];
    for i in 0..n {
        if param_only(i) {
            continue;
        }
        for c in prog.nodes[i].children() {
            mark(prog, usize::from(*c), &mut on_frontier);
        }
    }
    for &r in &prog.roots {
        if param_only(r) {
            mark(prog, r, &mut on_frontier);
        }
    }

    // The parameter-only program: every frontier value that is computed.
    let mut hoisted = Program {
        nodes: Vec::new(),
        shapes: Vec::new(),
        deps: Vec::new(),
        roots: Vec::new(),
    };
    let mut frontier = Vec::new();
    let mut symbol_of: HashMap<usize, Symbol> = HashMap::new();
    let mut copied: HashMap<usize, usize> = HashMap::new();
    for i in (0..n).filter(|&i| on_frontier[i]) {
        let symbol = Symbol::from(format!("__h{}", frontier.len()));
        symbol_of.insert(i, symbol);
        let param = match &prog.nodes[i] {
            Tensor::Symbol(s) => Some(*s),
            _ => None,
        };
        let root = if param.is_none() {
            let r = copy(prog, i, &mut hoisted, &mut copied);
            hoisted.roots.push(r);
            Some(hoisted.roots.len() - 1)
        } else {
            None
        };
        frontier.push(Frontier {
            symbol,
            shape: prog.shapes[i],
            param,
            root,
            input_major: false,
        });
    }

    // The per-sample program, reading frontier values as symbols.
    let mut sample = Program {
        nodes: Vec::new(),
        shapes: Vec::new(),
        deps: Vec::new(),
        roots: Vec::new(),
    };
    let mut map: HashMap<usize, usize> = HashMap::new();
    for &r in &prog.roots {
        let s = copy_sample(prog, r, &symbol_of, &mut sample, &mut map);
        sample.roots.push(s);
    }
    Split {
        hoisted,
        sample,
        frontier,
    }
}

/// Marks what per-sample work reads through node `c`: `c` itself if it is computed from
/// parameters only, or the parameter tensors behind a view (`W` of `W^T`).
fn mark(prog: &Program, c: usize, on_frontier: &mut [bool]) {
    if prog.deps[c] > Dep::Param {
        return;
    }
    match &prog.nodes[c] {
        Tensor::Num(_) => {}
        Tensor::Symbol(_) => on_frontier[c] = true,
        Tensor::Transpose(a) if is_view(prog, c) => mark(prog, usize::from(*a), on_frontier),
        _ => on_frontier[c] = true,
    }
}

/// Copies node `i` and what it needs into `out` (each node once).
fn copy(prog: &Program, i: usize, out: &mut Program, done: &mut HashMap<usize, usize>) -> usize {
    if let Some(&j) = done.get(&i) {
        return j;
    }
    let node = prog.nodes[i]
        .clone()
        .map_children(|c| Id::from(copy(prog, usize::from(c), out, done)));
    out.nodes.push(node);
    out.shapes.push(prog.shapes[i]);
    out.deps.push(prog.deps[i]);
    done.insert(i, out.nodes.len() - 1);
    out.nodes.len() - 1
}

/// Copies node `i` into the per-sample program, replacing frontier values by their symbols.
fn copy_sample(
    prog: &Program,
    i: usize,
    symbol_of: &HashMap<usize, Symbol>,
    out: &mut Program,
    done: &mut HashMap<usize, usize>,
) -> usize {
    if let Some(&j) = done.get(&i) {
        return j;
    }
    let node = match symbol_of.get(&i) {
        Some(s) => Tensor::Symbol(*s),
        None => prog.nodes[i]
            .clone()
            .map_children(|c| Id::from(copy_sample(prog, usize::from(c), symbol_of, out, done))),
    };
    out.nodes.push(node);
    out.shapes.push(prog.shapes[i]);
    out.deps.push(prog.deps[i]);
    done.insert(i, out.nodes.len() - 1);
    out.nodes.len() - 1
}

/// The fewest rows of a matrix stored input-major by [`store_input_major`]: a one-row matrix
/// (a single output) stays a dot product, which has something to vectorize. 2 and 4 measured
/// the same (`cargo bench --bench nets -- '^forward/'`: the 3-row output of 4-16-3 is the only
/// matrix between them).
pub const INPUT_MAJOR_ROWS: usize = 2;

/// Stores input-major (transposed) every frontier matrix of at least [`INPUT_MAJOR_ROWS`] rows
/// that the per-sample program reads only as the matrix of matrix-vector products: `W x`
/// becomes `(W^T)^T x`, which the emitter writes as a sum of the stored rows scaled by `x`,
/// one multiply-add over contiguous outputs per input and no horizontal sum per output
/// (what a hand-written forward pass does). The per-sample program reads the stored
/// value through a `transpose` node, so every use stays correct.
pub fn store_input_major(split: &mut Split) {
    let sample = &split.sample;
    let n = sample.nodes.len();
    // Symbol nodes read other than as a matrix-vector product's matrix.
    let mut other_use = vec![false; n];
    for node in &sample.nodes {
        for (k, c) in node.children().iter().enumerate() {
            if !(matches!(node, Tensor::MatVec(_)) && k == 0) {
                other_use[usize::from(*c)] = true;
            }
        }
    }
    for &r in &sample.roots {
        other_use[r] = true;
    }
    let mut chosen: HashMap<Symbol, usize> = HashMap::new();
    for (i, node) in sample.nodes.iter().enumerate() {
        if let (Tensor::Symbol(s), Shape::Matrix(rows, _)) = (node, sample.shapes[i]) {
            if !other_use[i] && rows >= INPUT_MAJOR_ROWS {
                if let Some(k) = split.frontier.iter().position(|f| f.symbol == *s) {
                    chosen.insert(*s, k);
                }
            }
        }
    }
    if chosen.is_empty() {
        return;
    }
    let mut out = Program {
        nodes: Vec::with_capacity(n + chosen.len()),
        shapes: Vec::with_capacity(n + chosen.len()),
        deps: Vec::with_capacity(n + chosen.len()),
        roots: Vec::new(),
    };
    let mut map = Vec::with_capacity(n);
    for (i, node) in sample.nodes.iter().enumerate() {
        let node = node.clone().map_children(|c| Id::from(map[usize::from(c)]));
        let stored = match &node {
            Tensor::Symbol(s) => chosen.get(s).copied(),
            _ => None,
        };
        out.nodes.push(node);
        out.deps.push(sample.deps[i]);
        match stored {
            Some(k) => {
                split.frontier[k].input_major = true;
                out.shapes.push(split.frontier[k].stored_shape());
                let t = out.nodes.len() - 1;
                out.nodes.push(Tensor::Transpose(Id::from(t)));
                out.shapes.push(sample.shapes[i]);
                out.deps.push(sample.deps[i]);
            }
            None => out.shapes.push(sample.shapes[i]),
        }
        map.push(out.nodes.len() - 1);
    }
    out.roots = sample.roots.iter().map(|&r| map[r]).collect();
    split.sample = out;
}
