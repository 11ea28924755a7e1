//! The async runtime of every command that talks to AWS or GitHub.
//!
//! One worker per core. A read that others wait on (the load balancers, whose
//! listeners need every page of them; the region's template versions, a page at a
//! time) runs as a task of its own (`aws::read::as_task`), so its next request goes
//! out while another core parses the hundred other answers of a large region.

/// A runtime with a worker per core, timers and I/O.
pub fn new() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
