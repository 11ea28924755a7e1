//! The network layer in AWS: observe what strata's tags say exists, and execute plan
//! actions against EC2 and ELBv2.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types as ec2;
use aws_sdk_elasticloadbalancingv2::types as elb;

use super::{Aws, AwsError, error};
use crate::plan::{
    Kind, ListenerAction, Observed, Resource, Route, Rule, RulePeer, Spec, TAG_ENVIRONMENT, TAG_ID,
    TAG_LAYER,
};

type Result<T> = std::result::Result<T, AwsError>;

/// What the network layer has in AWS, per environment.
pub type NetworkState = BTreeMap<String, Vec<Observed>>;

/// The EC2 filter that finds the resources of `envs` by their `strata:environment` tag.
pub(crate) fn env_filter(envs: &[String]) -> ec2::Filter {
    ec2::Filter::builder()
        .name(format!("tag:{TAG_ENVIRONMENT}"))
        .set_values(Some(envs.to_vec()))
        .build()
}

pub(crate) fn ec2_tags(tags: &[ec2::Tag]) -> BTreeMap<String, String> {
    super::tag_map(tags.iter().map(|t| (t.key(), t.value())))
}

/// Builds a resource's spec and bookkeeping once AWS ids can be mapped to logical ids.
type BuildSpec = Box<dyn Fn(&dyn Fn(&str) -> String) -> (Spec, BTreeMap<String, String>) + Send>;

/// A raw item before references are mapped to logical ids.
struct Raw {
    kind: Kind,
    aws_id: String,
    tags: BTreeMap<String, String>,
    build: BuildSpec,
}

/// The zone names of a region, in name order (what `zones: N` picks from).
pub async fn zones(aws: &Aws) -> Result<Vec<String>> {
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
    let mut names: Vec<String> = out
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// Reads the network layer of `envs`: each resource type once for all of them, all
/// requests in flight together.
pub async fn observe(aws: &Aws, envs: &[String]) -> Result<NetworkState> {
    let (vpcs, subnets, igws, addresses, nats, tables, groups, lbs) = tokio::try_join!(
        observe_vpcs(aws, envs),
        observe_subnets(aws, envs),
        observe_igws(aws, envs),
        observe_addresses(aws, envs),
        observe_nats(aws, envs),
        observe_route_tables(aws, envs),
        observe_groups(aws, envs),
        observe_load_balancers(aws, envs),
    )?;
    let raws: Vec<Raw> = [vpcs, subnets, igws, addresses, nats, tables, groups, lbs]
        .into_iter()
        .flatten()
        .collect();
    // AWS id → logical id, per environment, for every strata resource found.
    let mut logical: BTreeMap<String, String> = BTreeMap::new();
    for r in &raws {
        if let Some(id) = r.tags.get(TAG_ID) {
            logical.insert(r.aws_id.clone(), id.clone());
        }
    }
    let map = |aws_id: &str| {
        logical
            .get(aws_id)
            .cloned()
            .unwrap_or_else(|| aws_id.to_owned())
    };
    let mut state: NetworkState = envs.iter().map(|e| (e.clone(), Vec::new())).collect();
    for r in raws {
        let (Some(env), Some(id)) = (
            r.tags.get(TAG_ENVIRONMENT).cloned(),
            r.tags.get(TAG_ID).cloned(),
        ) else {
            continue;
        };
        if r.tags.get(TAG_LAYER).is_some_and(|l| l != "network") {
            continue;
        }
        let (spec, extra) = (r.build)(&map);
        let observed = Observed {
            kind: r.kind,
            id,
            aws_id: r.aws_id,
            spec,
            tags: r.tags,
            extra,
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

async fn observe_vpcs(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let items = aws
        .ec2
        .describe_vpcs()
        .filters(env_filter(envs))
        .into_paginator()
        .items()
        .send()
        .collect::<std::result::Result<Vec<_>, _>>()
        .await;
    let items = items.map_err(|e| error("reading VPCs", e))?;
    Ok(items
        .into_iter()
        .map(|v| {
            let cidr = v.cidr_block().unwrap_or_default().to_owned();
            Raw {
                kind: Kind::Vpc,
                aws_id: v.vpc_id().unwrap_or_default().to_owned(),
                tags: ec2_tags(v.tags()),
                build: Box::new(move |_| (Spec::Vpc { cidr: cidr.clone() }, BTreeMap::new())),
            }
        })
        .collect())
}

async fn observe_subnets(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let items = aws
        .ec2
        .describe_subnets()
        .filters(env_filter(envs))
        .into_paginator()
        .items()
        .send()
        .collect::<std::result::Result<Vec<_>, _>>()
        .await;
    let items = items.map_err(|e| error("reading subnets", e))?;
    Ok(items
        .into_iter()
        .map(|s| {
            let spec = Spec::Subnet {
                cidr: s.cidr_block().unwrap_or_default().to_owned(),
                zone: s.availability_zone().unwrap_or_default().to_owned(),
                public: s.map_public_ip_on_launch().unwrap_or(false),
            };
            Raw {
                kind: Kind::Subnet,
                aws_id: s.subnet_id().unwrap_or_default().to_owned(),
                tags: ec2_tags(s.tags()),
                build: Box::new(move |_| (spec.clone(), BTreeMap::new())),
            }
        })
        .collect())
}

async fn observe_igws(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let items = aws
        .ec2
        .describe_internet_gateways()
        .filters(env_filter(envs))
        .into_paginator()
        .items()
        .send()
        .collect::<std::result::Result<Vec<_>, _>>()
        .await;
    let items = items.map_err(|e| error("reading internet gateways", e))?;
    Ok(items
        .into_iter()
        .map(|g| {
            let vpc = g
                .attachments()
                .iter()
                .find_map(|a| a.vpc_id().map(str::to_owned));
            let mut extra = BTreeMap::new();
            if let Some(v) = &vpc {
                extra.insert("attached_vpc".to_owned(), v.clone());
            }
            Raw {
                kind: Kind::InternetGateway,
                aws_id: g.internet_gateway_id().unwrap_or_default().to_owned(),
                tags: ec2_tags(g.tags()),
                build: Box::new(move |map| {
                    (
                        Spec::InternetGateway {
                            attached: vpc.as_deref().map(map),
                        },
                        extra.clone(),
                    )
                }),
            }
        })
        .collect())
}

async fn observe_addresses(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let out = aws
        .ec2
        .describe_addresses()
        .filters(env_filter(envs))
        .send()
        .await
        .map_err(|e| error("reading elastic IPs", e))?;
    Ok(out
        .addresses()
        .iter()
        .map(|a| Raw {
            kind: Kind::ElasticIp,
            aws_id: a.allocation_id().unwrap_or_default().to_owned(),
            tags: ec2_tags(a.tags()),
            build: Box::new(|_| (Spec::ElasticIp, BTreeMap::new())),
        })
        .collect())
}

async fn observe_nats(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let state = ec2::Filter::builder()
        .name("state")
        .values("pending")
        .values("available")
        .build();
    let items = aws
        .ec2
        .describe_nat_gateways()
        .filter(env_filter(envs))
        .filter(state)
        .into_paginator()
        .items()
        .send()
        .collect::<std::result::Result<Vec<_>, _>>()
        .await;
    let items = items.map_err(|e| error("reading NAT gateways", e))?;
    Ok(items
        .into_iter()
        .map(|n| {
            let subnet = n.subnet_id().unwrap_or_default().to_owned();
            let eip = n
                .nat_gateway_addresses()
                .iter()
                .find_map(|a| a.allocation_id().map(str::to_owned))
                .unwrap_or_default();
            Raw {
                kind: Kind::NatGateway,
                aws_id: n.nat_gateway_id().unwrap_or_default().to_owned(),
                tags: ec2_tags(n.tags()),
                build: Box::new(move |map| {
                    (
                        Spec::NatGateway {
                            subnet: map(&subnet),
                            eip: map(&eip),
                        },
                        BTreeMap::new(),
                    )
                }),
            }
        })
        .collect())
}

async fn observe_route_tables(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let items = aws
        .ec2
        .describe_route_tables()
        .filters(env_filter(envs))
        .into_paginator()
        .items()
        .send()
        .collect::<std::result::Result<Vec<_>, _>>()
        .await;
    let items = items.map_err(|e| error("reading route tables", e))?;
    Ok(items
        .into_iter()
        .map(|t| {
            let routes: Vec<(String, String)> = t
                .routes()
                .iter()
                .filter(|r| r.gateway_id() != Some("local"))
                .filter_map(|r| {
                    let target = r.nat_gateway_id().or(r.gateway_id())?;
                    Some((r.destination_cidr_block()?.to_owned(), target.to_owned()))
                })
                .collect();
            let associations: Vec<(String, String)> = t
                .associations()
                .iter()
                .filter(|a| !a.main().unwrap_or(false))
                .filter_map(|a| {
                    Some((
                        a.subnet_id()?.to_owned(),
                        a.route_table_association_id()?.to_owned(),
                    ))
                })
                .collect();
            Raw {
                kind: Kind::RouteTable,
                aws_id: t.route_table_id().unwrap_or_default().to_owned(),
                tags: ec2_tags(t.tags()),
                build: Box::new(move |map| {
                    let routes = routes
                        .iter()
                        .map(|(d, t)| Route {
                            destination: d.clone(),
                            target: map(t),
                        })
                        .collect();
                    let subnets = associations.iter().map(|(s, _)| map(s)).collect();
                    // Association ids by AWS subnet id, to disassociate precisely.
                    let extra = associations
                        .iter()
                        .map(|(s, a)| (format!("assoc:{s}"), a.clone()))
                        .collect();
                    (Spec::RouteTable { routes, subnets }, extra)
                }),
            }
        })
        .collect())
}

fn rules_of(permissions: &[ec2::IpPermission], map: &dyn Fn(&str) -> String) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for p in permissions {
        let protocol = match p.ip_protocol().unwrap_or("-1") {
            "-1" | "all" => "all",
            "6" => "tcp",
            "17" => "udp",
            "1" => "icmp",
            other => other,
        }
        .to_owned();
        let (from_port, to_port) = match protocol.as_str() {
            "tcp" | "udp" => (
                p.from_port().and_then(|v| u16::try_from(v).ok()),
                p.to_port().and_then(|v| u16::try_from(v).ok()),
            ),
            _ => (None, None),
        };
        for range in p.ip_ranges() {
            if let Some(cidr) = range.cidr_ip() {
                out.insert(Rule {
                    protocol: protocol.clone(),
                    from_port,
                    to_port,
                    peer: RulePeer::Cidr(cidr.to_owned()),
                });
            }
        }
        for pair in p.user_id_group_pairs() {
            if let Some(group) = pair.group_id() {
                out.insert(Rule {
                    protocol: protocol.clone(),
                    from_port,
                    to_port,
                    peer: RulePeer::Group(map(group)),
                });
            }
        }
    }
    out
}

async fn observe_groups(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let items = aws
        .ec2
        .describe_security_groups()
        .filters(env_filter(envs))
        .into_paginator()
        .items()
        .send()
        .collect::<std::result::Result<Vec<_>, _>>()
        .await;
    let items = items.map_err(|e| error("reading security groups", e))?;
    Ok(items
        .into_iter()
        .map(|g| {
            let name = g.group_name().unwrap_or_default().to_owned();
            let description = g.description().unwrap_or_default().to_owned();
            let ingress = g.ip_permissions().to_vec();
            let egress = g.ip_permissions_egress().to_vec();
            Raw {
                kind: Kind::SecurityGroup,
                aws_id: g.group_id().unwrap_or_default().to_owned(),
                tags: ec2_tags(g.tags()),
                build: Box::new(move |map| {
                    let spec = Spec::SecurityGroup {
                        name: name.clone(),
                        description: description.clone(),
                        ingress: rules_of(&ingress, map),
                        egress: rules_of(&egress, map),
                    };
                    (spec, BTreeMap::new())
                }),
            }
        })
        .collect())
}

/// Load balancers, target groups and listeners. ELBv2 filters by name or ARN only, so
/// candidates are picked by the `<environment>-` name prefix and confirmed by their tags.
async fn observe_load_balancers(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let prefixes: Vec<String> = envs.iter().map(|e| format!("{e}-")).collect();
    let ours = |name: Option<&str>| {
        name.is_some_and(|n| prefixes.iter().any(|p| n.starts_with(p.as_str())))
    };
    let (lbs, tgs) = tokio::try_join!(
        async {
            aws.elb
                .describe_load_balancers()
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .map_err(|e| error("reading load balancers", e))
        },
        async {
            aws.elb
                .describe_target_groups()
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .map_err(|e| error("reading target groups", e))
        },
    )?;
    let lbs: Vec<elb::LoadBalancer> = lbs
        .into_iter()
        .filter(|l| ours(l.load_balancer_name()))
        .collect();
    let tgs: Vec<elb::TargetGroup> = tgs
        .into_iter()
        .filter(|t| ours(t.target_group_name()))
        .collect();
    let arns: Vec<String> = lbs
        .iter()
        .filter_map(|l| l.load_balancer_arn())
        .chain(tgs.iter().filter_map(|t| t.target_group_arn()))
        .map(str::to_owned)
        .collect();
    let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut tag_reads = tokio::task::JoinSet::new();
    for chunk in arns.chunks(20) {
        let client = aws.elb.clone();
        let chunk = chunk.to_vec();
        tag_reads.spawn(async move {
            client
                .describe_tags()
                .set_resource_arns(Some(chunk))
                .send()
                .await
        });
    }
    let mut listener_reads = tokio::task::JoinSet::new();
    for lb in &lbs {
        let client = aws.elb.clone();
        let arn = lb.load_balancer_arn().unwrap_or_default().to_owned();
        listener_reads.spawn(async move {
            let listeners = client
                .describe_listeners()
                .load_balancer_arn(&arn)
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await;
            (arn, listeners)
        });
    }
    while let Some(joined) = tag_reads.join_next().await {
        let out = joined
            .map_err(|e| join_error("reading load balancer tags", e))?
            .map_err(|e| error("reading load balancer tags", e))?;
        for d in out.tag_descriptions() {
            let map = super::tag_map(d.tags().iter().map(|t| (t.key(), t.value())));
            tags.insert(d.resource_arn().unwrap_or_default().to_owned(), map);
        }
    }
    let mut listeners: BTreeMap<String, Vec<elb::Listener>> = BTreeMap::new();
    while let Some(joined) = listener_reads.join_next().await {
        let (arn, result) = joined.map_err(|e| join_error("reading listeners", e))?;
        listeners.insert(arn, result.map_err(|e| error("reading listeners", e))?);
    }

    let mut out = Vec::new();
    for tg in tgs {
        let arn = tg.target_group_arn().unwrap_or_default().to_owned();
        let protocol = tg
            .protocol()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let http = matches!(protocol.as_str(), "HTTP" | "HTTPS");
        let spec = Spec::TargetGroup {
            name: tg.target_group_name().unwrap_or_default().to_owned(),
            protocol,
            port: tg.port().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
            health_check_path: if http {
                tg.health_check_path().map(str::to_owned)
            } else {
                None
            },
            health_check_port: tg.health_check_port().and_then(|p| p.parse().ok()),
        };
        out.push(Raw {
            kind: Kind::TargetGroup,
            tags: tags.get(&arn).cloned().unwrap_or_default(),
            aws_id: arn,
            build: Box::new(move |_| (spec.clone(), BTreeMap::new())),
        });
    }
    for lb in lbs {
        let arn = lb.load_balancer_arn().unwrap_or_default().to_owned();
        let lb_tags = tags.get(&arn).cloned().unwrap_or_default();
        let name = lb.load_balancer_name().unwrap_or_default().to_owned();
        let kind = lb
            .r#type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        let scheme = lb
            .scheme()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let subnets: Vec<String> = lb
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id().map(str::to_owned))
            .collect();
        let groups: Vec<String> = lb.security_groups().to_vec();
        let lb_id = lb_tags.get(TAG_ID).cloned();
        for l in listeners.remove(&arn).unwrap_or_default() {
            let (Some(lb_id), Some(port)) = (&lb_id, l.port().and_then(|p| u16::try_from(p).ok()))
            else {
                continue;
            };
            let listener_id = format!("listener/{}/{port}", lb_id.trim_start_matches("lb/"));
            let mut listener_tags = lb_tags.clone();
            listener_tags.insert(TAG_ID.to_owned(), listener_id);
            let protocol = l
                .protocol()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            let certificate = l
                .certificates()
                .iter()
                .find_map(|c| c.certificate_arn().map(str::to_owned));
            let action = l.default_actions().first().cloned();
            let lb_id = lb_id.clone();
            out.push(Raw {
                kind: Kind::Listener,
                aws_id: l.listener_arn().unwrap_or_default().to_owned(),
                tags: listener_tags,
                build: Box::new(move |map| {
                    let action = match &action {
                        Some(a) if a.r#type() == Some(&elb::ActionTypeEnum::Redirect) => {
                            let config = a.redirect_config();
                            ListenerAction::Redirect {
                                protocol: config
                                    .and_then(|c| c.protocol())
                                    .unwrap_or("#{protocol}")
                                    .to_owned(),
                                port: config
                                    .and_then(|c| c.port())
                                    .and_then(|p| p.parse().ok())
                                    .unwrap_or(0),
                            }
                        }
                        Some(a) => ListenerAction::Forward(
                            a.target_group_arn().map(map).unwrap_or_default(),
                        ),
                        None => ListenerAction::Forward(String::new()),
                    };
                    let spec = Spec::Listener {
                        load_balancer: lb_id.clone(),
                        protocol: protocol.clone(),
                        port,
                        certificate: certificate.clone(),
                        action,
                    };
                    (spec, BTreeMap::new())
                }),
            });
        }
        out.push(Raw {
            kind: Kind::LoadBalancer,
            aws_id: arn,
            tags: lb_tags,
            build: Box::new(move |map| {
                let spec = Spec::LoadBalancer {
                    name: name.clone(),
                    kind: kind.clone(),
                    scheme: scheme.clone(),
                    subnets: subnets.iter().map(|s| map(s)).collect(),
                    security_groups: groups.iter().map(|g| map(g)).collect(),
                };
                (spec, BTreeMap::new())
            }),
        });
    }
    Ok(out)
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

/// A concurrent read that panicked or was cancelled.
pub(crate) fn join_error(what: &str, e: tokio::task::JoinError) -> AwsError {
    AwsError {
        what: what.to_owned(),
        code: "Internal".to_owned(),
        message: e.to_string(),
        hint: None,
    }
}

/// Runs network actions for one environment, keeping logical → AWS ids current as
/// resources are created, so later resources can refer to earlier ones.
pub struct Executor<'a> {
    pub(crate) aws: &'a Aws,
    pub(crate) env: &'a str,
    user_tags: &'a BTreeMap<String, String>,
    /// Logical id → AWS id of everything that exists now.
    pub ids: BTreeMap<String, String>,
    /// Logical id → AWS id as observed before the run (a replaced resource's id
    /// differs from its id in `ids` once replaced).
    observed_ids: BTreeMap<String, String>,
    progress: &'a mut dyn FnMut(&str),
    /// How long to wait for a slow resource.
    pub timeout: Duration,
    /// How often to poll it.
    pub poll: Duration,
    /// A new launch-template version was made in this run (the group must roll).
    pub template_renewed: bool,
    /// The plan actions completed so far, for the report of what apply did and, when
    /// it stops at a failure, did not.
    pub completed: Vec<crate::plan::ActionKey>,
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
        let ids: BTreeMap<String, String> = observed
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
            template_renewed: false,
            completed: Vec::new(),
        }
    }

    /// The AWS id of a logical id, as known now (the logical id itself when unknown).
    pub(crate) fn id(&self, logical: &str) -> String {
        self.ids
            .get(logical)
            .cloned()
            .unwrap_or_else(|| logical.to_owned())
    }

    fn tags(&self, id: &str) -> Vec<(String, String)> {
        self.tags_for(id, crate::config::Layer::Network)
    }

    /// The tags every resource of `layer` gets at creation.
    pub(crate) fn tags_for(&self, id: &str, layer: crate::config::Layer) -> Vec<(String, String)> {
        crate::plan::tags(self.env, self.user_tags, layer, id)
    }

    fn tag_spec(&self, resource: ec2::ResourceType, id: &str) -> ec2::TagSpecification {
        self.tag_spec_for(resource, id, crate::config::Layer::Network)
    }

    /// A TagSpecification for a create call.
    pub(crate) fn tag_spec_for(
        &self,
        resource: ec2::ResourceType,
        id: &str,
        layer: crate::config::Layer,
    ) -> ec2::TagSpecification {
        tag_specification(resource, &self.tags_for(id, layer))
    }

    /// Tags for instances and volumes launched from the template: the environment and
    /// layer, with `Name` = `<environment>-instance`.
    pub(crate) fn template_tag_spec(
        &self,
        resource: ec2::ResourceType,
    ) -> ec2::LaunchTemplateTagSpecificationRequest {
        let tags = self
            .tags_for("instance", crate::config::Layer::Cluster)
            .into_iter()
            .map(|(k, v)| ec2::Tag::builder().key(k).value(v).build())
            .collect();
        ec2::LaunchTemplateTagSpecificationRequest::builder()
            .resource_type(resource)
            .set_tags(Some(tags))
            .build()
    }

    fn elb_tags(&self, id: &str) -> Vec<elb::Tag> {
        self.tags(id)
            .into_iter()
            .map(|(k, v)| elb::Tag::builder().key(k).value(v).build())
            .collect()
    }

    /// Reports a progress line.
    pub fn say(&mut self, line: &str) {
        (self.progress)(line);
    }

    /// Creates a resource (tags set at creation). Security groups are created without
    /// rules; [`Executor::sync_rules`] adds them once every group exists.
    pub async fn create(&mut self, r: &Resource) -> Result<()> {
        let what = format!("creating {} {}", r.kind.describe(), r.id);
        let ec2c = &self.aws.ec2;
        let aws_id = match &r.spec {
            Spec::LaunchTemplate { .. } => return self.create_launch_template(&r.spec).await,
            Spec::AutoScalingGroup { .. } => {
                return self.put_auto_scaling_group(&r.spec, None, None).await;
            }
            // The template is created with the config; the node layer only checks it.
            Spec::NodeConfig { .. } => return Ok(()),
            Spec::Instance { .. } => {
                self.launch_instance(r, None).await?;
                return Ok(());
            }
            Spec::Volume { .. } => return self.create_volume(r).await,
            Spec::Vpc { cidr } => {
                let out = ec2c
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(self.tag_spec(ec2::ResourceType::Vpc, &r.id))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                let id = out
                    .vpc()
                    .and_then(|v| v.vpc_id())
                    .unwrap_or_default()
                    .to_owned();
                // Instances need DNS names and resolution; both are off by default on
                // a new VPC and each takes its own call.
                for support in [true, false] {
                    let on = ec2::AttributeBooleanValue::builder().value(true).build();
                    let call = ec2c.modify_vpc_attribute().vpc_id(&id);
                    let call = if support {
                        call.enable_dns_support(on)
                    } else {
                        call.enable_dns_hostnames(on)
                    };
                    call.send()
                        .await
                        .map_err(|e| error(format!("{what}: enabling DNS"), e))?;
                }
                id
            }
            Spec::Subnet { cidr, zone, public } => {
                let out = ec2c
                    .create_subnet()
                    .vpc_id(self.id("vpc"))
                    .cidr_block(cidr)
                    .availability_zone(zone)
                    .tag_specifications(self.tag_spec(ec2::ResourceType::Subnet, &r.id))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                let id = out
                    .subnet()
                    .and_then(|s| s.subnet_id())
                    .unwrap_or_default()
                    .to_owned();
                if *public {
                    self.set_public(&id, true, &what).await?;
                }
                id
            }
            Spec::InternetGateway { .. } => {
                let out = ec2c
                    .create_internet_gateway()
                    .tag_specifications(self.tag_spec(ec2::ResourceType::InternetGateway, &r.id))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                let id = out
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .unwrap_or_default()
                    .to_owned();
                ec2c.attach_internet_gateway()
                    .internet_gateway_id(&id)
                    .vpc_id(self.id("vpc"))
                    .send()
                    .await
                    .map_err(|e| error(format!("{what}: attaching it to the VPC"), e))?;
                id
            }
            Spec::ElasticIp => {
                let out = ec2c
                    .allocate_address()
                    .domain(ec2::DomainType::Vpc)
                    .tag_specifications(self.tag_spec(ec2::ResourceType::ElasticIp, &r.id))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                out.allocation_id().unwrap_or_default().to_owned()
            }
            Spec::NatGateway { subnet, eip } => {
                let out = ec2c
                    .create_nat_gateway()
                    .subnet_id(self.id(subnet))
                    .allocation_id(self.id(eip))
                    .client_token(client_token(self.env, &r.id))
                    .tag_specifications(self.tag_spec(ec2::ResourceType::Natgateway, &r.id))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                let id = out
                    .nat_gateway()
                    .and_then(|n| n.nat_gateway_id())
                    .unwrap_or_default()
                    .to_owned();
                self.wait_nat(&r.id, &id, ec2::NatGatewayState::Available)
                    .await?;
                id
            }
            Spec::RouteTable { routes, subnets } => {
                let out = ec2c
                    .create_route_table()
                    .vpc_id(self.id("vpc"))
                    .tag_specifications(self.tag_spec(ec2::ResourceType::RouteTable, &r.id))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                let id = out
                    .route_table()
                    .and_then(|t| t.route_table_id())
                    .unwrap_or_default()
                    .to_owned();
                self.ids.insert(r.id.clone(), id.clone());
                for route in routes {
                    self.put_route(&id, route, false, &what).await?;
                }
                for subnet in subnets {
                    self.associate(&id, subnet, &what).await?;
                }
                id
            }
            Spec::SecurityGroup {
                name, description, ..
            } => {
                let out = ec2c
                    .create_security_group()
                    .group_name(name)
                    .description(description)
                    .vpc_id(self.id("vpc"))
                    .tag_specifications(self.tag_spec(ec2::ResourceType::SecurityGroup, &r.id))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                out.group_id().unwrap_or_default().to_owned()
            }
            Spec::TargetGroup {
                name,
                protocol,
                port,
                health_check_path,
                health_check_port,
            } => {
                let out = self
                    .aws
                    .elb
                    .create_target_group()
                    .name(name)
                    .protocol(elb::ProtocolEnum::from(protocol.as_str()))
                    .port(i32::from(*port))
                    .vpc_id(self.id("vpc"))
                    .target_type(elb::TargetTypeEnum::Instance)
                    .set_health_check_path(health_check_path.clone())
                    .set_health_check_port(health_check_port.map(|p| p.to_string()))
                    .set_tags(Some(self.elb_tags(&r.id)))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                out.target_groups()
                    .first()
                    .and_then(|t| t.target_group_arn())
                    .unwrap_or_default()
                    .to_owned()
            }
            Spec::LoadBalancer {
                name,
                kind,
                scheme,
                subnets,
                security_groups,
            } => {
                let application = kind == "application";
                let out = self
                    .aws
                    .elb
                    .create_load_balancer()
                    .name(name)
                    .r#type(elb::LoadBalancerTypeEnum::from(kind.as_str()))
                    .scheme(elb::LoadBalancerSchemeEnum::from(scheme.as_str()))
                    .set_subnets(Some(subnets.iter().map(|s| self.id(s)).collect()))
                    .set_security_groups(
                        application.then(|| security_groups.iter().map(|g| self.id(g)).collect()),
                    )
                    .set_tags(Some(self.elb_tags(&r.id)))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                let arn = out
                    .load_balancers()
                    .first()
                    .and_then(|l| l.load_balancer_arn())
                    .unwrap_or_default()
                    .to_owned();
                self.wait_load_balancer(&r.id, &arn).await?;
                arn
            }
            Spec::Listener {
                load_balancer,
                protocol,
                port,
                certificate,
                action,
            } => {
                let out = self
                    .aws
                    .elb
                    .create_listener()
                    .load_balancer_arn(self.id(load_balancer))
                    .protocol(elb::ProtocolEnum::from(protocol.as_str()))
                    .port(i32::from(*port))
                    .set_certificates(
                        certificate
                            .as_ref()
                            .map(|c| vec![elb::Certificate::builder().certificate_arn(c).build()]),
                    )
                    .default_actions(self.listener_action(action))
                    .set_tags(Some(self.elb_tags(&r.id)))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                out.listeners()
                    .first()
                    .and_then(|l| l.listener_arn())
                    .unwrap_or_default()
                    .to_owned()
            }
        };
        self.ids.insert(r.id.clone(), aws_id);
        Ok(())
    }

    /// Converges an existing resource to `desired` from what was observed.
    pub async fn update(&mut self, desired: &Resource, observed: &Observed) -> Result<()> {
        let what = format!(
            "updating {} {} ({})",
            desired.kind.describe(),
            desired.id,
            observed.aws_id
        );
        let aws_id = observed.aws_id.clone();
        match (&desired.spec, &observed.spec) {
            (Spec::Subnet { public, .. }, Spec::Subnet { public: was, .. }) if public != was => {
                self.set_public(&aws_id, *public, &what).await?;
            }
            (Spec::InternetGateway { .. }, _) => {
                let vpc = self.id("vpc");
                if observed.extra.get("attached_vpc") != Some(&vpc) {
                    if let Some(old) = observed.extra.get("attached_vpc") {
                        let _ = self
                            .aws
                            .ec2
                            .detach_internet_gateway()
                            .internet_gateway_id(&aws_id)
                            .vpc_id(old)
                            .send()
                            .await;
                    }
                    self.aws
                        .ec2
                        .attach_internet_gateway()
                        .internet_gateway_id(&aws_id)
                        .vpc_id(vpc)
                        .send()
                        .await
                        .map_err(|e| error(&what, e))?;
                }
            }
            (
                Spec::RouteTable { routes, subnets },
                Spec::RouteTable {
                    routes: old_routes, ..
                },
            ) => {
                let wanted: BTreeMap<&str, &Route> =
                    routes.iter().map(|r| (r.destination.as_str(), r)).collect();
                for old in old_routes {
                    if !wanted.contains_key(old.destination.as_str()) {
                        self.aws
                            .ec2
                            .delete_route()
                            .route_table_id(&aws_id)
                            .destination_cidr_block(&old.destination)
                            .send()
                            .await
                            .map_err(|e| {
                                error(format!("{what}: removing route {}", old.destination), e)
                            })?;
                    }
                }
                for route in routes {
                    // Compare in AWS terms: a target replaced in this run (a NAT gateway
                    // in a replaced subnet) has a new id the route must move to.
                    let current = old_routes
                        .iter()
                        .find(|o| o.destination == route.destination);
                    let up_to_date = current.is_some_and(|c| {
                        c.target == route.target
                            && self.ids.contains_key(&c.target)
                            && self.observed_ids.get(&c.target) == self.ids.get(&c.target)
                    });
                    if !up_to_date {
                        self.put_route(&aws_id, route, current.is_some(), &what)
                            .await?;
                    }
                }
                let wanted_subnets: BTreeSet<String> = subnets.iter().map(|s| self.id(s)).collect();
                for (key, association) in &observed.extra {
                    let Some(subnet) = key.strip_prefix("assoc:") else {
                        continue;
                    };
                    if !wanted_subnets.contains(subnet) {
                        self.aws
                            .ec2
                            .disassociate_route_table()
                            .association_id(association)
                            .send()
                            .await
                            .map_err(|e| error(format!("{what}: disassociating {subnet}"), e))?;
                    }
                }
                for subnet in subnets {
                    if !observed
                        .extra
                        .contains_key(&format!("assoc:{}", self.id(subnet)))
                    {
                        self.associate(&aws_id, subnet, &what).await?;
                    }
                }
            }
            (Spec::SecurityGroup { .. }, _) => self.sync_rules(desired, Some(observed)).await?,
            (
                Spec::TargetGroup {
                    health_check_path,
                    health_check_port,
                    ..
                },
                _,
            ) => {
                self.aws
                    .elb
                    .modify_target_group()
                    .target_group_arn(&aws_id)
                    .set_health_check_path(health_check_path.clone())
                    .health_check_port(
                        health_check_port.map_or("traffic-port".to_owned(), |p| p.to_string()),
                    )
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
            }
            (
                Spec::LoadBalancer {
                    kind,
                    subnets,
                    security_groups,
                    ..
                },
                _,
            ) => {
                let subnet_ids: Vec<String> = subnets.iter().map(|s| self.id(s)).collect();
                self.aws
                    .elb
                    .set_subnets()
                    .load_balancer_arn(&aws_id)
                    .set_subnets(Some(subnet_ids))
                    .send()
                    .await
                    .map_err(|e| error(format!("{what}: setting subnets"), e))?;
                if kind == "application" {
                    let group_ids: Vec<String> =
                        security_groups.iter().map(|g| self.id(g)).collect();
                    self.aws
                        .elb
                        .set_security_groups()
                        .load_balancer_arn(&aws_id)
                        .set_security_groups(Some(group_ids))
                        .send()
                        .await
                        .map_err(|e| error(format!("{what}: setting security groups"), e))?;
                }
            }
            (
                Spec::Listener {
                    protocol,
                    certificate,
                    action,
                    ..
                },
                _,
            ) => {
                self.aws
                    .elb
                    .modify_listener()
                    .listener_arn(&aws_id)
                    .protocol(elb::ProtocolEnum::from(protocol.as_str()))
                    .set_certificates(
                        certificate
                            .as_ref()
                            .map(|c| vec![elb::Certificate::builder().certificate_arn(c).build()]),
                    )
                    .default_actions(self.listener_action(action))
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
            }
            _ => {}
        }
        self.ids.insert(desired.id.clone(), aws_id);
        Ok(())
    }

    /// Makes a security group's rules exactly the desired ones: authorizes what is
    /// missing, revokes what is extra, nothing else.
    pub async fn sync_rules(
        &mut self,
        desired: &Resource,
        observed: Option<&Observed>,
    ) -> Result<()> {
        let Spec::SecurityGroup {
            ingress, egress, ..
        } = &desired.spec
        else {
            return Ok(());
        };
        let group = self.id(&desired.id);
        let (old_in, old_out) = match observed.map(|o| &o.spec) {
            Some(Spec::SecurityGroup {
                ingress, egress, ..
            }) => (ingress.clone(), egress.clone()),
            // A new group starts with AWS's default egress rule.
            _ => (BTreeSet::new(), BTreeSet::from([all_traffic()])),
        };
        // Compare in AWS terms, so a peer group that was replaced counts as a change.
        let key = |r: &Rule| (r.clone(), self.peer_id(&r.peer));
        let old_in: BTreeMap<_, _> = old_in.iter().map(|r| (key(r), r)).collect();
        let old_out: BTreeMap<_, _> = old_out.iter().map(|r| (key(r), r)).collect();
        let new_in: BTreeMap<_, _> = ingress.iter().map(|r| (key(r), r)).collect();
        let new_out: BTreeMap<_, _> = egress.iter().map(|r| (key(r), r)).collect();
        let what = format!("updating rules of security group {} ({group})", desired.id);
        let revoke_in: Vec<_> = old_in
            .iter()
            .filter(|(k, _)| !new_in.contains_key(*k))
            .map(|(k, _)| self.permission(&k.0, &k.1))
            .collect();
        let revoke_out: Vec<_> = old_out
            .iter()
            .filter(|(k, _)| !new_out.contains_key(*k))
            .map(|(k, _)| self.permission(&k.0, &k.1))
            .collect();
        let add_in: Vec<_> = new_in
            .iter()
            .filter(|(k, _)| !old_in.contains_key(*k))
            .map(|(k, _)| self.permission(&k.0, &k.1))
            .collect();
        let add_out: Vec<_> = new_out
            .iter()
            .filter(|(k, _)| !old_out.contains_key(*k))
            .map(|(k, _)| self.permission(&k.0, &k.1))
            .collect();
        self.change_rules(&group, RuleChange::RevokeIngress, revoke_in, &what)
            .await?;
        self.change_rules(&group, RuleChange::RevokeEgress, revoke_out, &what)
            .await?;
        self.change_rules(&group, RuleChange::AuthorizeIngress, add_in, &what)
            .await?;
        self.change_rules(&group, RuleChange::AuthorizeEgress, add_out, &what)
            .await
    }

    /// One rules call on a group; nothing is sent for an empty list.
    async fn change_rules(
        &self,
        group: &str,
        change: RuleChange,
        permissions: Vec<ec2::IpPermission>,
        what: &str,
    ) -> Result<()> {
        if permissions.is_empty() {
            return Ok(());
        }
        let (ec2c, permissions) = (&self.aws.ec2, Some(permissions));
        match change {
            RuleChange::RevokeIngress => ec2c
                .revoke_security_group_ingress()
                .group_id(group)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(what, e)),
            RuleChange::RevokeEgress => ec2c
                .revoke_security_group_egress()
                .group_id(group)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(what, e)),
            RuleChange::AuthorizeIngress => ec2c
                .authorize_security_group_ingress()
                .group_id(group)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(what, e)),
            RuleChange::AuthorizeEgress => ec2c
                .authorize_security_group_egress()
                .group_id(group)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(what, e)),
        }
    }

    /// Before groups are deleted: revokes their rules that name other groups, which
    /// would otherwise keep those groups in use.
    pub async fn release_group_references(&mut self, observed: &Observed) -> Result<()> {
        let Spec::SecurityGroup {
            ingress, egress, ..
        } = &observed.spec
        else {
            return Ok(());
        };
        let referencing = |rules: &BTreeSet<Rule>| -> Vec<ec2::IpPermission> {
            rules
                .iter()
                .filter(|r| matches!(r.peer, RulePeer::Group(_)))
                .map(|r| self.permission(r, &self.peer_id(&r.peer)))
                .collect()
        };
        let (inbound, outbound) = (referencing(ingress), referencing(egress));
        let what = format!(
            "releasing rules of security group {} ({})",
            observed.id, observed.aws_id
        );
        self.change_rules(&observed.aws_id, RuleChange::RevokeIngress, inbound, &what)
            .await?;
        self.change_rules(&observed.aws_id, RuleChange::RevokeEgress, outbound, &what)
            .await
    }

    /// Deletes a resource (and waits where later deletions depend on it being gone).
    pub async fn delete(&mut self, o: &Observed) -> Result<()> {
        let what = format!("deleting {} {} ({})", o.kind.describe(), o.id, o.aws_id);
        let id = o.aws_id.as_str();
        let ec2c = &self.aws.ec2;
        match o.kind {
            Kind::LaunchTemplate | Kind::AutoScalingGroup | Kind::Instance | Kind::Volume => {
                self.delete_cluster(o).await?
            }
            Kind::NodeConfig => {}
            Kind::Vpc => ec2c
                .delete_vpc()
                .vpc_id(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(&what, e))?,
            Kind::Subnet => ec2c
                .delete_subnet()
                .subnet_id(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(&what, e))?,
            Kind::InternetGateway => {
                if let Some(vpc) = o.extra.get("attached_vpc") {
                    ec2c.detach_internet_gateway()
                        .internet_gateway_id(id)
                        .vpc_id(vpc)
                        .send()
                        .await
                        .map_err(|e| error(format!("{what}: detaching it"), e))?;
                }
                ec2c.delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| error(&what, e))?
            }
            Kind::ElasticIp => ec2c
                .release_address()
                .allocation_id(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(&what, e))?,
            Kind::NatGateway => {
                ec2c.delete_nat_gateway()
                    .nat_gateway_id(id)
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                self.wait_nat(&o.id, id, ec2::NatGatewayState::Deleted)
                    .await?;
            }
            Kind::RouteTable => {
                for (key, association) in &o.extra {
                    if key.starts_with("assoc:") {
                        ec2c.disassociate_route_table()
                            .association_id(association)
                            .send()
                            .await
                            .map_err(|e| error(format!("{what}: disassociating"), e))?;
                    }
                }
                ec2c.delete_route_table()
                    .route_table_id(id)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| error(&what, e))?
            }
            Kind::SecurityGroup => ec2c
                .delete_security_group()
                .group_id(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(&what, e))?,
            Kind::TargetGroup => self
                .aws
                .elb
                .delete_target_group()
                .target_group_arn(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(&what, e))?,
            Kind::LoadBalancer => {
                self.aws
                    .elb
                    .delete_load_balancer()
                    .load_balancer_arn(id)
                    .send()
                    .await
                    .map_err(|e| error(&what, e))?;
                self.wait_load_balancer_gone(&o.id, id).await?;
            }
            Kind::Listener => self
                .aws
                .elb
                .delete_listener()
                .listener_arn(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| error(&what, e))?,
        }
        self.ids.remove(&o.id);
        Ok(())
    }

    fn peer_id(&self, peer: &RulePeer) -> String {
        match peer {
            RulePeer::Cidr(c) => c.clone(),
            RulePeer::Group(g) => self.id(g),
        }
    }

    fn permission(&self, rule: &Rule, peer: &str) -> ec2::IpPermission {
        let protocol = if rule.protocol == "all" {
            "-1"
        } else {
            rule.protocol.as_str()
        };
        let mut p = ec2::IpPermission::builder().ip_protocol(protocol);
        match rule.protocol.as_str() {
            "tcp" | "udp" => {
                p = p
                    .set_from_port(rule.from_port.map(i32::from))
                    .set_to_port(rule.to_port.map(i32::from))
            }
            "icmp" => p = p.from_port(-1).to_port(-1),
            _ => {}
        }
        match &rule.peer {
            RulePeer::Cidr(c) => p = p.ip_ranges(ec2::IpRange::builder().cidr_ip(c).build()),
            RulePeer::Group(_) => {
                p = p.user_id_group_pairs(ec2::UserIdGroupPair::builder().group_id(peer).build())
            }
        }
        p.build()
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

    async fn set_public(&self, subnet: &str, public: bool, what: &str) -> Result<()> {
        self.aws
            .ec2
            .modify_subnet_attribute()
            .subnet_id(subnet)
            .map_public_ip_on_launch(ec2::AttributeBooleanValue::builder().value(public).build())
            .send()
            .await
            .map(drop)
            .map_err(|e| error(format!("{what}: setting public addressing"), e))
    }

    async fn put_route(&self, table: &str, route: &Route, replace: bool, what: &str) -> Result<()> {
        let target = self.id(&route.target);
        let nat = target.starts_with("nat-");
        let what = format!("{what}: route {} via {}", route.destination, route.target);
        if replace {
            let call = self
                .aws
                .ec2
                .replace_route()
                .route_table_id(table)
                .destination_cidr_block(&route.destination);
            let call = if nat {
                call.nat_gateway_id(target)
            } else {
                call.gateway_id(target)
            };
            call.send().await.map(drop).map_err(|e| error(what, e))
        } else {
            let call = self
                .aws
                .ec2
                .create_route()
                .route_table_id(table)
                .destination_cidr_block(&route.destination);
            let call = if nat {
                call.nat_gateway_id(target)
            } else {
                call.gateway_id(target)
            };
            call.send().await.map(drop).map_err(|e| error(what, e))
        }
    }

    async fn associate(&self, table: &str, subnet: &str, what: &str) -> Result<()> {
        self.aws
            .ec2
            .associate_route_table()
            .route_table_id(table)
            .subnet_id(self.id(subnet))
            .send()
            .await
            .map(drop)
            .map_err(|e| error(format!("{what}: associating {subnet}"), e))
    }

    async fn wait_nat(
        &mut self,
        logical: &str,
        id: &str,
        wanted: ec2::NatGatewayState,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            let out = self
                .aws
                .ec2
                .describe_nat_gateways()
                .nat_gateway_ids(id)
                .send()
                .await
                .map_err(|e| error(format!("waiting for NAT gateway {logical} ({id})"), e))?;
            let state = out.nat_gateways().first().and_then(|n| n.state()).cloned();
            if state.as_ref() == Some(&wanted)
                || (wanted == ec2::NatGatewayState::Deleted && state.is_none())
            {
                return Ok(());
            }
            if state == Some(ec2::NatGatewayState::Failed) {
                let reason = out
                    .nat_gateways()
                    .first()
                    .and_then(|n| n.failure_message())
                    .unwrap_or("no reason given")
                    .to_owned();
                return Err(AwsError {
                    what: format!("creating NAT gateway {logical} ({id})"),
                    code: "NatGatewayFailed".into(),
                    message: reason,
                    hint: Some(
                        "fix the cause, then run apply again: the failed gateway is ignored".into(),
                    ),
                });
            }
            self.wait_a_bit(logical, id, wanted.as_str(), start).await?;
        }
    }

    async fn wait_load_balancer(&mut self, logical: &str, arn: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            let out = self
                .aws
                .elb
                .describe_load_balancers()
                .load_balancer_arns(arn)
                .send()
                .await
                .map_err(|e| error(format!("waiting for load balancer {logical}"), e))?;
            let state = out
                .load_balancers()
                .first()
                .and_then(|l| l.state())
                .and_then(|s| s.code())
                .cloned();
            match state {
                Some(elb::LoadBalancerStateEnum::Active) | None => return Ok(()),
                Some(elb::LoadBalancerStateEnum::Failed) => {
                    return Err(AwsError {
                        what: format!("creating load balancer {logical}"),
                        code: "LoadBalancerFailed".into(),
                        message: "the load balancer entered the failed state".into(),
                        hint: Some(
                            "check its subnets and security groups, then run apply again".into(),
                        ),
                    });
                }
                Some(_) => self.wait_a_bit(logical, arn, "active", start).await?,
            }
        }
    }

    async fn wait_load_balancer_gone(&mut self, logical: &str, arn: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            match self
                .aws
                .elb
                .describe_load_balancers()
                .load_balancer_arns(arn)
                .send()
                .await
            {
                Ok(out) if !out.load_balancers().is_empty() => {
                    self.wait_a_bit(logical, arn, "deleted", start).await?
                }
                _ => return Ok(()),
            }
        }
    }

    pub(crate) async fn wait_a_bit(
        &mut self,
        logical: &str,
        id: &str,
        wanted: &str,
        start: Instant,
    ) -> Result<()> {
        let waited = start.elapsed();
        if waited >= self.timeout {
            return Err(AwsError {
                what: format!("waiting for {logical} ({id}) to be {wanted}"),
                code: "Timeout".into(),
                message: format!("still not {wanted} after {}s", waited.as_secs()),
                hint: Some("AWS is slow or the resource is stuck; check it in the console, then run apply again".into()),
            });
        }
        self.say(&format!(
            "  … waiting for {logical} ({id}) to be {wanted} ({}s)",
            waited.as_secs()
        ));
        tokio::time::sleep(self.poll).await;
        Ok(())
    }
}

/// The four calls that change a group's rules.
#[derive(Debug, Clone, Copy)]
enum RuleChange {
    RevokeIngress,
    RevokeEgress,
    AuthorizeIngress,
    AuthorizeEgress,
}

fn all_traffic() -> Rule {
    Rule {
        protocol: "all".into(),
        from_port: None,
        to_port: None,
        peer: RulePeer::Cidr("0.0.0.0/0".into()),
    }
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
