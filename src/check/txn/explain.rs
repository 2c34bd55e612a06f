//! Turning cycles and findings into what a human reads: transactions named
//! `T1`, `T2`, ... in cycle order, one sentence per edge ending in "a
//! contradiction", and a Graphviz dot graph per cycle.

use super::graph::DepGraph;
use super::infer::{Kind, Why};
use super::parse::{Interner, Txns, NIL};
use super::search::Cycle;
use super::{Anomaly, CycleStep, TxnKind, TxnRef};
use serde_json::Value;

/// What explanations need to know about the history.
pub(crate) struct Ctx<'a> {
    pub txns: &'a Txns,
    pub atoms: &'a Interner,
    pub workload: TxnKind,
}

/// A JSON value as Elle prints EDN: `[append 1 2]`, strings bare, `nil`.
pub(crate) fn show_json(v: &Value) -> String {
    match v {
        Value::Null => "nil".to_string(),
        Value::String(s) => s.strip_prefix(':').unwrap_or(s).to_string(),
        Value::Array(xs) => format!(
            "[{}]",
            xs.iter().map(show_json).collect::<Vec<_>>().join(" ")
        ),
        v => v.to_string(),
    }
}

impl Ctx<'_> {
    fn txn_ref(&self, name: String, t: u32) -> TxnRef {
        let txn = &self.txns[t as usize];
        let ops = self.txns.show_ops(txn, self.atoms);
        TxnRef {
            name,
            invoke_index: txn.invoke,
            complete_index: txn.complete,
            process: txn.process,
            outcome: txn.outcome,
            ops,
        }
    }

    /// The sentence for one edge of a cycle.
    fn because(&self, graph: &DepGraph, a: (&str, u32), b: (&str, u32), kind: Kind) -> String {
        let (an, at) = a;
        let (bn, bt) = b;
        let show = |x: u32| self.atoms.show(x);
        let why = graph.why(at, bt, kind).unwrap_or(Why {
            key: NIL,
            v1: NIL,
            v2: NIL,
        });
        let k = show(why.key);
        let append = self.workload == TxnKind::ListAppend;
        match kind {
            Kind::Ww if append => {
                format!(
                    "{bn} appended {} to key {k} after {an} appended {}",
                    show(why.v2),
                    show(why.v1)
                )
            }
            Kind::Ww => format!(
                "{an} wrote key {k} = {}, which {bn} overwrote with {}",
                show(why.v1),
                show(why.v2)
            ),
            Kind::Wr if append => format!(
                "{bn} read key {k} after {an} appended {} to it",
                show(why.v1)
            ),
            Kind::Wr => format!("{bn} read key {k} = {}, which {an} wrote", show(why.v1)),
            Kind::Rw if append => {
                let saw = if why.v1 == NIL {
                    "an empty list".to_string()
                } else {
                    format!("up to {}", show(why.v1))
                };
                format!(
                    "{an} read key {k} ({saw}) before {bn} appended {} to it",
                    show(why.v2)
                )
            }
            Kind::Rw => format!(
                "{an} read key {k} = {}, which {bn} overwrote with {}",
                show(why.v1),
                show(why.v2)
            ),
            Kind::Process => format!(
                "process {} ran {an} before {bn}",
                self.txns[at as usize].process
            ),
            Kind::Realtime => format!(
                "{an} completed (event {}) before {bn} was invoked (event {})",
                self.txns[at as usize]
                    .complete
                    .map_or("?".to_string(), |c| c.to_string()),
                self.txns[bt as usize].invoke
            ),
        }
    }

    /// The report entry for a cycle.
    pub(crate) fn cycle(&self, graph: &DepGraph, name: &str, cycle: &Cycle) -> Anomaly {
        let names: Vec<String> = (1..=cycle.len()).map(|i| format!("T{i}")).collect();
        let at = |t: u32| cycle.iter().position(|e| e.0 == t).unwrap_or(0);
        let txns: Vec<TxnRef> = cycle
            .iter()
            .enumerate()
            .map(|(i, e)| self.txn_ref(names[i].clone(), e.0))
            .collect();
        let mut steps = Vec::new();
        for &(a, b, kind) in cycle {
            let (an, bn) = (&names[at(a)], &names[at(b)]);
            let why = self.because(graph, (an, a), (bn, b), kind);
            let key = match kind {
                Kind::Ww | Kind::Wr | Kind::Rw => graph
                    .why(a, b, kind)
                    .map(|w| self.atoms.value(w.key).clone()),
                Kind::Process | Kind::Realtime => None,
            };
            steps.push(CycleStep {
                from: an.clone(),
                to: bn.clone(),
                kind: kind.name().to_string(),
                key,
                why,
            });
        }
        let parts: Vec<String> = steps
            .iter()
            .map(|s| format!("{} < {} because {}", s.from, s.to, s.why))
            .collect();
        let explanation = format!("{}: a contradiction", parts.join("; "));
        let dot = self.dot(name, &txns, &steps);
        Anomaly {
            name: name.to_string(),
            key: None,
            explanation,
            txns,
            cycle: Some(steps),
            dot: Some(dot),
        }
    }

    /// The report entry for a finding without a cycle.
    pub(crate) fn found(&self, f: &super::infer::Found) -> Anomaly {
        let txns = f
            .txns
            .iter()
            .enumerate()
            .map(|(i, &t)| self.txn_ref(format!("T{}", i + 1), t))
            .collect();
        Anomaly {
            name: f.name.to_string(),
            key: f.key.map(|k| self.atoms.value(k).clone()),
            explanation: f.text.clone(),
            txns,
            cycle: None,
            dot: None,
        }
    }

    fn dot(&self, name: &str, txns: &[TxnRef], steps: &[CycleStep]) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut s = format!(
            "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n  label=\"{}\";\n",
            esc(name),
            esc(name)
        );
        for t in txns {
            let events = match t.complete_index {
                Some(c) => format!("events {}-{c}", t.invoke_index),
                None => format!("event {}", t.invoke_index),
            };
            s.push_str(&format!(
                "  {} [label=\"{}\\nprocess {}, {}, {events}\\n{}\"];\n",
                t.name,
                t.name,
                t.process,
                outcome_name(t.outcome),
                esc(&t.ops)
            ));
        }
        for st in steps {
            let color = match st.kind.as_str() {
                "ww" => "#1f5fbf",
                "wr" => "#1b8a3a",
                "rw" => "#c0392b",
                "process" => "#8e44ad",
                _ => "#555555",
            };
            s.push_str(&format!(
                "  {} -> {} [label=\"{}\", color=\"{color}\", fontcolor=\"{color}\", tooltip=\"{}\"];\n",
                st.from,
                st.to,
                match &st.key {
                    Some(k) => esc(&format!("{} {}", st.kind, show_json(k))),
                    None => st.kind.clone(),
                },
                esc(&st.why)
            ));
        }
        s.push_str("}\n");
        s
    }
}

fn outcome_name(o: crate::history::Outcome) -> &'static str {
    match o {
        crate::history::Outcome::Ok => "ok",
        crate::history::Outcome::Fail => "fail",
        crate::history::Outcome::Info => "info",
    }
}

/// The Let/Then text of an anomaly, as written to `<anomaly>.txt`.
pub(crate) fn long_text(a: &Anomaly) -> String {
    let mut s = String::from("Let:\n");
    for t in &a.txns {
        s.push_str(&format!(
            "  {} = process {}, {}, invoked at event {}{}: {}\n",
            t.name,
            t.process,
            outcome_name(t.outcome),
            t.invoke_index,
            t.complete_index
                .map(|c| format!(", completed at {c}"))
                .unwrap_or_default(),
            t.ops
        ));
    }
    s.push_str("Then:\n");
    match &a.cycle {
        Some(steps) => {
            for (i, st) in steps.iter().enumerate() {
                let end = if i + 1 == steps.len() {
                    ": a contradiction."
                } else {
                    ";"
                };
                s.push_str(&format!(
                    "  - {} < {} because {}{end}\n",
                    st.from, st.to, st.why
                ));
            }
        }
        None => s.push_str(&format!("  {}.\n", a.explanation)),
    }
    s
}
