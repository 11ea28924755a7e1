//! How a command ended: what the binary turns into its exit code. Shared by the
//! command line and the Action, which depend on it and not on each other.

/// How a command ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: problems were reported on stderr.
    Failed,
    /// Exit 2: `plan --detailed-exitcode` found changes.
    Changes,
}
