//! Cycle search: for each anomaly class, the strongly connected components
//! of the graph restricted to the class's edge kinds (petgraph's Tarjan),
//! then in each component one shortest cycle that meets the class's rules,
//! found by breadth-first search over (transaction, progress) states.
//!
//! Every cycle of a class must use an edge of its "start" kind (wr for
//! G1c, rw for G-single, G-nonadjacent and G2-item, the process or
//! real-time edge for the variants), so the search tries such edges `a → b` one by one and looks
//! for the shortest path `b ⇝ a` that completes the rules. The first that
//! succeeds gives the component's cycle. Work is budgeted: when the budget
//! or the deadline runs out the search reports itself incomplete.

use super::graph::DepGraph;
use super::infer::Kind;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{EdgeFiltered, EdgeRef};
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
    /// No two rw edges may follow one another (G-nonadjacent), counting
    /// the last edge and the first as adjacent.
    nonadjacent: bool,
    /// G-nonadjacent: search closed walks (exact) rather than simple
    /// cycles only.
    walks: bool,
}

const WW: u8 = 1 << Kind::Ww as u8;
const WR: u8 = 1 << Kind::Wr as u8;
const RW: u8 = 1 << Kind::Rw as u8;
const PROCESS: u8 = 1 << Kind::Process as u8;
const REALTIME: u8 = 1 << Kind::Realtime as u8;

/// Class names by base (G0, G1c, G-single, G-nonadjacent, G2-item) and
/// variant (none, process, realtime).
const NAMES: [[&str; 3]; 5] = [
    ["G0", "G0-process", "G0-realtime"],
    ["G1c", "G1c-process", "G1c-realtime"],
    ["G-single", "G-single-process", "G-single-realtime"],
    [
        "G-nonadjacent",
        "G-nonadjacent-process",
        "G-nonadjacent-realtime",
    ],
    ["G2-item", "G2-item-process", "G2-item-realtime"],
];

/// Every cycle class, base classes first (worst first), then the process
/// variants, then the real-time ones.
pub(crate) fn classes() -> Vec<Class> {
    // (allowed kinds, start kind, needs wr, min rw, max rw, nonadjacent),
    // by base: G0: write cycles; G1c: ww and wr, at least one wr (else it
    // is G0); G-single: exactly one anti-dependency; G-nonadjacent: two or
    // more, no two in a row (Elle's definition; one would be G-single);
    // G2-item: two or more, adjacent or not.
    let base = [
        (WW, Kind::Ww, false, 0, 0, false),
        (WW | WR, Kind::Wr, true, 0, 0, false),
        (WW | WR | RW, Kind::Rw, false, 1, 1, false),
        (WW | WR | RW, Kind::Rw, false, 2, u8::MAX, true),
        (WW | WR | RW, Kind::Rw, false, 2, u8::MAX, false),
    ];
    let variants = [
        (0, None),
        (PROCESS, Some(Kind::Process)),
        (REALTIME, Some(Kind::Realtime)),
    ];
    let mut out = Vec::new();
    for (v, (extra, start)) in variants.into_iter().enumerate() {
        for (b, (allowed, s, need_wr, min_rw, max_rw, nonadjacent)) in base.into_iter().enumerate()
        {
            out.push(Class {
                name: NAMES[b][v],
                allowed: allowed | extra,
                start: start.unwrap_or(s),
                need_wr,
                min_rw,
                max_rw,
                nonadjacent,
                walks: nonadjacent,
            });
        }
    }
    out
}

/// A cycle: its edges in order, each `(from, to, kind)`, the last ending
/// where the first began.
pub(crate) type Cycle = Vec<(u32, u32, Kind)>;

/// The budget of one class's search.
pub(crate) struct Budget {
    /// Stop at this instant.
    pub deadline: Option<Instant>,
    /// Stop after expanding this many (transaction, progress) states.
    pub max_steps: u64,
    /// States expanded so far.
    pub steps: u64,
}

impl Budget {
    fn spent(&mut self) -> bool {
        self.steps += 1;
        if self.steps > self.max_steps {
            return true;
        }
        // Checking the clock every step would cost more than the search.
        self.steps & 0xfff == 0 && self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Start edges tried in one component before giving it up as
/// inconclusive: each failed try costs a search of the whole component.
pub(crate) const MAX_TRIES: usize = 64;

/// What a class's search found.
pub(crate) struct Found {
    /// One cycle per component that has one (at most `max_cycles`).
    pub cycles: Vec<Cycle>,
    /// How many components had a cycle of the class.
    pub count: usize,
    /// False when some component could not be searched to the end.
    pub complete: bool,
    /// Cycles of other classes met while searching this one (see
    /// `fallback`), with their class names.
    pub others: Vec<(&'static str, Cycle)>,
}

/// Progress along a path: wr seen (bit 0), rw count saturating at 2
/// (bits 1-2), and for G-nonadjacent whether the last edge was rw (bit 3).
type State = u8;

/// Per-search tables indexed by `node * states + state`, reused across
/// start edges; a generation stamp clears them in O(1).
struct Scratch {
    /// States per node: 6 (wr seen × rw count), or 12 when the class
    /// also tracks whether the last edge was rw.
    states: usize,
    stamp: Vec<u32>,
    /// Previous (node, state, kind); state `u8::MAX` marks the start edge.
    prev: Vec<(u32, State, u8)>,
    generation: u32,
}

impl Scratch {
    fn new(nodes: usize, class: &Class) -> Scratch {
        let states = if class.nonadjacent { 12 } else { 6 };
        Scratch {
            states,
            stamp: vec![0; nodes * states],
            prev: vec![(0, 0, 0); nodes * states],
            generation: 0,
        }
    }

    /// The table index of `(node, s)`: states are dense, `wr + 2 rw + 6 last`.
    fn idx(&self, node: u32, s: State) -> usize {
        let dense = (s & 1) + 2 * ((s >> 1) & 3) + 6 * (s >> 3);
        node as usize * self.states + dense as usize
    }

    /// The node of table index `i`.
    fn node_of(&self, i: usize) -> u32 {
        (i / self.states) as u32
    }

    fn seen(&self, i: usize) -> bool {
        self.stamp[i] == self.generation
    }

    fn set(&mut self, i: usize, p: (u32, State, u8)) {
        self.stamp[i] = self.generation;
        self.prev[i] = p;
    }

    /// True when `node` is on the path ending at state index `at`
    /// (including the start edge's source).
    fn on_path(&self, mut at: usize, node: u32) -> bool {
        loop {
            if self.node_of(at) == node {
                return true;
            }
            let (p, ps, _) = self.prev[at];
            if ps == u8::MAX {
                return p == node;
            }
            at = self.idx(p, ps);
        }
    }
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
    let comp = components(graph, allowed);
    let mut found = Found {
        cycles: Vec::new(),
        count: 0,
        complete: true,
        others: Vec::new(),
    };
    if comp.count == 0 {
        return found;
    }
    // A G-single path back from the rw edge uses no rw edge: rw edges
    // whose ends share a ww/wr component are sure to close a cycle, so
    // they are tried first.
    let path_allowed = if class.start == Kind::Rw && class.max_rw <= 1 {
        allowed & !RW
    } else {
        allowed
    };
    let inner = (path_allowed != allowed).then(|| components(graph, path_allowed));
    let mut scratch = Scratch::new(g.node_count(), class);
    // G-nonadjacent: components with no closed walk of nonadjacent rw
    // edges at all are skipped in linear time, whatever their size.
    let walks = class
        .nonadjacent
        .then(|| nonadjacent_components(graph, allowed, &comp));
    for c in 0..comp.count {
        if walks.as_ref().is_some_and(|w| !w[c]) {
            continue;
        }
        let mut starts: Vec<(NodeIndex<u32>, NodeIndex<u32>)> = Vec::new();
        for &a in &comp.members[c] {
            for e in g.edges(a) {
                if comp.of[e.target().index()] == c as u32 && e.weight() & class.start.bit() != 0 {
                    starts.push((a, e.target()));
                }
            }
        }
        if let Some(inner) = &inner {
            starts.sort_by_key(|(a, b)| {
                let (ca, cb) = (inner.of[a.index()], inner.of[b.index()]);
                (ca != cb || ca == u32::MAX, a.index(), b.index())
            });
        }
        let mut tries = 0;
        let mut hit = false;
        for &(a, b) in &starts {
            match shortest(graph, class, &comp.of, c as u32, a, b, budget, &mut scratch) {
                Walk::Found(mut cycle) => {
                    // A walk that passes a transaction twice is a sound
                    // witness, but a simple cycle through the same edge
                    // reads better: look for one.
                    if class.walks && !simple(&cycle) {
                        let strict = Class {
                            walks: false,
                            ..*class
                        };
                        match shortest(
                            graph,
                            &strict,
                            &comp.of,
                            c as u32,
                            a,
                            b,
                            budget,
                            &mut scratch,
                        ) {
                            Walk::Found(c2) => cycle = c2,
                            Walk::None => {}
                            Walk::OutOfBudget => {
                                found.complete = false;
                                return found;
                            }
                        }
                    }
                    found.count += 1;
                    if found.cycles.len() < max_cycles {
                        found.cycles.push(cycle);
                    }
                    hit = true;
                    break;
                }
                Walk::None => {
                    tries += 1;
                    if tries >= MAX_TRIES && tries < starts.len() {
                        found.complete = false;
                        hit = true;
                        break;
                    }
                }
                Walk::OutOfBudget => {
                    found.complete = false;
                    return found;
                }
            }
        }
        if !hit && lossy(class) {
            if let Some(&(a, b)) = starts.first() {
                match fallback(graph, class, &comp.of, c as u32, a, b, budget, &mut scratch) {
                    Some((name, cycle)) if name == class.name => {
                        found.count += 1;
                        if found.cycles.len() < max_cycles {
                            found.cycles.push(cycle);
                        }
                    }
                    Some((name, cycle)) => {
                        found.complete = false;
                        found.others.push((name, cycle));
                    }
                    None => found.complete = false,
                }
            }
        }
    }
    found
}

/// True when the class's search tracks progress along the path (wr seen,
/// rw count): it then keeps one path per (transaction, progress), and
/// requiring simple cycles can make it miss one.
fn lossy(class: &Class) -> bool {
    if class.nonadjacent {
        // It searches closed walks, which the states describe exactly.
        return false;
    }
    let rw_on_path = class.allowed & RW != 0 && !(class.start == Kind::Rw && class.max_rw <= 1);
    (class.need_wr && class.start != Kind::Wr)
        || (rw_on_path && (class.min_rw > 0 || class.max_rw < 2))
}

/// When a lossy search found nothing in a component, the component still
/// has a cycle through the start edge (it is strongly connected): find the
/// shortest one with no rules, and name its class. If that class is not
/// the one searched, the caller reports it and marks the search incomplete
/// rather than claiming the searched class absent.
#[allow(clippy::too_many_arguments)]
fn fallback(
    graph: &DepGraph,
    class: &Class,
    comp: &[u32],
    c: u32,
    a: NodeIndex<u32>,
    b: NodeIndex<u32>,
    budget: &mut Budget,
    scratch: &mut Scratch,
) -> Option<(&'static str, Cycle)> {
    let any = Class {
        need_wr: false,
        min_rw: 0,
        max_rw: u8::MAX,
        nonadjacent: false,
        walks: false,
        ..*class
    };
    let Walk::Found(cycle) = shortest(graph, &any, comp, c, a, b, budget, scratch) else {
        return None;
    };
    if fits(class, &cycle) {
        return Some((class.name, cycle));
    }
    let rw = cycle.iter().filter(|e| e.2 == Kind::Rw).count();
    let wr = cycle.iter().any(|e| e.2 == Kind::Wr);
    let base = match (rw, wr) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        _ if !adjacent_rw(&cycle) => 3,
        _ => 4,
    };
    let variant = match class.start {
        Kind::Process => 1,
        Kind::Realtime => 2,
        _ => 0,
    };
    Some((NAMES[base][variant], cycle))
}

/// True when the cycle meets the class's rules.
fn fits(class: &Class, cycle: &Cycle) -> bool {
    let rw = cycle.iter().filter(|e| e.2 == Kind::Rw).count();
    let wr = cycle.iter().any(|e| e.2 == Kind::Wr);
    (!class.need_wr || wr)
        && rw >= class.min_rw as usize
        && rw <= class.max_rw as usize
        && !(class.nonadjacent && adjacent_rw(cycle))
        && cycle.iter().all(|e| class.allowed & e.2.bit() != 0)
}

/// True when the cycle passes no transaction twice.
fn simple(cycle: &Cycle) -> bool {
    let mut nodes: Vec<u32> = cycle.iter().map(|e| e.0).collect();
    nodes.sort_unstable();
    nodes.windows(2).all(|w| w[0] != w[1])
}

/// True when two rw edges follow one another, the last edge and the first
/// included.
fn adjacent_rw(cycle: &Cycle) -> bool {
    let n = cycle.len();
    (0..n).any(|i| cycle[i].2 == Kind::Rw && cycle[(i + 1) % n].2 == Kind::Rw)
}

/// Per component of `comp`: whether it has a closed walk with at least one
/// rw edge and no two rw edges in a row. Such walks are the cycles through
/// an "after rw" state of the product of the graph with the state "was the
/// last edge rw": node `2v` (not after rw) and `2v + 1` (after rw), a
/// non-rw edge `u → v` leading from both states of `u` to `2v`, an rw edge
/// only from `2u` to `2v + 1`.
fn nonadjacent_components(graph: &DepGraph, allowed: u8, comp: &Components) -> Vec<bool> {
    let g = &graph.g;
    let mut p: DiGraph<(), (), u32> =
        DiGraph::with_capacity(g.node_count() * 2, g.edge_count() * 3);
    for _ in 0..g.node_count() * 2 {
        p.add_node(());
    }
    for e in g.edge_references() {
        let (u, v) = (e.source().index(), e.target().index());
        if comp.of[u] == u32::MAX || comp.of[u] != comp.of[v] {
            continue;
        }
        let mask = *e.weight() & allowed;
        if mask & !RW != 0 {
            p.add_edge(NodeIndex::new(2 * u), NodeIndex::new(2 * v), ());
            p.add_edge(NodeIndex::new(2 * u + 1), NodeIndex::new(2 * v), ());
        }
        if mask & RW != 0 {
            p.add_edge(NodeIndex::new(2 * u), NodeIndex::new(2 * v + 1), ());
        }
    }
    let mut has = vec![false; comp.count];
    for scc in petgraph::algo::tarjan_scc(&p) {
        // No self-loops here (no transaction depends on itself), so a cycle
        // needs two product nodes.
        if scc.len() < 2 {
            continue;
        }
        if let Some(n) = scc.iter().find(|n| n.index() % 2 == 1) {
            has[comp.of[n.index() / 2] as usize] = true;
        }
    }
    has
}

/// The nontrivial strongly connected components of the graph restricted
/// to `allowed` kinds, smallest first.
struct Components {
    count: usize,
    /// Component of each node, `u32::MAX` for nodes on no cycle.
    of: Vec<u32>,
    members: Vec<Vec<NodeIndex<u32>>>,
}

fn components(graph: &DepGraph, allowed: u8) -> Components {
    let g = &graph.g;
    let filtered = EdgeFiltered::from_fn(g, |e| e.weight() & allowed != 0);
    let mut members: Vec<Vec<NodeIndex<u32>>> = petgraph::algo::tarjan_scc(&filtered)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    for m in &mut members {
        m.sort_unstable();
    }
    // Smallest components first: their cycles are short and cheap.
    members.sort_by_key(|c| (c.len(), c[0].index()));
    let mut of = vec![u32::MAX; g.node_count()];
    for (i, c) in members.iter().enumerate() {
        for n in c {
            of[n.index()] = i as u32;
        }
    }
    Components {
        count: members.len(),
        of,
        members,
    }
}

enum Walk {
    Found(Cycle),
    None,
    OutOfBudget,
}

fn step(s: State, kind: Kind) -> (bool, u8) {
    let wr = s & 1 != 0 || kind == Kind::Wr;
    let rw = (((s >> 1) & 3) + u8::from(kind == Kind::Rw)).min(2);
    (wr, rw)
}

fn pack(wr: bool, rw: u8, last_rw: bool) -> State {
    u8::from(wr) | (rw << 1) | (u8::from(last_rw) << 3)
}

/// The shortest simple cycle of the class that starts with the edge
/// `a → b` (of the class's start kind).
#[allow(clippy::too_many_arguments)]
fn shortest(
    graph: &DepGraph,
    class: &Class,
    comp: &[u32],
    c: u32,
    a: NodeIndex<u32>,
    b: NodeIndex<u32>,
    budget: &mut Budget,
    scratch: &mut Scratch,
) -> Walk {
    let g = &graph.g;
    let kind = class.start;
    let max_rw = class.max_rw.min(2);
    let (wr0, rw0) = step(0, kind);
    if rw0 > max_rw {
        return Walk::None;
    }
    // Only G-nonadjacent tracks whether the last edge was rw.
    let track = class.nonadjacent;
    let s0 = pack(wr0, rw0, track && kind == Kind::Rw);
    let done = |s: State| {
        let rw = (s >> 1) & 3;
        (!class.need_wr || s & 1 != 0) && rw >= class.min_rw.min(2) && rw <= max_rw
    };
    let (ai, bi) = (a.index() as u32, b.index() as u32);
    scratch.generation = scratch.generation.wrapping_add(1);
    if scratch.generation == 0 {
        // Wrapped: stale stamps could now match, so clear them.
        scratch.stamp.iter_mut().for_each(|x| *x = u32::MAX);
        scratch.generation = 1;
    }
    scratch.set(scratch.idx(bi, s0), (ai, u8::MAX, kind as u8));
    let mut queue: VecDeque<(u32, State)> = VecDeque::new();
    queue.push_back((bi, s0));
    let mut goal = None;
    'bfs: while let Some((n, s)) = queue.pop_front() {
        if budget.spent() {
            return Walk::OutOfBudget;
        }
        for e in g.edges(NodeIndex::new(n as usize)) {
            let (m, mask) = (e.target().index() as u32, *e.weight());
            if comp[m as usize] != c {
                continue;
            }
            for k in Kind::ALL {
                if mask & class.allowed & k.bit() == 0 {
                    continue;
                }
                let (wr, rw) = step(s, k);
                // More rw edges than allowed can never come back down.
                if rw > max_rw {
                    continue;
                }
                // G-nonadjacent: no rw right after rw, nor as the edge that
                // closes the cycle before a starting rw edge.
                let last_rw = s & 8 != 0;
                if track && k == Kind::Rw && (last_rw || (m == ai && kind == Kind::Rw)) {
                    continue;
                }
                let ns = pack(wr, rw, track && k == Kind::Rw);
                let i = scratch.idx(m, ns);
                if scratch.seen(i) {
                    continue;
                }
                if m == ai {
                    if done(ns) {
                        scratch.set(i, (n, s, k as u8));
                        goal = Some(i);
                        break 'bfs;
                    }
                    continue;
                }
                // Cycles are simple: a walk through a node twice would count
                // edges of two different cycles. G-nonadjacent is the
                // exception: any closed walk whose rw edges are never
                // adjacent rules out snapshot isolation (Cerone and Gotsman:
                // SI holds iff (ww ∪ wr) ; rw? is acyclic), and allowing
                // walks makes this search exact.
                if !class.walks && scratch.on_path(scratch.idx(n, s), m) {
                    continue;
                }
                scratch.set(i, (n, s, k as u8));
                queue.push_back((m, ns));
            }
        }
    }
    let Some(mut at) = goal else {
        return Walk::None;
    };
    let mut cycle = Vec::new();
    loop {
        let (p, ps, k) = scratch.prev[at];
        cycle.push((p, scratch.node_of(at), Kind::ALL[k as usize]));
        if ps == u8::MAX {
            break;
        }
        at = scratch.idx(p, ps);
    }
    cycle.reverse();
    Walk::Found(cycle)
}
