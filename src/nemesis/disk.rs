//! Faults on the database's durable data ([`Db::data_folder`]), Jepsen's
//! file-corruption and rollback:
//!
//! - `corrupt-file` picks, on each target node, one non-empty file of the
//!   data folder (with the nemesis's seeded RNG) and, while the database
//!   runs, either XORs a few runs of its bytes with random non-zero masks
//!   (`bitflip`) or cuts off its tail (`truncate`); the history records
//!   the file, the offsets, the lengths and masks, or the sizes before and
//!   after. `restart-corrupted` then kills (SIGKILL) and restarts the
//!   database on those nodes, so it must read the damage. Corruption
//!   cannot be undone: heal only makes sure the database is started again
//!   (the process nemesis starts it wherever it does not run), and the
//!   record says so (`"undoable": false`).
//! - `snapshot-data` copies the data folder (the database paused for the
//!   copy) to `<work>/nemesis/snapshot`; `rollback` kills the database on
//!   the nodes with a snapshot, puts the snapshot in place of the data
//!   folder (a copy renamed into place, so an interrupted rollback leaves
//!   the old or the new folder, and heal finishes or undoes the swap) and
//!   starts it again. Heal removes snapshots and restarts the database on
//!   whatever data it has; it does not roll back.

use std::sync::Arc;

use rand::Rng;
use serde_json::{json, Value};

use super::{Corruption, Env, Fault, NemesisError, Targets};
use crate::cluster::{split_results, Node};
use crate::control::shell_quote;
use crate::db::Db;

/// File corruption, snapshots and rollbacks of the database's data.
#[derive(Debug)]
pub struct DiskNemesis {
    env: Arc<Env>,
}

/// Where a node keeps the snapshot of its data folder.
fn snapshot_dir(work_dir: &str) -> String {
    format!("{work_dir}/nemesis/snapshot")
}

/// Shell text undoing or finishing a rollback's swap of `data` that a
/// killed controller left halfway: the old folder comes back when the new
/// one is missing; the spare copies go.
fn repair_swap(data: &str) -> String {
    format!(
        "D={d}; if [ ! -e \"$D\" ] && [ -e \"$D.faultline-old\" ]; then mv \"$D.faultline-old\" \"$D\"; echo repaired; fi; \
         rm -rf \"$D.faultline-new\" \"$D.faultline-old\"; ",
        d = shell_quote(data)
    )
}

/// Shell text putting the snapshot in `snap` in place of `data`: copied
/// next to it first, then renamed into place.
fn swap_in(data: &str, snap: &str) -> String {
    format!(
        "D={d}; S={s}; [ -d \"$S\" ] || {{ echo \"no snapshot in $S\" >&2; exit 1; }}; \
         rm -rf \"$D.faultline-new\" \"$D.faultline-old\" && cp -a \"$S\" \"$D.faultline-new\" && \
         {{ [ ! -e \"$D\" ] || mv \"$D\" \"$D.faultline-old\"; }} && mv \"$D.faultline-new\" \"$D\" && \
         rm -rf \"$D.faultline-old\" \"$S\" && du -sb \"$D\" | cut -f1",
        d = shell_quote(data),
        s = shell_quote(snap)
    )
}

/// Shell text XORing `len` bytes of `file` at `offset` with `mask`, with
/// dd and od only (every node has them).
fn bitflip(file: &str, offset: u64, len: u64, mask: u8) -> String {
    format!(
        "F={f}; b=$(dd if=\"$F\" bs=1 skip={offset} count={len} 2>/dev/null | od -An -v -tu1); o=''; \
         for x in $b; do o=\"$o$(printf '\\\\%03o' $((x ^ {mask})))\"; done; \
         printf \"$o\" | dd of=\"$F\" bs=1 seek={offset} conv=notrunc 2>/dev/null; ",
        f = shell_quote(file)
    )
}

/// Shell text cutting `drop` bytes off the end of `file`, printing its
/// size before and after.
fn truncate(file: &str, drop: u64) -> String {
    format!(
        "F={f}; a=$(stat -c %s \"$F\"); truncate -s -{drop} \"$F\"; echo \"$a $(stat -c %s \"$F\")\"",
        f = shell_quote(file)
    )
}

impl DiskNemesis {
    /// Disk faults on `env`'s database.
    pub fn new(env: Arc<Env>) -> DiskNemesis {
        DiskNemesis { env }
    }

    fn db(&self, fault: &Fault) -> Result<&Arc<dyn Db>, NemesisError> {
        self.env.db().ok_or_else(|| NemesisError::Refused {
            fault: fault.f().into(),
            reason: "no database was given to the nemesis".into(),
        })
    }

    /// The nodes of `names` where the database keeps data, with its
    /// folder; refused when there is none.
    fn holders(
        &self,
        fault: &Fault,
        db: &dyn Db,
        names: &[String],
    ) -> Result<Vec<(&Node, String)>, NemesisError> {
        let mut out = Vec::new();
        for n in names {
            let node = self.env.node(n)?;
            if let Some(d) = db.data_folder(node) {
                out.push((node, d));
            }
        }
        if out.is_empty() {
            return Err(NemesisError::Refused {
                fault: fault.f().into(),
                reason: format!(
                    "{} keeps no data folder faultline knows on {}",
                    db.name(),
                    names.join(", ")
                ),
            });
        }
        Ok(out)
    }

    /// Every node where the db keeps data (a start, as the process
    /// nemesis knows, targets among those).
    fn resolve_holders(
        &self,
        fault: &Fault,
        db: &dyn Db,
        targets: &Targets,
    ) -> Result<Vec<(&Node, String)>, NemesisError> {
        let names = self.env.resolve(targets)?;
        self.holders(fault, db, &names)
    }

    fn corrupt(
        &self,
        fault: &Fault,
        corruption: Corruption,
        t: &Targets,
    ) -> Result<Value, NemesisError> {
        let db = self.db(fault)?;
        let holders = self.resolve_holders(fault, db.as_ref(), t)?;
        let names: Vec<String> = holders.iter().map(|(n, _)| n.name().to_string()).collect();
        self.env
            .update(|a| a.corrupted.extend(names.iter().cloned()))?;
        let mut done = Vec::new();
        let mut errors = Vec::new();
        // One node at a time: the RNG's draws stay in node order.
        for (node, data) in holders {
            let listing = node.run(&format!(
                "find {} -type f -size +0c -printf '%s %p\\n' 2>/dev/null || true",
                shell_quote(&data)
            ))?;
            let mut files: Vec<(u64, String)> = listing
                .lines()
                .filter_map(|l| {
                    let (size, path) = l.split_once(' ')?;
                    Some((size.parse().ok()?, path.to_string()))
                })
                .collect();
            files.sort_by(|a, b| a.1.cmp(&b.1));
            if files.is_empty() {
                errors.push(NemesisError::Invalid(format!(
                    "{}: no non-empty file in {data} to corrupt",
                    node.name()
                )));
                continue;
            }
            let (size, file) = {
                let mut rng = self.env.rng();
                files[rng.random_range(0..files.len())].clone()
            };
            match corruption {
                Corruption::Bitflip {
                    chunks,
                    chunk_bytes,
                } => {
                    let len = chunk_bytes.min(size);
                    let mut runs = Vec::new();
                    let mut script = String::new();
                    {
                        let mut rng = self.env.rng();
                        for _ in 0..chunks {
                            let offset = rng.random_range(0..=size - len);
                            let mask: u8 = rng.random_range(1..=255);
                            script.push_str(&bitflip(&file, offset, len, mask));
                            runs.push(json!({ "offset": offset, "bytes": len, "mask": mask }));
                        }
                    }
                    node.run(&script)?;
                    done.push(json!({
                        "node": node.name(), "file": file, "size": size,
                        "mode": "bitflip", "flipped": runs,
                    }));
                }
                Corruption::Truncate { drop_bytes } => {
                    let out = node.run(&truncate(&file, drop_bytes))?;
                    let mut sizes = out.split_whitespace().filter_map(|s| s.parse::<u64>().ok());
                    let (before, after) = (sizes.next(), sizes.next());
                    done.push(json!({
                        "node": node.name(), "file": file, "mode": "truncate",
                        "size-before": before, "size-after": after,
                        "dropped": before.zip(after).map(|(b, a)| b.saturating_sub(a)),
                    }));
                }
            }
        }
        if done.is_empty() {
            return NemesisError::from_many(errors).map(|()| Value::Null);
        }
        for e in errors {
            tracing::warn!("corrupt-file: {e}");
        }
        Ok(json!({ "corrupted": done, "undoable": false }))
    }

    /// Kills and restarts the db on `names`, recording them as killed
    /// meanwhile so a heal after a crash here starts them.
    fn restart(&self, db: &dyn Db, names: &[String]) -> Result<(), NemesisError> {
        self.env
            .update(|a| a.killed.extend(names.iter().cloned()))?;
        let nodes = names
            .iter()
            .map(|n| self.env.node(n))
            .collect::<Result<Vec<_>, _>>()?;
        let results = crate::control::parallel(&nodes, |n| {
            db.kill(n)?;
            db.start(n)
        });
        let (_, errors) = split_results(results);
        NemesisError::from_many(errors.into_iter().map(NemesisError::from).collect())?;
        self.env.update(|a| {
            for n in names {
                a.killed.remove(n);
            }
        })
    }

    fn restart_corrupted(&self, fault: &Fault) -> Result<Value, NemesisError> {
        let db = self.db(fault)?;
        let names: Vec<String> = self.env.active()?.corrupted.into_iter().collect();
        self.restart(db.as_ref(), &names)?;
        self.env.update(|a| a.corrupted.clear())?;
        Ok(json!({ "restarted": names }))
    }

    fn snapshot(&self, fault: &Fault, t: &Targets) -> Result<Value, NemesisError> {
        let db = self.db(fault)?;
        let holders = self.resolve_holders(fault, db.as_ref(), t)?;
        let names: Vec<String> = holders.iter().map(|(n, _)| n.name().to_string()).collect();
        self.env
            .update(|a| a.snapshots.extend(names.iter().cloned()))?;
        let results = crate::control::parallel(&holders, |(node, data)| {
            // Paused, the db writes nothing while its folder is copied; one
            // that does not run (killed) has nothing to pause.
            let paused = db.pause(node).is_ok();
            let copied = node.run(&format!(
                "S={s}; rm -rf \"$S\" && mkdir -p \"$(dirname \"$S\")\" && cp -a {d} \"$S\" && du -sb \"$S\" | cut -f1",
                s = shell_quote(&snapshot_dir(node.work_dir())),
                d = shell_quote(data),
            ));
            if paused {
                db.resume(node)?;
            }
            let bytes: u64 = copied?.trim().parse().unwrap_or(0);
            Ok::<_, NemesisError>((node.name().to_string(), bytes))
        });
        let (sizes, errors) = split_results(results);
        NemesisError::from_many(errors)?;
        let bytes: serde_json::Map<String, Value> =
            sizes.into_iter().map(|(n, b)| (n, json!(b))).collect();
        Ok(json!({ "snapshot": names, "bytes": bytes }))
    }

    fn rollback(&self, fault: &Fault) -> Result<Value, NemesisError> {
        let db = self.db(fault)?;
        let names: Vec<String> = self.env.active()?.snapshots.into_iter().collect();
        let holders = if names.is_empty() {
            Vec::new()
        } else {
            self.holders(fault, db.as_ref(), &names)?
        };
        let names: Vec<String> = holders.iter().map(|(n, _)| n.name().to_string()).collect();
        self.env
            .update(|a| a.killed.extend(names.iter().cloned()))?;
        let results = crate::control::parallel(&holders, |(node, data)| {
            db.kill(node)?;
            let out = node.run(&swap_in(data, &snapshot_dir(node.work_dir())))?;
            db.start(node)?;
            Ok::<_, NemesisError>((
                node.name().to_string(),
                out.trim().parse::<u64>().unwrap_or(0),
            ))
        });
        let (done, errors) = split_results(results);
        NemesisError::from_many(errors)?;
        self.env.update(|a| {
            for n in &names {
                a.killed.remove(n);
                a.snapshots.remove(n);
            }
        })?;
        let bytes: serde_json::Map<String, Value> =
            done.into_iter().map(|(n, b)| (n, json!(b))).collect();
        Ok(json!({ "rolled-back": names, "bytes": bytes }))
    }
}

impl super::Nemesis for DiskNemesis {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(
            fault,
            Fault::CorruptFile { .. }
                | Fault::RestartCorrupted
                | Fault::SnapshotData(_)
                | Fault::Rollback
        )
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        match fault {
            Fault::CorruptFile {
                targets,
                corruption,
            } => self.corrupt(fault, *corruption, targets),
            Fault::RestartCorrupted => self.restart_corrupted(fault),
            Fault::SnapshotData(t) => self.snapshot(fault, t),
            Fault::Rollback => self.rollback(fault),
            other => Err(NemesisError::Invalid(format!(
                "disk nemesis cannot {}",
                other.f()
            ))),
        }
    }

    /// Finishes or undoes a rollback's swap left halfway, removes every
    /// snapshot, and forgets the corruption (which cannot be undone); the
    /// process nemesis's heal then starts the db wherever it does not run.
    fn heal(&self) -> Result<Value, NemesisError> {
        let db = self.env.db();
        let nodes: Vec<&Node> = self.env.cluster().nodes().iter().collect();
        let results = crate::control::parallel(&nodes, |n| {
            let repair = db
                .and_then(|d| d.data_folder(n))
                .map(|d| repair_swap(&d))
                .unwrap_or_default();
            let script = format!(
                "{repair}S={s}; if [ -e \"$S\" ]; then rm -rf \"$S\"; echo removed; fi",
                s = shell_quote(&snapshot_dir(n.work_dir()))
            );
            n.run(&script).map(|out| (n.name().to_string(), out))
        });
        let (outs, errors) = split_results(results);
        NemesisError::from_many(errors.into_iter().map(NemesisError::from).collect())?;
        let with = |word: &str| -> Vec<String> {
            outs.iter()
                .filter(|(_, o)| o.contains(word))
                .map(|(n, _)| n.clone())
                .collect()
        };
        let corrupted: Vec<String> = self
            .env
            .active()
            .unwrap_or_default()
            .corrupted
            .into_iter()
            .collect();
        self.env.update(|a| {
            a.corrupted.clear();
            a.snapshots.clear();
        })?;
        Ok(json!({
            "snapshots-removed": with("removed"),
            "rollbacks-repaired": with("repaired"),
            "corrupted-not-undone": corrupted,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> String {
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn bitflip_changes_exactly_the_run_it_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = dir.path().join("data");
        let original: Vec<u8> = (0..=255u8).collect();
        std::fs::write(&f, &original).expect("write");
        sh(&bitflip(&f.to_string_lossy(), 10, 5, 0x81));
        let got = std::fs::read(&f).expect("read");
        assert_eq!(got.len(), original.len());
        for (i, (a, b)) in original.iter().zip(&got).enumerate() {
            if (10..15).contains(&i) {
                assert_eq!(*b, a ^ 0x81, "byte {i}");
            } else {
                assert_eq!(a, b, "byte {i}");
            }
        }
    }

    #[test]
    fn truncate_cuts_the_tail_and_says_the_sizes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = dir.path().join("log");
        std::fs::write(&f, [7u8; 100]).expect("write");
        assert_eq!(sh(&truncate(&f.to_string_lossy(), 30)).trim(), "100 70");
        assert_eq!(std::fs::read(&f).expect("read").len(), 70);
        // More than the file holds: empty, not an error.
        assert_eq!(sh(&truncate(&f.to_string_lossy(), 500)).trim(), "70 0");
    }

    #[test]
    fn a_swap_puts_the_snapshot_in_place_and_a_half_swap_is_repaired() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let snap = dir.path().join("snap");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::create_dir_all(&snap).expect("mkdir");
        std::fs::write(data.join("k"), "after").expect("write");
        std::fs::write(snap.join("k"), "before").expect("write");
        let (d, s) = (data.to_string_lossy(), snap.to_string_lossy());
        sh(&swap_in(&d, &s));
        assert_eq!(
            std::fs::read_to_string(data.join("k")).expect("read"),
            "before"
        );
        assert!(!snap.exists(), "the snapshot is used up");
        // A controller killed between the two renames: heal brings the old
        // folder back.
        std::fs::rename(&data, dir.path().join("data.faultline-old")).expect("rename");
        assert_eq!(sh(&repair_swap(&d)).trim(), "repaired");
        assert_eq!(
            std::fs::read_to_string(data.join("k")).expect("read"),
            "before"
        );
        assert_eq!(sh(&repair_swap(&d)).trim(), "");
    }
}
