//! Cycle search: for each anomaly class, the strongly connected components
//! of the graph restricted to the class's edge kinds (petgraph's Tarjan),
//! then in each component one shortest cycle that meets the class's rules,
//! found by breadth-first search over (transaction, progress) states.
//!
//! Every cycle of a class must use an edge of its "start" kind (wr for
//! G1c, rw for G-single and G2-item, the process or real-time edge for the
//! variants), so the search tries such edges `a → b` one by one and looks
//! for the shortest path `b ⇝ a` that completes the rules. The first that
//! succeeds gives the component's cycle. Work is budgeted: when the budget
//! or the deadline runs out the search reports itself incomplete.

use super::graph::DepGraph;
use super::infer::Kind;
use petgraph::graph::NodeIndex;
use petgraph::visit::{EdgeFiltered, EdgeRef};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::time::Instant;

/// An anomaly class defined by a cycle's edges.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Class {
    /// The anomaly's name, e.g. `G-single-process`.
    pub name: &'static str,
    /// Kinds the cycle may use.
    allowed: u8,
    /// The kind every cycle of the class contains; the search starts there.
    start: Kind,
    /// The cycle must contain a wr edge.
    need_wr: bool,
    /// Least and most rw edges.
    min_rw: u8,
    max_rw: u8,
}

const WW: u8 = 1 << Kind::Ww as u8;
const WR: u8 = 1 << Kind::Wr as u8;
const RW: u8 = 1 << Kind::Rw as u8;
const PROCESS: u8 = 1 << Kind::Process as u8;
const REALTIME: u8 = 1 << Kind::Realtime as u8;

/// Every cycle class, base classes first (worst first), then the process
/// variants, then the real-time ones.
pub(crate) fn classes() -> Vec<Class> {
    // (name, allowed kinds, start kind, needs wr, min rw, max rw)
    let base = [
        // G0: write cycles.
        (
            ["G0", "G0-process", "G0-realtime"],
            WW,
            Kind::Ww,
            false,
            0,
            0,
        ),
        // G1c: ww and wr, at least one wr (else it is G0).
        (
            ["G1c", "G1c-process", "G1c-realtime"],
            WW | WR,
            Kind::Wr,
            true,
            0,
            0,
        ),
        // G-single: exactly one anti-dependency.
        (
            ["G-single", "G-single-process", "G-single-realtime"],
            WW | WR | RW,
            Kind::Rw,
            false,
            1,
            1,
        ),
        // G2-item: two or more anti-dependencies (one would be G-single).
        (
            ["G2-item", "G2-item-process", "G2-item-realtime"],
            WW | WR | RW,
            Kind::Rw,
            false,
            2,
            u8::MAX,
        ),
    ];
    let mut out = Vec::new();
    for (variant, extra, start) in [
        (0, 0, None),
        (1, PROCESS, Some(Kind::Process)),
        (2, REALTIME, Some(Kind::Realtime)),
    ] {
        for (names, allowed, s, need_wr, min_rw, max_rw) in base {
            out.push(Class {
                name: names[variant],
                allowed: allowed | extra,
                start: start.unwrap_or(s),
                need_wr,
                min_rw,
                max_rw,
            });
        }
    }
    out
}

/// A cycle: its edges in order, each `(from, to, kind)`, the last ending
/// where the first began.
pub(crate) type Cycle = Vec<(u32, u32, Kind)>;

/// The search's budget.
pub(crate) struct Budget {
    /// Stop at this instant.
    pub deadline: Option<Instant>,
    /// Stop after visiting this many edges in all.
    pub max_steps: u64,
    /// Edges visited so far.
    pub steps: u64,
}

impl Budget {
    fn spent(&mut self, n: u64) -> bool {
        self.steps += n;
        if self.steps > self.max_steps {
            return true;
        }
        // Checking the clock every visit would cost more than the search.
        self.steps & 0xfff < n && self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// What a class's search found.
pub(crate) struct Found {
    /// One cycle per component that has one (at most `max_cycles`).
    pub cycles: Vec<Cycle>,
    /// How many components had a cycle of the class.
    pub count: usize,
    /// False when the budget ran out before every component was searched.
    pub complete: bool,
}

/// Searches the class in the graph's nontrivial components.
pub(crate) fn search(
    graph: &DepGraph,
    class: &Class,
    budget: &mut Budget,
    max_cycles: usize,
) -> Found {
    let g = &graph.g;
    let allowed = class.allowed;
    let filtered = EdgeFiltered::from_fn(g, |e| e.weight() & allowed != 0);
    let sccs = petgraph::algo::tarjan_scc(&filtered);
    let mut comp = vec![u32::MAX; g.node_count()];
    let mut found = Found {
        cycles: Vec::new(),
        count: 0,
        complete: true,
    };
    let mut nontrivial: Vec<Vec<NodeIndex<u32>>> =
        sccs.into_iter().filter(|c| c.len() > 1).collect();
    // Smallest components first: their cycles are short and cheap.
    nontrivial.sort_by_key(|c| (c.len(), c.iter().map(|n| n.index()).min()));
    for (i, c) in nontrivial.iter().enumerate() {
        for n in c {
            comp[n.index()] = i as u32;
        }
    }
    'components: for (i, c) in nontrivial.iter().enumerate() {
        let mut members: Vec<NodeIndex<u32>> = c.clone();
        members.sort_unstable();
        for &a in &members {
            for e in g.edges(a) {
                let b = e.target();
                if comp[b.index()] != i as u32 || e.weight() & class.start.bit() == 0 {
                    continue;
                }
                match shortest(graph, class, &comp, i as u32, a, b, class.start, budget) {
                    Walk::Found(cycle) => {
                        found.count += 1;
                        if found.cycles.len() < max_cycles {
                            found.cycles.push(cycle);
                        }
                        continue 'components;
                    }
                    Walk::None => {}
                    Walk::OutOfBudget => {
                        found.complete = false;
                        return found;
                    }
                }
            }
        }
    }
    found
}

type Prev = FxHashMap<(u32, State), (u32, State, Kind)>;

/// True when `node` is on the path that ends at `at` (including the start
/// edge's source).
fn on_path(prev: &Prev, mut at: (u32, State), node: u32) -> bool {
    loop {
        if at.0 == node {
            return true;
        }
        match prev.get(&at) {
            Some(&(p, ps, _)) if ps == u8::MAX => return p == node,
            Some(&(p, ps, _)) => at = (p, ps),
            None => return false,
        }
    }
}

enum Walk {
    Found(Cycle),
    None,
    OutOfBudget,
}

/// Progress along a path: wr seen (bit 0), rw count saturating at 2
/// (bits 1-2).
type State = u8;

fn step(s: State, kind: Kind) -> (bool, u8) {
    let wr = s & 1 != 0 || kind == Kind::Wr;
    let rw = ((s >> 1) + u8::from(kind == Kind::Rw)).min(2);
    (wr, rw)
}

fn pack(wr: bool, rw: u8) -> State {
    u8::from(wr) | (rw << 1)
}

/// The shortest cycle of the class that starts with edge `a -kind-> b`.
#[allow(clippy::too_many_arguments)]
fn shortest(
    graph: &DepGraph,
    class: &Class,
    comp: &[u32],
    c: u32,
    a: NodeIndex<u32>,
    b: NodeIndex<u32>,
    kind: Kind,
    budget: &mut Budget,
) -> Walk {
    let g = &graph.g;
    let ok_rw = |rw: u8| rw <= class.max_rw;
    let (wr0, rw0) = step(0, kind);
    if !ok_rw(rw0) {
        return Walk::None;
    }
    let s0 = pack(wr0, rw0);
    let done = |s: State| {
        (!class.need_wr || s & 1 != 0) && (s >> 1) >= class.min_rw.min(2) && ok_rw(s >> 1)
    };
    // (node, state) -> (previous node, previous state, edge kind)
    let mut prev: Prev = FxHashMap::default();
    let mut queue: VecDeque<(NodeIndex<u32>, State)> = VecDeque::new();
    prev.insert((b.index() as u32, s0), (a.index() as u32, u8::MAX, kind));
    queue.push_back((b, s0));
    let mut goal = None;
    if b == a && done(s0) {
        goal = Some((a.index() as u32, s0));
    }
    'bfs: while let Some((n, s)) = queue.pop_front() {
        if goal.is_some() {
            break;
        }
        if budget.spent(1) {
            return Walk::OutOfBudget;
        }
        for e in g.edges(n) {
            let (m, mask) = (e.target(), *e.weight());
            if comp[m.index()] != c {
                continue;
            }
            for k in Kind::ALL {
                if mask & class.allowed & k.bit() == 0 {
                    continue;
                }
                let (wr, rw) = step(s, k);
                // More rw edges than allowed can never come back down.
                if rw > class.max_rw.min(2) {
                    continue;
                }
                let ns = pack(wr, rw);
                let key = (m.index() as u32, ns);
                if prev.contains_key(&key) {
                    continue;
                }
                if m == a {
                    if done(ns) {
                        prev.insert(key, (n.index() as u32, s, k));
                        goal = Some(key);
                        break 'bfs;
                    }
                    continue;
                }
                // Cycles are simple: a walk through a node twice would count
                // edges of two different cycles.
                if on_path(&prev, (n.index() as u32, s), m.index() as u32) {
                    continue;
                }
                prev.insert(key, (n.index() as u32, s, k));
                queue.push_back((m, ns));
            }
        }
    }
    let Some(mut at) = goal else {
        return Walk::None;
    };
    let mut cycle = Vec::new();
    loop {
        let Some(&(p, ps, k)) = prev.get(&at) else {
            return Walk::None;
        };
        cycle.push((p, at.0, k));
        if ps == u8::MAX {
            break;
        }
        at = (p, ps);
    }
    cycle.reverse();
    Walk::Found(cycle)
}
