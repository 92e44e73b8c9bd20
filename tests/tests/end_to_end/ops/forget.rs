//! `ops forget`: an erased user's users item is a tombstone and their profile is gone, and
//! nothing that arrives later brings either back.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_tombstones_the_user_erases_the_profile_and_nothing_re_creates_them() {
    let pipeline = start("ops_forget").await;
    let user = person(70);
    let signed_up = pipeline.sign_up(&user).await.unwrap();
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    pipeline.drain().await.unwrap();
    let sub = signed_up.sub.clone();
    let profile_id = pipeline.profile_id_of(&sub);

    let dry = pipeline
        .ops(&["--json", "forget", "--sub", &sub, "--dry-run"])
        .await;
    dry.assert_code(0);
    assert_eq!(dry.report()["users_item"], "tombstoned", "{dry}");
    assert!(
        s(&pipeline.user_item(&sub).await.unwrap().unwrap(), "email").is_some(),
        "a dry run writes nothing"
    );

    let forgot = pipeline
        .ops(&["--json", "forget", "--sub", &sub.to_uppercase()])
        .await;
    forgot.assert_code(0);
    let report = forgot.report();
    assert_eq!(
        (report["users_item"].as_str(), report["profile"].as_str()),
        (Some("tombstoned"), Some("erased")),
        "{forgot}"
    );
    let tombstone = pipeline.user_item(&sub).await.unwrap().unwrap();
    assert!(s(&tombstone, "deleted_at").is_some());
    for personal in ["email", "username", "given_name", "family_name", "attributes"] {
        assert!(
            !tombstone.contains_key(personal),
            "{personal} left in {tombstone:?}"
        );
    }
    let erased = pipeline.profile_item(&profile_id).await.unwrap().unwrap();
    crate::lifecycle::assert_profile_tombstone(&erased);

    // Still in Cognito: a late confirmation, a backfill and a refresh all arrive afterwards.
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    pipeline
        .ops(&["--json", "backfill", "--user-pool-id", &pipeline.pool.id])
        .await
        .assert_code(0);
    let refresh = shared::signal::Refresh::requested(&pipeline.pool.id, &sub, Some(&user.username)).unwrap();
    pipeline
        .send_raw(&envelope::encode_refresh(&refresh))
        .await
        .unwrap();
    pipeline.drain().await.unwrap();
    assert_eq!(pipeline.user_item(&sub).await.unwrap().unwrap(), tombstone);
    assert_eq!(pipeline.profile_item(&profile_id).await.unwrap().unwrap(), erased);
    assert!(pipeline.profiles_of(&sub).await.unwrap().is_empty());

    // Again: nothing left to do, and it says so.
    let again = pipeline.ops(&["--json", "forget", "--sub", &sub]).await;
    again.assert_code(0);
    assert_eq!(again.report()["users_item"], "already a tombstone", "{again}");
    pipeline
        .assert_no_pii_in_logs(&[user.attributes["email"].clone()])
        .await;
}
