//! The GitHub adapter: the runner's contract (variables, inputs, workflow commands,
//! outputs and the job summary), event payloads, and the REST and GraphQL APIs.

pub mod client;
pub mod event;
pub mod runner;

pub use client::{GitHub, GitHubError, RetryPolicy};
pub use event::Event;
pub use runner::{Inputs, Mode, Runner};
