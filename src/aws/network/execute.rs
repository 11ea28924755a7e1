//! The executor's EC2 calls for the network layer: the VPC, subnets, the internet
//! gateway, elastic IPs, NAT gateways, route tables and security groups (their rules
//! are in `rules`).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types as ec2;

use super::Result;
use crate::aws::executor::{Executor, Seen, client_token, created, deleting, sent};
use crate::aws::{AwsError, error};
use crate::config::Layer;
use crate::plan::LogicalId;
use crate::plan::spec::{NatGateway, RouteTable, SecurityGroup, Subnet, Vpc};
use crate::plan::{Live, Observed, Route};

impl Executor<'_> {
    fn network_tags(&self, resource: ec2::ResourceType, id: &LogicalId) -> ec2::TagSpecification {
        self.tag_spec(resource, id, Layer::Network)
    }

    /// Creates the VPC with DNS support and hostnames on.
    pub(crate) async fn create_vpc(&mut self, id: &LogicalId, vpc: &Vpc) -> Result<String> {
        let what = format!("creating VPC {id}");
        let out = self
            .aws
            .ec2
            .create_vpc()
            .cidr_block(vpc.cidr.to_string())
            .tag_specifications(self.network_tags(ec2::ResourceType::Vpc, id))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let vpc_id = created(&what, out.vpc().and_then(|v| v.vpc_id()))?;
        self.enable_dns(&what, &vpc_id).await?;
        Ok(vpc_id)
    }

    /// Turns on DNS resolution and hostnames, which instances need: both are off by
    /// default on a new VPC and each takes its own call.
    pub(crate) async fn enable_dns(&mut self, what: &str, vpc_id: &str) -> Result<()> {
        for support in [true, false] {
            let on = ec2::AttributeBooleanValue::builder().value(true).build();
            let call = self.aws.ec2.modify_vpc_attribute().vpc_id(vpc_id);
            let call = if support {
                call.enable_dns_support(on)
            } else {
                call.enable_dns_hostnames(on)
            };
            sent(&format!("{what}: enabling DNS"), call.send()).await?;
        }
        Ok(())
    }

    pub(crate) async fn create_subnet(
        &mut self,
        id: &LogicalId,
        subnet: &Subnet,
    ) -> Result<String> {
        let what = format!("creating subnet {id}");
        let out = self
            .aws
            .ec2
            .create_subnet()
            .vpc_id(self.id(&LogicalId::Vpc))
            .cidr_block(subnet.cidr.to_string())
            .availability_zone(subnet.zone.as_str())
            .tag_specifications(self.network_tags(ec2::ResourceType::Subnet, id))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let subnet_id = created(&what, out.subnet().and_then(|s| s.subnet_id()))?;
        if subnet.public {
            self.set_public(&subnet_id, true, &what).await?;
        }
        Ok(subnet_id)
    }

    /// Only public addressing changes in place; a new CIDR or zone is a replacement.
    pub(crate) async fn update_subnet(
        &mut self,
        observed: &Observed,
        subnet: &Subnet,
        was: &Subnet,
    ) -> Result<()> {
        if subnet.public == was.public {
            return Ok(());
        }
        let what = format!("updating subnet {} ({})", observed.id, observed.aws_id);
        self.set_public(&observed.aws_id, subnet.public, &what)
            .await
    }

    pub(crate) async fn delete_subnet(&mut self, o: &Observed) -> Result<()> {
        let call = self.aws.ec2.delete_subnet().subnet_id(&o.aws_id);
        sent(&deleting(o), call.send()).await.map(drop)
    }

    pub(crate) async fn delete_vpc(&mut self, o: &Observed) -> Result<()> {
        let call = self.aws.ec2.delete_vpc().vpc_id(&o.aws_id);
        sent(&deleting(o), call.send()).await.map(drop)
    }

    /// Creates the internet gateway and attaches it to the VPC.
    pub(crate) async fn create_internet_gateway(&mut self, id: &LogicalId) -> Result<String> {
        let what = format!("creating internet gateway {id}");
        let out = self
            .aws
            .ec2
            .create_internet_gateway()
            .tag_specifications(self.network_tags(ec2::ResourceType::InternetGateway, id))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let igw = created(
            &what,
            out.internet_gateway().and_then(|g| g.internet_gateway_id()),
        )?;
        self.attach_internet_gateway(&igw, &what).await?;
        Ok(igw)
    }

    /// Moves the internet gateway to the VPC as it is now (a replaced VPC has a new id).
    pub(crate) async fn reattach_internet_gateway(&mut self, observed: &Observed) -> Result<()> {
        let vpc = self.id(&LogicalId::Vpc);
        let attached = match &observed.live {
            Live::InternetGateway { attached_vpc } => attached_vpc.as_deref(),
            _ => None,
        };
        if attached == Some(vpc.as_str()) {
            return Ok(());
        }
        let what = format!(
            "updating internet gateway {} ({})",
            observed.id, observed.aws_id
        );
        if let Some(old) = attached {
            self.detach_internet_gateway(&observed.aws_id, old, &what)
                .await?;
        }
        self.attach_internet_gateway(&observed.aws_id, &what).await
    }

    pub(crate) async fn delete_internet_gateway(&mut self, o: &Observed) -> Result<()> {
        let what = deleting(o);
        if let Live::InternetGateway {
            attached_vpc: Some(vpc),
        } = &o.live
        {
            self.detach_internet_gateway(&o.aws_id, vpc, &what).await?;
        }
        let call = self
            .aws
            .ec2
            .delete_internet_gateway()
            .internet_gateway_id(&o.aws_id);
        sent(&what, call.send()).await.map(drop)
    }

    async fn attach_internet_gateway(&self, igw: &str, what: &str) -> Result<()> {
        self.aws
            .ec2
            .attach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(self.id(&LogicalId::Vpc))
            .send()
            .await
            .map(drop)
            .map_err(|e| error(format!("{what}: attaching it to the VPC"), e))
    }

    async fn detach_internet_gateway(&self, igw: &str, vpc: &str, what: &str) -> Result<()> {
        self.aws
            .ec2
            .detach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc)
            .send()
            .await
            .map(drop)
            .map_err(|e| error(format!("{what}: detaching it from {vpc}"), e))
    }

    /// Allocates an elastic IP for a NAT gateway.
    pub(crate) async fn allocate_address(&mut self, id: &LogicalId) -> Result<String> {
        let what = format!("creating elastic IP {id}");
        let out = self
            .aws
            .ec2
            .allocate_address()
            .domain(ec2::DomainType::Vpc)
            .tag_specifications(self.network_tags(ec2::ResourceType::ElasticIp, id))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        created(&what, out.allocation_id())
    }

    pub(crate) async fn release_address(&mut self, o: &Observed) -> Result<()> {
        let call = self.aws.ec2.release_address().allocation_id(&o.aws_id);
        sent(&deleting(o), call.send()).await.map(drop)
    }

    /// Creates a NAT gateway and waits until it is available (routes need it so).
    pub(crate) async fn create_nat_gateway(
        &mut self,
        id: &LogicalId,
        nat: &NatGateway,
    ) -> Result<String> {
        let what = format!("creating NAT gateway {id}");
        let out = self
            .aws
            .ec2
            .create_nat_gateway()
            .subnet_id(self.id(&nat.subnet))
            .allocation_id(self.id(&nat.eip))
            .client_token(client_token(self.env, &id.to_string()))
            .tag_specifications(self.network_tags(ec2::ResourceType::Natgateway, id))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let nat_id = created(&what, out.nat_gateway().and_then(|n| n.nat_gateway_id()))?;
        self.wait_nat(id, &nat_id, ec2::NatGatewayState::Available)
            .await?;
        Ok(nat_id)
    }

    /// Deletes a NAT gateway and waits until it is gone (its address and subnet are
    /// free only then).
    pub(crate) async fn delete_nat_gateway(&mut self, o: &Observed) -> Result<()> {
        let call = self.aws.ec2.delete_nat_gateway().nat_gateway_id(&o.aws_id);
        sent(&deleting(o), call.send()).await?;
        self.wait_nat(&o.id, &o.aws_id, ec2::NatGatewayState::Deleted)
            .await
    }

    async fn wait_nat(
        &mut self,
        logical: &LogicalId,
        id: &str,
        wanted: ec2::NatGatewayState,
    ) -> Result<()> {
        let aws = self.aws;
        let subject = format!("NAT gateway {logical} ({id})");
        let look = async || {
            let out = aws
                .ec2
                .describe_nat_gateways()
                .nat_gateway_ids(id)
                .send()
                .await
                .map_err(|e| error(format!("waiting for {subject}"), e))?;
            let nat = out.nat_gateways().first();
            match nat.and_then(|n| n.state()) {
                Some(state) if *state == wanted => Ok(Seen::Ready(())),
                None if wanted == ec2::NatGatewayState::Deleted => Ok(Seen::Ready(())),
                Some(ec2::NatGatewayState::Failed) => Err(AwsError::new(
                    format!("creating {subject}"),
                    "NatGatewayFailed",
                    nat.and_then(|n| n.failure_message())
                        .unwrap_or("no reason given"),
                    Some(
                        "fix the cause, then run apply again: the failed gateway is ignored".into(),
                    ),
                )),
                Some(state) => Ok(Seen::Pending(state.as_str().to_owned())),
                None => Ok(Seen::Pending("not listed".to_owned())),
            }
        };
        let bound = self.timeout;
        self.wait_until(&subject, wanted.as_str(), bound, look)
            .await
    }

    /// Creates a route table with its routes and subnet associations.
    pub(crate) async fn create_route_table(
        &mut self,
        id: &LogicalId,
        table: &RouteTable,
    ) -> Result<String> {
        let what = format!("creating route table {id}");
        let out = self
            .aws
            .ec2
            .create_route_table()
            .vpc_id(self.id(&LogicalId::Vpc))
            .tag_specifications(self.network_tags(ec2::ResourceType::RouteTable, id))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        let table_id = created(&what, out.route_table().and_then(|t| t.route_table_id()))?;
        // Known from here on, so a failure below leaves it findable in the report.
        self.ids.insert(id.clone(), table_id.clone());
        for route in &table.routes {
            self.put_route(&table_id, route, false, &what).await?;
        }
        for subnet in &table.subnets {
            self.associate(&table_id, subnet, &what).await?;
        }
        Ok(table_id)
    }

    /// Converges a route table's routes and associations: removes what is not wanted,
    /// moves routes whose target was replaced in this run, adds what is missing.
    pub(crate) async fn update_route_table(
        &mut self,
        observed: &Observed,
        table: &RouteTable,
        was: &RouteTable,
    ) -> Result<()> {
        let what = format!("updating route table {} ({})", observed.id, observed.aws_id);
        let aws_id = observed.aws_id.as_str();
        let wanted: BTreeMap<&str, &Route> = table
            .routes
            .iter()
            .map(|r| (r.destination.as_str(), r))
            .collect();
        for old in was
            .routes
            .iter()
            .filter(|o| !wanted.contains_key(o.destination.as_str()))
        {
            self.aws
                .ec2
                .delete_route()
                .route_table_id(aws_id)
                .destination_cidr_block(&old.destination)
                .send()
                .await
                .map_err(|e| error(format!("{what}: removing route {}", old.destination), e))?;
        }
        for route in &table.routes {
            // Compare in AWS terms: a target replaced in this run (a NAT gateway in a
            // replaced subnet) has a new id the route must move to.
            let current = was
                .routes
                .iter()
                .find(|o| o.destination == route.destination);
            let up_to_date = current.is_some_and(|c| {
                c.target == route.target
                    && self.ids.contains_key(&c.target)
                    && self.observed_ids.get(&c.target) == self.ids.get(&c.target)
            });
            if !up_to_date {
                self.put_route(aws_id, route, current.is_some(), &what)
                    .await?;
            }
        }
        let associations = match &observed.live {
            Live::RouteTable { associations } => associations.clone(),
            _ => BTreeMap::new(),
        };
        let wanted_subnets: BTreeSet<String> = table.subnets.iter().map(|s| self.id(s)).collect();
        for (subnet, association) in &associations {
            if !wanted_subnets.contains(subnet) {
                self.disassociate(association, &format!("{what}: disassociating {subnet}"))
                    .await?;
            }
        }
        for subnet in &table.subnets {
            if !associations.contains_key(&self.id(subnet)) {
                self.associate(aws_id, subnet, &what).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn delete_route_table(&mut self, o: &Observed) -> Result<()> {
        let what = deleting(o);
        if let Live::RouteTable { associations } = &o.live {
            for (subnet, association) in associations {
                self.disassociate(association, &format!("{what}: disassociating {subnet}"))
                    .await?;
            }
        }
        let call = self.aws.ec2.delete_route_table().route_table_id(&o.aws_id);
        sent(&what, call.send()).await.map(drop)
    }

    /// Creates a security group without rules (they may name groups not made yet).
    pub(crate) async fn create_security_group(
        &mut self,
        id: &LogicalId,
        group: &SecurityGroup,
    ) -> Result<String> {
        let what = format!("creating security group {id}");
        let out = self
            .aws
            .ec2
            .create_security_group()
            .group_name(&group.name)
            .description(&group.description)
            .vpc_id(self.id(&LogicalId::Vpc))
            .tag_specifications(self.network_tags(ec2::ResourceType::SecurityGroup, id))
            .send()
            .await
            .map_err(|e| error(&what, e))?;
        created(&what, out.group_id())
    }

    pub(crate) async fn delete_security_group(&mut self, o: &Observed) -> Result<()> {
        let call = self.aws.ec2.delete_security_group().group_id(&o.aws_id);
        sent(&deleting(o), call.send()).await.map(drop)
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

    /// Creates a route, or with `replace` points an existing one at its target now.
    async fn put_route(&self, table: &str, route: &Route, replace: bool, what: &str) -> Result<()> {
        let target = self.id(&route.target);
        let nat = target.starts_with("nat-");
        let what = format!("{what}: route {} via {}", route.destination, route.target);
        let ec2c = &self.aws.ec2;
        if replace {
            let call = ec2c
                .replace_route()
                .route_table_id(table)
                .destination_cidr_block(&route.destination);
            match nat {
                true => call.nat_gateway_id(target).send().await.map(drop),
                false => call.gateway_id(target).send().await.map(drop),
            }
            .map_err(|e| error(&what, e))
        } else {
            let call = ec2c
                .create_route()
                .route_table_id(table)
                .destination_cidr_block(&route.destination);
            match nat {
                true => call.nat_gateway_id(target).send().await.map(drop),
                false => call.gateway_id(target).send().await.map(drop),
            }
            .map_err(|e| error(&what, e))
        }
    }

    async fn associate(&self, table: &str, subnet: &LogicalId, what: &str) -> Result<()> {
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

    async fn disassociate(&self, association: &str, what: &str) -> Result<()> {
        self.aws
            .ec2
            .disassociate_route_table()
            .association_id(association)
            .send()
            .await
            .map(drop)
            .map_err(|e| error(what, e))
    }
}
