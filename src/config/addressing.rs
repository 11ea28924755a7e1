//! Subnet carving and deterministic node addresses, computed offline from the model.
//!
//! Subnet `i` is the `i`-th block of size `/(prefix + subnet_bits)` of the VPC CIDR:
//! private subnets take blocks `0..p`, public ones the blocks that follow. Subnet `j`
//! of a kind sits in zone `j % zones`. Node `n` of a fixed cluster lives in subnet
//! `n % k` of its kind at host offset `FIRST_NODE_HOST + n / k`, so a replacement
//! instance keeps its address and static etcd bootstrap is known before launch.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Network, SubnetKind};

/// First host offset handed to nodes: AWS reserves the first four addresses of every
/// subnet, and a few more are left for hand-placed addresses.
pub const FIRST_NODE_HOST: u32 = 10;

/// One carved subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// private or public.
    pub kind: SubnetKind,
    /// Index among subnets of the same kind (the `0` of `subnet/private/0`).
    pub index: usize,
    /// The block.
    pub block: Ipv4Net,
    /// Index into the environment's zones.
    pub zone: usize,
}

impl Subnet {
    /// How many node addresses fit (offsets `FIRST_NODE_HOST` up to the last usable,
    /// the broadcast address being reserved by AWS).
    pub fn node_capacity(&self) -> u32 {
        let size = 1u32 << (32 - u32::from(self.block.prefix_len()));
        size.saturating_sub(FIRST_NODE_HOST + 1)
    }
}

/// The subnet prefix length, or `None` when it would exceed /32.
pub fn subnet_prefix(network: &Network) -> Option<u8> {
    let prefix = u32::from(network.cidr.net().prefix_len()) + u32::from(network.subnet_bits);
    u8::try_from(prefix).ok().filter(|p| *p <= 32)
}

/// Every subnet of the network, private first. Returns an empty list when the
/// numbers do not fit (validation reports that case).
pub fn subnets(network: &Network) -> Vec<Subnet> {
    let Some(prefix) = subnet_prefix(network) else {
        return Vec::new();
    };
    let Ok(blocks) = network.cidr.net().subnets(prefix) else {
        return Vec::new();
    };
    let zones = network.zones.len().max(1);
    let kinds =
        std::iter::repeat_n(SubnetKind::Private, usize::from(network.private_subnets)).chain(
            std::iter::repeat_n(SubnetKind::Public, usize::from(network.public_subnets)),
        );
    let mut counters = [0usize; 2];
    kinds
        .zip(blocks)
        .map(|(kind, block)| {
            let counter = &mut counters[kind as usize];
            let index = *counter;
            *counter += 1;
            Subnet {
                kind,
                index,
                block,
                zone: index % zones,
            }
        })
        .collect()
}

/// The subnets of one kind, in index order.
pub fn subnets_of(network: &Network, kind: SubnetKind) -> Vec<Subnet> {
    subnets(network)
        .into_iter()
        .filter(|s| s.kind == kind)
        .collect()
}

/// Where node `index` of a fixed cluster lives: its subnet and private address.
pub fn node_placement(
    network: &Network,
    kind: SubnetKind,
    index: u16,
) -> Option<(Subnet, Ipv4Addr)> {
    let subnets = subnets_of(network, kind);
    if subnets.is_empty() {
        return None;
    }
    let index = usize::from(index);
    let subnet = subnets[index % subnets.len()];
    let offset = FIRST_NODE_HOST + u32::try_from(index / subnets.len()).ok()?;
    if offset - FIRST_NODE_HOST >= subnet.node_capacity() {
        return None;
    }
    let address = Ipv4Addr::from(u32::from(subnet.block.network()) + offset);
    Some((subnet, address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cidr, NatMode, Zones};

    fn network(cidr: &str, private: u8, public: u8, bits: u8, zones: u8) -> Network {
        Network {
            cidr: Cidr::try_from(cidr.to_owned()).unwrap(),
            zones: Zones::Count(zones),
            private_subnets: private,
            public_subnets: public,
            subnet_bits: bits,
            nat: NatMode::None,
            security_groups: Default::default(),
            load_balancers: Default::default(),
        }
    }

    #[test]
    fn public_blocks_follow_private_ones_and_spread_over_zones() {
        let n = network("10.66.0.0/16", 3, 3, 4, 3);
        let got: Vec<String> = subnets(&n)
            .iter()
            .map(|s| {
                format!(
                    "subnet/{}/{} {} z{}",
                    s.kind.as_str(),
                    s.index,
                    s.block,
                    s.zone
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "subnet/private/0 10.66.0.0/20 z0",
                "subnet/private/1 10.66.16.0/20 z1",
                "subnet/private/2 10.66.32.0/20 z2",
                "subnet/public/0 10.66.48.0/20 z0",
                "subnet/public/1 10.66.64.0/20 z1",
                "subnet/public/2 10.66.80.0/20 z2",
            ]
        );
    }

    #[test]
    fn nodes_round_robin_over_subnets_at_fixed_offsets() {
        let n = network("10.66.0.0/16", 3, 3, 4, 3);
        let ips: Vec<String> = (0..4)
            .map(|i| {
                node_placement(&n, SubnetKind::Private, i)
                    .unwrap()
                    .1
                    .to_string()
            })
            .collect();
        assert_eq!(
            ips,
            ["10.66.0.10", "10.66.16.10", "10.66.32.10", "10.66.0.11"]
        );
    }

    #[test]
    fn a_full_subnet_has_no_room_for_another_node() {
        let n = network("10.0.0.0/24", 1, 0, 4, 1);
        // A /28 has 16 addresses: offsets 10..=14 are usable for nodes.
        assert!(node_placement(&n, SubnetKind::Private, 4).is_some());
        assert!(node_placement(&n, SubnetKind::Private, 5).is_none());
    }
}
