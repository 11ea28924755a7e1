//! `strata changes`: environments and layers changed between two commits, compared
//! by parsed value, read through gix.

use std::cell::Cell;

use strata::changes::Source;
use strata::git::GitSource;

use crate::harness::{self, GitRepo, project_root};

/// A repository holding the project's examples as its first commit.
fn examples() -> (GitRepo, String) {
    let repo = GitRepo::new();
    repo.copy_dir(&project_root().join("environments"), "environments");
    repo.copy_dir(&project_root().join("units"), "units");
    let base = repo.commit("examples");
    (repo, base)
}

fn example(name: &str) -> String {
    std::fs::read_to_string(project_root().join("environments").join(name)).unwrap()
}

fn changes_json(repo: &GitRepo, base: &str, head: &str) -> serde_json::Value {
    let out = harness::strata(
        repo.path(),
        &[
            "changes", "--base", base, "--head", head, "--format", "json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// `name: [layers]` for every changed environment.
fn summary(json: &serde_json::Value) -> Vec<String> {
    json["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let layers: Vec<&str> = e["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            format!(
                "{} {} [{}]",
                e["name"].as_str().unwrap(),
                e["change"].as_str().unwrap(),
                layers.join(",")
            )
        })
        .collect()
}

#[test]
fn comments_key_order_and_formatting_are_no_change() {
    let (repo, base) = examples();
    let original = example("web-prod.yaml");
    // Reorder top-level sections, add comments, switch flow/block style.
    let (head_part, rest) = original.split_once("network:").unwrap();
    let edited = format!("{head_part}# a new comment\nnetwork:{rest}")
        .replace("tags: { team: web }", "tags:\n  team: web   # owner\n");
    repo.write("environments/web-prod.yaml", edited);
    let head = repo.commit("cosmetic");
    let json = changes_json(&repo, &base, &head);
    assert_eq!(summary(&json), Vec::<String>::new());
    let text = harness::strata(repo.path(), &["changes", "--base", &base, "--head", &head]);
    assert!(
        text.stdout.starts_with("no environment changed"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_comment_in_a_unit_is_a_node_change_since_units_are_installed_verbatim() {
    let (repo, base) = examples();
    repo.write(
        "units/web.service",
        format!(
            "# another comment\n{}",
            std::fs::read_to_string(project_root().join("units/web.service")).unwrap()
        ),
    );
    let head = repo.commit("a comment in a unit");
    assert_eq!(
        summary(&changes_json(&repo, &base, &head)),
        ["web-prod modified [node]"]
    );
}

#[test]
fn a_network_edit_changes_only_the_network_layer() {
    let (repo, base) = examples();
    repo.write(
        "environments/etcd-prod.yaml",
        example("etcd-prod.yaml").replace(
            "ingress_cidrs: [10.0.0.0/8]",
            "ingress_cidrs: [10.0.0.0/8, 192.168.0.0/16]",
        ),
    );
    let head = repo.commit("widen etcd ingress");
    assert_eq!(
        summary(&changes_json(&repo, &base, &head)),
        ["etcd-prod modified [network]"]
    );
}

#[test]
fn cluster_and_node_edits_are_told_apart() {
    let (repo, base) = examples();
    repo.write(
        "environments/web-prod.yaml",
        example("web-prod.yaml")
            .replace("desired: 3", "desired: 4")
            .replace("LOG_LEVEL: info", "LOG_LEVEL: debug"),
    );
    let head = repo.commit("scale and log more");
    let json = changes_json(&repo, &base, &head);
    assert_eq!(summary(&json), ["web-prod modified [cluster,node]"]);
}

#[test]
fn a_unit_change_is_a_node_change_for_every_environment_listing_it() {
    let (repo, base) = examples();
    let prune = std::fs::read_to_string(project_root().join("units/docker-prune.timer")).unwrap();
    repo.write(
        "units/docker-prune.timer",
        prune.replace("OnCalendar=", "OnCalendar=daily\n#OnCalendar="),
    );
    let head = repo.commit("prune daily");
    let json = changes_json(&repo, &base, &head);
    assert_eq!(
        summary(&json),
        [
            "etcd-prod modified [node]",
            "rabbitmq-prod modified [node]",
            "web-prod modified [node]"
        ]
    );
    assert_eq!(
        json["environments"][0]["reasons"][0]["because"],
        "unit docker-prune.timer changed"
    );
}

#[test]
fn a_new_drop_in_changes_its_unit() {
    let (repo, base) = examples();
    repo.write(
        "units/jenkins.service.d/20-memory.conf",
        "[Service]\nEnvironment=JAVA_OPTS=-Xmx2g\n",
    );
    let head = repo.commit("more memory for jenkins");
    assert_eq!(
        summary(&changes_json(&repo, &base, &head)),
        ["jenkins modified [node]"]
    );
}

#[test]
fn region_or_tags_change_every_layer() {
    let (repo, base) = examples();
    repo.write(
        "environments/jenkins.yaml",
        example("jenkins.yaml").replace(
            "tags: { team: ci }",
            "tags: { team: ci, cost-centre: \"42\" }",
        ),
    );
    let head = repo.commit("tag jenkins");
    assert_eq!(
        summary(&changes_json(&repo, &base, &head)),
        ["jenkins modified [network,cluster,node]"]
    );
}

#[test]
fn added_and_removed_environments_are_reported() {
    let (repo, base) = examples();
    repo.write(
        "environments/web-staging.yaml",
        example("web-prod.yaml").replace("10.69.0.0/16", "10.70.0.0/16"),
    );
    repo.remove("environments/jenkins.yaml");
    let head = repo.commit("staging in, jenkins out");
    let json = changes_json(&repo, &base, &head);
    assert_eq!(
        summary(&json),
        [
            "jenkins removed [node,cluster,network]",
            "web-staging added [network,cluster,node]"
        ]
    );
    let text = harness::strata(repo.path(), &["changes", "--base", &base, "--head", &head]).stdout;
    assert!(
        text.contains("jenkins      removed   teardown: apply needs --allow-destroy"),
        "{text}"
    );
}

#[test]
fn json_output_has_a_stable_shape() {
    let (repo, base) = examples();
    repo.write(
        "environments/etcd-prod.yaml",
        example("etcd-prod.yaml").replace("size: 3", "size: 5"),
    );
    let head = repo.commit("grow etcd");
    let mut json = changes_json(&repo, &base, &head);
    assert_eq!(json["base"], base.as_str());
    assert_eq!(json["head"], head.as_str());
    json["base"] = "<base>".into();
    json["head"] = "<head>".into();
    insta::assert_json_snapshot!(json);
}

#[test]
fn errors_in_the_head_commit_name_the_commit() {
    let (repo, base) = examples();
    repo.write(
        "environments/web-prod.yaml",
        example("web-prod.yaml").replace("min: 2", "min: 9"),
    );
    let head = repo.commit("broken");
    let out = harness::strata(repo.path(), &["changes", "--base", &base, "--head", &head]);
    assert_eq!(out.code, 1);
    let line = out.stderr.lines().next().unwrap();
    assert_eq!(
        line,
        format!(
            "{}:environments/web-prod.yaml:37:8: min 9 is larger than max 6",
            &head[..12]
        )
    );
}

#[test]
fn revisions_accept_branch_names_and_ancestry() {
    let (repo, _) = examples();
    repo.write(
        "environments/etcd-prod.yaml",
        example("etcd-prod.yaml").replace("t3.medium", "t3.large"),
    );
    repo.commit("bigger etcd");
    assert_eq!(
        summary(&changes_json(&repo, "HEAD~1", "main")),
        ["etcd-prod modified [cluster]"]
    );
}

#[test]
fn unchanged_environment_files_are_not_read() {
    // 40 environments, one edited: only that file's two versions are read.
    let repo = GitRepo::new();
    repo.copy_dir(&project_root().join("units"), "units");
    let template = example("web-prod.yaml");
    for i in 0..40 {
        repo.write(
            &format!("environments/web-{i}.yaml"),
            template.replace("10.69.0.0/16", &format!("10.{i}.0.0/16")),
        );
    }
    let base = repo.commit("forty");
    repo.write(
        "environments/web-7.yaml",
        template
            .replace("10.69.0.0/16", "10.7.0.0/16")
            .replace("max: 6", "max: 8"),
    );
    let head = repo.commit("one edit");

    let git = strata::git::GitRepo::open(repo.path()).unwrap();
    let (old, new) = (git.commit(&base).unwrap(), git.commit(&head).unwrap());
    let diff = git.diff(&old, &new).unwrap();
    assert_eq!(diff.environments.len(), 1, "only the edited file differs");
    let mut source = Counting {
        inner: GitSource {
            repo: &git,
            head: &new,
        },
        reads: Cell::new(0),
    };
    let set = strata::changes::detect(&diff, &mut source).unwrap();
    assert_eq!(set.environments.len(), 1);
    assert_eq!(
        source.reads.get(),
        2,
        "the edited file's two versions, nothing else"
    );
}

#[test]
fn a_unit_change_reads_only_environments_that_mention_it() {
    let repo = GitRepo::new();
    repo.copy_dir(&project_root().join("units"), "units");
    for i in 0..20 {
        let file = if i < 3 {
            "etcd-prod.yaml"
        } else {
            "jenkins.yaml"
        };
        repo.write(&format!("environments/env-{i}.yaml"), example(file));
    }
    let base = repo.commit("twenty");
    let etcd = std::fs::read_to_string(project_root().join("units/etcd.service")).unwrap();
    repo.write("units/etcd.service", etcd.replace("v3.5.17", "v3.5.18"));
    let head = repo.commit("etcd patch release");

    let git = strata::git::GitRepo::open(repo.path()).unwrap();
    let (old, new) = (git.commit(&base).unwrap(), git.commit(&head).unwrap());
    let diff = git.diff(&old, &new).unwrap();
    let mut source = Counting {
        inner: GitSource {
            repo: &git,
            head: &new,
        },
        reads: Cell::new(0),
    };
    let set = strata::changes::detect(&diff, &mut source).unwrap();
    assert_eq!(set.environments.len(), 3);
    // The unit's new version (checked; units are installed verbatim, so the old one is
    // not compared), 20 pre-filter reads, then the 3 environments that mention etcd.service.
    assert_eq!(source.reads.get(), 1 + 20 + 3);
}

/// A source that counts blob reads.
struct Counting<'a> {
    inner: GitSource<'a>,
    reads: Cell<usize>,
}

impl Source for Counting<'_> {
    fn read(&mut self, id: strata::changes::ObjectId) -> Result<Vec<u8>, String> {
        self.reads.set(self.reads.get() + 1);
        self.inner.read(id)
    }
    fn head_environments(
        &mut self,
    ) -> Result<std::collections::BTreeMap<String, strata::changes::ObjectId>, String> {
        self.inner.head_environments()
    }
    fn head_unit_names(&mut self) -> Result<std::collections::BTreeSet<String>, String> {
        self.inner.head_unit_names()
    }
}
