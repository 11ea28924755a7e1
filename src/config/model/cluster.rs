//! The cluster section: size, image, placement, volumes and rollout.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;
use crate::config::types::*;

/// Layer 2: the instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// fixed: `size` instances with stable indexes and addresses; autoscaling: a group.
    pub mode: ClusterMode,
    /// Number of instances of a fixed cluster.
    #[serde(default)]
    pub size: Option<u16>,
    /// Smallest size of an auto-scaling group.
    #[serde(default)]
    pub min: Option<u16>,
    /// Largest size of an auto-scaling group.
    #[serde(default)]
    pub max: Option<u16>,
    /// Wanted size of an auto-scaling group (defaults to `min`).
    #[serde(default)]
    pub desired: Option<u16>,
    /// EC2 instance type.
    pub instance_type: InstanceType,
    /// The OS image, looked up at run time. Exactly one of `os` and `ami`.
    #[serde(default)]
    pub os: Option<OsImage>,
    /// A pinned image. Exactly one of `os` and `ami`.
    #[serde(default)]
    pub ami: Option<AmiId>,
    /// Which kind of subnet the instances go in.
    #[serde(default = "default_cluster_subnets")]
    pub subnets: SubnetKind,
    /// Security groups of the instances.
    #[serde(default)]
    pub security_groups: Vec<LocalName>,
    /// Load balancers whose target groups the instances join.
    #[serde(default)]
    pub load_balancers: Vec<LocalName>,
    /// Root volume.
    #[serde(default)]
    pub volume: Option<Volume>,
    /// An extra EBS volume, formatted on first boot and kept across reboots.
    #[serde(default)]
    pub data_volume: Option<DataVolume>,
    /// An existing IAM instance profile, by name.
    #[serde(default)]
    pub instance_profile: Option<String>,
    /// How node changes roll out.
    #[serde(default)]
    pub rollout: Rollout,
}

fn default_cluster_subnets() -> SubnetKind {
    SubnetKind::Private
}

/// fixed | autoscaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClusterMode {
    /// A fixed set of instances with stable indexes and private addresses.
    Fixed,
    /// An EC2 auto-scaling group.
    Autoscaling,
}

/// The operating system image to look up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OsImage {
    /// flatcar or fedora-coreos.
    pub name: OsName,
    /// Release channel: flatcar stable|beta|alpha|lts, fedora-coreos stable|testing|next.
    pub channel: String,
    /// Roll the cluster when a newer image is published (default: only new instances get it).
    #[serde(default)]
    pub follow: bool,
    /// Override the vendor's image feed (a mirror, or a local server in tests).
    #[serde(default)]
    pub feed_url: Option<String>,
    /// Override the account ids trusted to own the image.
    #[serde(default)]
    pub owners: Option<Vec<String>>,
}

/// Supported operating systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OsName {
    /// Flatcar Container Linux.
    Flatcar,
    /// Fedora CoreOS.
    FedoraCoreos,
}

impl OsName {
    /// The name as environment files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            OsName::Flatcar => "flatcar",
            OsName::FedoraCoreos => "fedora-coreos",
        }
    }

    /// The channels the vendor publishes.
    pub fn channels(self) -> &'static [&'static str] {
        match self {
            OsName::Flatcar => &["stable", "beta", "alpha", "lts"],
            OsName::FedoraCoreos => &["stable", "testing", "next"],
        }
    }
}

/// An EBS volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Size in GiB.
    pub size_gb: u32,
    /// EBS volume type.
    #[serde(rename = "type", default)]
    pub kind: VolumeKind,
}

/// An extra EBS volume with a filesystem created by Ignition on first boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataVolume {
    /// Size in GiB.
    pub size_gb: u32,
    /// EBS volume type.
    #[serde(rename = "type", default)]
    pub kind: VolumeKind,
    /// Device name the volume is attached as.
    #[serde(default = "default_data_device")]
    pub device: String,
    /// Filesystem label; mount it with a `.mount` unit on `/dev/disk/by-label/<label>`.
    pub label: String,
    /// Filesystem format.
    #[serde(default)]
    pub format: FsFormat,
}

fn default_data_device() -> String {
    "/dev/xvdf".to_owned()
}

/// Filesystem formats Ignition can create.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FsFormat {
    /// XFS.
    #[default]
    Xfs,
    /// ext4.
    Ext4,
}

/// EBS volume types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VolumeKind {
    /// General purpose SSD, current generation.
    #[default]
    Gp3,
    /// General purpose SSD, previous generation.
    Gp2,
    /// Provisioned IOPS SSD.
    Io1,
    /// Provisioned IOPS SSD, current generation.
    Io2,
    /// Throughput-optimised HDD.
    St1,
    /// Cold HDD.
    Sc1,
    /// Magnetic.
    Standard,
}

/// How a node change reaches running instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Percentage of the cluster that must stay in service during a rollout.
    #[serde(default = "default_min_healthy")]
    pub min_healthy_percent: u8,
    /// Seconds a new instance gets before it counts as healthy.
    #[serde(default = "default_warmup")]
    pub warmup_seconds: u32,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            min_healthy_percent: default_min_healthy(),
            warmup_seconds: default_warmup(),
        }
    }
}

fn default_min_healthy() -> u8 {
    90
}

fn default_warmup() -> u32 {
    60
}
