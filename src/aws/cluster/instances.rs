//! A fixed-size cluster's instances: observed with their target-group registrations;
//! launched, awaited (running, data volume attached, healthy), converged, drained and
//! terminated by the executor.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types as ec2;
use aws_sdk_elasticloadbalancingv2::types as elb;

use super::Result;
use crate::aws::executor::{Executor, Seen, client_token, created, tag_specification};
use crate::aws::read::{ec2_tags, join_error, required};
use crate::aws::{Aws, AwsError, error};
use crate::config::Layer;
use crate::plan::LogicalId;
use crate::plan::spec::Instance;
use crate::plan::{
    InstanceState, Kind, Live, Observed, Spec, TAG_CONFIG, TAG_ENVIRONMENT, TAG_ID, TAG_SETTINGS,
};

/// A fixed-size cluster's instances and data volumes as plans see them, each with its
/// environment: from the instances and volumes read (with their strata tags),
/// `registered` (instance id → target-group ARNs) and `map` (AWS ids → logical ids).
pub(super) fn observed(
    reservations: &[ec2::Reservation],
    volumes: &[ec2::Volume],
    registered: &BTreeMap<String, Vec<String>>,
    map: &dyn Fn(&str) -> LogicalId,
) -> Result<Vec<(String, Observed)>> {
    // A fixed-size cluster's nodes; a group's instances are the group's.
    let instances: Vec<(&ec2::Instance, LogicalId, BTreeMap<String, String>)> = reservations
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            let tags = ec2_tags(i.tags());
            let id = LogicalId::parse(tags.get(TAG_ID)?);
            matches!(id, LogicalId::Instance(_)).then_some((i, id, tags))
        })
        .collect();
    // Volumes name the instance they are attached to by its AWS id.
    let logical: BTreeMap<&str, LogicalId> = instances
        .iter()
        .filter_map(|(i, id, _)| Some((i.instance_id()?, id.clone())))
        .collect();
    let mut out = super::volumes::observed(volumes, &logical)?;
    for (i, id, tags) in instances {
        let Some(env) = tags.get(TAG_ENVIRONMENT).cloned() else {
            continue;
        };
        out.push((env, instance(i, id, tags, registered, map)?));
    }
    Ok(out)
}

/// One instance as plans see it; what it booted with is in its tags.
fn instance(
    i: &ec2::Instance,
    id: LogicalId,
    tags: BTreeMap<String, String>,
    registered: &BTreeMap<String, Vec<String>>,
    map: &dyn Fn(&str) -> LogicalId,
) -> Result<Observed> {
    let aws_id = required(i.instance_id(), "an instance", "id")?.to_owned();
    let state = match required(i.state().and_then(|s| s.name()), &aws_id, "state")? {
        ec2::InstanceStateName::Pending => InstanceState::Pending,
        ec2::InstanceStateName::Running => InstanceState::Running,
        ec2::InstanceStateName::Stopping => InstanceState::Stopping,
        // Asked for member states only; anything else is on its way out.
        _ => InstanceState::Stopped,
    };
    let spec = Spec::Instance(Instance {
        subnet: map(required(i.subnet_id(), &aws_id, "subnet")?),
        private_ip: required(i.private_ip_address(), &aws_id, "private address")?.to_owned(),
        image: required(i.image_id(), &aws_id, "image")?.to_owned(),
        instance_type: required(i.instance_type(), &aws_id, "instance type")?
            .as_str()
            .to_owned(),
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
        // Launched by strata with both; an instance without them compares as changed.
        config: tags.get(TAG_CONFIG).cloned().unwrap_or_default(),
        settings: tags.get(TAG_SETTINGS).cloned().unwrap_or_default(),
        user_data: String::new(),
    });
    Ok(Observed {
        kind: Kind::Instance,
        id,
        aws_id,
        spec,
        tags,
        live: Live::Instance { state },
    })
}

/// Instance id → the target groups (ARNs) it is registered in, one concurrent read
/// per target group (ELBv2 has no listing across them).
pub(super) async fn registrations(
    aws: &Aws,
    target_groups: &[String],
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut reads = tokio::task::JoinSet::new();
    for arn in target_groups {
        let aws = aws.clone();
        let call = aws.elb.describe_target_health().target_group_arn(arn);
        let arn = arn.clone();
        reads.spawn(async move {
            aws.elb_read().await;
            (arn, call.send().await)
        });
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Some(joined) = reads.join_next().await {
        let (arn, health) = joined.map_err(|e| join_error("reading target registrations", e))?;
        let health = health.map_err(|e| error(format!("reading the targets of {arn}"), e))?;
        for d in health.target_health_descriptions() {
            if let Some(id) = d.target().and_then(|t| t.id()) {
                out.entry(id.to_owned()).or_default().push(arn.clone());
            }
        }
    }
    Ok(out)
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

/// An instance as a load-balancer target.
fn target(instance: &str) -> elb::TargetDescription {
    elb::TargetDescription::builder().id(instance).build()
}

impl Executor<'_> {
    /// Launches node `id` of a fixed-size cluster from the template's current version,
    /// with its own subnet, address and config (tagged with its digest).
    /// `predecessor` is the instance it replaces: with the node's id it makes the
    /// idempotency token of this generation of the node. Returns the instance id;
    /// [`Executor::await_instance`] waits for it.
    pub async fn launch_instance(
        &mut self,
        id: &LogicalId,
        instance: &Instance,
        predecessor: Option<&str>,
    ) -> Result<String> {
        let what = format!("launching instance {id} at {}", instance.private_ip);
        let mut tags = self.tags(id, Layer::Cluster);
        tags.push((TAG_CONFIG.to_owned(), instance.config.clone()));
        tags.push((TAG_SETTINGS.to_owned(), instance.settings.clone()));
        let template = ec2::LaunchTemplateSpecification::builder()
            .launch_template_id(self.id(&LogicalId::LaunchTemplate))
            .version(self.template_version(None))
            .build();
        let generation = format!("{id}@{}", predecessor.unwrap_or("-"));
        let out = self
            .aws
            .ec2
            .run_instances()
            .launch_template(template)
            .min_count(1)
            .max_count(1)
            .subnet_id(self.id(&instance.subnet))
            .private_ip_address(&instance.private_ip)
            .user_data(&instance.user_data)
            .client_token(client_token(self.env, &generation))
            .tag_specifications(tag_specification(ec2::ResourceType::Instance, &tags))
            .tag_specifications(tag_specification(ec2::ResourceType::Volume, &tags))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let instance_id = created(&what, out.instances().first().and_then(|i| i.instance_id()))?;
        self.ids.insert(id.clone(), instance_id.clone());
        Ok(instance_id)
    }

    /// Waits for a launched instance to run, attaches its node's data volume (logical
    /// id and device) when it has one, registers it in `target_groups` (logical ids) and
    /// waits for it to be healthy in each.
    pub async fn await_instance(
        &mut self,
        logical: &LogicalId,
        instance: &str,
        volume: Option<(&LogicalId, &str)>,
        target_groups: &BTreeSet<LogicalId>,
    ) -> Result<()> {
        let aws = self.aws;
        let look = async || {
            let (state, reason) = instance_state(aws, instance).await?;
            match state {
                ec2::InstanceStateName::Running => Ok(Seen::Ready(())),
                ec2::InstanceStateName::Pending => Ok(Seen::Pending("pending".to_owned())),
                other => Err(AwsError::new(
                    format!("starting instance {logical} ({instance})"),
                    format!("Instance{}", capitalised(other.as_str())),
                    reason.unwrap_or_else(|| format!("the instance is {}", other.as_str())),
                    Some("read the instance's console output in EC2 to see why it stopped; the next apply replaces it".into()),
                )),
            }
        };
        let (subject, bound) = (format!("{logical} ({instance})"), self.timeout);
        self.wait_until(&subject, "running", bound, look).await?;
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
            let look = async || {
                Ok(match target_state(aws, &arn, instance).await? {
                    Some(elb::TargetHealthStateEnum::Healthy) => Seen::Ready(()),
                    Some(state) => Seen::Pending(state.as_str().to_owned()),
                    None => Seen::Pending("not listed".to_owned()),
                })
            };
            self.wait_until(&subject, &format!("healthy in {tg}"), bound, look)
                .await?;
        }
        Ok(())
    }

    /// Converges a running instance in place: its security groups and its target
    /// group registrations.
    pub(crate) async fn update_instance(
        &mut self,
        observed: &Observed,
        instance: &Instance,
        was: &Instance,
    ) -> Result<()> {
        let aws_id = observed.aws_id.as_str();
        let what = format!("updating instance {} ({aws_id})", observed.id);
        if instance.security_groups != was.security_groups {
            let groups = instance
                .security_groups
                .iter()
                .map(|g| self.id(g))
                .collect();
            self.aws
                .ec2
                .modify_instance_attribute()
                .instance_id(aws_id)
                .set_groups(Some(groups))
                .send()
                .await
                .map_err(|e| error(format!("{what}: setting its security groups"), e))?;
        }
        for tg in was.target_groups.difference(&instance.target_groups) {
            self.aws
                .elb
                .deregister_targets()
                .target_group_arn(self.id(tg))
                .targets(target(aws_id))
                .send()
                .await
                .map_err(|e| error(format!("{what}: leaving target group {tg}"), e))?;
        }
        let joining: BTreeSet<LogicalId> = instance
            .target_groups
            .difference(&was.target_groups)
            .cloned()
            .collect();
        if !joining.is_empty() {
            self.await_instance(&observed.id, aws_id, None, &joining)
                .await?;
        }
        Ok(())
    }

    /// Takes an instance out of its target groups and waits until each has drained it
    /// (the target group's deregistration delay), so its connections end gracefully.
    async fn drain_instance(&mut self, o: &Observed, instance: &Instance) -> Result<()> {
        let aws = self.aws;
        let subject = format!("{} ({})", o.id, o.aws_id);
        for tg in &instance.target_groups {
            let arn = self.id(tg);
            let what = format!("taking instance {subject} out of {tg}");
            self.aws
                .elb
                .deregister_targets()
                .target_group_arn(&arn)
                .targets(target(&o.aws_id))
                .send()
                .await
                .map_err(|e| error(&what, e))?;
            let look = async || {
                Ok(match target_state(aws, &arn, &o.aws_id).await? {
                    Some(elb::TargetHealthStateEnum::Draining) => {
                        Seen::Pending("draining".to_owned())
                    }
                    _ => Seen::Ready(()),
                })
            };
            let bound = self.timeout;
            self.wait_until(&subject, &format!("drained from {tg}"), bound, look)
                .await?;
        }
        Ok(())
    }

    /// Drains an instance from its target groups, terminates it and waits until it is
    /// gone (its address is free again, its data volume detached).
    pub(crate) async fn terminate_instance(&mut self, o: &Observed) -> Result<()> {
        if let Spec::Instance(instance) = &o.spec {
            self.drain_instance(o, instance).await?;
        }
        let what = format!("terminating instance {} ({})", o.id, o.aws_id);
        self.aws
            .ec2
            .terminate_instances()
            .instance_ids(&o.aws_id)
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let aws = self.aws;
        let look = async || {
            Ok(match instance_state(aws, &o.aws_id).await?.0 {
                ec2::InstanceStateName::Terminated => Seen::Ready(()),
                state => Seen::Pending(state.as_str().to_owned()),
            })
        };
        let (subject, bound) = (format!("{} ({})", o.id, o.aws_id), self.timeout);
        self.wait_until(&subject, "terminated", bound, look).await
    }
}

/// An instance's state in a target group, `None` when the group does not list it.
async fn target_state(
    aws: &Aws,
    target_group: &str,
    instance: &str,
) -> Result<Option<elb::TargetHealthStateEnum>> {
    aws.elb_read().await;
    let out = aws
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
        .cloned())
}

/// The state of an instance and, when it stopped, why; one EC2 no longer lists is
/// terminated.
async fn instance_state(
    aws: &Aws,
    instance: &str,
) -> Result<(ec2::InstanceStateName, Option<String>)> {
    let out = aws
        .ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .map_err(|e| error(format!("reading instance {instance}"), e))?;
    let Some(found) = out.reservations().iter().flat_map(|r| r.instances()).next() else {
        return Ok((ec2::InstanceStateName::Terminated, None));
    };
    let state = required(found.state().and_then(|s| s.name()), instance, "state")?;
    let reason = found
        .state_reason()
        .and_then(|r| r.message())
        .map(str::to_owned);
    Ok((state.clone(), reason))
}
