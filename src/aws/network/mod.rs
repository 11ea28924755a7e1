//! The network layer in AWS. `observe` reads what strata's tags say exists (each
//! resource type once for all environments of a region); `execute`, `rules` and
//! `balancers` are the executor's calls for the layer's resources.

mod balancers;
mod execute;
mod observe;
mod rules;

use std::collections::BTreeMap;

use aws_sdk_ec2::types as ec2;

use super::read::as_task;
use super::{Aws, AwsError, error};
use crate::config::Zone;
use crate::plan::{Kind, Live, LogicalId, Observed, Spec, TAG_ENVIRONMENT, TAG_ID, TAG_LAYER};

type Result<T> = std::result::Result<T, AwsError>;

/// What the network layer has in AWS, per environment.
pub type NetworkState = BTreeMap<String, Vec<Observed>>;

/// Builds a resource's spec and what execution needs of it, once AWS ids can be mapped
/// to logical ids.
type BuildSpec = Box<dyn Fn(&dyn Fn(&str) -> LogicalId) -> (Spec, Live) + Send>;

/// A resource as read, before references are mapped to logical ids.
struct Raw {
    kind: Kind,
    aws_id: String,
    tags: BTreeMap<String, String>,
    build: BuildSpec,
}

impl Raw {
    /// A resource whose spec refers to nothing by AWS id.
    fn plain(kind: Kind, aws_id: String, tags: BTreeMap<String, String>, spec: Spec) -> Raw {
        Raw {
            kind,
            aws_id,
            tags,
            build: Box::new(move |_| (spec.clone(), Live::Nothing)),
        }
    }
}

/// The zone names of a region, in name order (what `zones: N` picks from).
pub async fn zones(aws: &Aws) -> Result<Vec<Zone>> {
    let out = aws
        .ec2
        .describe_availability_zones()
        .filters(
            ec2::Filter::builder()
                .name("zone-type")
                .values("availability-zone")
                .build(),
        )
        .send()
        .await
        .map_err(|e| error(format!("listing availability zones of {}", aws.region), e))?;
    let region = format!("the zones of {}", aws.region);
    let mut names = out
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name())
        .map(|z| super::read::parsed(Some(z), &region, "zone name"))
        .collect::<Result<Vec<Zone>>>()?;
    names.sort();
    Ok(names)
}

/// Reads the network layer of `envs`: each resource type once for all of them, all
/// requests in flight together.
pub async fn observe(aws: &Aws, envs: &[String]) -> Result<NetworkState> {
    let (vpcs, subnets, igws, addresses, nats, tables, groups, lbs) = tokio::try_join!(
        observe::vpcs(aws, envs),
        observe::subnets(aws, envs),
        observe::internet_gateways(aws, envs),
        observe::addresses(aws, envs),
        observe::nat_gateways(aws, envs),
        observe::route_tables(aws, envs),
        observe::security_groups(aws, envs),
        // Their listeners wait for every page of them: a task of their own, so that
        // each next request goes out while the other answers are parsed.
        as_task("reading load balancers", {
            let (aws, envs) = (aws.clone(), envs.to_vec());
            async move { observe::load_balancers(&aws, &envs).await }
        }),
    )?;
    let raws: Vec<Raw> = [vpcs, subnets, igws, addresses, nats, tables, groups, lbs]
        .into_iter()
        .flatten()
        .collect();
    // Each resource's logical id, read once from its `strata:id` tag.
    let ids: Vec<Option<LogicalId>> = raws
        .iter()
        .map(|r| r.tags.get(TAG_ID).map(|id| LogicalId::parse(id)))
        .collect();
    // AWS id → logical id, per environment, for every strata resource found; any
    // other AWS id a resource refers to is foreign.
    let logical: BTreeMap<String, LogicalId> = raws
        .iter()
        .zip(&ids)
        .filter_map(|(r, id)| Some((r.aws_id.clone(), id.clone()?)))
        .collect();
    let map = |aws_id: &str| {
        logical
            .get(aws_id)
            .cloned()
            .unwrap_or_else(|| LogicalId::parse(aws_id))
    };
    let mut state: NetworkState = envs.iter().map(|e| (e.clone(), Vec::new())).collect();
    for (r, id) in raws.into_iter().zip(ids) {
        let (Some(env), Some(id)) = (r.tags.get(TAG_ENVIRONMENT).cloned(), id) else {
            continue;
        };
        if r.tags.get(TAG_LAYER).is_some_and(|l| l != "network") {
            continue;
        }
        let (spec, live) = (r.build)(&map);
        let observed = Observed {
            kind: r.kind,
            id,
            aws_id: r.aws_id,
            spec,
            tags: r.tags,
            live,
        };
        state.entry(env).or_default().push(observed);
    }
    for list in state.values_mut() {
        list.sort_by(|a, b| {
            (a.kind.rank(), &a.id, &a.aws_id).cmp(&(b.kind.rank(), &b.id, &b.aws_id))
        });
    }
    Ok(state)
}
