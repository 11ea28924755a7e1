//! The project's own `environments/` and `units/` are working examples and fixtures.

use crate::harness::{self, project_root};

#[test]
fn example_repository_validates() {
    let out = harness::strata(&project_root(), &["validate"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "ok: 4 environments and 9 units are valid\n");
}

#[test]
fn committed_schema_matches_the_model() {
    let committed = std::fs::read_to_string(project_root().join("schema/environment.schema.json"))
        .unwrap_or_default();
    let current = strata::cli::schema();
    assert!(
        committed == current,
        "schema/environment.schema.json is stale: run `cargo run -- schema > schema/environment.schema.json`"
    );
}

#[test]
fn committed_plan_schema_matches_the_json_plan() {
    let committed =
        std::fs::read_to_string(project_root().join("schema/plan.schema.json")).unwrap_or_default();
    assert!(
        committed == strata::cli::plan_schema(),
        "schema/plan.schema.json is stale: run `cargo run -- schema --plan > schema/plan.schema.json`"
    );
    // What the README promises of the JSON plan is in it.
    for field in [
        "\"consent\"",
        "\"rollout\"",
        "\"origin\"",
        "\"data_volumes\"",
    ] {
        assert!(committed.contains(field), "{field}");
    }
}

#[test]
fn every_example_names_the_schema_for_editors() {
    for file in harness::walk(&project_root().join("environments")) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/environment.schema.json\n"),
            "{} lacks the yaml-language-server modeline",
            file.display()
        );
    }
}

#[test]
fn example_units_avoid_retired_coreos_components() {
    for file in harness::walk(&project_root().join("units")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for retired in ["etcd-member", "etcd-wrapper", "coreos-metadata"] {
            assert!(
                !text.contains(retired),
                "{} mentions {retired}",
                file.display()
            );
        }
    }
}
