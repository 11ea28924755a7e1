//! The cluster and node layers in AWS: the launch template, the auto-scaling group,
//! the instances of a fixed-size cluster, and the user data (the node config) of the
//! template's latest version.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types as asg;
use aws_sdk_ec2::types as ec2;
use base64::Engine as _;

use super::{Aws, AwsError, error};
use crate::plan::cluster::{
    AUTO_SCALING_GROUP, INSTANCE_PREFIX, LAUNCH_TEMPLATE, NODE_CONFIG, VOLUME_PREFIX, digest,
};
use crate::plan::{
    Kind, Observed, Resource, Spec, TAG_CONFIG, TAG_ENVIRONMENT, TAG_ID, TAG_SETTINGS,
};

type Result<T> = std::result::Result<T, AwsError>;

/// The root device of Flatcar and Fedora CoreOS images on EC2.
const ROOT_DEVICE: &str = "/dev/xvda";

/// Instance states of a cluster member; one shutting down or terminated is gone.
const MEMBER_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// Reads the launch templates (with their latest version), auto-scaling groups and
/// fixed-size clusters' instances of `envs`: four requests for all of them, plus one
/// per target group in `target_groups` (ARNs) to learn which instances are registered,
/// all at once. `map` turns AWS ids into logical ids (from the
/// network layer's observation). The node config is read from the latest version's
/// user data.
pub async fn observe(
    aws: &Aws,
    envs: &[String],
    map: &dyn Fn(&str) -> String,
    target_groups: &[String],
) -> Result<BTreeMap<String, Vec<Observed>>> {
    let filter = ec2::Filter::builder()
        .name(format!("tag:{TAG_ENVIRONMENT}"))
        .set_values(Some(envs.to_vec()))
        .build();
    let group_filter = asg::Filter::builder()
        .name(format!("tag:{TAG_ENVIRONMENT}"))
        .set_values(Some(envs.to_vec()))
        .build();
    let instance_filters = [
        ec2::Filter::builder()
            .name(format!("tag:{TAG_ENVIRONMENT}"))
            .set_values(Some(envs.to_vec()))
            .build(),
        ec2::Filter::builder()
            .name("instance-state-name")
            .set_values(Some(MEMBER_STATES.map(str::to_owned).to_vec()))
            .build(),
    ];
    let (templates, versions, groups, reservations, volumes, registered) = tokio::try_join!(
        async {
            aws.ec2
                .describe_launch_templates()
                .filters(filter)
                .max_results(200)
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .map_err(|e| error("reading launch templates", e))
        },
        async {
            // `$Latest` without a template id answers for every template at once, 200
            // (the most EC2 allows) per page.
            aws.ec2
                .describe_launch_template_versions()
                .versions("$Latest")
                .max_results(200)
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .map_err(|e| error("reading launch template versions", e))
        },
        async {
            aws.autoscaling
                .describe_auto_scaling_groups()
                .filters(group_filter)
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .map_err(|e| error("reading auto-scaling groups", e))
        },
        async {
            aws.ec2
                .describe_instances()
                .set_filters(Some(instance_filters.to_vec()))
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .map_err(|e| error("reading instances", e))
        },
        async {
            aws.ec2
                .describe_volumes()
                .filters(
                    ec2::Filter::builder()
                        .name(format!("tag:{TAG_ENVIRONMENT}"))
                        .set_values(Some(envs.to_vec()))
                        .build(),
                )
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .map_err(|e| error("reading data volumes", e))
        },
        registrations(aws, target_groups),
    )?;
    let latest: BTreeMap<String, ec2::LaunchTemplateVersion> = versions
        .into_iter()
        .filter_map(|v| Some((v.launch_template_id()?.to_owned(), v)))
        .collect();
    let mut out: BTreeMap<String, Vec<Observed>> =
        envs.iter().map(|e| (e.clone(), Vec::new())).collect();
    for t in templates {
        let tags = super::network::ec2_tags(t.tags());
        let Some(env) = tags.get(TAG_ENVIRONMENT).cloned() else {
            continue;
        };
        let id = t.launch_template_id().unwrap_or_default().to_owned();
        let Some(version) = latest.get(&id) else {
            continue;
        };
        let data = version.launch_template_data();
        let mappings = data.map(|d| d.block_device_mappings()).unwrap_or_default();
        let describe = |b: &ec2::LaunchTemplateBlockDeviceMapping| {
            let e = b.ebs()?;
            Some(format!(
                "{} GiB {}",
                e.volume_size()?,
                e.volume_type()?.as_str()
            ))
        };
        let volume = mappings
            .iter()
            .find(|b| b.device_name() == Some(ROOT_DEVICE))
            .and_then(describe);
        let data_volume = mappings
            .iter()
            .find(|b| b.device_name() != Some(ROOT_DEVICE))
            .and_then(|b| Some(format!("{} at {}", describe(b)?, b.device_name()?)));
        let user_data = data
            .and_then(|d| d.user_data())
            .unwrap_or_default()
            .to_owned();
        let spec = Spec::LaunchTemplate {
            name: t.launch_template_name().unwrap_or_default().to_owned(),
            image: data
                .and_then(|d| d.image_id())
                .unwrap_or_default()
                .to_owned(),
            instance_type: data
                .and_then(|d| d.instance_type())
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
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
        };
        let number = version.version_number().unwrap_or(0).to_string();
        let extra = BTreeMap::from([("version".to_owned(), number)]);
        let list = out.entry(env).or_default();
        list.push(Observed {
            kind: Kind::LaunchTemplate,
            id: LAUNCH_TEMPLATE.into(),
            aws_id: id.clone(),
            spec,
            tags: tags.clone(),
            extra: extra.clone(),
        });
        let config = decode_user_data(&user_data).unwrap_or_default();
        let mut node_tags = tags;
        node_tags.insert(TAG_ID.into(), NODE_CONFIG.into());
        list.push(Observed {
            kind: Kind::NodeConfig,
            id: NODE_CONFIG.into(),
            aws_id: id,
            spec: Spec::NodeConfig {
                digest: digest(&config),
            },
            tags: node_tags,
            // The running config, for the plan's unit-level diff; in memory only (it
            // holds the SSH key, which the diff shows as a fingerprint).
            extra: {
                let mut extra = extra;
                extra.insert("config".to_owned(), config);
                extra
            },
        });
    }
    for g in groups {
        let tags = super::tag_map(g.tags().iter().map(|t| (t.key(), t.value())));
        let Some(env) = tags.get(TAG_ENVIRONMENT).cloned() else {
            continue;
        };
        let name = g.auto_scaling_group_name().unwrap_or_default().to_owned();
        let spec = Spec::AutoScalingGroup {
            name: name.clone(),
            min: g
                .min_size()
                .and_then(|v| u16::try_from(v).ok())
                .unwrap_or(0),
            max: g
                .max_size()
                .and_then(|v| u16::try_from(v).ok())
                .unwrap_or(0),
            desired: g
                .desired_capacity()
                .and_then(|v| u16::try_from(v).ok())
                .unwrap_or(0),
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
        };
        let version = g
            .launch_template()
            .and_then(|t| t.version())
            .unwrap_or_default()
            .to_owned();
        let extra = BTreeMap::from([("launch_template_version".to_owned(), version)]);
        out.entry(env).or_default().push(Observed {
            kind: Kind::AutoScalingGroup,
            id: AUTO_SCALING_GROUP.into(),
            aws_id: name,
            spec,
            tags,
            extra,
        });
    }
    let instances: Vec<&ec2::Instance> = reservations
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| {
            super::network::ec2_tags(i.tags())
                .get(TAG_ID)
                .is_some_and(|id| id.starts_with(INSTANCE_PREFIX))
        })
        .collect();
    // Volumes name the instance they are attached to by its AWS id.
    let instance_ids: BTreeMap<String, String> = instances
        .iter()
        .filter_map(|i| {
            let tags = super::network::ec2_tags(i.tags());
            Some((i.instance_id()?.to_owned(), tags.get(TAG_ID)?.clone()))
        })
        .collect();
    for v in &volumes {
        let tags = super::network::ec2_tags(v.tags());
        let (Some(env), Some(id)) = (tags.get(TAG_ENVIRONMENT), tags.get(TAG_ID)) else {
            continue;
        };
        if !id.starts_with(VOLUME_PREFIX) {
            continue;
        }
        let attached_to = v.attachments().first().and_then(|a| {
            let instance = a.instance_id()?;
            Some(format!(
                "{} at {}",
                instance_ids
                    .get(instance)
                    .cloned()
                    .unwrap_or_else(|| instance.to_owned()),
                a.device()?
            ))
        });
        let spec = Spec::Volume {
            zone: v.availability_zone().unwrap_or_default().to_owned(),
            size_gb: v.size().and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
            volume_type: v
                .volume_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            attached_to,
        };
        out.entry(env.clone()).or_default().push(Observed {
            kind: Kind::Volume,
            id: id.clone(),
            aws_id: v.volume_id().unwrap_or_default().to_owned(),
            spec,
            tags: tags.clone(),
            extra: BTreeMap::new(),
        });
    }
    for i in instances {
        let tags = super::network::ec2_tags(i.tags());
        let (Some(env), Some(id)) = (tags.get(TAG_ENVIRONMENT), tags.get(TAG_ID)) else {
            continue;
        };
        let aws_id = i.instance_id().unwrap_or_default().to_owned();
        let spec = Spec::Instance {
            subnet: map(i.subnet_id().unwrap_or_default()),
            private_ip: i.private_ip_address().unwrap_or_default().to_owned(),
            image: i.image_id().unwrap_or_default().to_owned(),
            instance_type: i
                .instance_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            security_groups: i
                .security_groups()
                .iter()
                .filter_map(|g| g.group_id())
                .map(map)
                .collect(),
            target_groups: registered
                .get(&aws_id)
                .into_iter()
                .flatten()
                .map(|arn| map(arn))
                .collect(),
            config: tags.get(TAG_CONFIG).cloned().unwrap_or_default(),
            settings: tags.get(TAG_SETTINGS).cloned().unwrap_or_default(),
            user_data: String::new(),
        };
        let state = i
            .state()
            .and_then(|s| s.name())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        out.entry(env.clone()).or_default().push(Observed {
            kind: Kind::Instance,
            id: id.clone(),
            aws_id,
            spec,
            tags: tags.clone(),
            extra: BTreeMap::from([("state".to_owned(), state)]),
        });
    }
    Ok(out)
}

/// Instance id → the target groups (ARNs) it is registered in, one concurrent read
/// per target group (ELBv2 has no listing across them).
async fn registrations(
    aws: &Aws,
    target_groups: &[String],
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut reads = tokio::task::JoinSet::new();
    for arn in target_groups {
        let client = aws.elb.clone();
        let arn = arn.clone();
        reads.spawn(async move {
            let out = client
                .describe_target_health()
                .target_group_arn(&arn)
                .send()
                .await;
            (arn, out)
        });
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Some(joined) = reads.join_next().await {
        let (arn, health) = joined.map_err(|e| AwsError {
            what: "reading target registrations".into(),
            code: "Internal".into(),
            message: e.to_string(),
            hint: None,
        })?;
        let health = health.map_err(|e| error(format!("reading the targets of {arn}"), e))?;
        for d in health.target_health_descriptions() {
            if let Some(id) = d.target().and_then(|t| t.id()) {
                out.entry(id.to_owned()).or_default().push(arn.clone());
            }
        }
    }
    Ok(out)
}

/// An instance as a load-balancer target.
fn target(instance: &str) -> aws_sdk_elasticloadbalancingv2::types::TargetDescription {
    aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
        .id(instance)
        .build()
}

/// `shutting-down` → `ShuttingDown`.
fn capitalised(state: &str) -> String {
    state
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The full config JSON inside base64 user data (a gzip wrapper is unwrapped).
pub fn decode_user_data(user_data: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(user_data.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    crate::ignition::unwrap(&text).ok()
}

impl super::network::Executor<'_> {
    fn template_data(&self, spec: &Spec, user_data: &str) -> ec2::RequestLaunchTemplateData {
        let Spec::LaunchTemplate {
            image,
            instance_type,
            security_groups,
            volume,
            data_volume,
            instance_profile,
            ..
        } = spec
        else {
            return ec2::RequestLaunchTemplateData::builder().build();
        };
        let mut data = ec2::RequestLaunchTemplateData::builder()
            .image_id(image)
            .instance_type(ec2::InstanceType::from(instance_type.as_str()))
            .set_security_group_ids(Some(security_groups.iter().map(|g| self.id(g)).collect()))
            .user_data(user_data)
            // IMDSv2 only: no instance answers metadata requests without a session token.
            .metadata_options(
                ec2::LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_tokens(ec2::LaunchTemplateHttpTokensState::Required)
                    .http_endpoint(ec2::LaunchTemplateInstanceMetadataEndpointState::Enabled)
                    .build(),
            )
            .tag_specifications(self.template_tag_spec(ec2::ResourceType::Instance))
            .tag_specifications(self.template_tag_spec(ec2::ResourceType::Volume));
        let mapping = |device: &str, size: &str, kind: &str, keep: bool| {
            ec2::LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(device)
                .ebs(
                    ec2::LaunchTemplateEbsBlockDeviceRequest::builder()
                        .set_volume_size(size.parse().ok())
                        .volume_type(ec2::VolumeType::from(kind))
                        .delete_on_termination(!keep)
                        .build(),
                )
                .build()
        };
        if let Some((size, kind)) = volume.as_ref().and_then(|v| v.split_once(" GiB ")) {
            data = data.block_device_mappings(mapping(ROOT_DEVICE, size, kind, false));
        }
        // "200 GiB gp3 at /dev/xvdf": the data volume outlives its instance, so a
        // replaced instance never takes the data with it.
        if let Some((size, rest)) = data_volume.as_ref().and_then(|v| v.split_once(" GiB "))
            && let Some((kind, device)) = rest.split_once(" at ")
        {
            data = data.block_device_mappings(mapping(device, size, kind, true));
        }
        if let Some(profile) = instance_profile {
            data = data.iam_instance_profile(
                ec2::LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                    .name(profile)
                    .build(),
            );
        }
        data.build()
    }

    /// Creates the launch template with its first version.
    pub async fn create_launch_template(&mut self, spec: &Spec) -> Result<()> {
        let Spec::LaunchTemplate {
            name, user_data, ..
        } = spec
        else {
            return Ok(());
        };
        let what = format!("creating launch template {name}");
        let out = self
            .aws
            .ec2
            .create_launch_template()
            .launch_template_name(name)
            .launch_template_data(self.template_data(spec, user_data))
            .tag_specifications(self.tag_spec_for(
                ec2::ResourceType::LaunchTemplate,
                LAUNCH_TEMPLATE,
                crate::config::Layer::Cluster,
            ))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let template = out.launch_template();
        let id = template
            .and_then(|t| t.launch_template_id())
            .unwrap_or_default()
            .to_owned();
        let version = template
            .and_then(|t| t.latest_version_number())
            .unwrap_or(1);
        self.ids.insert(LAUNCH_TEMPLATE.into(), id);
        self.ids
            .insert(format!("{LAUNCH_TEMPLATE}#version"), version.to_string());
        Ok(())
    }

    /// Adds a version with the desired settings and `user_data`, and makes it the
    /// default. Returns nothing; the new version number is remembered for the group.
    pub async fn new_template_version(&mut self, spec: &Spec, user_data: &str) -> Result<()> {
        let template = self.id(LAUNCH_TEMPLATE);
        let what = format!("adding a version to launch template {template}");
        let out = self
            .aws
            .ec2
            .create_launch_template_version()
            .launch_template_id(&template)
            .launch_template_data(self.template_data(spec, user_data))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let version = out
            .launch_template_version()
            .and_then(|v| v.version_number())
            .unwrap_or(0)
            .to_string();
        self.aws
            .ec2
            .modify_launch_template()
            .launch_template_id(&template)
            .default_version(&version)
            .send()
            .await
            .map_err(|e| error(format!("{what}: making version {version} the default"), e))?;
        self.ids
            .insert(format!("{LAUNCH_TEMPLATE}#version"), version);
        self.template_renewed = true;
        Ok(())
    }

    /// Replaces the group's instances with ones from its current template version:
    /// an instance refresh honouring `rollout`, skipping instances that already match,
    /// followed to the end with progress lines. Stops at the first failure.
    pub async fn refresh_instances(&mut self, spec: &Spec) -> Result<()> {
        let Spec::AutoScalingGroup {
            name,
            min_healthy_percent,
            warmup_seconds,
            ..
        } = spec
        else {
            return Ok(());
        };
        let what = format!("refreshing the instances of auto-scaling group {name}");
        let client = self.aws.autoscaling.clone();
        let preferences = asg::RefreshPreferences::builder()
            .min_healthy_percentage(i32::from(*min_healthy_percent))
            .instance_warmup(i32::try_from(*warmup_seconds).unwrap_or(i32::MAX))
            .skip_matching(true)
            .build();
        let out = client
            .start_instance_refresh()
            .auto_scaling_group_name(name)
            .preferences(preferences)
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let id = out.instance_refresh_id().unwrap_or_default().to_owned();
        let start = std::time::Instant::now();
        // A refresh replaces instances one warm-up at a time; allow an hour before giving up.
        let limit = std::time::Duration::from_secs(3600);
        loop {
            let out = client
                .describe_instance_refreshes()
                .auto_scaling_group_name(name)
                .instance_refresh_ids(&id)
                .send()
                .await
                .map_err(|e| error(&what, e))?;
            let refresh = out.instance_refreshes().first();
            let status = refresh
                .and_then(|r| r.status())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            let percent = refresh.and_then(|r| r.percentage_complete()).unwrap_or(0);
            match status.as_str() {
                "Successful" => {
                    self.say(&format!("  … instance refresh {id} of {name}: done"));
                    return Ok(());
                }
                "Failed" | "Cancelled" | "RollbackSuccessful" | "RollbackFailed" => {
                    let reason = refresh
                        .and_then(|r| r.status_reason())
                        .unwrap_or("no reason given")
                        .to_owned();
                    return Err(AwsError {
                        what,
                        code: format!("InstanceRefresh{status}"),
                        message: reason,
                        hint: Some("the new template version stays in place; fix the cause and run apply again to retry the rollout".into()),
                    });
                }
                _ => {}
            }
            if start.elapsed() >= limit {
                return Err(AwsError {
                    what,
                    code: "Timeout".into(),
                    message: format!(
                        "still {status} at {percent}% after {}s",
                        start.elapsed().as_secs()
                    ),
                    hint: Some(
                        "the refresh goes on in AWS; watch it in the console, then run apply again"
                            .into(),
                    ),
                });
            }
            self.say(&format!(
                "  … instance refresh {id} of {name}: {status} {percent}%"
            ));
            tokio::time::sleep(self.poll).await;
        }
    }

    /// The template version the group should run: the one made in this run, else the
    /// observed latest.
    fn template_version(&self, observed_latest: Option<&str>) -> String {
        self.ids
            .get(&format!("{LAUNCH_TEMPLATE}#version"))
            .cloned()
            .or(observed_latest.map(str::to_owned))
            .unwrap_or_else(|| "1".into())
    }

    /// Creates or converges the auto-scaling group, pinned to an explicit template version.
    pub async fn put_auto_scaling_group(
        &mut self,
        spec: &Spec,
        observed: Option<&Observed>,
        latest: Option<&str>,
    ) -> Result<()> {
        let Spec::AutoScalingGroup {
            name,
            min,
            max,
            desired,
            subnets,
            target_groups,
            ..
        } = spec
        else {
            return Ok(());
        };
        let template = asg::LaunchTemplateSpecification::builder()
            .launch_template_id(self.id(LAUNCH_TEMPLATE))
            .version(self.template_version(latest))
            .build();
        let zones = subnets
            .iter()
            .map(|s| self.id(s))
            .collect::<Vec<_>>()
            .join(",");
        let groups: Vec<String> = target_groups.iter().map(|t| self.id(t)).collect();
        let client = &self.aws.autoscaling;
        match observed {
            None => {
                let what = format!("creating auto-scaling group {name}");
                let tags = self
                    .tags_for(AUTO_SCALING_GROUP, crate::config::Layer::Cluster)
                    .into_iter()
                    .map(|(k, v)| {
                        asg::Tag::builder()
                            .key(k)
                            .value(v)
                            .propagate_at_launch(true)
                            .resource_id(name)
                            .resource_type("auto-scaling-group")
                            .build()
                    })
                    .collect();
                client
                    .create_auto_scaling_group()
                    .auto_scaling_group_name(name)
                    .launch_template(template)
                    .min_size(i32::from(*min))
                    .max_size(i32::from(*max))
                    .desired_capacity(i32::from(*desired))
                    .vpc_zone_identifier(zones)
                    .set_target_group_arns(Some(groups))
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
            }
            Some(o) => {
                let what = format!("updating auto-scaling group {name}");
                client
                    .update_auto_scaling_group()
                    .auto_scaling_group_name(name)
                    .launch_template(template)
                    .min_size(i32::from(*min))
                    .max_size(i32::from(*max))
                    .desired_capacity(i32::from(*desired))
                    .vpc_zone_identifier(zones)
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                if let Spec::AutoScalingGroup {
                    target_groups: old, ..
                } = &o.spec
                {
                    let attach: Vec<String> =
                        target_groups.difference(old).map(|t| self.id(t)).collect();
                    let detach: Vec<String> =
                        old.difference(target_groups).map(|t| self.id(t)).collect();
                    if !attach.is_empty() {
                        client
                            .attach_load_balancer_target_groups()
                            .auto_scaling_group_name(name)
                            .set_target_group_arns(Some(attach))
                            .send()
                            .await
                            .map_err(|e| error(format!("{what}: attaching target groups"), e))?;
                    }
                    if !detach.is_empty() {
                        client
                            .detach_load_balancer_target_groups()
                            .auto_scaling_group_name(name)
                            .set_target_group_arns(Some(detach))
                            .send()
                            .await
                            .map_err(|e| error(format!("{what}: detaching target groups"), e))?;
                    }
                }
            }
        }
        self.ids.insert(AUTO_SCALING_GROUP.into(), name.clone());
        Ok(())
    }

    /// Launches instance `r` of a fixed-size cluster from the template's current
    /// version, with its own subnet, address and config (tagged with its digest).
    /// `predecessor` is the instance it replaces: with the node's id it makes the
    /// idempotency token of this generation of the node. Returns the instance id;
    /// [`Executor::await_instance`] waits for it.
    pub async fn launch_instance(
        &mut self,
        r: &Resource,
        predecessor: Option<&str>,
    ) -> Result<String> {
        let Spec::Instance {
            subnet,
            private_ip,
            config,
            settings,
            user_data,
            ..
        } = &r.spec
        else {
            return Ok(String::new());
        };
        let what = format!("launching instance {} at {private_ip}", r.id);
        let mut tags = self.tags_for(&r.id, crate::config::Layer::Cluster);
        tags.push((TAG_CONFIG.to_owned(), config.clone()));
        tags.push((TAG_SETTINGS.to_owned(), settings.clone()));
        let tag_spec = |resource: ec2::ResourceType| {
            ec2::TagSpecification::builder()
                .resource_type(resource)
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| ec2::Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .build()
        };
        let template = ec2::LaunchTemplateSpecification::builder()
            .launch_template_id(self.id(LAUNCH_TEMPLATE))
            .version(self.template_version(None))
            .build();
        let generation = format!("{}@{}", r.id, predecessor.unwrap_or("-"));
        let out = self
            .aws
            .ec2
            .run_instances()
            .launch_template(template)
            .min_count(1)
            .max_count(1)
            .subnet_id(self.id(subnet))
            .private_ip_address(private_ip)
            .user_data(user_data)
            .client_token(super::network::client_token(self.env, &generation))
            .tag_specifications(tag_spec(ec2::ResourceType::Instance))
            .tag_specifications(tag_spec(ec2::ResourceType::Volume))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let id = out
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .unwrap_or_default()
            .to_owned();
        self.ids.insert(r.id.clone(), id.clone());
        Ok(id)
    }

    /// Waits for a launched instance to run, attaches its node's data volume (logical
    /// id and device) when it has one, registers it in `target_groups` (logical ids) and
    /// waits for it to be healthy in each.
    pub async fn await_instance(
        &mut self,
        logical: &str,
        instance: &str,
        volume: Option<(&str, &str)>,
        target_groups: &std::collections::BTreeSet<String>,
    ) -> Result<()> {
        let start = std::time::Instant::now();
        loop {
            let state = self.instance_state(instance).await?;
            match state.0.as_str() {
                "running" => break,
                "pending" => {
                    self.wait_a_bit(logical, instance, "running", start).await?;
                }
                other => {
                    return Err(AwsError {
                        what: format!("starting instance {logical} ({instance})"),
                        code: format!("Instance{}", capitalised(other)),
                        message: state.1.unwrap_or_else(|| format!("the instance is {other}")),
                        hint: Some("read the instance's console output in EC2 to see why it stopped; the next apply replaces it".into()),
                    });
                }
            }
        }
        // Ignition waits at first boot for the device its filesystem is on.
        if let Some((volume, device)) = volume {
            self.attach_volume(volume, instance, device).await?;
        }
        for tg in target_groups {
            let arn = self.id(tg);
            let what = format!("registering instance {logical} ({instance}) in target group {tg}");
            self.aws
                .elb
                .register_targets()
                .target_group_arn(&arn)
                .targets(target(instance))
                .send()
                .await
                .map_err(|e| error(&what, e))?;
            let start = std::time::Instant::now();
            while self.target_state(&arn, instance).await?.as_deref() != Some("healthy") {
                self.wait_a_bit(logical, instance, &format!("healthy in {tg}"), start)
                    .await?;
            }
        }
        Ok(())
    }

    /// An instance's state in a target group (`healthy`, `draining`, ...), `None` when
    /// the target group does not list it.
    async fn target_state(&self, target_group: &str, instance: &str) -> Result<Option<String>> {
        let out = self
            .aws
            .elb
            .describe_target_health()
            .target_group_arn(target_group)
            .send()
            .await
            .map_err(|e| error(format!("reading the targets of {target_group}"), e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .find(|d| d.target().and_then(|t| t.id()) == Some(instance))
            .and_then(|d| d.target_health()?.state())
            .map(|s| s.as_str().to_owned()))
    }

    /// The state of an instance and, when it stopped, why.
    async fn instance_state(&self, instance: &str) -> Result<(String, Option<String>)> {
        let out = self
            .aws
            .ec2
            .describe_instances()
            .instance_ids(instance)
            .send()
            .await
            .map_err(|e| error(format!("reading instance {instance}"), e))?;
        let found = out.reservations().iter().flat_map(|r| r.instances()).next();
        Ok(match found {
            None => ("terminated".to_owned(), None),
            Some(i) => (
                i.state()
                    .and_then(|s| s.name())
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                i.state_reason()
                    .and_then(|r| r.message())
                    .map(str::to_owned),
            ),
        })
    }

    /// Converges a running instance in place: its security groups and its target
    /// group registrations.
    pub async fn update_instance(&mut self, desired: &Spec, observed: &Observed) -> Result<()> {
        let (
            Spec::Instance {
                security_groups,
                target_groups,
                ..
            },
            Spec::Instance {
                security_groups: old_groups,
                target_groups: old_targets,
                ..
            },
        ) = (desired, &observed.spec)
        else {
            return Ok(());
        };
        let instance = observed.aws_id.as_str();
        let what = format!("updating instance {} ({instance})", observed.id);
        if security_groups != old_groups {
            self.aws
                .ec2
                .modify_instance_attribute()
                .instance_id(instance)
                .set_groups(Some(security_groups.iter().map(|g| self.id(g)).collect()))
                .send()
                .await
                .map_err(|e| error(format!("{what}: setting its security groups"), e))?;
        }
        for tg in old_targets.difference(target_groups) {
            self.aws
                .elb
                .deregister_targets()
                .target_group_arn(self.id(tg))
                .targets(target(instance))
                .send()
                .await
                .map_err(|e| error(format!("{what}: leaving target group {tg}"), e))?;
        }
        let joining: std::collections::BTreeSet<String> =
            target_groups.difference(old_targets).cloned().collect();
        if !joining.is_empty() {
            self.await_instance(&observed.id, instance, None, &joining)
                .await?;
        }
        Ok(())
    }

    /// Creates a node's data volume in its zone and waits until it can be attached.
    pub async fn create_volume(&mut self, r: &Resource) -> Result<()> {
        let Spec::Volume {
            zone,
            size_gb,
            volume_type,
            ..
        } = &r.spec
        else {
            return Ok(());
        };
        let what = format!("creating data volume {} in {zone}", r.id);
        let out = self
            .aws
            .ec2
            .create_volume()
            .availability_zone(zone)
            .size(i32::try_from(*size_gb).unwrap_or(i32::MAX))
            .volume_type(ec2::VolumeType::from(volume_type.as_str()))
            .tag_specifications(self.tag_spec_for(
                ec2::ResourceType::Volume,
                &r.id,
                crate::config::Layer::Cluster,
            ))
            .client_token(super::network::client_token(self.env, &r.id))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let id = out.volume_id().unwrap_or_default().to_owned();
        self.ids.insert(r.id.clone(), id.clone());
        self.await_volume(&r.id, &id, "available").await
    }

    /// Grows a data volume or changes its type in place.
    pub async fn modify_volume(&mut self, desired: &Spec, observed: &Observed) -> Result<()> {
        let (
            Spec::Volume {
                size_gb,
                volume_type,
                ..
            },
            Spec::Volume {
                size_gb: old_size,
                volume_type: old_type,
                ..
            },
        ) = (desired, &observed.spec)
        else {
            return Ok(());
        };
        if size_gb == old_size && volume_type == old_type {
            return Ok(());
        }
        let mut request = self.aws.ec2.modify_volume().volume_id(&observed.aws_id);
        if size_gb != old_size {
            request = request.size(i32::try_from(*size_gb).unwrap_or(i32::MAX));
        }
        if volume_type != old_type {
            request = request.volume_type(ec2::VolumeType::from(volume_type.as_str()));
        }
        request.send().await.map(drop).map_err(|e| {
            error(
                format!(
                    "modifying data volume {} ({})",
                    observed.id, observed.aws_id
                ),
                e,
            )
        })
    }

    /// Attaches data volume `volume` (logical id), when it exists, to `instance` at
    /// `device` once the volume is free, and waits until it is in use.
    pub async fn attach_volume(
        &mut self,
        volume: &str,
        instance: &str,
        device: &str,
    ) -> Result<()> {
        let Some(id) = self.ids.get(volume).cloned() else {
            return Ok(());
        };
        self.await_volume(volume, &id, "available").await?;
        self.aws
            .ec2
            .attach_volume()
            .volume_id(&id)
            .instance_id(instance)
            .device(device)
            .send()
            .await
            .map_err(|e| {
                error(
                    format!("attaching data volume {volume} ({id}) to {instance} at {device}"),
                    e,
                )
            })?;
        self.await_volume(volume, &id, "in-use").await
    }

    /// Waits for a volume to reach `state` (`available`, `in-use`).
    async fn await_volume(&mut self, logical: &str, id: &str, state: &str) -> Result<()> {
        let start = std::time::Instant::now();
        loop {
            let out = self
                .aws
                .ec2
                .describe_volumes()
                .volume_ids(id)
                .send()
                .await
                .map_err(|e| error(format!("reading data volume {logical} ({id})"), e))?;
            let now = out
                .volumes()
                .first()
                .and_then(|v| v.state())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            if now == state {
                return Ok(());
            }
            if now == "error" {
                return Err(AwsError {
                    what: format!("waiting for data volume {logical} ({id})"),
                    code: "VolumeError".into(),
                    message: "the volume is in state error".into(),
                    hint: Some("check the volume in the EC2 console; its data may need restoring from a snapshot".into()),
                });
            }
            self.wait_a_bit(logical, id, state, start).await?;
        }
    }

    /// Takes an instance out of its target groups and waits until each has drained it
    /// (the target group's deregistration delay), so its connections end gracefully.
    async fn drain_instance(&mut self, o: &Observed) -> Result<()> {
        let Spec::Instance { target_groups, .. } = &o.spec else {
            return Ok(());
        };
        for tg in target_groups {
            let arn = self.id(tg);
            let what = format!("taking instance {} ({}) out of {tg}", o.id, o.aws_id);
            self.aws
                .elb
                .deregister_targets()
                .target_group_arn(&arn)
                .targets(target(&o.aws_id))
                .send()
                .await
                .map_err(|e| error(&what, e))?;
            let start = std::time::Instant::now();
            while self.target_state(&arn, &o.aws_id).await?.as_deref() == Some("draining") {
                self.wait_a_bit(&o.id, &o.aws_id, &format!("drained from {tg}"), start)
                    .await?;
            }
        }
        Ok(())
    }

    /// Drains an instance from its target groups, terminates it and waits until it is
    /// gone (its address is free again, its data volume detached).
    async fn terminate_instance(&mut self, o: &Observed) -> Result<()> {
        self.drain_instance(o).await?;
        let what = format!("terminating instance {} ({})", o.id, o.aws_id);
        self.aws
            .ec2
            .terminate_instances()
            .instance_ids(&o.aws_id)
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let start = std::time::Instant::now();
        while self.instance_state(&o.aws_id).await?.0 != "terminated" {
            self.wait_a_bit(&o.id, &o.aws_id, "terminated", start)
                .await?;
        }
        Ok(())
    }

    /// Deletes the group (and its instances), an instance, or the template.
    pub async fn delete_cluster(&mut self, o: &Observed) -> Result<()> {
        let what = format!("deleting {} {} ({})", o.kind.describe(), o.id, o.aws_id);
        match o.kind {
            Kind::AutoScalingGroup => self
                .aws
                .autoscaling
                .delete_auto_scaling_group()
                .auto_scaling_group_name(&o.aws_id)
                .force_delete(true)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(&what, e)),
            Kind::Instance => self.terminate_instance(o).await,
            Kind::Volume => self
                .aws
                .ec2
                .delete_volume()
                .volume_id(&o.aws_id)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(&what, e)),
            Kind::LaunchTemplate => self
                .aws
                .ec2
                .delete_launch_template()
                .launch_template_id(&o.aws_id)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(&what, e)),
            _ => Ok(()),
        }
    }
}
