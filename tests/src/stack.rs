//! Deploys `infra/template.yaml` into moto: SAM-translated offline, then CloudFormation
//! `CreateStack` through the SDK, as the real deploy would.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};

use crate::paths::{venv_python, workspace_root};

/// A deployed stack: its outputs and the resolved environment of each function.
pub struct DeployedStack {
    pub name: String,
    pub outputs: HashMap<String, String>,
}

impl DeployedStack {
    pub fn output(&self, key: &str) -> Result<&str> {
        self.outputs
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("stack {} has no output {key}", self.name))
    }
}

/// The template's required trail choice, as the local stack answers it unless a caller says
/// otherwise: moto creates no trail and never turns a call into a CloudTrail event (the tests put
/// CloudTrail-shaped events on the bus themselves), so `existing`.
pub const TRAIL_CHOICE: (&str, &str) = ("CloudTrailForCognito", "existing");

/// Translates the SAM template with `parameters` and creates the stack, waiting for
/// `CREATE_COMPLETE`. Then disables the event source mappings moto would otherwise run itself
/// (it cannot start the function, and would push every message to the DLQ).
pub async fn deploy(sdk: &SdkConfig, stack_name: &str, parameters: &[(&str, &str)]) -> Result<DeployedStack> {
    let mut parameters = parameters.to_vec();
    if !parameters.iter().any(|(key, _)| *key == TRAIL_CHOICE.0) {
        parameters.push(TRAIL_CHOICE);
    }
    let parameters = parameters.as_slice();
    let template = translate(parameters)?;
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    cfn.create_stack()
        .stack_name(stack_name)
        .template_body(template)
        .set_parameters(Some(
            parameters
                .iter()
                .map(|(k, v)| Parameter::builder().parameter_key(*k).parameter_value(*v).build())
                .collect(),
        ))
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityAutoExpand)
        .send()
        .await
        .context("CreateStack failed")?;

    let started = Instant::now();
    let stack = loop {
        let described = cfn
            .describe_stacks()
            .stack_name(stack_name)
            .send()
            .await
            .context("DescribeStacks failed")?;
        let stack = described.stacks().first().cloned().context("stack vanished")?;
        match stack.stack_status() {
            Some(StackStatus::CreateComplete) => break stack,
            Some(StackStatus::CreateInProgress) if started.elapsed() < Duration::from_secs(120) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            status => bail!(
                "stack {stack_name} did not deploy: {status:?} {}",
                stack.stack_status_reason().unwrap_or_default()
            ),
        }
    };
    let outputs: HashMap<String, String> = stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect();
    let deployed = DeployedStack {
        name: stack_name.to_owned(),
        outputs,
    };

    let lambda = aws_sdk_lambda::Client::new(sdk);
    // Every function's: moto would otherwise run each mapping itself (LOCAL-STACK.md).
    let mut mappings = Vec::new();
    for function in [
        "ConsumerFunctionName",
        "ReconcilerFunctionName",
        "WelcomerFunctionName",
    ] {
        // The welcomer exists only with the welcome on.
        if function == "WelcomerFunctionName" && !deployed.outputs.contains_key(function) {
            continue;
        }
        let listed = lambda
            .list_event_source_mappings()
            .function_name(deployed.output(function)?)
            .send()
            .await
            .context("ListEventSourceMappings failed")?;
        if listed.event_source_mappings().is_empty() {
            bail!("the template deployed no event source mapping for {function}");
        }
        mappings.extend(listed.event_source_mappings().to_vec());
    }
    for mapping in &mappings {
        lambda
            .update_event_source_mapping()
            .uuid(mapping.uuid().context("mapping without uuid")?)
            .enabled(false)
            .send()
            .await
            .context("UpdateEventSourceMapping failed")?;
    }
    Ok(deployed)
}

/// The environment variables the stack gave a function (`GetFunctionConfiguration`).
pub async fn function_environment(sdk: &SdkConfig, function_name: &str) -> Result<HashMap<String, String>> {
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let config = lambda
        .get_function_configuration()
        .function_name(function_name)
        .send()
        .await
        .with_context(|| format!("GetFunctionConfiguration {function_name} failed"))?;
    Ok(config
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default())
}

/// The event source mapping the template declares for the consumer, as deployed.
pub async fn consumer_event_source(sdk: &SdkConfig, consumer: &str) -> Result<EventSourceSettings> {
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let mappings = lambda
        .list_event_source_mappings()
        .function_name(consumer)
        .send()
        .await
        .context("ListEventSourceMappings failed")?;
    let mapping = mappings
        .event_source_mappings()
        .first()
        .context("no event source mapping")?;
    Ok(EventSourceSettings {
        batch_size: mapping.batch_size().unwrap_or(10),
        reports_batch_item_failures: mapping
            .function_response_types()
            .iter()
            .any(|t| t.as_str() == "ReportBatchItemFailures"),
    })
}

/// What the event source emulator takes from the deployed mapping.
#[derive(Debug, Clone, Copy)]
pub struct EventSourceSettings {
    pub batch_size: i32,
    pub reports_batch_item_failures: bool,
}

/// `infra/template.yaml` translated from SAM to plain CloudFormation JSON (offline).
pub fn translate(parameters: &[(&str, &str)]) -> Result<String> {
    let root = workspace_root();
    let mut command = Command::new(venv_python()?);
    command
        .arg(root.join("infra/local/translate.py"))
        .arg(root.join("infra/template.yaml"));
    for (key, value) in parameters {
        command.arg("--parameter").arg(format!("{key}={value}"));
    }
    let output = command.output().context("cannot run infra/local/translate.py")?;
    if !output.status.success() {
        bail!(
            "translating infra/template.yaml failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("translated template is not UTF-8")
}
