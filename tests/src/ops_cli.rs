//! The real `ops` binary, run as an operator runs it: a process with only the SDK's standard
//! variables pointing at the local stack (nothing inherited, so the machine's own AWS settings
//! cannot leak in), its exit code and output kept for the assertions.

use std::process::Output;

use serde_json::Value;

use crate::paths::workspace_binary;

/// One run of the `ops` binary.
pub struct OpsRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl OpsRun {
    pub fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Every stdout line, parsed as JSON.
    pub fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}\n{self}")))
            .collect()
    }

    /// The one JSON report a subcommand prints.
    pub fn report(&self) -> Value {
        let mut lines = self.lines();
        assert_eq!(lines.len(), 1, "expected one report line:\n{self}");
        lines.remove(0)
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code:\n{self}");
        self
    }

    /// A refusal: exit code 1, nothing on stdout, and a message on stderr containing `needle`.
    pub fn assert_refused(&self, needle: &str) -> &Self {
        self.assert_code(1);
        assert_eq!(self.stdout, "", "a refusal printed a report:\n{self}");
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} on stderr:\n{self}"
        );
        self
    }
}

impl std::fmt::Display for OpsRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The environment of an operator's shell against a local endpoint: the SDK's standard
/// variables only, and a home folder without AWS configuration.
pub fn operator_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        (
            "HOME",
            std::env::temp_dir().join("ops-e2e-no-home").display().to_string(),
        ),
    ]
}

/// `ops ARGS` with exactly the environment `env`.
pub async fn run(env: &[(&str, String)], args: &[&str]) -> OpsRun {
    let binary = workspace_binary("ops").unwrap_or_else(|err| panic!("{err:#}"));
    let output = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .output()
        .await
        .expect("ops runs");
    OpsRun::from(output)
}
