//! Bad input to any subcommand: a message naming the problem and a non-zero exit.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_with_a_message_naming_the_problem() {
    let pipeline = start("ops_bad_input").await;
    let pool = pipeline.pool.id.clone();
    let unknown_pool = "us-east-1_DoesNotExist1";

    for args in [
        vec!["backfill", "--user-pool-id", unknown_pool],
        vec!["reconcile", "--user-pool-id", unknown_pool],
        vec!["attach-trigger", "--user-pool-id", unknown_pool, "--dry-run"],
    ] {
        let run = pipeline.ops(&args).await;
        run.assert_code(1);
        assert!(
            run.stderr
                .contains(&format!("user pool {unknown_pool} does not exist")),
            "{args:?}:\n{run}"
        );
    }

    let missing_queue = format!("{}/123456789012/no-such-queue", pipeline.moto_endpoint());
    for args in [
        vec!["--queue-url", &missing_queue, "backfill", "--user-pool-id", &pool],
        vec!["--dlq-url", &missing_queue, "dlq", "peek"],
        vec!["--dlq-url", &missing_queue, "dlq", "redrive"],
    ] {
        let run = pipeline.ops(&args).await;
        run.assert_code(1);
        assert!(
            run.stderr
                .contains(&format!("queue {missing_queue} does not exist")),
            "{args:?}:\n{run}"
        );
    }

    let run = ops_cli::run(
        &pipeline.operator_env(),
        &["--stack-name", "no-such-stack", "dlq", "peek"],
    )
    .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("stack `no-such-stack` does not exist"),
        "{run}"
    );

    let run = pipeline.ops(&["dlq", "peek", "--bogus"]).await;
    run.assert_code(2);
    assert!(run.stderr.contains("unexpected argument '--bogus'"), "{run}");
    let run = pipeline.ops(&["backfill", "--user-pool-id", "not-a-pool"]).await;
    run.assert_code(2);
    assert!(run.stderr.contains("not a user pool id"), "{run}");
    for command in ["forget", "refresh"] {
        let run = pipeline.ops(&[command, "--sub", "not-a-sub"]).await;
        run.assert_code(2);
        assert!(
            run.stderr.contains("--sub") && run.stderr.contains("a Cognito sub is a UUID"),
            "{command}:\n{run}"
        );
    }
    let run = pipeline.ops(&["refresh"]).await;
    run.assert_code(2);
    assert!(run.stderr.contains("--sub"), "{run}");
    let run = pipeline
        .ops(&["backfill", "--user-pool-id", &pool, "--page-size", "61"])
        .await;
    run.assert_code(2);
    assert!(run.stderr.contains("--page-size"), "{run}");
    // A rate the account-wide ListUsers quota cannot serve, before any request is made.
    for command in ["backfill", "reconcile"] {
        let run = pipeline
            .ops(&[command, "--user-pool-id", &pool, "--rate", "31"])
            .await;
        run.assert_code(2);
        assert!(
            run.stderr
                .contains("UserList request-rate quota (30 requests per second"),
            "{command}:\n{run}"
        );
        let raised = pipeline
            .ops(&[
                "--json",
                command,
                "--user-pool-id",
                &pool,
                "--rate",
                "31",
                "--user-list-quota",
                "60",
            ])
            .await;
        assert_ne!(raised.code, Some(2), "a raised quota allows it:\n{raised}");
    }

    let no_credentials: Vec<(&str, String)> = pipeline
        .operator_env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"))
        .collect();
    let run = ops_cli::run(&no_credentials, &["--stack-name", STACK, "dlq", "peek"]).await;
    run.assert_code(1);
    assert!(run.stderr.contains("no AWS credentials"), "{run}");
}
