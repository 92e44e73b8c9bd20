//! A missing prerequisite fails with a message that names it, never a silent skip.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use e2e::paths::workspace_root;

/// Runs `scripts/setup` with a PATH holding only the tools it needs besides `missing`.
fn setup_without(missing: &str) -> std::process::Output {
    let bin = std::env::temp_dir().join(format!("cus-path-{}-{missing}", std::process::id()));
    let _ = std::fs::remove_dir_all(&bin);
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["bash", "dirname", "sha256sum", "cut", "cat", "cargo", "python3"] {
        if tool == missing {
            continue;
        }
        let found = which(tool).unwrap_or_else(|| panic!("{tool} is needed to run this test"));
        symlink(found, bin.join(tool)).unwrap();
    }
    let output = Command::new(bin.join("bash"))
        .arg(workspace_root().join("scripts/setup"))
        .env("PATH", &bin)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&bin);
    output
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|candidate| candidate.is_file())
}

#[test]
fn setup_without_python3_fails_naming_it() {
    let output = setup_without("python3");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("python3 is not on the PATH"), "{stderr}");
}

#[test]
fn setup_without_cargo_fails_naming_it() {
    let output = setup_without("cargo");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cargo is not on the PATH"), "{stderr}");
}

#[test]
fn the_demo_without_the_virtualenv_fails_naming_the_fix() {
    let demo = e2e::paths::workspace_binary("demo").expect("the demo binary is built");
    let output = Command::new(demo)
        .env("COGNITO_SYNC_VENV", std::env::temp_dir().join("cus-no-such-venv"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("the local stack is not installed") && stderr.contains("scripts/setup"),
        "{stderr}"
    );
}
