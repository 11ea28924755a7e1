//! A fixed-size cluster's machines in AWS: launching, awaiting, converging, draining
//! and terminating its instances, and its nodes' data volumes.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types as ec2;

use super::{Aws, AwsError, error};
use crate::plan::cluster::{INSTANCE_PREFIX, LAUNCH_TEMPLATE, VOLUME_PREFIX};
use crate::plan::{
    Kind, Observed, Resource, Spec, TAG_CONFIG, TAG_ENVIRONMENT, TAG_ID, TAG_SETTINGS,
};

type Result<T> = std::result::Result<T, AwsError>;

/// A fixed-size cluster's instances and data volumes as plans see them, each with its
/// environment: from the instances and volumes read (with their strata tags),
/// `registered` (instance id → target-group ARNs) and `map` (AWS ids → logical ids).
pub(super) fn observed(
    reservations: &[ec2::Reservation],
    volumes: &[ec2::Volume],
    registered: &BTreeMap<String, Vec<String>>,
    map: &dyn Fn(&str) -> String,
) -> Vec<(String, Observed)> {
    let mut out = Vec::new();
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
    for v in volumes {
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
        out.push((
            env.clone(),
            Observed {
                kind: Kind::Volume,
                id: id.clone(),
                aws_id: v.volume_id().unwrap_or_default().to_owned(),
                spec,
                tags: tags.clone(),
                extra: BTreeMap::new(),
            },
        ));
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
        out.push((
            env.clone(),
            Observed {
                kind: Kind::Instance,
                id: id.clone(),
                aws_id,
                spec,
                tags: tags.clone(),
                extra: BTreeMap::from([("state".to_owned(), state)]),
            },
        ));
    }
    out
}

/// Instance id → the target groups (ARNs) it is registered in, one concurrent read
/// per target group (ELBv2 has no listing across them).
pub(super) async fn registrations(
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
        let (arn, health) =
            joined.map_err(|e| super::network::join_error("reading target registrations", e))?;
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

impl super::network::Executor<'_> {
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
        let tag_spec = |resource| super::network::tag_specification(resource, &tags);
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
        target_groups: &BTreeSet<String>,
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
        let joining: BTreeSet<String> = target_groups.difference(old_targets).cloned().collect();
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
    pub(super) async fn terminate_instance(&mut self, o: &Observed) -> Result<()> {
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
}
