//! `ocireg config validate|show|init|schema` and `ocireg ref parse`.
//!
//! Wiring in main.rs: `mod config_cmd;`, a variant `Config { #[command(subcommand)] cmd:
//! config_cmd::ConfigCmd }` calling `config_cmd::run(cmd, cli.config)`, and a variant
//! `Ref { #[command(subcommand)] cmd: config_cmd::RefCmd }` calling `config_cmd::run_ref(cmd)`.
//! Both return the process exit code.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand, ValueEnum};
use ocireg_config as cfg;
use serde_json::Value;

use crate::exit::{self, Exit};

/// `ocireg config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate a config (exit 0 valid; 3 empty, unparseable or invalid, with every error on
    /// stderr; 4 unreadable; 2 usage, e.g. an unknown --schema).
    Validate {
        /// Config file (`-` = stdin). Default: --config, then $OCIREG_CONFIG, then
        /// ~/.provisioning/oci-registry/ocireg.yaml, else the built-in defaults.
        file: Option<PathBuf>,
        /// Validate an instance of one seed schema (e.g. LocalHTTPConfig) instead of a document.
        #[arg(long, value_name = "NAME")]
        schema: Option<String>,
    },
    /// Print the effective config: every default and computed field filled in.
    Show {
        /// Config file (`-` = stdin); default as for `validate`.
        file: Option<PathBuf>,
        /// Show an instance of one seed schema instead of a document.
        #[arg(long, value_name = "NAME")]
        schema: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Yaml)]
        format: ShowFormat,
    },
    /// Write a commented starter config (solo mode by default).
    Init {
        /// Deployment.
        #[arg(long, default_value = "local",
              value_parser = PossibleValuesParser::new(cfg::Deployment::VALUES.iter().copied()))]
        deployment: String,
        /// Registry implementation.
        #[arg(long = "type", default_value = "distribution",
              value_parser = PossibleValuesParser::new(cfg::RegistryType::VALUES.iter().copied()))]
        registry_type: String,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Overwrite an existing --output file.
        #[arg(long)]
        force: bool,
    },
    /// Print the JSON Schema (draft 2020-12) of the config document.
    Schema,
    /// Print the native zot or Distribution config rendered from this config (nothing is started).
    Render(crate::lifecycle_cmd::RenderArgs),
}

/// Output formats of `config show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// YAML
    Yaml,
    /// JSON
    Json,
    /// TOML
    Toml,
}

impl From<ShowFormat> for cfg::OutputFormat {
    fn from(f: ShowFormat) -> Self {
        match f {
            ShowFormat::Yaml => cfg::OutputFormat::Yaml,
            ShowFormat::Json => cfg::OutputFormat::Json,
            ShowFormat::Toml => cfg::OutputFormat::Toml,
        }
    }
}

/// `ocireg ref ...`
#[derive(Debug, Subcommand)]
pub enum RefCmd {
    /// Print the OCIArtifactReference fields of a reference as JSON.
    Parse(RefParseArgs),
}

/// `ocireg ref parse REF`
#[derive(Debug, Args)]
pub struct RefParseArgs {
    /// `registry/namespace/repository[:tag][@digest]`
    pub reference: String,
}

/// Where the config comes from.
enum Source {
    Stdin,
    File(PathBuf),
    Builtin,
}

impl Source {
    fn resolve(file: Option<PathBuf>, global: Option<&Path>) -> Source {
        let chosen = file.or_else(|| cfg::resolve_config_path(global));
        match chosen {
            Some(p) if p.as_os_str() == "-" => Source::Stdin,
            Some(p) => Source::File(p),
            None => Source::Builtin,
        }
    }

    fn label(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::File(p) => p.display().to_string(),
            Source::Builtin => "<built-in defaults>".into(),
        }
    }

    /// The effective config: a document, or an instance of `schema` (callers reject `--schema`
    /// with the built-in defaults).
    fn effective(&self, schema: Option<&str>) -> Result<Value, cfg::ConfigError> {
        let raw = match self {
            Source::Builtin => return Ok(cfg::to_json_value(&cfg::default_document())),
            other => other.raw()?,
        };
        match schema {
            Some(name) => cfg::validate_schema(name, raw),
            None => cfg::document_from_value(&raw).map(|d| cfg::to_json_value(&d)),
        }
    }

    /// The parsed, not yet validated, file or stdin (`Builtin` gives the default document).
    fn raw(&self) -> Result<Value, cfg::ConfigError> {
        Ok(match self {
            Source::Stdin => {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|source| cfg::ConfigError::Io {
                        path: "-".into(),
                        source,
                    })?;
                cfg::read_value_from(text.as_bytes(), None)?
            }
            Source::File(p) => cfg::read_value(p)?,
            Source::Builtin => cfg::to_json_value(&cfg::default_document()),
        })
    }
}

/// The config document the other commands run with: `--config`, `$OCIREG_CONFIG`, the default
/// location, else the built-in defaults.
pub fn load_document(global: Option<&Path>) -> Result<cfg::Document, cfg::ConfigError> {
    match Source::resolve(None, global) {
        Source::Builtin => Ok(cfg::default_document()),
        source => cfg::document_from_value(&source.raw()?),
    }
}

/// The document [`load_document`] finds, or an error that says why it is unusable (and exits
/// with the config error's code).
pub fn load_valid_document(global: Option<&Path>) -> anyhow::Result<cfg::Document> {
    load_document(global).map_err(|err| {
        let message = match &err {
            cfg::ConfigError::Invalid(_) => {
                let label = Source::resolve(None, global).label();
                format!("invalid config {label}:\n{err}")
            }
            other => other.to_string(),
        };
        exit::coded(exit::config_exit(&err), anyhow::Error::msg(message))
    })
}

/// The exit code for a config error (the table in `exit.rs`): 3 empty, unparseable or invalid,
/// 4 unreadable, 2 an unknown schema name or a malformed reference.
pub fn exit_code(e: &cfg::ConfigError) -> i32 {
    exit::config_exit(e).code()
}

/// Prints `e` on stderr (every field error on its own line, each hint after its error) and
/// returns its exit code.
fn report(e: &cfg::ConfigError) -> i32 {
    match e {
        cfg::ConfigError::Invalid(_) => eprintln!("{e}"),
        other => eprintln!("error: {other}"),
    }
    exit_code(e)
}

/// Runs `ocireg config ...`; `global_config` is the global `--config FILE`. Returns the exit code.
pub fn run(cmd: ConfigCmd, global_config: Option<PathBuf>) -> anyhow::Result<i32> {
    match cmd {
        ConfigCmd::Validate { file, schema } => {
            let source = Source::resolve(file, global_config.as_deref());
            if schema.is_some() && matches!(source, Source::Builtin) {
                eprintln!("error: --schema needs a FILE (or - for stdin)");
                return Ok(Exit::Usage.code());
            }
            match source.effective(schema.as_deref()) {
                Ok(_) => {
                    println!("ok: {}", source.label());
                    Ok(0)
                }
                Err(e) => Ok(report(&e)),
            }
        }
        ConfigCmd::Show {
            file,
            schema,
            format,
        } => {
            let source = Source::resolve(file, global_config.as_deref());
            if schema.is_some() && matches!(source, Source::Builtin) {
                eprintln!("error: --schema needs a FILE (or - for stdin)");
                return Ok(Exit::Usage.code());
            }
            let value = match source.effective(schema.as_deref()) {
                Ok(v) => v,
                Err(e) => return Ok(report(&e)),
            };
            match cfg::render(&value, format.into()) {
                Ok(text) => {
                    print!("{text}");
                    Ok(0)
                }
                Err(e) => Ok(report(&e)),
            }
        }
        ConfigCmd::Init {
            deployment,
            registry_type,
            output,
            force,
        } => {
            let opts = cfg::InitOptions {
                deployment: deployment.parse().map_err(anyhow::Error::msg)?,
                registry_type: registry_type.parse().map_err(anyhow::Error::msg)?,
            };
            let text = cfg::init_template(opts);
            let Some(path) = output else {
                print!("{text}");
                return Ok(0);
            };
            if path.exists() && !force {
                eprintln!(
                    "error: {} already exists (use --force to overwrite)",
                    path.display()
                );
                return Ok(Exit::Conflict.code());
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(0)
        }
        ConfigCmd::Render(args) => crate::lifecycle_cmd::run_render(args, global_config.as_deref()),
        ConfigCmd::Schema => {
            let text = serde_json::to_string_pretty(&cfg::json_schema())?;
            println!("{text}");
            Ok(0)
        }
    }
}

/// Runs `ocireg ref ...`. Returns the exit code.
pub fn run_ref(cmd: RefCmd) -> anyhow::Result<i32> {
    match cmd {
        RefCmd::Parse(args) => run_ref_parse(args),
    }
}

/// Runs `ocireg ref parse REF`: the fields as pretty JSON, or exit 2 (a malformed reference)
/// with the errors.
pub fn run_ref_parse(args: RefParseArgs) -> anyhow::Result<i32> {
    match cfg::parse_artifact_reference(&args.reference) {
        Ok(r) => {
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(0)
        }
        Err(e) => {
            report(&e);
            Ok(Exit::Usage.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ocireg-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn validate(file: &Path, schema: Option<&str>) -> i32 {
        let cmd = ConfigCmd::Validate {
            file: Some(file.to_path_buf()),
            schema: schema.map(str::to_string),
        };
        run(cmd, None).unwrap()
    }

    #[test]
    fn validate_exit_codes() {
        let d = temp_dir("validate");
        let good = d.join("good.yaml");
        std::fs::write(
            &good,
            "registry: {deployment: disabled, type: zot, endpoint: e, namespaces: {}}\n",
        )
        .unwrap();
        let bad = d.join("bad.yaml");
        std::fs::write(
            &bad,
            "registry: {deployment: disabled, type: zot, endpoint: e, port: 0, namespaces: {}}\n",
        )
        .unwrap();
        let broken = d.join("broken.json");
        std::fs::write(&broken, "{").unwrap();
        let http = d.join("http.json");
        std::fs::write(&http, "{\"listen_port\": 65536}").unwrap();
        let empty = d.join("empty.yaml");
        std::fs::write(&empty, "\n# nothing yet\n").unwrap();
        assert_eq!(validate(&good, None), 0);
        assert_eq!(validate(&bad, None), 3);
        assert_eq!(validate(&broken, None), 3);
        assert_eq!(validate(&empty, None), 3);
        assert_eq!(validate(&d.join("missing.yaml"), None), 4);
        assert_eq!(validate(&http, Some("LocalHTTPConfig")), 3);
        assert_eq!(validate(&http, Some("NoSuchSchema")), 2);
        assert_eq!(
            validate(&good, Some("OCIRegistryConfig")),
            3,
            "a document is not a bare registry"
        );
        // The global --config is used when no FILE is given.
        let cmd = ConfigCmd::Validate {
            file: None,
            schema: None,
        };
        assert_eq!(run(cmd, Some(bad.clone())).unwrap(), 3);
        let cmd = ConfigCmd::Show {
            file: None,
            schema: None,
            format: ShowFormat::Toml,
        };
        assert_eq!(run(cmd, Some(good.clone())).unwrap(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn init_writes_valid_configs_and_refuses_to_overwrite() {
        let d = temp_dir("init");
        let out = d.join("sub/ocireg.yaml");
        let init = |force: bool, t: &str| ConfigCmd::Init {
            deployment: "remote".into(),
            registry_type: t.into(),
            output: Some(out.clone()),
            force,
        };
        assert_eq!(run(init(false, "harbor"), None).unwrap(), 0);
        let doc = cfg::load_path(&out).unwrap();
        assert_eq!(doc.registry.r#type, cfg::RegistryType::Harbor);
        assert_eq!(run(init(false, "zot"), None).unwrap(), 9);
        assert_eq!(cfg::load_path(&out).unwrap(), doc, "not overwritten");
        assert_eq!(run(init(true, "zot"), None).unwrap(), 0);
        assert_eq!(
            cfg::load_path(&out).unwrap().registry.r#type,
            cfg::RegistryType::Zot
        );
        assert_eq!(validate(&out, None), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn ref_parse_exit_codes() {
        let parse = |r: &str| {
            run_ref(RefCmd::Parse(RefParseArgs {
                reference: r.into(),
            }))
            .unwrap()
        };
        assert_eq!(parse("localhost:5000/ns/repo:v1"), 0);
        assert_eq!(parse("r/n/p:.bad"), 2);
        assert_eq!(parse("r/n/p@sha256:short"), 2);
        assert_eq!(parse("nothing"), 2);
    }
}
