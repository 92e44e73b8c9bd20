//! What the template promises but moto does not create (alarms, queue policies) or cannot
//! enforce (IAM), checked in the template itself, after the same SAM translation the local
//! deploy uses.

use serde_json::{Value, json};

fn template() -> Value {
    let text = e2e::stack::translate(&[("ExistingUserPoolId", "us-east-1_Abc123")])
        .unwrap_or_else(|err| panic!("the template does not translate: {err:#}"));
    serde_json::from_str(&text).expect("translation is JSON")
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    template["Resources"]
        .get(name)
        .unwrap_or_else(|| panic!("no resource {name}"))
}

/// Every (actions, resources) pair a role's inline policies allow.
fn allowed(role: &Value) -> Vec<(Vec<String>, Value)> {
    let as_list = |v: &Value| match v {
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap().to_owned()).collect(),
        Value::String(one) => vec![one.clone()],
        other => panic!("unexpected action {other}"),
    };
    role["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
        .filter(|s| s["Effect"] == "Allow")
        .map(|s| (as_list(&s["Action"]), s["Resource"].clone()))
        .collect()
}

#[test]
fn functions_are_arm64_al2023_with_json_logs() {
    let t = template();
    for name in ["TriggerFunction", "ConsumerFunction"] {
        let p = &resource(&t, name)["Properties"];
        assert_eq!(p["Runtime"], "provided.al2023", "{name}");
        assert_eq!(p["Architectures"], json!(["arm64"]), "{name}");
        assert_eq!(p["Handler"], "bootstrap", "{name}");
        assert_eq!(p["LoggingConfig"]["LogFormat"], "JSON", "{name}");
    }
    assert!(
        resource(&t, "TriggerFunction")["Properties"]["Timeout"]
            .as_u64()
            .unwrap()
            <= 5
    );
}

#[test]
fn queue_redrives_to_a_dlq_and_outlasts_the_consumer() {
    let t = template();
    let queue = &resource(&t, "SyncQueue")["Properties"];
    let consumer_timeout = resource(&t, "ConsumerFunction")["Properties"]["Timeout"]
        .as_u64()
        .unwrap();
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * consumer_timeout);
    assert_eq!(queue["SqsManagedSseEnabled"], true);
    assert_eq!(queue["RedrivePolicy"]["maxReceiveCount"], 5);
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["SyncDeadLetterQueue", "Arn"]})
    );
    let dlq = &resource(&t, "SyncDeadLetterQueue")["Properties"];
    assert_eq!(dlq["MessageRetentionPeriod"], 1_209_600);
    assert_eq!(dlq["SqsManagedSseEnabled"], true);

    let (_, mapping) = resources_of_type(&t, "AWS::Lambda::EventSourceMapping")[0];
    assert_eq!(
        mapping["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert!(mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"].is_object());
}

#[test]
fn queues_refuse_requests_without_tls() {
    let t = template();
    let policy = &resource(&t, "SyncQueuePolicy")["Properties"];
    let queues = policy["Queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2);
    let statement = &policy["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Deny");
    assert_eq!(
        statement["Condition"]["Bool"]["aws:SecureTransport"],
        json!("false")
    );
}

#[test]
fn tables_are_on_demand_recoverable_and_encrypted() {
    let t = template();
    for (name, key) in [("UsersTable", "user_id"), ("ProfilesTable", "profile_id")] {
        let table = resource(&t, name);
        let p = &table["Properties"];
        assert_eq!(
            p["KeySchema"],
            json!([{"AttributeName": key, "KeyType": "HASH"}]),
            "{name}"
        );
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{name}");
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true,
            "{name}"
        );
        assert_eq!(p["SSESpecification"]["SSEEnabled"], true, "{name}");
        assert_eq!(table["DeletionPolicy"], "Retain", "{name}");
    }
    let gsi = &resource(&t, "ProfilesTable")["Properties"]["GlobalSecondaryIndexes"][0];
    assert_eq!(gsi["IndexName"], "user_id-index");
    assert_eq!(gsi["KeySchema"][0]["AttributeName"], "user_id");
}

#[test]
fn trigger_may_only_send_to_the_queue_and_write_its_logs() {
    let t = template();
    let statements = allowed(resource(&t, "TriggerRole"));
    let actions: Vec<&str> = statements
        .iter()
        .flat_map(|(a, _)| a.iter().map(String::as_str))
        .collect();
    assert!(
        actions
            .iter()
            .all(|a| ["sqs:SendMessage", "logs:CreateLogStream", "logs:PutLogEvents"].contains(a)),
        "{actions:?}"
    );
    let send = statements
        .iter()
        .find(|(a, _)| a.contains(&"sqs:SendMessage".to_owned()))
        .unwrap();
    assert_eq!(send.1, json!({"Fn::GetAtt": ["SyncQueue", "Arn"]}));
}

#[test]
fn consumer_may_only_put_items_and_read_its_queue() {
    let t = template();
    let statements = allowed(resource(&t, "ConsumerRole"));
    for (actions, resources) in &statements {
        for action in actions {
            match action.as_str() {
                "dynamodb:PutItem" => {
                    let tables = resources.as_array().expect("a list of tables");
                    assert_eq!(tables.len(), 2);
                    for table in tables {
                        let target = &table["Fn::GetAtt"][0];
                        assert!(target == "UsersTable" || target == "ProfilesTable", "{table}");
                    }
                }
                "sqs:ReceiveMessage"
                | "sqs:DeleteMessage"
                | "sqs:GetQueueAttributes"
                | "sqs:ChangeMessageVisibility" => {
                    assert_eq!(*resources, json!({"Fn::GetAtt": ["SyncQueue", "Arn"]}))
                }
                "logs:CreateLogStream" | "logs:PutLogEvents" => {}
                other => panic!("the consumer must not be allowed {other}"),
            }
        }
    }
    // No managed policies: they would bring `*` resources with them.
    for role in ["TriggerRole", "ConsumerRole"] {
        assert!(
            resource(&t, role)["Properties"]
                .get("ManagedPolicyArns")
                .is_none(),
            "{role}"
        );
    }
    // No wildcard actions or resources in any role (a KMS key policy's "*" means the key itself).
    for (_, role) in resources_of_type(&t, "AWS::IAM::Role") {
        for (actions, resources) in allowed(role) {
            assert!(actions.iter().all(|a| !a.contains('*')), "{actions:?}");
            assert!(!resources.to_string().contains("\"*\""), "{resources}");
        }
    }
}

#[test]
fn cognito_may_invoke_the_trigger_only_from_the_pool() {
    let t = template();
    let (_, permission) = resources_of_type(&t, "AWS::Lambda::Permission")[0];
    let p = &permission["Properties"];
    assert_eq!(p["Principal"], "cognito-idp.amazonaws.com");
    assert!(
        p["SourceArn"].to_string().contains("userpool/"),
        "{}",
        p["SourceArn"]
    );
    assert!(p.get("SourceAccount").is_some());
}

#[test]
fn alarms_watch_the_dlq_queue_age_and_both_functions() {
    let t = template();
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    let watches = |metric: &str, dimension_ref: &str| {
        alarms.iter().any(|(_, a)| {
            let p = &a["Properties"];
            p["MetricName"] == metric
                && p["Dimensions"].to_string().contains(dimension_ref)
                && !p["AlarmActions"].as_array().unwrap().is_empty()
        })
    };
    assert!(watches(
        "ApproximateNumberOfMessagesVisible",
        "SyncDeadLetterQueue"
    ));
    assert!(watches("ApproximateAgeOfOldestMessage", "SyncQueue"));
    assert!(watches("Errors", "TriggerFunction"));
    assert!(watches("Errors", "ConsumerFunction"));
}
