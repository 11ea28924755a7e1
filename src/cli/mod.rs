//! The command line: argument definitions and the commands behind them.
//!
//! Commands read the repository (directory or git), call the pure core and write to
//! the given streams. `main` only maps the result to an exit code.

mod live;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::aws::Connector;
use crate::changes;
use crate::config::{EnvironmentSpec, Layer};
use crate::diagnostic::Diagnostics;
use crate::engine;
use crate::exit::Outcome;
use crate::git::{GitRepo, GitSource};
use crate::ignition::{self, RenderRequest};
use crate::plan::render;
use crate::repo;
use crate::selection;

/// Run EC2 clusters as git-driven infrastructure.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, long_about = None)]
pub struct Cli {
    /// The repository holding environments/ and units/.
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every environment and unit; exit 1 on errors.
    Validate,
    /// Show which environments and layers changed between two commits.
    Changes(ChangesArgs),
    /// Print the Ignition config (EC2 user data) of an environment's nodes.
    Render(RenderArgs),
    /// Compare the live AWS state with the repository and show what apply would do.
    Plan(PlanArgs),
    /// Make the live AWS state match the repository.
    Apply(ApplyArgs),
    /// Compare live AWS with the checkout, every environment and layer, and find
    /// orphans; writes nothing. Exit 2 on drift or orphans.
    Drift(DriftArgs),
    /// Print the JSON Schema of environment files (with `--plan`: of `plan --format json`).
    Schema(SchemaArgs),
    /// The GitHub Action: plan a pull request, apply a merge, or do a manual run, as
    /// the runner's GITHUB_* variables and INPUT_* inputs say.
    Action,
}

/// Which environments and layers to work on.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Selection {
    /// An environment to work on (repeatable; default: all, or what changed).
    #[arg(long = "env", value_name = "NAME")]
    pub envs: Vec<String>,
    /// A layer to work on (repeatable; default: all, or what changed).
    #[arg(long = "layer", value_enum, value_name = "LAYER")]
    pub layers: Vec<LayerArg>,
    /// Work on what changed since this commit (needs --head).
    #[arg(long, value_name = "REV", requires = "head")]
    pub base: Option<String>,
    /// The commit to make real (with --base: what changed up to it).
    #[arg(long, value_name = "REV")]
    pub head: Option<String>,
}

impl From<&Selection> for selection::Selection {
    fn from(value: &Selection) -> selection::Selection {
        selection::Selection {
            envs: value.envs.clone(),
            layers: value.layers.iter().map(|l| Layer::from(*l)).collect(),
            base: value.base.clone(),
            head: value.head.clone(),
        }
    }
}

/// A layer on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayerArg {
    /// VPC, subnets, gateways, routes, security groups, load balancers.
    Network,
    /// Instances or the auto-scaling group.
    Cluster,
    /// What the instances boot with.
    Node,
}

impl From<LayerArg> for Layer {
    fn from(value: LayerArg) -> Layer {
        match value {
            LayerArg::Network => Layer::Network,
            LayerArg::Cluster => Layer::Cluster,
            LayerArg::Node => Layer::Node,
        }
    }
}

/// `strata plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// What to plan.
    #[command(flatten)]
    pub selection: Selection,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Markdown)]
    pub format: PlanFormat,
    /// Exit 2 when the plan has changes (0: none, 1: error).
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// Output formats of `strata plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For people and pull-request comments.
    Markdown,
    /// Stable JSON, documented in the README.
    Json,
}

/// `strata apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// What to apply.
    #[command(flatten)]
    pub selection: Selection,
    /// Consent to deleting and replacing resources the plan lists.
    #[arg(long)]
    pub allow_destroy: bool,
    /// How long to wait for another apply of the same environment to end (its apply
    /// lock, `strata/<env>/apply-lock` in Secrets Manager).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lock_wait: u64,
    /// How many environments to apply at once (each one's layers stay in order).
    #[arg(long, value_name = "N", default_value_t = engine::DEFAULT_PARALLEL, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
}

/// `strata changes`.
#[derive(Debug, clap::Args)]
pub struct ChangesArgs {
    /// The older commit (id, branch, tag, HEAD~1, ...).
    #[arg(long, value_name = "REV")]
    pub base: String,
    /// The newer commit.
    #[arg(long, value_name = "REV")]
    pub head: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `strata drift`.
#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    /// An environment to check (repeatable; default: all, and the orphans of
    /// environments without a file).
    #[arg(long = "env", value_name = "NAME")]
    pub envs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output formats of `strata changes` and `strata drift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// Stable JSON, documented in the README.
    Json,
}

/// `strata render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Environment name (the file stem in environments/).
    #[arg(long = "env", value_name = "NAME")]
    pub env: String,
    /// Node index, for fixed-size clusters.
    #[arg(long, value_name = "N")]
    pub node: Option<u16>,
    /// Render without fetching the SSH public key from Secrets Manager (no AWS access).
    #[arg(long)]
    pub offline: bool,
}

/// `strata schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// The schema of `strata plan --format json` instead of environment files.
    #[arg(long)]
    pub plan: bool,
}

/// Runs one command.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Outcome> {
    match &cli.command {
        Command::Validate => validate(cli, out, err),
        Command::Changes(args) => changes(cli, args, out, err),
        Command::Render(args) => render(cli, args, out, err),
        Command::Plan(args) => runtime()?.block_on(live::plan(cli, args, out, err)),
        Command::Apply(args) => runtime()?.block_on(live::apply(cli, args, out, err)),
        Command::Drift(args) => runtime()?.block_on(live::drift(cli, args, out, err)),
        Command::Action => crate::action::run(out),
        Command::Schema(args) => {
            let text = match args.plan {
                true => plan_schema(),
                false => schema(),
            };
            out.write_all(text.as_bytes())?;
            Ok(Outcome::Success)
        }
    }
}

/// The JSON Schema of `strata plan --format json`, as committed in `schema/`.
pub fn plan_schema() -> String {
    let mut schema = schemars::schema_for!(crate::plan::Plan);
    schema.insert("title".into(), "strata plan".into());
    serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n"
}

/// The JSON Schema of `environments/<name>.yaml`, as committed in `schema/`.
pub fn schema() -> String {
    let mut schema = schemars::schema_for!(EnvironmentSpec);
    schema.insert("title".into(), "strata environment".into());
    // Serialising a JSON value cannot fail.
    serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n"
}

fn report(err: &mut dyn Write, diagnostics: &Diagnostics) -> anyhow::Result<Outcome> {
    writeln!(err, "{diagnostics}")?;
    let n = diagnostics.0.len();
    writeln!(err, "{n} problem{} found", render::plural(n))?;
    Ok(Outcome::Failed)
}

fn read_repo(cli: &Cli) -> anyhow::Result<repo::RepoFiles> {
    Ok(selection::read_checkout(&cli.repo)?)
}

fn validate(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Outcome> {
    let files = read_repo(cli)?;
    match repo::load(&files) {
        Ok(repository) => {
            writeln!(
                out,
                "ok: {} environment{} and {} unit{} are valid",
                repository.environments.len(),
                render::plural(repository.environments.len()),
                repository.units.units.len(),
                render::plural(repository.units.units.len()),
            )?;
            Ok(Outcome::Success)
        }
        Err(diagnostics) => report(err, &diagnostics),
    }
}

fn changes(
    cli: &Cli,
    args: &ChangesArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let git = GitRepo::open(&cli.repo)?;
    let base = git.commit(&args.base)?;
    let head = git.commit(&args.head)?;
    let diff = git.diff(&base, &head)?;
    match changes::detect(
        &diff,
        &mut GitSource {
            repo: &git,
            head: &head,
        },
    ) {
        Ok(set) => {
            match args.format {
                Format::Text => out.write_all(changes::render_text(&set).as_bytes())?,
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&set)?)?,
            }
            Ok(Outcome::Success)
        }
        Err(diagnostics) => report(err, &diagnostics),
    }
}

fn render(
    cli: &Cli,
    args: &RenderArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let files = read_repo(cli)?;
    let repository = match repo::load(&files) {
        Ok(r) => r,
        Err(diagnostics) => return report(err, &diagnostics),
    };
    let Some(environment) = repository
        .environments
        .values()
        .find(|e| e.name.as_str() == args.env)
    else {
        let known: Vec<&str> = repository.environments.keys().map(|n| n.as_str()).collect();
        anyhow::bail!(
            "no environment `{}` in {}/environments (found: {})",
            args.env,
            cli.repo.display(),
            known.join(", ")
        );
    };
    // A node index the cluster does not have is an error before any AWS call.
    ignition::node_identity(environment, args.node)?;
    let node = environment.spec.node.as_ref();
    let discovery =
        node.and_then(|n| n.etcd_bootstrap()) == Some(crate::config::EtcdBootstrap::Discovery);
    // The key (and an etcd discovery token) live only in memory: fetched here,
    // rendered into the config, dropped.
    let (key, token) = match node {
        Some(node) if !args.offline => {
            let region = environment.spec.region.to_string();
            let (key, token) = runtime()?.block_on(async {
                let connector = Connector::from_env()
                    .await
                    .read_only()
                    .in_account(environment.spec.account.as_ref(), &region)
                    .await?;
                let aws = connector.connect(&region);
                let key =
                    crate::aws::secrets::ssh_public_key(&aws, &node.ssh.public_key_secret).await?;
                let token = if discovery {
                    crate::aws::discovery::read(&aws, environment.name.as_str()).await?
                } else {
                    None
                };
                Ok::<_, crate::aws::AwsError>((key, token))
            })?;
            if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
                // Registers every secret read (the key, its body, the token) with the
                // runner so no log line can show them.
                for secret in crate::redact::registered() {
                    writeln!(err, "{}", crate::github::runner::mask(&secret))?;
                }
            }
            (Some(key), token)
        }
        _ => (None, None),
    };
    let request = RenderRequest {
        environment,
        units: &repository.units,
        node: args.node,
        ssh_public_key: key.as_ref().map(|k| k.openssh()),
        etcd_discovery: token.as_ref().map(|t| t.url.as_str()),
    };
    let data = ignition::render(&request)?;
    if let Some(node) = node {
        match &key {
            Some(key) => writeln!(
                err,
                "note: user `{}` gets the {} key {} from secret {}",
                node.ssh.user, key.algorithm, key.fingerprint, node.ssh.public_key_secret
            )?,
            None => writeln!(
                err,
                "note: rendered offline: user `{}` gets no SSH key (secret {} was not read)",
                node.ssh.user, node.ssh.public_key_secret
            )?,
        }
        if discovery {
            let secret = crate::config::names::etcd_discovery_secret(environment.name.as_str());
            match (&token, args.offline) {
                (Some(_), _) => writeln!(
                    err,
                    "note: ETCD_DISCOVERY is the token kept in secret {secret}"
                )?,
                (None, true) => writeln!(
                    err,
                    "note: rendered offline: ETCD_DISCOVERY is left out (secret {secret} was not read)"
                )?,
                (None, false) => writeln!(
                    err,
                    "note: ETCD_DISCOVERY is left out: secret {secret} does not exist yet (the first apply fetches the token)"
                )?,
            }
        }
    }
    if data.wrapped {
        writeln!(
            err,
            "note: the config is {} bytes, over the {} byte user-data limit; printed as a {} byte gzip wrapper",
            data.full_size,
            ignition::USER_DATA_LIMIT,
            data.json.len()
        )?;
    }
    writeln!(out, "{}", data.json)?;
    Ok(Outcome::Success)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    crate::runtime::new().context("starting the async runtime")
}
