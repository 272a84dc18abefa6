//! Path rules shared by packing and unpacking: relative-path validation and confined symlink
//! resolution (a `realpath` that follows the links found in the tree but may never leave it).

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow before it is treated as a loop (Linux's limit).
const MAX_HOPS: u32 = 40;

/// Splits an archive path into normal components. Refuses absolute paths and `..`; drops `.`.
/// An empty result means the path names the root itself (`.` or `./`).
pub(crate) fn safe_relative(path: &Path) -> Result<Vec<OsString>, String> {
    let mut out = Vec::new();
    for comp in path.components() {
        match comp {
            Component::Normal(c) => out.push(c.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains a '..' component".to_owned()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".to_owned()),
        }
    }
    Ok(out)
}

/// Joins `root` and relative components.
pub(crate) fn join(root: &Path, comps: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in comps {
        p.push(c);
    }
    p
}

/// Resolves the symlink target `target`, found in directory `link_dir` (components relative to
/// `root`), against the tree under `root`. Symlinks met on the way are followed (their targets
/// resolved the same way, `..` then applies to the physical path, as the kernel does); a missing
/// component is taken lexically. Returns the resolved components, or why the target is refused:
/// absolute, climbing above `root`, or a loop.
pub(crate) fn confined_resolve(
    root: &Path,
    link_dir: &[OsString],
    target: &Path,
) -> Result<Vec<OsString>, String> {
    let mut hops = 0;
    resolve_inner(root, link_dir.to_vec(), target, &mut hops)
}

fn resolve_inner(
    root: &Path,
    mut cur: Vec<OsString>,
    target: &Path,
    hops: &mut u32,
) -> Result<Vec<OsString>, String> {
    for comp in target.components() {
        match comp {
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("symlink target {} is absolute", target.display()))
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if cur.pop().is_none() {
                    return Err(format!(
                        "symlink target {} points outside the destination",
                        target.display()
                    ));
                }
            }
            Component::Normal(c) => {
                cur.push(c.to_os_string());
                let here = join(root, &cur);
                let is_link = match std::fs::symlink_metadata(&here) {
                    Ok(m) => m.file_type().is_symlink(),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                    Err(e) => return Err(format!("cannot inspect {}: {e}", here.display())),
                };
                if is_link {
                    *hops += 1;
                    if *hops > MAX_HOPS {
                        return Err("too many levels of symbolic links (loop)".to_owned());
                    }
                    let next = std::fs::read_link(&here)
                        .map_err(|e| format!("cannot read link {}: {e}", here.display()))?;
                    cur.pop();
                    cur = resolve_inner(root, cur, &next, hops)?;
                }
            }
        }
    }
    Ok(cur)
}

/// Lossy display of relative components joined by `/` (for messages).
pub(crate) fn display(comps: &[OsString]) -> String {
    comps
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
