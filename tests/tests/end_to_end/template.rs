//! What the template promises but moto does not create (alarms, queue policies, saved queries,
//! the alarm e-mail subscription), cannot enforce (IAM) or does not check (the dashboard's body),
//! checked in the template itself, after the same SAM translation the local deploy uses.

use std::collections::BTreeSet;

use consumer::metrics::ConsumerMetric;
use reconciler::metrics::{InvocationMetric, RunMetric};
use shared::mapping::{PROFILES_KEY, USERS_KEY};
use shared::metrics::{Metric, Unit};
use trigger::metrics::TriggerMetric;
use welcomer::metrics::WelcomerMetric;

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
        // A statement under a condition counts as if the condition held.
        .map(|s| match s.get("Fn::If") {
            Some(branches) => {
                assert_eq!(branches[2], json!({"Ref": "AWS::NoValue"}), "{s}");
                branches[1].clone()
            }
            None => s,
        })
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
    // A message that expires on the source queue goes to no DLQ: both keep messages as long as
    // SQS allows (14 days), so a stalled consumer loses no user for two weeks.
    assert_eq!(queue["MessageRetentionPeriod"], 1_209_600);
    assert_eq!(dlq["SqsManagedSseEnabled"], true);

    let (_, mapping) = resources_of_type(&t, "AWS::Lambda::EventSourceMapping")[0];
    assert_eq!(
        mapping["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert!(mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"].is_object());
}

#[test]
fn a_full_batch_runs_at_once_within_the_consumers_timeout() {
    let t = template();
    let consumer = &resource(&t, "ConsumerFunction")["Properties"];
    let env = &consumer["Environment"]["Variables"];
    // Every record of a batch gets a slot at once, so none waits out the deadline and uses up a
    // receive for nothing...
    assert_eq!(
        env["MAX_CONCURRENT_RECORDS"],
        json!({"Fn::Sub": "${ConsumerBatchSize}"})
    );
    // ...and the largest batch is one the consumer accepts as its concurrency (at most 1000).
    let batch = parameter(&t, "ConsumerBatchSize");
    assert!(batch["MaxValue"].as_u64().unwrap() <= 100, "{batch}");
    // The consumer checks its deadline margin against its own timeout.
    assert_eq!(
        env["FUNCTION_TIMEOUT_SECONDS"],
        json!(consumer["Timeout"].as_u64().unwrap().to_string())
    );
}

#[test]
fn a_metrics_namespace_cloudwatch_refuses_is_refused_by_the_template() {
    let t = template();
    let pattern = parameter(&t, "MetricsNamespace")["AllowedPattern"]
        .as_str()
        .unwrap()
        .to_owned();
    // CloudFormation matches AllowedPattern as a Java regular expression; Python's `re` reads
    // this one (a negative lookahead) the same way.
    let python = e2e::paths::venv_python().unwrap_or_else(|e| panic!("{e:#}"));
    let check = |namespace: &str| -> bool {
        let output = std::process::Command::new(&python)
            .args([
                "-c",
                "import re, sys; sys.exit(0 if re.fullmatch(sys.argv[1], sys.argv[2]) else 1)",
            ])
            .args([&pattern, namespace])
            .output()
            .unwrap();
        output.status.success()
    };
    assert!(check("CognitoUserSync"));
    assert!(check("team/sync"));
    assert!(!check("AWS/Lambda"), "{pattern}");
    assert!(!check("with space"), "{pattern}");
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
    for (name, key) in [("UsersTable", USERS_KEY), ("ProfilesTable", PROFILES_KEY)] {
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
    assert_eq!(gsi["KeySchema"][0]["AttributeName"], USERS_KEY);
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
fn consumer_may_only_read_and_conditionally_write_the_tables_read_the_pool_and_its_queue() {
    let t = template();
    let statements = allowed(resource(&t, "ConsumerRole"));
    for (actions, resources) in &statements {
        for action in actions {
            match action.as_str() {
                // The reads and conditional writes the consumer makes, on the two tables only.
                "dynamodb:GetItem" | "dynamodb:PutItem" | "dynamodb:UpdateItem" => {
                    let tables = resources.as_array().expect("a list of tables");
                    assert_eq!(tables.len(), 2);
                    for table in tables {
                        let target = &table["Fn::GetAtt"][0];
                        assert!(target == "UsersTable" || target == "ProfilesTable", "{table}");
                    }
                }
                // The user reads of a refresh, on the stack's pool only.
                "cognito-idp:AdminGetUser" | "cognito-idp:ListUsers" => {
                    let arn = resources["Fn::Sub"][0].as_str().expect("the pool's ARN");
                    assert!(arn.ends_with(":userpool/${PoolId}"), "{resources}");
                    assert_eq!(
                        resources["Fn::Sub"][1]["PoolId"]["Fn::If"][0],
                        json!("CreateUserPool"),
                        "{resources}"
                    );
                }
                // Exactly what the event source mapping uses; the function itself calls no SQS
                // API, so sqs:ChangeMessageVisibility (allowed before) is refused here.
                "sqs:ReceiveMessage" | "sqs:DeleteMessage" | "sqs:GetQueueAttributes" => {
                    assert_eq!(*resources, json!({"Fn::GetAtt": ["SyncQueue", "Arn"]}))
                }
                // A first sign-up's welcome is asked for on the welcome queue: the welcomer
                // sends it, so the consumer has no SES permission at all.
                "sqs:SendMessage" => {
                    assert_eq!(*resources, json!({"Fn::GetAtt": ["WelcomeQueue", "Arn"]}))
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
    // No wildcard actions or resources in any role (a KMS key policy's "*" means the key itself),
    // but for an action IAM scopes to no resource (ses:GetAccount); the welcomer's SES identities
    // are pinned by a condition (the_welcomer_may_send_from_the_one_address_and_nothing_else).
    for (_, role) in resources_of_type(&t, "AWS::IAM::Role") {
        for (actions, resources) in allowed(role) {
            assert!(actions.iter().all(|a| !a.contains('*')), "{actions:?}");
            if resources.to_string().contains("\"*\"") {
                assert_eq!(actions, ["ses:GetAccount"], "{resources}");
            }
        }
    }
}

#[test]
fn the_welcome_is_off_unless_a_sender_identity_is_given() {
    let t = template();
    assert_eq!(
        t["Conditions"]["SendWelcome"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "WelcomeSenderIdentity"}, ""]}]})
    );
    assert_eq!(parameter(&t, "WelcomeSenderIdentity")["Default"], "");
    // The welcomer and everything only it uses exist only with the welcome on.
    for name in [
        "WelcomerFunction",
        "WelcomerRole",
        "WelcomerLogGroup",
        "WelcomeEventDestination",
        "WelcomeProblemsRule",
    ] {
        assert_eq!(resource(&t, name)["Condition"], "SendWelcome", "{name}");
    }
    // The consumer asks for welcomes only then, and may send to the welcome queue only then.
    let env = &resource(&t, "ConsumerFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["WELCOME_QUEUE_URL"],
        json!({"Fn::If": ["SendWelcome", {"Ref": "WelcomeQueue"}, ""]})
    );
    for name in [
        "WELCOME_SENDER_IDENTITY",
        "WELCOME_FROM_ADDRESS",
        "WELCOME_CONFIGURATION_SET",
    ] {
        assert!(env.get(name).is_none(), "the consumer sends no mail: {name}");
    }
    let statements: Vec<Value> = resource(&t, "ConsumerRole")["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.to_string().contains("WelcomeQueue"))
        .cloned()
        .collect();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Fn::If"][0], "SendWelcome", "{statements:?}");
}

/// The welcomer's `ses:SendEmail` statement.
fn welcomer_send_statement(t: &Value) -> Value {
    let statements: Vec<Value> = allowed_statements(resource(t, "WelcomerRole"))
        .into_iter()
        .filter(|s| s["Action"] == "ses:SendEmail")
        .collect();
    assert_eq!(statements.len(), 1, "{statements:?}");
    statements[0].clone()
}

/// A role's Allow statements, as written.
fn allowed_statements(role: &Value) -> Vec<Value> {
    role["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
        .filter(|s| s["Effect"] == "Allow")
        .collect()
}

/// A template value resolved for a deploy with `parameters` in account 111122223333, us-east-1:
/// `Ref`, `Fn::Sub` of a string and `Fn::If` of the welcome's conditions.
fn resolve(t: &Value, value: &Value, parameters: &[(&str, &str)]) -> Option<Value> {
    let param = |name: &str| -> String {
        parameters
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| t["Parameters"][name]["Default"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let condition = |name: &str| -> bool {
        match name {
            "SendWelcome" => !param("WelcomeSenderIdentity").is_empty(),
            "WelcomeWithSesTemplate" => !param("WelcomeSesTemplate").is_empty(),
            "WelcomeWithFromAddress" => !param("WelcomeFromAddress").is_empty(),
            "CreateWelcomeConfigurationSet" => param("WelcomeConfigurationSet").is_empty(),
            other => panic!("condition {other} not modelled here"),
        }
    };
    Some(match value {
        Value::Object(o) if o.contains_key("Ref") => {
            let name = o["Ref"].as_str().unwrap();
            if name == "AWS::NoValue" {
                return None;
            }
            json!(param(name))
        }
        Value::Object(o) if o.contains_key("Fn::Sub") => {
            let mut text = o["Fn::Sub"].as_str().unwrap().to_owned();
            for (key, with) in [
                ("${AWS::Partition}", "aws"),
                ("${AWS::Region}", "us-east-1"),
                ("${AWS::AccountId}", "111122223333"),
            ] {
                text = text.replace(key, with);
            }
            while let Some(start) = text.find("${") {
                let end = text[start..].find('}').unwrap() + start;
                let name = text[start + 2..end].to_owned();
                text.replace_range(start..=end, &param(&name));
            }
            json!(text)
        }
        Value::Object(o) if o.contains_key("Fn::If") => {
            let branches = o["Fn::If"].as_array().unwrap();
            let chosen = if condition(branches[0].as_str().unwrap()) {
                &branches[1]
            } else {
                &branches[2]
            };
            return resolve(t, chosen, parameters);
        }
        Value::Array(items) => Value::Array(items.iter().filter_map(|i| resolve(t, i, parameters)).collect()),
        other => other.clone(),
    })
}

/// Whether the welcomer's role allows `ses:SendEmail` on `resource` for a mail from `from`, as
/// IAM evaluates the statement (a trailing `*` matches any rest; `StringEquals` on
/// `ses:FromAddress`).
fn allows_send(t: &Value, parameters: &[(&str, &str)], resource: &str, from: &str) -> bool {
    let statement = welcomer_send_statement(t);
    let resources = resolve(t, &statement["Resource"], parameters).unwrap();
    let matches = resources.as_array().unwrap().iter().any(|r| {
        let pattern = r.as_str().unwrap();
        match pattern.strip_suffix('*') {
            Some(prefix) => resource.starts_with(prefix),
            None => resource == pattern,
        }
    });
    let pinned = resolve(
        t,
        &statement["Condition"]["StringEquals"]["ses:FromAddress"],
        parameters,
    )
    .unwrap();
    matches && pinned == json!(from)
}

#[test]
fn the_welcomer_may_send_from_the_one_address_whatever_identities_ses_evaluates() {
    let t = template();
    let arn = |kind: &str, name: &str| format!("arn:aws:ses:us-east-1:111122223333:{kind}/{name}");
    // A domain identity, sending from an address at it, with the team's configuration set.
    let domain = [
        ("WelcomeSenderIdentity", "example.com"),
        ("WelcomeFromAddress", "hello@example.com"),
        ("WelcomeConfigurationSet", "team-set"),
    ];
    // What SES evaluates in each setup AWS's users meet (README, "Welcome email"):
    for (setup, resource) in [
        ("the sender's identity", arn("identity", "example.com")),
        (
            "the configuration set named",
            arn("configuration-set", "team-set"),
        ),
        // The identity's default configuration set, should SES evaluate it too.
        (
            "the identity's default configuration set",
            arn("configuration-set", "team-default"),
        ),
        // In the sandbox, each recipient's identity.
        (
            "a recipient's identity in the sandbox",
            arn("identity", "ana@example.org"),
        ),
        // The From address verified as an identity of its own, beside its domain.
        (
            "the address identity beside its domain",
            arn("identity", "hello@example.com"),
        ),
    ] {
        assert!(
            allows_send(&t, &domain, &resource, "hello@example.com"),
            "{setup}: {resource}"
        );
        // Pinned: from any other address, nothing.
        assert!(
            !allows_send(&t, &domain, &resource, "ceo@example.com"),
            "{setup}: {resource}"
        );
    }
    // An address identity with no From address sends from itself; a template is named exactly.
    let address = [
        ("WelcomeSenderIdentity", "welcome@example.com"),
        ("WelcomeSesTemplate", "welcome_v1"),
    ];
    assert!(allows_send(
        &t,
        &address,
        &arn("identity", "welcome@example.com"),
        "welcome@example.com"
    ));
    assert!(allows_send(
        &t,
        &address,
        &arn("template", "welcome_v1"),
        "welcome@example.com"
    ));
    assert!(!allows_send(
        &t,
        &address,
        &arn("template", "other"),
        "welcome@example.com"
    ));
    // Nothing but SendEmail and the quota read of SES.
    let ses_actions: BTreeSet<String> = allowed(resource(&t, "WelcomerRole"))
        .into_iter()
        .flat_map(|(actions, _)| actions)
        .filter(|a| a.starts_with("ses:"))
        .collect();
    assert_eq!(
        ses_actions,
        BTreeSet::from(["ses:GetAccount".to_owned(), "ses:SendEmail".to_owned()])
    );
}

#[test]
fn the_welcomer_may_only_claim_and_record_on_the_users_item_send_and_consume_its_queue() {
    let t = template();
    for (actions, resources) in allowed(resource(&t, "WelcomerRole")) {
        for action in &actions {
            match action.as_str() {
                "dynamodb:UpdateItem" => assert_eq!(resources, json!({"Fn::GetAtt": ["UsersTable", "Arn"]})),
                "sqs:ReceiveMessage"
                | "sqs:DeleteMessage"
                | "sqs:GetQueueAttributes"
                | "sqs:ChangeMessageVisibility" => {
                    assert_eq!(resources, json!({"Fn::GetAtt": ["WelcomeQueue", "Arn"]}))
                }
                "ses:SendEmail" | "ses:GetAccount" | "logs:CreateLogStream" | "logs:PutLogEvents" => {}
                other => panic!("the welcomer must not be allowed {other}"),
            }
        }
    }
    assert!(
        resource(&t, "WelcomerRole")["Properties"]
            .get("ManagedPolicyArns")
            .is_none()
    );
}

#[test]
fn a_welcome_is_retried_for_more_than_a_day_before_the_welcome_dlq_and_the_welcomer_paces_its_share() {
    let t = template();
    let queue = &resource(&t, "WelcomeQueue")["Properties"];
    assert_eq!(
        queue["RedrivePolicy"]["maxReceiveCount"].as_u64(),
        Some(u64::from(welcome::backoff::GIVE_UP_AFTER_RECEIVES))
    );
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["WelcomeDeadLetterQueue", "Arn"]})
    );
    let patience = welcome::backoff::patience(welcome::backoff::FIRST_RETRY).as_secs();
    assert!(patience > 86_400, "{patience}");
    assert!(
        queue["MessageRetentionPeriod"].as_u64().unwrap() > patience,
        "a message outlives its tries"
    );
    let function = &resource(&t, "WelcomerFunction")["Properties"];
    let timeout = function["Timeout"].as_u64().unwrap();
    assert_eq!(queue["VisibilityTimeout"].as_u64(), Some(6 * timeout));
    let env = &function["Environment"]["Variables"];
    assert_eq!(env["FUNCTION_TIMEOUT_SECONDS"], json!(timeout.to_string()));
    let mappings: Vec<&Value> = resources_of_type(&t, "AWS::Lambda::EventSourceMapping")
        .into_iter()
        .map(|(_, m)| &m["Properties"])
        .filter(|p| p["FunctionName"] == json!({"Ref": "WelcomerFunction"}))
        .collect();
    let [event] = mappings.as_slice() else {
        panic!("one event source for the welcomer: {mappings:?}");
    };
    assert_eq!(
        event["EventSourceArn"],
        json!({"Fn::GetAtt": ["WelcomeQueue", "Arn"]})
    );
    assert_eq!(event["FunctionResponseTypes"], json!(["ReportBatchItemFailures"]));
    // Each environment divides the rate by the most environments the queue runs at once.
    assert_eq!(
        env["WELCOME_MAX_CONCURRENCY"],
        json!(event["ScalingConfig"]["MaximumConcurrency"].to_string())
    );
    assert_eq!(
        env["WELCOME_SEND_RATE_PERCENT"],
        json!({"Fn::Sub": "${WelcomeSendRatePercent}"})
    );
    assert_eq!(parameter(&t, "WelcomeSendRatePercent")["Default"], 50);
}

#[test]
fn what_ses_reports_of_this_stacks_welcomes_reaches_the_welcome_queue() {
    let t = template();
    // Every welcome is sent with a configuration set: the team's, or one the stack creates.
    let env = &resource(&t, "WelcomerFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["WELCOME_CONFIGURATION_SET"],
        json!({"Fn::If": ["CreateWelcomeConfigurationSet", {"Ref": "WelcomeEventsConfigurationSet"}, {"Ref": "WelcomeConfigurationSet"}]})
    );
    assert_eq!(
        resource(&t, "WelcomeEventsConfigurationSet")["Condition"],
        "CreateWelcomeConfigurationSet"
    );
    assert_eq!(env["WELCOME_STACK_TAG"], json!({"Ref": "AWS::StackName"}));
    // Its event destination publishes the problems to EventBridge's default bus (SES's only
    // choice), into that same set.
    let destination = &resource(&t, "WelcomeEventDestination")["Properties"];
    assert_eq!(
        destination["ConfigurationSetName"],
        env["WELCOME_CONFIGURATION_SET"]
    );
    let sent = &destination["EventDestination"];
    assert_eq!(sent["Enabled"], true);
    assert_eq!(
        sent["MatchingEventTypes"],
        json!([
            "bounce",
            "complaint",
            "reject",
            "renderingFailure",
            "deliveryDelay"
        ])
    );
    assert_eq!(
        sent["EventBridgeDestination"]["EventBusArn"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"})
    );
    // The rule takes this stack's (by the tag the welcomer sets) to the welcome queue.
    let rule = &resource(&t, "WelcomeProblemsRule")["Properties"];
    let pattern = &rule["EventPattern"];
    assert_eq!(pattern["source"], json!(["aws.ses"]));
    assert_eq!(
        pattern["detail"]["mail"]["tags"][welcome::message::STACK_TAG],
        json!([{"Ref": "AWS::StackName"}])
    );
    assert_eq!(pattern["detail-type"].as_array().unwrap().len(), 5);
    assert_eq!(
        rule["Targets"][0]["Arn"],
        json!({"Fn::GetAtt": ["WelcomeQueue", "Arn"]})
    );
    assert_eq!(
        rule["Targets"][0]["DeadLetterConfig"]["Arn"],
        json!({"Fn::GetAtt": ["WelcomeDeadLetterQueue", "Arn"]})
    );
    let policy = resource(&t, "WelcomeQueuePolicy")["Properties"]["PolicyDocument"]["Statement"].to_string();
    assert!(
        policy.contains(r#"{"Fn::GetAtt":["WelcomeProblemsRule","Arn"]}"#),
        "{policy}"
    );
    // The backlog alarm reads the welcomer's age of each welcome, not SQS's age of the oldest
    // message (which leaves out a message received three times or more).
    let backlog = &resource(&t, "WelcomeBacklogAlarm")["Properties"];
    assert_eq!(backlog["MetricName"], WelcomerMetric::WelcomeAge.name());
    assert_eq!(WelcomerMetric::WelcomeAge.unit(), Unit::Milliseconds);
    assert_eq!(backlog["Namespace"], json!({"Ref": "MetricsNamespace"}));
    assert_eq!(backlog["Statistic"], "Maximum");
    assert_eq!(backlog["Threshold"].as_f64(), Some(3_600_000.0), "an hour, in ms");
    // A welcome waiting on SES is handled at least once an hour: a period that long sees it.
    assert_eq!(backlog["Period"], 3600);
    assert_eq!(
        welcome::backoff::retry_delay(u32::MAX, welcome::backoff::FIRST_RETRY).as_secs(),
        3600
    );
    // The undelivered alarm adds up what did not reach the user.
    let metrics = resource(&t, "WelcomeUndeliveredAlarm")["Properties"]["Metrics"].to_string();
    for metric in [
        WelcomerMetric::WelcomeRenderingFailed,
        WelcomerMetric::WelcomeRejected,
        WelcomerMetric::WelcomeBounced,
        WelcomerMetric::WelcomeComplained,
    ] {
        assert!(metrics.contains(metric.name()), "{}", metric.name());
    }
}

#[test]
fn reconciler_may_only_list_the_pool_read_the_tables_and_send_to_its_queues() {
    let t = template();
    for (actions, resources) in allowed(resource(&t, "ReconcilerRole")) {
        for action in &actions {
            match action.as_str() {
                "cognito-idp:ListUsers" => {
                    let arn = resources["Fn::Sub"][0].as_str().expect("the pool's ARN");
                    assert!(arn.ends_with(":userpool/${PoolId}"), "{resources}");
                }
                "dynamodb:BatchGetItem" => assert_eq!(
                    resources,
                    json!([{"Fn::GetAtt": ["UsersTable", "Arn"]}, {"Fn::GetAtt": ["ProfilesTable", "Arn"]}])
                ),
                // The deletion check scans the users table, and nothing else.
                "dynamodb:Scan" => assert_eq!(resources, json!({"Fn::GetAtt": ["UsersTable", "Arn"]})),
                // Refresh signals to the sync queue; the run's cursor through its own queue.
                "sqs:SendMessage" => assert!(
                    resources == json!({"Fn::GetAtt": ["SyncQueue", "Arn"]})
                        || resources == json!({"Fn::GetAtt": ["ReconcileQueue", "Arn"]}),
                    "{resources}"
                ),
                "sqs:ReceiveMessage" | "sqs:DeleteMessage" | "sqs:GetQueueAttributes" => {
                    assert_eq!(resources, json!({"Fn::GetAtt": ["ReconcileQueue", "Arn"]}))
                }
                // Its one write: the claim of a step in the run's state item.
                "dynamodb:UpdateItem" => {
                    assert_eq!(resources, json!({"Fn::GetAtt": ["ReconcileStateTable", "Arn"]}))
                }
                "logs:CreateLogStream" | "logs:PutLogEvents" => {}
                other => panic!("the reconciler must not be allowed {other} (it writes no user table)"),
            }
        }
    }
    // ... and only the pool's own item of that table.
    let statements =
        resource(&t, "ReconcilerRole")["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .expect("the reconciler's statements")
            .clone();
    let claim = statements
        .iter()
        .find(|s| s["Action"] == json!("dynamodb:UpdateItem"))
        .expect("the reconciler claims its steps");
    assert_eq!(
        claim["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"][0]["Fn::If"][0],
        json!("CreateUserPool"),
        "{claim}"
    );
    assert_eq!(
        resource(&t, "ReconcilerFunction")["Properties"]["Environment"]["Variables"]["RECONCILE_STATE_TABLE"],
        json!({"Ref": "ReconcileStateTable"})
    );
    assert!(
        resource(&t, "ReconcilerRole")["Properties"]
            .get("ManagedPolicyArns")
            .is_none()
    );
    // The schedule may only put a start on the reconcile queue.
    let schedule_role = allowed(resource(&t, "ReconcileScheduleRole"));
    assert_eq!(
        schedule_role,
        vec![(
            vec!["sqs:SendMessage".to_owned()],
            json!({"Fn::GetAtt": ["ReconcileQueue", "Arn"]})
        )]
    );
}

#[test]
fn the_schedule_starts_a_run_every_period_and_can_be_turned_off() {
    let t = template();
    let schedule = &resource(&t, "ReconcileSchedule");
    assert_eq!(schedule["Condition"], "ScheduleReconcile");
    let p = &schedule["Properties"];
    assert_eq!(
        p["Target"]["Arn"],
        json!({"Fn::GetAtt": ["ReconcileQueue", "Arn"]})
    );
    // The schedule's message is one the reconciler reads as a start.
    let input = p["Target"]["Input"].as_str().unwrap();
    assert!(matches!(
        drift::cursor::decode(input),
        Ok(drift::RunMessage::Start { .. })
    ));
    assert_eq!(
        parameter(&t, "ReconcileEveryHours")["Default"],
        "24",
        "daily by default"
    );
    let off = e2e::stack::translate(&[
        ("ExistingUserPoolId", "us-east-1_Abc123"),
        ("ReconcileEveryHours", "off"),
    ])
    .expect("translates");
    let off: Value = serde_json::from_str(&off).unwrap();
    assert_eq!(
        off["Conditions"]["ScheduleReconcile"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "ReconcileEveryHours"}, "off"]}]})
    );
    // Every period the parameter allows has its minutes and seconds, and the runs the drift
    // alarm looks back over (at least two, three where they fit) fit in the seven days an
    // alarm can evaluate.
    let periods = &t["Mappings"]["ReconcilePeriods"];
    for hours in parameter(&t, "ReconcileEveryHours")["AllowedValues"]
        .as_array()
        .unwrap()
    {
        let hours = hours.as_str().unwrap();
        if hours == "off" {
            continue;
        }
        let n: u64 = hours.parse().unwrap();
        assert_eq!(periods[hours]["Minutes"], json!(n * 60), "{hours}");
        assert_eq!(periods[hours]["Seconds"], json!(n * 3600), "{hours}");
        let runs = periods[hours]["Runs"]
            .as_u64()
            .expect("the runs the alarm evaluates");
        assert!(runs * n * 3600 <= 604_800, "{hours}");
        assert!(
            runs == 3 || (runs == 2 && 3 * n * 3600 > 604_800),
            "{hours}: {runs}"
        );
    }
    let drift = &resource(&t, "ReconcileDriftAlarm")["Properties"];
    assert_eq!(drift["DatapointsToAlarm"], 2, "{drift}");
    assert_eq!(
        drift["EvaluationPeriods"],
        json!({"Fn::FindInMap": ["ReconcilePeriods", {"Ref": "ReconcileEveryHours"}, "Runs"]})
    );
    assert_eq!(
        drift["Period"],
        json!({"Fn::FindInMap": ["ReconcilePeriods", {"Ref": "ReconcileEveryHours"}, "Seconds"]})
    );
    // The rate stays well under the UserList quota of 30/s.
    let rate = parameter(&t, "ReconcileListsPerSecond");
    assert!(rate["Default"].as_u64().unwrap() <= 5 && rate["MaxValue"].as_u64().unwrap() < 30);
    let env = &resource(&t, "ReconcilerFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["RECONCILE_LISTS_PER_SECOND"],
        json!({"Fn::Sub": "${ReconcileListsPerSecond}"})
    );
    // The queue outlasts an invocation, so a killed one's message comes back, and a cursor
    // failing again and again stops in the DLQ.
    let queue = &resource(&t, "ReconcileQueue")["Properties"];
    let timeout = resource(&t, "ReconcilerFunction")["Properties"]["Timeout"]
        .as_u64()
        .unwrap();
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= timeout);
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]})
    );
}

#[test]
fn the_consumers_cognito_reads_stay_under_the_accounts_quotas_at_any_concurrency() {
    let t = template();
    let consumer = &resource(&t, "ConsumerFunction")["Properties"];
    let env = &consumer["Environment"]["Variables"];
    // Each environment takes its share of the rate: the consumer divides by the same
    // concurrency the event source is capped at.
    let mappings: Vec<_> = resources_of_type(&t, "AWS::Lambda::EventSourceMapping")
        .into_iter()
        .filter(|(_, m)| m["Properties"]["FunctionName"] == json!({"Ref": "ConsumerFunction"}))
        .collect();
    let [(_, mapping)] = mappings.as_slice() else {
        panic!("one event source mapping for the consumer, the sync queue's: {mappings:?}");
    };
    let scaling = &mapping["Properties"]["ScalingConfig"];
    assert_eq!(ref_of(&scaling["MaximumConcurrency"]), "ConsumerMaxConcurrency");
    assert_eq!(
        env["CONSUMER_MAX_CONCURRENCY"],
        json!({"Fn::Sub": "${ConsumerMaxConcurrency}"})
    );
    assert!(
        parameter(&t, "ConsumerMaxConcurrency")["MaxValue"]
            .as_u64()
            .unwrap()
            <= 1000
    );
    // The rates for the whole consumer leave room under UserRead (120/s) and UserList (30/s).
    for (variable, parameter_name, quota) in [
        ("COGNITO_GETS_PER_SECOND", "CognitoReadsPerSecond", 120),
        ("COGNITO_LISTS_PER_SECOND", "CognitoListsPerSecond", 30),
    ] {
        assert_eq!(
            env[variable],
            json!({"Fn::Sub": format!("${{{parameter_name}}}")})
        );
        let rate = parameter(&t, parameter_name);
        assert!(rate["MaxValue"].as_u64().unwrap() < quota, "{rate}");
        assert!(rate["Default"].as_u64().unwrap() <= quota / 2, "{rate}");
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

// ------------------------------------------------------------------ operations --

/// The custom metrics the functions emit (Embedded Metric Format), and so what the dashboard
/// and the alarms may rely on: each function's own list, with its unit.
fn custom_metrics() -> Vec<(&'static str, Unit)> {
    let trigger = TriggerMetric::ALL.iter().map(|m| (m.name(), m.unit()));
    let consumer = ConsumerMetric::ALL.iter().map(|m| (m.name(), m.unit()));
    let reconciler = InvocationMetric::ALL.iter().map(|m| (m.name(), m.unit()));
    let runs = RunMetric::ALL.iter().map(|m| (m.name(), m.unit()));
    let welcomer = WelcomerMetric::ALL.iter().map(|m| (m.name(), m.unit()));
    trigger
        .chain(consumer)
        .chain(reconciler)
        .chain(runs)
        .chain(welcomer)
        .collect()
}

/// Every alarm, with the section of docs/runbook.md its description must point at.
const ALARMS: [(&str, &str); 14] = [
    ("DeadLetterQueueNotEmptyAlarm", "dlq-not-empty"),
    ("QueueMessageAgeAlarm", "queue-message-age"),
    ("TriggerErrorsAlarm", "trigger-errors"),
    ("ConsumerErrorsAlarm", "consumer-errors"),
    ("TriggerThrottlesAlarm", "trigger-throttles"),
    ("ConsumerThrottlesAlarm", "consumer-throttles"),
    ("EnqueueFailedAlarm", "enqueue-failed"),
    ("TriggerDurationP99Alarm", "trigger-duration-p99"),
    ("ReconcileDriftAlarm", "scheduled-reconciliation"),
    (
        "ReconcileDeadLetterQueueNotEmptyAlarm",
        "scheduled-reconciliation",
    ),
    ("WelcomeFailedAlarm", "welcome-email"),
    ("WelcomeBacklogAlarm", "welcome-email"),
    ("WelcomeDeadLetterQueueNotEmptyAlarm", "welcome-email"),
    ("WelcomeUndeliveredAlarm", "welcome-email"),
];

/// Template parameters that the dashboard body uses as JSON numbers (outside quotes).
const NUMERIC_SUB_PARAMETERS: [&str; 2] = ["QueueAgeAlarmSeconds", "TriggerDurationAlarmMs"];

/// One row of a metric widget: namespace, metric name, dimensions, and the statistic (the row's
/// own, else the widget's).
#[derive(Debug)]
struct MetricRow {
    widget: String,
    namespace: String,
    metric: String,
    dimensions: Vec<(String, String)>,
    stat: Option<String>,
}

/// The dashboard's body, a `Fn::Sub` string, parsed as JSON with each `${X}` replaced by `{X}`
/// (inside strings) or by 1 (the numeric parameters), so that the references stay visible.
fn dashboard_body(t: &Value) -> Value {
    let dashboards = resources_of_type(t, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let body = &dashboards[0].1["Properties"]["DashboardBody"];
    let text = body["Fn::Sub"]
        .as_str()
        .unwrap_or_else(|| panic!("DashboardBody is a Fn::Sub of a string: {body}"));
    let mut substituted = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        substituted.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${...}") + start;
        let name = &rest[start + 2..end];
        if NUMERIC_SUB_PARAMETERS.contains(&name) {
            substituted.push('1');
        } else {
            substituted.push_str(&format!("{{{name}}}"));
        }
        rest = &rest[end + 1..];
    }
    substituted.push_str(rest);
    serde_json::from_str(&substituted)
        .unwrap_or_else(|err| panic!("the dashboard body is not JSON: {err}\n{substituted}"))
}

fn widgets(body: &Value) -> &Vec<Value> {
    body["widgets"].as_array().expect("widgets")
}

fn metric_rows(body: &Value) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    for widget in widgets(body).iter().filter(|w| w["type"] == "metric") {
        let p = &widget["properties"];
        let title = p["title"].as_str().unwrap_or_default().to_owned();
        assert_eq!(p["region"], "{AWS::Region}", "widget {title}");
        for row in p["metrics"].as_array().expect("metrics") {
            let row = row.as_array().expect("a metric row is an array");
            let strings: Vec<&str> = row.iter().filter_map(Value::as_str).collect();
            assert!(
                strings.len() >= 2 && strings.len().is_multiple_of(2),
                "widget {title}: namespace, metric name and dimension pairs in full: {row:?}"
            );
            assert!(
                !strings.contains(&"."),
                "widget {title}: no \".\" shorthand, so every row can be checked: {row:?}"
            );
            let options = row.iter().find(|v| v.is_object());
            let stat = options
                .and_then(|o| o["stat"].as_str())
                .or_else(|| p["stat"].as_str())
                .map(str::to_owned);
            rows.push(MetricRow {
                widget: title.clone(),
                namespace: strings[0].to_owned(),
                metric: strings[1].to_owned(),
                dimensions: strings[2..]
                    .chunks(2)
                    .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
                    .collect(),
                stat,
            });
        }
    }
    rows
}

fn shows(rows: &[MetricRow], namespace: &str, metric: &str, dimension: (&str, &str), stat: &str) -> bool {
    rows.iter().any(|r| {
        r.namespace == namespace
            && r.metric == metric
            && r.dimensions == [(dimension.0.to_owned(), dimension.1.to_owned())]
            && r.stat.as_deref() == Some(stat)
    })
}

fn parameter<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["Parameters"]
        .get(name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

/// The `Ref` of a `{"Ref": X}` value.
fn ref_of(value: &Value) -> &str {
    value["Ref"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a Ref, got {value}"))
}

#[test]
fn both_functions_get_the_metrics_namespace_and_service() {
    let t = template();
    for name in ["TriggerFunction", "ConsumerFunction"] {
        let p = &resource(&t, name)["Properties"];
        let env = &p["Environment"]["Variables"];
        assert_eq!(
            env["METRICS_NAMESPACE"],
            json!({"Ref": "MetricsNamespace"}),
            "{name}"
        );
        assert_eq!(env["METRICS_SERVICE"], json!({"Ref": "AWS::StackName"}), "{name}");
        // The EMF lines have no "level", so Lambda files them as INFO: a higher application
        // log level would drop every custom metric.
        let level = p["LoggingConfig"]["ApplicationLogLevel"].as_str().unwrap();
        assert!(["TRACE", "DEBUG", "INFO"].contains(&level), "{name}: {level}");
    }
    assert_eq!(parameter(&t, "MetricsNamespace")["Default"], "CognitoUserSync");
}

#[test]
fn dashboard_shows_the_queues_both_functions_and_every_custom_metric() {
    let t = template();
    let body = dashboard_body(&t);
    let rows = metric_rows(&body);

    // The custom metrics: where the functions put them (namespace and Service dimension).
    let trigger_env = &resource(&t, "TriggerFunction")["Properties"]["Environment"]["Variables"];
    let namespace = format!("{{{}}}", ref_of(&trigger_env["METRICS_NAMESPACE"]));
    let service = format!("{{{}}}", ref_of(&trigger_env["METRICS_SERVICE"]));
    let metrics = custom_metrics();
    assert!(metrics.len() > 2, "{metrics:?}");
    for (metric, unit) in metrics {
        // A counter is summed; a sample (a latency) is shown by its percentiles.
        let stat = if unit == Unit::Count { "Sum" } else { "p99" };
        assert!(
            shows(&rows, &namespace, metric, ("Service", &service), stat),
            "the dashboard does not show {metric} ({stat}) under {namespace}, Service={service}: {rows:#?}"
        );
    }
    let sync_lag = ConsumerMetric::SyncLag.name();
    assert!(shows(&rows, &namespace, sync_lag, ("Service", &service), "p50"));

    // The queue, its age, the DLQ.
    let sync_queue = ("QueueName", "{SyncQueue.QueueName}");
    let dlq = ("QueueName", "{SyncDeadLetterQueue.QueueName}");
    for (metric, queue) in [
        ("ApproximateNumberOfMessagesVisible", sync_queue),
        ("ApproximateNumberOfMessagesNotVisible", sync_queue),
        ("ApproximateAgeOfOldestMessage", sync_queue),
        ("ApproximateNumberOfMessagesVisible", dlq),
    ] {
        assert!(
            shows(&rows, "AWS/SQS", metric, queue, "Maximum"),
            "the dashboard does not show {metric} of {}",
            queue.1
        );
    }

    // Both functions.
    for function in ["{TriggerFunction}", "{ConsumerFunction}"] {
        for (metric, stat) in [
            ("Invocations", "Sum"),
            ("Errors", "Sum"),
            ("Throttles", "Sum"),
            ("Duration", "p99"),
        ] {
            assert!(
                shows(&rows, "AWS/Lambda", metric, ("FunctionName", function), stat),
                "the dashboard does not show {function} {metric} ({stat})"
            );
        }
    }

    // The trigger's duration against Cognito's 5 s budget.
    let trigger_duration = rows
        .iter()
        .find(|r| r.metric == "Duration" && r.dimensions.first().is_some_and(|d| d.1 == "{TriggerFunction}"))
        .unwrap();
    let widget = widgets(&body)
        .iter()
        .find(|w| w["properties"]["title"] == trigger_duration.widget.as_str())
        .unwrap();
    let budget = widget["properties"]["annotations"]["horizontal"]
        .as_array()
        .expect("horizontal annotations on the trigger's duration")
        .iter()
        .any(|a| a["value"] == 5000);
    assert!(budget, "no 5000 ms annotation on {}", trigger_duration.widget);

    // The state of every alarm, at a glance (the runbook's first step).
    let alarm_widget = widgets(&body)
        .iter()
        .find(|w| w["type"] == "alarm")
        .expect("an alarm status widget");
    let listed = alarm_widget["properties"]["alarms"].to_string();
    for (alarm, _) in ALARMS {
        assert!(
            listed.contains(&format!(":alarm:{{{alarm}}}")),
            "{alarm} not in {listed}"
        );
    }

    // Widgets fit the 24-column grid and do not overlap.
    let mut cells = BTreeSet::new();
    for w in widgets(&body) {
        let (x, y, width, height) = (
            w["x"].as_u64().unwrap(),
            w["y"].as_u64().unwrap(),
            w["width"].as_u64().unwrap(),
            w["height"].as_u64().unwrap(),
        );
        assert!(x + width <= 24, "{w}");
        for cell in (x..x + width).flat_map(|cx| (y..y + height).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "widgets overlap at {cell:?}: {w}");
        }
    }
}

/// The anchors GitHub gives the headings of a Markdown file (and explicit `id`s).
fn runbook_anchors() -> BTreeSet<String> {
    let path = e2e::paths::workspace_root().join("docs/runbook.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        if let Some(heading) = line.strip_prefix('#') {
            let slug: String = heading
                .trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect();
            anchors.insert(slug);
        }
        for part in line.split("id=\"").skip(1) {
            anchors.insert(part.split('"').next().unwrap().to_owned());
        }
    }
    anchors
}

#[test]
fn every_alarm_notifies_the_topic_and_points_at_its_runbook_section() {
    let t = template();
    let anchors = runbook_anchors();
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    assert_eq!(alarms.len(), ALARMS.len(), "every alarm is listed in ALARMS");
    for (name, anchor) in ALARMS {
        let p = &resource(&t, name)["Properties"];
        assert_eq!(p["AlarmActions"], json!([{"Ref": "AlarmTopic"}]), "{name}");
        assert_eq!(p["OKActions"], json!([{"Ref": "AlarmTopic"}]), "{name}");
        let description = p["AlarmDescription"].as_str().unwrap_or_default();
        assert!(
            description.contains(&format!("docs/runbook.md#{anchor}")),
            "{name}: {description}"
        );
        assert!(
            anchors.contains(anchor),
            "docs/runbook.md has no section #{anchor} ({name})"
        );
    }
}

#[test]
fn throttles_enqueue_failures_and_a_slow_trigger_raise_alarms() {
    let t = template();
    let alarm = |name: &str| resource(&t, name)["Properties"].clone();
    let above_zero = |p: &Value, name: &str| {
        assert_eq!(p["Statistic"], "Sum", "{name}");
        assert_eq!(p["Threshold"].as_f64(), Some(0.0), "{name}");
        assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold", "{name}");
        assert_eq!(p["TreatMissingData"], "notBreaching", "{name}");
    };

    for (name, function) in [
        ("TriggerThrottlesAlarm", "TriggerFunction"),
        ("ConsumerThrottlesAlarm", "ConsumerFunction"),
    ] {
        let p = alarm(name);
        assert_eq!(p["Namespace"], "AWS/Lambda", "{name}");
        assert_eq!(p["MetricName"], "Throttles", "{name}");
        assert_eq!(
            p["Dimensions"],
            json!([{"Name": "FunctionName", "Value": {"Ref": function}}]),
            "{name}"
        );
        above_zero(&p, name);
    }

    // EnqueueFailed, where the trigger emits it.
    let p = alarm("EnqueueFailedAlarm");
    let env = &resource(&t, "TriggerFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(p["Namespace"], env["METRICS_NAMESPACE"]);
    assert_eq!(p["MetricName"], TriggerMetric::EnqueueFailed.name());
    assert_eq!(
        p["Dimensions"],
        json!([{"Name": "Service", "Value": env["METRICS_SERVICE"]}])
    );
    above_zero(&p, "EnqueueFailedAlarm");

    // The trigger's p99 duration, well under Cognito's 5 s.
    let p = alarm("TriggerDurationP99Alarm");
    assert_eq!(p["Namespace"], "AWS/Lambda");
    assert_eq!(p["MetricName"], "Duration");
    assert_eq!(
        p["Dimensions"],
        json!([{"Name": "FunctionName", "Value": {"Ref": "TriggerFunction"}}])
    );
    assert_eq!(p["ExtendedStatistic"], "p99");
    assert!(
        p.get("Statistic").is_none(),
        "Statistic and ExtendedStatistic exclude each other"
    );
    assert_eq!(p["Threshold"], json!({"Ref": "TriggerDurationAlarmMs"}));
    assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold");
    let threshold = parameter(&t, "TriggerDurationAlarmMs");
    assert_eq!(threshold["Default"], 1500);
    assert!(threshold["MaxValue"].as_u64().unwrap() < 5000, "{threshold}");
    let description = p["AlarmDescription"].as_str().unwrap();
    assert!(
        description.contains("5 s"),
        "says why it is under Cognito's 5 s: {description}"
    );
}

#[test]
fn alarm_email_is_subscribed_only_when_given() {
    let t = template();
    assert_eq!(parameter(&t, "AlarmEmail")["Default"], "");
    let subscriptions = resources_of_type(&t, "AWS::SNS::Subscription");
    assert_eq!(subscriptions.len(), 1);
    let (_, subscription) = subscriptions[0];
    let condition = subscription["Condition"]
        .as_str()
        .expect("a conditional subscription");
    assert_eq!(
        t["Conditions"][condition],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]})
    );
    let p = &subscription["Properties"];
    assert_eq!(p["Protocol"], "email");
    assert_eq!(p["Endpoint"], json!({"Ref": "AlarmEmail"}));
    assert_eq!(p["TopicArn"], json!({"Ref": "AlarmTopic"}));
}

#[test]
fn saved_queries_read_the_functions_log_groups() {
    let t = template();
    // The log groups the queries read are the ones the functions write to.
    for (function, group) in [
        ("TriggerFunction", "TriggerLogGroup"),
        ("ConsumerFunction", "ConsumerLogGroup"),
        ("WelcomerFunction", "WelcomerLogGroup"),
    ] {
        assert_eq!(
            resource(&t, function)["Properties"]["LoggingConfig"]["LogGroup"],
            json!({"Ref": group})
        );
    }
    let queries = resources_of_type(&t, "AWS::Logs::QueryDefinition");
    let query = |needle: &str| {
        let found: Vec<&Value> = queries
            .iter()
            .map(|(_, q)| &q["Properties"])
            .filter(|p| p["QueryString"].as_str().unwrap().contains(needle))
            .collect();
        assert_eq!(found.len(), 1, "one saved query with {needle}");
        found[0].clone()
    };
    // A group under a condition counts as if the condition held.
    let groups = |p: &Value| -> BTreeSet<String> {
        p["LogGroupNames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| match g.get("Fn::If") {
                Some(branches) => ref_of(&branches[1]).to_owned(),
                None => ref_of(g).to_owned(),
            })
            .collect()
    };
    let name = |p: &Value| p["Name"]["Fn::Sub"].as_str().unwrap().to_owned();

    let failures = query(r#"filter event = "record_failed""#);
    assert!(
        failures["QueryString"]
            .as_str()
            .unwrap()
            .contains("stats count(*) as failures by reason")
    );
    assert_eq!(
        groups(&failures),
        BTreeSet::from(["ConsumerLogGroup".to_owned(), "WelcomerLogGroup".to_owned()])
    );
    assert!(name(&failures).contains("failures by reason"));

    let enqueue = query(r#"filter event = "enqueue_failed""#);
    assert!(
        enqueue["QueryString"]
            .as_str()
            .unwrap()
            .contains("fields @timestamp, user_pool_id, sub, error")
    );
    assert_eq!(groups(&enqueue), BTreeSet::from(["TriggerLogGroup".to_owned()]));
    assert!(name(&enqueue).contains("enqueue failures"));

    let journey = query("REPLACE_WITH_SUB");
    assert!(
        journey["QueryString"]
            .as_str()
            .unwrap()
            .contains(r#"sub = "REPLACE_WITH_SUB""#)
    );
    assert_eq!(
        groups(&journey),
        BTreeSet::from([
            "ConsumerLogGroup".to_owned(),
            "TriggerLogGroup".to_owned(),
            "WelcomerLogGroup".to_owned()
        ])
    );
    assert!(name(&journey).contains("journey"));

    // The placeholder is explained where the operator reads.
    let runbook = std::fs::read_to_string(e2e::paths::workspace_root().join("docs/runbook.md")).unwrap();
    assert!(runbook.contains("REPLACE_WITH_SUB"));
}

#[test]
fn every_checkov_skip_is_justified_inline() {
    let t = template();
    let mut skips = 0;
    for (name, resource) in t["Resources"].as_object().unwrap() {
        let Some(entries) = resource["Metadata"]["checkov"]["skip"].as_array() else {
            continue;
        };
        for entry in entries {
            let id = entry["id"].as_str().unwrap_or_default();
            let comment = entry["comment"].as_str().unwrap_or_default();
            assert!(id.starts_with("CKV_"), "{name}: skip without a check id: {entry}");
            assert!(
                comment.split_whitespace().count() >= 8,
                "{name}: skip of {id} is not justified: {entry}"
            );
            skips += 1;
        }
    }
    // Queues, tables and log groups (one each), the four functions (four each), the trail's
    // bucket (one) and the trail (two).
    assert_eq!(
        skips, 32,
        "a skip was added or removed: keep this count and the README in step"
    );
}

#[test]
fn the_rule_routes_exactly_the_calls_the_consumer_handles_and_admin_calls_of_this_pool_only() {
    let t = template();
    let rule = &resource(&t, "CognitoChangesRule")["Properties"];
    let pattern = &rule["EventPattern"];
    assert_eq!(pattern["source"], json!([shared::signal::COGNITO_EVENT_SOURCE]));
    assert_eq!(
        pattern["detail-type"],
        json!([shared::signal::CLOUDTRAIL_DETAIL_TYPE])
    );
    assert_eq!(
        pattern["detail"]["errorCode"],
        json!([{"exists": false}]),
        "failed calls changed nothing"
    );
    let branches = pattern["detail"]["$or"].as_array().expect("branches");
    let this_pool =
        json!([{"Fn::If": ["CreateUserPool", {"Ref": "UserPool"}, {"Ref": "ExistingUserPoolId"}]}]);
    let mut routed = BTreeSet::new();
    for branch in branches {
        let names: Vec<String> = branch["eventName"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect();
        let request = &branch["requestParameters"];
        for name in &names {
            // Admin* calls name the pool: only this stack's are routed. The others name none.
            if name.starts_with("Admin") {
                assert_eq!(request["userPoolId"], this_pool, "{branch}");
            } else {
                assert!(request.get("userPoolId").is_none(), "{branch}");
            }
            // A challenge answered is any sign-in step: only a first sign-in's new password.
            if name.ends_with("RespondToAuthChallenge") {
                assert_eq!(
                    request["challengeName"],
                    json!(["NEW_PASSWORD_REQUIRED"]),
                    "{branch}"
                );
            }
            assert!(routed.insert(name.clone()), "{name} routed twice");
        }
    }
    let handled: BTreeSet<String> = shared::signal::CognitoCall::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    assert_eq!(
        routed, handled,
        "the rule and the consumer's decoder list the same calls"
    );

    let target = &rule["Targets"][0];
    assert_eq!(target["Arn"], json!({"Fn::GetAtt": ["SyncQueue", "Arn"]}));
    assert_eq!(
        target["DeadLetterConfig"]["Arn"],
        json!({"Fn::GetAtt": ["SyncDeadLetterQueue", "Arn"]})
    );
    // EventBridge may send to the queues for this rule only.
    let statements = resource(&t, "SyncQueuePolicy")["Properties"]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    let from_events: Vec<&Value> = statements
        .iter()
        .filter(|s| s["Principal"]["Service"] == "events.amazonaws.com")
        .collect();
    assert_eq!(from_events.len(), 1);
    assert_eq!(from_events[0]["Action"], "sqs:SendMessage");
    assert_eq!(
        from_events[0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!({"Fn::GetAtt": ["CognitoChangesRule", "Arn"]})
    );
}

#[test]
fn the_trail_is_an_explicit_choice_at_deploy_time() {
    let t = template();
    let choice = parameter(&t, "CloudTrailForCognito");
    assert_eq!(
        choice.get("Default"),
        None,
        "no default: a created trail beside an existing one bills every management event again"
    );
    assert_eq!(choice["AllowedValues"], json!(["create", "existing"]));
}

#[test]
fn the_rule_and_the_trail_agree_on_read_only_calls() {
    // AWS does not say which Cognito calls CloudTrail marks readOnly: the rule matches read-only
    // management events too, and the created trail logs them (but KMS's and RDS Data API's).
    let t = template();
    assert_eq!(
        resource(&t, "CognitoChangesRule")["Properties"]["State"],
        "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    );
    let selectors = resource(&t, "CognitoChangesTrail")["Properties"]["AdvancedEventSelectors"]
        .as_array()
        .unwrap();
    assert_eq!(selectors.len(), 1, "{selectors:?}");
    let fields = selectors[0]["FieldSelectors"].as_array().unwrap();
    assert!(fields.contains(&json!({"Field": "eventCategory", "Equals": ["Management"]})));
    assert!(
        !fields.iter().any(|f| f["Field"] == "readOnly"),
        "reads and writes alike: {fields:?}"
    );
    assert!(fields.contains(&json!({
        "Field": "eventSource",
        "NotEquals": ["kms.amazonaws.com", "rdsdata.amazonaws.com"]
    })));
}

#[test]
fn a_created_trail_logs_management_events_validated_and_encrypted_in_a_private_bucket() {
    let t = template();
    let trail = resource(&t, "CognitoChangesTrail");
    assert_eq!(trail["Condition"], "CreateTrail");
    let p = &trail["Properties"];
    assert_eq!(p["IsLogging"], true);
    assert_eq!(p["EnableLogFileValidation"], true);
    assert_eq!(p["KMSKeyId"], json!({"Fn::GetAtt": ["TrailKey", "Arn"]}));
    let key = &resource(&t, "TrailKey")["Properties"];
    assert_eq!(key["EnableKeyRotation"], true);
    // CloudTrail's key policy needs, for a bucket with an S3 Bucket Key: GenerateDataKey*,
    // DescribeKey and Decrypt, each only for this trail.
    let trail_arn = json!({"Fn::Sub": "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/${AWS::StackName}-cognito-changes"});
    let for_cloudtrail: Vec<&Value> = key["KeyPolicy"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Principal"] == json!({"Service": "cloudtrail.amazonaws.com"}))
        .collect();
    for action in ["kms:GenerateDataKey*", "kms:DescribeKey", "kms:Decrypt"] {
        let statement = for_cloudtrail
            .iter()
            .find(|s| s["Action"] == action)
            .unwrap_or_else(|| panic!("the trail key lets CloudTrail {action}"));
        assert_eq!(
            statement["Condition"]["StringEquals"]["aws:SourceArn"], trail_arn,
            "{statement}"
        );
    }
    assert_eq!(
        resource(&t, "TrailBucket")["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
            ["BucketKeyEnabled"],
        true
    );
    let bucket = resource(&t, "TrailBucket");
    assert_eq!(
        bucket["DeletionPolicy"], "Retain",
        "audit records outlive the stack"
    );
    let block = &bucket["Properties"]["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting], true, "{setting}");
    }
    let statements = resource(&t, "TrailBucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        statements
            .iter()
            .any(|s| s["Effect"] == "Deny" && s["Condition"]["Bool"]["aws:SecureTransport"] == "false")
    );
    for allow in statements.iter().filter(|s| s["Effect"] == "Allow") {
        assert_eq!(
            allow["Principal"],
            json!({"Service": "cloudtrail.amazonaws.com"}),
            "{allow}"
        );
        assert!(
            allow["Condition"]["StringEquals"].get("aws:SourceArn").is_some(),
            "{allow}"
        );
    }
    // With an existing trail, none of it is created.
    for name in [
        "TrailKey",
        "TrailBucket",
        "TrailBucketPolicy",
        "CognitoChangesTrail",
    ] {
        assert_eq!(resource(&t, name)["Condition"], "CreateTrail", "{name}");
    }
}
