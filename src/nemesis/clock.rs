//! Clock faults: bump (jump by ±N ms), strobe (flip back and forth for a
//! while), reset, and `clock-check`, which records each node's offset as
//! its database reads it.
//!
//! Two mechanisms, chosen per node by its capabilities:
//! - Real hosts (`can_skew_clock`), Jepsen's way: stop NTP, then `date -s`
//!   to jump the clock; reset sets it to the controller's time and starts
//!   NTP again.
//! - The local cluster, whose namespaces share this machine's one
//!   real-time clock (time namespaces offset only the monotonic and boot
//!   clocks): the database runs under Debian's libfaketime, which reads
//!   the node's offset from a control file on every clock call
//!   ([`crate::db::daemon::faketime_file`]); the nemesis rewrites that
//!   file (atomically, by rename). [`arm_faketime`] creates the files
//!   before the db starts, for runs that ask for clock faults; a node
//!   without one (a db started otherwise) refuses clock faults with the
//!   reason. Only programs that read the clock through libc follow the
//!   file: static Go binaries such as etcd read it through the vDSO, and
//!   a run refuses clock faults on them (and on Redis, which hangs under
//!   libfaketime) before anything is built
//!   ([`crate::system::Configured::faketime_clock`]).
//!
//! Heal needs no record: it stops strobe loops, resets every control file
//! that is not `+0`, and resets real clocks recorded as moved or found
//! more than [`RESET_THRESHOLD`] from the controller's.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::{Env, Fault, NemesisError, Targets};
use crate::cluster::{split_results, Cluster, Node};
use crate::control::shell_quote;
use crate::db::daemon::faketime_file;

/// The services that may keep a clock in sync.
const NTP_SERVICES: &str = "ntp ntpd chrony chronyd systemd-timesyncd openntpd";

/// How far a node's clock may be from the controller's before heal resets
/// it even without a record (SSH latency stays well below this).
const RESET_THRESHOLD: Duration = Duration::from_millis(500);

/// Clock bump, strobe, reset and check.
#[derive(Debug)]
pub struct ClockNemesis {
    env: Arc<Env>,
}

fn stop_ntp() -> String {
    format!(
        "for s in {NTP_SERVICES}; do \
           (systemctl stop \"$s\" || service \"$s\" stop) >/dev/null 2>&1; done; "
    )
}

fn start_ntp() -> String {
    format!(
        "for s in {NTP_SERVICES}; do \
           if command -v systemctl >/dev/null 2>&1; then \
             systemctl is-enabled --quiet \"$s\" 2>/dev/null && systemctl start \"$s\" >/dev/null 2>&1; \
           fi; done; true; "
    )
}

/// Shell text printing the epoch seconds in `$t` moved by `delta_ms`.
fn shifted(delta_ms: i64) -> String {
    format!(
        "awk -v t=\"$t\" -v d={} 'BEGIN{{printf \"%.6f\", t+d}}'",
        delta_ms as f64 / 1000.0
    )
}

/// Shell text moving the clock by `delta_ms`.
fn bump(delta_ms: i64) -> String {
    format!(
        "t=$(date +%s.%N); date -u -s \"@$({})\" >/dev/null; ",
        shifted(delta_ms)
    )
}

/// Shell text moving the libfaketime offset of the node whose work folder
/// is `work_dir` by `delta_ms`: the file is replaced by rename, so the
/// daemon never reads half of it.
fn faketime_bump(work_dir: &str, delta_ms: i64) -> String {
    format!(
        "f={file}; c=$(cat \"$f\" 2>/dev/null || echo +0); \
         awk -v c=\"$c\" -v d={delta} 'BEGIN{{printf \"%+.3f\\n\", c+d}}' > \"$f.tmp\" && mv -f \"$f.tmp\" \"$f\"; ",
        file = shell_quote(&faketime_file(work_dir)),
        delta = delta_ms as f64 / 1000.0,
    )
}

/// Shell text setting the libfaketime offset back to `+0`.
fn faketime_reset(work_dir: &str) -> String {
    format!(
        "f={file}; if [ -f \"$f\" ] && [ \"$(cat \"$f\")\" != \"+0\" ]; then \
           echo +0 > \"$f.tmp\" && mv -f \"$f.tmp\" \"$f\"; echo reset; fi; ",
        file = shell_quote(&faketime_file(work_dir)),
    )
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn strobe_pid(work_dir: &str) -> String {
    format!("{work_dir}/nemesis/strobe.pid")
}

/// How one node's clock is moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    /// `date -s` on a host of its own.
    SetClock,
    /// The libfaketime control file of a local node.
    Faketime,
}

impl Mechanism {
    fn of(node: &Node) -> Mechanism {
        if node.capabilities().can_skew_clock {
            Mechanism::SetClock
        } else {
            Mechanism::Faketime
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mechanism::SetClock => "date -s",
            Mechanism::Faketime => "libfaketime",
        }
    }

    /// Shell text moving the node's clock by `delta_ms`.
    fn mover(self, work_dir: &str, delta_ms: i64) -> String {
        match self {
            Mechanism::SetClock => bump(delta_ms),
            Mechanism::Faketime => faketime_bump(work_dir, delta_ms),
        }
    }

    /// Shell text done once before the clock is moved.
    fn before(self) -> String {
        match self {
            Mechanism::SetClock => stop_ntp(),
            Mechanism::Faketime => String::new(),
        }
    }
}

/// Shell text that starts a detached loop flipping the clock by
/// `delta_ms` every `period_ms`, `flips` times, marked by its `$0` so heal
/// can find it.
fn strobe(mech: Mechanism, work_dir: &str, delta_ms: i64, period_ms: u64, flips: u64) -> String {
    let pid = strobe_pid(work_dir);
    let period = period_ms as f64 / 1000.0;
    let body = format!(
        "i=0; while [ $i -lt {flips} ]; do {up} sleep {period}; {down} sleep {period}; i=$((i+2)); done; rm -f {pidq}",
        up = mech.mover(work_dir, delta_ms),
        down = mech.mover(work_dir, -delta_ms),
        pidq = shell_quote(&pid),
    );
    format!(
        "{stop}{before}mkdir -p {dir}; setsid sh -c {body} faultline-strobe > /dev/null 2>&1 < /dev/null & echo $! > {pidq}; ",
        stop = stop_strobe(work_dir),
        before = mech.before(),
        dir = shell_quote(&format!("{work_dir}/nemesis")),
        body = shell_quote(&body),
        pidq = shell_quote(&pid),
    )
}

/// Shell text setting the clock to `epoch_secs` and restarting NTP.
fn reset(work_dir: &str, epoch_secs: f64) -> String {
    format!(
        "{}date -u -s \"@{:.6}\" >/dev/null; {}",
        stop_strobe(work_dir),
        epoch_secs,
        start_ntp()
    )
}

fn stop_strobe(work_dir: &str) -> String {
    format!(
        "p=$(cat {pid} 2>/dev/null || true); \
         if [ -n \"$p\" ] && grep -q faultline-strobe /proc/$p/cmdline 2>/dev/null; then kill -KILL \"$p\"; fi; \
         rm -f {pid}; ",
        pid = shell_quote(&strobe_pid(work_dir))
    )
}

/// Creates (`armed`) or removes the libfaketime control file, at offset
/// `+0`, on every node of `cluster` that cannot set its own clock (the
/// local cluster's). Called before the db starts: a daemon started while
/// the file exists follows it ([`crate::db::daemon::Daemon::start`]), and
/// one started without it runs on the real clock, as every run that asks
/// for no clock fault does. Returns the nodes it armed.
pub fn arm_faketime(cluster: &Cluster, armed: bool) -> Result<Vec<String>, NemesisError> {
    let nodes: Vec<&Node> = cluster
        .nodes()
        .iter()
        .filter(|n| Mechanism::of(n) == Mechanism::Faketime)
        .collect();
    let results = crate::control::parallel(&nodes, |n| {
        let file = faketime_file(n.work_dir());
        let script = if armed {
            format!(
                "mkdir -p \"$(dirname {f})\" && chmod 755 \"$(dirname {f})\" && echo +0 > {f} && chmod 644 {f}",
                f = shell_quote(&file)
            )
        } else {
            format!("rm -f {}", shell_quote(&file))
        };
        n.run(&script).map(|_| n.name().to_string())
    });
    let (names, errors) = split_results(results);
    NemesisError::from_many(errors.into_iter().map(NemesisError::from).collect())?;
    Ok(if armed { names } else { Vec::new() })
}

impl ClockNemesis {
    /// Clock faults over `env`'s cluster.
    pub fn new(env: Arc<Env>) -> ClockNemesis {
        ClockNemesis { env }
    }

    /// Nodes of `names` whose clock cannot be moved, with the reason: local
    /// nodes without a libfaketime control file.
    fn refuse(&self, fault: &Fault, names: &[String]) -> Result<(), NemesisError> {
        let mut faked = Vec::new();
        for n in names {
            let node = self.env.node(n)?;
            if Mechanism::of(node) == Mechanism::Faketime {
                faked.push(node);
            }
        }
        let results = crate::control::parallel(&faked, |n| {
            n.exec(&format!(
                "test -f {}",
                shell_quote(&faketime_file(n.work_dir()))
            ))
            .map(|o| (n.name().to_string(), o.success()))
        });
        let (armed, errors) = split_results(results);
        NemesisError::from_many(errors.into_iter().map(NemesisError::from).collect())?;
        let bad: Vec<String> = armed
            .into_iter()
            .filter(|(_, armed)| !armed)
            .map(|(n, _)| n)
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        Err(NemesisError::Refused {
            fault: fault.f().into(),
            reason: format!(
                "the clocks of {} cannot be moved: nodes of the local cluster share this \
                 machine's real-time clock, and their database was not started under \
                 libfaketime (a run starts it so when --nemesis names a clock fault, \
                 and the db reads its clock through libc)",
                bad.join(", ")
            ),
        })
    }

    fn on(
        &self,
        names: &[String],
        script: impl Fn(&Node) -> String + Sync,
    ) -> Result<(), NemesisError> {
        let nodes = names
            .iter()
            .map(|n| self.env.node(n))
            .collect::<Result<Vec<_>, _>>()?;
        let results = crate::control::parallel(&nodes, |n| n.run(&script(n)));
        let (_, errors) = split_results(results);
        NemesisError::from_many(errors.into_iter().map(NemesisError::from).collect())
    }

    fn all(&self) -> Vec<String> {
        self.env
            .cluster()
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect()
    }

    fn targets(&self, fault: &Fault, t: &Targets) -> Result<Vec<String>, NemesisError> {
        // Check every node first: refusing must change nothing, and the
        // random choice must not decide whether we refuse.
        self.refuse(fault, &self.all())?;
        let names = self.env.resolve(t)?;
        self.env.update(|a| a.clock.extend(names.iter().cloned()))?;
        Ok(names)
    }

    /// The mechanism of each of `names` (`{"n1": "libfaketime"}`).
    fn via(&self, names: &[String]) -> Value {
        Value::Object(
            names
                .iter()
                .filter_map(|n| self.env.node(n).ok())
                .map(|n| (n.name().to_string(), json!(Mechanism::of(n).name())))
                .collect::<Map<_, _>>(),
        )
    }

    /// The libfaketime offsets (ms) now in force on those of `names` that
    /// use it, read back from their control files: what took effect.
    fn faketime_offsets(&self, names: &[String]) -> Result<Value, NemesisError> {
        let nodes: Vec<&Node> = names
            .iter()
            .filter_map(|n| self.env.node(n).ok())
            .filter(|n| Mechanism::of(n) == Mechanism::Faketime)
            .collect();
        let results = crate::control::parallel(&nodes, |n| {
            n.run(&format!(
                "cat {}",
                shell_quote(&faketime_file(n.work_dir()))
            ))
            .map(|out| {
                let ms = out.trim().parse::<f64>().ok().map(|s| (s * 1000.0).round());
                (n.name().to_string(), json!(ms))
            })
        });
        let (offsets, errors) = split_results(results);
        NemesisError::from_many(errors.into_iter().map(NemesisError::from).collect())?;
        Ok(Value::Object(offsets.into_iter().collect()))
    }

    /// Resets the clocks of `names`: real ones to the controller's time
    /// (read per node, just before its command), libfaketime offsets to
    /// `+0`.
    fn reset(&self, names: &[String]) -> Result<(), NemesisError> {
        self.on(names, |n| match Mechanism::of(n) {
            Mechanism::SetClock => reset(n.work_dir(), now_secs()),
            Mechanism::Faketime => format!(
                "{}{}",
                stop_strobe(n.work_dir()),
                faketime_reset(n.work_dir())
            ),
        })
    }

    /// Nodes (that can skew) whose clock is more than [`RESET_THRESHOLD`]
    /// from the controller's.
    fn drifted(&self) -> Result<Vec<String>, NemesisError> {
        let nodes: Vec<&Node> = self
            .env
            .cluster()
            .nodes()
            .iter()
            .filter(|n| Mechanism::of(n) == Mechanism::SetClock)
            .collect();
        let results = crate::control::parallel(&nodes, |n| {
            let before = now_secs();
            let out = n.run("date +%s.%N")?;
            let after = now_secs();
            let theirs: f64 = out.trim().parse().unwrap_or(0.0);
            let off = (theirs - (before + after) / 2.0).abs();
            Ok::<_, NemesisError>((n.name().to_string(), off))
        });
        let (offsets, errors) = split_results(results);
        NemesisError::from_many(errors)?;
        Ok(offsets
            .into_iter()
            .filter(|(_, off)| *off > RESET_THRESHOLD.as_secs_f64())
            .map(|(n, _)| n)
            .collect())
    }

    /// `clock-check`: each node's offset from the controller's clock, in
    /// ms, as its database reads it ([`crate::db::Db::clock`]), measured
    /// against the middle of the controller's time before and after the
    /// read; nodes where the db does not run are left out.
    fn check(&self) -> Result<Value, NemesisError> {
        let db = self.env.db().ok_or_else(|| NemesisError::Refused {
            fault: Fault::CheckClock.f().into(),
            reason: "no database was given to the nemesis to read the clocks of".into(),
        })?;
        let nodes: Vec<&Node> = self.env.cluster().nodes().iter().collect();
        let results = crate::control::parallel(&nodes, |n| {
            let before = now_secs();
            let clock = db.clock(n);
            let after = now_secs();
            (n.name().to_string(), clock, (before + after) / 2.0)
        });
        let mut offsets = Map::new();
        let mut via = Map::new();
        let mut errors = Map::new();
        for (name, clock, mid) in results {
            match clock {
                Ok(Some(c)) => {
                    let ms = ((c.epoch_secs - mid) * 1e4).round() / 10.0;
                    offsets.insert(name.clone(), json!(ms));
                    via.insert(name, json!(c.via));
                }
                Ok(None) => {}
                Err(e) => {
                    errors.insert(name, json!(e.to_string()));
                }
            }
        }
        let mut v = json!({ "offsets-ms": offsets, "via": via });
        if !errors.is_empty() {
            // A node that does not answer (killed, partitioned) is no
            // failure of the check: the others were read.
            v["unread"] = Value::Object(errors);
        }
        Ok(v)
    }
}

impl super::Nemesis for ClockNemesis {
    fn name(&self) -> &'static str {
        "clock"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(
            fault,
            Fault::BumpClock { .. }
                | Fault::StrobeClock { .. }
                | Fault::ResetClock
                | Fault::CheckClock
        )
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        match fault {
            Fault::BumpClock { targets, delta_ms } => {
                let names = self.targets(fault, targets)?;
                self.on(&names, |n| {
                    let m = Mechanism::of(n);
                    format!("{}{}", m.before(), m.mover(n.work_dir(), *delta_ms))
                })?;
                let mut v =
                    json!({ "bumped": names, "delta-ms": delta_ms, "via": self.via(&names) });
                let offsets = self.faketime_offsets(&names)?;
                if offsets.as_object().is_some_and(|o| !o.is_empty()) {
                    v["faketime-offsets-ms"] = offsets;
                }
                Ok(v)
            }
            Fault::StrobeClock {
                targets,
                delta_ms,
                period_ms,
                duration_ms,
            } => {
                let names = self.targets(fault, targets)?;
                let flips = (duration_ms / period_ms.max(&1)).max(1);
                self.on(&names, |n| {
                    strobe(Mechanism::of(n), n.work_dir(), *delta_ms, *period_ms, flips)
                })?;
                Ok(json!({
                    "strobed": names, "delta-ms": delta_ms, "period-ms": period_ms,
                    "duration-ms": duration_ms, "via": self.via(&names),
                }))
            }
            Fault::ResetClock => {
                let all = self.all();
                self.refuse(fault, &all)?;
                self.reset(&all)?;
                self.env.update(|a| a.clock.clear())?;
                Ok(json!({ "reset": all }))
            }
            Fault::CheckClock => self.check(),
            other => Err(NemesisError::Invalid(format!(
                "clock nemesis cannot {}",
                other.f()
            ))),
        }
    }

    /// Stops every strobe loop, sets every libfaketime offset that is not
    /// `+0` back to it, and resets the real clocks recorded as moved or
    /// found drifted from the controller's.
    fn heal(&self) -> Result<Value, NemesisError> {
        // A strobe loop still running would undo the reset.
        let all = self.all();
        let nodes: Vec<&Node> = self.env.cluster().nodes().iter().collect();
        let results = crate::control::parallel(&nodes, |n| {
            let script = match Mechanism::of(n) {
                Mechanism::SetClock => stop_strobe(n.work_dir()),
                Mechanism::Faketime => {
                    format!(
                        "{}{}",
                        stop_strobe(n.work_dir()),
                        faketime_reset(n.work_dir())
                    )
                }
            };
            n.run(&script)
                .map(|out| (n.name().to_string(), out.contains("reset")))
        });
        let (faked, errors) = split_results(results);
        NemesisError::from_many(errors.into_iter().map(NemesisError::from).collect())?;
        let mut names: Vec<String> = faked
            .into_iter()
            .filter(|(_, reset)| *reset)
            .map(|(n, _)| n)
            .collect();
        let recorded = self.env.active().unwrap_or_default().clock;
        let mut real: Vec<String> = recorded
            .into_iter()
            .filter(|n| {
                self.env
                    .node(n)
                    .is_ok_and(|n| Mechanism::of(n) == Mechanism::SetClock)
            })
            .collect();
        for n in self.drifted()? {
            if !real.contains(&n) {
                real.push(n);
            }
        }
        if !real.is_empty() {
            self.reset(&real)?;
        }
        names.extend(real);
        names.sort_by_key(|n| all.iter().position(|a| a == n));
        self.env.update(|a| a.clock.clear())?;
        Ok(json!({ "reset": names }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sh -n`: the script parses.
    fn parses(script: &str) {
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", script])
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn clock_scripts_parse() {
        parses(&format!("{}{}", stop_ntp(), bump(-250)));
        parses(&strobe(Mechanism::SetClock, "/opt/faultline", 200, 10, 100));
        parses(&strobe(Mechanism::Faketime, "/opt/faultline", 200, 10, 100));
        parses(&faketime_bump("/opt/faultline", -250));
        parses(&faketime_reset("/opt/faultline"));
        parses(&reset("/opt/faultline", 1_700_000_000.5));
        parses(&start_ntp());
    }

    #[test]
    fn faketime_offsets_add_up_and_reset_to_zero() {
        let dir = tempfile::tempdir().expect("temp dir");
        let work = dir.path().to_string_lossy().into_owned();
        std::fs::create_dir_all(dir.path().join("clock")).expect("mkdir");
        let file = dir.path().join("clock/faketime");
        std::fs::write(&file, "+0\n").expect("write");
        let run = |script: String| {
            let out = std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .expect("sh");
            assert!(out.status.success(), "{script}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        run(faketime_bump(&work, 500));
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "+0.500\n");
        run(faketime_bump(&work, -1250));
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "-0.750\n");
        assert_eq!(run(faketime_reset(&work)).trim(), "reset");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "+0\n");
        // Already at +0: nothing to say.
        assert_eq!(run(faketime_reset(&work)).trim(), "");
    }

    #[test]
    fn shifted_time_is_exact() {
        for (delta, want) in [(500, "1000.750000"), (-1250, "999.000000")] {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("t=1000.25; {}", shifted(delta))])
                .output()
                .expect("sh");
            assert_eq!(String::from_utf8_lossy(&out.stdout), want);
        }
    }
}
