//! Queues: FIFO, and unordered (any enqueued element may come out).

use super::{unknown_f, Model, Next, Values};
use crate::history::{Call, Outcome};
use std::sync::Arc;

/// An operation on a queue; elements are ids from [`Values`] (0 = nil).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueOp {
    /// Enqueued an element.
    Enqueue(u32),
    /// Dequeued this element (nil: found the queue empty).
    Dequeue(u32),
    /// A dequeue whose result is unknown: it took some element, or never happened.
    DequeueUnknown,
}

/// A FIFO queue, starting empty. Functions: `enqueue` (value = element),
/// `dequeue` (value = element taken, or nil for an empty queue).
#[derive(Clone, Copy, Debug, Default)]
pub struct FifoQueue;

/// A queue from which any enqueued element may come out next (a multiset).
#[derive(Clone, Copy, Debug, Default)]
pub struct UnorderedQueue;

fn decode_queue(model: &str, call: &Call, values: &mut Values) -> Result<Option<QueueOp>, String> {
    Ok(match (call.f.as_str(), call.outcome) {
        ("enqueue", Outcome::Fail) => None,
        ("enqueue", _) => Some(QueueOp::Enqueue(values.intern(&call.input))),
        ("dequeue", Outcome::Ok) => Some(QueueOp::Dequeue(values.intern(&call.output))),
        ("dequeue", Outcome::Info) => Some(QueueOp::DequeueUnknown),
        ("dequeue", Outcome::Fail) => None,
        _ => return Err(unknown_f(model, call, "enqueue, dequeue")),
    })
}

fn describe_queue(op: &QueueOp, values: &Values) -> String {
    match op {
        QueueOp::Enqueue(x) => format!("enqueue {}", values.show(*x)),
        QueueOp::Dequeue(0) => "dequeue found the queue empty".into(),
        QueueOp::Dequeue(x) => format!("dequeue returned {}", values.show(*x)),
        QueueOp::DequeueUnknown => "dequeue (outcome unknown)".into(),
    }
}

fn show_items(items: &[u32], values: &Values) -> String {
    let parts: Vec<String> = items.iter().map(|x| values.show(*x)).collect();
    format!("[{}]", parts.join(" "))
}

impl Model for FifoQueue {
    type Op = QueueOp;
    /// Elements, front first.
    type State = Arc<[u32]>;
    fn name(&self) -> &str {
        "fifo-queue"
    }
    fn init(&self) -> Arc<[u32]> {
        Arc::from(Vec::new())
    }
    fn decode(&self, call: &Call, values: &mut Values) -> Result<Option<QueueOp>, String> {
        decode_queue("fifo-queue", call, values)
    }
    fn step(&self, q: &Arc<[u32]>, op: &QueueOp) -> Next<Arc<[u32]>> {
        match *op {
            QueueOp::Enqueue(x) => {
                let mut v = q.to_vec();
                v.push(x);
                Next::One(Arc::from(v))
            }
            QueueOp::Dequeue(0) if q.is_empty() => Next::One(q.clone()),
            QueueOp::Dequeue(x) if q.first() == Some(&x) => Next::One(Arc::from(&q[1..])),
            QueueOp::Dequeue(_) => Next::Illegal,
            QueueOp::DequeueUnknown if q.is_empty() => Next::Illegal,
            QueueOp::DequeueUnknown => Next::One(Arc::from(&q[1..])),
        }
    }
    fn describe_op(&self, op: &QueueOp, values: &Values) -> String {
        describe_queue(op, values)
    }
    fn describe_state(&self, q: &Arc<[u32]>, values: &Values) -> String {
        show_items(q, values)
    }
    fn read_only(&self, op: &QueueOp) -> bool {
        // Finding the queue empty leaves it empty.
        matches!(op, QueueOp::Dequeue(0))
    }
    fn heap_bytes(&self, q: &Arc<[u32]>) -> usize {
        q.len() * 4 + 16
    }
}

impl Model for UnorderedQueue {
    type Op = QueueOp;
    /// Elements, sorted (a multiset).
    type State = Arc<[u32]>;
    fn name(&self) -> &str {
        "unordered-queue"
    }
    fn init(&self) -> Arc<[u32]> {
        Arc::from(Vec::new())
    }
    fn decode(&self, call: &Call, values: &mut Values) -> Result<Option<QueueOp>, String> {
        decode_queue("unordered-queue", call, values)
    }
    fn step(&self, q: &Arc<[u32]>, op: &QueueOp) -> Next<Arc<[u32]>> {
        let without = |i: usize| {
            let mut v = q.to_vec();
            v.remove(i);
            Arc::from(v)
        };
        match *op {
            QueueOp::Enqueue(x) => {
                let mut v = q.to_vec();
                let i = v.partition_point(|y| *y <= x);
                v.insert(i, x);
                Next::One(Arc::from(v))
            }
            QueueOp::Dequeue(0) if q.is_empty() => Next::One(q.clone()),
            QueueOp::Dequeue(x) => match q.binary_search(&x) {
                Ok(i) => Next::One(without(i)),
                Err(_) => Next::Illegal,
            },
            // Any distinct element may have been taken.
            QueueOp::DequeueUnknown => {
                let mut out: Vec<Arc<[u32]>> = Vec::new();
                for i in 0..q.len() {
                    if i == 0 || q[i] != q[i - 1] {
                        out.push(without(i));
                    }
                }
                match out.len() {
                    0 => Next::Illegal,
                    1 => Next::One(out.remove(0)),
                    _ => Next::Many(out),
                }
            }
        }
    }
    fn describe_op(&self, op: &QueueOp, values: &Values) -> String {
        describe_queue(op, values)
    }
    fn describe_state(&self, q: &Arc<[u32]>, values: &Values) -> String {
        show_items(q, values)
    }
    fn read_only(&self, op: &QueueOp) -> bool {
        // Finding the queue empty leaves it empty.
        matches!(op, QueueOp::Dequeue(0))
    }
    fn heap_bytes(&self, q: &Arc<[u32]>) -> usize {
        q.len() * 4 + 16
    }
}
