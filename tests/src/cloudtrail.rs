//! Cognito API calls as CloudTrail records them and EventBridge delivers them ("AWS API Call via
//! CloudTrail", source `aws.cognito-idp`), built by hand: moto never turns a Cognito call into
//! a CloudTrail event, so a test makes the call in moto and then puts the record on the local
//! bus, where the stack's own rule routes it to the sync queue.
//!
//! The shape follows AWS's documented CloudTrail record for Cognito user pools: the user's sub
//! in `additionalEventData.sub`, the username and other sensitive request fields replaced by
//! `HIDDEN_DUE_TO_SECURITY_REASONS`, `userPoolId` in the request of the Admin* calls only
//! (calls made with an access token name no pool). (AWS's PutEvents refuses a source starting
//! with `aws.` from a caller; moto accepts it, which is what lets the rule be tested.)

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// The `detail` of the CloudTrail record of `call` on user `sub` (absent: a record without
/// one), in `pool` when the call names one.
pub fn record(call: &str, pool: Option<&str>, sub: Option<&str>) -> Value {
    let mut request = match pool {
        Some(pool) => json!({"userPoolId": pool, "username": HIDDEN}),
        None => json!({"accessToken": HIDDEN}),
    };
    if call.contains("Attributes") {
        request["userAttributes"] = json!(HIDDEN);
    }
    let additional = match sub {
        Some(sub) => json!({"sub": sub}),
        None => json!({}),
    };
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "accountId": "123456789012"},
        "eventTime": "2026-12-02T10:00:00Z",
        "eventSource": "cognito-idp.amazonaws.com",
        "eventName": call,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.1",
        "userAgent": "aws-cli/2",
        "requestParameters": request,
        "responseElements": null,
        "additionalEventData": additional,
        "requestID": uuid::Uuid::new_v4().to_string(),
        "eventID": uuid::Uuid::new_v4().to_string(),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "123456789012",
        "eventCategory": "Management"
    })
}

/// Puts `detail` on the default bus as CloudTrail's delivery to EventBridge would.
pub async fn put(events: &aws_sdk_eventbridge::Client, detail: &Value) -> Result<()> {
    put_many(events, std::slice::from_ref(detail)).await
}

/// [`put`] for up to ten records, in one `PutEvents` call (AWS's limit per call).
pub async fn put_many(events: &aws_sdk_eventbridge::Client, details: &[Value]) -> Result<()> {
    let entries = details
        .iter()
        .map(|detail| {
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("aws.cognito-idp")
                .detail_type("AWS API Call via CloudTrail")
                .detail(detail.to_string())
                .build()
        })
        .collect();
    let put = events
        .put_events()
        .set_entries(Some(entries))
        .send()
        .await
        .context("PutEvents failed")?;
    if put.failed_entry_count() != 0 {
        bail!(
            "PutEvents refused {} events: {:?}",
            put.failed_entry_count(),
            put.entries()
        );
    }
    Ok(())
}
