//! The command line: argument definitions and the commands behind them.
//!
//! Commands read the repository (directory or git), call the pure core and write to
//! the given streams. `main` only maps the result to an exit code.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::changes;
use crate::config::EnvironmentSpec;
use crate::diagnostic::Diagnostics;
use crate::git::{GitRepo, GitSource};
use crate::ignition::{self, RenderRequest};
use crate::repo;

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
    /// Print the JSON Schema of environment files.
    Schema,
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

/// Output formats of `strata changes`.
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
    /// Render without fetching the SSH public key from Secrets Manager.
    #[arg(long)]
    pub offline: bool,
}

/// How a command ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: problems were reported on stderr.
    Failed,
}

/// Runs one command.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Outcome> {
    match &cli.command {
        Command::Validate => validate(cli, out, err),
        Command::Changes(args) => changes(cli, args, out, err),
        Command::Render(args) => render(cli, args, out, err),
        Command::Schema => {
            out.write_all(schema().as_bytes())?;
            Ok(Outcome::Success)
        }
    }
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
    writeln!(err, "{n} problem{} found", if n == 1 { "" } else { "s" })?;
    Ok(Outcome::Failed)
}

fn read_repo(cli: &Cli) -> anyhow::Result<repo::RepoFiles> {
    if !cli.repo.is_dir() {
        anyhow::bail!("{}: no such directory", cli.repo.display());
    }
    repo::read_dir(&cli.repo).with_context(|| format!("reading {}", cli.repo.display()))
}

fn validate(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Outcome> {
    let files = read_repo(cli)?;
    match repo::load(&files) {
        Ok(repository) => {
            writeln!(
                out,
                "ok: {} environment{} and {} unit{} are valid",
                repository.environments.len(),
                if repository.environments.len() == 1 {
                    ""
                } else {
                    "s"
                },
                repository.units.units.len(),
                if repository.units.units.len() == 1 {
                    ""
                } else {
                    "s"
                },
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
    if !args.offline {
        anyhow::bail!(
            "fetching the SSH public key from Secrets Manager is not available in this version of strata; \
             pass --offline to render without it"
        );
    }
    let request = RenderRequest {
        environment,
        units: &repository.units,
        node: args.node,
        ssh_public_key: None,
        etcd_discovery: None,
    };
    let data = ignition::render(&request)?;
    let node = environment.spec.node.as_ref();
    if let Some(node) = node {
        writeln!(
            err,
            "note: rendered offline: user `{}` gets no SSH key (secret {} was not read)",
            node.ssh.user, node.ssh.public_key_secret
        )?;
        if node
            .etcd
            .as_ref()
            .is_some_and(|e| e.bootstrap == crate::config::EtcdBootstrap::Discovery)
        {
            writeln!(
                err,
                "note: rendered offline: ETCD_DISCOVERY is left out (the token is fetched when the cluster is created)"
            )?;
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
