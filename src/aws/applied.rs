//! The commits last applied: the `strata:commit` tag on each layer's root (the VPC
//! for the network, the launch template for the cluster and node layers), read for
//! every environment of a region in one request per resource type.

use std::collections::BTreeMap;

use aws_sdk_ec2::types as ec2;

use super::read::ec2_tags;
use super::{Aws, AwsError, error};
use crate::plan::{LogicalId, TAG_COMMIT, TAG_ENVIRONMENT, TAG_ID};

/// What a layer's root says about the last apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// No root: the layer was never applied (or was torn down).
    Missing,
    /// The root exists without a recorded commit (cut off before recording it).
    Unrecorded,
    /// The commit applied last.
    Commit(String),
}

/// An environment's roots as found in AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastApplied {
    /// The network layer (the VPC).
    pub network: Root,
    /// The cluster and node layers (the launch template).
    pub machines: Root,
}

fn root(tags: &BTreeMap<String, String>) -> Root {
    match tags.get(TAG_COMMIT) {
        Some(commit) => Root::Commit(commit.clone()),
        None => Root::Unrecorded,
    }
}

fn id_filter(id: &LogicalId) -> ec2::Filter {
    ec2::Filter::builder()
        .name(format!("tag:{TAG_ID}"))
        .values(id.to_string())
        .build()
}

/// Every environment strata manages in `aws`'s region, by name, with its roots.
pub async fn read(aws: &Aws) -> Result<BTreeMap<String, LastApplied>, AwsError> {
    let (vpcs, templates) = tokio::try_join!(
        async {
            aws.ec2
                .describe_vpcs()
                .filters(id_filter(&LogicalId::Vpc))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| error("reading the commits applied to the network (VPCs)", e))
        },
        async {
            aws.ec2
                .describe_launch_templates()
                .filters(id_filter(&LogicalId::LaunchTemplate))
                .max_results(200)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| {
                    error(
                        "reading the commits applied to the clusters (launch templates)",
                        e,
                    )
                })
        }
    )?;
    let mut out: BTreeMap<String, LastApplied> = BTreeMap::new();
    fn found<'m>(out: &'m mut BTreeMap<String, LastApplied>, env: &str) -> &'m mut LastApplied {
        out.entry(env.to_owned()).or_insert(LastApplied {
            network: Root::Missing,
            machines: Root::Missing,
        })
    }
    for tags in vpcs.iter().map(|v| ec2_tags(v.tags())) {
        if let Some(env) = tags.get(TAG_ENVIRONMENT) {
            found(&mut out, env).network = root(&tags);
        }
    }
    for tags in templates.iter().map(|t| ec2_tags(t.tags())) {
        if let Some(env) = tags.get(TAG_ENVIRONMENT) {
            found(&mut out, env).machines = root(&tags);
        }
    }
    Ok(out)
}
