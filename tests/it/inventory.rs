//! What an account holds, read straight from the emulator: every resource strata could
//! have made, by its `strata:id` tag, with what makes it work (a VPC's DNS settings, a
//! route table's routes and associations, a target group's registered targets, …),
//! and any resource that has no id. Faults, crashes and concurrent applies are judged
//! by it: the same inventory as an undisturbed run, no id twice, nothing untagged.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, Tag, VpcAttributeName};
use strata::aws::Aws;
use strata::plan::TAG_ID;

/// Resources by kind and `strata:id`, each copy with its details.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// `("subnet", "subnet/private/0") → ["10.67.0.0/20 eu-west-1a public=false"]`.
    pub tagged: BTreeMap<(&'static str, String), Vec<String>>,
    /// AWS ids of resources without a `strata:id`.
    pub untagged: Vec<String>,
}

impl Inventory {
    /// Ids held more than once.
    pub fn duplicates(&self) -> Vec<String> {
        self.tagged
            .iter()
            .filter(|(_, copies)| copies.len() > 1)
            .map(|((kind, id), copies)| format!("{kind} {id} ×{}", copies.len()))
            .collect()
    }

    /// Asserts no id is held twice and nothing is untagged.
    pub fn assert_clean(&self, context: &str) {
        assert_eq!(
            self.duplicates(),
            Vec::<String>::new(),
            "{context}: duplicates"
        );
        assert_eq!(self.untagged, Vec::<String>::new(), "{context}: untagged");
    }

    fn add(&mut self, kind: &'static str, aws_id: Option<&str>, tags: &[Tag], detail: String) {
        let id = tags
            .iter()
            .find(|t| t.key() == Some(TAG_ID))
            .and_then(|t| t.value());
        match id {
            Some(id) => self
                .tagged
                .entry((kind, id.to_owned()))
                .or_default()
                .push(detail),
            None => self
                .untagged
                .push(format!("{kind} {}", aws_id.unwrap_or("(no id)"))),
        }
    }
}

/// Everything in the account behind `aws` (its region), outside the default VPC.
pub async fn inventory(aws: &Aws) -> Inventory {
    let mut inv = Inventory::default();
    let ec2 = &aws.ec2;
    let vpcs = ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    let default_vpc: Vec<&str> = vpcs
        .vpcs()
        .iter()
        .filter(|v| v.is_default() == Some(true))
        .filter_map(|v| v.vpc_id())
        .collect();
    let outside_default = |vpc: Option<&str>| vpc.is_none_or(|v| !default_vpc.contains(&v));
    for vpc in vpcs.vpcs().iter().filter(|v| v.is_default() != Some(true)) {
        let id = vpc.vpc_id().expect("a VPC id");
        let mut dns = Vec::new();
        for attribute in [
            VpcAttributeName::EnableDnsSupport,
            VpcAttributeName::EnableDnsHostnames,
        ] {
            let out = ec2
                .describe_vpc_attribute()
                .vpc_id(id)
                .attribute(attribute.clone())
                .send()
                .await
                .expect("DescribeVpcAttribute");
            let on = out
                .enable_dns_support()
                .or(out.enable_dns_hostnames())
                .and_then(|v| v.value());
            dns.push(format!("{attribute}={on:?}"));
        }
        let detail = format!(
            "{} {} commit={}",
            vpc.cidr_block().unwrap_or("?"),
            dns.join(" "),
            has_commit(vpc.tags())
        );
        inv.add("vpc", vpc.vpc_id(), vpc.tags(), detail);
    }
    for subnet in ec2
        .describe_subnets()
        .send()
        .await
        .expect("DescribeSubnets")
        .subnets()
    {
        if outside_default(subnet.vpc_id()) {
            let detail = format!(
                "{} {} public={:?}",
                subnet.cidr_block().unwrap_or("?"),
                subnet.availability_zone().unwrap_or("?"),
                subnet.map_public_ip_on_launch()
            );
            inv.add("subnet", subnet.subnet_id(), subnet.tags(), detail);
        }
    }
    let gateways = ec2
        .describe_internet_gateways()
        .send()
        .await
        .expect("DescribeInternetGateways");
    for igw in gateways.internet_gateways() {
        let attached_to_default = igw
            .attachments()
            .iter()
            .any(|a| !outside_default(a.vpc_id()));
        if !attached_to_default {
            let detail = format!("attachments={}", igw.attachments().len());
            inv.add("igw", igw.internet_gateway_id(), igw.tags(), detail);
        }
    }
    for address in ec2
        .describe_addresses()
        .send()
        .await
        .expect("DescribeAddresses")
        .addresses()
    {
        let detail = format!("associated={}", address.association_id().is_some());
        inv.add("eip", address.allocation_id(), address.tags(), detail);
    }
    let nats = ec2
        .describe_nat_gateways()
        .filter(
            Filter::builder()
                .name("state")
                .values("pending")
                .values("available")
                .build(),
        )
        .send()
        .await
        .expect("DescribeNatGateways");
    for nat in nats.nat_gateways() {
        let detail = format!("addresses={}", nat.nat_gateway_addresses().len());
        inv.add("nat", nat.nat_gateway_id(), nat.tags(), detail);
    }
    for table in ec2
        .describe_route_tables()
        .send()
        .await
        .expect("DescribeRouteTables")
        .route_tables()
    {
        let main = table.associations().iter().any(|a| a.main() == Some(true));
        if outside_default(table.vpc_id()) && !main {
            let mut routes: Vec<String> = table
                .routes()
                .iter()
                .map(|r| {
                    let via = match (r.gateway_id(), r.nat_gateway_id()) {
                        (Some("local"), _) => "local",
                        (Some(_), _) => "igw",
                        (_, Some(_)) => "nat",
                        _ => "?",
                    };
                    format!("{}→{via}", r.destination_cidr_block().unwrap_or("?"))
                })
                .collect();
            routes.sort();
            let detail = format!(
                "routes={} associations={}",
                routes.join(","),
                table.associations().len()
            );
            inv.add("rtb", table.route_table_id(), table.tags(), detail);
        }
    }
    for group in ec2
        .describe_security_groups()
        .send()
        .await
        .expect("DescribeSecurityGroups")
        .security_groups()
    {
        if outside_default(group.vpc_id()) && group.group_name() != Some("default") {
            let detail = format!(
                "ingress={} egress={}",
                group.ip_permissions().len(),
                group.ip_permissions_egress().len()
            );
            inv.add("sg", group.group_id(), group.tags(), detail);
        }
    }
    let instances = not_terminated(ec2).await;
    for instance in instances.reservations().iter().flat_map(|r| r.instances()) {
        // An auto-scaling group's instances carry the group's tags, not an id.
        let in_group = instance
            .tags()
            .iter()
            .any(|t| t.key() == Some("aws:autoscaling:groupName"));
        if !in_group {
            let detail = format!(
                "{} {:?} groups={}",
                instance.private_ip_address().unwrap_or("?"),
                instance.state().and_then(|s| s.name()),
                instance.security_groups().len()
            );
            inv.add("instance", instance.instance_id(), instance.tags(), detail);
        }
    }
    for volume in ec2
        .describe_volumes()
        .send()
        .await
        .expect("DescribeVolumes")
        .volumes()
    {
        // Root volumes come and go with their instances.
        let root = volume.attachments().iter().any(|a| {
            a.device()
                .is_some_and(|d| d == "/dev/xvda" || d == "/dev/sda1")
        });
        if !root {
            let detail = format!(
                "{:?} GiB attached={}",
                volume.size(),
                volume.attachments().len()
            );
            inv.add("volume", volume.volume_id(), volume.tags(), detail);
        }
    }
    let templates = ec2
        .describe_launch_templates()
        .send()
        .await
        .expect("DescribeLaunchTemplates");
    for template in templates.launch_templates() {
        let detail = format!(
            "default={:?} latest={:?} commit={}",
            template.default_version_number(),
            template.latest_version_number(),
            has_commit(template.tags())
        );
        inv.add(
            "template",
            template.launch_template_id(),
            template.tags(),
            detail,
        );
    }
    balancers(aws, &mut inv).await;
    let groups = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .expect("DescribeAutoScalingGroups");
    for group in groups.auto_scaling_groups() {
        let tags: Vec<Tag> = group
            .tags()
            .iter()
            .map(|t| {
                Tag::builder()
                    .set_key(t.key.clone())
                    .set_value(t.value.clone())
                    .build()
            })
            .collect();
        let detail = format!(
            "{:?}..{:?} desired={:?} instances={} target_groups={}",
            group.min_size(),
            group.max_size(),
            group.desired_capacity(),
            group.instances().len(),
            group.target_group_arns().len()
        );
        inv.add("group", group.auto_scaling_group_name(), &tags, detail);
    }
    inv
}

/// Whether the root resource records the commit applied (an apply's last write).
fn has_commit(tags: &[Tag]) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(strata::plan::TAG_COMMIT))
}

/// Load balancers and target groups, with their tags (ELBv2 keeps them apart).
async fn balancers(aws: &Aws, inv: &mut Inventory) {
    let elb = &aws.elb;
    let lbs = elb
        .describe_load_balancers()
        .send()
        .await
        .expect("DescribeLoadBalancers");
    let tgs = elb
        .describe_target_groups()
        .send()
        .await
        .expect("DescribeTargetGroups");
    let arns: Vec<(&'static str, String)> = lbs
        .load_balancers()
        .iter()
        .filter_map(|lb| lb.load_balancer_arn().map(|a| ("lb", a.to_owned())))
        .chain(
            tgs.target_groups()
                .iter()
                .filter_map(|tg| tg.target_group_arn().map(|a| ("tg", a.to_owned()))),
        )
        .collect();
    for (kind, arn) in arns {
        let described = elb
            .describe_tags()
            .resource_arns(&arn)
            .send()
            .await
            .expect("DescribeTags");
        let tags: Vec<Tag> = described
            .tag_descriptions()
            .iter()
            .flat_map(|d| d.tags())
            .map(|t| {
                Tag::builder()
                    .set_key(t.key.clone())
                    .set_value(t.value.clone())
                    .build()
            })
            .collect();
        let detail = if kind == "lb" {
            let listeners = elb
                .describe_listeners()
                .load_balancer_arn(&arn)
                .send()
                .await
                .expect("DescribeListeners");
            format!("listeners={}", listeners.listeners().len())
        } else {
            let health = elb
                .describe_target_health()
                .target_group_arn(&arn)
                .send()
                .await
                .expect("DescribeTargetHealth");
            format!("targets={}", health.target_health_descriptions().len())
        };
        inv.add(kind, Some(&arn), &tags, detail);
    }
}

/// The instances (not terminated, in a group or not) whose subnet no longer exists, as
/// The account's instances that are not gone (pending, running, stopping or stopped).
async fn not_terminated(
    ec2: &aws_sdk_ec2::Client,
) -> aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput {
    ec2.describe_instances()
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopping")
                .values("stopped")
                .build(),
        )
        .send()
        .await
        .expect("DescribeInstances")
}

/// `instance-id in subnet-id`: what a network change that moves machines must not
/// leave behind.
pub async fn instances_in_missing_subnets(aws: &Aws) -> Vec<String> {
    let ec2 = &aws.ec2;
    let subnets = ec2
        .describe_subnets()
        .send()
        .await
        .expect("DescribeSubnets");
    let existing: Vec<&str> = subnets
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_id())
        .collect();
    let instances = not_terminated(ec2).await;
    instances
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| Some((i.instance_id()?, i.subnet_id()?)))
        .filter(|(_, subnet)| !existing.contains(subnet))
        .map(|(id, subnet)| format!("{id} in {subnet}"))
        .collect()
}
