//! The cluster and node layers in AWS: the launch template, the auto-scaling group
//! and the user data (the node config) of the template's latest version; `observe`
//! also reads a fixed-size cluster's instances and volumes (see `aws::instances`).

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types as asg;
use aws_sdk_ec2::types as ec2;
use base64::Engine as _;

use super::{Aws, AwsError, error};
use crate::plan::cluster::{AUTO_SCALING_GROUP, LAUNCH_TEMPLATE, NODE_CONFIG, digest};
use crate::plan::{Kind, Observed, Spec, TAG_ENVIRONMENT, TAG_ID};

type Result<T> = std::result::Result<T, AwsError>;

/// Where the executor keeps the template version to launch from, beside the ids.
const TEMPLATE_VERSION: &str = "launch-template#version";

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
    let filter = super::network::env_filter(envs);
    let group_filter = asg::Filter::builder()
        .name(format!("tag:{TAG_ENVIRONMENT}"))
        .set_values(Some(envs.to_vec()))
        .build();
    let instance_filters = [
        filter.clone(),
        ec2::Filter::builder()
            .name("instance-state-name")
            .set_values(Some(MEMBER_STATES.map(str::to_owned).to_vec()))
            .build(),
    ];
    let (templates, versions, groups, reservations, volumes, registered) = tokio::try_join!(
        async {
            aws.ec2
                .describe_launch_templates()
                .filters(filter.clone())
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
                .filters(filter.clone())
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .map_err(|e| error("reading data volumes", e))
        },
        super::instances::registrations(aws, target_groups),
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
    for (env, observed) in super::instances::observed(&reservations, &volumes, &registered, map) {
        out.entry(env).or_default().push(observed);
    }
    Ok(out)
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
        self.use_template_version(version.to_string());
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
        self.use_template_version(version);
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

    /// Makes `version` the template version instances and the group launch from: the
    /// latest observed before the run, or one this run made.
    pub fn use_template_version(&mut self, version: String) {
        self.ids.insert(TEMPLATE_VERSION.to_owned(), version);
    }

    /// The template version the group should run: the one made in this run, else the
    /// observed latest.
    pub(super) fn template_version(&self, observed_latest: Option<&str>) -> String {
        self.ids
            .get(TEMPLATE_VERSION)
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
