//! PostgreSQL: Debian's `postgresql` package, one server on the FIRST node
//! of the cluster, started as the `postgres` user (the server refuses to
//! run as root) with a pid file and a log file under the node's work
//! directory, listening on the node's address with trust authentication
//! for the controller's address and the node's own subnets.
//!
//! By default the other nodes take part in nothing: every step on them is
//! a no-op. With [`PostgresOptions::standbys`] each of them runs a hot
//! standby of the first (streaming replication, asynchronous unless
//! `--db-opt synchronous_standby_names` says otherwise): its data
//! directory is copied from the running primary by `pg_basebackup -R`
//! (which writes `standby.signal` and `primary_conninfo`) the first time
//! it starts, after which it starts and stops like any server. There is
//! no failover: the primary stays on the first node.
//!
//! The primary's data directory is made by `initdb` on first
//! configuration; the database [`DATABASE`](super::client::DATABASE) and
//! the tables of the transactional workloads are created on it once it
//! answers, and reach the standbys by replication.
//! kill, pause and resume signal the server's whole process group (the
//! postmaster and its backends), so a paused server is really frozen and
//! a killed one leaves no backend holding its shared memory.

use std::time::Duration;

use super::client::{DATABASE, SCHEMA};
use crate::cluster::Node;
use crate::control::shell_quote;
use crate::db::daemon::Daemon;
use crate::db::{AptPackages, Db, DbClock, DbError, NodeDaemon, Program};

/// How PostgreSQL is run.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The port it listens on.
    pub port: u16,
    /// postgresql.conf settings (`--db-opt`), written to `faultline.conf`
    /// in the data directory, which postgresql.conf includes last.
    pub settings: Vec<crate::system::DbOpt>,
    /// Whether every node but the first runs a hot standby of it.
    pub standbys: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            port: 5432,
            settings: Vec::new(),
            standbys: false,
        }
    }
}

/// What a replicated primary is given ahead of `--db-opt` (which may
/// override them): PostgreSQL's defaults since version 10, written out so
/// that the set-up says what it relies on.
pub const REPLICATION_SETTINGS: &[(&str, &str)] = &[
    ("wal_level", "replica"),
    ("hot_standby", "on"),
    ("max_wal_senders", "10"),
];

/// `key = 'value'` lines of `settings`, quotes doubled.
pub fn settings_conf(settings: &[crate::system::DbOpt]) -> String {
    conf_lines(settings.iter().map(|o| (o.key.as_str(), o.value.as_str())))
}

/// The `faultline.conf` of a server: with `replicated`,
/// [`REPLICATION_SETTINGS`] first, then `settings`, so that a `--db-opt`
/// of the same name (a later line) wins.
pub fn faultline_conf(settings: &[crate::system::DbOpt], replicated: bool) -> String {
    let ours = REPLICATION_SETTINGS.iter().filter(|_| replicated).copied();
    conf_lines(ours.chain(settings.iter().map(|o| (o.key.as_str(), o.value.as_str()))))
}

fn conf_lines<'a>(lines: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    lines
        .map(|(k, v)| format!("{k} = '{}'\n", v.replace('\'', "''")))
        .collect()
}

/// PostgreSQL on the first node of a cluster, and hot standbys of it on
/// the others when asked.
#[derive(Debug, Clone)]
pub struct Postgres {
    opts: PostgresOptions,
    /// (name, host) of the node that runs the server (the primary).
    primary: Option<(String, String)>,
    /// (name, host) of the nodes that run a hot standby.
    standbys: Vec<(String, String)>,
}

/// Finds the newest installed server's bin directory, or fails.
const BINDIR: &str = "B=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1); \
     [ -n \"$B\" ] && [ -x \"$B/postgres\" ] || { echo 'postgresql is not installed (/usr/lib/postgresql/*/bin/postgres)' >&2; exit 1; }; ";

impl Postgres {
    /// A server on the first of `nodes`, and with `opts.standbys` a hot
    /// standby on each of the others.
    pub fn new(opts: PostgresOptions, nodes: &[Node]) -> Self {
        let named = |n: &Node| (n.name().to_string(), n.host().to_string());
        Postgres {
            primary: nodes.first().map(named),
            standbys: if opts.standbys {
                nodes.iter().skip(1).map(named).collect()
            } else {
                Vec::new()
            },
            opts,
        }
    }

    /// The nodes that run a hot standby, (name, host), in node order.
    pub fn standbys(&self) -> &[(String, String)] {
        &self.standbys
    }

    fn is_primary(&self, node: &Node) -> bool {
        self.primary.as_ref().is_some_and(|(n, _)| n == node.name())
    }

    fn is_standby(&self, node: &Node) -> bool {
        self.standbys.iter().any(|(n, _)| n == node.name())
    }

    /// The address clients connect to (the first node's host).
    pub fn host(&self) -> Option<&str> {
        self.primary.as_ref().map(|(_, h)| h.as_str())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.opts.port
    }

    fn runs_on(&self, node: &Node) -> bool {
        self.is_primary(node) || self.is_standby(node)
    }

    /// The node's postgres directory (data, socket, log, pid file).
    pub fn dir(&self, node: &Node) -> String {
        format!("{}/postgres", node.work_dir())
    }

    fn data_dir(&self, node: &Node) -> String {
        format!("{}/data", self.dir(node))
    }

    fn daemon(&self, node: &Node) -> Daemon {
        let dir = self.dir(node);
        Daemon::new(
            "postgres",
            &format!("{dir}/postgres.pid"),
            &format!("{dir}/postgres.log"),
        )
    }

    fn err(&self, node: &Node, action: &str, reason: impl ToString) -> DbError {
        DbError::Node {
            db: "postgres".into(),
            node: node.name().into(),
            action: action.into(),
            reason: reason.to_string(),
        }
    }

    fn bindir(&self, node: &Node) -> Result<String, DbError> {
        let out = node
            .run(&format!("{BINDIR}echo \"$B\""))
            .map_err(|e| self.err(node, "find the server", e))?;
        Ok(out.trim().to_string())
    }

    /// Sends `signal` to the server's process group when it runs; returns
    /// whether it ran.
    fn signal_group(&self, node: &Node, signal: &str) -> Result<bool, DbError> {
        match self.daemon(node).pid(node)? {
            None => Ok(false),
            Some(p) => {
                node.run(&format!("kill -{signal} -- -{p} 2>/dev/null || true"))?;
                Ok(true)
            }
        }
    }

    /// Copies the primary's data directory to a standby that has none yet
    /// (`pg_basebackup -R`: `standby.signal` and a `primary_conninfo` whose
    /// `application_name` is the node's name, which
    /// `synchronous_standby_names` can list), waiting up to a minute for
    /// the primary to answer, since every node starts at once.
    fn base_backup(&self, node: &Node, bindir: &str) -> Result<(), DbError> {
        let Some((_, primary)) = &self.primary else {
            return Err(self.err(node, "base backup", "no primary node"));
        };
        let dir = shell_quote(&self.dir(node));
        let data = shell_quote(&self.data_dir(node));
        let port = self.opts.port;
        let conninfo = shell_quote(&format!(
            "host={primary} port={port} user=postgres application_name={}",
            node.name()
        ));
        let script = format!(
            "B={b}; [ -s {data}/PG_VERSION ] && exit 0; \
             i=0; until \"$B/pg_isready\" -q -h {host} -p {port}; do \
               i=$((i+1)); [ $i -ge 300 ] && {{ echo 'the primary {primary}:{port} did not answer within 60 s' >&2; exit 1; }}; \
               sleep 0.2; done; \
             rm -rf {data}; \
             setpriv --reuid=postgres --regid=postgres --init-groups \"$B/pg_basebackup\" \
               -d {conninfo} -D {data} -R -X stream --checkpoint=fast --no-sync \
               >> {dir}/basebackup.log 2>&1 \
               || {{ tail -n 20 {dir}/basebackup.log >&2; rm -rf {data}; exit 1; }}",
            b = shell_quote(bindir),
            host = shell_quote(primary),
        );
        node.run(&script)
            .map(|_| ())
            .map_err(|e| self.err(node, "base backup (pg_basebackup)", e))
    }

    /// One readiness probe: on the primary, then the database and tables;
    /// on a standby, that it is in recovery and has replayed them.
    fn probe(&self, node: &Node) -> Result<(), String> {
        let dir = shell_quote(&self.dir(node));
        let port = self.opts.port;
        let script = if self.is_standby(node) {
            format!(
                "{BINDIR}\"$B/pg_isready\" -q -h {dir} -p {port} || {{ echo 'not ready' >&2; exit 1; }}; \
                 r=$(\"$B/psql\" -X -q -A -t -h {dir} -p {port} -U postgres -d {DATABASE} \
                   -c \"SELECT pg_is_in_recovery() AND to_regclass('la') IS NOT NULL AND to_regclass('rw') IS NOT NULL\" 2>&1); \
                 [ \"$r\" = t ] || {{ echo \"standby not in recovery with the tables replayed: $r\" >&2; exit 1; }}"
            )
        } else {
            format!(
            "{BINDIR}\"$B/pg_isready\" -q -h {dir} -p {port} || {{ echo 'not ready' >&2; exit 1; }}; \
             P=\"$B/psql -X -q -v ON_ERROR_STOP=1 -h {dir} -p {port} -U postgres\"; \
             $P -d postgres -tAc \"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'\" | grep -q 1 || \
             $P -d postgres -c 'CREATE DATABASE {DATABASE}' || exit 1; \
             $P -d {DATABASE} -c {schema}",
                schema = shell_quote(SCHEMA),
            )
        };
        match node.exec(&script) {
            Ok(o) if o.success() => Ok(()),
            Ok(o) => Err(o.stderr.trim().to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The settings [`Postgres`] sets itself: on the server's command line
/// (`-c`, which wins over any config file, so an override would be silently
/// ignored), and the files and directories it writes: a `--db-opt` may
/// not override them.
pub const RESERVED: crate::system::Reserved = crate::system::Reserved {
    system: "postgres",
    keys: &[
        "port",
        "listen_addresses",
        "unix_socket_directories",
        "max_connections",
        "log_line_prefix",
        "data_directory",
        "config_file",
        "hba_file",
    ],
    set_in: "on the server's command line and in the data directory it sets up",
};

impl Db for Postgres {
    fn data_folder(&self, node: &Node) -> Option<String> {
        self.runs_on(node).then(|| self.data_dir(node))
    }

    fn name(&self) -> &str {
        "postgres"
    }

    fn install(&self, node: &Node) -> Result<(), DbError> {
        if !self.runs_on(node) {
            return Ok(());
        }
        // The package starts a cluster of its own: it is disabled, ours
        // has its own data directory.
        crate::db::apt_install(
            self.name(),
            node,
            &AptPackages {
                what: "PostgreSQL",
                packages: &["postgresql", "util-linux"],
                present: &format!("{BINDIR}command -v setpriv >/dev/null"),
                services: &["postgresql"],
                otherwise: "",
            },
        )
    }

    /// The server on the first node, a standby on each of the others
    /// when asked; otherwise nothing runs on them.
    fn daemon_on(&self, node: &Node) -> Option<NodeDaemon> {
        self.runs_on(node).then(|| NodeDaemon {
            daemon: self.daemon(node),
            dir: self.dir(node),
        })
    }

    /// The server and its workers on every node: one started by hand
    /// may run where ours does not.
    fn programs(&self, _node: &Node) -> Vec<Program> {
        vec![Program::named("postgres")]
    }

    fn configure(&self, node: &Node) -> Result<(), DbError> {
        if !self.runs_on(node) {
            return Ok(());
        }
        let dir = shell_quote(&self.dir(node));
        let data = shell_quote(&self.data_dir(node));
        if self.is_standby(node) {
            // Its data directory is the primary's, copied when it first
            // starts (the primary must run by then).
            return node
                .run(&format!(
                    "chmod a+x {work}; mkdir -p {dir}; chown postgres: {dir}; chmod 755 {dir}",
                    work = shell_quote(node.work_dir()),
                ))
                .map(|_| ())
                .map_err(|e| self.err(node, "configure (standby directory)", e));
        }
        // Standbys stream the WAL as `postgres` from the node subnets.
        let replication = if self.standbys.is_empty() {
            ""
        } else {
            "echo 'host replication all samenet trust'; "
        };
        // The postgres user must reach its directory through the work dir.
        // The controller's address is the one SSH sees us come from.
        let script = format!(
            "{BINDIR}chmod a+x {work}; mkdir -p {dir}; chown postgres: {dir}; chmod 755 {dir}; \
             if [ ! -s {data}/PG_VERSION ]; then \
               setpriv --reuid=postgres --regid=postgres --init-groups \"$B/initdb\" -D {data} \
                 -A trust -U postgres --no-sync -E UTF8 >> {dir}/initdb.log 2>&1 \
                 || {{ tail -n 20 {dir}/initdb.log >&2; exit 1; }}; \
             fi; \
             c=${{SSH_CLIENT%% *}}; \
             {{ echo 'local all all trust'; echo 'host all all 127.0.0.1/32 trust'; \
                echo 'host all all samenet trust'; {replication}\
                case \"$c\" in *:*) echo \"host all all $c/128 trust\";; ?*) echo \"host all all $c/32 trust\";; esac; \
             }} > {data}/pg_hba.conf; chown postgres: {data}/pg_hba.conf; \
             printf '%s' {settings} > {data}/faultline.conf; chown postgres: {data}/faultline.conf; \
             grep -qx \"include_if_exists = 'faultline.conf'\" {data}/postgresql.conf \
               || echo \"include_if_exists = 'faultline.conf'\" >> {data}/postgresql.conf",
            work = shell_quote(node.work_dir()),
            settings = shell_quote(&faultline_conf(&self.opts.settings, !self.standbys.is_empty())),
        );
        node.run(&script)
            .map_err(|e| self.err(node, "configure (initdb)", e))?;
        // A server left running by an earlier test keeps its rows: empty
        // the tables so values stay unique per key within this test (the
        // standbys replay it).
        if self.daemon(node).is_running(node)? {
            let port = self.opts.port;
            node.run(&format!(
                "{BINDIR}\"$B/psql\" -X -q -h {dir} -p {port} -U postgres -d {DATABASE} \
                 -c 'TRUNCATE la, rw' 2>/dev/null || true"
            ))?;
        }
        Ok(())
    }

    fn start(&self, node: &Node) -> Result<(), DbError> {
        if !self.runs_on(node) {
            return Ok(());
        }
        let b = self.bindir(node)?;
        if self.is_standby(node) {
            self.base_backup(node, &b)?;
        }
        let listen = if node.host().parse::<std::net::IpAddr>().is_ok() {
            node.host().to_string()
        } else {
            "*".to_string()
        };
        // Every `-c` setting here is in RESERVED.
        let args = [
            "setpriv".to_string(),
            "--reuid=postgres".into(),
            "--regid=postgres".into(),
            "--init-groups".into(),
            format!("{b}/postgres"),
            "-D".into(),
            self.data_dir(node),
            "-c".into(),
            format!("listen_addresses={listen}"),
            "-c".into(),
            format!("port={}", self.opts.port),
            "-c".into(),
            format!("unix_socket_directories={}", self.dir(node)),
            "-c".into(),
            "max_connections=200".into(),
            "-c".into(),
            "log_line_prefix=%m [%p] ".into(),
        ];
        let command: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        self.daemon(node)
            .start(node, &self.dir(node), &command.join(" "))?;
        Ok(())
    }

    fn stop(&self, node: &Node) -> Result<(), DbError> {
        if !self.runs_on(node) {
            return Ok(());
        }
        // SIGINT is PostgreSQL's fast shutdown.
        let pid = self.daemon(node).pid(node)?;
        self.daemon(node)
            .stop(node, "INT", Duration::from_secs(10))?;
        if let Some(p) = pid {
            node.run(&format!("kill -KILL -- -{p} 2>/dev/null || true"))?;
        }
        Ok(())
    }

    fn kill(&self, node: &Node) -> Result<(), DbError> {
        if !self.runs_on(node) {
            return Ok(());
        }
        let pid = self.daemon(node).pid(node)?;
        if let Some(p) = pid {
            // The whole group, frozen or not: backends must not outlive
            // the postmaster holding its shared memory.
            node.run(&format!(
                "kill -KILL -- -{p} 2>/dev/null; kill -CONT -- -{p} 2>/dev/null; true"
            ))?;
        }
        self.daemon(node)
            .stop(node, "KILL", Duration::from_secs(5))?;
        Ok(())
    }

    fn pause(&self, node: &Node) -> Result<(), DbError> {
        if !self.runs_on(node) {
            return Ok(());
        }
        if self.signal_group(node, "STOP")? {
            Ok(())
        } else {
            Err(self.err(node, "pause", "postgres is not running"))
        }
    }

    fn resume(&self, node: &Node) -> Result<(), DbError> {
        if !self.runs_on(node) {
            return Ok(());
        }
        self.signal_group(node, "CONT")?;
        Ok(())
    }

    fn wait_healthy(&self, nodes: &[Node], timeout: Duration) -> Result<(), DbError> {
        let ours: Vec<Node> = nodes.iter().filter(|n| self.runs_on(n)).cloned().collect();
        if ours.is_empty() {
            return Ok(());
        }
        crate::db::poll_healthy(
            "postgres",
            &ours,
            timeout,
            Duration::from_millis(100),
            |pending| pending.iter().map(|n| self.probe(n)).collect(),
            |n| self.daemon(n).unhealthy_context(n, "postgres"),
        )
    }

    fn log_files(&self, node: &Node) -> Vec<String> {
        if !self.runs_on(node) {
            return Vec::new();
        }
        let setup = if self.is_standby(node) {
            "basebackup.log"
        } else {
            "initdb.log"
        };
        vec![
            self.daemon(node).log_file,
            format!("{}/{setup}", self.dir(node)),
        ]
    }

    /// The server's own clock: `clock_timestamp()`, the time when the
    /// backend evaluates it (`now()` is the transaction's start).
    fn clock(&self, node: &Node) -> Result<Option<DbClock>, DbError> {
        if !self.runs_on(node) || !self.daemon(node).is_running(node)? {
            return Ok(None);
        }
        let out = node
            .run(&format!(
                "{BINDIR}\"$B/psql\" -X -q -A -t -h {dir} -p {port} -U postgres -d {DATABASE} \
                 -c 'SELECT extract(epoch FROM clock_timestamp())'",
                dir = shell_quote(&self.dir(node)),
                port = self.opts.port,
            ))
            .map_err(|e| self.err(node, "clock (clock_timestamp)", e))?;
        let epoch_secs: f64 = out.trim().parse().map_err(|_| {
            self.err(
                node,
                "clock (clock_timestamp)",
                format!("not a number: {:?}", out.trim()),
            )
        })?;
        Ok(Some(DbClock {
            epoch_secs,
            via: "postgres clock_timestamp()",
        }))
    }

    /// The first node: standbys are never promoted.
    fn primaries(&self, nodes: &[Node]) -> Result<Vec<String>, DbError> {
        Ok(nodes
            .iter()
            .filter(|n| self.is_primary(n))
            .map(|n| n.name().to_string())
            .collect())
    }
}
