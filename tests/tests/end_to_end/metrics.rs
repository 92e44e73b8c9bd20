//! The functions' CloudWatch Embedded Metric Format lines, from a local run of the real binaries.

use e2e::fault_proxy::{Fault, FaultPlan, FaultProxy, PUT_ITEM};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_retries_count_every_retry_even_of_records_that_run_out_of_time() {
    // Every PutItem is throttled: each record retries until its deadline and fails. Its retries
    // must still reach `WriteRetries` (each record hands its count back, whatever its outcome).
    let pipeline = LocalPipeline::start_or_panic("emf_write_retries", PipelineOptions::default()).await;
    let throttled = FaultProxy::start(FaultPlan::new(7).inject(PUT_ITEM, Fault::Throttle, 1.0))
        .await
        .unwrap();
    throttled.forward_to(&pipeline.moto_endpoint()).unwrap();
    let consumer = pipeline
        .start_consumer_against(
            "throttled-consumer",
            &throttled.endpoint(),
            &[("DYNAMODB_MAX_ATTEMPTS", "1")],
        )
        .await
        .unwrap();
    let subs: Vec<String> = (0..3)
        .map(|i| format!("00000000-0000-4000-8000-00000000005{i}"))
        .collect();
    pipeline.send_envelopes(&subs, "throttled").await.unwrap();
    let report = pipeline.event_source_for(&consumer).poll_once().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (3, 3), "{report:?}");

    let lines = consumer.settled_log_lines().await;
    let retries_logged = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["event"] == "write_retry")
        .count();
    let documents: Vec<Value> = lines
        .iter()
        .filter(|line| emf::is_emf(line))
        .map(|line| emf::validate(line).unwrap_or_else(|why| panic!("invalid EMF ({why}): {line}")))
        .collect();
    assert!(retries_logged >= 6, "each of 3 records retried: {retries_logged}");
    assert_eq!(emf::total(&documents, "WriteRetries"), retries_logged as f64);
    assert_eq!(emf::total(&documents, "BatchItemFailures"), 3.0);
}
