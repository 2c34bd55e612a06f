//! The recorder: the one place where events get their index and time and
//! are written to `history.jsonl`.
//!
//! # Durability
//!
//! Events go through a 64 KiB buffer and are written out (a `write(2)` to
//! the kernel) whenever the oldest unwritten event is [`FLUSH_EVERY`] old:
//! the runner checks after every event and, when it goes idle, sets its
//! wake-up no later than that deadline. Once written, an event survives the
//! controller being killed (even `SIGKILL`): the page cache belongs to the
//! kernel. So a killed controller loses at most the last ~5 ms of events,
//! and at full speed (100k+ ops/s) the history costs one `write` per 5 ms
//! rather than one per event. We `fsync` only at the end: a crash of the
//! controller's machine is not the failure this harness studies, and an
//! `fsync` per flush would cap the rate a slow disk allows.

use crate::history::{History, Op, OpType};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest an event waits in the buffer before it is written out.
pub const FLUSH_EVERY: Duration = Duration::from_millis(5);

/// Live counts of a run, readable from another task (for a progress line).
#[derive(Debug, Default)]
pub struct Progress {
    invoked: AtomicU64,
    ok: AtomicU64,
    fail: AtomicU64,
    info: AtomicU64,
}

/// A snapshot of [`Progress`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Client invocations recorded.
    pub invoked: u64,
    /// Client completions `ok`.
    pub ok: u64,
    /// Client completions `fail`.
    pub fail: u64,
    /// Client completions `info`.
    pub info: u64,
}

impl Progress {
    /// The counts now.
    pub fn counts(&self) -> Counts {
        Counts {
            invoked: self.invoked.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            fail: self.fail.load(Ordering::Relaxed),
            info: self.info.load(Ordering::Relaxed),
        }
    }

    fn count(&self, op: &Op) {
        // Nemesis events use `info` for both halves; they are not client
        // outcomes and are left out of the counts.
        if !op.is_client() {
            return;
        }
        let c = match op.kind {
            OpType::Invoke => &self.invoked,
            OpType::Ok => &self.ok,
            OpType::Fail => &self.fail,
            OpType::Info => &self.info,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl Counts {
    /// A one-line summary: `ops 1234  ok 1200  fail 30  info 4`.
    pub fn line(&self) -> String {
        format!(
            "ops {}  ok {}  fail {}  info {}",
            self.invoked, self.ok, self.fail, self.info
        )
    }
}

/// Gives every event its index and time, appends it to the history file,
/// keeps it for the in-memory history, and counts outcomes.
pub struct Recorder {
    start: Instant,
    out: Option<BufWriter<File>>,
    path: Option<PathBuf>,
    /// When the oldest event not yet written out was recorded.
    dirty_since: Option<Instant>,
    ops: Vec<Op>,
    progress: Arc<Progress>,
    /// Where a copy of every event goes as it is recorded (the online
    /// checker's thread), if anywhere.
    tap: Option<Sender<Op>>,
}

impl Recorder {
    /// A recorder writing to `path` (created or truncated), with times
    /// counted from `start`.
    pub fn create(path: &Path, start: Instant) -> io::Result<Recorder> {
        let f = File::create(path)?;
        Ok(Recorder {
            start,
            out: Some(BufWriter::with_capacity(64 * 1024, f)),
            path: Some(path.to_path_buf()),
            dirty_since: None,
            ops: Vec::new(),
            progress: Arc::default(),
            tap: None,
        })
    }

    /// A recorder that keeps events in memory only.
    pub fn in_memory(start: Instant) -> Recorder {
        Recorder {
            start,
            out: None,
            path: None,
            dirty_since: None,
            ops: Vec::new(),
            progress: Arc::default(),
            tap: None,
        }
    }

    /// Sends a copy of every event recorded from now on to `tx` (the
    /// channel is unbounded: recording never waits for the receiver). The
    /// sender is dropped when the recorder finishes, which tells the
    /// receiver the history is whole.
    pub fn tap(&mut self, tx: Sender<Op>) {
        self.tap = Some(tx);
    }

    /// The instant times are counted from.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The live counts, to share with a progress task.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Number of events recorded.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True before the first event.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Records `op` now: sets its index (next in order) and its time (now,
    /// monotonic, never before the previous event's), appends it to the
    /// file, and returns the recorded event.
    pub fn record(&mut self, mut op: Op) -> io::Result<&Op> {
        op.index = self.ops.len() as u64;
        let now = self.now();
        // Instant is monotonic, but be explicit: times never go backwards.
        let floor = self.ops.last().and_then(|o| o.time).unwrap_or(0);
        op.time = Some(now.max(floor));
        if let Some(out) = self.out.as_mut() {
            serde_json::to_writer(&mut *out, &op)?;
            out.write_all(b"\n")?;
            if self.dirty_since.is_none() {
                self.dirty_since = Some(Instant::now());
            }
        }
        self.progress.count(&op);
        if let Some(tx) = &self.tap {
            if tx.send(op.clone()).is_err() {
                // The receiver is gone (it stopped early): stop copying.
                self.tap = None;
            }
        }
        let i = self.ops.len();
        self.ops.push(op);
        self.flush_if_due()?;
        Ok(&self.ops[i])
    }

    /// When unwritten events must be written out at the latest, if any.
    pub fn flush_deadline(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t + FLUSH_EVERY)
    }

    /// Writes out buffered events if the oldest is [`FLUSH_EVERY`] old.
    pub fn flush_if_due(&mut self) -> io::Result<()> {
        match self.flush_deadline() {
            Some(d) if Instant::now() >= d => self.flush(),
            _ => Ok(()),
        }
    }

    /// Writes out every buffered event.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(out) = self.out.as_mut() {
            out.flush()?;
        }
        self.dirty_since = None;
        Ok(())
    }

    /// Flushes, syncs the file to disk, and returns the history.
    pub fn finish(mut self) -> io::Result<History> {
        self.flush()?;
        if let Some(out) = self.out.take() {
            let f = out.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
        }
        let mut h = History {
            ops: self.ops,
            source: self.path,
            lines: Vec::new(),
        };
        h.reindex();
        Ok(h)
    }
}
