//! The benchmark's harness places a function as Lambda would: the memory setting it is told,
//! the CPU share of that memory, and the times it reports (init, each invocation). And the
//! build keeps the first TLS handshake cheap: the functions' crypto takes its entropy from the
//! kernel, not from aws-lc's CPU Jitter collector (docs/performance.md).

use std::collections::HashMap;
use std::time::Duration;

use e2e::cpu_share::{CpuShare, DEFAULT_PERIOD};
use e2e::paths::{log_dir, workspace_binary};
use e2e::runtime_api::{LambdaFunction, Placement};
use serde_json::json;

#[tokio::test]
async fn a_placed_function_runs_in_its_cpu_share_with_its_memory_setting_and_reports_its_times() {
    let share = CpuShare::create(256, DEFAULT_PERIOD).unwrap_or_else(|err| {
        panic!("this test needs a writable cgroup-v1 cpu controller (run as root): {err}")
    });
    assert!(
        (share.fraction() - 256.0 / 1769.0).abs() < 0.001,
        "{}",
        share.fraction()
    );
    let function = LambdaFunction::start_placed(
        "placed-runtime-only",
        &workspace_binary("runtime_only").unwrap(),
        &HashMap::new(),
        Duration::from_secs(5),
        &log_dir("lambda-placement"),
        Placement {
            memory_mb: Some(256),
            cgroup_procs: Some(share.procs_file()),
            ..Placement::default()
        },
    )
    .await
    .unwrap();

    let payload = json!({"echo": "me"});
    let (answer, times) = function.invoke_timed(&payload).await;
    assert_eq!(answer.unwrap(), payload);
    let own = times.own().expect("delivery and answer are timed");
    let process = function.process_times().expect("the process is timed");
    let init = process.init().expect("the first poll is timed");
    assert!(
        times.delivered.unwrap() >= process.first_poll.unwrap() && own > Duration::ZERO,
        "{times:?} {process:?}"
    );
    assert!(init > Duration::ZERO);

    let pid = function.pid().expect("running");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let cpu_group = cgroups
        .lines()
        .find(|line| {
            line.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "cpu"))
        })
        .unwrap_or_else(|| panic!("no cpu controller line in {cgroups}"));
    let dir = share
        .procs_file()
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        cpu_group.ends_with(&format!("/{dir}")),
        "{cpu_group} is not the share {dir}"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|var| var == b"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256"),
        "the function is not told its memory setting"
    );
    drop(function);
}

#[tokio::test]
async fn the_timeout_runs_from_delivery_so_a_slow_init_does_not_eat_the_first_invocation() {
    // Lambda bounds an on-demand init by its own 10 s limit and starts the function's timeout
    // when the invoke phase begins. A process that takes 1.5 s to start, with a 1 s timeout,
    // still answers its first invocation, in the same process.
    let function = LambdaFunction::start_placed(
        "slow-init-runtime-only",
        &workspace_binary("runtime_only").unwrap(),
        &HashMap::new(),
        Duration::from_secs(1),
        &log_dir("lambda-placement"),
        Placement {
            launcher: ["sh", "-c", "sleep 1.5; exec \"$0\""]
                .map(std::ffi::OsString::from)
                .to_vec(),
            ..Placement::default()
        },
    )
    .await
    .unwrap();
    let payload = json!({"echo": "after a slow init"});
    let (answer, times) = function.invoke_timed(&payload).await;
    assert_eq!(answer.unwrap(), payload);
    let init = function.process_times().and_then(|p| p.init()).expect("timed");
    assert!(
        init >= Duration::from_millis(1500),
        "the launcher did not delay init: {init:?}"
    );
    assert!(times.own().unwrap() < Duration::from_secs(1), "{times:?}");
    assert_eq!(function.starts(), 1, "not killed during its init");
}

#[test]
fn the_functions_are_built_without_the_cpu_jitter_entropy_collector() {
    // Dev builds keep their symbol table: the collector's entry point is there when aws-lc is
    // built with it (AWS_LC_SYS_NO_JITTER_ENTROPY unset), and absent when not.
    for name in ["trigger", "consumer"] {
        let binary = std::fs::read(workspace_binary(name).unwrap()).unwrap();
        let needle = b"jent_entropy_collector_alloc";
        assert!(
            !binary.windows(needle.len()).any(|w| w == needle),
            "{name} links aws-lc's CPU Jitter entropy collector: .cargo/config.toml must set \
             AWS_LC_SYS_NO_JITTER_ENTROPY=1 (with it, the first TLS handshake spends most of its CPU there)"
        );
    }
}
