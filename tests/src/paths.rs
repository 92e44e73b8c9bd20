//! Where the workspace, the project's virtualenv and the built binaries are.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The workspace root (the folder with the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The Python of the project's virtualenv (`.venv`, made by `scripts/setup`), or of
/// `COGNITO_SYNC_VENV` when set.
pub fn venv_python() -> Result<PathBuf> {
    let venv = std::env::var_os("COGNITO_SYNC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"));
    let python = venv.join("bin").join("python");
    if !python.exists() {
        bail!(
            "the local stack is not installed: {} does not exist. Run `scripts/setup` (it needs \
             python3 with venv and pip) or use `scripts/test` / `scripts/demo`, which run it",
            python.display()
        );
    }
    Ok(python)
}

/// A binary of this workspace, built by cargo beside the running executable.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running executable")?;
    let mut dir = exe.parent().context("executable has no folder")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join(name);
    if !binary.exists() {
        bail!(
            "binary `{name}` not found at {}: build the workspace binaries first (`cargo build --bins`; \
             scripts/test and scripts/demo do)",
            binary.display()
        );
    }
    Ok(binary)
}

/// A folder for this run's logs, under `target/e2e-logs/`.
pub fn log_dir(label: &str) -> PathBuf {
    let dir = workspace_root().join("target").join("e2e-logs").join(label);
    let _ = std::fs::create_dir_all(&dir);
    dir
}
