//! strata: EC2 clusters as git-driven infrastructure.
//!
//! The crate is a pure core (config model, unit parsing, change detection, Ignition
//! rendering) surrounded by thin adapters that touch the disk, git, AWS or GitHub.
//! `ARCHITECTURE.md` at the repository root maps the modules.

pub mod action; // `strata action`: the GitHub Action's flows (pull request, push, manual run)
pub mod aws; // observe live state and execute actions through the AWS SDK (adapter)
pub mod changes; // which environment/layer changed between two trees (pure)
pub mod cli; // command-line definitions and the commands behind them (adapter)
pub mod config; // environment model, validation, the cluster shape, subnet carving (pure)
pub mod diagnostic; // file:line:col problems reported to the user (pure)
pub mod engine; // plan and apply: selects environments and layers, drives the AWS adapter
pub mod exit; // how a command ended, for the exit code (shared by the command line and the Action)
pub mod git; // read two commits' trees with gix (adapter)
pub mod github; // the runner's contract, event payloads and the GitHub API (adapter)
pub mod ignition; // Ignition 3.3.0 rendering and the user-data size budget (pure)
pub mod plan; // desired vs observed -> actions; markdown and JSON rendering (pure)
pub mod redact; // the secrets read in this run, hidden from everything strata posts or writes
pub mod repo; // a repository's files: from a directory or a git tree (adapter) into the model
pub mod runtime; // the async runtime of the commands that talk to AWS or GitHub
pub mod selection; // what a plan or apply works on: targets from a checkout, a commit or a diff (adapter)
pub mod units; // systemd unit files and drop-ins (pure)
