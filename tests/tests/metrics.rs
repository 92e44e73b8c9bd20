//! The functions' CloudWatch Embedded Metric Format lines, from a local run of the real binaries.

use e2e::{LocalPipeline, NewUser, PipelineOptions, emf};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_functions_emit_valid_emf_that_counts_what_happened() {
    let pipeline = LocalPipeline::start_or_panic("emf_metrics", PipelineOptions::default()).await;
    let user = NewUser::new(
        "metered",
        &[("email", "metered@example.com"), ("given_name", "Met")],
    );
    let signed_up = pipeline.sign_up(&user).await.unwrap();
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    pipeline.drain().await.unwrap();
    // A duplicate and a forgot-password confirmation (both enqueued, both no-ops) and a
    // malformed message.
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    let mut forgot = signed_up.event.clone();
    forgot["triggerSource"] = json!("PostConfirmation_ConfirmForgotPassword");
    pipeline.invoke_trigger(&forgot).await.unwrap();
    pipeline.send_raw("not an envelope").await.unwrap();
    pipeline.drain().await.unwrap();

    let lines = pipeline.settled_log_lines().await;
    let documents: Vec<Value> = lines
        .iter()
        .filter(|line| emf::is_emf(line))
        .map(|line| emf::validate(line).unwrap_or_else(|why| panic!("invalid EMF ({why}): {line}")))
        .collect();
    assert!(!documents.is_empty(), "no EMF lines were printed");
    for document in &documents {
        assert_eq!(
            document["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "CognitoUserSync"
        );
        assert_eq!(document["Service"], json!(pipeline.stack.name));
    }

    assert_eq!(emf::total(&documents, "Enqueued"), 3.0);
    assert!(
        documents.iter().all(|d| d.get("Skipped").is_none()),
        "Skipped is no metric any more"
    );
    assert_eq!(emf::total(&documents, "EnqueueFailed"), 0.0);
    assert_eq!(emf::total(&documents, "UsersWritten"), 1.0);
    assert_eq!(emf::total(&documents, "ProfilesWritten"), 1.0);
    assert_eq!(emf::total(&documents, "AlreadySynced"), 2.0);
    // The malformed message is received maxReceiveCount (5) times before SQS dead-letters it.
    assert_eq!(emf::total(&documents, "InvalidMessages"), 5.0);
    assert_eq!(emf::total(&documents, "BatchItemFailures"), 5.0);
    assert_eq!(emf::samples(&documents, "SyncLag"), 1);
    assert!(emf::total(&documents, "SyncLag") >= 0.0);
}
