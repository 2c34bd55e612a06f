//! faultline: a Jepsen-style consistency test harness.
//!
//! The checker core — [`history`], [`model`] and [`check`] — is pure: no async
//! runtime, no SSH, no network. Build it alone with
//! `faultline = { version = "...", default-features = false }` to check
//! histories from your own tests.
//!
//! The control plane (clusters, databases, clients, nemeses, the runner) sits
//! behind the default `controller` feature.
#![warn(missing_docs)]

/// The README's Rust examples, compiled and run by `cargo test --doc` so
/// they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;

pub mod check;
pub mod history;
pub mod model;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(any(feature = "cli", feature = "controller"))]
pub mod host;
#[cfg(feature = "report")]
pub mod report;

#[cfg(feature = "controller")]
pub mod client;
#[cfg(feature = "controller")]
pub mod cluster;
#[cfg(feature = "controller")]
pub mod control;
#[cfg(feature = "controller")]
pub mod db;
#[cfg(feature = "controller")]
pub mod generator;
#[cfg(feature = "controller")]
pub mod nemesis;
#[cfg(feature = "controller")]
pub mod runner;
#[cfg(all(feature = "cli", feature = "controller"))]
pub mod serve;
#[cfg(feature = "controller")]
pub mod store;
#[cfg(feature = "controller")]
pub mod system;
#[cfg(feature = "controller")]
pub mod workload;
