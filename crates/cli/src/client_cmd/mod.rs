//! The client commands: `push`, `pull`, `tags`, `catalog`, `inspect`, `rm`, `copy`, `login`,
//! `logout`. Each turns its flags and the config document (`registry`, `pull_policy`,
//! `push_policy`) into `ocireg_client` options and calls the library.
//!
//! - `settings`: config → [`ocireg_client::ClientOptions`], registry addresses, cache directory
//! - `creds`: credential lookup (config, our credentials file, Docker's `config.json`) and the
//!   credentials file itself
//! - `refs`: references on the command line (the grammar is `ocireg_oci`'s)
//! - `push`, `pull`, `copy`, `ops` (tags, catalog, inspect, rm), `login`: the commands
//! - `ui`: progress bars and output modes

mod attach;
mod copy;
mod copy_layout;
pub(crate) mod creds;
mod fetch;
mod login;
mod ops;
mod pull;
mod push;
mod push_files;
mod refs;
mod repo;
mod search;
pub(crate) mod settings;
mod tag;
mod ui;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

/// Output flags shared by every client command.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Print one JSON object on stdout instead of text.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Print only the essential value (the digest for push/pull/copy), no progress.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `ocireg push KIND PATH [NAME[:TAG]]`, or `ocireg push --artifact-type TYPE REF FILE...`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Artifact kind: extension, kcl-package, platform-image, test-image or custom:KEY. With
    /// --artifact-type: the reference `[registry/]namespace/repo[:tag]` to push to.
    #[arg(value_name = "KIND|REF")]
    pub kind: String,
    /// File or directory to pack. With --artifact-type: the first file.
    #[arg(value_name = "PATH|FILE")]
    pub path: PathBuf,
    /// Repository name below the kind's namespace, optionally with a tag (default: PATH's file
    /// name, sanitised; tag from push_policy.tag_format when auto_tag is on, else `latest`).
    /// With --artifact-type: the second file.
    #[arg(value_name = "NAME[:TAG]|FILE")]
    pub name: Option<String>,
    /// With --artifact-type: more files (one layer each).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Push the files as a generic artifact of this `artifactType` (like `oras push`): each
    /// file one layer titled with its file name, under REF.
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: Option<String>,
    /// Artifact version (`org.opencontainers.image.version`, `{version}` in tag_format).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Extra manifest annotation (repeatable).
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Move the tag even when it holds other content (overrides push_policy.allow_overwrite =
    /// false).
    #[arg(long)]
    pub force: bool,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg pull REF [-o DIR]`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// `[registry/]namespace/repo[:tag][@digest]` (registry defaults to the configured one).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Directory to unpack into (must not exist or be empty; default ./<last repo component>).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Replace a destination that exists and is not empty (it is removed only once the pull
    /// succeeded).
    #[arg(long)]
    pub force: bool,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg tags REPO [--n N] [--last TAG]`.
#[derive(Args, Debug)]
pub struct TagsArgs {
    /// `[registry/]namespace/repo`.
    #[arg(value_name = "REPO")]
    pub repo: String,
    /// Show one page of at most N tags (default: all tags, following pagination).
    #[arg(long = "n", value_name = "N")]
    pub n: Option<usize>,
    /// With --n: start after this tag.
    #[arg(long, value_name = "TAG", requires = "n")]
    pub last: Option<String>,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg catalog [REGISTRY]`.
#[derive(Args, Debug)]
pub struct CatalogArgs {
    /// Registry `host[:port]` (default: the configured one).
    #[arg(value_name = "REGISTRY")]
    pub registry: Option<String>,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg inspect REF` / `ocireg rm REF`.
#[derive(Args, Debug)]
pub struct RefArgs {
    /// `[registry/]namespace/repo[:tag][@digest]`.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg copy SRC DST`.
#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Source `[registry/]namespace/repo[:tag][@digest]`.
    #[arg(value_name = "SRC")]
    pub src: String,
    /// Destination `[registry/]namespace/repo[:tag]` (default tag: the source's).
    #[arg(value_name = "DST")]
    pub dst: String,
    /// Move the destination tag even when it holds other content (overrides
    /// push_policy.allow_overwrite = false).
    #[arg(long)]
    pub force: bool,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg login [REGISTRY] -u USER --password-stdin`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry `host[:port]` (default: the configured one).
    #[arg(value_name = "REGISTRY")]
    pub registry: Option<String>,
    /// User name.
    #[arg(long, short = 'u', value_name = "USER")]
    pub username: String,
    /// Read the password (or token) from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Store the credentials without checking them against the registry first.
    #[arg(long)]
    pub no_verify: bool,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg logout [REGISTRY]`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry `host[:port]` (default: the configured one).
    #[arg(value_name = "REGISTRY")]
    pub registry: Option<String>,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// The client commands, flattened into the top-level command list.
#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Pack a file or directory as an artifact of KIND and push it to the configured registry.
    Push(PushArgs),
    /// Pull an artifact (through the local cache, per pull_policy) and unpack it.
    Pull(PullArgs),
    /// List the tags of a repository.
    Tags(TagsArgs),
    /// List the repositories of a registry.
    Catalog(CatalogArgs),
    /// Show a manifest: digest, size, media type, artifactType, annotations, referrers.
    Inspect(RefArgs),
    /// Delete a manifest (by tag or digest).
    Rm(RefArgs),
    /// Copy an artifact or image between repositories or registries.
    Copy(CopyArgs),
    /// Store credentials for a registry (mode 0600 file).
    Login(LoginArgs),
    /// Remove stored credentials for a registry.
    Logout(LogoutArgs),
    /// Search an ocireg registry by repository name, tag, annotation and artifact type.
    Search(search::SearchArgs),
    /// Point more tags at a manifest, without copying anything.
    Tag(tag::TagArgs),
    /// Print the manifest digest a reference resolves to.
    Digest(tag::DigestArgs),
    /// Manifests as stored: `manifest get`.
    Manifest {
        #[command(subcommand)]
        cmd: fetch::ManifestCmd,
    },
    /// Blobs as stored: `blob get`.
    Blob {
        #[command(subcommand)]
        cmd: fetch::BlobCmd,
    },
    /// Attach files to a manifest as a referrer (a manifest with `subject`, like `oras attach`).
    Attach(attach::AttachArgs),
    /// Show the referrers of a manifest as a tree (like `oras discover`).
    Discover(attach::DiscoverArgs),
    /// Whole repositories: `repo delete`.
    Repo {
        #[command(subcommand)]
        cmd: repo::RepoCmd,
    },
}

/// Runs a client command with the global `--config`; returns the exit code.
pub fn run(cmd: ClientCmd, global_config: Option<&Path>) -> anyhow::Result<i32> {
    let ctx = settings::Ctx::load(global_config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?;
    let result = runtime.block_on(async move {
        match cmd {
            ClientCmd::Push(a) => push::run(&ctx, a).await,
            ClientCmd::Pull(a) => pull::run(&ctx, a).await,
            ClientCmd::Tags(a) => ops::tags(&ctx, a).await,
            ClientCmd::Catalog(a) => ops::catalog(&ctx, a).await,
            ClientCmd::Inspect(a) => ops::inspect(&ctx, a).await,
            ClientCmd::Rm(a) => ops::rm(&ctx, a).await,
            ClientCmd::Copy(a) => copy::run(&ctx, a).await,
            ClientCmd::Login(a) => login::login(&ctx, a).await,
            ClientCmd::Logout(a) => login::logout(&ctx, a),
            ClientCmd::Search(a) => search::run(&ctx, a).await,
            ClientCmd::Tag(a) => tag::tag(&ctx, a).await,
            ClientCmd::Digest(a) => tag::digest(&ctx, a).await,
            ClientCmd::Manifest {
                cmd: fetch::ManifestCmd::Get(a),
            } => fetch::manifest_get(&ctx, a).await,
            ClientCmd::Blob {
                cmd: fetch::BlobCmd::Get(a),
            } => fetch::blob_get(&ctx, a).await,
            ClientCmd::Attach(a) => attach::attach(&ctx, a).await,
            ClientCmd::Discover(a) => attach::discover(&ctx, a).await,
            ClientCmd::Repo {
                cmd: repo::RepoCmd::Delete(a),
            } => repo::delete(&ctx, a).await,
        }
    });
    // Work a command left behind (a packing task after Ctrl-C) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result.map_err(with_start_hint)
}

/// Says how to start a loopback registry that is not running.
fn with_start_hint(err: anyhow::Error) -> anyhow::Error {
    let not_running = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<ocireg_client::ClientError>(),
            Some(ocireg_client::ClientError::NotRunning { .. })
        )
    });
    if not_running {
        anyhow::anyhow!("{err:#} — start it with \"ocireg up\" or \"ocireg serve\"")
    } else {
        err
    }
}
