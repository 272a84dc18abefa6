//! The `ocireg` binary: one command line over the config model, the built-in registry engine,
//! the local lifecycle and the client. Libraries never see flags: this file turns arguments and the
//! config file into each library's option structs.

mod admin_call;
mod client_cmd;
mod config_cmd;
mod exit;
mod gc_cmd;
mod help;
mod lifecycle_cmd;
mod scrub_cmd;
mod serve;
#[cfg(test)]
mod tests_address;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ocireg",
    version,
    about = "The OCI registry layer of the provisioning platform"
)]
struct Cli {
    /// Config file (YAML, TOML, JSON or KCL; `-` for stdin). Default: $OCIREG_CONFIG, then
    /// ~/.provisioning/oci-registry/ocireg.yaml, then built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log filter (e.g. `info`, `debug`, `ocireg_server=trace`); also $OCIREG_LOG.
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the built-in OCI registry in the foreground (deployment = "local").
    Serve(serve::ServeArgs),
    /// Validate, show, initialise or describe the config.
    Config {
        #[command(subcommand)]
        cmd: config_cmd::ConfigCmd,
    },
    /// Artifact references (`registry/namespace/repo:tag@digest`).
    Ref {
        #[command(subcommand)]
        cmd: config_cmd::RefCmd,
    },
    /// Garbage-collect the local built-in registry now (through the running server, else in-process).
    Gc(gc_cmd::GcArgs),
    /// Re-hash every stored object of the local built-in registry now; quarantine corrupt ones.
    Scrub(scrub_cmd::ScrubArgs),
    #[command(flatten)]
    Client(client_cmd::ClientCmd),
    #[command(flatten)]
    Lifecycle(lifecycle_cmd::LifecycleCmd),
    /// Print a shell completion script, e.g. `source <(ocireg completion bash)`.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// True when the command reports errors as JSON (`--json` on a client command).
    fn json_errors(&self) -> bool {
        match self {
            Command::Client(c) => c.json(),
            _ => false,
        }
    }

    /// The log filter when neither `--log` nor `$OCIREG_LOG` is given; `None`: the command does
    /// not log (its output is the config or a reference).
    fn default_log_level(&self) -> Option<&'static str> {
        match self {
            Command::Serve(_) => Some("info"),
            Command::Config { .. } | Command::Ref { .. } | Command::Completion { .. } => None,
            Command::Gc(_) | Command::Scrub(_) | Command::Client(_) | Command::Lifecycle(_) => {
                Some("warn")
            }
        }
    }
}

fn init_logging(filter: Option<&str>, default: &str) {
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("OCIREG_LOG").ok())
        .unwrap_or_else(|| default.to_owned());
    let env = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: `serve 2>file`, the log file `up` writes and so `ocireg logs`
    // get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .init();
}

/// Freed heap memory each arena keeps for reuse (see `ocireg_sys::tune_allocator`).
const HEAP_TRIM_THRESHOLD: usize = 8 << 20;
/// Allocations up to this size come from the heap, not from their own mapping.
const HEAP_MMAP_THRESHOLD: usize = 32 << 20;
/// Heap arenas (glibc's default is 8 per core): bounds the memory the trim threshold keeps.
const HEAP_ARENAS: usize = 2;

/// The command line: the derived one with the help table applied (examples, `-q` per command).
fn cli_command() -> clap::Command {
    help::command(<Cli as clap::CommandFactory>::command())
}

/// Parses the arguments. A usage error exits 2; with `--json` among the arguments it is printed
/// as a JSON error on stdout (help and version print as usual).
fn parse() -> Cli {
    let parsed = cli_command()
        .try_get_matches()
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
    match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let json = std::env::args_os().any(|a| a == "--json");
            let shown = matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayVersion
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if json && !shown {
                let err = exit::coded(exit::Exit::Usage, anyhow::anyhow!("{}", clap_message(&e)));
                println!("{}", exit::json_error(&err));
                std::process::exit(exit::Exit::Usage.code());
            }
            e.exit()
        }
    }
}

/// clap's message for a usage error without its `error: ` prefix and usage lines.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("").trim();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

fn main() -> ExitCode {
    ocireg_sys::tune_allocator(HEAP_TRIM_THRESHOLD, HEAP_MMAP_THRESHOLD, HEAP_ARENAS);
    let cli = parse();
    if let Some(level) = cli.command.default_log_level() {
        init_logging(cli.log.as_deref(), level);
    }
    let json_errors = cli.command.json_errors();
    let config = cli.config.as_deref();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, config),
        Command::Config { cmd } => config_cmd::run(cmd, cli.config),
        Command::Ref { cmd } => config_cmd::run_ref(cmd),
        Command::Gc(args) => gc_cmd::run(args, config),
        Command::Scrub(args) => scrub_cmd::run(args, config),
        Command::Client(cmd) => client_cmd::run(cmd, config),
        Command::Lifecycle(cmd) => lifecycle_cmd::run(cmd, config),
        Command::Completion { shell } => {
            let mut cmd = cli_command();
            clap_complete::generate(shell, &mut cmd, "ocireg", &mut std::io::stdout());
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            if json_errors {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&exit::json_error(&err)).unwrap_or_default()
                );
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(u8::try_from(exit::code_of(&err).code()).unwrap_or(1))
        }
    }
}
