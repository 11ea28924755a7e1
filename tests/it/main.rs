//! strata's integration tests: one binary, with a harness for temporary git
//! repositories and for running the real `strata` binary, an AWS of its own per test
//! (`cloud`), image feeds (`feed`) and planning and applying as the tests do it
//! (`fixtures`).

mod accounts;
mod action;
mod action_drift;
mod action_guards;
mod changes;
mod cli;
mod cloud;
mod cluster;
mod converge;
mod crash;
mod drift;
mod examples;
mod faults;
mod feed;
mod fixed;
mod fixtures;
mod github;
mod group_subnets;
mod harness;
mod iam;
mod image;
mod images;
mod invalid;
mod inventory;
mod issues;
mod lock;
mod machine_reads;
mod matrix;
mod merge_queue;
mod network;
mod parallel;
mod proxy;
mod rate_limit;
mod render;
mod scenario;
mod untrusted;
