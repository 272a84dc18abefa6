//! What `--help` adds to the derived command line: an `EXAMPLES:` section for every command and
//! the per-command meaning of `-q`, kept in one table so that the commands read alike. A command
//! that sets its own `after_help` keeps it.

use clap::Command;

/// One command's additions: its path below `ocireg`, what `-q` prints (for commands that have
/// it), and its examples (one per line, `# what it does` comments allowed; empty for a command
/// that keeps its examples beside its flags in `after_help`).
struct Entry {
    path: &'static str,
    quiet: Option<&'static str>,
    examples: &'static str,
}

const ENTRIES: &[Entry] = &[
    Entry {
        path: "",
        quiet: None,
        examples: "ocireg config init > ocireg.yaml && ocireg --config ocireg.yaml up\n\
                   ocireg push extension ./my-provider --version 1.2.0\n\
                   ocireg tags provisioning-extensions/my-provider\n\
                   (every command with examples, the exit codes and the environment: docs/cli.md)",
    },
    Entry {
        path: "serve",
        quiet: None,
        examples: "ocireg serve                                  # the registry of the config, on 127.0.0.1:5000\n\
                   ocireg serve --listen 127.0.0.1:5001 --root /tmp/reg",
    },
    Entry {
        path: "config",
        quiet: None,
        examples: "ocireg config init > ocireg.yaml\n\
                   ocireg --config ocireg.yaml config validate",
    },
    Entry {
        path: "config validate",
        quiet: None,
        examples: "ocireg config validate ocireg.yaml\n\
                   ocireg config validate --schema LocalHTTPConfig http.yaml",
    },
    Entry {
        path: "config show",
        quiet: None,
        examples: "ocireg --config ocireg.yaml config show --format json",
    },
    Entry {
        path: "config init",
        quiet: None,
        examples: "ocireg config init > ocireg.yaml\n\
                   ocireg config init --deployment remote --type zot -o remote.yaml",
    },
    Entry {
        path: "config schema",
        quiet: None,
        examples: "ocireg config schema > ocireg.schema.json",
    },
    Entry {
        path: "config render",
        quiet: None,
        examples: "ocireg --config ocireg.yaml config render --type zot -o zot.json",
    },
    Entry {
        path: "ref",
        quiet: None,
        examples: "ocireg ref parse 127.0.0.1:5000/provisioning-extensions/tool:v1",
    },
    Entry {
        path: "ref parse",
        quiet: None,
        examples: "ocireg ref parse 127.0.0.1:5000/provisioning-extensions/tool:v1",
    },
    Entry {
        path: "gc",
        quiet: None,
        examples: "ocireg gc --dry-run                           # report only\n\
                   ocireg gc --delete-untagged --json",
    },
    Entry {
        path: "scrub",
        quiet: None,
        examples: "ocireg scrub\n\
                   ocireg scrub --root /srv/registry --json",
    },
    Entry {
        path: "push",
        quiet: Some("Print only the manifest digest, no progress"),
        examples: "ocireg push extension ./my-provider --version 1.2.0\n\
                   ocireg push custom:tools ./bin/tool tool:v1 -a org.example.team=infra\n\
                   ocireg push extension ./my-provider --registry reg.example.com -u ci --password-stdin < pw.txt",
    },
    Entry {
        path: "pull",
        quiet: Some("Print only the manifest digest, no progress"),
        examples: "ocireg pull provisioning-extensions/my-provider:v1.2.0 -o ./out\n\
                   ocireg pull 127.0.0.1:5000/provisioning-extensions/my-provider@sha256:<hex>\n\
                   ocireg pull provisioning-extensions/my-provider:v1 --registry reg.example:5000 --plain-http",
    },
    Entry {
        path: "tags",
        quiet: Some("Print only the tags, one a line"),
        examples: "ocireg tags provisioning-extensions/my-provider\n\
                   ocireg tags provisioning-extensions/my-provider -n 10 --last v1.0.0\n\
                   ocireg tags team/app --registry reg.example.com -u me",
    },
    Entry {
        path: "catalog",
        quiet: Some("Print only the repository names, one a line"),
        examples: "ocireg catalog\n\
                   ocireg catalog 127.0.0.1:5001                 # the same as --registry 127.0.0.1:5001\n\
                   ocireg catalog --registry reg.example.com --insecure --json",
    },
    Entry {
        path: "inspect",
        quiet: Some("Print only the manifest digest"),
        examples: "ocireg inspect provisioning-extensions/my-provider:v1.2.0\n\
                   ocireg inspect 127.0.0.1:5000/team/app@sha256:<hex> --json",
    },
    Entry {
        path: "rm",
        quiet: Some("Print only the digest of the manifest the tag pointed to or that was deleted"),
        examples: "ocireg rm provisioning-extensions/my-provider:v1.2.0          # removes the tag only\n\
                   ocireg rm provisioning-extensions/my-provider@sha256:<hex>    # deletes the manifest and its tags",
    },
    Entry {
        path: "copy",
        quiet: Some("Print only the manifest digest, no progress"),
        examples: "ocireg copy team/app:v1 team/app:stable\n\
                   ocireg copy 127.0.0.1:5000/team/app:v1 reg.example.com/team/app --force",
    },
    Entry {
        path: "login",
        quiet: Some("Print nothing on success"),
        examples: "ocireg login reg.example.com -u alice                   # asks for the password\n\
                   echo \"$TOKEN\" | ocireg login reg.example.com -u ci --password-stdin\n\
                   ocireg login -u alice --no-verify                      # the configured registry",
    },
    Entry {
        path: "logout",
        quiet: Some("Print nothing"),
        examples: "ocireg logout reg.example.com\n\
                   ocireg logout                                  # the configured registry",
    },
    Entry {
        path: "search",
        quiet: Some("Print only `registry/repository@digest` of each result, one a line"),
        examples: "ocireg search provider --artifact-type application/vnd.provisioning.extension.v1+tar\n\
                   ocireg search --tag 'v1.*' -a org.opencontainers.image.version=1.2.0\n\
                   ocireg search -n 20 --last <cursor> --json",
    },
    Entry {
        path: "up",
        quiet: None,
        examples: "ocireg up\n\
                   ocireg --config ocireg.yaml up --wait 60",
    },
    Entry {
        path: "down",
        quiet: None,
        examples: "ocireg down\n\
                   ocireg down --timeout 5",
    },
    Entry {
        path: "status",
        quiet: None,
        examples: "ocireg status\n\
                   ocireg status --json",
    },
    Entry {
        path: "logs",
        quiet: None,
        examples: "ocireg logs --tail 50\n\
                   ocireg logs -f                                 # follow, from the last 10 lines",
    },
    Entry {
        path: "tag",
        quiet: Some("Print only the manifest's digest, no progress"),
        examples: "",
    },
    Entry {
        path: "digest",
        quiet: Some("Print only the digest (the default output too)"),
        examples: "",
    },
    Entry {
        path: "manifest",
        quiet: None,
        examples: "ocireg manifest get team/app:1.2.0 --pretty",
    },
    Entry {
        path: "blob",
        quiet: None,
        examples: "ocireg blob get team/app@sha256:<hex> -o layer.tar.gz",
    },
    Entry {
        path: "blob get",
        quiet: Some("Print only the blob's digest, no progress"),
        examples: "",
    },
    Entry {
        path: "attach",
        quiet: Some("Print only the digest of the referrer manifest, no progress"),
        examples: "",
    },
    Entry {
        path: "discover",
        quiet: Some("Print only the referrers' digests, one per line"),
        examples: "",
    },
    Entry {
        path: "repo",
        quiet: None,
        examples: "ocireg repo delete team/old-app --yes",
    },
    Entry {
        path: "repo delete",
        quiet: Some("Print only the repository deleted"),
        examples: "",
    },
    Entry {
        path: "completion",
        quiet: None,
        examples: "source <(ocireg completion bash)\n\
                   ocireg completion zsh > ~/.zfunc/_ocireg",
    },
];

/// The examples section as help prints it.
fn section(examples: &str) -> String {
    let body: Vec<String> = examples
        .lines()
        .map(|l| format!("  {}", l.trim_start()))
        .collect();
    format!("EXAMPLES:\n{}", body.join("\n"))
}

/// Applies the table to `cmd` and its subcommands (`prefix` is its path).
fn apply(mut cmd: Command, prefix: &str) -> Command {
    if let Some(e) = ENTRIES.iter().find(|e| e.path == prefix) {
        if cmd.get_after_help().is_none() {
            cmd = cmd.after_help(section(e.examples));
        }
        if let Some(q) = e.quiet {
            if cmd.get_arguments().any(|a| a.get_id() == "quiet") {
                cmd = cmd.mut_arg("quiet", |a| a.help(q));
            }
        }
    }
    // `-n` is a count on every command: at most N items (tags, search), the last N lines
    // (logs, spelled `--tail` as docker spells it; `--lines` still works).
    if prefix == "logs" && cmd.get_arguments().any(|a| a.get_id() == "lines") {
        cmd = cmd.mut_arg("lines", |a| a.long("tail").alias("lines"));
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix} {name}")
        };
        cmd = cmd.mut_subcommand(name, |sub| apply(sub, &path));
    }
    cmd
}

/// The command line with the table applied.
pub fn command(cmd: Command) -> Command {
    apply(cmd, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command (the `help` pseudo-command aside) shows an EXAMPLES section.
    fn missing(cmd: &mut Command, path: &str, out: &mut Vec<String>) {
        let help = cmd.render_long_help().to_string();
        if !help.contains("EXAMPLES:") {
            out.push(path.to_owned());
        }
        for sub in cmd.get_subcommands_mut() {
            if sub.get_name() == "help" {
                continue;
            }
            let p = format!("{path} {}", sub.get_name()).trim().to_owned();
            missing(sub, &p, out);
        }
    }

    #[test]
    fn every_command_has_examples() {
        let mut cmd = crate::cli_command();
        cmd.build();
        let mut out = Vec::new();
        missing(&mut cmd, "", &mut out);
        assert!(out.is_empty(), "no EXAMPLES section in: {out:?}");
    }

    #[test]
    fn every_table_entry_names_a_command() {
        let cmd = crate::cli_command();
        for e in ENTRIES.iter().filter(|e| !e.path.is_empty()) {
            let mut c = &cmd;
            for part in e.path.split(' ') {
                c = c
                    .find_subcommand(part)
                    .unwrap_or_else(|| panic!("no command {:?}", e.path));
            }
        }
    }

    #[test]
    fn quiet_help_is_per_command() {
        let mut cmd = crate::cli_command();
        cmd.build();
        let tags = cmd.find_subcommand_mut("tags").expect("tags").render_help();
        assert!(tags.to_string().contains("Print only the tags"), "{tags}");
        assert!(!tags.to_string().contains("push/pull/copy"));
        let logs = cmd.find_subcommand_mut("logs").expect("logs").render_help();
        assert!(logs.to_string().contains("-n, --tail <N>"), "{logs}");
    }
}
