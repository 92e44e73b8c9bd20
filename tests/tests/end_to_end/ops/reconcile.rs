//! `ops reconcile`: users missing from either table and orphans found, and `--repair` closing the
//! gap with refresh signals (the scheduled run's walk, run locally).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_users_missing_from_either_table_and_orphans_and_repair_closes_the_gap() {
    let pipeline = start("ops_reconcile").await;
    // Synced normally.
    for i in 0..4 {
        let signed_up = pipeline.sign_up(&person(i)).await.unwrap();
        pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    }
    pipeline.drain().await.unwrap();
    // Half-synced: the users item is there, the profile is not (its put failed until the
    // message reached the DLQ, whose copy then expired).
    let half = sorted(
        pipeline
            .scan(pipeline.users_table())
            .await
            .unwrap()
            .iter()
            .filter_map(|i| s(i, USERS_KEY).map(str::to_owned)),
    )
    .remove(0);
    let half_user_item = pipeline.user_item(&half).await.unwrap().unwrap();
    pipeline
        .dynamodb
        .delete_item()
        .table_name(pipeline.profiles_table())
        .key(
            PROFILES_KEY,
            AttributeValue::S(shared::ProfileId::derive(&pipeline.pool.id, &half).to_string()),
        )
        .send()
        .await
        .unwrap();
    // Confirmed, never enqueued (before the trigger, or an enqueue_failed); one of them has a
    // password reset pending since (RESET_REQUIRED), which does not make them less confirmed.
    let never_enqueued = confirmed_without_trigger(&pipeline, 10..13).await;
    reset_password(&pipeline, &never_enqueued[1].username).await;
    let no_user_item = sorted(never_enqueued.into_iter().map(|c| c.sub));
    let missing = sorted(no_user_item.iter().cloned().chain([half.clone()]));
    unconfirmed(&pipeline, 0..2).await;
    // An item whose user is gone from the pool.
    let orphan = "0a0a0a0a-0000-4000-8000-00000000dead".to_owned();
    pipeline
        .dynamodb
        .put_item()
        .table_name(pipeline.users_table())
        .item(USERS_KEY, AttributeValue::S(orphan.clone()))
        .item("user_pool_id", AttributeValue::S(pipeline.pool.id.clone()))
        .send()
        .await
        .unwrap();
    let pool = pipeline.pool.id.clone();

    let found = pipeline
        .ops(&["--json", "reconcile", "--user-pool-id", &pool])
        .await;
    found.assert_code(3);
    let report = found.report();
    assert_eq!(report["in_sync"], false);
    assert_eq!(report["pool_users"], 9, "every status listed");
    assert_eq!(report["table_items"], 5);
    assert_eq!(report["drift"], 5);
    assert_eq!(report["missing"], json!(missing));
    assert_eq!(report["missing_user_item"], json!(no_user_item));
    let mut no_profile = no_user_item.clone();
    no_profile.push(half.clone());
    assert_eq!(report["missing_profile"], json!(sorted(no_profile)));
    assert_eq!(report["orphans"], json!([orphan]));
    assert_eq!(
        depth(&pipeline, pipeline.queue_url()).await,
        (0, 0),
        "no --repair, nothing sent"
    );

    let repaired = pipeline
        .ops(&["--json", "reconcile", "--user-pool-id", &pool, "--repair"])
        .await;
    repaired.assert_code(0);
    assert_eq!(
        repaired.report()["enqueued"],
        5,
        "the four missing and the orphan"
    );
    let drained = pipeline.drain().await.unwrap();
    assert_eq!(drained.deleted, 5, "{drained:?}");
    for sub in &missing {
        assert!(pipeline.user_item(sub).await.unwrap().is_some(), "{sub} repaired");
        assert_eq!(
            pipeline.profiles_of(sub).await.unwrap().len(),
            1,
            "{sub}'s profile repaired"
        );
    }
    // The half that was there is now the mirror of the user's state, with its creation kept.
    let half_now = pipeline.user_item(&half).await.unwrap().unwrap();
    assert_eq!(s(&half_now, "created_at"), s(&half_user_item, "created_at"));
    assert_eq!(s(&half_now, "cognito_status"), Some("CONFIRMED"));
    // The orphan's user is gone from the pool: their item is a tombstone now.
    let orphan_now = pipeline.user_item(&orphan).await.unwrap().unwrap();
    assert!(orphan_now.contains_key("deleted_at"), "{orphan_now:?}");

    let again = pipeline.ops(&["reconcile", "--user-pool-id", &pool]).await;
    again.assert_code(0);
    assert!(again.stdout.contains("in sync"), "{again}");
    assert!(
        !again.stdout.contains(&orphan),
        "a tombstone is no orphan\n{again}"
    );
    let json_again = pipeline
        .ops(&["--json", "reconcile", "--user-pool-id", &pool])
        .await;
    json_again.assert_code(0);
    assert_eq!(json_again.report()["missing"], json!([]));
}
