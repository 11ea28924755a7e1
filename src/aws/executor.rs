//! The executor: runs one environment's plan actions against AWS.
//!
//! It keeps the logical → AWS ids current as resources are made (so later resources
//! can refer to earlier ones), gives every create its tags and idempotency token, waits
//! for slow resources with one bounded poll, and records the applied commit. The calls
//! for each kind live with its layer: `network::execute` (VPC, subnets, gateways,
//! route tables, security groups), `network::rules` (security-group rules),
//! `network::balancers` (target groups, load balancers, listeners),
//! `cluster::template`, `cluster::group`, `cluster::instances` and `cluster::volumes`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types as ec2;

use super::{Aws, AwsError, error};
use crate::config::Layer;
use crate::plan::{ActionKey, Kind, LogicalId, Observed, Resource, Spec};

pub(crate) type Result<T> = std::result::Result<T, AwsError>;

/// Runs plan actions for one environment.
pub struct Executor<'a> {
    pub(crate) aws: &'a Aws,
    pub(crate) env: &'a str,
    user_tags: &'a BTreeMap<String, String>,
    /// Logical id → AWS id of everything that exists now.
    pub ids: BTreeMap<LogicalId, String>,
    /// Logical id → AWS id as observed before the run (a replaced resource's id
    /// differs from its id in `ids` once replaced).
    pub(crate) observed_ids: BTreeMap<LogicalId, String>,
    progress: &'a mut dyn FnMut(&str),
    /// How long to wait for a slow resource.
    pub timeout: Duration,
    /// How often to look at it while waiting.
    pub poll: Duration,
    /// The launch-template version instances and the group launch from: the latest
    /// observed before the run, or the one this run made.
    pub(crate) template_version: Option<i64>,
    /// A new launch-template version was made in this run (the group must roll).
    pub template_renewed: bool,
    /// The plan actions completed so far, for the report of what apply did and, when
    /// it stops at a failure, did not.
    pub completed: Vec<ActionKey>,
}

/// What one look at a resource being waited for saw.
pub(crate) enum Seen<T> {
    /// It is as wanted.
    Ready(T),
    /// Not yet; how it is now, for the progress line.
    Pending(String),
}

impl<'a> Executor<'a> {
    /// An executor for `env`, knowing the resources observed before the run.
    pub fn new(
        aws: &'a Aws,
        env: &'a str,
        user_tags: &'a BTreeMap<String, String>,
        observed: &[Observed],
        progress: &'a mut dyn FnMut(&str),
    ) -> Executor<'a> {
        let ids: BTreeMap<LogicalId, String> = observed
            .iter()
            .map(|o| (o.id.clone(), o.aws_id.clone()))
            .collect();
        Executor {
            aws,
            env,
            user_tags,
            observed_ids: ids.clone(),
            ids,
            progress,
            timeout: Duration::from_secs(600),
            poll: Duration::from_secs(5),
            template_version: None,
            template_renewed: false,
            completed: Vec::new(),
        }
    }

    /// Creates a resource, tagged by the creating call itself. Security groups are
    /// created without rules; [`Executor::sync_rules`] adds them once every group
    /// exists.
    pub async fn create(&mut self, r: &Resource) -> Result<()> {
        let id = &r.id;
        let aws_id = match &r.spec {
            Spec::Vpc(vpc) => self.create_vpc(id, vpc).await?,
            Spec::Subnet(subnet) => self.create_subnet(id, subnet).await?,
            Spec::InternetGateway(_) => self.create_internet_gateway(id).await?,
            Spec::ElasticIp => self.allocate_address(id).await?,
            Spec::NatGateway(nat) => self.create_nat_gateway(id, nat).await?,
            Spec::RouteTable(table) => self.create_route_table(id, table).await?,
            Spec::SecurityGroup(group) => self.create_security_group(id, group).await?,
            Spec::TargetGroup(group) => self.create_target_group(id, group).await?,
            Spec::LoadBalancer(lb) => self.create_load_balancer(id, lb).await?,
            Spec::Listener(listener) => self.create_listener(id, listener).await?,
            Spec::LaunchTemplate(template) => self.create_launch_template(template).await?,
            Spec::AutoScalingGroup(group) => self.put_auto_scaling_group(group, None).await?,
            // The template carries the config; the node layer only compares it.
            Spec::NodeConfig(_) => return Ok(()),
            Spec::Instance(instance) => self.launch_instance(id, instance, None).await?,
            Spec::Volume(volume) => self.create_volume(id, volume).await?,
        };
        self.ids.insert(r.id.clone(), aws_id);
        Ok(())
    }

    /// Converges an existing resource to `desired` from what was observed. The node
    /// config changes through a new template version
    /// ([`Executor::new_template_version`]), which the engine makes once for both
    /// machine layers.
    pub async fn update(&mut self, desired: &Resource, observed: &Observed) -> Result<()> {
        match (&desired.spec, &observed.spec) {
            (Spec::Subnet(subnet), Spec::Subnet(was)) => {
                self.update_subnet(observed, subnet, was).await?;
            }
            (Spec::InternetGateway(_), Spec::InternetGateway(_)) => {
                self.reattach_internet_gateway(observed).await?;
            }
            (Spec::RouteTable(table), Spec::RouteTable(was)) => {
                self.update_route_table(observed, table, was).await?;
            }
            (Spec::SecurityGroup(group), Spec::SecurityGroup(was)) => {
                self.sync_rules(&desired.id, group, Some(was)).await?;
            }
            (Spec::TargetGroup(group), Spec::TargetGroup(_)) => {
                self.update_target_group(observed, group).await?;
            }
            (Spec::LoadBalancer(lb), Spec::LoadBalancer(_)) => {
                self.update_load_balancer(observed, lb).await?;
            }
            (Spec::Listener(listener), Spec::Listener(_)) => {
                self.update_listener(observed, listener).await?;
            }
            (Spec::LaunchTemplate(template), Spec::LaunchTemplate(_)) => {
                self.new_template_version(template).await?;
            }
            (Spec::AutoScalingGroup(group), Spec::AutoScalingGroup(was)) => {
                self.put_auto_scaling_group(group, Some((observed, was)))
                    .await?;
            }
            (Spec::Instance(instance), Spec::Instance(was)) => {
                self.update_instance(observed, instance, was).await?;
            }
            (Spec::Volume(volume), Spec::Volume(was)) => {
                self.modify_volume(observed, volume, was).await?;
            }
            (Spec::Vpc(vpc), Spec::Vpc(was)) => {
                if vpc.dns && !was.dns {
                    let what = format!("updating VPC {} ({})", desired.id, observed.aws_id);
                    self.enable_dns(&what, &observed.aws_id).await?;
                }
            }
            // Every field of these forces a replacement; the config goes with the template.
            (Spec::ElasticIp, Spec::ElasticIp)
            | (Spec::NatGateway(_), Spec::NatGateway(_))
            | (Spec::NodeConfig(_), Spec::NodeConfig(_)) => {}
            _ => {
                return Err(AwsError::new(
                    format!(
                        "updating {} {} ({})",
                        desired.kind.describe(),
                        desired.id,
                        observed.aws_id
                    ),
                    "Internal",
                    format!("what AWS holds is a {}", observed.kind.describe()),
                    Some("the resource's strata:id tag names another kind; remove the tag or the resource, then plan again".into()),
                ));
            }
        }
        self.ids.insert(desired.id.clone(), observed.aws_id.clone());
        Ok(())
    }

    /// Deletes a resource, waiting where later deletions depend on it being gone.
    pub async fn delete(&mut self, o: &Observed) -> Result<()> {
        match o.kind {
            Kind::Vpc => self.delete_vpc(o).await?,
            Kind::Subnet => self.delete_subnet(o).await?,
            Kind::InternetGateway => self.delete_internet_gateway(o).await?,
            Kind::ElasticIp => self.release_address(o).await?,
            Kind::NatGateway => self.delete_nat_gateway(o).await?,
            Kind::RouteTable => self.delete_route_table(o).await?,
            Kind::SecurityGroup => self.delete_security_group(o).await?,
            Kind::TargetGroup => self.delete_target_group(o).await?,
            Kind::LoadBalancer => self.delete_load_balancer(o).await?,
            Kind::Listener => self.delete_listener(o).await?,
            Kind::LaunchTemplate => self.delete_launch_template(o).await?,
            Kind::AutoScalingGroup => self.delete_auto_scaling_group(o).await?,
            // The config goes with its template.
            Kind::NodeConfig => {}
            Kind::Instance => self.terminate_instance(o).await?,
            Kind::Volume => self.delete_volume(o).await?,
        }
        self.ids.remove(&o.id);
        Ok(())
    }

    /// The AWS id of a logical id, as known now: a foreign id is the AWS id it names
    /// (and one of strata's not made yet reads as its text, which AWS then refuses).
    pub(crate) fn id(&self, logical: &LogicalId) -> String {
        self.ids
            .get(logical)
            .cloned()
            .unwrap_or_else(|| logical.to_string())
    }

    /// The tags every resource of `layer` gets at creation.
    pub(crate) fn tags(&self, id: &LogicalId, layer: Layer) -> Vec<(String, String)> {
        crate::plan::tags(self.env, self.user_tags, layer, id)
    }

    /// A TagSpecification for an EC2 create call.
    pub(crate) fn tag_spec(
        &self,
        resource: ec2::ResourceType,
        id: &LogicalId,
        layer: Layer,
    ) -> ec2::TagSpecification {
        tag_specification(resource, &self.tags(id, layer))
    }

    /// Reports a progress line.
    pub fn say(&mut self, line: &str) {
        (self.progress)(line);
    }

    /// Waits until `look` sees `subject` (`NAT gateway nat/0 (nat-0abc)`) `wanted`:
    /// looks, then looks again every `poll` with a progress line, and gives up after
    /// `bound`. An error of `look` stops the wait.
    pub(crate) async fn wait_until<T>(
        &mut self,
        subject: &str,
        wanted: &str,
        bound: Duration,
        mut look: impl AsyncFnMut() -> Result<Seen<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        loop {
            let now = match look().await? {
                Seen::Ready(value) => return Ok(value),
                Seen::Pending(now) => now,
            };
            let waited = start.elapsed();
            if waited >= bound {
                return Err(AwsError::new(
                    format!("waiting for {subject} to be {wanted}"),
                    "Timeout",
                    format!("still {now} after {}s", waited.as_secs()),
                    Some("AWS is slow or the resource is stuck; check it in the console, then run apply again".into()),
                ));
            }
            self.say(&format!(
                "  … waiting for {subject} to be {wanted}: {now} ({}s)",
                waited.as_secs()
            ));
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// Sends one request; its error is said to have happened while `what`.
pub(crate) async fn sent<T, E>(
    what: &str,
    request: impl Future<Output = std::result::Result<T, SdkError<E>>>,
) -> Result<T>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    request.await.map_err(|e| error(what, e))
}

/// What deleting `o` is, in errors: `deleting subnet subnet/public/0 (subnet-0abc)`.
pub(crate) fn deleting(o: &Observed) -> String {
    format!("deleting {} {} ({})", o.kind.describe(), o.id, o.aws_id)
}

/// The id (or ARN) a create call answered with; an answer without one is an error, so
/// nothing downstream refers to an empty id.
pub(crate) fn created(what: &str, id: Option<&str>) -> Result<String> {
    match id {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(AwsError::new(
            what,
            "MissingId",
            "AWS answered without the new resource's id",
            Some("the resource may exist untagged by id; run plan to see what AWS holds, then apply again".into()),
        )),
    }
}

/// A TagSpecification of `tags` for a create call.
pub(crate) fn tag_specification(
    resource: ec2::ResourceType,
    tags: &[(String, String)],
) -> ec2::TagSpecification {
    ec2::TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| ec2::Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// An idempotency token for one create of `id` in this run: the same request retried
/// by the SDK creates one resource, while a later run (a new generation) creates anew.
/// At most 64 characters, as EC2 requires.
pub(crate) fn client_token(env: &str, id: &str) -> String {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hash = Sha256::digest(format!("{env}\0{id}\0{nanos}\0{}", std::process::id()));
    let hex: String = hash.iter().take(20).map(|b| format!("{b:02x}")).collect();
    format!("strata-{hex}")
}

/// Records the commit applied to a layer on its root resource: the VPC for the
/// network, the launch template for the cluster and node layers. The one tag strata
/// sets after creation: it changes with every apply.
pub async fn record_commit(aws: &Aws, root: &str, commit: &str) -> Result<()> {
    aws.ec2
        .create_tags()
        .resources(root)
        .tags(
            ec2::Tag::builder()
                .key(crate::plan::TAG_COMMIT)
                .value(commit)
                .build(),
        )
        .send()
        .await
        .map(drop)
        .map_err(|e| error(format!("recording commit {commit} on {root}"), e))
}
