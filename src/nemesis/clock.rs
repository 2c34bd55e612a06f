//! Clock faults, Jepsen's way: stop NTP, then `date -s` to jump the clock
//! (bump) or flip it back and forth for a while (strobe); reset sets it to
//! the controller's time and starts NTP again.
//!
//! Refused, with the reason, on nodes whose capabilities say the clock
//! cannot be skewed: the local cluster's namespaces all share this
//! machine's one real-time clock (time namespaces offset only the monotonic
//! and boot clocks), so a "skewed" node would skew every node and the
//! controller too.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{Env, Fault, NemesisError, Targets};
use crate::cluster::{split_results, Node};
use crate::control::shell_quote;

/// The services that may keep a clock in sync.
const NTP_SERVICES: &str = "ntp ntpd chrony chronyd systemd-timesyncd openntpd";

/// How far a node's clock may be from the controller's before heal resets
/// it even without a record (SSH latency stays well below this).
const RESET_THRESHOLD: Duration = Duration::from_millis(500);

/// Clock bump, strobe and reset.
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

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn strobe_pid(work_dir: &str) -> String {
    format!("{work_dir}/nemesis/strobe.pid")
}

/// Shell text that starts a detached loop flipping the clock by
/// `delta_ms` every `period_ms`, `flips` times, marked by its `$0` so heal
/// can find it.
fn strobe(work_dir: &str, delta_ms: i64, period_ms: u64, flips: u64) -> String {
    let pid = strobe_pid(work_dir);
    let period = period_ms as f64 / 1000.0;
    let body = format!(
        "i=0; while [ $i -lt {flips} ]; do {up} sleep {period}; {down} sleep {period}; i=$((i+2)); done; rm -f {pidq}",
        up = bump(delta_ms),
        down = bump(-delta_ms),
        pidq = shell_quote(&pid),
    );
    format!(
        "{stop}{ntp}mkdir -p {dir}; setsid sh -c {body} faultline-strobe > /dev/null 2>&1 < /dev/null & echo $! > {pidq}; ",
        stop = stop_strobe(work_dir),
        ntp = stop_ntp(),
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

impl ClockNemesis {
    /// Clock faults over `env`'s cluster.
    pub fn new(env: Arc<Env>) -> ClockNemesis {
        ClockNemesis { env }
    }

    /// Nodes of `names` that cannot skew their clock, with the reason.
    fn refuse(&self, fault: &Fault, names: &[String]) -> Result<(), NemesisError> {
        let mut bad = Vec::new();
        for n in names {
            if !self.env.node(n)?.capabilities().can_skew_clock {
                bad.push(n.clone());
            }
        }
        if bad.is_empty() {
            return Ok(());
        }
        Err(NemesisError::Refused {
            fault: fault.f().into(),
            reason: format!(
                "the clocks of {} cannot be skewed independently: nodes of the local cluster \
                 share this machine's real-time clock (time namespaces offset only the \
                 monotonic and boot clocks, and libfaketime does not reach Go programs), so \
                 moving one node's clock would move every node's and the controller's; run \
                 clock faults on real hosts",
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

    fn targets(&self, fault: &Fault, t: &Targets) -> Result<Vec<String>, NemesisError> {
        // Check every node first: refusing must change nothing, and the
        // random choice must not decide whether we refuse.
        let all: Vec<String> = self
            .env
            .cluster()
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect();
        self.refuse(fault, &all)?;
        let names = self.env.resolve(t)?;
        self.env.update(|a| a.clock.extend(names.iter().cloned()))?;
        Ok(names)
    }

    fn reset(&self, names: &[String]) -> Result<(), NemesisError> {
        // Read the controller's time per node, just before its command.
        self.on(names, |n| reset(n.work_dir(), now_secs()))
    }

    /// Nodes (that can skew) whose clock is more than [`RESET_THRESHOLD`]
    /// from the controller's.
    fn drifted(&self) -> Result<Vec<String>, NemesisError> {
        let nodes: Vec<&Node> = self
            .env
            .cluster()
            .nodes()
            .iter()
            .filter(|n| n.capabilities().can_skew_clock)
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
}

impl super::Nemesis for ClockNemesis {
    fn name(&self) -> &'static str {
        "clock"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(
            fault,
            Fault::BumpClock { .. } | Fault::StrobeClock { .. } | Fault::ResetClock
        )
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        match fault {
            Fault::BumpClock { targets, delta_ms } => {
                let names = self.targets(fault, targets)?;
                self.on(&names, |_| format!("{}{}", stop_ntp(), bump(*delta_ms)))?;
                Ok(json!({ "bumped": names, "delta-ms": delta_ms }))
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
                    strobe(n.work_dir(), *delta_ms, *period_ms, flips)
                })?;
                Ok(
                    json!({ "strobed": names, "delta-ms": delta_ms, "period-ms": period_ms, "duration-ms": duration_ms }),
                )
            }
            Fault::ResetClock => {
                let all: Vec<String> = self
                    .env
                    .cluster()
                    .nodes()
                    .iter()
                    .map(|n| n.name().to_string())
                    .collect();
                self.refuse(fault, &all)?;
                self.reset(&all)?;
                self.env.update(|a| a.clock.clear())?;
                Ok(json!({ "reset": all }))
            }
            other => Err(NemesisError::Invalid(format!(
                "clock nemesis cannot {}",
                other.f()
            ))),
        }
    }

    /// Resets the clocks recorded as moved, and any that drifted from the
    /// controller's; on nodes that cannot skew there is nothing to do.
    fn heal(&self) -> Result<Value, NemesisError> {
        // A strobe loop still running would undo the reset.
        let capable: Vec<String> = self
            .env
            .cluster()
            .nodes()
            .iter()
            .filter(|n| n.capabilities().can_skew_clock)
            .map(|n| n.name().to_string())
            .collect();
        self.on(&capable, |n| stop_strobe(n.work_dir()))?;
        let mut names: Vec<String> = self
            .env
            .active()
            .unwrap_or_default()
            .clock
            .into_iter()
            .filter(|n| {
                self.env
                    .node(n)
                    .is_ok_and(|n| n.capabilities().can_skew_clock)
            })
            .collect();
        for n in self.drifted()? {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        if !names.is_empty() {
            self.reset(&names)?;
        }
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
        parses(&strobe("/opt/faultline", 200, 10, 100));
        parses(&reset("/opt/faultline", 1_700_000_000.5));
        parses(&start_ntp());
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
