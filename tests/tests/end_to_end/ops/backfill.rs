//! `ops backfill`: every confirmed user enqueued, across pages, in batches within SQS's limits, safe to repeat.

use super::*;

/// `ops --json backfill` of the pipeline's pool, 10 users a page.
async fn backfill(pipeline: &LocalPipeline, extra: &[&str]) -> OpsRun {
    let pool = pipeline.pool.id.clone();
    let mut args = vec!["--json", "backfill", "--user-pool-id", &pool, "--page-size", "10"];
    args.extend_from_slice(extra);
    pipeline.ops(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_enqueues_every_confirmed_user_across_pages_and_is_safe_to_repeat() {
    let pipeline = start("ops_backfill").await;
    let confirmed = confirmed_without_trigger(&pipeline, 0..25).await;
    // Confirmed earlier, then an administrator reset the password: still a user to sync.
    reset_password(&pipeline, &confirmed[3].username).await;
    unconfirmed(&pipeline, 0..3).await;
    // Created by an administrator and never signed in (FORCE_CHANGE_PASSWORD): not yet.
    admin_created(&pipeline, "admin.created").await;
    let subs = sorted(confirmed.iter().map(|c| c.sub.clone()));
    let pool = pipeline.pool.id.clone();

    let first = backfill(&pipeline, &["--rate", "30"]).await;
    first.assert_code(0);
    let report = first.report();
    assert_eq!(report["users"], 29, "{first}");
    assert_eq!(report["selected"], 25, "{first}");
    assert_eq!(report["enqueued"], 25);
    assert_eq!(report["pages"], 3);
    let tokens: Vec<&str> = first
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("resume with --from-token "))
        .collect();
    assert_eq!(tokens.len(), 2, "a token after each page but the last:\n{first}");
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (25, 0));

    // The messages are the trigger's envelope, marked as a backfill (looked at, left visible).
    let sample = pipeline
        .sqs
        .receive_message()
        .queue_url(pipeline.queue_url())
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    assert!(!sample.messages().is_empty());
    for message in sample.messages() {
        let decoded = envelope::decode(message.body().unwrap()).unwrap();
        assert_eq!(decoded.source(), ConfirmationSource::Backfill);
        assert_eq!(decoded.user_pool_id(), pool);
        assert!(subs.contains(&decoded.sub().to_owned()));
    }

    pipeline.drain().await.unwrap();
    assert_eq!(synced(&pipeline).await, (subs.clone(), subs.clone()));
    let item = pipeline.user_item(&confirmed[0].sub).await.unwrap().unwrap();
    assert_eq!(s(&item, "username"), Some(confirmed[0].username.as_str()));
    assert_eq!(s(&item, "email"), Some(confirmed[0].attributes["email"].as_str()));

    // Twice: 25 more messages, still 25 users and 25 profiles.
    let second = backfill(&pipeline, &["--rate", "30"]).await;
    second.assert_code(0);
    assert_eq!(second.report()["enqueued"], 25);
    pipeline.drain().await.unwrap();
    assert_eq!(synced(&pipeline).await, (subs.clone(), subs.clone()));

    // Resuming after the first page enqueues the other two pages only.
    let resumed = backfill(&pipeline, &["--from-token", tokens[0]]).await;
    resumed.assert_code(0);
    let report = resumed.report();
    assert_eq!(
        (report["pages"].as_u64(), report["enqueued"].as_u64()),
        (Some(2), Some(15)),
        "{resumed}"
    );
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (15, 0));
    pipeline.drain().await.unwrap();
    assert_eq!(synced(&pipeline).await, (subs.clone(), subs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_splits_batches_by_size_and_reports_a_refused_user_without_stopping() {
    // Ten users whose messages fit SQS one by one but not ten to a SendMessageBatch (1 MiB in
    // all), and one whose message SQS refuses on its own. (On AWS an attribute holds at most 2048
    // characters, but a user's dozens of attributes in 4-byte characters reach ~100 KB each just
    // the same; moto counts characters, not bytes, hence one long ASCII value here.)
    let pipeline = start("ops_backfill_sizes").await;
    let mut large = Vec::new();
    for i in 0..10 {
        let user = NewUser::new(&format!("large{i:02}"), &[("address", &"a".repeat(110_000))]);
        large.push(pipeline.sign_up(&user).await.unwrap().sub);
    }
    let too_large = NewUser::new("too.large", &[("address", &"b".repeat(1_100_000))]);
    let too_large = pipeline.sign_up(&too_large).await.unwrap().sub;
    let pool = pipeline.pool.id.clone();

    let run = pipeline
        .ops(&["--json", "backfill", "--user-pool-id", &pool, "--page-size", "20"])
        .await;
    run.assert_code(1);
    let report = run.report();
    assert_eq!(report["enqueued"], 10, "{run}");
    assert_eq!(report["refused"], 1, "{run}");
    assert_eq!(report["refused_subs"], json!([too_large]), "{run}");
    assert!(
        run.stderr.contains(&format!("not enqueued: user {too_large}")),
        "{run}"
    );
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (10, 0));
    pipeline.drain().await.unwrap();
    let (users, profiles) = synced(&pipeline).await;
    assert_eq!(users, sorted(large.clone()));
    assert_eq!(profiles, sorted(large));
}
