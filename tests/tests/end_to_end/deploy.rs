//! The template's default deployment path, the one `sam deploy` takes without parameters: the
//! stack creates the user pool itself and wires the trigger into it.
//!
//! moto skips `AWS::Cognito::*` resources (see `../shared/LOCAL-STACK.md`): the pool is not
//! created, its `Ref` renders as the text `None`, and a function environment variable set from it
//! is dropped. What a local deploy can show is that the stack deploys on this path and what the
//! rest of the stack makes of the pool's id; the pool's own wiring is checked in the translated
//! template.

use e2e::moto::MotoServer;
use e2e::paths::log_dir;
use e2e::pipeline::local_sdk_config;
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";
const POOL_ARN_PREFIX: &str = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_path_deploys_and_only_the_stacks_own_pool_may_invoke_the_trigger() {
    let moto = MotoServer::start(&log_dir("deploy_default")).unwrap_or_else(|e| panic!("{e:#}"));
    let sdk = local_sdk_config(&moto.endpoint()).await;
    // The trail is a choice with no default: a deploy that does not make it is refused.
    let unchosen = aws_sdk_cloudformation::Client::new(&sdk)
        .create_stack()
        .stack_name("cus-no-trail-choice")
        .template_body(e2e::stack::translate(&[]).unwrap())
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
        .send()
        .await
        .expect_err("a stack without CloudTrailForCognito");
    let refusal = format!(
        "{}",
        aws_sdk_cloudformation::error::DisplayErrorContext(&unchosen)
    );
    assert!(refusal.contains("CloudTrailForCognito"), "{refusal}");
    let stack = e2e::stack::deploy(&sdk, "cus-default", &[])
        .await
        .unwrap_or_else(|e| panic!("the default path did not deploy: {e:#}"));

    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let trigger = stack.output("TriggerFunctionName").unwrap();
    let policy = lambda.get_policy().function_name(trigger).send().await.unwrap();
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{policy:#}");
    let statement = &statements[0];
    assert_eq!(statement["Principal"]["Service"], "cognito-idp.amazonaws.com");
    assert_eq!(statement["Action"], "lambda:InvokeFunction");
    assert_eq!(
        statement["Condition"]["StringEquals"]["AWS:SourceAccount"],
        ACCOUNT
    );
    // The whole ARN of one pool: no wildcard, nothing a longer or another pool's ARN would match.
    let source = statement["Condition"]["ArnLike"]["AWS:SourceArn"]
        .as_str()
        .unwrap();
    let pool_ref = source
        .strip_prefix(POOL_ARN_PREFIX)
        .unwrap_or_else(|| panic!("not a user pool ARN of this account and region: {source}"));
    assert!(
        !pool_ref.is_empty() && !pool_ref.contains(['*', '?', '/']),
        "{source}"
    );

    // The pool the permission names is the pool the consumer serves (moto drops the variable,
    // having no pool id to give it); the trigger is given none, to avoid a circular dependency.
    let consumer_env = e2e::stack::function_environment(&sdk, stack.output("ConsumerFunctionName").unwrap())
        .await
        .unwrap();
    match consumer_env.get("USER_POOL_ID") {
        Some(served) => assert_eq!(served, pool_ref),
        None => assert_eq!(pool_ref, "None", "only moto's skipped pool leaves it unset"),
    }
    let trigger_env = e2e::stack::function_environment(&sdk, trigger).await.unwrap();
    assert_eq!(trigger_env.get("USER_POOL_ID").map(String::as_str), Some(""));
}

#[test]
fn on_the_default_path_the_pool_calls_the_trigger_and_the_permission_names_that_pool() {
    let text = e2e::stack::translate(&[]).unwrap_or_else(|e| panic!("{e:#}"));
    let t: Value = serde_json::from_str(&text).unwrap();
    let pool = &t["Resources"]["UserPool"];
    assert_eq!(pool["Type"], "AWS::Cognito::UserPool");
    assert_eq!(pool["DeletionPolicy"], "Retain");
    assert_eq!(
        pool["Properties"]["LambdaConfig"]["PostConfirmation"],
        json!({"Fn::GetAtt": ["TriggerFunction", "Arn"]})
    );
    let source = &t["Resources"]["TriggerInvokePermission"]["Properties"]["SourceArn"]["Fn::Sub"];
    assert_eq!(
        source[0],
        "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:${AWS::AccountId}:userpool/${PoolId}"
    );
    assert_eq!(
        source[1]["PoolId"],
        json!({"Fn::If": ["CreateUserPool", {"Ref": "UserPool"}, {"Ref": "ExistingUserPoolId"}]})
    );
    assert_eq!(
        t["Resources"]["ConsumerFunction"]["Properties"]["Environment"]["Variables"]["USER_POOL_ID"],
        json!({"Fn::If": ["CreateUserPool", {"Ref": "UserPool"}, {"Ref": "ExistingUserPoolId"}]})
    );
}
