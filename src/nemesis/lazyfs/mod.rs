//! Losing what was not fsynced, as Jepsen's lazyfs does: the db's data
//! folder on each node is mounted through `faultline lazyfs` (`fs.rs`, a
//! FUSE filesystem that keeps written data in memory until the writer
//! fsyncs it, over the same folder underneath; its page cache is
//! `cache.rs`), and the `lose-unfsynced` fault kills the db on the chosen
//! nodes and drops everything they had not synced, as a power failure
//! would. `restart-lost` starts the db again on what was durable.
//!
//! - [`arm`] mounts it, before the workers start, when a run asks for
//!   `lose-unfsynced`: on every node with a [`Db::data_folder`], the db is
//!   stopped, the folder mounted over itself, the db started on the
//!   mount, and the cluster waited for. The nodes are recorded
//!   (`ActiveFaults::lazyfs`) before anything is mounted.
//! - `lose-unfsynced` records its nodes as killed, kills the db there,
//!   and asks each node's filesystem to drop its unsynced data; the
//!   history records, per node, the files and bytes lost.
//! - Heal, from any process, finds the mounts by their source name
//!   ([`FS_NAME`] in the node's mountinfo) and the program by its pid
//!   file: it stops the db there (recorded as killed, so the process
//!   nemesis starts it again), stops the program with SIGTERM — it writes
//!   its unsynced data back and unmounts, as a clean unmount does — then
//!   SIGKILL and a lazy unmount for whatever is left (a dead program
//!   leaves a dead mount). The folder underneath then holds the data, and
//!   the db is restarted on it without the filesystem. Heal never lists
//!   or reads the mount itself, which would hang on a stuck program.

pub mod cache;
#[cfg(feature = "lazyfs")]
pub mod fs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{json, Value};

use super::{grudge, Env, Fault, NemesisError, Targets};
use crate::cluster::{split_results, Cluster, Node};
use crate::control::shell_quote;
use crate::db::Db;

/// The source name of the filesystem in a node's mountinfo, by which heal
/// finds every mount of it.
pub const FS_NAME: &str = "faultline-lazyfs";

/// The f of the fault, as the history and errors name it.
const FAULT: &str = "lose-unfsynced";

/// Where the program keeps its pid, log and control socket on a node.
struct ProgramFiles {
    dir: String,
    pid: String,
    log: String,
    control: String,
}

fn program_files(node: &Node) -> ProgramFiles {
    let dir = format!("{}/nemesis", node.work_dir());
    ProgramFiles {
        pid: format!("{dir}/lazyfs.pid"),
        log: format!("{dir}/lazyfs.log"),
        control: format!("{dir}/lazyfs.sock"),
        dir,
    }
}

/// Shell text printing the mount point of every mount of [`FS_NAME`] on
/// the node, one per line (mountinfo's fields after ` - ` are the type
/// and the source).
fn list_mounts() -> String {
    format!(
        "awk '{{for (i = 7; i <= NF; i++) if ($i == \"-\") {{ if ($(i+2) == \"{FS_NAME}\") print $5; break }}}}' /proc/self/mountinfo"
    )
}

/// Shell text that stops the program (checked by name, so a recycled pid
/// is never hit): SIGTERM, so it writes its data back and unmounts, then
/// SIGKILL after 10 s; then lazily unmounts every mount of [`FS_NAME`]
/// left, printing `UNMOUNTED <path>` for each mount that was there, and
/// fails if one is still there.
fn stop_program(f: &ProgramFiles) -> String {
    format!(
        "before=$({list}); p=$(cat {pid} 2>/dev/null || true); \
         if [ -n \"$p\" ] && grep -q lazyfs /proc/$p/cmdline 2>/dev/null; then \
           kill -TERM \"$p\"; i=0; while [ -e /proc/$p ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
           if [ -e /proc/$p ]; then echo \"lazyfs $p ignored SIGTERM; killing it\" >&2; kill -KILL \"$p\"; i=0; \
             while [ -e /proc/$p ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done; fi; \
         fi; rm -f {pid} {control}; \
         for m in $({list}); do umount -l \"$m\" || true; done; \
         for m in $before; do echo \"UNMOUNTED $m\"; done; \
         left=$({list}); if [ -n \"$left\" ]; then echo \"still mounted: $left\" >&2; exit 1; fi",
        list = list_mounts(),
        pid = shell_quote(&f.pid),
        control = shell_quote(&f.control),
    )
}

/// Shell text that mounts `data` over itself with `bin lazyfs` and waits
/// until the mount is there (10 s at most), failing with the end of the
/// program's log otherwise.
fn start_program(f: &ProgramFiles, bin: &str, data: &str) -> String {
    format!(
        "mkdir -p {dir} {data}; D=$(readlink -f {data}); rm -f {control}; \
         setsid sh -c 'echo $$ > \"$0\"; exec \"$@\"' {pid} {bin} lazyfs --backing \"$D\" --mount \"$D\" \
           --control {control} >> {log} 2>&1 < /dev/null & \
         i=0; while [ $i -lt 200 ]; do \
           if {list} | grep -qxF \"$D\" && [ -S {control} ]; then exit 0; fi; \
           p=$(cat {pid} 2>/dev/null); if [ -n \"$p\" ] && [ ! -e /proc/$p ]; then break; fi; \
           sleep 0.05; i=$((i+1)); done; \
         echo \"lazyfs did not mount $D: $(tail -n 5 {log})\" >&2; exit 1",
        dir = shell_quote(&f.dir),
        data = shell_quote(data),
        control = shell_quote(&f.control),
        pid = shell_quote(&f.pid),
        bin = shell_quote(bin),
        log = shell_quote(&f.log),
        list = list_mounts(),
    )
}

/// Mounts the filesystem under the db's data folder on every node that
/// has one (see the module doc), then waits `healthy_within` for the db.
/// Refused, naming the db, when no node has a data folder (the memory
/// system, a db file without one). On failure, what was mounted is
/// unmounted again.
pub fn arm(
    cluster: &Cluster,
    db: &Arc<dyn Db>,
    record: &Path,
    helper: Option<PathBuf>,
    healthy_within: Duration,
) -> Result<Value, NemesisError> {
    let env = Arc::new(Env::new(
        cluster.clone(),
        Some(db.clone()),
        0,
        Some(record.to_path_buf()),
    ));
    let mut n = LazyfsNemesis::new(env);
    if let Some(h) = helper {
        n = n.with_helper(h);
    }
    let armed = n.mount_all(healthy_within);
    if armed.is_err() {
        if let Err(e) = super::Nemesis::heal(&n) {
            tracing::warn!("unmounting lazyfs after a failed mount: {e}");
        }
    }
    armed
}

/// The lose-unfsynced fault over `faultline lazyfs` mounts.
#[derive(Debug)]
pub struct LazyfsNemesis {
    env: Arc<Env>,
    helper: Option<PathBuf>,
}

impl LazyfsNemesis {
    /// The fault on `env`'s db, with this process's executable as the
    /// filesystem program.
    pub fn new(env: Arc<Env>) -> LazyfsNemesis {
        LazyfsNemesis {
            env,
            helper: std::env::current_exe().ok(),
        }
    }

    /// Uses `path` as the faultline binary that runs the filesystem.
    pub fn with_helper(mut self, path: PathBuf) -> LazyfsNemesis {
        self.helper = Some(path);
        self
    }

    fn db(&self) -> Result<&Arc<dyn Db>, NemesisError> {
        self.env.db().ok_or_else(|| NemesisError::Refused {
            fault: FAULT.into(),
            reason: "no database was given to the nemesis".into(),
        })
    }

    /// The binary to run on `node`: the local one when the node can see
    /// it (local cluster), else uploaded to the work dir.
    fn helper_on(&self, node: &Node) -> Result<String, NemesisError> {
        super::env::faultline_on(
            node,
            self.helper.as_deref(),
            "lazyfs",
            FAULT,
            "the lazyfs filesystem",
        )
    }

    /// Every node with a data folder, with it; refused when there is none.
    fn holders(&self, db: &dyn Db) -> Result<Vec<(&Node, String)>, NemesisError> {
        let out: Vec<(&Node, String)> = self
            .env
            .cluster()
            .nodes()
            .iter()
            .filter_map(|n| db.data_folder(n).map(|d| (n, d)))
            .collect();
        if out.is_empty() {
            return Err(NemesisError::Refused {
                fault: FAULT.into(),
                reason: format!(
                    "{} keeps no data folder faultline knows on the nodes, so there is no \
                     file system under it to lose writes from",
                    db.name()
                ),
            });
        }
        Ok(out)
    }

    fn mount_all(&self, healthy_within: Duration) -> Result<Value, NemesisError> {
        let db = self.db()?;
        let holders = self.holders(db.as_ref())?;
        let names: Vec<String> = holders.iter().map(|(n, _)| n.name().to_string()).collect();
        self.env
            .update(|a| a.lazyfs.extend(names.iter().cloned()))?;
        let results = crate::control::parallel(&holders, |(node, data)| {
            let bin = self.helper_on(node)?;
            db.stop(node)?;
            let f = program_files(node);
            node.run_timeout(&start_program(&f, &bin, data), Duration::from_secs(30))?;
            db.start(node)?;
            Ok::<_, NemesisError>(json!({ "node": node.name(), "data": data }))
        });
        let (done, errors) = split_results(results);
        NemesisError::from_many(errors)?;
        db.wait_healthy(self.env.cluster().nodes(), healthy_within)?;
        Ok(json!({ "mounted": done }))
    }

    /// `targets` among the nodes with a mount (`mounted`, in cluster
    /// order): a minority or majority of those, the primaries among them.
    fn choose(&self, targets: &Targets, mounted: &[String]) -> Result<Vec<String>, NemesisError> {
        let n = mounted.len();
        let chosen: Vec<String> = match targets {
            Targets::All => mounted.to_vec(),
            Targets::One => mounted
                .choose(&mut *self.env.rng())
                .cloned()
                .into_iter()
                .collect(),
            Targets::Minority | Targets::Majority => {
                let k = match targets {
                    Targets::Minority => (grudge::majority(n) - 1).max(1),
                    _ => grudge::majority(n),
                };
                let mut shuffled = mounted.to_vec();
                shuffled.shuffle(&mut *self.env.rng());
                shuffled.truncate(k.min(n));
                shuffled
            }
            Targets::Primaries => {
                let p = self.env.primaries()?;
                mounted.iter().filter(|m| p.contains(m)).cloned().collect()
            }
            Targets::Nodes(names) => {
                for name in names {
                    self.env.node(name)?;
                }
                mounted
                    .iter()
                    .filter(|m| names.contains(m))
                    .cloned()
                    .collect()
            }
        };
        Ok(mounted
            .iter()
            .filter(|m| chosen.contains(m))
            .cloned()
            .collect())
    }

    fn lose(&self, targets: &Targets) -> Result<Value, NemesisError> {
        let db = self.db()?;
        let mounted: Vec<String> = self
            .env
            .cluster()
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .filter(|n| self.env.active().is_ok_and(|a| a.lazyfs.contains(n)))
            .collect();
        if mounted.is_empty() {
            return Err(NemesisError::Refused {
                fault: FAULT.into(),
                reason: "no node has its data folder on the lazyfs filesystem (it is mounted \
                         before the db starts in a run with --nemesis lose-unfsynced)"
                    .into(),
            });
        }
        let names = self.choose(targets, &mounted)?;
        if names.is_empty() {
            return Err(NemesisError::Refused {
                fault: FAULT.into(),
                reason: format!(
                    "targets {} name no node with the lazyfs filesystem ({})",
                    targets.to_value(),
                    mounted.join(", ")
                ),
            });
        }
        self.env.update(|a| {
            a.lost.extend(names.iter().cloned());
            a.killed.extend(names.iter().cloned());
        })?;
        let nodes = names
            .iter()
            .map(|n| self.env.node(n))
            .collect::<Result<Vec<_>, _>>()?;
        let results = crate::control::parallel(&nodes, |node| {
            let bin = self.helper_on(node)?;
            // Killed first: nothing is written between the loss and the
            // crash it stands for.
            db.kill(node)?;
            let f = program_files(node);
            let out = node.run_timeout(
                &format!(
                    "{} lazyfs --control {} --send lose-unfsynced",
                    shell_quote(&bin),
                    shell_quote(&f.control)
                ),
                Duration::from_secs(60),
            )?;
            let answer: Value = serde_json::from_str(out.trim()).map_err(|e| {
                NemesisError::Invalid(format!(
                    "{}: lazyfs answered {:?}: {e}",
                    node.name(),
                    out.trim()
                ))
            })?;
            if let Some(err) = answer.get("error") {
                return Err(NemesisError::Invalid(format!(
                    "{}: lazyfs: {err}",
                    node.name()
                )));
            }
            Ok(json!({
                "node": node.name(),
                "files": answer["files"],
                "bytes": answer["bytes"],
            }))
        });
        let (lost, errors) = split_results(results);
        NemesisError::from_many(errors)?;
        let bytes: u64 = lost.iter().filter_map(|l| l["bytes"].as_u64()).sum();
        let files: u64 = lost.iter().filter_map(|l| l["files"].as_u64()).sum();
        Ok(json!({ "killed": names, "lost": lost, "files": files, "bytes": bytes }))
    }

    fn restart_lost(&self) -> Result<Value, NemesisError> {
        let db = self.db()?;
        let names: Vec<String> = self.env.active()?.lost.into_iter().collect();
        let nodes = names
            .iter()
            .map(|n| self.env.node(n))
            .collect::<Result<Vec<_>, _>>()?;
        let results = crate::control::parallel(&nodes, |n| db.start(n));
        let (_, errors) = split_results(results);
        NemesisError::from_many(errors.into_iter().map(NemesisError::from).collect())?;
        self.env.update(|a| {
            for n in &names {
                a.lost.remove(n);
                a.killed.remove(n);
            }
        })?;
        Ok(json!({ "restarted": names }))
    }
}

impl super::Nemesis for LazyfsNemesis {
    fn name(&self) -> &'static str {
        "lazyfs"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(fault, Fault::LoseUnfsynced(_) | Fault::RestartLost)
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        match fault {
            Fault::LoseUnfsynced(t) => self.lose(t),
            Fault::RestartLost => self.restart_lost(),
            other => Err(NemesisError::Invalid(format!(
                "lazyfs nemesis cannot {}",
                other.f()
            ))),
        }
    }

    /// Removes every lazyfs mount (see the module doc), the db stopped
    /// first where one is given and recorded as killed for the process
    /// nemesis, which heals after this one, to start again.
    fn heal(&self) -> Result<Value, NemesisError> {
        let db = self.env.db();
        let nodes: Vec<&Node> = self.env.cluster().nodes().iter().collect();
        let results = crate::control::parallel(&nodes, |n| {
            let f = program_files(n);
            let found = n.run_timeout(
                &format!(
                    "{}; p=$(cat {} 2>/dev/null || true); if [ -n \"$p\" ] && [ -e /proc/$p ]; then echo \"PID $p\"; fi",
                    list_mounts(),
                    shell_quote(&f.pid)
                ),
                Duration::from_secs(30),
            )?;
            if found.trim().is_empty() {
                return Ok::<_, NemesisError>((n.name().to_string(), Vec::new()));
            }
            if let Some(db) = db {
                self.env.update(|a| {
                    a.killed.insert(n.name().to_string());
                })?;
                db.stop(n)?;
            }
            let out = n.run_timeout(&stop_program(&f), Duration::from_secs(60))?;
            let unmounted: Vec<String> = out
                .lines()
                .filter_map(|l| l.strip_prefix("UNMOUNTED "))
                .map(String::from)
                .collect();
            Ok((n.name().to_string(), unmounted))
        });
        let (done, errors) = split_results(results);
        NemesisError::from_many(errors)?;
        self.env.update(|a| {
            a.lazyfs.clear();
            a.lost.clear();
        })?;
        let unmounted: serde_json::Map<String, Value> = done
            .into_iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(n, m)| (n, json!(m)))
            .collect();
        Ok(json!({ "unmounted": unmounted }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .args(["-c", script])
            .output()
            .expect("sh")
    }

    #[test]
    fn the_mount_listing_reads_only_mounts_of_lazyfs_from_mountinfo() {
        let dir = tempfile::tempdir().expect("temp dir");
        let info = dir.path().join("mountinfo");
        std::fs::write(
            &info,
            "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
             40 22 0:45 / /w/n1/etcd/data rw,nosuid,nodev,relatime shared:9 - fuse faultline-lazyfs rw,user_id=0\n\
             41 22 0:46 / /mnt/other rw shared:10 - fuse.sshfs faultline-lazyfs-not rw\n",
        )
        .expect("write");
        let script = list_mounts().replace("/proc/self/mountinfo", &info.to_string_lossy());
        let out = sh(&script);
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/w/n1/etcd/data\n");
    }
}
