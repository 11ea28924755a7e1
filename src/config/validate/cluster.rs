//! The cluster's checks. Its shape (how many machines, and how) and its image source
//! come out of the same checks that report what is wrong with them.

use std::collections::BTreeSet;
use std::num::NonZeroU16;

use super::{Checker, list};
use crate::config::addressing;
use crate::config::model::*;
use crate::config::shape::{ClusterShape, ImageSource, Size};
use crate::config::types::*;

/// Checks the cluster; its shape when its size and image are right.
pub(super) fn check_cluster(
    c: &mut Checker,
    cluster: &Cluster,
    network_ok: bool,
) -> Option<ClusterShape> {
    let size = size(c, cluster, network_ok);
    let image = image(c, cluster);
    check_placement(c, cluster, network_ok);
    check_volumes(c, cluster);
    check_rollout_and_profile(c, cluster);
    Some(ClusterShape {
        size: size?,
        image: image?,
    })
}

/// A fixed cluster's `size`, or a group's `min`, `max` and `desired` (which defaults
/// to `min`), each only where its mode takes it.
fn size(c: &mut Checker, cluster: &Cluster, network_ok: bool) -> Option<Size> {
    match cluster.mode {
        ClusterMode::Fixed => {
            for (field, value) in [
                ("min", cluster.min),
                ("max", cluster.max),
                ("desired", cluster.desired),
            ] {
                if value.is_some() {
                    c.report(
                        path!["cluster", field],
                        format!("`{field}` applies to autoscaling clusters"),
                        "a fixed cluster uses `size`; remove it or set `mode: autoscaling`",
                    );
                }
            }
            let Some(given) = cluster.size else {
                c.report(
                    path!["cluster", "mode"],
                    "a fixed cluster needs `size`",
                    "add e.g. `size: 3`",
                );
                return None;
            };
            let Some(size) = NonZeroU16::new(given) else {
                c.report(
                    path!["cluster", "size"],
                    "size must be at least 1",
                    "set size to the number of nodes",
                );
                return None;
            };
            if network_ok {
                check_fixed_capacity(c, cluster, size.get());
            }
            Some(Size::Fixed(size))
        }
        ClusterMode::Autoscaling => {
            if cluster.size.is_some() {
                c.report(
                    path!["cluster", "size"],
                    "`size` applies to fixed clusters",
                    "an autoscaling cluster uses min, max and desired",
                );
            }
            let (min, max) = match (cluster.min, cluster.max) {
                (Some(min), Some(max)) => (min, max),
                (None, _) => {
                    c.report(
                        path!["cluster", "mode"],
                        "an autoscaling cluster needs `min` and `max`",
                        "add e.g. `min: 1` and `max: 3`",
                    );
                    return None;
                }
                (_, None) => {
                    c.report(
                        path!["cluster", "mode"],
                        "an autoscaling cluster needs `max`",
                        "add e.g. `max: 3`",
                    );
                    return None;
                }
            };
            let desired = cluster.desired.unwrap_or(min);
            if max == 0 {
                c.report(
                    path!["cluster", "max"],
                    "max must be at least 1",
                    "raise max",
                );
            } else if min > max {
                c.report(
                    path!["cluster", "min"],
                    format!("min {min} is larger than max {max}"),
                    "keep min ≤ desired ≤ max",
                );
            } else if !(min..=max).contains(&desired) {
                c.report(
                    path!["cluster", "desired"],
                    format!("desired {desired} is outside min {min} .. max {max}"),
                    "keep min ≤ desired ≤ max",
                );
            } else {
                return Some(Size::Autoscaling { min, max, desired });
            }
            None
        }
    }
}

/// Exactly one of `os` (a known channel, an http(s) feed, account ids as owners) and
/// `ami`.
fn image(c: &mut Checker, cluster: &Cluster) -> Option<ImageSource> {
    match (&cluster.os, &cluster.ami) {
        (Some(_), Some(_)) => {
            c.report(
                path!["cluster", "ami"],
                "give either `os` or `ami`, not both",
                "`os` looks the image up at run time; `ami` pins one",
            );
            None
        }
        (None, None) => {
            c.report_key(
                path!["cluster"],
                "the cluster needs an image: `os` or `ami`",
                "add e.g. `os: { name: flatcar, channel: stable }`",
            );
            None
        }
        (Some(os), None) => {
            let before = c.problems.len();
            if !os.name.channels().contains(&os.channel.as_str()) {
                c.report(
                    path!["cluster", "os", "channel"],
                    format!("unknown channel `{}`", os.channel),
                    format!("use one of {}", os.name.channels().join(", ")),
                );
            }
            if let Some(url) = &os.feed_url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                c.report(
                    path!["cluster", "os", "feed_url"],
                    "feed_url must be an http(s) URL",
                    "write e.g. https://mirror.example.com/flatcar/",
                );
            }
            for (i, o) in os.owners.iter().flatten().enumerate() {
                if o.len() != 12 || !o.chars().all(|ch| ch.is_ascii_digit()) {
                    c.report(
                        path!["cluster", "os", "owners", i],
                        format!("`{o}` is not an AWS account id"),
                        "write the 12-digit account id that owns the images",
                    );
                }
            }
            (c.problems.len() == before).then(|| ImageSource::Feed(os.clone()))
        }
        (None, Some(ami)) => Some(ImageSource::Pinned(ami.clone())),
    }
}

/// The subnets the instances go in exist, and so do the groups and load balancers
/// they name.
fn check_placement(c: &mut Checker, cluster: &Cluster, network_ok: bool) {
    let n = &c.spec.network;
    let count = match cluster.subnets {
        SubnetKind::Private => n.private_subnets,
        SubnetKind::Public => n.public_subnets,
    };
    if network_ok && count == 0 {
        c.report(
            path!["cluster", "subnets"],
            format!("the network has no {} subnets", cluster.subnets.as_str()),
            format!(
                "set network.{}_subnets, or use the other kind",
                cluster.subnets.as_str()
            ),
        );
    }
    check_references(
        c,
        &cluster.security_groups,
        "security_groups",
        n.security_groups.keys().collect(),
        "network.security_groups",
    );
    check_references(
        c,
        &cluster.load_balancers,
        "load_balancers",
        n.load_balancers.keys().collect(),
        "network.load_balancers",
    );
}

/// Volume sizes EBS takes, a data volume's device and a label its filesystem takes.
fn check_volumes(c: &mut Checker, cluster: &Cluster) {
    if let Some(volume) = &cluster.volume
        && !(1..=16384).contains(&volume.size_gb)
    {
        c.report(
            path!["cluster", "volume", "size_gb"],
            format!("{} GiB is out of range", volume.size_gb),
            "EBS volumes are 1 to 16384 GiB",
        );
    }
    let Some(data) = &cluster.data_volume else {
        return;
    };
    if !(1..=16384).contains(&data.size_gb) {
        c.report(
            path!["cluster", "data_volume", "size_gb"],
            format!("{} GiB is out of range", data.size_gb),
            "EBS volumes are 1 to 16384 GiB",
        );
    }
    if !data.device.starts_with("/dev/") {
        c.report(
            path!["cluster", "data_volume", "device"],
            format!("`{}` is not a device path", data.device),
            "write e.g. /dev/xvdf",
        );
    }
    let max = match data.format {
        FsFormat::Xfs => 12,
        FsFormat::Ext4 => 16,
    };
    if data.label.is_empty()
        || data.label.len() > max
        || !data
            .label
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    {
        c.report(
            path!["cluster", "data_volume", "label"],
            format!("`{}` is not a usable filesystem label", data.label),
            format!("use 1 to {max} letters, digits, - or _"),
        );
    }
}

fn check_rollout_and_profile(c: &mut Checker, cluster: &Cluster) {
    if cluster.rollout.min_healthy_percent > 100 {
        c.report(
            path!["cluster", "rollout", "min_healthy_percent"],
            "a percentage is at most 100",
            "use 0 to 100",
        );
    }
    if let Some(profile) = &cluster.instance_profile
        && (profile.is_empty()
            || profile.len() > 128
            || !profile
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "+=,.@_-".contains(ch)))
    {
        c.report(
            path!["cluster", "instance_profile"],
            format!("`{profile}` is not an instance profile name"),
            "use the profile's name (not its ARN): letters, digits and +=,.@_-",
        );
    }
}

fn check_fixed_capacity(c: &mut Checker, cluster: &Cluster, size: u16) {
    let n = &c.spec.network;
    let subnets = addressing::subnets_of(n, cluster.subnets);
    if subnets.is_empty() {
        return;
    }
    let capacity: u32 = subnets.iter().map(|s| s.node_capacity()).sum();
    if addressing::node_placement(n, cluster.subnets, size - 1).is_none() {
        c.report(
            path!["cluster", "size"],
            format!(
                "{size} nodes do not fit in the {} {} subnets (room for {capacity})",
                subnets.len(),
                cluster.subnets.as_str()
            ),
            "lower subnet_bits for larger subnets, add subnets, or shrink the cluster",
        );
    }
}

fn check_references(
    c: &mut Checker,
    refs: &[LocalName],
    field: &str,
    defined: BTreeSet<&LocalName>,
    section: &str,
) {
    let mut seen = BTreeSet::new();
    for (i, r) in refs.iter().enumerate() {
        if !defined.contains(r) {
            let what = if field == "security_groups" {
                "security group"
            } else {
                "load balancer"
            };
            c.report(
                path!["cluster", field, i],
                format!("unknown {what} `{r}`"),
                format!("define it under {section} ({})", list(defined.iter())),
            );
        } else if !seen.insert(r) {
            c.report(
                path!["cluster", field, i],
                format!("`{r}` is listed twice"),
                "list it once",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::num::NonZeroU16;

    use crate::config::{ClusterShape, ImageSource, Size};

    /// A cluster section's lines (after `cluster:`) → its shape, or the first problem.
    fn shape(lines: &str) -> Result<ClusterShape, String> {
        let text = format!(
            "region: eu-west-1\nnetwork: {{ cidr: 10.0.0.0/16, zones: 2, private_subnets: 2 }}\n\
             cluster:\n  instance_type: t3.small\n{lines}"
        );
        crate::config::load("environments/shape.yaml", &text, &BTreeSet::new())
            .map(|e| e.cluster.expect("a valid cluster has a shape"))
            .map_err(|problems| problems[0].message.clone())
    }

    #[test]
    fn the_shape_is_what_the_checks_proved() {
        let feed = "  os: { name: flatcar, channel: stable }\n";
        let fixed = |n| Ok(Size::Fixed(NonZeroU16::new(n).unwrap()));
        let group = |min, max, desired| Ok(Size::Autoscaling { min, max, desired });
        let cases: [(&str, Result<Size, &str>); 10] = [
            ("  mode: fixed\n  size: 3\n", fixed(3)),
            ("  mode: fixed\n", Err("a fixed cluster needs `size`")),
            ("  mode: fixed\n  size: 0\n", Err("size must be at least 1")),
            (
                "  mode: fixed\n  size: 2\n  min: 1\n",
                Err("`min` applies to autoscaling clusters"),
            ),
            ("  mode: autoscaling\n  min: 1\n  max: 3\n", group(1, 3, 1)),
            (
                "  mode: autoscaling\n  min: 1\n  max: 3\n  desired: 2\n",
                group(1, 3, 2),
            ),
            (
                "  mode: autoscaling\n  min: 4\n  max: 3\n",
                Err("min 4 is larger than max 3"),
            ),
            (
                "  mode: autoscaling\n  min: 1\n  max: 3\n  desired: 5\n",
                Err("desired 5 is outside min 1 .. max 3"),
            ),
            (
                "  mode: autoscaling\n  min: 0\n  max: 0\n",
                Err("max must be at least 1"),
            ),
            (
                "  mode: autoscaling\n  min: 1\n",
                Err("an autoscaling cluster needs `max`"),
            ),
        ];
        for (lines, expected) in cases {
            let got = shape(&format!("{lines}{feed}")).map(|s| s.size);
            assert_eq!(got, expected.map_err(str::to_owned), "{lines}");
        }
    }

    #[test]
    fn the_image_is_a_feed_or_a_pinned_image_never_both() {
        let size = "  mode: fixed\n  size: 1\n";
        let feed = shape(&format!("{size}  os: {{ name: flatcar, channel: beta }}\n"));
        assert!(
            matches!(feed, Ok(ClusterShape { image: ImageSource::Feed(os), .. }) if os.channel == "beta")
        );
        let pinned = shape(&format!("{size}  ami: ami-0123456789abcdef0\n"));
        assert!(matches!(
            pinned,
            Ok(ClusterShape {
                image: ImageSource::Pinned(_),
                ..
            })
        ));
        let both = format!(
            "{size}  os: {{ name: flatcar, channel: stable }}\n  ami: ami-0123456789abcdef0\n"
        );
        assert_eq!(
            shape(&both).unwrap_err(),
            "give either `os` or `ami`, not both"
        );
        assert_eq!(
            shape(size).unwrap_err(),
            "the cluster needs an image: `os` or `ami`"
        );
        let channel = format!("{size}  os: {{ name: flatcar, channel: nightly }}\n");
        assert_eq!(shape(&channel).unwrap_err(), "unknown channel `nightly`");
    }
}
