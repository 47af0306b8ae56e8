//! What the deploy-script tests share: the repository root, fake command-line tools that log
//! their calls, and running a script with a clean environment.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A fake tool's script: it appends its name and arguments to `log`, then runs `body`.
pub(crate) fn logging_script(log: &Path, body: &str) -> String {
    format!("#!/bin/sh\nprintf '%s\\n' \"${{0##*/}} $*\" >> '{}'\n{body}\n", log.display())
}

/// Writes each `(name, script)` into `dir` as an executable.
pub(crate) fn install_tools(dir: &Path, tools: Vec<(&str, String)>) {
    for (name, body) in tools {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The calls the fake tools logged, one line each.
pub(crate) fn logged_calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// Runs `scripts/{script}` from `home` with PATH, HOME and the given variables only.
pub(crate) fn run_script(
    script: &str,
    path: &[&Path],
    home: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let path = path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
    Command::new(root().join("scripts").join(script))
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .envs(env.iter().copied())
        .current_dir(home)
        .output()
        .unwrap()
}
