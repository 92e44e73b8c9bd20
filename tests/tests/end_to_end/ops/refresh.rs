//! `ops refresh`: a change no signal brought reaches the tables when an operator asks.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_brings_changes_no_signal_brought_to_the_tables() {
    let pipeline = start("ops_refresh").await;
    let mut subs = Vec::new();
    for i in [80, 81] {
        let signed_up = pipeline.sign_up(&person(i)).await.unwrap();
        pipeline.invoke_trigger(&signed_up.event).await.unwrap();
        subs.push(signed_up.sub);
    }
    pipeline.drain().await.unwrap();
    // Changed and deleted in Cognito, with no CloudTrail record reaching the queue.
    let cognito = &pipeline.cognito;
    cognito
        .admin_update_user_attributes()
        .user_pool_id(&pipeline.pool.id)
        .username(person(80).username)
        .user_attributes(
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
                .name("given_name")
                .value("Renée")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    pipeline.delete_user(&person(81).username).await.unwrap();

    let run = pipeline
        .ops(&[
            "--json",
            "refresh",
            "--sub",
            &subs[0],
            "--sub",
            &subs[1].to_uppercase(),
        ])
        .await;
    run.assert_code(0);
    assert_eq!(
        (
            run.report()["enqueued"].as_u64(),
            run.report()["refused"].as_u64()
        ),
        (Some(2), Some(0)),
        "{run}"
    );
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (2, 0), "{report:?}");

    let updated = pipeline.user_item(&subs[0]).await.unwrap().unwrap();
    assert_eq!(s(&updated, "given_name"), Some("Renée"));
    let gone = pipeline.user_item(&subs[1]).await.unwrap().unwrap();
    assert!(s(&gone, "deleted_at").is_some(), "{gone:?}");
    assert!(!gone.contains_key("email"), "{gone:?}");
    // The report names users by sub only.
    assert!(!run.stdout.contains("@"), "{run}");
}
