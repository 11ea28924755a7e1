//! The cluster and node layers in AWS. `list` reads the launch templates (with the
//! node config in their latest version's user data), the auto-scaling groups and a
//! fixed-size cluster's instances and data volumes, and `observe` maps them through
//! the network's ids; `template`, `group`, `instances` and `volumes` are the
//! executor's calls for them.

mod group;
mod instances;
mod template;
mod volumes;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_autoscaling::types as asg;
use aws_sdk_ec2::types as ec2;
use base64::Engine as _;

use super::read::{all, all_by_sets, as_task, ec2_tags, env_filter, required, tag_map};
use super::{Aws, AwsError, unless};
use crate::config::names;
use crate::plan::cluster::digest;
use crate::plan::spec::{AutoScalingGroup, DataDisk, Disk, LaunchTemplate, NodeConfig};
use crate::plan::{InstanceState, Kind, Live, LogicalId, Observed, Spec, TAG_ENVIRONMENT, TAG_ID};

type Result<T> = std::result::Result<T, AwsError>;

/// The root device of Flatcar and Fedora CoreOS images on EC2.
const ROOT_DEVICE: &str = "/dev/xvda";

/// Instance states of a cluster member; one shutting down or terminated is gone.
const MEMBER_STATES: [InstanceState; 4] = [
    InstanceState::Pending,
    InstanceState::Running,
    InstanceState::Stopping,
    InstanceState::Stopped,
];

/// The machine listings of some environments: launch templates and their latest
/// versions, auto-scaling groups, fixed-size clusters' instances and data volumes.
/// They need nothing from the network's answers, so planning reads them beside it;
/// [`observe`] then maps them.
pub struct Listings {
    envs: Vec<String>,
    templates: Vec<ec2::LaunchTemplate>,
    versions: Vec<ec2::LaunchTemplateVersion>,
    groups: Vec<asg::AutoScalingGroup>,
    reservations: Vec<ec2::Reservation>,
    volumes: Vec<ec2::Volume>,
}

/// Lists the machines of `envs`: five listings for all of them, all at once.
pub async fn list(aws: &Aws, envs: &[String]) -> Result<Listings> {
    let instance_filters = |set: &[String]| {
        vec![
            env_filter(set),
            ec2::Filter::builder()
                .name("instance-state-name")
                .set_values(Some(MEMBER_STATES.map(|s| s.as_str().to_owned()).to_vec()))
                .build(),
        ]
    };
    let (templates, versions, groups, reservations, volumes) = tokio::try_join!(
        all_by_sets("reading launch templates", envs, |set| {
            let pages = aws.ec2.describe_launch_templates().filters(env_filter(set));
            pages.max_results(200).into_paginator().items().send()
        }),
        latest_of(aws, envs),
        // 100 a page, the most Auto Scaling gives (50 unless asked).
        all_by_sets("reading auto-scaling groups", envs, |set| {
            let filter = asg::Filter::builder()
                .name(format!("tag:{TAG_ENVIRONMENT}"))
                .set_values(Some(set.to_vec()))
                .build();
            let pages = aws.autoscaling.describe_auto_scaling_groups();
            pages
                .filters(filter)
                .max_records(100)
                .into_paginator()
                .items()
                .send()
        }),
        all_by_sets("reading instances", envs, |set| {
            let pages = aws.ec2.describe_instances();
            let pages = pages.set_filters(Some(instance_filters(set)));
            pages.into_paginator().items().send()
        }),
        all_by_sets("reading data volumes", envs, |set| {
            let pages = aws.ec2.describe_volumes().filters(env_filter(set));
            pages.into_paginator().items().send()
        }),
    )?;
    Ok(Listings {
        envs: envs.to_vec(),
        templates,
        versions,
        groups,
        reservations,
        volumes,
    })
}

/// At most this many environments' templates are read by name, one request each.
const TEMPLATES_BY_NAME: usize = 20;

/// The latest version of the templates of `envs`, all in the first round of reads.
///
/// For a few environments (a pull request's), each template by its name: one round
/// however many templates the region holds. Otherwise the region's listing: `$Latest`
/// without a template answers for every template, 200 (the most EC2 gives) a page,
/// each with its user data; no filter narrows it to environments or splits it, so each
/// 200 templates in the region are one more round. A template named otherwise (made by
/// hand with strata's tags) is read by id in [`observe`].
async fn latest_of(aws: &Aws, envs: &[String]) -> Result<Vec<ec2::LaunchTemplateVersion>> {
    if envs.len() > TEMPLATES_BY_NAME {
        let pages = aws
            .ec2
            .describe_launch_template_versions()
            .versions("$Latest")
            .max_results(200);
        let what = "reading launch template versions";
        return as_task(what, all(what, pages.into_paginator().items().send())).await;
    }
    let named = envs
        .iter()
        .map(|env| Template::Named(names::launch_template(env)));
    latest_versions(aws, named).await
}

/// A template whose latest version is read on its own.
enum Template<'a> {
    /// By the name strata gives an environment's template.
    Named(String),
    /// By id: a template the reads by name or the listing did not answer for.
    Id(&'a str),
}

/// The latest version of `template`, or `None` when there is no such template.
async fn latest_version(
    aws: &Aws,
    template: Template<'_>,
) -> Result<Option<ec2::LaunchTemplateVersion>> {
    let read = aws
        .ec2
        .describe_launch_template_versions()
        .versions("$Latest");
    let (read, which, not_found) = match &template {
        Template::Named(name) => (
            read.launch_template_name(name),
            name.as_str(),
            "InvalidLaunchTemplateName.NotFoundException",
        ),
        Template::Id(id) => (
            read.launch_template_id(*id),
            *id,
            "InvalidLaunchTemplateId.NotFound",
        ),
    };
    let what = format!("reading the latest version of launch template {which}");
    let found = unless(&what, not_found, read.send().await)?;
    Ok(found.and_then(|out| out.launch_template_versions().first().cloned()))
}

/// The cluster and node layers of the listed environments as plans see them. `map`
/// turns AWS ids into logical ids (from the network layer's observation); which
/// instances are registered is read here, one read per target group in
/// `target_groups` (ARNs), all at once.
pub async fn observe(
    aws: &Aws,
    listings: Listings,
    map: &dyn Fn(&str) -> LogicalId,
    target_groups: &[String],
) -> Result<BTreeMap<String, Vec<Observed>>> {
    let Listings {
        envs,
        templates,
        versions,
        groups,
        reservations,
        volumes,
    } = listings;
    let answered: BTreeSet<&str> = versions
        .iter()
        .filter_map(|v| v.launch_template_id())
        .collect();
    let unanswered = templates
        .iter()
        .filter_map(|t| t.launch_template_id())
        .filter(|id| !answered.contains(id))
        .map(Template::Id);
    let (registered, found) = tokio::try_join!(
        instances::registrations(aws, target_groups),
        latest_versions(aws, unanswered)
    )?;
    let latest: BTreeMap<String, ec2::LaunchTemplateVersion> = versions
        .into_iter()
        .chain(found)
        .filter_map(|v| Some((v.launch_template_id()?.to_owned(), v)))
        .collect();
    let mut out: BTreeMap<String, Vec<Observed>> =
        envs.into_iter().map(|e| (e, Vec::new())).collect();
    for t in templates {
        let tags = ec2_tags(t.tags());
        let Some(env) = tags.get(TAG_ENVIRONMENT).cloned() else {
            continue;
        };
        let id = required(t.launch_template_id(), "a launch template", "id")?;
        // A template deleted between the two reads is gone.
        let Some(version) = latest.get(id) else {
            continue;
        };
        let name = required(t.launch_template_name(), id, "name")?;
        let list = out.entry(env).or_default();
        list.extend(template(id, name, version, &tags, map)?);
    }
    for g in groups {
        let tags = tag_map(g.tags().iter().map(|t| (t.key(), t.value())));
        let Some(env) = tags.get(TAG_ENVIRONMENT).cloned() else {
            continue;
        };
        out.entry(env).or_default().push(group(&g, tags, map)?);
    }
    for (env, observed) in instances::observed(&reservations, &volumes, &registered, map)? {
        out.entry(env).or_default().push(observed);
    }
    Ok(out)
}

/// The latest versions of `templates`, each read on its own, all at once; one that
/// does not exist (not made yet, or deleted meanwhile) has none. In the first round,
/// a few environments' templates by name; after it, by id, the templates those reads
/// or the listing did not answer for (made between the reads, or named otherwise):
/// planning without them would plan a template that exists.
async fn latest_versions<'a>(
    aws: &Aws,
    templates: impl Iterator<Item = Template<'a>>,
) -> Result<Vec<ec2::LaunchTemplateVersion>> {
    let reads = templates.map(|template| latest_version(aws, template));
    let found = futures_util::future::try_join_all(reads).await?;
    Ok(found.into_iter().flatten().collect())
}

/// A launch template as plans see it, from its latest version, and the node config in
/// that version's user data.
fn template(
    id: &str,
    name: &str,
    version: &ec2::LaunchTemplateVersion,
    tags: &BTreeMap<String, String>,
    map: &dyn Fn(&str) -> LogicalId,
) -> Result<[Observed; 2]> {
    let data = version.launch_template_data();
    let mappings = data.map(|d| d.block_device_mappings()).unwrap_or_default();
    let disk = |b: &ec2::LaunchTemplateBlockDeviceMapping| {
        let ebs = b.ebs()?;
        Some(Disk {
            size_gb: u32::try_from(ebs.volume_size()?).ok()?,
            volume_type: ebs.volume_type()?.as_str().to_owned(),
        })
    };
    let volume = mappings
        .iter()
        .find(|b| b.device_name() == Some(ROOT_DEVICE))
        .and_then(disk);
    let data_volume = mappings
        .iter()
        .find(|b| b.device_name() != Some(ROOT_DEVICE))
        .and_then(|b| {
            Some(DataDisk {
                disk: disk(b)?,
                device: b.device_name()?.to_owned(),
            })
        });
    let user_data = data
        .and_then(|d| d.user_data())
        .unwrap_or_default()
        .to_owned();
    let spec = Spec::LaunchTemplate(LaunchTemplate {
        name: name.to_owned(),
        image: required(data.and_then(|d| d.image_id()), id, "image")?.to_owned(),
        instance_type: required(data.and_then(|d| d.instance_type()), id, "instance type")?
            .as_str()
            .to_owned(),
        security_groups: data
            .map(|d| d.security_group_ids().iter().map(|g| map(g)).collect())
            .unwrap_or_default(),
        volume,
        data_volume,
        instance_profile: data
            .and_then(|d| d.iam_instance_profile())
            .and_then(|p| p.name())
            .map(str::to_owned),
        user_data: user_data.clone(),
    });
    let latest_version = required(version.version_number(), id, "version number")?;
    // A config that cannot be read compares as empty: the plan shows the node layer
    // as changed and a new version mends it.
    let config = decode_user_data(&user_data).unwrap_or_default();
    let mut node_tags = tags.clone();
    node_tags.insert(TAG_ID.into(), LogicalId::NodeConfig.to_string());
    Ok([
        Observed {
            kind: Kind::LaunchTemplate,
            id: LogicalId::LaunchTemplate,
            aws_id: id.to_owned(),
            spec,
            tags: tags.clone(),
            live: Live::LaunchTemplate { latest_version },
        },
        Observed {
            kind: Kind::NodeConfig,
            id: LogicalId::NodeConfig,
            aws_id: id.to_owned(),
            spec: Spec::NodeConfig(NodeConfig {
                digest: digest(&config),
            }),
            tags: node_tags,
            live: Live::NodeConfig { config },
        },
    ])
}

/// An auto-scaling group as plans see it.
fn group(
    g: &asg::AutoScalingGroup,
    tags: BTreeMap<String, String>,
    map: &dyn Fn(&str) -> LogicalId,
) -> Result<Observed> {
    let name = required(g.auto_scaling_group_name(), "an auto-scaling group", "name")?;
    let size = |value: Option<i32>, field: &str| {
        required(value.and_then(|v| u16::try_from(v).ok()), name, field)
    };
    let spec = Spec::AutoScalingGroup(AutoScalingGroup {
        name: name.to_owned(),
        min: size(g.min_size(), "minimum size")?,
        max: size(g.max_size(), "maximum size")?,
        desired: size(g.desired_capacity(), "desired capacity")?,
        subnets: g
            .vpc_zone_identifier()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| map(s.trim()))
            .collect(),
        target_groups: g.target_group_arns().iter().map(|a| map(a)).collect(),
        min_healthy_percent: 0,
        warmup_seconds: 0,
    });
    let template_version = g
        .launch_template()
        .and_then(|t| t.version())
        .unwrap_or("$Default")
        .to_owned();
    Ok(Observed {
        kind: Kind::AutoScalingGroup,
        id: LogicalId::AutoScalingGroup,
        aws_id: name.to_owned(),
        spec,
        tags,
        live: Live::AutoScalingGroup {
            template_version,
            running: running_versions(g.instances()),
        },
    })
}

/// How many of a group's in-service instances run each template version, as AWS
/// reports the version each was launched from. An instance not launched from a
/// template version by number (attached by hand) is left out: the plan cannot tell
/// what it runs.
fn running_versions(instances: &[asg::Instance]) -> BTreeMap<i64, u16> {
    let mut running = BTreeMap::new();
    for i in instances {
        if i.lifecycle_state() != Some(&asg::LifecycleState::InService) {
            continue;
        }
        let version = i.launch_template().and_then(|t| t.version());
        if let Some(version) = version.and_then(|v| v.parse::<i64>().ok()) {
            let count: &mut u16 = running.entry(version).or_default();
            *count = count.saturating_add(1);
        }
    }
    running
}

/// The full config JSON inside base64 user data (a gzip wrapper is unwrapped).
pub fn decode_user_data(user_data: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(user_data.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    crate::ignition::unwrap(&text).ok()
}
