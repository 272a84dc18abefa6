//! What answers on a registry's address, whoever started it: the built-in engine names itself
//! in its `Server` header (`ocireg/<version>`), zot answers its discovery extension, and
//! Distribution sends only `Docker-Distribution-API-Version`. A native registry's version is
//! that of the executable listening on the port (found through `/proc`), when visible.

use std::path::PathBuf;
use std::time::Duration;

use crate::owner::EngineId;
use crate::{probe, process};

/// The `Server` header value prefix of the built-in engine.
const BUILTIN_SERVER: &str = "ocireg/";

/// The registry that answered a probe.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Answering {
    /// The engine, when the answer names it.
    pub engine: Option<EngineId>,
    /// Its version (the built-in engine's header, else the listening executable's `--version`).
    pub version: Option<String>,
    /// Its `Docker-Distribution-API-Version` header.
    pub api_version: Option<String>,
    /// The executable listening on the port, when this user may see it.
    pub program: Option<PathBuf>,
}

impl Answering {
    /// "the built-in engine (ocireg 0.1.0)", "Distribution (version unknown)", ...
    pub fn describe(&self) -> String {
        let who = self
            .engine
            .map_or("an unidentified registry", EngineId::describe);
        match &self.version {
            Some(v) => format!("{who} ({v})"),
            None => format!("{who} (version unknown)"),
        }
    }
}

/// Names the registry that answered `probe_url` (listening on `port`) with these headers.
pub(crate) fn identify(
    probe_url: &str,
    port: u16,
    server: Option<&str>,
    api_version: Option<String>,
) -> Answering {
    if let Some(v) = server.and_then(|s| s.strip_prefix(BUILTIN_SERVER)) {
        return Answering {
            engine: Some(EngineId::Builtin),
            version: Some(format!("ocireg {v}")),
            api_version,
            program: None,
        };
    }
    let zot = matches!(
        probe::status_of(&format!("{probe_url}_zot/ext/discover")),
        Some(200 | 401)
    );
    let engine = if zot {
        Some(EngineId::Zot)
    } else if api_version.is_some() {
        Some(EngineId::Distribution)
    } else {
        None
    };
    let program = listening_program(port);
    let version = match (engine, &program) {
        (Some(_), Some(p)) => process::version_of(p, Duration::from_secs(5)),
        _ => None,
    };
    Answering {
        engine,
        version,
        api_version,
        program,
    }
}

/// The executable of the process listening on TCP `port` (any address), from `/proc`.
fn listening_program(port: u16) -> Option<PathBuf> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    let procs = std::fs::read_dir("/proc").ok()?;
    for p in procs.flatten() {
        let pid_dir = p.path();
        let is_pid = p
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(pid_dir.join("fd")) else {
            continue;
        };
        let owns = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                let t = target.to_string_lossy();
                inodes.iter().any(|i| t == format!("socket:[{i}]"))
            })
        });
        if owns {
            return std::fs::read_link(pid_dir.join("exe")).ok();
        }
    }
    None
}

/// Socket inodes listening on `port` (`/proc/net/tcp` and `tcp6`: state `0A` is LISTEN).
fn listening_inodes(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        out.extend(text.lines().skip(1).filter_map(|l| listener_inode(l, port)));
    }
    out
}

/// The inode of one `/proc/net/tcp` line when it listens on `port`.
fn listener_inode(line: &str, port: u16) -> Option<String> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    let local = cols.get(1)?;
    let hex_port = local.rsplit(':').next()?;
    let listening = cols.get(3) == Some(&"0A");
    (listening && u16::from_str_radix(hex_port, 16).ok()? == port)
        .then(|| cols.get(9).map(|s| (*s).to_owned()))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_give_listening_inodes() {
        let line = "   1: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listener_inode(line, 5000), Some("424242".into()));
        assert_eq!(listener_inode(line, 5001), None);
        let established = line.replace(" 0A ", " 01 ");
        assert_eq!(listener_inode(&established, 5000), None);
    }

    #[test]
    fn a_listener_of_this_process_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(listening_program(port), Some(exe));
    }
}
