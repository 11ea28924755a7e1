//! A cluster as validation proved it: how many machines it keeps and how, and where
//! their image comes from. Built once, by the checks that report what is wrong with
//! the model's `size`, `min`/`max`/`desired`, `os` and `ami`; code past parsing reads
//! these and never the model's optional fields.

use std::num::NonZeroU16;

use super::{AmiId, OsImage};

/// The cluster of a valid environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterShape {
    /// How many machines, and how they are kept.
    pub size: Size,
    /// Where their image comes from.
    pub image: ImageSource,
}

/// How many machines a cluster keeps, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// `size` instances at stable indexes and addresses.
    Fixed(NonZeroU16),
    /// An auto-scaling group, with `min ≤ desired ≤ max` and `max ≥ 1`.
    Autoscaling {
        /// Smallest size.
        min: u16,
        /// Largest size.
        max: u16,
        /// Wanted size.
        desired: u16,
    },
}

impl Size {
    /// How many members the cluster has: a fixed cluster's size, or a group's desired
    /// size. What `STRATA_CLUSTER_SIZE` and etcd discovery count.
    pub fn members(self) -> u16 {
        match self {
            Size::Fixed(size) => size.get(),
            Size::Autoscaling { desired, .. } => desired,
        }
    }

    /// A fixed cluster's size; `None` for a group.
    pub fn fixed(self) -> Option<u16> {
        match self {
            Size::Fixed(size) => Some(size.get()),
            Size::Autoscaling { .. } => None,
        }
    }
}

/// Where the OS image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// Looked up at run time in the vendor's feed.
    Feed(OsImage),
    /// Pinned.
    Pinned(AmiId),
}
