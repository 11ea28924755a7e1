//! The OS image, found at run time: the vendor's published feed names the image for
//! the region, and `DescribeImages`, restricted to the publisher's account, confirms it
//! exists and is theirs. A pinned `ami:` is only confirmed to exist.

use std::time::Duration;

use super::{Aws, AwsError, error};
use crate::config::{AmiId, OsImage, OsName};

/// Flatcar's AWS publishing account.
pub const FLATCAR_OWNER: &str = "075585003325";
/// Fedora CoreOS's AWS publishing account.
pub const FEDORA_COREOS_OWNER: &str = "125523088429";

pub use crate::plan::cluster::Image;

/// Why no image could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    /// The feed could not be fetched.
    #[error(
        "fetching the {os} image feed {url}: {message}\n  hint: check the network, or point os.feed_url at a mirror"
    )]
    Feed {
        /// OS and channel.
        os: String,
        /// Feed URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The feed has no image for the region.
    #[error(
        "the {os} feed {url} lists no image for {region}\n  hint: choose another region or channel, or pin `ami:`"
    )]
    NoImageForRegion {
        /// OS and channel.
        os: String,
        /// Feed URL.
        url: String,
        /// Region.
        region: String,
    },
    /// The feed names something that is not an image id.
    #[error(
        "the {os} feed {url} names `{found}` as the image for {region}, which is not an image id (ami- followed by hex digits)\n  hint: point os.feed_url at the vendor's feed or a faithful mirror, or pin `ami:`"
    )]
    NotAnImageId {
        /// OS and channel.
        os: String,
        /// Feed URL.
        url: String,
        /// Region.
        region: String,
        /// What the feed says.
        found: String,
    },
    /// The image is missing or owned by another account.
    #[error(
        "image {image} ({os}) is not visible in {region} as owned by {owners}\n  hint: the feed and the region disagree, or the image is not the publisher's; check os.feed_url and os.owners"
    )]
    NotVerified {
        /// Image id.
        image: String,
        /// OS and channel.
        os: String,
        /// Region.
        region: String,
        /// Accounts accepted as owners.
        owners: String,
    },
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// The feed URL for an OS and channel (`os.feed_url` overrides it; `{channel}` in an
/// override is replaced by the channel).
pub fn feed_url(os: &OsImage) -> String {
    match (&os.feed_url, os.name) {
        (Some(url), _) => url.replace("{channel}", &os.channel),
        (None, OsName::Flatcar) => {
            format!(
                "https://{}.release.flatcar-linux.net/amd64-usr/current/flatcar_production_ami_all.json",
                os.channel
            )
        }
        (None, OsName::FedoraCoreos) => format!(
            "https://builds.coreos.fedoraproject.org/streams/{}.json",
            os.channel
        ),
    }
}

/// The accounts trusted to own the image (`os.owners` overrides them).
pub fn owners(os: &OsImage) -> Vec<String> {
    match (&os.owners, os.name) {
        (Some(owners), _) => owners.clone(),
        (None, OsName::Flatcar) => vec![FLATCAR_OWNER.to_owned()],
        (None, OsName::FedoraCoreos) => vec![FEDORA_COREOS_OWNER.to_owned()],
    }
}

/// Picks the region's image (and release, when the feed says) from a feed document.
pub fn image_in_feed(
    name: OsName,
    feed: &serde_json::Value,
    region: &str,
) -> Option<(String, Option<String>)> {
    match name {
        // {"amis": [{"name": "eu-west-1", "hvm": "ami-...", "pv": "..."}]}
        OsName::Flatcar => feed["amis"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == region)
            .and_then(|a| a["hvm"].as_str())
            .map(|id| (id.to_owned(), None)),
        // {"architectures": {"x86_64": {"images": {"aws": {"regions": {"eu-west-1": {"release": "...", "image": "ami-..."}}}}}}}
        OsName::FedoraCoreos => {
            let entry = &feed["architectures"]["x86_64"]["images"]["aws"]["regions"][region];
            let image = entry["image"].as_str()?.to_owned();
            Some((image, entry["release"].as_str().map(str::to_owned)))
        }
    }
}

/// Flatcar names its images `Flatcar-<channel>-<release>-hvm`.
fn release_from_name(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('-').collect();
    parts
        .iter()
        .find(|p| p.contains('.') && p.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(|p| (*p).to_owned())
}

/// Looks the image up in the feed and verifies it in EC2.
pub async fn resolve(aws: &Aws, os: &OsImage) -> Result<Image, ImageError> {
    let label = format!("{} {}", os.name.as_str(), os.channel);
    let url = feed_url(os);
    let feed_error = |message: String| ImageError::Feed {
        os: label.clone(),
        url: url.clone(),
        message,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| feed_error(e.to_string()))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| feed_error(e.to_string()))?;
    if !response.status().is_success() {
        return Err(feed_error(format!("HTTP {}", response.status())));
    }
    let feed: serde_json::Value = response
        .json()
        .await
        .map_err(|e| feed_error(format!("not JSON: {e}")))?;
    let Some((id, release)) = image_in_feed(os.name, &feed, &aws.region) else {
        return Err(ImageError::NoImageForRegion {
            os: label,
            url,
            region: aws.region.clone(),
        });
    };
    if AmiId::try_from(id.clone()).is_err() {
        return Err(ImageError::NotAnImageId {
            os: label,
            url,
            region: aws.region.clone(),
            found: id,
        });
    }
    let owners = owners(os);
    let not_verified = || ImageError::NotVerified {
        image: id.clone(),
        os: label.clone(),
        region: aws.region.clone(),
        owners: owners.join(", "),
    };
    let out = match aws
        .ec2
        .describe_images()
        .image_ids(&id)
        .set_owners(Some(owners.clone()))
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let err = error(format!("verifying image {id} ({label})"), e);
            return Err(if err.code.starts_with("InvalidAMIID") {
                not_verified()
            } else {
                err.into()
            });
        }
    };
    // The owner is checked on the answer too: the request's filter alone is not
    // trusted (some endpoints ignore it when image ids are given).
    let found = out.images().iter().find(|i| {
        i.image_id() == Some(id.as_str())
            && i.owner_id().is_some_and(|o| owners.iter().any(|w| w == o))
    });
    let Some(found) = found else {
        return Err(not_verified());
    };
    let name = found.name().unwrap_or_default().to_owned();
    Ok(Image {
        release: release.or_else(|| release_from_name(&name)),
        id,
        name,
        source: label,
    })
}

/// Confirms a pinned image exists in the region.
pub async fn pinned(aws: &Aws, ami: &AmiId) -> Result<Image, ImageError> {
    let out = aws
        .ec2
        .describe_images()
        .image_ids(ami.as_str())
        .send()
        .await
        .map_err(|e| error(format!("verifying pinned image {ami}"), e))?;
    let Some(found) = out.images().first() else {
        return Err(ImageError::NotVerified {
            image: ami.to_string(),
            os: "pinned".into(),
            region: aws.region.clone(),
            owners: "any account".into(),
        });
    };
    let name = found.name().unwrap_or_default().to_owned();
    Ok(Image {
        id: ami.to_string(),
        release: release_from_name(&name),
        name,
        source: "pinned".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_of_both_vendors_name_the_region_image() {
        let flatcar = serde_json::json!({"amis": [{"name": "us-east-1", "hvm": "ami-1"}, {"name": "eu-west-1", "hvm": "ami-2"}]});
        assert_eq!(
            image_in_feed(OsName::Flatcar, &flatcar, "eu-west-1"),
            Some(("ami-2".into(), None))
        );
        assert_eq!(image_in_feed(OsName::Flatcar, &flatcar, "ap-south-2"), None);
        let fcos = serde_json::json!({"architectures": {"x86_64": {"images": {"aws": {"regions": {
            "eu-west-1": {"release": "41.20250105.3.0", "image": "ami-3"}}}}}}});
        assert_eq!(
            image_in_feed(OsName::FedoraCoreos, &fcos, "eu-west-1"),
            Some(("ami-3".into(), Some("41.20250105.3.0".into())))
        );
        assert_eq!(
            image_in_feed(OsName::FedoraCoreos, &fcos, "us-east-1"),
            None
        );
    }

    #[test]
    fn flatcar_releases_come_from_image_names() {
        assert_eq!(
            release_from_name("Flatcar-stable-4081.2.0-hvm"),
            Some("4081.2.0".into())
        );
        assert_eq!(release_from_name("custom"), None);
    }
}
