//! Extraction that counts shared work once.
//!
//! egg's `Extractor` picks, per e-class, the node of least *tree* cost, which charges a
//! subterm once per use: `logsumexp(z) - sum(y z)` looks twice as expensive as it is because
//! it reads the logits `z` twice. Here the cost of a choice is the sum of the costs of the
//! *set* of e-classes it needs (the greedy DAG extraction of extraction-gym), so a term used by
//! several parents, or by several roots, is paid for once.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use egg::{Id, Language};

use super::cost::own_cost;
use super::{Graph, Program};
use crate::ir::Tensor;

/// The most passes over the e-graph when looking for a fixed point. Each pass propagates
/// choices at least one level up (often more, as updates are visible within a pass);
/// declarations the checker admits need far fewer.
pub const EXTRACT_PASSES: usize = 200;

type CostSet = Rc<BTreeMap<Id, usize>>;

struct Choice {
    total: usize,
    set: CostSet,
    node: Tensor,
}

/// Greedy DAG extraction over an e-graph.
pub struct DagExtractor<'a> {
    egraph: &'a Graph,
    best: HashMap<Id, Choice>,
}

impl<'a> DagExtractor<'a> {
    /// Computes a choice for every e-class.
    pub fn new(egraph: &'a Graph) -> Self {
        let mut classes: Vec<Id> = egraph.classes().map(|c| c.id).collect();
        classes.sort();
        let mut best: HashMap<Id, Choice> = HashMap::new();
        for _ in 0..EXTRACT_PASSES {
            let mut changed = false;
            for &class in &classes {
                for node in egraph[class].iter() {
                    let kids: Vec<Id> = node.children().iter().map(|c| egraph.find(*c)).collect();
                    if !kids.iter().all(|k| best.contains_key(k)) {
                        continue;
                    }
                    if kids
                        .iter()
                        .any(|k| *k == class || best[k].set.contains_key(&class))
                    {
                        continue; // a cycle through this class
                    }
                    let own = own_cost(egraph, class, node);
                    // The union of the operands' sets, largest first so the copy is small.
                    let mut sets: Vec<&CostSet> = kids.iter().map(|k| &best[k].set).collect();
                    sets.sort_by_key(|s| std::cmp::Reverse(s.len()));
                    let mut set: BTreeMap<Id, usize> = match sets.first() {
                        Some(s) => (***s).clone(),
                        None => BTreeMap::new(),
                    };
                    for s in sets.iter().skip(1) {
                        for (k, v) in s.iter() {
                            set.insert(*k, *v);
                        }
                    }
                    set.insert(class, own);
                    let total = set.values().fold(0usize, |a, b| a.saturating_add(*b));
                    let better = match best.get(&class) {
                        Some(c) => total < c.total,
                        None => true,
                    };
                    if better {
                        best.insert(
                            class,
                            Choice {
                                total,
                                set: Rc::new(set),
                                node: node.clone(),
                            },
                        );
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        DagExtractor { egraph, best }
    }

    /// The chosen node of `class`, if it has one.
    pub fn node(&self, class: Id) -> Option<&Tensor> {
        self.best.get(&self.egraph.find(class)).map(|c| &c.node)
    }

    /// A program computing all `roots`, each e-class once, in dependency order; an error if a
    /// root has no choice or the choices form a cycle (choices made with a stale cost set can;
    /// it has not been seen, and it is reported rather than looped on).
    pub fn program(&self, roots: &[Id]) -> Result<Program, String> {
        let eg = self.egraph;
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
                let node = self
                    .node(class)
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
