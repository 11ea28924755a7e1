//! The network layer's reads: one listing per resource type for all environments of
//! a region (ELBv2 adds its listeners, per load balancer, and tags, 20 ARNs a call).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types as ec2;
use aws_sdk_elasticloadbalancingv2::types as elb;

use super::{Raw, Result};
use crate::aws::read::{
    all, all_by_sets, by_sets, ec2_tags, env_filter, join_error, parsed, required, tag_map,
};
use crate::aws::{Aws, AwsError, error};
use crate::config::LoadBalancerKind;
use crate::config::catalogue::LbProtocol;
use crate::plan::spec::{
    InternetGateway, Listener, LoadBalancer, NatGateway, RouteTable, Scheme, SecurityGroup, Subnet,
    TargetGroup, Vpc,
};
use crate::plan::{
    Kind, ListenerAction, Live, LogicalId, Route, Rule, RulePeer, Spec, TAG_COMMIT, TAG_ID,
};

pub(super) async fn vpcs(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let what = "reading VPCs";
    let vpcs = all_by_sets(what, envs, |set| {
        let pages = aws.ec2.describe_vpcs().filters(env_filter(set));
        pages.into_paginator().items().send()
    })
    .await?;
    let mut dns = dns_of(aws, &vpcs).await?;
    vpcs.into_iter()
        .map(|v| {
            let id = required(v.vpc_id(), "a VPC", "id")?;
            let cidr = parsed(v.cidr_block(), id, "CIDR block")?;
            let dns = dns.remove(id).unwrap_or(true);
            let spec = Spec::Vpc(Vpc { cidr, dns });
            Ok(Raw::plain(
                Kind::Vpc,
                id.to_owned(),
                ec2_tags(v.tags()),
                spec,
            ))
        })
        .collect()
}

/// Whether DNS resolution and hostnames are both on, by VPC id, for the VPCs whose
/// network no apply has finished (no `strata:commit` yet): DescribeVpcs does not say,
/// so two attribute reads per such VPC, all at once. A finished apply turned both on
/// when it made the VPC, so a steady plan costs no extra read; the price is that DNS
/// turned off by hand on a finished VPC goes unseen.
async fn dns_of(aws: &Aws, vpcs: &[ec2::Vpc]) -> Result<BTreeMap<String, bool>> {
    let mut reads = tokio::task::JoinSet::new();
    let unfinished = vpcs
        .iter()
        .filter(|v| !v.tags().iter().any(|t| t.key() == Some(TAG_COMMIT)));
    for vpc in unfinished.filter_map(|v| v.vpc_id()) {
        for attribute in [
            ec2::VpcAttributeName::EnableDnsSupport,
            ec2::VpcAttributeName::EnableDnsHostnames,
        ] {
            let what = format!("reading {attribute} of VPC {vpc}");
            let call = aws
                .ec2
                .describe_vpc_attribute()
                .vpc_id(vpc)
                .attribute(attribute.clone());
            let vpc = vpc.to_owned();
            reads.spawn(async move {
                let out = call.send().await.map_err(|e| error(&what, e))?;
                let on = match attribute {
                    ec2::VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
                    _ => out.enable_dns_hostnames(),
                }
                .and_then(|v| v.value())
                .unwrap_or(false);
                Ok::<_, AwsError>((vpc, on))
            });
        }
    }
    let mut dns = BTreeMap::new();
    while let Some(joined) = reads.join_next().await {
        let (vpc, on) = joined.map_err(|e| join_error("reading VPC attributes", e))??;
        *dns.entry(vpc).or_insert(true) &= on;
    }
    Ok(dns)
}

pub(super) async fn subnets(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let what = "reading subnets";
    all_by_sets(what, envs, |set| {
        let pages = aws.ec2.describe_subnets().filters(env_filter(set));
        pages.into_paginator().items().send()
    })
    .await?
    .into_iter()
    .map(|s| {
        let id = required(s.subnet_id(), "a subnet", "id")?;
        let spec = Spec::Subnet(Subnet {
            cidr: parsed(s.cidr_block(), id, "CIDR block")?,
            zone: parsed(s.availability_zone(), id, "availability zone")?,
            public: s.map_public_ip_on_launch().unwrap_or(false),
        });
        Ok(Raw::plain(
            Kind::Subnet,
            id.to_owned(),
            ec2_tags(s.tags()),
            spec,
        ))
    })
    .collect()
}

pub(super) async fn internet_gateways(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let what = "reading internet gateways";
    all_by_sets(what, envs, |set| {
        let pages = aws.ec2.describe_internet_gateways();
        pages
            .filters(env_filter(set))
            .into_paginator()
            .items()
            .send()
    })
    .await?
    .into_iter()
    .map(|g| {
        let id = required(g.internet_gateway_id(), "an internet gateway", "id")?;
        let vpc = g
            .attachments()
            .iter()
            .find_map(|a| a.vpc_id().map(str::to_owned));
        Ok(Raw {
            kind: Kind::InternetGateway,
            aws_id: id.to_owned(),
            tags: ec2_tags(g.tags()),
            build: Box::new(move |map| {
                let spec = Spec::InternetGateway(InternetGateway {
                    attached: vpc.as_deref().map(map),
                });
                let live = Live::InternetGateway {
                    attached_vpc: vpc.clone(),
                };
                (spec, live)
            }),
        })
    })
    .collect()
}

pub(super) async fn addresses(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    // DescribeAddresses answers in one page.
    let addresses = by_sets(envs, |set| {
        let call = aws.ec2.describe_addresses().filters(env_filter(set));
        async move {
            let out = call.send().await;
            let out = out.map_err(|e| error("reading elastic IPs", e))?;
            Ok(out.addresses.unwrap_or_default())
        }
    })
    .await?;
    addresses
        .iter()
        .map(|a| {
            let id = required(a.allocation_id(), "an elastic IP", "allocation id")?;
            let tags = ec2_tags(a.tags());
            Ok(Raw::plain(
                Kind::ElasticIp,
                id.to_owned(),
                tags,
                Spec::ElasticIp,
            ))
        })
        .collect()
}

pub(super) async fn nat_gateways(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let what = "reading NAT gateways";
    let state = ec2::Filter::builder()
        .name("state")
        .values("pending")
        .values("available")
        .build();
    all_by_sets(what, envs, |set| {
        let pages = aws.ec2.describe_nat_gateways().filter(env_filter(set));
        pages.filter(state.clone()).into_paginator().items().send()
    })
    .await?
    .into_iter()
    .map(|n| {
        let id = required(n.nat_gateway_id(), "a NAT gateway", "id")?;
        let subnet = required(n.subnet_id(), id, "subnet")?.to_owned();
        let eip = n
            .nat_gateway_addresses()
            .iter()
            .find_map(|a| a.allocation_id().map(str::to_owned));
        let eip = required(eip, id, "elastic IP")?;
        Ok(Raw {
            kind: Kind::NatGateway,
            aws_id: id.to_owned(),
            tags: ec2_tags(n.tags()),
            build: Box::new(move |map| {
                let spec = Spec::NatGateway(NatGateway {
                    subnet: map(&subnet),
                    eip: map(&eip),
                });
                (spec, Live::Nothing)
            }),
        })
    })
    .collect()
}

pub(super) async fn route_tables(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let what = "reading route tables";
    all_by_sets(what, envs, |set| {
        let pages = aws.ec2.describe_route_tables().filters(env_filter(set));
        pages.into_paginator().items().send()
    })
    .await?
    .into_iter()
    .map(|t| {
        let id = required(t.route_table_id(), "a route table", "id")?;
        let routes: Vec<(String, String)> = t
            .routes()
            .iter()
            .filter(|r| r.gateway_id() != Some("local"))
            .filter_map(|r| {
                let target = r.nat_gateway_id().or(r.gateway_id())?;
                Some((r.destination_cidr_block()?.to_owned(), target.to_owned()))
            })
            .collect();
        // Association ids by AWS subnet id.
        let associations: BTreeMap<String, String> = t
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
        Ok(Raw {
            kind: Kind::RouteTable,
            aws_id: id.to_owned(),
            tags: ec2_tags(t.tags()),
            build: Box::new(move |map| {
                let routes = routes
                    .iter()
                    .map(|(d, t)| Route {
                        destination: d.clone(),
                        target: map(t),
                    })
                    .collect();
                let subnets = associations.keys().map(|s| map(s)).collect();
                let live = Live::RouteTable {
                    associations: associations.clone(),
                };
                (Spec::RouteTable(RouteTable { routes, subnets }), live)
            }),
        })
    })
    .collect()
}

/// A group's permissions as rules, peers mapped to logical ids.
fn rules_of(permissions: &[ec2::IpPermission], map: &dyn Fn(&str) -> LogicalId) -> BTreeSet<Rule> {
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
        let rule = |peer| Rule {
            protocol: protocol.clone(),
            from_port,
            to_port,
            peer,
        };
        let cidrs = p.ip_ranges().iter().filter_map(|r| r.cidr_ip());
        out.extend(cidrs.map(|c| rule(RulePeer::Cidr(c.to_owned()))));
        let groups = p.user_id_group_pairs().iter().filter_map(|g| g.group_id());
        out.extend(groups.map(|g| rule(RulePeer::Group(map(g)))));
    }
    out
}

pub(super) async fn security_groups(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    let what = "reading security groups";
    all_by_sets(what, envs, |set| {
        let pages = aws.ec2.describe_security_groups().filters(env_filter(set));
        pages.into_paginator().items().send()
    })
    .await?
    .into_iter()
    .map(|g| {
        let id = required(g.group_id(), "a security group", "id")?;
        let name = required(g.group_name(), id, "name")?.to_owned();
        let description = g.description().unwrap_or_default().to_owned();
        let ingress = g.ip_permissions().to_vec();
        let egress = g.ip_permissions_egress().to_vec();
        Ok(Raw {
            kind: Kind::SecurityGroup,
            aws_id: id.to_owned(),
            tags: ec2_tags(g.tags()),
            build: Box::new(move |map| {
                let spec = Spec::SecurityGroup(SecurityGroup {
                    name: name.clone(),
                    description: description.clone(),
                    ingress: rules_of(&ingress, map),
                    egress: rules_of(&egress, map),
                });
                (spec, Live::Nothing)
            }),
        })
    })
    .collect()
}

/// Load balancers, target groups and listeners. ELBv2 filters by name or ARN only, so
/// candidates are picked by the `<environment>-` name prefix and confirmed by their tags.
pub(super) async fn load_balancers(aws: &Aws, envs: &[String]) -> Result<Vec<Raw>> {
    // `<environment>-…`: some text before a hyphen is one of `envs`.
    let envs: BTreeSet<&str> = envs.iter().map(String::as_str).collect();
    let ours = |name: Option<&str>| {
        name.is_some_and(|n| n.match_indices('-').any(|(at, _)| envs.contains(&n[..at])))
    };
    let (lbs, tgs) = tokio::try_join!(
        async {
            aws.elb_read().await;
            // The largest pages ELBv2 gives: each further page is one more round.
            let pages = aws.elb.describe_load_balancers().page_size(400);
            let pages = pages.into_paginator();
            all("reading load balancers", pages.items().send()).await
        },
        async {
            aws.elb_read().await;
            let pages = aws.elb.describe_target_groups().page_size(400);
            let pages = pages.into_paginator();
            all("reading target groups", pages.items().send()).await
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
    let (mut tags, mut listeners) = tokio::try_join!(elb_tags(aws, &arns), listeners(aws, &lbs))?;

    let mut out = Vec::new();
    for tg in tgs {
        let arn = required(tg.target_group_arn(), "a target group", "ARN")?.to_owned();
        let protocol = protocol_of(tg.protocol(), &arn)?;
        let http = matches!(protocol, LbProtocol::Http | LbProtocol::Https);
        let spec = Spec::TargetGroup(TargetGroup {
            name: required(tg.target_group_name(), &arn, "name")?.to_owned(),
            protocol,
            port: required(tg.port().and_then(|p| u16::try_from(p).ok()), &arn, "port")?,
            health_check_path: if http {
                tg.health_check_path().map(str::to_owned)
            } else {
                None
            },
            health_check_port: tg.health_check_port().and_then(|p| p.parse().ok()),
        });
        let tags = tags.remove(&arn).unwrap_or_default();
        out.push(Raw::plain(Kind::TargetGroup, arn, tags, spec));
    }
    for lb in lbs {
        let arn = required(lb.load_balancer_arn(), "a load balancer", "ARN")?.to_owned();
        let lb_tags = tags.remove(&arn).unwrap_or_default();
        let name = required(lb.load_balancer_name(), &arn, "name")?.to_owned();
        let kind = match required(lb.r#type(), &arn, "type")? {
            elb::LoadBalancerTypeEnum::Application => LoadBalancerKind::Application,
            elb::LoadBalancerTypeEnum::Network => LoadBalancerKind::Network,
            other => return Err(unknown(&arn, "type", other.as_str())),
        };
        let scheme = match required(lb.scheme(), &arn, "scheme")? {
            elb::LoadBalancerSchemeEnum::Internal => Scheme::Internal,
            elb::LoadBalancerSchemeEnum::InternetFacing => Scheme::InternetFacing,
            other => return Err(unknown(&arn, "scheme", other.as_str())),
        };
        let subnets: Vec<String> = lb
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id().map(str::to_owned))
            .collect();
        let groups: Vec<String> = lb.security_groups().to_vec();
        let id = lb_tags.get(TAG_ID).map(|id| LogicalId::parse(id));
        if let Some(LogicalId::LoadBalancer(balancer)) = id {
            for l in listeners.remove(&arn).unwrap_or_default() {
                out.push(listener(l, &balancer, &lb_tags)?);
            }
        }
        out.push(Raw {
            kind: Kind::LoadBalancer,
            aws_id: arn,
            tags: lb_tags,
            build: Box::new(move |map| {
                let spec = Spec::LoadBalancer(LoadBalancer {
                    name: name.clone(),
                    kind,
                    scheme,
                    subnets: subnets.iter().map(|s| map(s)).collect(),
                    security_groups: groups.iter().map(|g| map(g)).collect(),
                });
                (spec, Live::Nothing)
            }),
        });
    }
    Ok(out)
}

/// A target group's or listener's protocol.
fn protocol_of(protocol: Option<&elb::ProtocolEnum>, arn: &str) -> Result<LbProtocol> {
    Ok(match required(protocol, arn, "protocol")? {
        elb::ProtocolEnum::Http => LbProtocol::Http,
        elb::ProtocolEnum::Https => LbProtocol::Https,
        elb::ProtocolEnum::Tcp => LbProtocol::Tcp,
        elb::ProtocolEnum::Tls => LbProtocol::Tls,
        elb::ProtocolEnum::Udp => LbProtocol::Udp,
        other => return Err(unknown(arn, "protocol", other.as_str())),
    })
}

/// A value strata never sets on what it makes.
fn unknown(arn: &str, field: &str, value: &str) -> AwsError {
    AwsError::new(
        format!("reading {arn}"),
        "UnexpectedAnswer",
        format!("its {field} is {value}, which strata does not make"),
        Some("a resource named and tagged as strata's was changed by hand or made by another tool; remove its strata tags or the resource".into()),
    )
}

/// The tags of load balancers and target groups, by ARN: 20 ARNs a call (the most
/// ELBv2 takes), all calls at once.
async fn elb_tags(
    aws: &Aws,
    arns: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let what = "reading load balancer tags";
    let mut reads = tokio::task::JoinSet::new();
    for chunk in arns.chunks(20) {
        let aws = aws.clone();
        let call = aws
            .elb
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()));
        reads.spawn(async move {
            aws.elb_read().await;
            call.send().await
        });
    }
    let mut tags = BTreeMap::new();
    while let Some(joined) = reads.join_next().await {
        let out = joined
            .map_err(|e| join_error(what, e))?
            .map_err(|e| error(what, e))?;
        for d in out.tag_descriptions() {
            let arn = required(d.resource_arn(), "tags of a load balancer", "ARN")?;
            let map = tag_map(d.tags().iter().map(|t| (t.key(), t.value())));
            tags.insert(arn.to_owned(), map);
        }
    }
    Ok(tags)
}

/// The listeners of `lbs`, by load balancer ARN: one listing per load balancer, all at
/// once.
async fn listeners(
    aws: &Aws,
    lbs: &[elb::LoadBalancer],
) -> Result<BTreeMap<String, Vec<elb::Listener>>> {
    let mut reads = tokio::task::JoinSet::new();
    for arn in lbs.iter().filter_map(|l| l.load_balancer_arn()) {
        let aws = aws.clone();
        let arn = arn.to_owned();
        reads.spawn(async move {
            aws.elb_read().await;
            let pages = aws.elb.describe_listeners().load_balancer_arn(&arn);
            let what = format!("reading the listeners of {arn}");
            let listeners = all(&what, pages.into_paginator().items().send()).await;
            (arn, listeners)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(joined) = reads.join_next().await {
        let (arn, listeners) = joined.map_err(|e| join_error("reading listeners", e))?;
        out.insert(arn, listeners?);
    }
    Ok(out)
}

/// A listener of load balancer `balancer`: it carries no tags of its own in strata's
/// reads, so its logical id comes from its load balancer's and its port.
fn listener(l: elb::Listener, balancer: &str, lb_tags: &BTreeMap<String, String>) -> Result<Raw> {
    let arn = required(l.listener_arn(), "a listener", "ARN")?.to_owned();
    let port = required(l.port().and_then(|p| u16::try_from(p).ok()), &arn, "port")?;
    let listener_id = LogicalId::Listener(balancer.to_owned(), port);
    let mut tags = lb_tags.clone();
    tags.insert(TAG_ID.to_owned(), listener_id.to_string());
    let protocol = protocol_of(l.protocol(), &arn)?;
    let certificate = l
        .certificates()
        .iter()
        .find_map(|c| c.certificate_arn().map(str::to_owned));
    let action = l.default_actions().first().cloned();
    let lb_id = LogicalId::LoadBalancer(balancer.to_owned());
    Ok(Raw {
        kind: Kind::Listener,
        aws_id: arn,
        tags,
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
                // A forward without a target group names none.
                Some(a) => ListenerAction::Forward(map(a.target_group_arn().unwrap_or_default())),
                None => ListenerAction::Forward(map("")),
            };
            let spec = Spec::Listener(Listener {
                load_balancer: lb_id.clone(),
                protocol,
                port,
                certificate: certificate.clone(),
                action,
            });
            (spec, Live::Nothing)
        }),
    })
}
