//! Changes of trust between two commits of an environment (pure): where its machines'
//! image comes from and who may own it. They join the security-widening section of
//! the comment: a reviewer must see them, whatever else the plan does.

use crate::config::{Environment, ImageSource, OsImage};

/// What the diff changes about whom the machines' image is trusted from, in words.
pub fn changes(base: Option<&Environment>, head: Option<&Environment>) -> Vec<String> {
    let source =
        |e: Option<&Environment>| e.and_then(|e| e.cluster.as_ref()).map(|c| c.image.clone());
    let mut out = Vec::new();
    match (source(base), source(head)) {
        (Some(ImageSource::Feed(was)), Some(ImageSource::Feed(now))) => {
            out.extend(feed(&was, &now));
        }
        (Some(ImageSource::Feed(_)), Some(ImageSource::Pinned(ami))) => out.push(format!(
            "the image is pinned to {ami}: it is no longer looked up in the vendor's feed nor checked against the vendor's account"
        )),
        (None, Some(ImageSource::Feed(now))) => {
            let vendor = OsImage {
                feed_url: None,
                owners: None,
                ..now.clone()
            };
            out.extend(feed(&vendor, &now));
        }
        _ => {}
    }
    out
}

/// A feed or owners moved between two image settings.
fn feed(was: &OsImage, now: &OsImage) -> Vec<String> {
    let mut out = Vec::new();
    if was.feed_url != now.feed_url {
        out.push(match (&was.feed_url, &now.feed_url) {
            (None, Some(url)) => format!("the image feed moves away from the vendor's, to {url}"),
            (Some(old), Some(url)) => format!("the image feed moves from {old} to {url}"),
            (Some(old), None) => format!("the image feed moves from {old} back to the vendor's"),
            (None, None) => unreachable!("the feeds differ"),
        });
    }
    if was.owners != now.owners {
        let owners = |o: &Option<Vec<String>>| match o {
            Some(list) => list.join(", "),
            None => "the vendor's account".to_owned(),
        };
        out.push(format!(
            "the accounts trusted to own the image: {} → {}",
            owners(&was.owners),
            owners(&now.owners)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn env(os: &str) -> Environment {
        let text = format!(
            "region: eu-west-1\nnetwork: {{ cidr: 10.8.0.0/16, zones: 1, private_subnets: 1, public_subnets: 0, nat: none }}\n\
             cluster:\n  mode: autoscaling\n  min: 1\n  max: 1\n  instance_type: t3.small\n  {os}\n"
        );
        crate::config::load("environments/web.yaml", &text, &BTreeSet::new()).unwrap()
    }

    #[test]
    fn a_feed_or_owners_moved_away_from_the_vendor_is_a_change_of_trust() {
        let vendor = env("os: { name: flatcar, channel: stable }");
        let mirror = env(
            "os: { name: flatcar, channel: stable, feed_url: \"https://mirror.example/{channel}.json\", owners: [\"111122223333\"] }",
        );
        assert_eq!(
            changes(Some(&vendor), Some(&mirror)),
            [
                "the image feed moves away from the vendor's, to https://mirror.example/{channel}.json",
                "the accounts trusted to own the image: the vendor's account → 111122223333",
            ]
        );
        assert_eq!(changes(Some(&vendor), Some(&vendor)), Vec::<String>::new());
        let pinned = env("ami: ami-0123456789abcdef0");
        assert!(changes(Some(&vendor), Some(&pinned))[0].starts_with("the image is pinned"));
        // A new environment on a mirror says so too.
        assert_eq!(changes(None, Some(&mirror)).len(), 2);
    }
}
