//! Any database through a db file (docs/file-db.md): the file format
//! ([`format`]: a TOML file of shell command templates, loaded and checked),
//! the template language of its commands ([`template`]), and the db that
//! runs them on the nodes ([`db`]). Its clients are an external program
//! speaking JSON lines (`crate::client::external`).

pub mod db;
pub mod format;
pub mod template;

pub use db::FileDb;
pub use format::{db_file_path, FileDbError, FileDbSpec, BUILTIN_VARS};
pub use template::{Template, Vars};

use super::{ClientSettings, Configured, Deployed, Reads, System};
use crate::client::external::{ExternalClientFactory, NodeCommand};
use crate::client::ClientFactory;
use crate::cluster::Node;
use crate::db::Db;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Db files in the registry: named by a path (`FILE.toml`, `file:PATH`).
#[derive(Debug)]
pub struct FileSystem;

impl System for FileSystem {
    fn name(&self) -> &'static str {
        "file"
    }

    fn names(&self, db: &str) -> bool {
        db_file_path(db).is_some()
    }

    /// A db file is named by its stem, not its path.
    fn label(&self, db: &str) -> String {
        db_file_path(db)
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
            .unwrap_or_else(|| "file".into())
    }

    fn takes_client_program(&self) -> bool {
        true
    }

    /// The external client is given every workload (it answers `fail` to
    /// what it cannot do).
    fn models(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// A db file installs what it needs with its own `install` command.
    fn configure(&self, choice: &super::Choice<'_>) -> Result<Box<dyn Configured>, String> {
        // The reads are whatever the file's system gives: the test says
        // what the checkers may assume, as for etcd.
        let linearizable = match choice.read_mode {
            "" | "linearizable" => true,
            "serializable" => false,
            other => {
                return Err(format!(
                    "read_mode: unknown read mode {other:?}; use linearizable or serializable"
                ))
            }
        };
        // A db file's commands are its own: there is no config to pass
        // settings to.
        choice.no_db_opts("a db file")?;
        let path =
            db_file_path(choice.db).ok_or_else(|| format!("{:?} is not a db file", choice.db))?;
        let file = FileDbSpec::load(&path).map_err(|e| e.to_string())?;
        let client = match choice.client {
            Some(c) => Ok(file.client_template(c)?),
            None => file.client.clone().ok_or_else(|| no_client(&path)),
        };
        Ok(Box::new(FileConfig {
            file: Arc::new(file),
            client,
            linearizable,
        }))
    }
}

fn no_client(path: &Path) -> String {
    format!(
        "{}: no client program: add `client = \"program args {{node}} {{ip}}\"` \
         to the file, or pass --client (docs/file-db.md)",
        path.display()
    )
}

#[derive(Debug)]
struct FileConfig {
    file: Arc<FileDbSpec>,
    /// The client program's command line, or why there is none.
    client: Result<Template, String>,
    linearizable: bool,
}

impl Configured for FileConfig {
    fn names_primaries(&self) -> bool {
        self.file.has_primaries()
    }

    fn read_mode(&self) -> &'static str {
        self.reads().checker_mode()
    }

    fn reads(&self) -> Reads {
        if self.linearizable {
            Reads::Linearizable
        } else {
            Reads::MaybeStale
        }
    }

    fn check_clients(&self) -> Result<(), String> {
        self.client.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    fn deploy(&self, nodes: &[Node]) -> anyhow::Result<Box<dyn Deployed>> {
        Ok(Box::new(FileDeployed {
            db: Arc::new(FileDb::new(self.file.clone(), nodes)?),
            client: self.client.clone(),
        }))
    }
}

struct FileDeployed {
    db: Arc<FileDb>,
    client: Result<Template, String>,
}

impl Deployed for FileDeployed {
    fn db(&self) -> Arc<dyn Db> {
        self.db.clone()
    }

    fn client_factory(&self, s: &ClientSettings<'_>) -> anyhow::Result<ClientFactory> {
        let client = self.client.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut commands = std::collections::HashMap::new();
        for n in s.nodes {
            let vars = self
                .db
                .vars(n.name())
                .ok_or_else(|| anyhow::anyhow!("no variables for node {}", n.name()))?;
            let command = client.expand(vars).map_err(|e| anyhow::anyhow!(e))?;
            commands.insert(
                n.name().to_string(),
                NodeCommand {
                    ip: n.host().to_string(),
                    command,
                },
            );
        }
        Ok(ExternalClientFactory::new(commands).into_factory())
    }

    fn version(&self, node: &Node) -> Option<String> {
        self.db.version(node)
    }

    fn healthy_within(&self) -> Duration {
        self.db.spec().health_timeout
    }
}

#[cfg(test)]
mod tests;
