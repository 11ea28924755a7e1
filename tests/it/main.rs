//! strata's integration tests: one binary, with a harness for temporary git
//! repositories and for running the real `strata` binary.

mod action;
mod action_guards;
mod changes;
mod cli;
mod cloud;
mod cluster;
mod examples;
mod fixed;
mod github;
mod harness;
mod images;
mod invalid;
mod network;
mod render;
mod untrusted;
