//! `ops dlq redrive`: every message back to the queue once, a midway failure leaving the rest, dry runs and `--max`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_moves_every_dlq_message_and_the_fixed_consumer_syncs_them_all() {
    // A deploy broke the consumer's table name: every confirmation ends in the DLQ.
    let options = PipelineOptions {
        consumer_env: vec![("USERS_TABLE".into(), "table-that-does-not-exist".into())],
        ..PipelineOptions::default()
    };
    let mut pipeline = start_with("ops_redrive_all", options).await;
    let mut subs = Vec::new();
    for i in 0..12 {
        let signed_up = pipeline.sign_up(&person(i)).await.unwrap();
        pipeline.invoke_trigger(&signed_up.event).await.unwrap();
        subs.push(signed_up.sub);
    }
    pipeline.drain().await.unwrap();
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (12, 0));
    let users_table = pipeline.users_table().to_owned();
    pipeline
        .restart_consumer(&[("USERS_TABLE", &users_table)])
        .await
        .unwrap();

    // moto answers ListMessageMoveTasks and StartMessageMoveTask with a bare HTTP 500, which
    // says nothing about support (on AWS, a task may have started): the default refuses and
    // moves nothing, naming the flag for an endpoint without the move-task API.
    let refused = pipeline.ops(&["--json", "dlq", "redrive"]).await;
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("ListMessageMoveTasks failed") && refused.stderr.contains("--client-side"),
        "{refused}"
    );
    assert_eq!(
        depth(&pipeline, pipeline.dlq_url()).await,
        (12, 0),
        "nothing moved"
    );
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (0, 0));

    let run = pipeline.ops(&["--json", "dlq", "redrive", "--client-side"]).await;
    run.assert_code(0);
    let report = run.report();
    assert_eq!(report["method"], "receive_send_delete");
    assert!(
        run.stderr.contains("moving client-side as --client-side asks"),
        "{run}"
    );
    assert_eq!(
        (report["moved"].as_u64(), report["failed"].as_u64()),
        (Some(12), Some(0))
    );
    assert_eq!(report["left"], 0);
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (0, 0));
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (12, 0));

    let drained = pipeline.drain().await.unwrap();
    assert_eq!((drained.received, drained.deleted), (12, 12), "{drained:?}");
    let subs = sorted(subs);
    assert_eq!(synced(&pipeline).await, (subs.clone(), subs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_that_fails_midway_leaves_the_refused_messages_in_the_dlq() {
    let pipeline = start("ops_redrive_refused").await;
    let pool = pipeline.pool.id.clone();
    let small: Vec<String> = (0..6)
        .map(|i| {
            envelope_for(
                &pool,
                &format!("00000000-0000-4000-8000-{i:012}"),
                &format!("small{i}"),
                &[("email", "small@example.com")],
            )
        })
        .collect();
    let large: Vec<String> = (0..4)
        .map(|i| {
            envelope_for(
                &pool,
                &format!("00000000-0000-4000-9000-{i:012}"),
                &format!("large{i}"),
                &[("custom:notes", &"n".repeat(2000))],
            )
        })
        .collect();
    assert!(small.iter().all(|b| b.len() < 1024) && large.iter().all(|b| b.len() > 1024));
    // Interleaved, so refusals happen between successful moves.
    for (i, body) in small.iter().enumerate() {
        send(&pipeline, pipeline.dlq_url(), body).await;
        if let Some(body) = large.get(i) {
            send(&pipeline, pipeline.dlq_url(), body).await;
        }
    }
    // A real refusal: SendMessage to the sync queue now rejects the larger bodies.
    pipeline
        .sqs
        .set_queue_attributes()
        .queue_url(pipeline.queue_url())
        .attributes(QueueAttributeName::MaximumMessageSize, "1024")
        .send()
        .await
        .unwrap();

    let run = pipeline.ops(&["--json", "dlq", "redrive", "--client-side"]).await;
    run.assert_code(1);
    let report = run.report();
    assert_eq!(
        (
            report["moved"].as_u64(),
            report["failed"].as_u64(),
            report["left"].as_u64()
        ),
        (Some(6), Some(4), Some(4)),
        "{run}"
    );
    assert!(
        run.stderr.contains("Message must be shorter than 1024 bytes"),
        "{run}"
    );
    // The refused ones are visible again at once, not hidden until a timeout.
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (4, 0));
    let mut expected_small = small.clone();
    expected_small.sort();
    let mut expected_large = large.clone();
    expected_large.sort();
    assert_eq!(bodies(&pipeline, pipeline.queue_url()).await, expected_small);
    assert_eq!(bodies(&pipeline, pipeline.dlq_url()).await, expected_large);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_dry_run_moves_nothing_and_max_moves_only_that_many() {
    let pipeline = start("ops_redrive_dry_run").await;
    for i in 0..5 {
        let body = envelope_for(
            &pipeline.pool.id,
            &format!("00000000-0000-4000-a000-{i:012}"),
            &format!("dry{i}"),
            &[],
        );
        send(&pipeline, pipeline.dlq_url(), &body).await;
    }

    let run = pipeline.ops(&["--json", "dlq", "redrive", "--dry-run"]).await;
    run.assert_code(0);
    let report = run.report();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["would_move"], 5);
    assert_eq!(report["moved"], 0);
    assert_eq!(
        depth(&pipeline, pipeline.dlq_url()).await,
        (5, 0),
        "dry run left the DLQ as it was"
    );
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (0, 0));

    let run = pipeline
        .ops(&["--json", "dlq", "redrive", "--max", "2", "--client-side"])
        .await;
    run.assert_code(0);
    assert_eq!(run.report()["moved"], 2);
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (3, 0));
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (2, 0));
}
