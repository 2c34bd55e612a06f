//! Every local cluster the tests build has a name prefix and a subnet that
//! no other test file uses.
//!
//! Why: a test binary killed halfway (a CI timeout, a Ctrl-C) leaves its
//! cluster's namespaces and bridge behind. The next run of the *same* test
//! removes them first (`cluster_support::CliCluster`, `Teardown`), but a
//! leftover holding a subnet another test wants makes that test fail with
//! "subnet ... clashes with existing routes" — a failure that has nothing
//! to do with what it tests, and one CI run already met. Two files sharing
//! a prefix would remove each other's clusters. This reads the test sources
//! (plain text: every cluster is named by string literals next to
//! `PREFIX`, `--name-prefix`, `Teardown::new`, `Rig::new` or
//! `CliCluster::new`) and fails naming both files when two share a prefix,
//! or hold overlapping subnets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The string literals of `text`, in order (escapes kept as written).
fn literals(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut lit = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    lit.push(c);
                    if let Some(next) = chars.next() {
                        lit.push(next);
                    }
                }
                '"' => break,
                _ => lit.push(c),
            }
        }
        found.push(lit);
    }
    found
}

/// `a.b.c.d/len` as (network, mask); None for anything else.
fn subnet(text: &str) -> Option<(u32, u32)> {
    let (addr, len) = text.split_once('/')?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((u32::from(addr) & mask, mask))
}

fn overlap(a: (u32, u32), b: (u32, u32)) -> bool {
    let mask = a.1 & b.1;
    a.0 & mask == b.0 & mask
}

/// The cluster prefixes and subnets named in one test file.
fn names(text: &str) -> (Vec<String>, Vec<String>) {
    // Where a prefix is written as a literal: right after the marker (for
    // `CliCluster::new`, after its first argument, the state dir).
    const MARKERS: [(&str, bool); 4] = [
        ("PREFIX: &str =", false),
        ("Teardown::new(", false),
        ("Rig::new(", false),
        ("CliCluster::new(", true),
    ];
    let mut prefixes = Vec::new();
    let mut subnets = Vec::new();
    for line in text.lines() {
        for (marker, skip_first_argument) in MARKERS {
            let Some((_, mut rest)) = line.split_once(marker) else {
                continue;
            };
            if skip_first_argument {
                rest = rest.split_once(',').map_or("", |(_, r)| r);
            }
            if rest.trim_start().starts_with('"') {
                prefixes.extend(literals(rest).into_iter().take(1));
            }
        }
        subnets.extend(literals(line).into_iter().filter(|l| subnet(l).is_some()));
    }
    // `"--name-prefix", "NAME"`, possibly across lines.
    for (_, rest) in text
        .match_indices("\"--name-prefix\"")
        .map(|(i, m)| text.split_at(i + m.len()))
    {
        let rest = rest
            .trim_start()
            .strip_prefix(',')
            .unwrap_or("")
            .trim_start();
        if rest.starts_with('"') {
            prefixes.extend(literals(rest).into_iter().take(1));
        }
    }
    prefixes.sort();
    prefixes.dedup();
    subnets.sort();
    subnets.dedup();
    (prefixes, subnets)
}

fn test_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
}

#[test]
fn no_two_test_files_share_a_cluster_prefix_or_subnet() {
    let mut prefix_owner: BTreeMap<String, String> = BTreeMap::new();
    let mut subnet_owner: Vec<((u32, u32), String, String)> = Vec::new();
    let mut clashes = Vec::new();
    let mut clusters = 0;
    for file in test_files() {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "cluster_names.rs" {
            continue;
        }
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let (prefixes, subnets) = names(&text);
        clusters += prefixes.len();
        for p in prefixes {
            if let Some(other) = prefix_owner.insert(p.clone(), name.clone()) {
                clashes.push(format!("prefix {p:?} is used by {other} and {name}"));
            }
        }
        for s in subnets {
            let Some(net) = subnet(&s) else { continue };
            for (other_net, other_text, other) in &subnet_owner {
                if overlap(net, *other_net) && *other != name {
                    clashes.push(format!(
                        "subnet {s} ({name}) overlaps {other_text} ({other})"
                    ));
                }
            }
            subnet_owner.push((net, s, name.clone()));
        }
    }
    // The scan must see the clusters, or it proves nothing.
    assert!(
        clusters >= 30,
        "found only {clusters} cluster prefixes in tests/*.rs: the scan no longer \
         recognizes how tests name their clusters"
    );
    assert!(
        clashes.is_empty(),
        "pick a prefix and a subnet no other test file uses:\n{}",
        clashes.join("\n")
    );
}

#[test]
fn the_scan_reads_each_way_a_test_names_a_cluster() {
    let text = r#"
const PREFIX: &str = "flaa";
const SUBNET: &str = "10.78.1.0/24";
let g = Teardown::new("flbb", "10.78.2.0/24", 3);
let r = Rig::new("flcc", "10.78.3.0/24", "10.78.3.");
let d = CliCluster::new(&state, "fldd");
let up = ["cluster", "up", "--subnet", "10.78.4.0/24",
    "--name-prefix",
    "flee"];
"#;
    let (prefixes, subnets) = names(text);
    assert_eq!(prefixes, ["flaa", "flbb", "flcc", "fldd", "flee"]);
    assert_eq!(
        subnets,
        [
            "10.78.1.0/24",
            "10.78.2.0/24",
            "10.78.3.0/24",
            "10.78.4.0/24"
        ]
    );
    assert!(overlap(
        subnet("10.78.0.0/16").unwrap(),
        subnet("10.78.4.0/24").unwrap()
    ));
    assert!(!overlap(
        subnet("10.78.3.0/24").unwrap(),
        subnet("10.78.4.0/24").unwrap()
    ));
}
