//! The executor's calls for the auto-scaling group: created or converged pinned to an
//! explicit template version, rolled by an instance refresh, deleted with its
//! instances.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_autoscaling::types as asg;

use super::Result;
use crate::aws::executor::{Executor, Seen, deleting, sent};
use crate::aws::{Aws, AwsError, error};
use crate::config::Layer;
use crate::plan::LogicalId;
use crate::plan::spec::AutoScalingGroup;
use crate::plan::{Live, Observed};

/// How long an instance refresh may take: it replaces instances one warm-up at a time.
const REFRESH_BOUND: Duration = Duration::from_secs(3600);

/// How long a group may take to leave subnets: its replacements launch and pass their
/// health checks.
const MOVE_BOUND: Duration = Duration::from_secs(1800);

impl Executor<'_> {
    /// Creates the group (`observed` is `None`) or converges it to `group`: sizes,
    /// subnets, template version and target groups. Returns its name.
    pub(crate) async fn put_auto_scaling_group(
        &mut self,
        group: &AutoScalingGroup,
        observed: Option<(&Observed, &AutoScalingGroup)>,
    ) -> Result<String> {
        let named = observed.and_then(|(o, _)| match &o.live {
            Live::AutoScalingGroup {
                template_version, ..
            } => Some(template_version.as_str()),
            _ => None,
        });
        let template = asg::LaunchTemplateSpecification::builder()
            .launch_template_id(self.id(&LogicalId::LaunchTemplate))
            .version(self.template_version(named))
            .build();
        let zones = group
            .subnets
            .iter()
            .map(|s| self.id(s))
            .collect::<Vec<_>>()
            .join(",");
        let client = &self.aws.autoscaling;
        let name = group.name.as_str();
        let Some((_, was)) = observed else {
            let what = format!("creating auto-scaling group {name}");
            let tags = self
                .tags(&LogicalId::AutoScalingGroup, Layer::Cluster)
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
            let target_groups = group.target_groups.iter().map(|t| self.id(t)).collect();
            client
                .create_auto_scaling_group()
                .auto_scaling_group_name(name)
                .launch_template(template)
                .min_size(i32::from(group.min))
                .max_size(i32::from(group.max))
                .desired_capacity(i32::from(group.desired))
                .vpc_zone_identifier(zones)
                .set_target_group_arns(Some(target_groups))
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| error(&what, e))?;
            return Ok(name.to_owned());
        };
        let what = format!("updating auto-scaling group {name}");
        client
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_template(template)
            .min_size(i32::from(group.min))
            .max_size(i32::from(group.max))
            .desired_capacity(i32::from(group.desired))
            .vpc_zone_identifier(zones)
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let attach: Vec<String> = group
            .target_groups
            .difference(&was.target_groups)
            .map(|t| self.id(t))
            .collect();
        let detach: Vec<String> = was
            .target_groups
            .difference(&group.target_groups)
            .map(|t| self.id(t))
            .collect();
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
        Ok(name.to_owned())
    }

    /// Replaces the group's instances with ones from its current template version:
    /// an instance refresh honouring the rollout settings, skipping instances that
    /// already match, followed to the end with progress lines. Stops at a failure.
    pub async fn refresh_instances(&mut self, group: &AutoScalingGroup) -> Result<()> {
        let name = group.name.as_str();
        let what = format!("refreshing the instances of auto-scaling group {name}");
        let preferences = asg::RefreshPreferences::builder()
            .min_healthy_percentage(i32::from(group.min_healthy_percent))
            .instance_warmup(i32::try_from(group.warmup_seconds).unwrap_or(i32::MAX))
            .skip_matching(true)
            .build();
        let out = self
            .aws
            .autoscaling
            .start_instance_refresh()
            .auto_scaling_group_name(name)
            .preferences(preferences)
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let id = crate::aws::executor::created(&what, out.instance_refresh_id())?;
        let aws = self.aws;
        let look = async || {
            let out = aws
                .autoscaling
                .describe_instance_refreshes()
                .auto_scaling_group_name(name)
                .instance_refresh_ids(&id)
                .send()
                .await
                .map_err(|e| error(&what, e))?;
            let refresh = out.instance_refreshes().first();
            let percent = refresh.and_then(|r| r.percentage_complete()).unwrap_or(0);
            use asg::InstanceRefreshStatus as Status;
            match refresh.and_then(|r| r.status()) {
                Some(Status::Successful) => Ok(Seen::Ready(())),
                Some(
                    status @ (Status::Failed
                    | Status::Cancelled
                    | Status::RollbackSuccessful
                    | Status::RollbackFailed),
                ) => Err(AwsError::new(
                    &what,
                    format!("InstanceRefresh{}", status.as_str()),
                    refresh
                        .and_then(|r| r.status_reason())
                        .unwrap_or("no reason given"),
                    Some("the new template version stays in place; fix the cause and run apply again to retry the rollout".into()),
                )),
                Some(status) => Ok(Seen::Pending(format!("{} {percent}%", status.as_str()))),
                None => Ok(Seen::Pending("not listed yet".to_owned())),
            }
        };
        let subject = format!("instance refresh {id} of {name}");
        self.wait_until(&subject, "successful", REFRESH_BOUND, look)
            .await?;
        self.say(&format!("  … {subject}: done"));
        Ok(())
    }

    /// Moves the group off `leaving` (subnets the network is about to replace or
    /// delete, which AWS refuses while instances are in them) and waits until no
    /// instance of it is left there. Its subnets become the ones it keeps, and its
    /// instances in the others are terminated for replacements in those. With none
    /// kept, it is emptied (min and desired 0). Its update after the network step puts
    /// it on its new subnets and sizes. Returns the subnets it left.
    pub(crate) async fn move_group_off(
        &mut self,
        o: &Observed,
        group: &AutoScalingGroup,
        leaving: &BTreeSet<LogicalId>,
    ) -> Result<Vec<LogicalId>> {
        let gone: Vec<LogicalId> = group.subnets.intersection(leaving).cloned().collect();
        if gone.is_empty() {
            return Ok(gone);
        }
        let gone_ids: BTreeSet<String> = gone.iter().map(|s| self.id(s)).collect();
        let kept: Vec<String> = group
            .subnets
            .difference(leaving)
            .map(|s| self.id(s))
            .collect();
        let name = o.aws_id.as_str();
        let what = format!("moving auto-scaling group {name} off its subnets that go");
        let update = self
            .aws
            .autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(name);
        let emptying = kept.is_empty();
        let update = if emptying {
            update.min_size(0).desired_capacity(0)
        } else {
            update.vpc_zone_identifier(kept.join(","))
        };
        sent(&what, update.send()).await?;
        if !emptying {
            let members = members(self.aws, name).await?;
            for instance in instances_in(self.aws, name, &members, &gone_ids).await? {
                let call = self
                    .aws
                    .autoscaling
                    .terminate_instance_in_auto_scaling_group()
                    .instance_id(&instance)
                    .should_decrement_desired_capacity(false);
                sent(&format!("{what}: terminating {instance}"), call.send()).await?;
            }
        }
        let subject = format!("auto-scaling group {name}");
        let (wanted, desired) = match emptying {
            true => ("empty".to_owned(), 0),
            false => (
                format!(
                    "out of its leaving subnets with {} in service",
                    group.desired
                ),
                usize::from(group.desired),
            ),
        };
        let aws = self.aws;
        let look = async || {
            let members = members(aws, name).await?;
            let left = instances_in(aws, name, &members, &gone_ids).await?;
            let in_service = members
                .iter()
                .filter(|i| i.lifecycle_state() == Some(&asg::LifecycleState::InService))
                .count();
            Ok(if left.is_empty() && in_service >= desired {
                Seen::Ready(())
            } else {
                Seen::Pending(format!(
                    "{} left there, {in_service} in service",
                    left.len()
                ))
            })
        };
        self.wait_until(&subject, &wanted, MOVE_BOUND, look).await?;
        Ok(gone)
    }

    /// Deletes the group and, with it, its instances.
    pub(crate) async fn delete_auto_scaling_group(&mut self, o: &Observed) -> Result<()> {
        let what = deleting(o);
        self.aws
            .autoscaling
            .delete_auto_scaling_group()
            .auto_scaling_group_name(&o.aws_id)
            .force_delete(true)
            .send()
            .await
            .map(drop)
            .map_err(|e| error(&what, e))
    }
}

/// Which of the group's `members` (not yet terminated) are in `subnets` (AWS ids).
async fn instances_in(
    aws: &Aws,
    name: &str,
    members: &[asg::Instance],
    subnets: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let ids: Vec<String> = members
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Ok(ids);
    }
    let what = format!("reading the instances of auto-scaling group {name}");
    let out = sent(
        &what,
        aws.ec2
            .describe_instances()
            .set_instance_ids(Some(ids))
            .send(),
    )
    .await?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| i.subnet_id().is_some_and(|s| subnets.contains(s)))
        .filter(|i| {
            !matches!(
                i.state().and_then(|s| s.name()),
                Some(aws_sdk_ec2::types::InstanceStateName::Terminated)
            )
        })
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect())
}

/// The group's instances, as Auto Scaling lists them.
async fn members(aws: &Aws, name: &str) -> Result<Vec<asg::Instance>> {
    let what = format!("reading auto-scaling group {name}");
    let out = sent(
        &what,
        aws.autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send(),
    )
    .await?;
    Ok(out
        .auto_scaling_groups()
        .iter()
        .flat_map(|g| g.instances())
        .cloned()
        .collect())
}
