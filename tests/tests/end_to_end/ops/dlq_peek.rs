//! `ops dlq peek`: what each dead letter says, PII masked, nothing consumed.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_peek_shows_why_each_message_failed_masks_pii_and_consumes_nothing() {
    let pipeline = start("ops_dlq_peek").await;
    let foreign_sub = "3c2b1a00-0000-4000-8000-0000000000f1";
    let bad = [
        "not json at all, from leak.peek@example.com".to_owned(),
        json!({"version": 1, "source": "post_confirmation", "user_pool_id": pipeline.pool.id,
               "sub": "5d0e0000-0000-4000-8000-000000000001", "username": ["peek.username"],
               "confirmed_at": "2026-01-01T00:00:00Z", "attributes": {}})
        .to_string(),
        // Valid, but for another pool: the consumer refuses it.
        envelope_for(
            "eu-west-1_SomeoneElse1",
            foreign_sub,
            "peek.foreigner",
            &[
                ("email", "peek.foreigner@example.com"),
                ("email_verified", "true"),
                ("given_name", "Peeky"),
                ("custom:plan", "gold"),
                // A federated user's identities carry their IdP's user id, often an email.
                (
                    "identities",
                    r#"[{"userId":"peek.idp@corp.example","providerName":"Corp","providerType":"SAML"}]"#,
                ),
                ("custom:national_id", "X9876543Z"),
            ],
        ),
    ];
    for body in &bad {
        pipeline.send_raw(body).await.unwrap();
    }
    pipeline.drain().await.unwrap();
    assert_eq!(
        depth(&pipeline, pipeline.dlq_url()).await,
        (3, 0),
        "the bad messages are in the DLQ"
    );

    let run = pipeline.ops(&["--json", "dlq", "peek"]).await;
    run.assert_code(0);
    let rows = run.lines();
    assert_eq!(rows.len(), 3, "{run}");
    let by_reason: BTreeMap<&str, &Value> = rows.iter().map(|r| (r["reason"].as_str().unwrap(), r)).collect();
    assert_eq!(
        by_reason.keys().copied().collect::<Vec<_>>(),
        ["not_json", "valid_envelope", "wrong_type"],
        "{run}"
    );
    assert_eq!(
        by_reason["wrong_type"]["error"],
        "field `username` must be a string, found an array"
    );
    let valid = by_reason["valid_envelope"];
    assert_eq!(
        valid["error"],
        "valid envelope: failed for another reason, see the consumer's record_failed logs for this message id"
    );
    assert_eq!(valid["user"]["user_pool_id"], "eu-west-1_SomeoneElse1");
    assert_eq!(valid["user"]["sub"], foreign_sub);
    assert_eq!(valid["user"]["username"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["email"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["given_name"], "[redacted]");
    // An allow-list: only attributes known to carry no personal data are shown in clear.
    assert_eq!(valid["user"]["attributes"]["custom:plan"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["identities"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["custom:national_id"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["email_verified"], "true");
    for row in &rows {
        assert!(row["receive_count"].as_u64().unwrap() >= 1, "{row}");
        let first = row["first_received_at"].as_str().expect("first receive time");
        assert!(shared::timestamp::parse_rfc3339(first).is_some(), "{first}");
    }
    // The message ids are the ones the consumer logged its failures under.
    let logged: BTreeSet<String> = pipeline
        .log_events("record_failed")
        .await
        .iter()
        .filter_map(|e| e["message_id"].as_str().map(str::to_owned))
        .collect();
    for row in &rows {
        assert!(logged.contains(row["message_id"].as_str().unwrap()), "{row}");
    }

    let table = pipeline.ops(&["dlq", "peek"]).await;
    table.assert_code(0);
    assert!(table.stdout.starts_with("MESSAGE ID"), "{table}");
    for pii in [
        "leak.peek@example.com",
        "peek.username",
        "peek.foreigner",
        "Peeky",
        "peek.idp@corp.example",
        "X9876543Z",
    ] {
        assert!(
            !run.stdout.contains(pii),
            "{pii} shown without --show-pii:\n{run}"
        );
        assert!(
            !table.stdout.contains(pii),
            "{pii} shown without --show-pii:\n{table}"
        );
    }

    let shown = pipeline.ops(&["--json", "dlq", "peek", "--show-pii"]).await;
    shown.assert_code(0);
    let rows = shown.lines();
    let valid = rows.iter().find(|r| r["reason"] == "valid_envelope").unwrap();
    assert_eq!(valid["user"]["username"], "peek.foreigner");
    assert_eq!(valid["user"]["attributes"]["email"], "peek.foreigner@example.com");
    assert_eq!(valid["user"]["attributes"]["custom:national_id"], "X9876543Z");
    let not_json = rows.iter().find(|r| r["reason"] == "not_json").unwrap();
    assert_eq!(not_json["body"].as_str(), Some(bad[0].as_str()));

    // Three peeks later, every message is still there and visible.
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (3, 0));
    let mut expected = bad.to_vec();
    expected.sort();
    assert_eq!(bodies(&pipeline, pipeline.dlq_url()).await, expected);
}
