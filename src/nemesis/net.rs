//! Network faults with iptables, inside each node: partitions
//! ([`Partitioner`]) and packet loss and delay ([`PacketNemesis`]).
//!
//! Every rule faultline adds lives in a chain of its own, jumped to from the
//! built-in chain: [`PARTITION_CHAIN`] and [`LOSS_CHAIN`] from INPUT,
//! [`DELAY_CHAIN`] from OUTPUT. Healing removes those chains and nothing
//! else, so rules the node had before are untouched, and it works without
//! knowing what was added. Rules name peers' addresses only: the
//! controller's address (the local cluster's bridge) is never dropped, or
//! the controller would lose its own nodes.
//!
//! Delay uses netem where the node's kernel has it. Otherwise packets to
//! peers go to an NFQUEUE (with `--queue-bypass`, so traffic flows if no
//! program reads the queue) and `faultline nfq-delay`, run on the node,
//! re-injects each after the delay.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::{json, Value};

use super::grudge::{self, Grudge};
use super::{Env, Fault, NemesisError, PacketBehavior, PartitionSpec, Targets};
use crate::cluster::{split_results, Node};
use crate::control::shell_quote;

/// The chain (jumped to from INPUT) holding partition rules.
pub const PARTITION_CHAIN: &str = "FAULTLINE";
/// The chain (jumped to from INPUT) holding packet-loss rules.
pub const LOSS_CHAIN: &str = "FAULTLINE-PKT";
/// The chain (jumped to from OUTPUT) sending packets to the delay queue.
pub const DELAY_CHAIN: &str = "FAULTLINE-DLY";
/// The NFQUEUE number the delay program reads.
pub const DELAY_QUEUE: u16 = 0;

/// Shell text that makes `chain` exist, empty, and jumped to first from
/// `parent`.
fn ensure_chain(chain: &str, parent: &str) -> String {
    format!(
        "iptables -w -N {chain} 2>/dev/null || true; \
         iptables -w -C {parent} -j {chain} 2>/dev/null || iptables -w -I {parent} 1 -j {chain}; \
         iptables -w -F {chain}; "
    )
}

/// Shell text that removes `chain` and every jump to it from `parent`, then
/// fails if anything of it is left. Does nothing on a node without iptables.
fn remove_chain(chain: &str, parent: &str) -> String {
    format!(
        "if command -v iptables >/dev/null 2>&1; then \
           while iptables -w -D {parent} -j {chain} 2>/dev/null; do :; done; \
           iptables -w -F {chain} 2>/dev/null; iptables -w -X {chain} 2>/dev/null; \
           if iptables -w -S 2>/dev/null | grep -qE -- '(-N|-j) {chain}( |$)'; then \
             echo 'iptables chain {chain} still present after removal' >&2; exit 1; fi; \
         fi; "
    )
}

/// The node's address for use in rules, refusing the controller's.
fn peer_addr(env: &Env, name: &str) -> Result<String, NemesisError> {
    let node = env.node(name)?;
    let host = node.host().to_string();
    if let (Some(ctl), Ok(ip)) = (env.cluster().controller_addr(), host.parse::<IpAddr>()) {
        if ip == ctl {
            return Err(NemesisError::Refused {
                fault: "network fault".into(),
                reason: format!(
                    "node {name}'s address {host} is the controller's; dropping it would cut \
                     the controller off"
                ),
            });
        }
    }
    validate_host(&host)?;
    Ok(host)
}

fn validate_host(host: &str) -> Result<(), NemesisError> {
    crate::cluster::validate_host(host).map_err(NemesisError::Invalid)
}

fn need_iptables(nodes: &[&Node], fault: &str) -> Result<(), NemesisError> {
    let missing: Vec<&str> = nodes
        .iter()
        .filter(|n| !n.capabilities().has_iptables)
        .map(|n| n.name())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(NemesisError::Refused {
            fault: fault.into(),
            reason: format!("no iptables on {}", missing.join(", ")),
        })
    }
}

/// Runs `script(node)` on every listed node at once; all errors, or the
/// names of the nodes done.
fn on_nodes(
    env: &Env,
    names: &[String],
    script: impl Fn(&Node) -> Result<String, NemesisError> + Sync,
) -> Result<Vec<String>, NemesisError> {
    let nodes: Vec<&Node> = names
        .iter()
        .map(|n| env.node(n))
        .collect::<Result<_, _>>()?;
    let results = crate::control::parallel(&nodes, |n| {
        let s = script(n)?;
        if !s.trim().is_empty() {
            n.run(&s)?;
        }
        Ok::<_, NemesisError>(n.name().to_string())
    });
    let (done, errors) = split_results(results);
    NemesisError::from_many(errors)?;
    Ok(done)
}

fn all_names(env: &Env) -> Vec<String> {
    env.cluster()
        .nodes()
        .iter()
        .map(|n| n.name().to_string())
        .collect()
}

/// A partition's sides, by node name.
pub type Components = Vec<Vec<String>>;

/// Network partitions: each node drops packets from the peers its grudge
/// names, with rules in [`PARTITION_CHAIN`].
#[derive(Debug)]
pub struct Partitioner {
    env: Arc<Env>,
}

impl Partitioner {
    /// A partitioner over `env`'s cluster.
    pub fn new(env: Arc<Env>) -> Partitioner {
        Partitioner { env }
    }

    /// The grudge for `spec`, and its components when it has them.
    pub fn grudge(
        &self,
        spec: &PartitionSpec,
    ) -> Result<(Grudge, Option<Components>), NemesisError> {
        let nodes = all_names(&self.env);
        let comps = match spec {
            PartitionSpec::One => {
                let one = self.env.resolve(&Targets::One)?;
                Some(grudge::split_one(&one[0], &nodes))
            }
            PartitionSpec::Primaries => {
                let leaders = self.env.primaries()?;
                let rest = nodes
                    .iter()
                    .filter(|n| !leaders.contains(n))
                    .cloned()
                    .collect();
                Some(vec![leaders, rest])
            }
            PartitionSpec::Halves => Some(grudge::bisect(&nodes)),
            PartitionSpec::MinorityThird => {
                let mut shuffled = nodes.clone();
                shuffled.shuffle(&mut *self.env.rng());
                let mut sides = grudge::third(&shuffled);
                for side in &mut sides {
                    side.sort_by_key(|n| nodes.iter().position(|m| m == n));
                }
                Some(sides)
            }
            PartitionSpec::OneWay(inner) => {
                let (_, comps) = self.grudge(inner)?;
                let comps = comps.ok_or_else(|| {
                    NemesisError::Invalid(format!(
                        "a one-way partition needs a shape with sides, not {}",
                        inner.to_value()
                    ))
                })?;
                return Ok((grudge::one_way(&comps), Some(comps)));
            }
            PartitionSpec::RandomHalves => {
                let mut shuffled = nodes.clone();
                shuffled.shuffle(&mut *self.env.rng());
                let mut halves = grudge::bisect(&shuffled);
                for h in &mut halves {
                    h.sort_by_key(|n| nodes.iter().position(|m| m == n));
                }
                Some(halves)
            }
            PartitionSpec::Components(c) => {
                for name in c.iter().flatten() {
                    self.env.node(name)?;
                }
                Some(c.clone())
            }
            PartitionSpec::MajoritiesRing => {
                let g = grudge::majorities_ring(&nodes, &mut self.env.rng());
                return Ok((g, None));
            }
            PartitionSpec::Bridge => {
                let mut shuffled = nodes.clone();
                shuffled.shuffle(&mut *self.env.rng());
                return Ok((grudge::bridge(&shuffled), None));
            }
        };
        let comps = comps.unwrap_or_default();
        Ok((grudge::complete(&comps), Some(comps)))
    }

    /// Installs `g` (replacing any partition in force).
    fn apply(&self, g: &Grudge) -> Result<(), NemesisError> {
        let nodes: Vec<&Node> = self.env.cluster().nodes().iter().collect();
        need_iptables(&nodes, "start-partition")?;
        // Addresses first: a bad one fails before anything changes.
        let mut rules: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (node, peers) in g {
            let addrs = peers
                .iter()
                .map(|p| peer_addr(&self.env, p))
                .collect::<Result<Vec<_>, _>>()?;
            rules.insert(node.clone(), addrs);
        }
        self.env.update(|a| a.partition = g.clone())?;
        on_nodes(&self.env, &all_names(&self.env), |n| {
            let mut s = ensure_chain(PARTITION_CHAIN, "INPUT");
            for addr in rules.get(n.name()).into_iter().flatten() {
                s.push_str(&format!(
                    "iptables -w -A {PARTITION_CHAIN} -s {} -j DROP; ",
                    shell_quote(addr)
                ));
            }
            Ok(s)
        })?;
        Ok(())
    }
}

impl super::Nemesis for Partitioner {
    fn name(&self) -> &'static str {
        "partition"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(fault, Fault::StartPartition(_) | Fault::StopPartition)
    }

    /// Clears partition rules an earlier run may have left.
    fn setup(&self) -> Result<(), NemesisError> {
        self.heal().map(|_| ())
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        match fault {
            Fault::StartPartition(spec) => {
                let (g, comps) = self.grudge(spec)?;
                self.apply(&g)?;
                let mut v = json!({ "partition": spec.to_value(), "grudge": g });
                if let Some(c) = comps {
                    v["components"] = json!(c);
                }
                Ok(v)
            }
            Fault::StopPartition => self.heal(),
            other => Err(NemesisError::Invalid(format!(
                "partition nemesis cannot {}",
                other.f()
            ))),
        }
    }

    fn heal(&self) -> Result<Value, NemesisError> {
        let healed = on_nodes(&self.env, &all_names(&self.env), |_| {
            Ok(remove_chain(PARTITION_CHAIN, "INPUT"))
        })?;
        self.env.update(|a| a.partition.clear())?;
        Ok(json!({ "healed": healed }))
    }
}

/// Packet faults on traffic between nodes: loss (iptables `statistic`),
/// and delay, duplication, reordering, corruption and rate limits through
/// the NFQUEUE packet program (`faultline nfq-packet`; delay alone uses
/// netem where the kernel has it), whose counters stop-packet reads back.
#[derive(Debug)]
pub struct PacketNemesis {
    env: Arc<Env>,
    helper: Option<PathBuf>,
}

/// Where the packet program keeps its pid, log and counters on a node.
struct ProgramFiles {
    dir: String,
    pid: String,
    log: String,
    stats: String,
}

fn program_files(node: &Node) -> ProgramFiles {
    let dir = format!("{}/nemesis", node.work_dir());
    ProgramFiles {
        pid: format!("{dir}/nfq-packet.pid"),
        log: format!("{dir}/nfq-packet.log"),
        stats: format!("{dir}/nfq-packet.stats"),
        dir,
    }
}

/// Shell text that stops the packet program on a node, if it runs (checked
/// by name, so a recycled pid is never hit): SIGTERM, so it lets held
/// packets go and writes its counters, then SIGKILL after a second. Also
/// stops one started under the program's old name (`nfq-delay.pid`).
fn stop_program(node: &Node) -> String {
    let f = program_files(node);
    let old = format!("{}/nfq-delay.pid", f.dir);
    format!(
        "for f in {pid} {old}; do p=$(cat \"$f\" 2>/dev/null || true); \
         if [ -n \"$p\" ] && grep -q nfq- /proc/$p/cmdline 2>/dev/null; then \
           kill -TERM \"$p\"; i=0; while [ -e /proc/$p ] && [ $i -lt 50 ]; do sleep 0.02; i=$((i+1)); done; \
           if [ -e /proc/$p ]; then kill -KILL \"$p\"; i=0; \
             while [ -e /proc/$p ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done; fi; \
         fi; rm -f \"$f\"; done; ",
        pid = shell_quote(&f.pid),
        old = shell_quote(&old),
    )
}

/// The marker before the counters a stop prints.
const STATS_MARK: &str = "FAULTLINE-NFQ-STATS ";

/// What the packet program counted on a node, as a stop-packet's
/// completion carries it: the counts, the seconds they cover, and the
/// rates per second.
fn measured(stats: &super::nfq_stats::Stats) -> Value {
    let mut v = serde_json::to_value(stats).unwrap_or(Value::Null);
    v["per_second"] = stats.per_second();
    v
}

impl PacketNemesis {
    /// Packet faults over `env`'s cluster. `helper` is the faultline binary
    /// to run the NFQUEUE packet program with (default: this process's
    /// executable).
    pub fn new(env: Arc<Env>) -> PacketNemesis {
        PacketNemesis {
            env,
            helper: std::env::current_exe().ok(),
        }
    }

    /// Uses `path` as the faultline binary for the packet program.
    pub fn with_helper(mut self, path: PathBuf) -> PacketNemesis {
        self.helper = Some(path);
        self
    }

    /// The binary to run on `node` for the packet program: the local one
    /// when the node can see it (local cluster), else uploaded to the work
    /// dir.
    fn helper_on(&self, node: &Node) -> Result<String, NemesisError> {
        super::env::faultline_on(
            node,
            self.helper.as_deref(),
            "nfq-packet",
            "start-packet",
            "the NFQUEUE packet program",
        )
    }

    fn start_loss(&self, targets: &[String], loss: f64) -> Result<(), NemesisError> {
        let everyone = all_names(&self.env);
        let mut peers_of = std::collections::BTreeMap::new();
        for t in targets {
            let addrs = everyone
                .iter()
                .filter(|p| *p != t)
                .map(|p| peer_addr(&self.env, p))
                .collect::<Result<Vec<_>, _>>()?;
            peers_of.insert(t.clone(), addrs);
        }
        on_nodes(&self.env, targets, |n| {
            let mut s = ensure_chain(LOSS_CHAIN, "INPUT");
            for addr in &peers_of[n.name()] {
                s.push_str(&format!(
                    "iptables -w -A {LOSS_CHAIN} -s {} -m statistic --mode random \
                     --probability {loss} -j DROP; ",
                    shell_quote(addr)
                ));
            }
            Ok(s)
        })?;
        Ok(())
    }

    /// Delays (netem, where the kernel has it and delay is all there is to
    /// do) or shapes through the packet program what `targets` send their
    /// peers; answers, per node, how.
    fn start_shaping(
        &self,
        targets: &[String],
        b: &PacketBehavior,
    ) -> Result<Vec<Value>, NemesisError> {
        let everyone = all_names(&self.env);
        let how = crate::control::parallel(targets, |t| {
            let node = self.env.node(t)?;
            let peers = everyone
                .iter()
                .filter(|p| *p != t)
                .map(|p| peer_addr(&self.env, p))
                .collect::<Result<Vec<_>, _>>()?;
            if let (Some(delay_ms), false, true) =
                (b.delay_ms, b.needs_program(), node.capabilities().has_netem)
            {
                let first = peers.first().cloned().unwrap_or_default();
                // The interface the peers are reached through.
                node.run(&format!(
                    "dev=$(ip -o route get {} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'); \
                     [ -n \"$dev\" ] || {{ echo 'no route to peers' >&2; exit 1; }}; \
                     tc qdisc replace dev \"$dev\" root netem delay {delay_ms}ms",
                    shell_quote(&first)
                ))?;
                return Ok(json!({"node": t, "via": "netem"}));
            }
            if !cfg!(feature = "nfq") {
                return Err(NemesisError::Refused {
                    fault: "start-packet".into(),
                    reason: format!(
                        "{t} needs the NFQUEUE packet program (no netem, or duplicate, \
                         reorder, corrupt, rate-kbit) and this faultline was built without \
                         the `nfq` feature"
                    ),
                });
            }
            let bin = self.helper_on(node)?;
            let f = program_files(node);
            let mut args = String::new();
            if let Some(d) = b.delay_ms {
                args.push_str(&format!(" --delay-ms {d}"));
            }
            for (name, p) in [
                ("duplicate", b.duplicate),
                ("reorder", b.reorder),
                ("corrupt", b.corrupt),
            ] {
                if let Some(p) = p {
                    args.push_str(&format!(" --{name} {p}"));
                }
            }
            if let Some(r) = b.rate_kbit {
                args.push_str(&format!(" --rate-kbit {r}"));
            }
            // The program first, then the rules: with --queue-bypass a
            // queue nobody reads lets packets through untouched.
            let mut s = stop_program(node);
            s.push_str(&format!(
                "mkdir -p {dir}; rm -f {stats}; setsid sh -c 'echo $$ > \"$0\"; exec \"$@\"' {pid} {bin} nfq-packet \
                 --queue {DELAY_QUEUE}{args} --stats {stats} >> {log} 2>&1 < /dev/null & \
                 sleep 0.3; p=$(cat {pid} 2>/dev/null); \
                 [ -n \"$p\" ] && [ -e /proc/$p ] || {{ echo \"nfq-packet did not start: $(tail -n 5 {log})\" >&2; exit 1; }}; ",
                dir = shell_quote(&f.dir),
                pid = shell_quote(&f.pid),
                bin = shell_quote(&bin),
                log = shell_quote(&f.log),
                stats = shell_quote(&f.stats),
            ));
            s.push_str(&ensure_chain(DELAY_CHAIN, "OUTPUT"));
            for addr in &peers {
                // The program's own duplicates carry its mark: not queued
                // again.
                s.push_str(&format!(
                    "iptables -w -A {DELAY_CHAIN} -d {} -m mark ! --mark {:#x} -j NFQUEUE \
                     --queue-num {DELAY_QUEUE} --queue-bypass; ",
                    shell_quote(addr),
                    super::nfq_stats::DUP_MARK
                ));
            }
            node.run_timeout(&s, Duration::from_secs(30))?;
            Ok::<_, NemesisError>(json!({"node": t, "via": "nfqueue"}))
        });
        let (done, errors) = split_results(how);
        NemesisError::from_many(errors)?;
        Ok(done)
    }
}

impl super::Nemesis for PacketNemesis {
    fn name(&self) -> &'static str {
        "packet"
    }

    fn handles(&self, fault: &Fault) -> bool {
        matches!(fault, Fault::StartPacket { .. } | Fault::StopPacket)
    }

    /// Clears packet rules and programs an earlier run may have left.
    fn setup(&self) -> Result<(), NemesisError> {
        self.heal().map(|_| ())
    }

    fn invoke(&self, fault: &Fault) -> Result<Value, NemesisError> {
        match fault {
            Fault::StartPacket { targets, behavior } => {
                super::validate_packet(behavior).map_err(NemesisError::Invalid)?;
                let names = self.env.resolve(targets)?;
                let nodes: Vec<&Node> = names
                    .iter()
                    .map(|n| self.env.node(n))
                    .collect::<Result<_, _>>()?;
                need_iptables(&nodes, "start-packet")?;
                let shaping = behavior.delay_ms.is_some() || behavior.needs_program();
                self.env.update(|a| {
                    if behavior.loss.is_some() {
                        a.packet.extend(names.iter().cloned());
                    }
                    if shaping {
                        a.delayed.extend(names.iter().cloned());
                    }
                })?;
                // The request, and per node how it was done.
                let mut v = Fault::StartPacket {
                    targets: targets.clone(),
                    behavior: *behavior,
                }
                .value();
                v["nodes"] = json!(names);
                if let Some(v) = v.as_object_mut() {
                    v.remove("targets");
                }
                if let Some(p) = behavior.loss {
                    self.start_loss(&names, p)?;
                }
                if shaping {
                    let how = self.start_shaping(&names, behavior)?;
                    v["delay"] = json!(how);
                }
                Ok(v)
            }
            Fault::StopPacket => self.heal(),
            other => Err(NemesisError::Invalid(format!(
                "packet nemesis cannot {}",
                other.f()
            ))),
        }
    }

    /// Removes the rules, stops the packet program on every node and reads
    /// back what it counted: the answer's `measured` has, per node where it
    /// ran, its counts and their rates per second (also logged).
    fn heal(&self) -> Result<Value, NemesisError> {
        let names = all_names(&self.env);
        let nodes: Vec<&Node> = names
            .iter()
            .map(|n| self.env.node(n))
            .collect::<Result<_, _>>()?;
        let results = crate::control::parallel(&nodes, |n| {
            // Rules first, so new packets stop going to the queue before
            // the program that empties it stops.
            let mut s = remove_chain(LOSS_CHAIN, "INPUT");
            s.push_str(&remove_chain(DELAY_CHAIN, "OUTPUT"));
            s.push_str(&stop_program(n));
            let stats = shell_quote(&program_files(n).stats);
            s.push_str(&format!(
                "if [ -f {stats} ]; then printf '\\n{STATS_MARK}'; cat {stats}; echo; rm -f {stats}; fi; "
            ));
            if n.capabilities().has_netem {
                s.push_str(
                    "for d in $(ls /sys/class/net); do \
                       if tc qdisc show dev \"$d\" 2>/dev/null | grep -q netem; then \
                         tc qdisc del dev \"$d\" root; fi; done; ",
                );
            }
            let out = n.run(&s)?;
            let stats = out
                .lines()
                .find_map(|l| l.strip_prefix(STATS_MARK))
                .and_then(super::nfq_stats::read_stats);
            Ok::<_, NemesisError>((n.name().to_string(), stats))
        });
        let (done, errors) = split_results(results);
        NemesisError::from_many(errors)?;
        self.env.update(|a| {
            a.packet.clear();
            a.delayed.clear();
        })?;
        let healed: Vec<&String> = done.iter().map(|(n, _)| n).collect();
        let mut v = json!({ "healed": healed });
        let mut measured_by_node = serde_json::Map::new();
        for (node, stats) in &done {
            if let Some(st) = stats {
                tracing::info!(
                    node = %node,
                    seconds = st.elapsed_s,
                    per_second = %st.per_second(),
                    "packet program counted"
                );
                measured_by_node.insert(node.clone(), measured(st));
            }
        }
        if !measured_by_node.is_empty() {
            v["measured"] = Value::Object(measured_by_node);
        }
        Ok(v)
    }
}
