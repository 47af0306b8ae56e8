//! The running stack's address book: `up` writes where everything listens to a small JSON
//! file so `invoke` and `demo` (in another terminal) can find it; the file is removed on
//! shutdown and ignored when the process that wrote it is gone.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::plan::Emulators;

/// What another devstack command needs to reach a running stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningStack {
    pub pid: u32,
    pub project: String,
    pub emulators: Emulators,
    /// Function name -> base URL.
    pub functions: BTreeMap<String, String>,
    pub manifest: PathBuf,
    /// The fake payment provider's base URL.
    #[serde(default)]
    pub provider: Option<String>,
    /// The fake FCM's base URL (`testkit::fake_fcm`).
    #[serde(default)]
    pub fcm: Option<String>,
}

/// Where the file lives.
pub fn path() -> PathBuf {
    std::env::temp_dir().join("hearth-devstack").join("running.json")
}

impl RunningStack {
    /// Writes the file.
    pub fn write(&self) -> std::io::Result<()> {
        let path = path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }

    /// The running stack, if the file exists and its process is alive.
    pub fn load() -> Option<Self> {
        let text = std::fs::read(path()).ok()?;
        let stack: Self = serde_json::from_slice(&text).ok()?;
        alive(stack.pid).then_some(stack)
    }

    /// Removes the file if this process wrote it.
    pub fn remove_own() {
        if let Some(stack) = Self::load()
            && stack.pid == std::process::id()
        {
            let _ = std::fs::remove_file(path());
        }
    }
}

fn alive(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_follows_the_process() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX - 1));
    }
}
