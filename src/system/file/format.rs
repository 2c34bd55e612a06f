//! The db file format: loading and checking a TOML file of shell command
//! templates. Any database through a file: a TOML file of shell command templates
//! (install, start, kill, health, ...) describes how to run a system on a
//! node, so a vendor system can be tested without writing Rust.
//!
//! The format is documented in `docs/file-db.md`. In short: every command is
//! a template whose `{variables}` are filled per node (`{node}`, `{ip}`,
//! `{dir}`, `{initial_cluster}`, user `[vars]`, ...) and run on that node
//! over SSH. A `daemon = "program args"` line lets faultline start the
//! program detached with a pid file and a log file ([`crate::db::daemon`]) and
//! signal it by pid; without it, the file gives `start`, `kill` and
//! `running` commands itself and must detach its own processes.
//!
//! Every template is checked when the file is loaded: a TOML mistake or an
//! unknown variable is reported as `file:line:column: what was expected`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::template::{var_name_at, Template, Vars};

/// The variables every template may use, besides the file's own `[vars]`.
pub const BUILTIN_VARS: &[&str] = &[
    "name",
    "node",
    "ip",
    "port",
    "dir",
    "work_dir",
    "log",
    "here",
    "nodes",
    "ips",
    "endpoints",
    "initial_cluster",
];

/// The built-in variables the `member` template (one entry of
/// `{initial_cluster}`) may use, besides the `[vars]`.
const MEMBER_VARS: &[&str] = &["name", "node", "ip", "port"];

/// The built-in variables a `[vars]` value may use: all but
/// `{initial_cluster}`, which is made of `member`s that may use `[vars]`.
const VAR_VARS: &[&str] = &[
    "name",
    "node",
    "ip",
    "port",
    "dir",
    "work_dir",
    "log",
    "here",
    "nodes",
    "ips",
    "endpoints",
];

/// The variables the `dir` template may use.
const DIR_VARS: &[&str] = &["name", "node", "ip", "port", "work_dir"];

/// A mistake in a db file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDbError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for FileDbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FileDbError {}

/// 1-based (line, column) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    (line, col)
}

/// A template with where it was written, for load-time errors.
#[derive(Debug, Clone)]
struct Located {
    template: Template,
    span: Range<usize>,
}

/// The file as TOML gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    dir: Option<Spanned<String>>,
    member: Option<Spanned<String>>,
    packages: Option<Vec<Spanned<String>>>,
    install: Option<Spanned<String>>,
    configure: Option<Spanned<String>>,
    daemon: Option<Spanned<String>>,
    daemon_name: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    stop: Option<Spanned<String>>,
    kill: Option<Spanned<String>>,
    pause: Option<Spanned<String>>,
    resume: Option<Spanned<String>>,
    running: Option<Spanned<String>>,
    wipe: Option<Spanned<String>>,
    health: Option<Spanned<String>>,
    primaries: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    logs: Option<Vec<Spanned<String>>>,
    client: Option<Spanned<String>>,
    health_timeout: Option<Spanned<f64>>,
    vars: Option<BTreeMap<String, Spanned<String>>>,
}

/// A db file, loaded and checked.
#[derive(Debug, Clone)]
pub struct FileDbSpec {
    /// The file it came from.
    pub path: PathBuf,
    /// The file's folder, absolute (`{here}`).
    pub here: PathBuf,
    /// The system's name (`name`, default: the file's stem).
    pub name: String,
    /// `{port}`.
    pub port: u16,
    /// How long set-up waits for every node to be healthy.
    pub health_timeout: Duration,
    pub(super) dir: Template,
    pub(super) member: Template,
    pub(super) vars: Vec<(String, Template)>,
    /// Debian packages the system needs on every node (`packages`):
    /// installed by the controller on this machine for the local cluster
    /// (whose nodes share its files but reach no package mirror), and
    /// with apt-get on each real host, before `install` runs.
    pub packages: Vec<String>,
    pub(super) install: Option<Template>,
    pub(super) configure: Option<Template>,
    pub(super) daemon: Option<Template>,
    pub(super) daemon_name: Option<String>,
    pub(super) start: Option<Template>,
    pub(super) stop: Option<Template>,
    pub(super) kill: Option<Template>,
    pub(super) pause: Option<Template>,
    pub(super) resume: Option<Template>,
    pub(super) running: Option<Template>,
    pub(super) wipe: Option<Template>,
    pub(super) health: Template,
    pub(super) primaries: Option<Template>,
    pub(super) version: Option<Template>,
    pub(super) logs: Vec<Template>,
    /// The client program's command line, if the file names one.
    pub client: Option<Template>,
}

/// Whether `db` names a db file (`file:PATH`, or a path ending in `.toml`),
/// and which.
pub fn db_file_path(db: &str) -> Option<PathBuf> {
    if let Some(p) = db.strip_prefix("file:") {
        return Some(PathBuf::from(p));
    }
    db.ends_with(".toml").then(|| PathBuf::from(db))
}

impl FileDbSpec {
    /// Reads and checks the db file at `path`.
    pub fn load(path: &Path) -> Result<FileDbSpec, FileDbError> {
        let text = std::fs::read_to_string(path).map_err(|e| FileDbError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            message: format!("cannot read: {e}"),
        })?;
        FileDbSpec::parse(&text, path)
    }

    /// Parses and checks db file text; `path` names it in errors and gives
    /// `{here}` (its folder).
    pub fn parse(text: &str, path: &Path) -> Result<FileDbSpec, FileDbError> {
        let at = |span: Option<Range<usize>>, message: String| {
            let (line, column) = match span {
                Some(s) => {
                    let (l, c) = line_col(text, s.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            FileDbError {
                file: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_string()))?;

        let located = |field: &str, s: &Spanned<String>| Located {
            template: Template::parse(field, s.get_ref()),
            span: s.span(),
        };
        // Where `{var}` is written inside the value, for the column.
        let var_error = |l: &Located, var: &str, allowed: &[&str], extra: &str| {
            let needle = format!("{{{var}}}");
            let offset = text
                .get(l.span.clone())
                .and_then(|src| src.find(&needle))
                .map_or(l.span.start, |o| l.span.start + o);
            let mut names: Vec<&str> = allowed.to_vec();
            names.sort_unstable();
            at(
                Some(offset..offset),
                format!(
                    "{}: unknown variable {{{var}}}; expected one of {}{extra} \
                     (write {{{{ and }}}} for literal braces)",
                    l.template.field,
                    names
                        .iter()
                        .map(|n| format!("{{{n}}}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            )
        };

        let name = match &raw.name {
            Some(n) => {
                let v = n.get_ref().trim();
                if v.is_empty()
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    return Err(at(
                        Some(n.span()),
                        format!(
                            "name: expected a non-empty name of letters, digits, '-', '_' or '.', got {v:?}"
                        ),
                    ));
                }
                v.to_string()
            }
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "db".into()),
        };
        let port = match &raw.port {
            Some(p) => u16::try_from(*p.get_ref())
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    at(
                        Some(p.span()),
                        format!("port: expected 1 to 65535, got {}", p.get_ref()),
                    )
                })?,
            None => 0,
        };
        let health_timeout = match &raw.health_timeout {
            Some(t) => {
                let v = *t.get_ref();
                if !(v > 0.0 && v.is_finite()) {
                    return Err(at(
                        Some(t.span()),
                        format!("health_timeout: expected a positive number of seconds, got {v}"),
                    ));
                }
                Duration::from_secs_f64(v)
            }
            None => Duration::from_secs(60),
        };

        // User variables: names must not hide a built-in one; values may
        // use the built-in variables.
        let mut vars = Vec::new();
        for (k, v) in raw.vars.iter().flatten() {
            let l = located(&format!("vars.{k}"), v);
            if BUILTIN_VARS.contains(&k.as_str()) {
                return Err(at(
                    Some(v.span()),
                    format!("vars.{k}: {{{k}}} is a built-in variable; choose another name"),
                ));
            }
            if var_name_at(&format!("{{{k}}}")) != Some(k.as_str()) {
                return Err(at(
                    Some(v.span()),
                    format!(
                        "vars.{k}: a variable name is letters, digits and '_', not starting with a digit"
                    ),
                ));
            }
            if let Some(bad) = l.template.unknown_var(&|n| VAR_VARS.contains(&n)) {
                return Err(var_error(
                    &l,
                    bad,
                    VAR_VARS,
                    " (a [vars] value may use built-in variables but {initial_cluster})",
                ));
            }
            vars.push((k.clone(), l));
        }
        let user: Vec<String> = vars.iter().map(|(k, _)| k.clone()).collect();
        let all: Vec<&str> = BUILTIN_VARS
            .iter()
            .copied()
            .chain(user.iter().map(String::as_str))
            .collect();
        let check =
            |field: &str, s: &Option<Spanned<String>>| -> Result<Option<Template>, FileDbError> {
                let Some(s) = s else { return Ok(None) };
                let l = located(field, s);
                if l.template.text.trim().is_empty() {
                    return Err(at(
                        Some(s.span()),
                        format!("{field}: expected a command, got an empty string"),
                    ));
                }
                if let Some(bad) = l.template.unknown_var(&|n| all.contains(&n)) {
                    return Err(var_error(&l, bad, &all, ""));
                }
                Ok(Some(l.template))
            };
        let restricted =
            |field: &str, s: &Option<Spanned<String>>, allowed: &[&str], default: &str| {
                let Some(s) = s else {
                    return Ok(Template::parse(field, default));
                };
                let l = located(field, s);
                match l.template.unknown_var(&|n| allowed.contains(&n)) {
                    Some(bad) => Err(var_error(&l, bad, allowed, "")),
                    None => Ok(l.template),
                }
            };
        let dir = restricted("dir", &raw.dir, DIR_VARS, "{work_dir}/{name}")?;
        let member_vars: Vec<&str> = MEMBER_VARS
            .iter()
            .copied()
            .chain(user.iter().map(String::as_str))
            .collect();
        let member = restricted("member", &raw.member, &member_vars, "{node}={ip}")?;

        let daemon = check("daemon", &raw.daemon)?;
        let start = check("start", &raw.start)?;
        let stop = check("stop", &raw.stop)?;
        let kill = check("kill", &raw.kill)?;
        let pause = check("pause", &raw.pause)?;
        let resume = check("resume", &raw.resume)?;
        let running = check("running", &raw.running)?;
        if let Some(d) = &raw.daemon {
            // The daemon helper does all of these by pid: a second way
            // would be ambiguous.
            for (field, s) in [
                ("start", &raw.start),
                ("stop", &raw.stop),
                ("kill", &raw.kill),
                ("pause", &raw.pause),
                ("resume", &raw.resume),
                ("running", &raw.running),
            ] {
                if let Some(s) = s {
                    return Err(at(
                        Some(s.span()),
                        format!(
                            "{field}: not used with `daemon` (line {}): faultline starts, stops, \
                             kills, pauses and resumes the daemon by its pid; remove {field}, \
                             or remove daemon and give start, kill and running yourself",
                            line_col(text, d.span().start).0
                        ),
                    ));
                }
            }
        } else {
            if let Some(n) = &raw.daemon_name {
                return Err(at(
                    Some(n.span()),
                    "daemon_name: only used with `daemon`".into(),
                ));
            }
            let missing: Vec<&str> = [
                ("start", start.is_none()),
                ("kill", kill.is_none()),
                ("running", running.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(f, _)| *f)
            .collect();
            if !missing.is_empty() {
                return Err(at(
                    None,
                    format!(
                        "missing {}: give `daemon = \"program args\"` (faultline runs it in the \
                         background with a pid file), or all of start (which must detach), kill \
                         and running (exits 0 while the process lives)",
                        missing.join(", ")
                    ),
                ));
            }
        }
        let daemon_name = raw.daemon_name.as_ref().map(|n| n.get_ref().clone());
        let health = check("health", &raw.health)?.ok_or_else(|| {
            at(
                None,
                "missing health: a command that exits 0 when the node serves requests".into(),
            )
        })?;
        let mut packages = Vec::new();
        for p in raw.packages.iter().flatten() {
            let name = p.get_ref();
            // Debian package names: lowercase letters, digits, + - . (and
            // nothing a shell would read).
            let valid = name.len() >= 2
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
            if !valid {
                return Err(at(
                    Some(p.span()),
                    format!("packages: {name:?} is not a Debian package name"),
                ));
            }
            packages.push(name.clone());
        }
        let mut logs = Vec::new();
        for (i, l) in raw.logs.iter().flatten().enumerate() {
            let field = format!("logs[{i}]");
            if let Some(t) = check(&field, &Some(l.clone()))? {
                logs.push(t);
            }
        }
        let here = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let here = std::fs::canonicalize(here).unwrap_or_else(|_| here.to_path_buf());
        Ok(FileDbSpec {
            path: path.to_path_buf(),
            here,
            name,
            port,
            health_timeout,
            dir,
            member,
            vars: vars.into_iter().map(|(k, l)| (k, l.template)).collect(),
            packages,
            install: check("install", &raw.install)?,
            configure: check("configure", &raw.configure)?,
            daemon,
            daemon_name,
            start,
            stop,
            kill,
            pause,
            resume,
            running,
            wipe: check("wipe", &raw.wipe)?,
            health,
            primaries: check("primaries", &raw.primaries)?,
            version: check("version", &raw.version)?,
            logs,
            client: check("client", &raw.client)?,
        })
    }

    /// Whether a template may use `name`: a built-in or a `[vars]` name.
    pub fn knows_var(&self, name: &str) -> bool {
        BUILTIN_VARS.contains(&name) || self.vars.iter().any(|(k, _)| k == name)
    }

    /// Whether the file says how to find the primaries (`primaries`), so
    /// faults aimed at the leader can run.
    pub fn has_primaries(&self) -> bool {
        self.primaries.is_some()
    }

    /// Checks a client command line given outside the file (`--client`).
    pub fn client_template(&self, text: &str) -> Result<Template, String> {
        let t = Template::parse("--client", text);
        if t.text.trim().is_empty() {
            return Err("--client: expected a command line".into());
        }
        if let Some(bad) = t.unknown_var(&|n| self.knows_var(n)) {
            return Err(format!(
                "--client {text:?}: unknown variable {{{bad}}}; the variables are the built-in \
                 ones ({}) and the [vars] of {}",
                BUILTIN_VARS.join(", "),
                self.path.display()
            ));
        }
        Ok(t)
    }

    /// The variables of every member, in the order of `members` (name, ip,
    /// work dir).
    pub fn vars_for(&self, members: &[(String, String, String)]) -> Result<Vec<Vars>, String> {
        let port = self.port.to_string();
        let join = |f: &dyn Fn(&(String, String, String)) -> String| {
            members.iter().map(f).collect::<Vec<_>>().join(",")
        };
        let nodes = join(&|m| m.0.clone());
        let ips = join(&|m| m.1.clone());
        let endpoints = join(&|m| format!("{}:{port}", m.1));
        // First everything but {initial_cluster}, then the members it is
        // made of (which may use [vars]), then {initial_cluster} itself.
        let mut out = Vec::new();
        let mut entries = Vec::new();
        for (node, ip, work_dir) in members {
            let mut v = Vars::default();
            v.set("name", &self.name);
            v.set("node", node);
            v.set("ip", ip);
            v.set("port", &port);
            v.set("work_dir", work_dir);
            let dir = self.dir.expand(&v)?;
            v.set("log", format!("{dir}/{}.log", self.name));
            v.set("dir", dir);
            v.set("here", self.here.display().to_string());
            v.set("nodes", &nodes);
            v.set("ips", &ips);
            v.set("endpoints", &endpoints);
            let mut user = Vec::new();
            for (k, t) in &self.vars {
                user.push((k.clone(), t.expand(&v)?));
            }
            for (k, val) in user {
                v.set(&k, val);
            }
            entries.push(self.member.expand(&v)?);
            out.push(v);
        }
        let initial = entries.join(",");
        for v in &mut out {
            v.set("initial_cluster", &initial);
        }
        Ok(out)
    }
}
