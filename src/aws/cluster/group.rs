//! The executor's calls for the auto-scaling group: created or converged pinned to an
//! explicit template version, rolled by an instance refresh, deleted with its
//! instances.

use std::time::Duration;

use aws_sdk_autoscaling::types as asg;

use super::Result;
use crate::aws::executor::{Executor, Seen, deleting};
use crate::aws::{AwsError, error};
use crate::config::Layer;
use crate::plan::LogicalId;
use crate::plan::spec::AutoScalingGroup;
use crate::plan::{Live, Observed};

/// How long an instance refresh may take: it replaces instances one warm-up at a time.
const REFRESH_BOUND: Duration = Duration::from_secs(3600);

impl Executor<'_> {
    /// Creates the group (`observed` is `None`) or converges it to `group`: sizes,
    /// subnets, template version and target groups. Returns its name.
    pub(crate) async fn put_auto_scaling_group(
        &mut self,
        group: &AutoScalingGroup,
        observed: Option<(&Observed, &AutoScalingGroup)>,
    ) -> Result<String> {
        let named = observed.and_then(|(o, _)| match &o.live {
            Live::AutoScalingGroup { template_version } => Some(template_version.as_str()),
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
