//! End-to-end: the real trigger and consumer binaries against moto, with the template deployed.

use e2e::pipeline::s;
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use shared::ProfileId;

async fn start(label: &str) -> LocalPipeline {
    LocalPipeline::start(label, PipelineOptions::default())
        .await
        .expect("the local pipeline starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_user_lands_in_both_tables() {
    let pipeline = start("confirmed_user_lands_in_both_tables").await;
    let signed_up = pipeline
        .sign_up(&NewUser::new(
            "ana",
            &[
                ("email", "ana.lopez@example.com"),
                ("given_name", "Ána"),
                ("family_name", "López"),
                ("phone_number", "+34600111222"),
                ("custom:plan", "pro"),
            ],
        ))
        .await
        .unwrap();
    let response = pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    assert_eq!(response, signed_up.event);
    let report = pipeline.drain().await.unwrap();
    assert_eq!(report.deleted, 1, "{report:?}");

    let user = pipeline
        .user_item(&signed_up.sub)
        .await
        .unwrap()
        .expect("users item");
    let profile_id = ProfileId::derive(&pipeline.pool.id, &signed_up.sub).to_string();
    assert_eq!(s(&user, "profile_id"), Some(profile_id.as_str()));
    assert_eq!(s(&user, "email"), Some("ana.lopez@example.com"));
    let profile = pipeline
        .profile_item(&profile_id)
        .await
        .unwrap()
        .expect("profile item");
    assert_eq!(s(&profile, "full_name"), Some("Ána López"));
    eprintln!("{:#?}", pipeline.log_lines());
}
