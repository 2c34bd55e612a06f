//! Running a database as a plain daemon over SSH: start it detached with a
//! pid file and a log file, signal it by pid, and tell whether it lives.
//!
//! Shared by every [`Db`](super::Db) that has no service manager of its own,
//! so the same commands work on the local cluster (no systemd) and on real
//! hosts.
//!
//! Clock faults on the local cluster: when a node's libfaketime control
//! file ([`faketime_file`]) exists, [`Daemon::start`] starts the daemon
//! with Debian's libfaketime preloaded, reading its clock offset from that
//! file on every call, so the clock nemesis moves that node's clock by
//! rewriting the file while the database runs. Nothing else changes: the
//! file exists only on a local cluster whose run asked for clock faults.

use std::time::Duration;

use super::DbError;
use crate::cluster::Node;
use crate::control::{shell_quote, ControlError};

/// A database's daemon on one node, and the folder that holds what it
/// wrote (what [`super::Db::wipe`] removes).
#[derive(Debug, Clone)]
pub struct NodeDaemon {
    /// The daemon.
    pub daemon: Daemon,
    /// Its folder on the node.
    pub dir: String,
}

/// The Debian packages a database installs on a node.
#[derive(Debug, Clone, Copy)]
pub struct AptPackages<'a> {
    /// What they install, for messages (`ZooKeeper`).
    pub what: &'a str,
    /// The packages.
    pub packages: &'a [&'a str],
    /// A shell test that holds once they are installed.
    pub present: &'a str,
    /// The services the packages start of their own, stopped and disabled
    /// (ours run with their own configuration on the node's address).
    pub services: &'a [&'a str],
    /// What else the user can do, added to the refusal on the local
    /// cluster (`, or pass ...`).
    pub otherwise: &'a str,
}

/// Installs `p` on `node` with apt-get unless present. Local nodes share
/// this machine's filesystem but have no network beyond their subnet, so
/// there a missing package is refused with the command to run here. The
/// lock timeout lets a concurrent apt run finish first rather than fail us.
pub fn apt_install(db: &str, node: &Node, p: &AptPackages<'_>) -> Result<(), DbError> {
    if node.exec(p.present)?.success() {
        return Ok(());
    }
    let packages = p.packages.join(" ");
    if node.capabilities().shares_host {
        return Err(DbError::on(
            db,
            node,
            "install",
            format!(
                "{} is not installed on this machine, and local nodes cannot reach a \
                 package mirror: run `apt-get install -y {packages}` here{}",
                p.what, p.otherwise
            ),
        ));
    }
    let apt = "apt-get -y -q -o DPkg::Lock::Timeout=600";
    let script = format!(
        "export DEBIAN_FRONTEND=noninteractive; \
         {apt} install {packages} >/dev/null 2>&1 || \
         {{ {apt} update >/dev/null && {apt} install {packages}; }} || exit 1; \
         if command -v systemctl >/dev/null 2>&1; then \
           systemctl disable --now {services} >/dev/null 2>&1; fi; \
         {present}",
        services = p.services.join(" "),
        present = p.present,
    );
    node.run_timeout(&script, Duration::from_secs(900))
        .map_err(|e| {
            DbError::on(
                db,
                node,
                &format!("install (apt-get install {packages})"),
                e,
            )
        })?;
    Ok(())
}

/// A program of a database as it shows in a node's process table: what
/// the clean slate kills whether or not a pid file names it (an earlier
/// run's, or one started by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The process name (`/proc/<pid>/comm`, at most 15 bytes).
    pub comm: String,
    /// A text its command line must hold, when the name alone is too
    /// common to tell it (`java`).
    pub cmdline: Option<String>,
}

/// Process names never swept by name: the shell that runs the sweep is
/// one of them, and so is every other SSH session on the node.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ash", "busybox", "env"];

impl Program {
    /// Every process named `name`.
    pub fn named(name: &str) -> Program {
        Program {
            comm: name.chars().take(15).collect(),
            cmdline: None,
        }
    }

    /// Every process named `name` whose command line holds `marker`.
    pub fn with_cmdline(name: &str, marker: &str) -> Program {
        Program {
            cmdline: Some(marker.to_string()),
            ..Program::named(name)
        }
    }

    /// Kills every live process of this program on `node` (SIGCONT first,
    /// so a stopped one does not linger, then SIGKILL) and waits until
    /// they are gone. Returns their pids. The scan reads the node's own
    /// `/proc`: on the local cluster each node has its own pid namespace,
    /// so only the node's processes are seen, never the host's. A shell's
    /// name is never swept (the sweep runs in one).
    pub fn kill_all(&self, node: &Node) -> Result<Vec<u32>, ControlError> {
        if self.comm.is_empty() || SHELLS.contains(&self.comm.as_str()) {
            return Ok(Vec::new());
        }
        let script = format!(
            "COMM={comm}; MARK={mark}; me=$$; found=''; \
             for d in /proc/[0-9]*; do p=${{d#/proc/}}; [ \"$p\" = \"$me\" ] && continue; \
               [ \"$(cat $d/comm 2>/dev/null)\" = \"$COMM\" ] || continue; \
               grep -qE '^[0-9]+ \\(.*\\) [^ZX]' $d/stat 2>/dev/null || continue; \
               if [ -n \"$MARK\" ]; then tr '\\0' ' ' < $d/cmdline 2>/dev/null | grep -qF -- \"$MARK\" || continue; fi; \
               found=\"$found $p\"; done; \
             if [ -n \"$found\" ]; then kill -CONT $found 2>/dev/null; kill -KILL $found 2>/dev/null; \
               i=0; while [ $i -lt 1500 ]; do left=''; \
                 for p in $found; do grep -qE '^[0-9]+ \\(.*\\) [^ZX]' /proc/$p/stat 2>/dev/null && left=\"$left $p\"; done; \
                 [ -z \"$left\" ] && break; sleep 0.02; i=$((i+1)); done; \
               if [ -n \"$left\" ]; then echo \"pids$left survived SIGKILL for 30 s\" >&2; exit 1; fi; fi; \
             echo $found",
            comm = shell_quote(&self.comm),
            mark = shell_quote(self.cmdline.as_deref().unwrap_or("")),
        );
        let out = node.run_timeout(&script, Duration::from_secs(40))?;
        Ok(out
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cmdline {
            Some(m) => write!(f, "{} ({m})", self.comm),
            None => f.write_str(&self.comm),
        }
    }
}

/// The libfaketime control file of the node whose work folder is
/// `work_dir`: an offset such as `+0.5` or `-1.25` (seconds), read by a
/// daemon started while it exists.
pub fn faketime_file(work_dir: &str) -> String {
    format!("{work_dir}/clock/faketime")
}

/// Shell text exporting the libfaketime variables when the node's control
/// file exists and the library is installed: the real-time clock follows
/// the file, read on every call (`FAKETIME_NO_CACHE`, so a strobe's flips
/// reach the daemon at once); the monotonic clocks stay true, as they do
/// when `date -s` moves a real host's clock.
pub fn faketime_exports(work_dir: &str) -> String {
    format!(
        "FT={file}; if [ -f \"$FT\" ]; then for L in /usr/lib/*/faketime/libfaketime.so.1; do \
           if [ -r \"$L\" ]; then export LD_PRELOAD=\"$L\" FAKETIME_TIMESTAMP_FILE=\"$FT\" \
             FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_DISABLE_SHM=1; break; fi; done; fi; ",
        file = shell_quote(&faketime_file(work_dir)),
    )
}

/// Shell text (for inside single quotes) making libfaketime's semaphore
/// and shared memory, named in `$FAKETIME_SHARED`, readable and writable by
/// every user, so an image that drops root can open them (`Daemon::start`).
const SHARE_FAKETIME_IPC: &str =
    "if [ -n \"$FAKETIME_SHARED\" ]; then for f in $FAKETIME_SHARED; do \
     case $f in /faketime_sem_*) f=/dev/shm/sem.${f#/};; *) f=/dev/shm/${f#/};; esac; \
     chmod 0666 \"$f\" 2>/dev/null; done; fi; ";

/// Shell text running `command` under the clock-faking variables
/// (`LD_PRELOAD`, `FAKETIME*`) of process `pid`'s environment. Each
/// variable is one argument of `env`, whatever it holds: libfaketime's own
/// `FAKETIME_SHARED` names its semaphore and shared memory separated by a
/// space, which word splitting would make a command of its own.
fn under_clock_env_of(pid: &str, command: &str) -> String {
    format!(
        "( set -f; IFS='\n'; set -- $(tr '\\0' '\\n' < /proc/{pid}/environ | \
           grep -E '^(LD_PRELOAD|FAKETIME[A-Z_]*)='); env \"$@\" {command} )"
    )
}

/// Where a daemon keeps its pid and output on a node, and what its process is
/// called.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// The pid file.
    pub pid_file: String,
    /// The log file (stdout and stderr, appended).
    pub log_file: String,
    /// The process name as the kernel shows it (`/proc/<pid>/comm`), checked
    /// before signalling so a recycled pid is never hit.
    pub comm: String,
}

/// A shell function `alive PID COMM`: true when the process exists, is not a
/// zombie and has the expected name. The state test is positive (a state
/// other than Z or X) so that a process vanishing between two reads counts
/// as gone: a negated grep would succeed on the missing file.
const ALIVE_FN: &str =
    "alive() { [ -r /proc/$1/stat ] && [ \"$(cat /proc/$1/comm 2>/dev/null)\" = \"$2\" ] \
     && grep -qE '^[0-9]+ \\(.*\\) [^ZX]' /proc/$1/stat 2>/dev/null; }";

impl Daemon {
    /// A daemon whose binary is `binary` (its file name gives `comm`).
    pub fn new(binary_name: &str, pid_file: &str, log_file: &str) -> Self {
        // The kernel keeps the first 15 bytes of the name.
        let comm: String = binary_name.chars().take(15).collect();
        Daemon {
            pid_file: pid_file.to_string(),
            log_file: log_file.to_string(),
            comm,
        }
    }

    fn prelude(&self) -> String {
        format!(
            "{ALIVE_FN}; PIDF={}; COMM={}; p=$(cat \"$PIDF\" 2>/dev/null || true); ",
            shell_quote(&self.pid_file),
            shell_quote(&self.comm)
        )
    }

    /// Starts `command` (already quoted words) in `dir`, detached from the SSH
    /// session with `setsid`, stdin from /dev/null and output appended to the
    /// log, under libfaketime when the node's control file exists (see the
    /// module's comment). Does nothing when it already runs. Returns once
    /// the pid file is written.
    pub fn start(&self, node: &Node, dir: &str, command: &str) -> Result<(), ControlError> {
        // The pid is written by the shell that then execs the daemon, so it
        // is the daemon's own pid. `&` applies to this one command only,
        // or the SSH channel would wait for the whole list.
        // Under libfaketime 0.9.10 the shell that execs the daemon creates
        // the library's semaphore and shared memory (named after its pid,
        // owner-only, in `FAKETIME_SHARED`; `FAKETIME_DISABLE_SHM` is not
        // honoured), and every image the pid execs into opens them again: a
        // daemon that drops root on the way (`setpriv` to postgres) would be
        // refused them and exit. The shell opens them to the daemon first.
        let script = format!(
            "{pre}if [ -n \"$p\" ] && alive \"$p\" \"$COMM\"; then exit 0; fi; \
             rm -f \"$PIDF\"; cd {dir} || exit 1; {faketime}\
             setsid sh -c '{share_faketime}echo $$ > \"$0\"; exec \"$@\"' \"$PIDF\" {command} \
             >> {log} 2>&1 < /dev/null & \
             i=0; while [ ! -s \"$PIDF\" ] && [ $i -lt 250 ]; do sleep 0.02; i=$((i+1)); done; \
             [ -s \"$PIDF\" ] || {{ echo 'no pid file after 5 s' >&2; exit 1; }}",
            pre = self.prelude(),
            dir = shell_quote(dir),
            log = shell_quote(&self.log_file),
            faketime = faketime_exports(node.work_dir()),
            share_faketime = SHARE_FAKETIME_IPC,
        );
        node.run(&script).map(|_| ())
    }

    /// The time, in seconds since the epoch, that a process started like
    /// the running daemon reads: `date` under the clock-faking variables of
    /// the daemon's own environment (`/proc/<pid>/environ`), so through
    /// libc it sees the clock the daemon sees. `None` when it does not run.
    pub fn clock_like(&self, node: &Node) -> Result<Option<f64>, ControlError> {
        let script = format!(
            "{pre}if [ -n \"$p\" ] && alive \"$p\" \"$COMM\"; then {}; fi",
            under_clock_env_of("$p", "date +%s.%N"),
            pre = self.prelude(),
        );
        Ok(node.run(&script)?.trim().parse().ok())
    }

    /// Whether the running daemon was started under libfaketime (its
    /// environment names a control file); `false` when it does not run.
    pub fn is_faked(&self, node: &Node) -> Result<bool, ControlError> {
        let script = format!(
            "{pre}if [ -n \"$p\" ] && alive \"$p\" \"$COMM\" && \
               tr '\\0' '\\n' < /proc/$p/environ | grep -q '^FAKETIME_TIMESTAMP_FILE='; then echo yes; else echo no; fi",
            pre = self.prelude(),
        );
        Ok(node.run(&script)?.trim() == "yes")
    }

    /// Sends `signal` (e.g. `STOP`) to the daemon if it runs. Returns whether
    /// it was running.
    pub fn signal(&self, node: &Node, signal: &str) -> Result<bool, ControlError> {
        let script = format!(
            "{pre}if [ -n \"$p\" ] && alive \"$p\" \"$COMM\"; then kill -{signal} \"$p\"; echo sent; fi",
            pre = self.prelude(),
        );
        Ok(node.run(&script)?.contains("sent"))
    }

    /// Sends `signal`, then waits up to `grace` for the process to end, then
    /// SIGKILLs it and waits again, up to 30 s (a process blocked in an
    /// fsync on a loaded disk dies only when the fsync returns). Removes the
    /// pid file.
    pub fn stop(&self, node: &Node, signal: &str, grace: Duration) -> Result<(), ControlError> {
        let steps = (grace.as_millis() / 20).max(1);
        let script = format!(
            "{pre}if [ -n \"$p\" ] && alive \"$p\" \"$COMM\"; then \
               kill -{signal} \"$p\"; kill -CONT \"$p\" 2>/dev/null; \
               i=0; while alive \"$p\" \"$COMM\" && [ $i -lt {steps} ]; do sleep 0.02; i=$((i+1)); done; \
               if alive \"$p\" \"$COMM\"; then kill -KILL \"$p\"; \
                 i=0; while alive \"$p\" \"$COMM\" && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done; fi; \
               if alive \"$p\" \"$COMM\"; then echo \"pid $p survived SIGKILL for $((i / 50)) s (state $(cut -d' ' -f3 /proc/$p/stat 2>/dev/null))\" >&2; exit 1; fi; \
             fi; rm -f \"$PIDF\"",
            pre = self.prelude(),
        );
        node.run_timeout(&script, grace + Duration::from_secs(30))
            .map(|_| ())
    }

    /// Whether the daemon's process is alive (stopped counts as alive).
    pub fn is_running(&self, node: &Node) -> Result<bool, ControlError> {
        let script = format!(
            "{pre}if [ -n \"$p\" ] && alive \"$p\" \"$COMM\"; then echo yes; else echo no; fi",
            pre = self.prelude()
        );
        Ok(node.run(&script)?.trim() == "yes")
    }

    /// Whether the daemon's process is alive and stopped (state `T`, as
    /// after SIGSTOP).
    pub fn is_stopped(&self, node: &Node) -> Result<bool, ControlError> {
        let script = format!(
            "{pre}if [ -n \"$p\" ] && alive \"$p\" \"$COMM\" && \
               grep -qE '^[0-9]+ \\(.*\\) T' /proc/$p/stat 2>/dev/null; then echo yes; else echo no; fi",
            pre = self.prelude()
        );
        Ok(node.run(&script)?.trim() == "yes")
    }

    /// The pid of the running daemon, if it runs.
    pub fn pid(&self, node: &Node) -> Result<Option<u32>, ControlError> {
        let script = format!(
            "{pre}if [ -n \"$p\" ] && alive \"$p\" \"$COMM\"; then echo \"$p\"; fi",
            pre = self.prelude()
        );
        Ok(node.run(&script)?.trim().parse().ok())
    }

    /// The last `lines` lines of the log (empty if there is none).
    pub fn log_tail(&self, node: &Node, lines: usize) -> String {
        node.exec(&format!(
            "tail -n {lines} {} 2>/dev/null",
            shell_quote(&self.log_file)
        ))
        .map(|o| o.stdout)
        .unwrap_or_default()
    }

    /// What a health report says of a node that does not serve: whether
    /// `what` runs there, and the end of its log.
    pub fn unhealthy_context(&self, node: &Node, what: &str) -> String {
        let running = self.is_running(node).unwrap_or(false);
        format!(
            "{}; log: {}",
            if running {
                String::new()
            } else {
                format!(" ({what} not running)")
            },
            crate::control::tail(self.log_tail(node, 5).trim(), 800)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_runs_under_a_process_s_clock_variables_even_with_spaces() {
        let mut daemon = std::process::Command::new("sleep")
            .arg("30")
            .env("FAKETIME_SHARED", "/faketime_sem_1 /faketime_shm_1")
            .env("FAKETIME_TIMESTAMP_FILE", "/tmp/x")
            .env("OTHER", "not passed")
            .spawn()
            .expect("start sleep");
        let script = under_clock_env_of(
            &daemon.id().to_string(),
            "sh -c 'printf \"%s|%s|%s\" \"$FAKETIME_SHARED\" \"$FAKETIME_TIMESTAMP_FILE\" \"$OTHER\"'",
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env_remove("OTHER")
            .output()
            .expect("run sh");
        let _ = daemon.kill();
        let _ = daemon.wait();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "/faketime_sem_1 /faketime_shm_1|/tmp/x|"
        );
    }
}
