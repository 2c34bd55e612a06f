//! The systems under test, one folder each, in the spirit of Jepsen's one
//! namespace per database: a folder holds the system's db lifecycle
//! (`db.rs`), its client (`client.rs`), the models its clients run, its
//! typed options (read mode, isolation, parsed once when a test is
//! validated), its version command and the Debian packages it needs.
//!
//! The door is [`find`]: a `--db` value → the [`System`] in [`SYSTEMS`].
//! A system is configured from a test's [`Choice`] into a [`Configured`]
//! (typed options; what its reads guarantee), which is deployed on nodes
//! into a [`Deployed`] (the [`Db`] and the [`ClientFactory`]).
//!
//! Generic pieces live elsewhere: `db/` holds the [`Db`] trait and the
//! daemon helpers, `client/` the [`crate::client::Client`] trait, the
//! shared key-value operations (`client/kv.rs`) and the external JSON-lines
//! client. Nothing outside this folder names a system.
//!
//! How to add a system (docs/architecture.md): a folder with its db, its
//! client and an implementation of [`System`], and one line in
//! [`SYSTEMS`]; `memory/` is the smallest example.

pub mod etcd;
pub mod file;
pub mod galera;
pub mod memory;
pub mod nats;
pub mod postgres;
pub mod rabbitmq;
pub mod redis;
pub mod zookeeper;

use crate::client::ClientFactory;
use crate::cluster::Node;
use crate::db::Db;
use crate::workload::Workload;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Every system `--db` can name. A system is found by [`System::names`]:
/// its name, or (the db file system) any path to a db file.
pub const SYSTEMS: &[&dyn System] = &[
    &etcd::EtcdSystem,
    &postgres::PostgresSystem,
    &zookeeper::ZookeeperSystem,
    &redis::RedisSystem,
    &nats::NatsSystem,
    &galera::GaleraSystem,
    &rabbitmq::RabbitMqSystem,
    &memory::MemorySystem,
    &file::FileSystem,
];

/// The system `db` (a `--db` value) names.
pub fn find(db: &str) -> Option<&'static dyn System> {
    SYSTEMS.iter().copied().find(|s| s.names(db))
}

/// The systems known by name, for messages (`etcd, postgres, ...`); the
/// db file system is named by a path instead.
pub fn known() -> String {
    SYSTEMS
        .iter()
        .filter(|s| s.names(s.name()))
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a test says about its system: the fields of the test spec the
/// systems read. Empty `read_mode` and `isolation` mean the system's
/// default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Choice<'a> {
    /// The `--db` value (a name, or a db file's path).
    pub db: &'a str,
    /// The read mode's name, or empty.
    pub read_mode: &'a str,
    /// The isolation level's name, or empty.
    pub isolation: &'a str,
    /// A client program command line (db files).
    pub client: Option<&'a str>,
    /// A server binary to upload and run instead of the Debian package's
    /// (`--db-binary`), for a system whose [`System::server_program`] is
    /// one program.
    pub binary: Option<&'a Path>,
    /// Settings passed to the database, each `KEY=VALUE` (`--db-opt`).
    pub db_opts: &'a [String],
}

/// One `--db-opt KEY=VALUE`: a setting passed to the database (a
/// postgresql.conf setting, a redis.conf directive, a zoo.cfg line, an
/// etcd flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbOpt {
    /// The setting's name.
    pub key: String,
    /// Its value, as given.
    pub value: String,
}

/// Parses one `KEY=VALUE`: a key of letters, digits, `_`, `.` and `-`, and
/// a value on one line. The error says what was expected, with an example.
pub fn parse_db_opt(s: &str) -> Result<DbOpt, String> {
    let bad = |why: &str| {
        format!("{why}: expected KEY=VALUE, e.g. --db-opt synchronous_commit=off, got {s:?}")
    };
    let (key, value) = s.split_once('=').ok_or_else(|| bad("no `=`"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(bad("no KEY before `=`"));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(bad("a KEY is letters, digits, `_`, `.` and `-`"));
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(bad("a VALUE is one line"));
    }
    Ok(DbOpt {
        key: key.to_string(),
        value: value.to_string(),
    })
}

/// The settings a system's configuration sets itself and depends on
/// (where it listens, where its data lives, who its peers are): a
/// `--db-opt` may not override them, since the override would break the
/// set-up, the clients or the nemeses, or be silently overridden in turn.
#[derive(Clone, Copy, Debug)]
pub struct Reserved {
    /// The system's name, for the error.
    pub system: &'static str,
    /// The setting names, compared ignoring case; one ending in `*` stands
    /// for every name it begins (`server.*`).
    pub keys: &'static [&'static str],
    /// Where faultline sets them, for the error.
    pub set_in: &'static str,
}

impl Reserved {
    /// The reserved name `key` falls under, if any.
    pub fn find(&self, key: &str) -> Option<&'static str> {
        let key = key.to_ascii_lowercase();
        self.keys.iter().copied().find(|r| {
            let r = r.to_ascii_lowercase();
            match r.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => key == r,
            }
        })
    }

    /// Refuses the first of `opts` that names a reserved setting, saying
    /// which, why and what to do instead.
    pub fn check(&self, opts: &[DbOpt]) -> Result<(), String> {
        match opts.iter().find_map(|o| self.find(&o.key).map(|r| (o, r))) {
            None => Ok(()),
            Some((o, r)) => Err(format!(
                "db_opts: {key}={value} would override {r}, which faultline sets for {system} \
                 ({set_in}) and depends on; leave {key} out of --db-opt (faultline's own \
                 settings: {all})",
                key = o.key,
                value = o.value,
                system = self.system,
                set_in = self.set_in,
                all = self.keys.join(", "),
            )),
        }
    }
}

impl Choice<'_> {
    /// The `--db-opt` settings parsed; an error names the field.
    pub fn db_opts(&self) -> Result<Vec<DbOpt>, String> {
        self.db_opts
            .iter()
            .map(|o| parse_db_opt(o).map_err(|e| format!("db_opts: {e}")))
            .collect()
    }

    /// The `--db-opt` settings parsed, refusing any that `reserved` names.
    pub fn db_opts_except(&self, reserved: &Reserved) -> Result<Vec<DbOpt>, String> {
        let opts = self.db_opts()?;
        reserved.check(&opts)?;
        Ok(opts)
    }

    /// Refuses any `--db-opt` for a system that has no settings to pass
    /// them to, saying which systems take them.
    pub fn no_db_opts(&self, system: &str) -> Result<(), String> {
        match self.db_opts.first() {
            None => Ok(()),
            Some(o) => Err(format!(
                "db_opts: {system} takes no database options (got {o:?}); --db-opt is for \
                 postgres (a postgresql.conf setting), redis (a redis.conf directive), \
                 zookeeper (a zoo.cfg line), etcd (a --KEY=VALUE flag), galera (a my.cnf \
                 line) and rabbitmq (queue_type, cluster_partition_handling)"
            )),
        }
    }

    /// The read mode parsed as a system's own type, or its default when
    /// none was given; an error names the field.
    pub fn read_mode_or_default<T>(&self) -> Result<T, String>
    where
        T: std::str::FromStr + Default,
        T::Err: std::fmt::Display,
    {
        if self.read_mode.is_empty() {
            return Ok(T::default());
        }
        self.read_mode
            .parse()
            .map_err(|e| format!("read_mode: {e}"))
    }
}

/// What a system's reads guarantee: what the checkers must assume (the
/// set checker treats a missing element as lost only when reads are
/// linearizable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Every read sees every write acknowledged before it began.
    Linearizable,
    /// A read may miss recent writes (a replica's, a local server's data).
    MaybeStale,
}

impl Reads {
    /// True when the checkers may assume linearizable reads.
    pub fn linearizable(self) -> bool {
        self == Reads::Linearizable
    }

    /// The read mode the checkers are given: `linearizable`, or
    /// `serializable` (reads may be stale).
    pub fn checker_mode(self) -> &'static str {
        match self {
            Reads::Linearizable => "linearizable",
            Reads::MaybeStale => "serializable",
        }
    }
}

/// A Debian package a system needs: a program (a path, or a name looked
/// up in `PATH`) that is there once the package is installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Package {
    /// The program that shows the package is installed.
    pub program: &'static str,
    /// The Debian package.
    pub package: &'static str,
}

/// What the clients of one test need: the workload, the nodes, the
/// operation timeout.
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings<'a> {
    /// The workload the clients run.
    pub workload: &'a Workload,
    /// The nodes the clients talk to.
    pub nodes: &'a [Node],
    /// How long one operation may take.
    pub op_timeout: Duration,
}

/// A system under test, as the registry lists it.
pub trait System: Send + Sync {
    /// Its `--db` name.
    fn name(&self) -> &'static str;

    /// Whether the `--db` value `db` names this system.
    fn names(&self, db: &str) -> bool {
        db == self.name()
    }

    /// The name a test of `db` is called by (`<label>-<workload>-...`).
    fn label(&self, _db: &str) -> String {
        self.name().to_string()
    }

    /// Whether a test may name a client program for it (`--client`).
    fn takes_client_program(&self) -> bool {
        false
    }

    /// The models its clients run; `None`: every one (its client answers
    /// `fail` to what it cannot do).
    fn models(&self) -> Option<&'static [&'static str]>;

    /// The Debian packages the local cluster needs for it on this machine.
    fn packages(&self) -> &'static [Package] {
        &[]
    }

    /// The one server program a binary of the user's own build
    /// (`--db-binary`) replaces on every node (`etcd`, `redis-server`,
    /// `nats-server`); `None` (the default) when it runs several programs
    /// or its Debian packages only ([`server_program`] says why).
    fn server_program(&self) -> Option<&'static str> {
        None
    }

    /// Parses and checks the test's options for this system (read mode,
    /// isolation, a db file and its client), refusing what it does not
    /// know with a message naming the field.
    fn configure(&self, choice: &Choice<'_>) -> Result<Box<dyn Configured>, String>;
}

/// The systems that take a server binary of the user's own build
/// (`--db-binary`), for messages: `etcd, redis, nats`.
pub fn binary_systems() -> String {
    SYSTEMS
        .iter()
        .filter(|s| s.server_program().is_some())
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The server program `--db-binary` replaces for `system`, or why it
/// takes none.
pub fn server_program(system: &dyn System) -> Result<&'static str, String> {
    system.server_program().ok_or_else(|| {
        format!(
            "{} runs its Debian packages only (faultline runs a binary of your own build for \
             {}, each a single server program)",
            system.name(),
            binary_systems()
        )
    })
}

/// Refuses a `--db-binary` (`field` names the flag in the message) that
/// `system` cannot run, or that cannot be read here, before anything is
/// built.
pub fn check_binary(system: &dyn System, binary: Option<&Path>, field: &str) -> Result<(), String> {
    let Some(path) = binary else {
        return Ok(());
    };
    let program = server_program(system)
        .map_err(|why| format!("{field}: refused for {}: {why}", system.name()))?;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!(
            "{field}: {} is not a file (a {program} binary was expected)",
            path.display()
        )),
        Err(e) => Err(format!("{field}: cannot read {}: {e}", path.display())),
    }
}

/// A system with its options parsed.
pub trait Configured: Send + Sync + std::fmt::Debug {
    /// The read mode's name, as `test.json` records it (the default made
    /// explicit).
    fn read_mode(&self) -> &'static str;

    /// What its reads guarantee.
    fn reads(&self) -> Reads;

    /// Checks that clients can be made (a db file's client program is
    /// named), before a test builds anything; `faultline db` needs none.
    fn check_clients(&self) -> Result<(), String> {
        Ok(())
    }

    /// Whether its db can name its primaries (`Db::primaries`), so that
    /// faults aimed at the leader can run. Every built-in system can.
    fn names_primaries(&self) -> bool {
        true
    }

    /// Whether clock faults can move its db's clock on the local cluster,
    /// where they run it under libfaketime (`crate::nemesis::clock`): only
    /// programs that read the clock through libc follow it. `Err` says why
    /// not; by default a system is not known to.
    fn faketime_clock(&self) -> Result<(), String> {
        Err(
            "its programs are not known to read the clock through libc, which libfaketime \
             needs"
                .into(),
        )
    }

    /// Whether its db's members can be removed and added back while it
    /// runs (the `membership` fault, through `Db::membership`). `Err`
    /// says why not; by default a system has no membership API faultline
    /// knows.
    fn membership(&self) -> Result<(), String> {
        Err("faultline knows no API to change its members while it runs (only etcd's)".into())
    }

    /// Whether its db keeps its durable data in a folder faultline knows
    /// on the nodes (`Db::data_folder`), which the `lose-unfsynced` fault
    /// mounts its filesystem over. `Err` says why not; by default a system
    /// names none.
    fn data_folder(&self) -> Result<(), String> {
        Err("faultline knows no folder on the nodes where it keeps its data".into())
    }

    /// The system on `nodes`: its db and how its clients are made.
    fn deploy(&self, nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>>;
}

/// A system deployed on a cluster's nodes.
pub trait Deployed: Send + Sync {
    /// Its db lifecycle.
    fn db(&self) -> Arc<dyn Db>;

    /// How its clients are made, for a workload.
    fn client_factory(&self, settings: &ClientSettings<'_>) -> anyhow::Result<ClientFactory>;

    /// Its version on `node`, when it can tell.
    fn version(&self, node: &Node) -> Option<String>;

    /// How long set-up waits for every node to be healthy.
    fn healthy_within(&self) -> Duration {
        Duration::from_secs(60)
    }
}

/// Refuses a workload whose model `system`'s clients do not run.
pub fn check_workload(system: &dyn System, workload: &Workload) -> Result<(), String> {
    match system.models() {
        Some(runs) if !runs.contains(&workload.model.as_str()) => Err(format!(
            "the {} client does not run the {} workload (model {}); it runs: {}",
            system.name(),
            workload.name,
            workload.model,
            runs.join(", ")
        )),
        _ => Ok(()),
    }
}

/// The system `db` names with default options (`binary`: a server binary
/// to upload, `--db-binary`), for `faultline db` and `faultline heal`: a
/// db file is loaded and checked here, before any cluster is looked at.
pub fn with_defaults(db: &str, binary: Option<&Path>) -> anyhow::Result<Box<dyn Configured>> {
    let system = find(db).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown database {db:?} (known: {}, or a db file: FILE.toml or file:PATH)",
            known()
        )
    })?;
    check_binary(system, binary, "--db-binary").map_err(|e| anyhow::anyhow!(e))?;
    system
        .configure(&Choice {
            db,
            binary,
            ..Choice::default()
        })
        .map_err(|e| anyhow::anyhow!(e))
}

/// The `--db` value `db` as another directory reads it: a db file's path
/// made absolute (`file:/abs/path.toml`), a system's name as it is. What a
/// run records for `faultline heal`, which may run elsewhere.
pub fn absolute_db(db: &str) -> String {
    match file::format::db_file_path(db) {
        Some(p) => match std::fs::canonicalize(&p) {
            Ok(abs) => format!("file:{}", abs.display()),
            Err(_) => db.to_string(),
        },
        None => db.to_string(),
    }
}

/// What the checkers must assume of the reads of a stored run, from its
/// `test.json` `db` and `read_mode`: the system's answer, or for a run
/// the registry cannot configure (an old run, a moved db file) the
/// recorded read mode taken at its word.
pub fn recorded_reads(db: &str, read_mode: &str) -> Reads {
    let configured = find(db).and_then(|s| {
        s.configure(&Choice {
            db,
            read_mode,
            ..Choice::default()
        })
        .ok()
    });
    match configured {
        Some(c) => c.reads(),
        None if read_mode == "linearizable" => Reads::Linearizable,
        None => Reads::MaybeStale,
    }
}

/// Runs the version command `command` on `node` and returns its trimmed
/// output, `None` when it cannot be run.
pub fn run_version(node: &Node, command: &str) -> Option<String> {
    node.run(command).ok().map(|out| out.trim().to_string())
}

/// The one read mode of a system that has no choice of reads: empty or
/// its name, else an error naming the field.
pub fn only_read_mode(system: &str, given: &str, name: &'static str) -> Result<(), String> {
    if given.is_empty() || given == name {
        Ok(())
    } else {
        Err(format!(
            "read_mode: {system} has no read mode {given:?}; its reads are {name}"
        ))
    }
}

#[cfg(test)]
mod tests;
