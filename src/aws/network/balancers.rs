//! The executor's ELBv2 calls: target groups, load balancers and listeners.

use aws_sdk_elasticloadbalancingv2::types as elb;

use super::Result;
use crate::aws::executor::{Executor, Seen, created, deleting, sent};
use crate::aws::{AwsError, error};
use crate::config::{Layer, LoadBalancerKind};
use crate::plan::LogicalId;
use crate::plan::spec::{Listener, LoadBalancer, TargetGroup};
use crate::plan::{ListenerAction, Observed};

fn certificates(certificate: Option<&String>) -> Option<Vec<elb::Certificate>> {
    certificate.map(|c| vec![elb::Certificate::builder().certificate_arn(c).build()])
}

impl Executor<'_> {
    fn elb_tags(&self, id: &LogicalId) -> Vec<elb::Tag> {
        self.tags(id, Layer::Network)
            .into_iter()
            .map(|(k, v)| elb::Tag::builder().key(k).value(v).build())
            .collect()
    }

    pub(crate) async fn create_target_group(
        &mut self,
        id: &LogicalId,
        group: &TargetGroup,
    ) -> Result<String> {
        let what = format!("creating target group {id}");
        let out = self
            .aws
            .elb
            .create_target_group()
            .name(&group.name)
            .protocol(elb::ProtocolEnum::from(group.protocol.as_str()))
            .port(i32::from(group.port))
            .vpc_id(self.id(&LogicalId::Vpc))
            .target_type(elb::TargetTypeEnum::Instance)
            .set_health_check_path(group.health_check_path.clone())
            .set_health_check_port(group.health_check_port.map(|p| p.to_string()))
            .set_tags(Some(self.elb_tags(id)))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        created(
            &what,
            out.target_groups()
                .first()
                .and_then(|t| t.target_group_arn()),
        )
    }

    /// The health check changes in place; name, protocol and port are a replacement.
    pub(crate) async fn update_target_group(
        &mut self,
        observed: &Observed,
        group: &TargetGroup,
    ) -> Result<()> {
        let what = format!(
            "updating target group {} ({})",
            observed.id, observed.aws_id
        );
        let port = group
            .health_check_port
            .map_or("traffic-port".to_owned(), |p| p.to_string());
        self.aws
            .elb
            .modify_target_group()
            .target_group_arn(&observed.aws_id)
            .set_health_check_path(group.health_check_path.clone())
            .health_check_port(port)
            .send()
            .await
            .map(drop)
            .map_err(|e| error(&what, e))
    }

    pub(crate) async fn delete_target_group(&mut self, o: &Observed) -> Result<()> {
        let what = deleting(o);
        let call = self
            .aws
            .elb
            .delete_target_group()
            .target_group_arn(&o.aws_id);
        sent(&what, call.send()).await.map(drop)
    }

    /// Creates a load balancer and waits until it is active.
    pub(crate) async fn create_load_balancer(
        &mut self,
        id: &LogicalId,
        lb: &LoadBalancer,
    ) -> Result<String> {
        let what = format!("creating load balancer {id}");
        let application = lb.kind == LoadBalancerKind::Application;
        let out = self
            .aws
            .elb
            .create_load_balancer()
            .name(&lb.name)
            .r#type(elb::LoadBalancerTypeEnum::from(lb.kind.as_str()))
            .scheme(elb::LoadBalancerSchemeEnum::from(lb.scheme.as_str()))
            .set_subnets(Some(lb.subnets.iter().map(|s| self.id(s)).collect()))
            .set_security_groups(
                application.then(|| lb.security_groups.iter().map(|g| self.id(g)).collect()),
            )
            .set_tags(Some(self.elb_tags(id)))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let arn = created(
            &what,
            out.load_balancers()
                .first()
                .and_then(|l| l.load_balancer_arn()),
        )?;
        self.wait_load_balancer(id, &arn).await?;
        Ok(arn)
    }

    /// Subnets (and an application load balancer's groups) change in place.
    pub(crate) async fn update_load_balancer(
        &mut self,
        observed: &Observed,
        lb: &LoadBalancer,
    ) -> Result<()> {
        let what = format!(
            "updating load balancer {} ({})",
            observed.id, observed.aws_id
        );
        let subnet_ids: Vec<String> = lb.subnets.iter().map(|s| self.id(s)).collect();
        self.aws
            .elb
            .set_subnets()
            .load_balancer_arn(&observed.aws_id)
            .set_subnets(Some(subnet_ids))
            .send()
            .await
            .map_err(|e| error(format!("{what}: setting subnets"), e))?;
        if lb.kind == LoadBalancerKind::Application {
            let group_ids: Vec<String> = lb.security_groups.iter().map(|g| self.id(g)).collect();
            self.aws
                .elb
                .set_security_groups()
                .load_balancer_arn(&observed.aws_id)
                .set_security_groups(Some(group_ids))
                .send()
                .await
                .map_err(|e| error(format!("{what}: setting security groups"), e))?;
        }
        Ok(())
    }

    /// Deletes a load balancer and waits until ELBv2 no longer lists it (its target
    /// groups can go only then).
    pub(crate) async fn delete_load_balancer(&mut self, o: &Observed) -> Result<()> {
        let what = deleting(o);
        let call = self
            .aws
            .elb
            .delete_load_balancer()
            .load_balancer_arn(&o.aws_id);
        sent(&what, call.send()).await?;
        self.wait_load_balancer_gone(&o.id, &o.aws_id).await
    }

    pub(crate) async fn create_listener(
        &mut self,
        id: &LogicalId,
        listener: &Listener,
    ) -> Result<String> {
        let what = format!("creating listener {id}");
        let out = self
            .aws
            .elb
            .create_listener()
            .load_balancer_arn(self.id(&listener.load_balancer))
            .protocol(elb::ProtocolEnum::from(listener.protocol.as_str()))
            .port(i32::from(listener.port))
            .set_certificates(certificates(listener.certificate.as_ref()))
            .default_actions(self.listener_action(&listener.action))
            .set_tags(Some(self.elb_tags(id)))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        created(
            &what,
            out.listeners().first().and_then(|l| l.listener_arn()),
        )
    }

    /// Protocol, certificate and action change in place; the port is a replacement.
    pub(crate) async fn update_listener(
        &mut self,
        observed: &Observed,
        listener: &Listener,
    ) -> Result<()> {
        let what = format!("updating listener {} ({})", observed.id, observed.aws_id);
        self.aws
            .elb
            .modify_listener()
            .listener_arn(&observed.aws_id)
            .protocol(elb::ProtocolEnum::from(listener.protocol.as_str()))
            .set_certificates(certificates(listener.certificate.as_ref()))
            .default_actions(self.listener_action(&listener.action))
            .send()
            .await
            .map(drop)
            .map_err(|e| error(&what, e))
    }

    pub(crate) async fn delete_listener(&mut self, o: &Observed) -> Result<()> {
        let what = deleting(o);
        let call = self.aws.elb.delete_listener().listener_arn(&o.aws_id);
        sent(&what, call.send()).await.map(drop)
    }

    fn listener_action(&self, action: &ListenerAction) -> elb::Action {
        match action {
            ListenerAction::Forward(tg) => elb::Action::builder()
                .r#type(elb::ActionTypeEnum::Forward)
                .target_group_arn(self.id(tg))
                .build(),
            ListenerAction::Redirect { protocol, port } => {
                let config = elb::RedirectActionConfig::builder()
                    .protocol(protocol)
                    .port(port.to_string())
                    .status_code(elb::RedirectActionStatusCodeEnum::Http301)
                    .build();
                elb::Action::builder()
                    .r#type(elb::ActionTypeEnum::Redirect)
                    .redirect_config(config)
                    .build()
            }
        }
    }

    async fn wait_load_balancer(&mut self, logical: &LogicalId, arn: &str) -> Result<()> {
        let aws = self.aws;
        let subject = format!("load balancer {logical}");
        let look = async || {
            aws.elb_read().await;
            let out = aws
                .elb
                .describe_load_balancers()
                .load_balancer_arns(arn)
                .send()
                .await
                .map_err(|e| error(format!("waiting for {subject}"), e))?;
            let state = out
                .load_balancers()
                .first()
                .and_then(|l| l.state())
                .and_then(|s| s.code());
            match state {
                Some(elb::LoadBalancerStateEnum::Active) | None => Ok(Seen::Ready(())),
                Some(elb::LoadBalancerStateEnum::Failed) => Err(AwsError::new(
                    format!("creating {subject}"),
                    "LoadBalancerFailed",
                    "the load balancer entered the failed state",
                    Some("check its subnets and security groups, then run apply again".into()),
                )),
                Some(other) => Ok(Seen::Pending(other.as_str().to_owned())),
            }
        };
        let bound = self.timeout;
        self.wait_until(&subject, "active", bound, look).await
    }

    /// Waits until ELBv2 answers that it does not know the load balancer; any other
    /// error stops the wait.
    async fn wait_load_balancer_gone(&mut self, logical: &LogicalId, arn: &str) -> Result<()> {
        let aws = self.aws;
        let subject = format!("load balancer {logical} ({arn})");
        let look = async || {
            aws.elb_read().await;
            let out = aws
                .elb
                .describe_load_balancers()
                .load_balancer_arns(arn)
                .send()
                .await;
            match out {
                Ok(out) if !out.load_balancers().is_empty() => {
                    Ok(Seen::Pending("still listed".to_owned()))
                }
                Ok(_) => Ok(Seen::Ready(())),
                Err(e) => {
                    let e = error(format!("waiting for {subject} to be deleted"), e);
                    match e.code.as_str() {
                        "LoadBalancerNotFound" => Ok(Seen::Ready(())),
                        _ => Err(e),
                    }
                }
            }
        };
        let bound = self.timeout;
        self.wait_until(&subject, "deleted", bound, look).await
    }
}
