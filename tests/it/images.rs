//! The OS image, found at run time: a feed served by a local HTTP server (wiremock),
//! images registered in moto under the publishers' accounts.

use std::collections::BTreeSet;

use strata::config::{Environment, Layer};
use strata::engine::EngineError;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::cloud::Cloud;
use crate::feed::{FLATCAR_AMI, flatcar_feed, serve_feed};
use crate::fixtures::{NO_UNITS, Scope};

fn env_with_os(os: &str) -> Environment {
    let yaml = format!(
        "region: eu-west-1\nnetwork: {{ cidr: 10.30.0.0/16, zones: 2, private_subnets: 2 }}\n\
         cluster:\n  mode: autoscaling\n  min: 1\n  max: 2\n  instance_type: t3.small\n  {os}\n"
    );
    strata::config::load("environments/img.yaml", &yaml, &BTreeSet::new()).unwrap()
}

/// The notes of a cluster-layer plan of `env`, in an account of its own.
async fn cluster_notes(env: Environment) -> Result<Vec<String>, EngineError> {
    let connector = Cloud::new().connector().await;
    let planned = Scope::units(&NO_UNITS)
        .layers(&[Layer::Cluster])
        .try_plan(&connector, &[&env])
        .await?;
    Ok(planned.plan.environments[0].layers[0].notes.clone())
}

#[tokio::test]
async fn the_flatcar_feed_names_the_image_and_ec2_confirms_its_publisher() {
    let server = flatcar_feed(FLATCAR_AMI).await;
    let os = format!(
        "os: {{ name: flatcar, channel: stable, feed_url: \"{}/{{channel}}.json\" }}",
        server.uri()
    );
    let notes = cluster_notes(env_with_os(&os)).await.unwrap();
    assert!(
        notes.contains(
            &"image: ami-0f1a7ca7000000001 (flatcar stable 4081.2.0, Flatcar-stable-4081.2.0-hvm)"
                .to_owned()
        ),
        "{notes:?}"
    );
}

#[tokio::test]
async fn the_fedora_coreos_stream_gives_image_and_release() {
    let server = serve_feed(
        serde_json::json!({"architectures": {"x86_64": {"images": {"aws": {"regions": {
        "eu-west-1": {"release": "41.20250105.3.0", "image": "ami-0fc05000000000002"}}}}}}}),
    )
    .await;
    let os = format!(
        "os: {{ name: fedora-coreos, channel: stable, feed_url: \"{}/{{channel}}.json\" }}",
        server.uri()
    );
    let notes = cluster_notes(env_with_os(&os)).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n
                .starts_with("image: ami-0fc05000000000002 (fedora-coreos stable 41.20250105.3.0")),
        "{notes:?}"
    );
}

#[tokio::test]
async fn an_image_owned_by_someone_else_is_refused() {
    let server = flatcar_feed("ami-0bad0000000000003").await;
    let os = format!(
        "os: {{ name: flatcar, channel: stable, feed_url: \"{}/{{channel}}.json\" }}",
        server.uri()
    );
    let err = cluster_notes(env_with_os(&os))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("image ami-0bad0000000000003 (flatcar stable) is not visible in eu-west-1 as owned by 075585003325"), "{err}");
}

#[tokio::test]
async fn a_feed_that_is_down_or_lacks_the_region_stops_the_plan() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let os = format!(
        "os: {{ name: flatcar, channel: beta, feed_url: \"{}/{{channel}}.json\" }}",
        server.uri()
    );
    let err = cluster_notes(env_with_os(&os))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "fetching the flatcar beta image feed {}/beta.json: HTTP 503",
            server.uri()
        )),
        "{err}"
    );

    let elsewhere = serve_feed(
        serde_json::json!({"amis": [{"name": "us-east-1", "hvm": "ami-0000000000000000f"}]}),
    )
    .await;
    let os = format!(
        "os: {{ name: flatcar, channel: stable, feed_url: \"{}/{{channel}}.json\" }}",
        elsewhere.uri()
    );
    let err = cluster_notes(env_with_os(&os))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("lists no image for eu-west-1"), "{err}");
}

#[tokio::test]
async fn overridden_owners_accept_a_private_copy_and_pinned_images_must_exist() {
    let server = flatcar_feed("ami-0bad0000000000003").await;
    let os = format!(
        "os: {{ name: flatcar, channel: stable, feed_url: \"{}/stable.json\", owners: [\"111122223333\"] }}",
        server.uri()
    );
    let notes = cluster_notes(env_with_os(&os)).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("image: ami-0bad0000000000003")),
        "{notes:?}"
    );

    let notes = cluster_notes(env_with_os("ami: ami-0fc05000000000002"))
        .await
        .unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("image: ami-0fc05000000000002 (pinned")),
        "{notes:?}"
    );
    let err = cluster_notes(env_with_os("ami: ami-0123456789abcdef0"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ami-0123456789abcdef0"), "{err}");
}
