//! `ocireg completion SHELL`: the script a shell sources, driven by a real bash.

use std::process::Command;

use crate::client_support::OCIREG;
use crate::common::assert_success;

/// What bash completes for the words typed so far, through the script `ocireg completion bash`
/// prints (bash's programmable completion: `COMP_WORDS`/`COMP_CWORD` in, `COMPREPLY` out).
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = format!(
        "source <('{OCIREG}' completion bash)\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"{line}\"; COMP_POINT=${{#COMP_LINE}}\n\
         _ocireg ocireg '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = words.join(" "),
        cword = words.len() - 1,
        line = words.join(" "),
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run bash");
    assert_success(&out, "bash with the completion script");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_commands_and_flags() {
    assert_eq!(bash_completes(&["ocireg", "pu"]), ["push", "pull"]);
    assert_eq!(bash_completes(&["ocireg", "cata"]), ["catalog"]);
    let flags = bash_completes(&["ocireg", "copy", "--fo"]);
    assert_eq!(flags, ["--force"]);
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = Command::new(OCIREG)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("ocireg") && text.contains("push"), "{shell}");
    }
    let bad = Command::new(OCIREG)
        .args(["completion", "cmd.exe"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
