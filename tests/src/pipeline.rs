//! The whole pipeline on the local stack, one call away: moto, the deployed template, a user
//! pool, the real trigger and consumer binaries, and the SQS event source.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use shared::mapping::{PROFILES_KEY, USERS_KEY};

use crate::cognito::{self, UserPool};
use crate::event_source::{PollReport, SqsEventSource};
use crate::moto::MotoServer;
use crate::ops_cli::OpsRun;
use crate::paths::{log_dir, workspace_binary};
use crate::runtime_api::{InvokeError, LambdaFunction, Placement};
use crate::stack::{self, DeployedStack, EventSourceSettings};

/// A DynamoDB item as read back.
pub type StoredItem = HashMap<String, AttributeValue>;

/// A user to sign up: username and the attributes given at sign-up.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub attributes: BTreeMap<String, String>,
}

impl NewUser {
    pub fn new(username: &str, attributes: &[(&str, &str)]) -> Self {
        Self {
            username: username.to_owned(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// A signed-up, confirmed user and the Post Confirmation event Cognito would send for them.
#[derive(Debug, Clone)]
pub struct ConfirmedSignUp {
    pub username: String,
    pub sub: String,
    pub attributes: BTreeMap<String, String>,
    pub event: Value,
}

/// Knobs for a test.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Extra or replaced environment variables of the trigger.
    pub trigger_env: Vec<(String, String)>,
    /// Extra or replaced environment variables of the consumer.
    pub consumer_env: Vec<(String, String)>,
    /// The sync queue's visibility timeout, short so that redelivery takes seconds. The
    /// emulated consumer's function timeout is the same (whole seconds): AWS refuses an event
    /// source mapping whose function timeout exceeds the queue's visibility timeout, and a
    /// shorter visibility would redeliver messages still being processed. The consumer's
    /// `FUNCTION_TIMEOUT_SECONDS` follows, and its `DEADLINE_MARGIN_MS` is a quarter of it
    /// (unless `consumer_env` sets them).
    pub visibility_timeout: Duration,
    /// Template parameters besides `ExistingUserPoolId` (the welcome email's, say).
    pub stack_parameters: Vec<(String, String)>,
    /// Extra or replaced environment variables of the welcomer (when the welcome is on). The
    /// welcome queue's visibility timeout and the welcomer's timeout follow `visibility_timeout`
    /// as the consumer's do, and a deferred welcome's first retry comes after 1 s (a minute in
    /// the template) unless this says otherwise.
    pub welcomer_env: Vec<(String, String)>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            trigger_env: Vec::new(),
            consumer_env: Vec::new(),
            visibility_timeout: Duration::from_secs(5),
            stack_parameters: Vec::new(),
            welcomer_env: Vec::new(),
        }
    }
}

impl PipelineOptions {
    /// The emulated consumer's function timeout: the visibility timeout, at least 1 s.
    pub fn consumer_timeout(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout.as_secs().max(1))
    }
}

/// Everything running. Dropping it stops the functions and then moto.
pub struct LocalPipeline {
    pub sdk: SdkConfig,
    pub stack: DeployedStack,
    pub pool: UserPool,
    pub trigger: LambdaFunction,
    pub consumer: LambdaFunction,
    /// The welcome email's sender, when the stack was deployed with the welcome on.
    pub welcomer: Option<LambdaFunction>,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    pub event_source: EventSourceSettings,
    pub log_dir: PathBuf,
    trigger_env: HashMap<String, String>,
    consumer_env: HashMap<String, String>,
    welcomer_env: HashMap<String, String>,
    previous_consumer_lines: Vec<String>,
    // Last, so that it is dropped after the functions.
    moto: MotoServer,
}

/// SDK configuration for a local endpoint with dummy credentials.
pub async fn local_sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "local"))
        .load()
        .await
}

impl LocalPipeline {
    /// Starts moto, creates the user pool, deploys the template against it (the
    /// existing-pool path: moto cannot create pools through CloudFormation), and starts both
    /// functions with the environment the stack gave them.
    pub async fn start(label: &str, options: PipelineOptions) -> Result<Self> {
        let log_dir = log_dir(label);
        let moto = MotoServer::start(&log_dir)?;
        let endpoint = moto.endpoint();
        let sdk = local_sdk_config(&endpoint).await;
        let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
        let pool = cognito::create_user_pool(&cognito, "cognito-user-sync-local").await?;
        let mut parameters = vec![("ExistingUserPoolId", pool.id.as_str())];
        parameters.extend(
            options
                .stack_parameters
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let stack = stack::deploy(&sdk, "cognito-user-sync", &parameters).await?;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        // moto builds a service's request handler on its first request over HTTP, and twenty
        // first requests arriving together (the consumer's first batch: two puts per record)
        // take it 2-3 s, against 70 ms for one, more than an attempt's timeout. DynamoDB has no
        // such cold start, so the harness makes that first request itself.
        for table in ["UsersTableName", "ProfilesTableName"] {
            dynamodb
                .describe_table()
                .table_name(stack.output(table)?)
                .send()
                .await
                .with_context(|| format!("DescribeTable of the stack's {table} failed"))?;
        }

        let sqs = aws_sdk_sqs::Client::new(&sdk);
        sqs.set_queue_attributes()
            .queue_url(stack.output("QueueUrl")?)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                options.visibility_timeout.as_secs().to_string(),
            )
            .send()
            .await
            .context("SetQueueAttributes failed")?;

        let base_env = |extra: &HashMap<String, String>| function_env(&endpoint, extra);
        let trigger_name = stack.output("TriggerFunctionName")?.to_owned();
        let consumer_name = stack.output("ConsumerFunctionName")?.to_owned();
        let mut trigger_env = base_env(&stack::function_environment(&sdk, &trigger_name).await?);
        trigger_env.extend(options.trigger_env.iter().cloned());
        let mut consumer_env = base_env(&stack::function_environment(&sdk, &consumer_name).await?);
        let consumer_timeout = options.consumer_timeout();
        consumer_env.insert(
            "FUNCTION_TIMEOUT_SECONDS".to_owned(),
            consumer_timeout.as_secs().to_string(),
        );
        consumer_env.insert(
            "DEADLINE_MARGIN_MS".to_owned(),
            (consumer_timeout.as_millis() / 4).to_string(),
        );
        consumer_env.extend(options.consumer_env.iter().cloned());

        let trigger = LambdaFunction::start(
            &trigger_name,
            &workspace_binary("trigger")?,
            &trigger_env,
            Duration::from_secs(5),
            &log_dir,
        )
        .await?;
        let consumer = LambdaFunction::start(
            &consumer_name,
            &workspace_binary("consumer")?,
            &consumer_env,
            consumer_timeout,
            &log_dir,
        )
        .await?;
        let event_source = stack::consumer_event_source(&sdk, &consumer_name).await?;
        if !event_source.reports_batch_item_failures {
            bail!("the deployed event source mapping does not report batch item failures");
        }
        let (welcomer, welcomer_env) = match stack.outputs.get("WelcomerFunctionName") {
            Some(name) => {
                sqs.set_queue_attributes()
                    .queue_url(stack.output("WelcomeQueueUrl")?)
                    .attributes(
                        QueueAttributeName::VisibilityTimeout,
                        consumer_timeout.as_secs().to_string(),
                    )
                    .send()
                    .await
                    .context("SetQueueAttributes on the welcome queue failed")?;
                let mut env = base_env(&stack::function_environment(&sdk, name).await?);
                env.insert(
                    "FUNCTION_TIMEOUT_SECONDS".to_owned(),
                    consumer_timeout.as_secs().to_string(),
                );
                env.insert(
                    "DEADLINE_MARGIN_MS".to_owned(),
                    (consumer_timeout.as_millis() / 4).to_string(),
                );
                env.insert("WELCOME_FIRST_RETRY_SECONDS".to_owned(), "1".to_owned());
                env.extend(options.welcomer_env.iter().cloned());
                let welcomer = LambdaFunction::start(
                    name,
                    &workspace_binary("welcomer")?,
                    &env,
                    consumer_timeout,
                    &log_dir,
                )
                .await?;
                (Some(welcomer), env)
            }
            None => (None, HashMap::new()),
        };

        Ok(Self {
            dynamodb,
            cognito,
            sqs,
            sdk,
            stack,
            pool,
            trigger,
            consumer,
            welcomer,
            event_source,
            log_dir,
            trigger_env,
            consumer_env,
            welcomer_env,
            previous_consumer_lines: Vec::new(),
            moto,
        })
    }

    /// [`Self::start`] for tests: a stack that does not start fails the test with the whole
    /// error chain.
    pub async fn start_or_panic(label: &str, options: PipelineOptions) -> Self {
        Self::start(label, options)
            .await
            .unwrap_or_else(|err| panic!("the local pipeline did not start: {err:#}"))
    }

    pub fn moto_endpoint(&self) -> String {
        self.moto.endpoint()
    }

    pub fn moto_pid(&self) -> u32 {
        self.moto.pid()
    }

    /// Signs the user up and confirms them in the local pool; returns the Post Confirmation
    /// event for `PostConfirmation_ConfirmSignUp`.
    pub async fn sign_up(&self, user: &NewUser) -> Result<ConfirmedSignUp> {
        let attributes =
            cognito::sign_up_and_confirm(&self.cognito, &self.pool, &user.username, &user.attributes).await?;
        let sub = attributes
            .get("sub")
            .context("Cognito gave the user no sub")?
            .clone();
        let event = cognito::post_confirmation_event(
            &self.pool,
            &user.username,
            &attributes,
            "PostConfirmation_ConfirmSignUp",
        );
        Ok(ConfirmedSignUp {
            username: user.username.clone(),
            sub,
            attributes,
            event,
        })
    }

    /// An administrator deletes `username` from the local pool (`AdminDeleteUser`); no signal
    /// of it reaches the queue.
    pub async fn delete_user(&self, username: &str) -> Result<()> {
        self.cognito
            .admin_delete_user()
            .user_pool_id(&self.pool.id)
            .username(username)
            .send()
            .await
            .context("AdminDeleteUser failed")?;
        Ok(())
    }

    /// Invokes the trigger as Cognito would.
    pub async fn invoke_trigger(&self, event: &Value) -> Result<Value, InvokeError> {
        self.trigger.invoke(event).await
    }

    /// Runs the event source until the sync queue is empty, and then, when the welcome is on,
    /// the welcome queue's (the welcomer's), until both are.
    pub async fn drain(&self) -> Result<PollReport> {
        let mut total = self.source().drain(Duration::from_secs(120)).await?;
        if let Some(welcomer) = &self.welcomer {
            loop {
                let welcomed = self
                    .welcome_source(welcomer)
                    .drain(Duration::from_secs(120))
                    .await?;
                let synced = self.source().drain(Duration::from_secs(120)).await?;
                let done = synced.received == 0;
                total += welcomed;
                total += synced;
                if done {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// The welcome queue's event source (batch size 10, as the template's), feeding `function`.
    pub fn welcome_source<'a>(&'a self, function: &'a LambdaFunction) -> SqsEventSource<'a> {
        SqsEventSource {
            sqs: &self.sqs,
            queue_url: self.welcome_queue_url(),
            queue_arn: "",
            function,
            batch_size: 10,
        }
    }

    pub fn welcome_queue_url(&self) -> &str {
        self.stack
            .outputs
            .get("WelcomeQueueUrl")
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn welcome_dlq_url(&self) -> &str {
        self.stack
            .outputs
            .get("WelcomeDeadLetterQueueUrl")
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// A fresh welcomer process with the environment of the pipeline's plus `changes`.
    pub async fn start_welcomer_variant(
        &self,
        label: &str,
        changes: &[(&str, &str)],
    ) -> Result<LambdaFunction> {
        let welcomer = self
            .welcomer
            .as_ref()
            .context("the stack was deployed with the welcome off")?;
        self.start_variant(welcomer, "welcomer", &self.welcomer_env, label, changes)
            .await
    }

    /// One batch through the event source.
    pub async fn poll_once(&self) -> Result<PollReport> {
        self.source().poll_once().await
    }

    fn source(&self) -> SqsEventSource<'_> {
        self.event_source_for(&self.consumer)
    }

    /// The event source of this stack, feeding `function` instead of the pipeline's consumer
    /// (e.g. a fresh execution environment started with [`LocalPipeline::start_consumer_variant`]).
    pub fn event_source_for<'a>(&'a self, function: &'a LambdaFunction) -> SqsEventSource<'a> {
        SqsEventSource {
            sqs: &self.sqs,
            queue_url: self.queue_url(),
            queue_arn: self
                .stack
                .outputs
                .get("QueueArn")
                .map(String::as_str)
                .unwrap_or_default(),
            function,
            batch_size: self.event_source.batch_size,
        }
    }

    /// The scheduled reconciliation's function, started from its deployed configuration with
    /// `changes` on top. The reconcile queue's visibility timeout becomes `timeout` (Lambda
    /// requires it to be at least the function's), so a killed invocation's message comes
    /// back that soon.
    pub async fn start_reconciler(
        &self,
        timeout: Duration,
        changes: &[(&str, &str)],
    ) -> Result<LambdaFunction> {
        let binary = workspace_binary("reconciler")?;
        self.start_reconciler_placed(&binary, timeout, changes, Placement::default())
            .await
    }

    /// [`Self::start_reconciler`] with another build of it (the arm64 bootstrap under qemu),
    /// placed as `placement` says.
    pub async fn start_reconciler_placed(
        &self,
        binary: &Path,
        timeout: Duration,
        changes: &[(&str, &str)],
        placement: Placement,
    ) -> Result<LambdaFunction> {
        let name = self.stack.output("ReconcilerFunctionName")?.to_owned();
        let mut env = function_env(
            &self.moto_endpoint(),
            &stack::function_environment(&self.sdk, &name).await?,
        );
        env.extend(changes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self.sqs
            .set_queue_attributes()
            .queue_url(self.reconcile_queue_url())
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                timeout.as_secs().to_string(),
            )
            .send()
            .await
            .context("SetQueueAttributes on the reconcile queue failed")?;
        LambdaFunction::start_placed(&name, binary, &env, timeout, &self.log_dir, placement).await
    }

    pub fn reconcile_queue_url(&self) -> &str {
        self.stack
            .outputs
            .get("ReconcileQueueUrl")
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn reconcile_state_table(&self) -> &str {
        self.stack
            .outputs
            .get("ReconcileStateTableName")
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The reconcile queue's event source (batch size 1, as the template's), feeding `function`.
    pub fn reconcile_source<'a>(&'a self, function: &'a LambdaFunction) -> SqsEventSource<'a> {
        SqsEventSource {
            sqs: &self.sqs,
            queue_url: self.reconcile_queue_url(),
            queue_arn: "",
            function,
            batch_size: 1,
        }
    }

    /// The user's Cognito status (`CONFIRMED`, `RESET_REQUIRED`, ...) and sub.
    pub async fn user_status(&self, username: &str) -> Result<(String, String)> {
        let user = self
            .cognito
            .admin_get_user()
            .user_pool_id(&self.pool.id)
            .username(username)
            .send()
            .await
            .context("AdminGetUser failed")?;
        let sub = user
            .user_attributes()
            .iter()
            .find(|a| a.name() == "sub")
            .and_then(|a| a.value())
            .unwrap_or_default()
            .to_owned();
        Ok((
            user.user_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            sub,
        ))
    }

    /// Delivers `function`'s log lines so far to its log group in moto, as Lambda does with a
    /// function's output (the emulator captures it): a new stream per call, the lines in order.
    pub async fn deliver_logs(&self, function: &LambdaFunction) -> Result<()> {
        let logs = aws_sdk_cloudwatchlogs::Client::new(&self.sdk);
        let group = format!("/aws/lambda/{}", function.name());
        let stream = format!("[$LATEST]{}", uuid::Uuid::new_v4().simple());
        logs.create_log_stream()
            .log_group_name(&group)
            .log_stream_name(&stream)
            .send()
            .await
            .with_context(|| format!("CreateLogStream in {group} failed"))?;
        let lines = function.settled_log_lines().await;
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let events: Vec<_> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(now_ms - (lines.len() - i) as i64)
                    .message(line)
                    .build()
                    .expect("timestamp and message are set")
            })
            .collect();
        for chunk in events.chunks(1_000) {
            logs.put_log_events()
                .log_group_name(&group)
                .log_stream_name(&stream)
                .set_log_events(Some(chunk.to_vec()))
                .send()
                .await
                .with_context(|| format!("PutLogEvents in {group} failed"))?;
        }
        Ok(())
    }

    /// What the schedule sends: a start message on the reconcile queue.
    pub async fn start_reconcile_run(&self) -> Result<()> {
        self.sqs
            .send_message()
            .queue_url(self.reconcile_queue_url())
            .message_body(r#"{"start":{"requested_by":"schedule"}}"#)
            .send()
            .await
            .context("SendMessage of the start to the reconcile queue failed")?;
        Ok(())
    }

    pub fn queue_url(&self) -> &str {
        self.stack
            .outputs
            .get("QueueUrl")
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn dlq_url(&self) -> &str {
        self.stack
            .outputs
            .get("DeadLetterQueueUrl")
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Waits until the sync queue holds fewer than `limit` messages.
    ///
    /// A chaos run's producers call it so that the queue's backlog stays bounded: moto's
    /// `SendMessage` and `ReceiveMessage` go through every message in the queue (each received
    /// message recomputes the queue's attributes, counting all messages), so against a deep
    /// queue the local stack, not the code under test, would set the pace and a run of many
    /// users would take quadratic time. SQS itself has no such cost.
    pub async fn wait_for_backlog_below(&self, limit: usize) -> Result<()> {
        loop {
            let (visible, in_flight) = self.queue_counts(self.queue_url()).await?;
            if visible + in_flight < limit as u64 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Puts a raw body on the sync queue, as a producer (or an attacker) could.
    pub async fn send_raw(&self, body: &str) -> Result<String> {
        let sent = self
            .sqs
            .send_message()
            .queue_url(self.queue_url())
            .message_body(body)
            .send()
            .await
            .context("SendMessage failed")?;
        Ok(sent.message_id().unwrap_or_default().to_owned())
    }

    /// Records that `call` was made on user `sub` as CloudTrail would (see [`crate::cloudtrail`])
    /// and puts it on the local bus, whose rule (the stack's) routes it to the sync queue.
    /// `names_pool`: an Admin* call names the pool; a call made with an access token does not.
    pub async fn record_cognito_call(&self, call: &str, sub: Option<&str>, names_pool: bool) -> Result<()> {
        let pool = names_pool.then_some(self.pool.id.as_str());
        let events = aws_sdk_eventbridge::Client::new(&self.sdk);
        crate::cloudtrail::put(&events, &crate::cloudtrail::record(call, pool, sub)).await
    }

    /// Receives every message in the DLQ (hiding them for a minute) and returns their bodies
    /// and receipt handles.
    pub async fn dlq_messages(&self) -> Result<Vec<(String, String)>> {
        let mut messages = Vec::new();
        loop {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(self.dlq_url())
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .send()
                .await
                .context("ReceiveMessage on the DLQ failed")?;
            if batch.messages().is_empty() {
                return Ok(messages);
            }
            for m in batch.messages() {
                messages.push((
                    m.body().unwrap_or_default().to_owned(),
                    m.receipt_handle().unwrap_or_default().to_owned(),
                ));
            }
        }
    }

    /// Moves every DLQ message back to the sync queue as an operator does, with
    /// `ops dlq redrive` (client-side: moto has no message move tasks). Returns how many moved.
    pub async fn redrive_dlq(&self) -> Result<usize> {
        let run = self.ops(&["--json", "dlq", "redrive", "--client-side"]).await;
        if run.code != Some(0) {
            bail!("ops dlq redrive failed:\n{run}");
        }
        let moved = run.report()["moved"].as_u64();
        moved
            .map(|n| n as usize)
            .with_context(|| format!("ops dlq redrive reported no `moved`:\n{run}"))
    }

    /// Restarts the consumer process with changed environment variables (e.g. to simulate a
    /// misconfigured deploy and its fix).
    pub async fn restart_consumer(&mut self, changes: &[(&str, &str)]) -> Result<()> {
        for (k, v) in changes {
            self.consumer_env.insert((*k).to_owned(), (*v).to_owned());
        }
        self.previous_consumer_lines.extend(self.consumer.log_lines());
        let name = self.consumer.name().to_owned();
        let restarted_logs = self.log_dir.join("restarted");
        std::fs::create_dir_all(&restarted_logs)?;
        let binary = workspace_binary("consumer")?;
        let timeout = self.consumer.timeout;
        self.consumer =
            LambdaFunction::start(&name, &binary, &self.consumer_env, timeout, &restarted_logs).await?;
        Ok(())
    }

    /// Starts another trigger process with changed environment variables, beside the main one
    /// (e.g. pointed at an unreachable queue, to measure the worst case).
    pub async fn start_trigger_variant(
        &self,
        label: &str,
        changes: &[(&str, &str)],
    ) -> Result<LambdaFunction> {
        self.start_variant(&self.trigger, "trigger", &self.trigger_env, label, changes)
            .await
    }

    /// Starts another consumer process with the consumer's environment plus `changes`, beside the
    /// main one, logging to `log_dir/label/`: a fresh execution environment, e.g. the one Lambda
    /// starts after a crash. Feed it with [`LocalPipeline::event_source_for`].
    pub async fn start_consumer_variant(
        &self,
        label: &str,
        changes: &[(&str, &str)],
    ) -> Result<LambdaFunction> {
        self.start_variant(&self.consumer, "consumer", &self.consumer_env, label, changes)
            .await
    }

    /// A consumer whose DynamoDB is `dynamodb` (a fault proxy, a black hole), with a 2 s
    /// function timeout and a 500 ms margin, plus `changes`: for what it does when writes do not
    /// succeed in time.
    pub async fn start_consumer_against(
        &self,
        label: &str,
        dynamodb: &str,
        changes: &[(&str, &str)],
    ) -> Result<LambdaFunction> {
        let mut all = vec![
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
            ("FUNCTION_TIMEOUT_SECONDS", "2"),
            ("DEADLINE_MARGIN_MS", "500"),
        ];
        all.extend_from_slice(changes);
        self.start_variant_with_timeout("consumer", label, &all, Duration::from_secs(2))
            .await
    }

    /// Sends one envelope per `sub` for this pool (user `username`, no attributes) to the sync
    /// queue.
    pub async fn send_envelopes(&self, subs: &[String], username: &str) -> Result<()> {
        for sub in subs {
            self.send_raw(&envelope_for(&self.pool.id, sub, username, &[]))
                .await?;
        }
        Ok(())
    }

    /// [`Self::start_trigger_variant`] or [`Self::start_consumer_variant`] (`function` is
    /// `"trigger"` or `"consumer"`) whose emulated function timeout is `timeout`.
    pub async fn start_variant_with_timeout(
        &self,
        function: &str,
        label: &str,
        changes: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<LambdaFunction> {
        let (like, env) = self.function_and_env(function)?;
        self.launch_variant(
            like.name(),
            &workspace_binary(function)?,
            env,
            label,
            changes,
            (timeout, Placement::default()),
        )
        .await
    }

    /// A fresh process of the workspace binary `binary` (a function, or the benchmark's
    /// `runtime_only`) with the environment and timeout of `like` (`"trigger"` or
    /// `"consumer"`) plus `changes`, placed as `placement` says (memory setting, CPU share).
    pub async fn start_placed(
        &self,
        like: &str,
        binary: &str,
        label: &str,
        changes: &[(&str, &str)],
        placement: Placement,
    ) -> Result<LambdaFunction> {
        self.start_binary_placed(like, &workspace_binary(binary)?, label, changes, placement)
            .await
    }

    /// [`Self::start_placed`] for a binary outside the workspace's target folder (an arm64
    /// bootstrap from `sam build`).
    pub async fn start_binary_placed(
        &self,
        like: &str,
        binary: &Path,
        label: &str,
        changes: &[(&str, &str)],
        placement: Placement,
    ) -> Result<LambdaFunction> {
        let (function, env) = self.function_and_env(like)?;
        self.launch_variant(
            function.name(),
            binary,
            env,
            label,
            changes,
            (function.timeout, placement),
        )
        .await
    }

    /// The running function `"trigger"`, `"consumer"` or `"welcomer"`, and its environment.
    fn function_and_env(&self, function: &str) -> Result<(&LambdaFunction, &HashMap<String, String>)> {
        match function {
            "trigger" => Ok((&self.trigger, &self.trigger_env)),
            "consumer" => Ok((&self.consumer, &self.consumer_env)),
            "welcomer" => Ok((
                self.welcomer
                    .as_ref()
                    .context("the stack was deployed with the welcome off")?,
                &self.welcomer_env,
            )),
            other => bail!("no function {other}"),
        }
    }

    async fn start_variant(
        &self,
        like: &LambdaFunction,
        binary: &str,
        env: &HashMap<String, String>,
        label: &str,
        changes: &[(&str, &str)],
    ) -> Result<LambdaFunction> {
        self.launch_variant(
            like.name(),
            &workspace_binary(binary)?,
            env,
            label,
            changes,
            (like.timeout, Placement::default()),
        )
        .await
    }

    async fn launch_variant(
        &self,
        name: &str,
        binary: &Path,
        env: &HashMap<String, String>,
        label: &str,
        changes: &[(&str, &str)],
        (timeout, placement): (Duration, Placement),
    ) -> Result<LambdaFunction> {
        let mut env = env.clone();
        for (k, v) in changes {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let dir = self.log_dir.join(label);
        std::fs::create_dir_all(&dir)?;
        LambdaFunction::start_placed(name, binary, &env, timeout, &dir, placement).await
    }

    /// Runs the `ops` binary against this stack as an operator would: `--stack-name` of the
    /// deployed stack, then `args`, with only the SDK's standard variables pointing at moto
    /// (nothing inherited, so the machine's own AWS settings cannot leak in).
    pub async fn ops(&self, args: &[&str]) -> OpsRun {
        let mut all = vec!["--stack-name", self.stack.name.as_str()];
        all.extend_from_slice(args);
        self.ops_choosing_the_stack(&all).await
    }

    /// [`Self::ops`] where `args` choose the stack themselves (or name none).
    pub async fn ops_choosing_the_stack(&self, args: &[&str]) -> OpsRun {
        crate::ops_cli::run(&self.operator_env(), args).await
    }

    /// The profile id the consumer derives for `sub` in this stack's pool.
    pub fn profile_id_of(&self, sub: &str) -> String {
        shared::ProfileId::derive(&self.pool.id, sub).to_string()
    }

    /// Fails naming the first of `secrets` (emails, phone numbers, names, usernames) that
    /// appears in a line either function logged, once their output has settled; and when they
    /// logged nothing at all, which would make the check vacuous.
    pub async fn assert_no_pii_in_logs(&self, secrets: &[String]) {
        let lines = self.settled_log_lines().await;
        assert!(
            !lines.is_empty(),
            "the functions logged nothing: the PII check would be vacuous"
        );
        for line in &lines {
            for secret in secrets {
                assert!(
                    !line.contains(secret.as_str()),
                    "PII {secret:?} appears in a log line: {line}"
                );
            }
        }
    }

    /// The environment of an operator's shell against this stack (see [`crate::ops_cli`]).
    pub fn operator_env(&self) -> Vec<(&'static str, String)> {
        crate::ops_cli::operator_env(&self.moto_endpoint())
    }

    pub fn users_table(&self) -> &str {
        self.stack
            .outputs
            .get("UsersTableName")
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn profiles_table(&self) -> &str {
        self.stack
            .outputs
            .get("ProfilesTableName")
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub async fn user_item(&self, sub: &str) -> Result<Option<StoredItem>> {
        let got = self
            .dynamodb
            .get_item()
            .table_name(self.users_table())
            .key(USERS_KEY, AttributeValue::S(sub.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .context("GetItem on users failed")?;
        Ok(got.item().cloned())
    }

    pub async fn profile_item(&self, profile_id: &str) -> Result<Option<StoredItem>> {
        let got = self
            .dynamodb
            .get_item()
            .table_name(self.profiles_table())
            .key(PROFILES_KEY, AttributeValue::S(profile_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .context("GetItem on profiles failed")?;
        Ok(got.item().cloned())
    }

    /// Every profile of a user, through the `user_id-index` GSI.
    pub async fn profiles_of(&self, sub: &str) -> Result<Vec<StoredItem>> {
        let found = self
            .dynamodb
            .query()
            .table_name(self.profiles_table())
            .index_name("user_id-index")
            .key_condition_expression("user_id = :sub")
            .expression_attribute_values(":sub", AttributeValue::S(sub.to_owned()))
            .send()
            .await
            .context("Query on user_id-index failed")?;
        Ok(found.items().to_vec())
    }

    /// (visible, in flight) messages of a queue.
    pub async fn queue_counts(&self, url: &str) -> Result<(u64, u64)> {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .context("GetQueueAttributes failed")?;
        let count = |name: QueueAttributeName| -> Result<u64> {
            let value = attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .with_context(|| format!("no {name} in the answer"))?;
            Ok(value.parse()?)
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages)?,
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
        ))
    }

    /// Every body on a queue, sorted. Receives them, so they stay hidden for a minute.
    pub async fn queue_bodies(&self, url: &str) -> Result<Vec<String>> {
        let mut bodies = Vec::new();
        loop {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .send()
                .await
                .context("ReceiveMessage failed")?;
            if batch.messages().is_empty() {
                bodies.sort();
                return Ok(bodies);
            }
            bodies.extend(
                batch
                    .messages()
                    .iter()
                    .map(|m| m.body().unwrap_or_default().to_owned()),
            );
        }
    }

    /// Every item of a table.
    pub async fn scan(&self, table: &str) -> Result<Vec<StoredItem>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Scan failed")?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// Every line either function printed, across restarts, once output has settled: a
    /// function writes its log lines before it answers, but they reach us through a pipe that
    /// is read concurrently, so wait until no new line arrived for a moment.
    pub async fn settled_log_lines(&self) -> Vec<String> {
        crate::runtime_api::settled(|| self.log_lines()).await
    }

    /// Every line the trigger, the consumer (across restarts) and the welcomer printed so far.
    pub fn log_lines(&self) -> Vec<String> {
        let mut lines = self.trigger.log_lines();
        lines.extend(self.previous_consumer_lines.iter().cloned());
        lines.extend(self.consumer.log_lines());
        if let Some(welcomer) = &self.welcomer {
            lines.extend(welcomer.log_lines());
        }
        lines
    }

    /// Settled log lines that are JSON objects with `"event": name`.
    pub async fn log_events(&self, name: &str) -> Vec<Value> {
        self.settled_log_lines()
            .await
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|v| v.get("event").and_then(Value::as_str) == Some(name))
            .collect()
    }
}

/// A string attribute of a stored item.
pub fn s<'a>(item: &'a StoredItem, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// A stored item as plain JSON, for printing.
pub fn item_to_json(item: &StoredItem) -> Value {
    let sorted: BTreeMap<&String, Value> = item.iter().map(|(k, v)| (k, attribute_to_json(v))).collect();
    serde_json::to_value(sorted).unwrap_or(Value::Null)
}

fn attribute_to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(text) => Value::String(text.clone()),
        AttributeValue::N(number) => Value::String(number.clone()),
        AttributeValue::Bool(flag) => Value::Bool(*flag),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(map) => {
            let sorted: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, attribute_to_json(v))).collect();
            serde_json::to_value(sorted).unwrap_or(Value::Null)
        }
        AttributeValue::L(list) => Value::Array(list.iter().map(attribute_to_json).collect()),
        other => Value::String(format!("{other:?}")),
    }
}

/// A well-formed version-1 envelope, as the trigger would send it for this user.
pub fn envelope_for(pool_id: &str, sub: &str, username: &str, attributes: &[(&str, &str)]) -> String {
    let attributes: BTreeMap<String, String> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let user = shared::ConfirmedUser::new(
        pool_id,
        sub,
        username,
        attributes,
        time::OffsetDateTime::now_utc(),
        shared::ConfirmationSource::PostConfirmation,
    )
    .expect("a valid user");
    shared::envelope::encode(&user)
}

/// The environment of a function run by the emulator: the deployed variables in `extra`, and
/// what Lambda itself sets (credentials, region), pointing at moto.
fn function_env(endpoint: &str, extra: &HashMap<String, String>) -> HashMap<String, String> {
    let mut env = HashMap::from([
        ("AWS_ENDPOINT_URL".to_owned(), endpoint.to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
        ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL".to_owned(), "info".to_owned()),
    ]);
    env.extend(extra.clone());
    env
}
