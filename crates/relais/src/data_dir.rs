//! The data directory holds the SQLite database, the admin key and the master key: it is its
//! owner's alone. `relais` runs with umask 077, so what it creates there is 0600 (0700 for
//! directories); `relais serve` also tightens a directory and files left open by an older
//! version or by hand, and says so.

use anyhow::Context;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Permission bits for anyone but the owner.
const OTHERS: u32 = 0o077;

/// Creates `dir` (0700) or takes away what others may do in it and with its files.
pub fn secure(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()));
    }
    let mut tightened = Vec::new();
    if restrict(dir)? {
        tightened.push(dir.display().to_string());
    }
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the data directory {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let path = entry.path();
        // Not followed: a link may point anywhere, and Relais never makes one.
        let is_file = std::fs::symlink_metadata(&path)
            .map(|m| m.file_type().is_file())
            .unwrap_or(false);
        if is_file && restrict(&path)? {
            tightened.push(path.display().to_string());
        }
    }
    if !tightened.is_empty() {
        tracing::warn!(
            paths = %tightened.join(", "),
            "the data directory and its files were readable by other users: now only by their owner"
        );
    }
    Ok(())
}

/// Takes away every access others had to `path` (the owner's own bits stay: a data
/// directory pointed at a folder with other files must not lose their execute bits);
/// whether there was any.
fn restrict(path: &Path) -> anyhow::Result<bool> {
    let current = std::fs::metadata(path)
        .with_context(|| format!("cannot read the permissions of {}", path.display()))?
        .permissions()
        .mode();
    if current & OTHERS == 0 {
        return Ok(false);
    }
    let mode = current & !OTHERS;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_context(|| {
        format!(
            "{} is open to other users (mode {:o}) and cannot be restricted to its owner",
            path.display(),
            current & 0o777
        )
    })?;
    Ok(true)
}
