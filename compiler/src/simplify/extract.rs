//! Extraction that counts shared work once.
//!
//! egg's `Extractor` picks, per e-class, the node of least *tree* cost, which charges a
//! subterm once per use: `logsumexp(z) - sum(y z)` looks twice as expensive as it is because
//! it reads the logits `z` twice. Here the cost of a choice is the sum of the costs of the
//! *set* of e-classes it needs (the greedy DAG extraction of extraction-gym), so a term used by
//! several parents, or by several roots, is paid for once.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use egg::{Id, Language};

use super::cost::{own_cost, Amortization};
use super::{Graph, Program};
use crate::ir::Tensor;

/// The most passes over the e-graph when looking for a fixed point. Each pass propagates
/// choices at least one level up (often more, as updates are visible within a pass);
/// declarations the checker admits need far fewer.
pub const EXTRACT_PASSES: usize = 200;

/// The most sweeps of [`DagExtractor::refine`] over one program.
pub const REFINE_SWEEPS: usize = 4;

/// Greedy DAG extraction over an e-graph.
pub struct DagExtractor<'a> {
    egraph: &'a Graph,
    best: HashMap<Id, Tensor>,
    amortization: Amortization,
}

/// A set of e-classes, by their position in the sorted class list.
type ClassSet = Rc<Vec<u64>>;

impl<'a> DagExtractor<'a> {
    /// Computes a choice for every e-class, parameter-only work charged as `amortization` says.
    ///
    /// A choice's cost is the sum, over the set of classes it needs, of the own cost of each
    /// class's current choice; sets are bit sets over the classes.
    pub fn new(egraph: &'a Graph, amortization: Amortization) -> Self {
        let mut classes: Vec<Id> = egraph.classes().map(|c| c.id).collect();
        classes.sort();
        let index: HashMap<Id, usize> = classes.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        let n = classes.len();
        let words = n.div_ceil(64);
        // Per class, per node: operands (positions) and own cost.
        let nodes: Vec<Vec<(Vec<usize>, usize)>> = classes
            .iter()
            .map(|&class| {
                egraph[class]
                    .iter()
                    .map(|node| {
                        let kids = node
                            .children()
                            .iter()
                            .map(|c| index[&egraph.find(*c)])
                            .collect();
                        (kids, own_cost(egraph, class, node, amortization))
                    })
                    .collect()
            })
            .collect();
        let mut choice: Vec<Option<usize>> = vec![None; n];
        let mut total: Vec<usize> = vec![usize::MAX; n];
        let mut own: Vec<usize> = vec![0; n];
        let mut sets: Vec<Option<ClassSet>> = vec![None; n];
        let has = |set: &[u64], i: usize| set[i / 64] >> (i % 64) & 1 == 1;
        for _ in 0..EXTRACT_PASSES {
            let mut changed = false;
            for ci in 0..n {
                for (ni, (kids, cost)) in nodes[ci].iter().enumerate() {
                    if kids.iter().any(|&k| sets[k].is_none()) {
                        continue;
                    }
                    if kids
                        .iter()
                        .any(|&k| k == ci || sets[k].as_deref().is_some_and(|s| has(s, ci)))
                    {
                        continue; // a cycle through this class
                    }
                    let mut set = vec![0u64; words];
                    for &k in kids {
                        for (w, x) in set.iter_mut().zip(sets[k].as_deref().into_iter().flatten()) {
                            *w |= x;
                        }
                    }
                    set[ci / 64] |= 1 << (ci % 64);
                    let mut sum = 0usize;
                    for (wi, &w) in set.iter().enumerate() {
                        let mut w = w;
                        while w != 0 {
                            let i = wi * 64 + w.trailing_zeros() as usize;
                            sum = sum.saturating_add(if i == ci { *cost } else { own[i] });
                            w &= w - 1;
                        }
                    }
                    if sum < total[ci] {
                        total[ci] = sum;
                        own[ci] = *cost;
                        choice[ci] = Some(ni);
                        sets[ci] = Some(Rc::new(set));
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let best = classes
            .iter()
            .zip(&choice)
            .filter_map(|(&class, c)| c.map(|ni| (class, egraph[class].nodes[ni].clone())))
            .collect();
        DagExtractor {
            egraph,
            best,
            amortization,
        }
    }

    /// The greedy choice of `class`, if it has one.
    fn node(&self, class: Id) -> Option<&Tensor> {
        self.best.get(&self.egraph.find(class))
    }

    /// The choice of `class` with `over` overriding the greedy one.
    fn chosen<'b>(&'b self, over: &'b HashMap<Id, Tensor>, class: Id) -> Option<&'b Tensor> {
        over.get(&class).or_else(|| self.node(class))
    }

    /// Improves the greedy choices for one set of roots. The greedy pass prices each e-class
    /// on its own, so it cannot see that an operand is computed anyway for another root (for
    /// `W1^T (W2^T d)` it may pick `(W2 W1)^T d` although the program needs `W2^T d` for a
    /// weight gradient). Here each class of the program that has a choice is re-priced by
    /// what it adds to the rest of the program, and takes the node that adds least; a few
    /// sweeps, until nothing changes. Returns the overriding choices.
    fn refine(&self, roots: &[Id]) -> HashMap<Id, Tensor> {
        let eg = self.egraph;
        let roots: Vec<Id> = roots.iter().map(|r| eg.find(*r)).collect();
        let mut over: HashMap<Id, Tensor> = HashMap::new();
        let mut dag = Dag::new(self, &over, &roots);
        for _ in 0..REFINE_SWEEPS {
            let mut changed = false;
            let mut order: Vec<Id> = dag.index.keys().copied().collect();
            order.sort();
            for c in order {
                let Some(&ci) = dag.index.get(&c) else {
                    continue; // no longer needed after an earlier change
                };
                if eg[c].nodes.len() < 2 {
                    continue;
                }
                let exclusive = dag.exclusive(ci);
                let ancestors = dag.ancestors(ci);
                let choice = |k: Id| self.chosen(&over, k);
                let added = |node: &Tensor| -> Option<usize> {
                    let mut cost = own_cost(eg, c, node, self.amortization);
                    let mut seen = HashSet::new();
                    let mut stack: Vec<Id> = node.children().iter().map(|k| eg.find(*k)).collect();
                    while let Some(k) = stack.pop() {
                        let ki = dag.index.get(&k).copied();
                        if k == c || ki.is_some_and(|i| ancestors.contains(&i)) {
                            return None; // a cycle
                        }
                        if ki.is_some_and(|i| !exclusive.contains(&i)) || !seen.insert(k) {
                            continue; // needed anyway, or counted
                        }
                        let n = choice(k)?;
                        cost = cost.saturating_add(own_cost(eg, k, n, self.amortization));
                        stack.extend(n.children().iter().map(|j| eg.find(*j)));
                    }
                    Some(cost)
                };
                let Some(current) = choice(c) else { continue };
                let Some(now) = added(current) else { continue };
                let better = eg[c]
                    .iter()
                    .filter_map(|n| added(n).map(|cost| (cost, n)))
                    .filter(|(cost, _)| *cost < now)
                    .min_by_key(|(cost, _)| *cost)
                    .map(|(_, n)| n.clone());
                if let Some(n) = better {
                    over.insert(c, n);
                    changed = true;
                    dag = Dag::new(self, &over, &roots);
                }
            }
            if !changed {
                break;
            }
        }
        over
    }

    /// A program computing all `roots`, each e-class once, in dependency order; an error if a
    /// root has no choice or the choices form a cycle (choices made with a stale cost set can;
    /// it has not been seen, and it is reported rather than looped on).
    pub fn program(&self, roots: &[Id]) -> Result<Program, String> {
        // The refinement follows greedy choices outside the program, which stale cost sets can
        // make cyclic; if its choices close a cycle, the greedy program stands.
        let over = self.refine(roots);
        self.program_with(roots, &over)
            .or_else(|_| self.program_with(roots, &HashMap::new()))
    }

    /// [`program`](Self::program) with `over` overriding the greedy choices.
    fn program_with(&self, roots: &[Id], over: &HashMap<Id, Tensor>) -> Result<Program, String> {
        let eg = self.egraph;
        let chosen = |c: Id| self.chosen(over, c);
        let mut index: HashMap<Id, usize> = HashMap::new();
        let mut prog = Program {
            nodes: Vec::new(),
            shapes: Vec::new(),
            deps: Vec::new(),
            roots: Vec::new(),
        };
        let mut on_path: std::collections::HashSet<Id> = std::collections::HashSet::new();
        for &root in roots {
            let mut stack: Vec<(Id, bool)> = vec![(eg.find(root), false)];
            while let Some((class, expanded)) = stack.pop() {
                if index.contains_key(&class) {
                    continue;
                }
                let node = chosen(class)
                    .ok_or_else(|| format!("e-class {class} has no extracted term"))?;
                if !expanded {
                    if !on_path.insert(class) {
                        return Err(format!(
                            "the extracted choices form a cycle through e-class {class}"
                        ));
                    }
                    stack.push((class, true));
                    for c in node.children().iter().rev() {
                        let c = eg.find(*c);
                        if !index.contains_key(&c) {
                            stack.push((c, false));
                        }
                    }
                } else {
                    on_path.remove(&class);
                    let n = node.clone().map_children(|c| Id::from(index[&eg.find(c)]));
                    index.insert(class, prog.nodes.len());
                    prog.nodes.push(n);
                    let data = &eg[class].data;
                    prog.shapes
                        .push(data.shape.expect("every extracted class has a shape"));
                    prog.deps.push(data.dep);
                }
            }
            prog.roots.push(index[&eg.find(root)]);
        }
        Ok(prog)
    }
}

/// The e-classes one program computes under given choices, with its edges both ways.
struct Dag {
    /// Class to position.
    index: HashMap<Id, usize>,
    /// Operands of each class's chosen node (positions).
    children: Vec<Vec<usize>>,
    /// Readers of each class (positions), once per operand slot.
    parents: Vec<Vec<usize>>,
    /// Whether a class is a root.
    root: Vec<bool>,
}

impl Dag {
    fn new(x: &DagExtractor, over: &HashMap<Id, Tensor>, roots: &[Id]) -> Dag {
        let eg = x.egraph;
        let mut dag = Dag {
            index: HashMap::new(),
            children: Vec::new(),
            parents: Vec::new(),
            root: Vec::new(),
        };
        let mut kids: Vec<Vec<Id>> = Vec::new();
        let mut stack: Vec<Id> = roots.to_vec();
        while let Some(c) = stack.pop() {
            if dag.index.contains_key(&c) {
                continue;
            }
            dag.index.insert(c, kids.len());
            let node = x.chosen(over, c);
            let k: Vec<Id> = node
                .map(|n| n.children().iter().map(|k| eg.find(*k)).collect())
                .unwrap_or_default();
            stack.extend(k.iter().copied());
            kids.push(k);
        }
        let n = kids.len();
        dag.parents = vec![Vec::new(); n];
        dag.root = vec![false; n];
        for r in roots {
            dag.root[dag.index[r]] = true;
        }
        for (i, k) in kids.iter().enumerate() {
            let ch: Vec<usize> = k.iter().map(|c| dag.index[c]).collect();
            for &c in &ch {
                dag.parents[c].push(i);
            }
            dag.children.push(ch);
        }
        dag
    }

    /// The classes that only `i`'s operands need: no longer computed if `i` read nothing.
    fn exclusive(&self, i: usize) -> HashSet<usize> {
        let mut dropped: HashMap<usize, usize> = HashMap::new();
        let mut out = HashSet::new();
        let mut stack: Vec<usize> = self.children[i].clone();
        while let Some(k) = stack.pop() {
            let d = dropped.entry(k).or_insert(0);
            *d += 1;
            if *d == self.parents[k].len() && !self.root[k] && out.insert(k) {
                stack.extend(self.children[k].iter().copied());
            }
        }
        out
    }

    /// The classes that read `i`, directly or not.
    fn ancestors(&self, i: usize) -> HashSet<usize> {
        let mut out = HashSet::new();
        let mut stack = vec![i];
        while let Some(k) = stack.pop() {
            for &p in &self.parents[k] {
                if out.insert(p) {
                    stack.push(p);
                }
            }
        }
        out
    }
}
