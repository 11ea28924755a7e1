//! OS image feeds served on loopback (wiremock), in the vendors' formats.
//!
//! The benchmarks include this file too (`#[path]`): it needs nothing from the rest of
//! the harness.

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Flatcar stable 4081.2.0 in eu-west-1, as moto holds it under Flatcar's account
/// (tests/data/amis.json).
pub const FLATCAR_AMI: &str = "ami-0f1a7ca7000000001";

/// Serves `body` as the stable channel's feed, `<server>/stable.json`.
pub async fn serve_feed(body: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/stable.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    server
}

/// A Flatcar stable feed naming `ami` as eu-west-1's image (and another region's).
pub async fn flatcar_feed(ami: &str) -> MockServer {
    serve_feed(flatcar_body(ami)).await
}

/// Flatcar's feed naming `ami` as eu-west-1's image (and another region's).
pub fn flatcar_body(ami: &str) -> serde_json::Value {
    serde_json::json!({"amis": [
        {"name": "us-east-1", "hvm": "ami-0000000000000000f"},
        {"name": "eu-west-1", "hvm": ami}
    ]})
}
