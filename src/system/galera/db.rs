//! MariaDB with Galera: Debian's `mariadb-server` and `galera-4`, one
//! `mariadbd` per node, run as a plain daemon (root starts it, it drops to
//! the `mysql` user) with its own my.cnf, data directory, socket and error
//! log under `<work_dir>/galera`, all the servers one Galera cluster
//! (`gcomm://` every node, rsync state transfers).
//!
//! Starting is where Galera differs from the other systems: exactly one
//! node may found a cluster (`--wsrep-new-cluster`), and only when no
//! primary component exists anywhere. [`Galera`]'s `start` decides under
//! one lock, looking at every member through its own node (not through
//! the network, so a partition does not hide a running primary):
//!
//! - a member runs in a primary component: join it (IST or SST);
//! - members run but none is primary (a quorum lost to kills or a
//!   partition): wait for one to reappear (a healed partition merges
//!   again), then make the most advanced running member primary
//!   (`pc.bootstrap=YES`, Galera's documented recovery) and join it;
//! - nothing runs: the whole cluster is down (set-up, or every node
//!   killed). The founder is the first node on fresh data, else the node
//!   whose `grastate.dat` says `safe_to_bootstrap: 1`, else the one with
//!   the highest position InnoDB recovers (`--wsrep-recover` on every
//!   member, ties to the first node), marked safe, given that position
//!   in its `grastate.dat` (the history goes on) and started with
//!   `--wsrep-new-cluster`; the others then join it.
//!
//! Health is Galera's own: every node's `wsrep_cluster_status` Primary,
//! `wsrep_local_state_comment` Synced, `wsrep_ready` ON and
//! `wsrep_cluster_size` the number of nodes. Once healthy, the database,
//! the client user and the tables are made on the first node (DDL
//! replicates to all). kill and pause act on the server's process group,
//! so a state transfer's rsync dies with it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::{DATABASE, PASSWORD, SCHEMA, USER};
use crate::cluster::Node;
use crate::control::shell_quote;
use crate::db::daemon::Daemon;
use crate::db::{AptPackages, Db, DbError, NodeDaemon, Program};

/// The Galera provider library MariaDB loads.
pub const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// The server binary.
const MARIADBD: &str = "/usr/sbin/mariadbd";

/// How MariaDB Galera is run.
#[derive(Debug, Clone)]
pub struct GaleraOptions {
    /// The SQL port, on each node's own address.
    pub port: u16,
    /// my.cnf `[mysqld]` settings (`--db-opt`), after faultline's own.
    pub settings: Vec<crate::system::DbOpt>,
    /// How long a founding node may take to become primary.
    pub bootstrap_within: Duration,
    /// How long `start` waits for a lost primary component to come back
    /// by itself before it makes one.
    pub primary_grace: Duration,
}

impl Default for GaleraOptions {
    fn default() -> Self {
        GaleraOptions {
            port: 3306,
            settings: Vec::new(),
            bootstrap_within: Duration::from_secs(90),
            primary_grace: Duration::from_secs(15),
        }
    }
}

/// The settings faultline writes in my.cnf and depends on (where the
/// server listens and keeps its files, who its peers are, what Galera
/// needs): a `--db-opt` may not override them. Names use `_`, as
/// `configure` rewrites `-`.
pub const RESERVED: crate::system::Reserved = crate::system::Reserved {
    system: "galera",
    keys: &[
        "datadir",
        "socket",
        "pid_file",
        "port",
        "bind_address",
        "user",
        "log_error",
        "skip_name_resolve",
        "skip_networking",
        "binlog_format",
        "default_storage_engine",
        "innodb_autoinc_lock_mode",
        "wsrep_on",
        "wsrep_provider",
        "wsrep_cluster_name",
        "wsrep_cluster_address",
        "wsrep_node_address",
        "wsrep_node_name",
        "wsrep_sst_method",
    ],
    set_in: "in the my.cnf it writes on every node",
};

/// The my.cnf of one node: faultline's settings (every one in
/// [`RESERVED`] but the innodb and binlog ones Galera requires), then the
/// `--db-opt` settings, which win over MariaDB's defaults.
pub fn my_cnf(
    dir: &str,
    host: &str,
    name: &str,
    port: u16,
    peers: &[String],
    settings: &[crate::system::DbOpt],
) -> String {
    let mut s = format!(
        "[mysqld]\n\
         datadir = {dir}/data\n\
         socket = {dir}/mysqld.sock\n\
         pid_file = {dir}/mysqld.pid\n\
         port = {port}\n\
         bind_address = {host}\n\
         user = mysql\n\
         log_error = {dir}/error.log\n\
         skip_name_resolve = ON\n\
         binlog_format = ROW\n\
         default_storage_engine = InnoDB\n\
         innodb_autoinc_lock_mode = 2\n\
         wsrep_on = ON\n\
         wsrep_provider = {PROVIDER}\n\
         wsrep_cluster_name = faultline\n\
         wsrep_cluster_address = gcomm://{peers}\n\
         wsrep_node_address = {host}\n\
         wsrep_node_name = {name}\n\
         wsrep_sst_method = rsync\n",
        peers = peers.join(","),
    );
    if !settings.is_empty() {
        s.push_str("# --db-opt\n");
        for o in settings {
            s.push_str(&format!("{} = {}\n", o.key, o.value));
        }
    }
    s
}

/// A node's wsrep status, as `SHOW STATUS LIKE 'wsrep%'` gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wsrep {
    /// `wsrep_cluster_status`: Primary, non-Primary, Disconnected.
    pub cluster_status: String,
    /// `wsrep_local_state_comment`: Synced, Donor/Desynced, Joining, ...
    pub state: String,
    /// `wsrep_ready`: ON when it accepts queries.
    pub ready: bool,
    /// `wsrep_cluster_size`.
    pub size: usize,
    /// `wsrep_last_committed`: the last transaction it committed.
    pub last_committed: i64,
    /// `wsrep_local_state_uuid`: the history it holds (all zeros: none).
    pub state_uuid: String,
}

impl Wsrep {
    /// Parses the tab-separated `name value` lines of the mariadb client.
    pub fn parse(text: &str) -> Wsrep {
        let mut w = Wsrep::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('\t') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "wsrep_cluster_status" => w.cluster_status = v.to_string(),
                "wsrep_local_state_comment" => w.state = v.to_string(),
                "wsrep_ready" => w.ready = v.eq_ignore_ascii_case("ON"),
                "wsrep_cluster_size" => w.size = v.parse().unwrap_or(0),
                "wsrep_last_committed" => w.last_committed = v.parse().unwrap_or(-1),
                "wsrep_local_state_uuid" => w.state_uuid = v.to_string(),
                _ => {}
            }
        }
        w
    }

    /// Whether it is in the primary component.
    pub fn primary(&self) -> bool {
        self.cluster_status == "Primary"
    }

    /// Why this node is not a healthy member of a cluster of `size`, or
    /// `None` when it is.
    pub fn unhealthy(&self, size: usize) -> Option<String> {
        if self.primary() && self.state == "Synced" && self.ready && self.size == size {
            return None;
        }
        Some(format!(
            "wsrep_cluster_status={}, wsrep_local_state_comment={}, wsrep_ready={}, \
             wsrep_cluster_size={} of {size}",
            or_none(&self.cluster_status),
            or_none(&self.state),
            if self.ready { "ON" } else { "OFF" },
            self.size,
        ))
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "(none)"
    } else {
        s
    }
}

/// What `grastate.dat` says of a node's saved state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraState {
    /// The last committed seqno, or -1 when the node did not shut down
    /// cleanly (then InnoDB knows: `--wsrep-recover`).
    pub seqno: i64,
    /// Whether Galera marked it safe to found a cluster from.
    pub safe_to_bootstrap: bool,
}

impl GraState {
    /// Parses `grastate.dat`; `None` when it has no seqno.
    pub fn parse(text: &str) -> Option<GraState> {
        let mut seqno = None;
        let mut safe = false;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("seqno:") {
                seqno = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("safe_to_bootstrap:") {
                safe = v.trim() == "1";
            }
        }
        seqno.map(|seqno| GraState {
            seqno,
            safe_to_bootstrap: safe,
        })
    }
}

/// A position in a Galera history: the cluster's state UUID and the
/// seqno of the last transaction applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The history (`wsrep_local_state_uuid`).
    pub uuid: String,
    /// The last transaction of it the node committed.
    pub seqno: i64,
}

/// The position `mariadbd --wsrep-recover` logs (`WSREP: Recovered
/// position: <uuid>:<seqno>`), if any.
pub fn recovered_position(log: &str) -> Option<Position> {
    let p = log
        .lines()
        .rev()
        .find_map(|l| l.split("Recovered position:").nth(1))?;
    let (uuid, seqno) = p.trim().rsplit_once(':')?;
    Some(Position {
        uuid: uuid.trim().to_string(),
        seqno: seqno.trim().parse().ok()?,
    })
}

/// What a member saved of its state when none runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    /// Its `grastate.dat`.
    pub grastate: GraState,
    /// What InnoDB recovered (`--wsrep-recover`), when it names a
    /// transaction (seqno 0 or more).
    pub recovered: Option<Position>,
}

impl SavedState {
    /// The seqno to compare: InnoDB's when it recovered one, since
    /// that is what the node holds, while `grastate.dat`'s is only what
    /// Galera last wrote there (-1 while the server runs; a position
    /// at a clean stop or a state transfer); else the file's.
    pub fn seqno(&self) -> i64 {
        self.recovered
            .as_ref()
            .map_or(self.grastate.seqno, |p| p.seqno)
    }
}

/// Which node founds the cluster when none runs: the first marked safe;
/// else the highest known seqno (the first on a tie); `None` when no
/// node has any state (a fresh cluster: its first node).
pub fn choose_founder(states: &[Option<(GraState, i64)>]) -> Option<usize> {
    if let Some(i) = states
        .iter()
        .position(|s| s.as_ref().is_some_and(|(g, _)| g.safe_to_bootstrap))
    {
        return Some(i);
    }
    let mut best: Option<(usize, i64)> = None;
    for (i, s) in states.iter().enumerate() {
        if let Some((_, seqno)) = s {
            if best.map_or(true, |(_, b)| *seqno > b) {
                best = Some((i, *seqno));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// One line on each member's saved state, as [`choose_founder`] sees
/// it: `n1 seqno 41 (recovered; grastate.dat -1), n2 seqno 40
/// (recovered; grastate.dat -1), n3 no state`.
pub fn describe_states(members: &[Node], states: &[Option<SavedState>]) -> String {
    members
        .iter()
        .zip(states)
        .map(|(m, s)| match s {
            None => format!("{} no state", m.name()),
            Some(s) => format!(
                "{} seqno {} ({}; grastate.dat {}{})",
                m.name(),
                s.seqno(),
                if s.recovered.is_some() {
                    "recovered"
                } else {
                    "none recovered"
                },
                s.grastate.seqno,
                if s.grastate.safe_to_bootstrap {
                    ", safe_to_bootstrap"
                } else {
                    ""
                }
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// MariaDB Galera on a fixed set of nodes.
#[derive(Debug)]
pub struct Galera {
    opts: GaleraOptions,
    /// Every member, in cluster order (the first founds a fresh cluster).
    members: Vec<Node>,
    /// Held while a start decides whether to join or found, so that two
    /// starts never both found a cluster.
    starting: Mutex<()>,
}

impl Galera {
    /// One server per node of `nodes`.
    pub fn new(opts: GaleraOptions, nodes: &[Node]) -> Self {
        Galera {
            opts,
            members: nodes.to_vec(),
            starting: Mutex::new(()),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &GaleraOptions {
        &self.opts
    }

    /// The node's Galera directory (my.cnf, data, socket, logs).
    pub fn dir(&self, node: &Node) -> String {
        format!("{}/galera", node.work_dir())
    }

    fn data_dir(&self, node: &Node) -> String {
        format!("{}/data", self.dir(node))
    }

    fn cnf(&self, node: &Node) -> String {
        format!("{}/my.cnf", self.dir(node))
    }

    fn daemon(&self, node: &Node) -> Daemon {
        let dir = self.dir(node);
        Daemon::new(
            "mariadbd",
            &format!("{dir}/mariadbd.pid"),
            &format!("{dir}/mariadbd.out"),
        )
    }

    fn err(&self, node: &Node, action: &str, reason: impl ToString) -> DbError {
        DbError::on("galera", node, action, reason)
    }

    /// The my.cnf of `node`.
    pub fn config(&self, node: &Node) -> String {
        let peers: Vec<String> = self.members.iter().map(|n| n.host().to_string()).collect();
        my_cnf(
            &self.dir(node),
            node.host(),
            node.name(),
            self.opts.port,
            &peers,
            &self.opts.settings,
        )
    }

    /// Runs `sql` as root through the node's socket: the output's lines,
    /// tab-separated, or why not. Bounded in time, since a paused server
    /// never answers.
    pub fn sql(&self, node: &Node, sql: &str) -> Result<String, String> {
        let script = format!(
            "mariadb --no-defaults --protocol=socket -S {sock} -uroot -N -B \
             --connect-timeout=3 -e {sql}",
            sock = shell_quote(&format!("{}/mysqld.sock", self.dir(node))),
            sql = shell_quote(sql),
        );
        match node.exec_timeout(&script, Duration::from_secs(8)) {
            Ok(o) if o.success() => Ok(o.stdout),
            Ok(o) => Err(o.stderr.trim().to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The node's wsrep status, or why it cannot be read.
    pub fn wsrep(&self, node: &Node) -> Result<Wsrep, String> {
        self.sql(node, "SHOW GLOBAL STATUS LIKE 'wsrep%'")
            .map(|out| Wsrep::parse(&out))
    }

    /// Starts the server: founding a new cluster (`found`) or joining.
    fn launch(&self, node: &Node, found: bool) -> Result<(), DbError> {
        let mut command = format!(
            "{MARIADBD} --defaults-file={}",
            shell_quote(&self.cnf(node))
        );
        if found {
            command.push_str(" --wsrep-new-cluster");
        }
        self.daemon(node)
            .start(node, &self.dir(node), &command)
            .map_err(|e| self.err(node, "start", e))
    }

    /// Waits until `node` is in a primary component and ready.
    fn await_primary(&self, node: &Node, within: Duration) -> Result<(), DbError> {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < within {
            match self.wsrep(node) {
                Ok(w) if w.primary() && w.ready => return Ok(()),
                Ok(w) => last = w.unhealthy(0).unwrap_or_default(),
                Err(e) => last = e,
            }
            if !self.daemon(node).is_running(node)? {
                return Err(self.err(
                    node,
                    "found a cluster",
                    format!(
                        "mariadbd exited; error log: {}",
                        crate::control::tail(self.error_log_tail(node).trim(), 800)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(self.err(
            node,
            "found a cluster",
            format!("not primary after {within:?}: {last}"),
        ))
    }

    fn error_log_tail(&self, node: &Node) -> String {
        node.exec(&format!(
            "tail -n 8 {}/error.log 2>/dev/null",
            shell_quote(&self.dir(node))
        ))
        .map(|o| o.stdout)
        .unwrap_or_default()
    }

    /// The log of the last `--wsrep-recover` on the node.
    fn recover_log(&self, node: &Node) -> String {
        format!("{}/wsrep-recover.log", self.dir(node))
    }

    /// What `node` saved of its state: its `grastate.dat` and the
    /// position InnoDB recovers. `None`: no state (never started with
    /// Galera).
    fn saved_state(&self, node: &Node) -> Result<Option<SavedState>, DbError> {
        let data = shell_quote(&self.data_dir(node));
        let text = node.run(&format!("cat {data}/grastate.dat 2>/dev/null || true"))?;
        let Some(grastate) = GraState::parse(&text) else {
            return Ok(None);
        };
        // The position InnoDB committed, as the server finds it at start:
        // asked of every member, since what InnoDB holds decides
        // (see SavedState::seqno). The server drops to the mysql user
        // before it opens its error log, so the log is a file that user
        // owns: in a root-only temporary file it wrote nothing, every
        // crashed member recovered "no position", and the first member
        // founded the cluster whatever it lacked (docs/galera.md).
        let script = format!(
            "L={log}; : > \"$L\"; chown mysql:mysql \"$L\"; \
             {MARIADBD} --defaults-file={cnf} --wsrep-recover --log-error=\"$L\" \
             >/dev/null 2>&1; cat \"$L\"",
            log = shell_quote(&self.recover_log(node)),
            cnf = shell_quote(&self.cnf(node)),
        );
        let log = node
            .run_timeout(&script, Duration::from_secs(120))
            .map_err(|e| self.err(node, "recover its position (--wsrep-recover)", e))?;
        Ok(Some(SavedState {
            grastate,
            recovered: recovered_position(&log).filter(|p| p.seqno >= 0),
        }))
    }

    /// Founds a cluster on `node` from its saved state: marks it safe to
    /// bootstrap (Galera refuses otherwise after a crash) and, when
    /// InnoDB recovered a position, writes it in `grastate.dat`, so the
    /// cluster goes on with the same history (without it, Galera starts
    /// a new one from seqno 1 and the seqnos of two crashes apart cannot
    /// be compared); starts it with `--wsrep-new-cluster` and waits
    /// until it is primary.
    fn found(&self, node: &Node, recovered: Option<&Position>) -> Result<(), DbError> {
        let position = recovered.map_or(String::new(), |p| {
            format!(
                " -e 's/^uuid:.*/uuid:    {}/' -e 's/^seqno:.*/seqno:   {}/'",
                p.uuid, p.seqno
            )
        });
        node.run(&format!(
            "G={}/grastate.dat; [ -f \"$G\" ] && sed -i -e 's/^safe_to_bootstrap:.*/safe_to_bootstrap: 1/'{position} \"$G\"; true",
            shell_quote(&self.data_dir(node))
        ))?;
        tracing::info!("galera: founding the cluster on {}", node.name());
        self.launch(node, true)?;
        self.await_primary(node, self.opts.bootstrap_within)
    }

    /// Whether any running member other than `node` is primary, and the
    /// running ones' status (`None` when it cannot be read).
    fn running_peers(&self, node: &Node) -> Result<Vec<(&Node, Option<Wsrep>)>, DbError> {
        let mut out = Vec::new();
        for p in self.members.iter().filter(|p| p.name() != node.name()) {
            if self.daemon(p).is_running(p)? {
                out.push((p, self.wsrep(p).ok()));
            }
        }
        Ok(out)
    }

    /// Makes sure a primary component exists before `node` joins it
    /// (see the module's comment); `Ok(true)` when `node` itself founded
    /// it.
    fn ensure_primary(&self, node: &Node) -> Result<bool, DbError> {
        let waited = Instant::now();
        loop {
            let peers = self.running_peers(node)?;
            if peers
                .iter()
                .any(|(_, w)| w.as_ref().is_some_and(Wsrep::primary))
            {
                return Ok(false);
            }
            if peers.is_empty() {
                return self.found_whole(node);
            }
            if waited.elapsed() >= self.opts.primary_grace {
                // Members with a history, most advanced first.
                let best = peers
                    .iter()
                    .filter_map(|(p, w)| w.as_ref().map(|w| (*p, w)))
                    .filter(|(_, w)| !w.state_uuid.is_empty() && !w.state_uuid.starts_with("0000"))
                    .max_by_key(|(_, w)| w.last_committed);
                let Some((p, w)) = best else {
                    return Err(self.err(
                        node,
                        "start",
                        "members run, but none is primary and none answers with a state to \
                         make primary",
                    ));
                };
                tracing::warn!(
                    "galera: no primary component after {:?}; making {} primary \
                     (pc.bootstrap, last committed {})",
                    self.opts.primary_grace,
                    p.name(),
                    w.last_committed
                );
                self.sql(p, "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
                    .map_err(|e| self.err(p, "make primary (pc.bootstrap)", e))?;
                self.await_primary(p, self.opts.bootstrap_within)?;
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Nothing runs: founds the cluster on the member chosen by
    /// [`choose_founder`]. `Ok(true)` when that is `node`.
    fn found_whole(&self, node: &Node) -> Result<bool, DbError> {
        let states = crate::control::parallel(&self.members, |m| self.saved_state(m));
        let mut saved = Vec::with_capacity(states.len());
        for s in states {
            saved.push(s?);
        }
        let known: Vec<Option<(GraState, i64)>> = saved
            .iter()
            .map(|s| s.as_ref().map(|s| (s.grastate.clone(), s.seqno())))
            .collect();
        let founder = choose_founder(&known).unwrap_or(0);
        let Some(f) = self.members.get(founder) else {
            return Err(self.err(node, "start", "galera has no members"));
        };
        // What the choice was made from, so that a run's faultline.log
        // shows which node was the most advanced after a crash of all.
        tracing::info!(
            "galera: nothing runs; saved states: {}; founding on {}",
            describe_states(&self.members, &saved),
            f.name()
        );
        if !self.configured(f)? {
            self.configure(f)?;
        }
        let recovered = saved
            .get(founder)
            .and_then(|s| s.as_ref()?.recovered.as_ref());
        self.found(f, recovered)?;
        Ok(f.name() == node.name())
    }

    /// Whether `node` has its my.cnf and a system database.
    fn configured(&self, node: &Node) -> Result<bool, DbError> {
        Ok(node
            .exec(&format!(
                "test -f {} && test -d {}/mysql",
                shell_quote(&self.cnf(node)),
                shell_quote(&self.data_dir(node))
            ))?
            .success())
    }

    /// Makes the database, the client user and the tables (idempotent),
    /// through `node`; DDL replicates to every member.
    fn make_schema(&self, node: &Node) -> Result<(), DbError> {
        let sql = format!(
            "CREATE DATABASE IF NOT EXISTS {DATABASE}; \
             CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL ON {DATABASE}.* TO '{USER}'@'%'; \
             USE {DATABASE}; {SCHEMA}"
        );
        self.sql(node, &sql)
            .map(|_| ())
            .map_err(|e| self.err(node, "create the schema", e))
    }
}

impl Db for Galera {
    fn name(&self) -> &str {
        "galera"
    }

    fn data_folder(&self, node: &Node) -> Option<String> {
        Some(self.data_dir(node))
    }

    fn install(&self, node: &Node) -> Result<(), DbError> {
        crate::db::apt_install(
            self.name(),
            node,
            &AptPackages {
                what: "MariaDB with Galera",
                packages: &["mariadb-server", "galera-4", "rsync"],
                present: &format!(
                    "test -x {MARIADBD} && test -f {PROVIDER} && command -v rsync >/dev/null"
                ),
                services: &["mariadb"],
                otherwise: "",
            },
        )
    }

    fn daemon_on(&self, node: &Node) -> Option<NodeDaemon> {
        Some(NodeDaemon {
            daemon: self.daemon(node),
            dir: self.dir(node),
        })
    }

    /// The server, a state transfer's script and its rsync (marked by
    /// the rsync module name), which may outlive a killed server.
    fn programs(&self, _node: &Node) -> Vec<Program> {
        vec![
            Program::named("mariadbd"),
            Program::named("wsrep_sst_rsync"),
            Program::with_cmdline("rsync", "rsync_sst"),
        ]
    }

    fn configure(&self, node: &Node) -> Result<(), DbError> {
        let dir = shell_quote(&self.dir(node));
        let data = shell_quote(&self.data_dir(node));
        // The mysql user must reach its directory through the work dir.
        // mariadb-install-db has been seen to fail now and then on one of
        // three nodes installing at once, its log naming no cause: it is
        // tried three times from an empty data directory.
        let script = format!(
            "chmod a+x {work}; mkdir -p {dir}; chown mysql:mysql {dir}; chmod 750 {dir}; \
             printf '%s' {cnf} > {dir}/my.cnf; chmod 644 {dir}/my.cnf; \
             i=0; while [ ! -d {data}/mysql ]; do \
               i=$((i+1)); rm -rf {data}; \
               mariadb-install-db --no-defaults --user=mysql --datadir={data} \
                 --auth-root-authentication-method=normal --skip-test-db \
                 >> {dir}/install.log 2>&1 && break; \
               rm -rf {data}; \
               if [ $i -ge 3 ]; then grep -E 'ERROR|rror:' {dir}/install.log | tail -n 8 >&2; \
                 echo \"mariadb-install-db failed $i times (install.log)\" >&2; exit 1; fi; \
               sleep $i; \
             done",
            work = shell_quote(node.work_dir()),
            cnf = shell_quote(&self.config(node)),
        );
        node.run_timeout(&script, Duration::from_secs(120))
            .map_err(|e| self.err(node, "configure (mariadb-install-db)", e))?;
        // A server left running by an earlier test keeps its rows: empty
        // the tables so values stay unique per key within this test.
        if self.daemon(node).is_running(node)? {
            let _ = self.sql(
                node,
                &format!(
                    "TRUNCATE {DATABASE}.la; TRUNCATE {DATABASE}.rw; TRUNCATE {DATABASE}.bank"
                ),
            );
        }
        Ok(())
    }

    fn start(&self, node: &Node) -> Result<(), DbError> {
        let _one_at_a_time = self
            .starting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.daemon(node).is_running(node)? {
            return Ok(());
        }
        // A start after a wipe needs the config and the system tables.
        if !self.configured(node)? {
            self.configure(node)?;
        }
        if self.ensure_primary(node)? {
            return Ok(());
        }
        self.launch(node, false)
    }

    /// SIGTERM, then the whole process group (a state transfer's rsync
    /// too) after a grace period.
    fn stop(&self, node: &Node) -> Result<(), DbError> {
        let pid = self.daemon(node).pid(node)?;
        self.daemon(node)
            .stop(node, "TERM", Duration::from_secs(30))?;
        if let Some(p) = pid {
            node.run(&format!("kill -KILL -- -{p} 2>/dev/null || true"))?;
        }
        Ok(())
    }

    fn kill(&self, node: &Node) -> Result<(), DbError> {
        if let Some(p) = self.daemon(node).pid(node)? {
            node.run(&format!(
                "kill -KILL -- -{p} 2>/dev/null; kill -CONT -- -{p} 2>/dev/null; true"
            ))?;
        }
        self.daemon(node)
            .stop(node, "KILL", Duration::from_secs(5))?;
        Ok(())
    }

    fn wait_healthy(&self, nodes: &[Node], timeout: Duration) -> Result<(), DbError> {
        let size = self.members.len();
        crate::db::poll_healthy(
            "galera",
            nodes,
            timeout,
            Duration::from_millis(500),
            |pending| {
                crate::control::parallel(pending, |n| {
                    let w = self.wsrep(n)?;
                    w.unhealthy(size).map_or(Ok(()), Err)
                })
            },
            |n| {
                let running = self.daemon(n).is_running(n).unwrap_or(false);
                format!(
                    "{}; error log: {}",
                    if running {
                        ""
                    } else {
                        " (mariadbd not running)"
                    },
                    crate::control::tail(self.error_log_tail(n).trim(), 800)
                )
            },
        )?;
        match nodes.first() {
            Some(n) => self.make_schema(n),
            None => Ok(()),
        }
    }

    fn log_files(&self, node: &Node) -> Vec<String> {
        let dir = self.dir(node);
        vec![
            format!("{dir}/error.log"),
            self.daemon(node).log_file,
            format!("{dir}/install.log"),
            format!("{dir}/my.cnf"),
            format!("{dir}/data/grastate.dat"),
            self.recover_log(node),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::DbOpt;

    #[test]
    fn my_cnf_names_every_peer_and_puts_db_opts_last() {
        let peers = vec!["10.0.0.1".to_string(), "10.0.0.2".into(), "10.0.0.3".into()];
        let opts = vec![DbOpt {
            key: "innodb_flush_log_at_trx_commit".into(),
            value: "1".into(),
        }];
        let cnf = my_cnf("/w/n2/galera", "10.0.0.2", "n2", 3306, &peers, &opts);
        assert!(cnf.starts_with("[mysqld]\n"), "{cnf}");
        for line in [
            "datadir = /w/n2/galera/data",
            "socket = /w/n2/galera/mysqld.sock",
            "bind_address = 10.0.0.2",
            "wsrep_cluster_address = gcomm://10.0.0.1,10.0.0.2,10.0.0.3",
            "wsrep_node_address = 10.0.0.2",
            "wsrep_node_name = n2",
            "wsrep_provider = /usr/lib/galera/libgalera_smm.so",
            "wsrep_sst_method = rsync",
            "binlog_format = ROW",
            "log_error = /w/n2/galera/error.log",
        ] {
            assert!(cnf.lines().any(|l| l == line), "{line} missing: {cnf}");
        }
        // The user's setting comes after faultline's, so it wins over
        // MariaDB's default.
        assert!(
            cnf.ends_with("# --db-opt\ninnodb_flush_log_at_trx_commit = 1\n"),
            "{cnf}"
        );
        // Every setting faultline writes is one a --db-opt may not touch,
        // and RESERVED names nothing faultline does not depend on.
        for line in cnf.lines().skip(1).take_while(|l| !l.starts_with('#')) {
            let key = line.split(" = ").next().unwrap_or_default();
            assert!(RESERVED.find(key).is_some(), "{key} is not reserved");
        }
    }

    #[test]
    fn wsrep_status_says_why_a_node_is_unhealthy() {
        let synced = "wsrep_cluster_size\t3\nwsrep_cluster_status\tPrimary\n\
                      wsrep_local_state_comment\tSynced\nwsrep_ready\tON\n\
                      wsrep_last_committed\t42\nwsrep_local_state_uuid\tabc-1\n";
        let w = Wsrep::parse(synced);
        assert_eq!(w.last_committed, 42);
        assert!(w.primary());
        assert_eq!(w.unhealthy(3), None);
        assert_eq!(
            w.unhealthy(4).as_deref(),
            Some(
                "wsrep_cluster_status=Primary, wsrep_local_state_comment=Synced, \
                 wsrep_ready=ON, wsrep_cluster_size=3 of 4"
            )
        );
        let joining = Wsrep::parse(
            "wsrep_cluster_status\tnon-Primary\nwsrep_local_state_comment\tJoining\nwsrep_ready\tOFF\n",
        );
        assert!(!joining.primary());
        assert_eq!(
            joining.unhealthy(3).as_deref(),
            Some(
                "wsrep_cluster_status=non-Primary, wsrep_local_state_comment=Joining, \
                 wsrep_ready=OFF, wsrep_cluster_size=0 of 3"
            )
        );
    }

    #[test]
    fn the_founder_is_the_safe_node_else_the_most_advanced_else_none() {
        let g = |seqno, safe| {
            Some((
                GraState {
                    seqno,
                    safe_to_bootstrap: safe,
                },
                seqno,
            ))
        };
        let crashed = |recovered| {
            Some((
                GraState {
                    seqno: -1,
                    safe_to_bootstrap: false,
                },
                recovered,
            ))
        };
        assert_eq!(choose_founder(&[None, None, None]), None);
        assert_eq!(
            choose_founder(&[g(5, false), g(9, true), g(12, false)]),
            Some(1)
        );
        assert_eq!(
            choose_founder(&[crashed(7), crashed(11), crashed(11)]),
            Some(1)
        );
        assert_eq!(choose_founder(&[None, crashed(3), g(2, false)]), Some(1));
    }

    #[test]
    fn innodbs_recovered_seqno_wins_over_a_stale_grastate() {
        let saved = |file_seqno, recovered: Option<i64>| SavedState {
            grastate: GraState {
                seqno: file_seqno,
                safe_to_bootstrap: false,
            },
            recovered: recovered.map(|seqno| Position {
                uuid: "u".into(),
                seqno,
            }),
        };
        // Should the file be behind what InnoDB committed, InnoDB wins.
        assert_eq!(saved(313, Some(400)).seqno(), 400);
        // A crashed member's file says -1: only InnoDB can tell.
        assert_eq!(saved(-1, Some(291)).seqno(), 291);
        // Nothing recovered: the file is all there is.
        assert_eq!(saved(-1, None).seqno(), -1);
        let states = [saved(313, Some(300)), saved(-1, Some(340)), saved(-1, None)];
        let known: Vec<_> = states
            .iter()
            .map(|s| Some((s.grastate.clone(), s.seqno())))
            .collect();
        assert_eq!(choose_founder(&known), Some(1));
    }

    #[test]
    fn grastate_and_recovered_positions_parse() {
        let text = "# GALERA saved state\nversion: 2.1\n\
                    uuid:    5ee99582-bb8d-11e2-b8e3-23de375c1d30\n\
                    seqno:   -1\nsafe_to_bootstrap: 0\n";
        assert_eq!(
            GraState::parse(text),
            Some(GraState {
                seqno: -1,
                safe_to_bootstrap: false
            })
        );
        assert_eq!(GraState::parse(""), None);
        let log = "2026-12-05 15:00:01 0 [Note] WSREP: Recovered position: \
                   5ee99582-bb8d-11e2-b8e3-23de375c1d30:1337\n";
        assert_eq!(
            recovered_position(log),
            Some(Position {
                uuid: "5ee99582-bb8d-11e2-b8e3-23de375c1d30".into(),
                seqno: 1337
            })
        );
        assert_eq!(recovered_position("nothing here"), None);
    }
}
