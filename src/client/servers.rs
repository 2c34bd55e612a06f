//! The servers a system's clients may open: node name → the address a
//! client opens there (`host:port`, a URI, or a host).
//!
//! Every clustered system's client factory needs the same map, built from
//! the cluster's nodes and the system's client port, and the same error
//! when a worker is placed on a node that runs no server.

use super::ClientError;
use crate::cluster::Node;
use std::collections::HashMap;
use std::sync::Arc;

/// Node name → the address of the system's server there (`host:port`, a
/// URI, or a host, as its client opens it); cheap to clone.
#[derive(Clone, Debug)]
pub struct Servers {
    /// What the servers are, for errors (`NATS`, `ZooKeeper`).
    what: &'static str,
    by_node: Arc<HashMap<String, String>>,
}

impl Servers {
    /// The servers `servers` (node name, address) of the system
    /// `what`; refused when there are none.
    pub fn new<I, N, A>(what: &'static str, servers: I) -> Result<Servers, ClientError>
    where
        I: IntoIterator<Item = (N, A)>,
        N: Into<String>,
        A: Into<String>,
    {
        let by_node: HashMap<String, String> = servers
            .into_iter()
            .map(|(n, a)| (n.into(), a.into()))
            .collect();
        if by_node.is_empty() {
            return Err(ClientError::not_applied(format!("no {what} servers")));
        }
        Ok(Servers {
            what,
            by_node: Arc::new(by_node),
        })
    }

    /// A server on each of `nodes`, listening on `port`.
    pub fn on_nodes(what: &'static str, nodes: &[Node], port: u16) -> Result<Servers, ClientError> {
        Servers::new(what, nodes.iter().map(|n| (n.name(), n.host_port(port))))
    }

    /// The address of the server on `node`; a worker placed on a node
    /// with none is refused before anything is sent (`fail`).
    pub fn on(&self, node: &str) -> Result<&str, ClientError> {
        self.by_node.get(node).map(String::as_str).ok_or_else(|| {
            ClientError::not_applied(format!("no {} server on node {node}", self.what))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_without_a_server_is_refused_by_name() {
        let servers = Servers::new("NATS", [("n1", "10.0.0.1:4222")]).expect("one server");
        assert_eq!(servers.on("n1").expect("n1"), "10.0.0.1:4222");
        let err = servers.on("n9").expect_err("no n9");
        assert!(
            err.to_string().contains("no NATS server on node n9"),
            "{err}"
        );
        let none: [(&str, &str); 0] = [];
        let err = Servers::new("ZooKeeper", none).expect_err("empty");
        assert!(err.to_string().contains("no ZooKeeper servers"), "{err}");
    }
}
