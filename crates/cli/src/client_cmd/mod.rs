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
    /// Print one JSON object on stdout instead of text (errors too).
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Print only the essential value, no progress (each command's help says which value).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Connection flags shared by every client command: they override the config's registry and
/// `registry.remote` / `pull_policy` connection settings for this run only.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// Registry `HOST[:PORT]` (or `http(s)://HOST[:PORT]`) for references that name none,
    /// instead of the configured one.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub registry: Option<String>,
    /// Talk plain HTTP to the registry (also to a non-loopback host).
    #[arg(long)]
    pub plain_http: bool,
    /// Skip TLS certificate verification.
    #[arg(long)]
    pub insecure: bool,
    /// User name for this run (the password comes from --password-stdin, else a prompt on a
    /// terminal); overrides stored credentials.
    #[arg(long, short = 'u', value_name = "USER")]
    pub username: Option<String>,
    /// Read the password (or token) from standard input.
    #[arg(long)]
    pub password_stdin: bool,
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
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
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
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg tags REPO [-n N] [--last TAG]`.
#[derive(Args, Debug)]
pub struct TagsArgs {
    /// `[registry/]namespace/repo`.
    #[arg(value_name = "REPO")]
    pub repo: String,
    /// Show one page of at most N tags (default: all tags, following pagination).
    #[arg(short = 'n', long = "limit", alias = "n", value_name = "N")]
    pub n: Option<usize>,
    /// With -n: start after this tag.
    #[arg(long, value_name = "TAG", requires = "n")]
    pub last: Option<String>,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg catalog [REGISTRY]`.
#[derive(Args, Debug)]
pub struct CatalogArgs {
    /// Registry `host[:port]`, the same as --registry (default: the configured one).
    #[arg(
        value_name = "REGISTRY",
        id = "registry_arg",
        conflicts_with = "registry"
    )]
    pub registry: Option<String>,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
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
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
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
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg login [REGISTRY] -u USER [--password-stdin]`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry `host[:port]`, the same as --registry (default: the configured one).
    #[arg(
        value_name = "REGISTRY",
        id = "registry_arg",
        conflicts_with = "registry"
    )]
    pub registry: Option<String>,
    /// Store the credentials without checking them against the registry first.
    #[arg(long)]
    pub no_verify: bool,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg logout [REGISTRY]`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry `host[:port]`, the same as --registry (default: the configured one).
    #[arg(
        value_name = "REGISTRY",
        id = "registry_arg",
        conflicts_with = "registry"
    )]
    pub registry: Option<String>,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// The client commands, flattened into the top-level command list.
#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Pack a file or directory as an artifact of KIND and push it (to the configured registry,
    /// or --registry).
    Push(PushArgs),
    /// Pull an artifact (through the local cache, per pull_policy) and unpack it.
    Pull(PullArgs),
    /// List the tags of a repository.
    Tags(TagsArgs),
    /// List the repositories of a registry.
    Catalog(CatalogArgs),
    /// Show a manifest: digest, size, media type, artifactType, annotations, referrers.
    Inspect(RefArgs),
    /// Remove a tag (REF with a tag) or delete a manifest and every tag on it (REF with a
    /// digest).
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

impl ClientCmd {
    /// The command's connection flags, a registry positional (`catalog`, `login`, `logout`)
    /// standing for `--registry`, and its output flags.
    fn flags(&self) -> (ConnArgs, OutputArgs) {
        let with_positional = |conn: &ConnArgs, positional: &Option<String>| ConnArgs {
            registry: positional.clone().or_else(|| conn.registry.clone()),
            ..conn.clone()
        };
        match self {
            ClientCmd::Push(a) => (a.conn.clone(), a.out),
            ClientCmd::Pull(a) => (a.conn.clone(), a.out),
            ClientCmd::Tags(a) => (a.conn.clone(), a.out),
            ClientCmd::Catalog(a) => (with_positional(&a.conn, &a.registry), a.out),
            ClientCmd::Inspect(a) | ClientCmd::Rm(a) => (a.conn.clone(), a.out),
            ClientCmd::Copy(a) => (a.conn.clone(), a.out),
            ClientCmd::Login(a) => (with_positional(&a.conn, &a.registry), a.out),
            ClientCmd::Logout(a) => (with_positional(&a.conn, &a.registry), a.out),
            ClientCmd::Search(a) => (a.conn.clone(), a.out),
            ClientCmd::Tag(a) => (a.conn.clone(), a.out),
            ClientCmd::Digest(a) => (a.conn.clone(), a.out),
            ClientCmd::Manifest {
                cmd: fetch::ManifestCmd::Get(a),
            } => (a.conn.clone(), a.out),
            ClientCmd::Blob {
                cmd: fetch::BlobCmd::Get(a),
            } => (a.conn.clone(), a.out),
            ClientCmd::Attach(a) => (a.conn.clone(), a.out),
            ClientCmd::Discover(a) => (a.conn.clone(), a.out),
            ClientCmd::Repo {
                cmd: repo::RepoCmd::Delete(a),
            } => (a.conn.clone(), a.out),
        }
    }

    /// True when the command prints JSON (`--json`), errors included.
    pub fn json(&self) -> bool {
        self.flags().1.json
    }
}

/// Runs a client command with the global `--config`; returns the exit code.
pub fn run(cmd: ClientCmd, global_config: Option<&Path>) -> anyhow::Result<i32> {
    let (conn, _) = cmd.flags();
    let mut ctx = settings::Ctx::load(global_config, &conn)?;
    // `logout` only forgets; every other command uses `-u` (login asks for a user without it).
    if !matches!(cmd, ClientCmd::Logout(_)) {
        ctx.credentials = login::flag_credentials(&conn, matches!(cmd, ClientCmd::Login(_)))?;
    }
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
    result.map_err(with_hints)
}

/// Adds what the user can do to an error: how to start a loopback registry that is not running
/// (the error keeps its exit code), the flags that allow plain HTTP or unverified TLS for a run.
fn with_hints(err: anyhow::Error) -> anyhow::Error {
    use ocireg_client::ClientError;
    let found = err.chain().find_map(|cause| match cause.downcast_ref() {
        Some(e @ (ClientError::NotRunning { .. } | ClientError::Insecure { .. })) => Some(e),
        _ => None,
    });
    match found {
        Some(ClientError::NotRunning { .. }) => crate::exit::coded(
            crate::exit::Exit::NotRunning,
            anyhow::anyhow!("{err:#} — start it with \"ocireg up\" or \"ocireg serve\""),
        ),
        Some(ClientError::Insecure { .. }) => crate::exit::coded(
            crate::exit::Exit::Usage,
            anyhow::anyhow!(
                "{err:#} (pull_policy.allow_insecure), or --plain-http / --insecure for this run"
            ),
        ),
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{code_of, Exit};
    use ocireg_client::ClientError;

    #[test]
    fn hints_name_what_to_do_and_keep_the_exit_code() {
        let insecure = anyhow::Error::new(ClientError::Insecure {
            host: "reg.example".into(),
            what: "plain HTTP".into(),
        });
        let hinted = with_hints(insecure);
        assert_eq!(code_of(&hinted), Exit::Usage);
        assert_eq!(
            hinted.to_string(),
            "refusing plain HTTP for reg.example: only loopback hosts may use it unless allow_insecure is set (pull_policy.allow_insecure), or --plain-http / --insecure for this run"
        );
        let down = anyhow::Error::new(ClientError::NotRunning {
            addr: "127.0.0.1:9".into(),
        });
        let hinted = with_hints(down.context("listing tags"));
        assert_eq!(code_of(&hinted), Exit::NotRunning);
        assert!(hinted
            .to_string()
            .ends_with("start it with \"ocireg up\" or \"ocireg serve\""));
        let other = with_hints(anyhow::anyhow!("plain"));
        assert_eq!(other.to_string(), "plain");
    }
}
