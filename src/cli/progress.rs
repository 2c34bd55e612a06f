//! The terminal display of a run, fed by the lifecycle's [`RunEvent`]s:
//! the "setting up" and "running" lines, a live line of counts and active
//! faults (only when stderr is a terminal: a CI log gets no escape codes
//! and no half-second redraws), warnings; and the run's log file, attached
//! as soon as the run's folder exists.

use crate::runner::events::{EventSink, RunEvent};
use crate::store::LOG_FILE;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The display of one run on stderr.
pub struct Progress {
    /// Whether stderr is a terminal: the live line is drawn only then.
    live: bool,
    /// True while a live line is on screen (it must be ended before any
    /// other line is printed).
    drawn: AtomicBool,
}

impl Progress {
    /// A display drawing the live line when `live` (stderr is a terminal).
    pub fn new(live: bool) -> Progress {
        Progress {
            live,
            drawn: AtomicBool::new(false),
        }
    }

    /// The sink to give the lifecycle.
    pub fn sink(self) -> EventSink {
        let me = Arc::new(self);
        Arc::new(move |ev| me.show(&ev))
    }

    /// Ends a live line on screen, so the next output starts on its own line.
    fn end_line(&self) {
        if self.drawn.swap(false, Ordering::Relaxed) {
            eprintln!();
        }
    }

    fn show(&self, ev: &RunEvent) {
        match ev {
            RunEvent::Created { dir } => super::attach_log_file(&dir.join(LOG_FILE)),
            RunEvent::Progress { .. } if !self.live => {}
            RunEvent::Progress { .. } => {
                eprint!("\r\x1b[2K{}", line(ev).unwrap_or_default());
                let _ = std::io::stderr().flush();
                self.drawn.store(true, Ordering::Relaxed);
            }
            _ => {
                self.end_line();
                if let Some(l) = line(ev) {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// The text shown for `ev`, if any.
fn line(ev: &RunEvent) -> Option<String> {
    match ev {
        RunEvent::Created { .. } | RunEvent::Stopped => None,
        RunEvent::SettingUp { db, nodes, of } if nodes.len() == *of => {
            Some(format!("setting up {db} on {of} nodes..."))
        }
        RunEvent::SettingUp { db, nodes, of } => Some(format!(
            "setting up {db} on {} ({} of {of} nodes)...",
            nodes.join(", "),
            nodes.len()
        )),
        RunEvent::Running {
            workload,
            time_limit,
            concurrency,
            rate,
            nemeses,
            seed,
            history,
        } => Some(format!(
            "running {workload} for {time_limit} s: {concurrency} workers, {}, nemesis {} (seed {seed}); history in {}",
            rate.map(|r| format!("{r} ops/s"))
                .unwrap_or_else(|| "no rate limit".into()),
            if nemeses.is_empty() {
                "none".to_string()
            } else {
                nemeses.join(",")
            },
            history.display()
        )),
        RunEvent::Progress {
            elapsed,
            counts,
            faults,
        } => Some(format!(
            "{:>6.1}s  {}  faults: {}",
            elapsed.as_secs_f64(),
            counts.line(),
            if faults.is_empty() {
                "none".to_string()
            } else {
                faults.join(",")
            }
        )),
        RunEvent::Warning(w) => Some(format!("warning: {w}")),
        RunEvent::Violation { line, stopping } => Some(format!(
            "INVALID (online): {line}{}",
            if *stopping {
                "\nstopping early (--stop-on-invalid): final phase, heal, final check"
            } else {
                ""
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Counts;
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn lines_say_what_the_run_does() {
        let running = RunEvent::Running {
            workload: "register".into(),
            time_limit: 10.0,
            concurrency: 5,
            rate: None,
            nemeses: vec!["partition".into(), "kill".into()],
            seed: 7,
            history: PathBuf::from("r/history.jsonl"),
        };
        assert_eq!(
            line(&running).as_deref(),
            Some("running register for 10 s: 5 workers, no rate limit, nemesis partition,kill (seed 7); history in r/history.jsonl")
        );
        let progress = RunEvent::Progress {
            elapsed: Duration::from_millis(1500),
            counts: Counts {
                invoked: 10,
                ok: 8,
                fail: 1,
                info: 0,
            },
            faults: vec![],
        };
        assert_eq!(
            line(&progress).as_deref(),
            Some("   1.5s  ops 10  ok 8  fail 1  info 0  faults: none")
        );
        assert_eq!(line(&RunEvent::Stopped), None);
        let found = |stopping| RunEvent::Violation {
            line: "linearizable on key 3: read returned 1".into(),
            stopping,
        };
        assert_eq!(
            line(&found(false)).as_deref(),
            Some("INVALID (online): linearizable on key 3: read returned 1")
        );
        assert!(line(&found(true))
            .is_some_and(|l| l
                .ends_with("stopping early (--stop-on-invalid): final phase, heal, final check")));
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let every = RunEvent::SettingUp {
            db: "etcd".into(),
            nodes: names(&["n1", "n2", "n3"]),
            of: 3,
        };
        assert_eq!(
            line(&every).as_deref(),
            Some("setting up etcd on 3 nodes...")
        );
        let one = RunEvent::SettingUp {
            db: "postgres".into(),
            nodes: names(&["n1"]),
            of: 5,
        };
        assert_eq!(
            line(&one).as_deref(),
            Some("setting up postgres on n1 (1 of 5 nodes)...")
        );
        assert_eq!(
            line(&RunEvent::Warning("db teardown: gone".into())).as_deref(),
            Some("warning: db teardown: gone")
        );
    }

    #[test]
    fn no_live_line_when_not_a_terminal() {
        let p = Progress::new(false);
        p.show(&RunEvent::Progress {
            elapsed: Duration::from_secs(1),
            counts: Counts::default(),
            faults: vec!["partition".into()],
        });
        assert!(!p.drawn.load(Ordering::Relaxed), "nothing drawn");
    }
}
