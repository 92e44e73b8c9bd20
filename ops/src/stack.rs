//! Resolving names: which queue, dead-letter queue, users table and trigger to work on.
//!
//! By default they are the outputs of the deployed CloudFormation stack (`--stack-name`), which
//! is the one place that knows them. An explicit flag (`--queue-url`, `--dlq-url`,
//! `--users-table`, `--function-arn`) wins and needs no stack at all: an operator may point the
//! tool at another deployment, or hold credentials that cannot read CloudFormation. The stack is
//! described at most once per run, and only when a name is not given explicitly.

use std::collections::HashMap;

use aws_sdk_cloudformation::Client;
use tokio::sync::OnceCell;

use crate::aws;

/// The outputs this tool reads, with the flag that replaces each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackOutput {
    QueueUrl,
    DeadLetterQueueUrl,
    UsersTableName,
    ProfilesTableName,
    TriggerFunctionArn,
    UserPoolId,
    ReconcileQueueUrl,
    ReconcilerLogGroupName,
    WelcomeQueueUrl,
    WelcomeDeadLetterQueueUrl,
    WelcomerFunctionName,
}

impl StackOutput {
    pub fn key(self) -> &'static str {
        match self {
            Self::QueueUrl => "QueueUrl",
            Self::DeadLetterQueueUrl => "DeadLetterQueueUrl",
            Self::UsersTableName => "UsersTableName",
            Self::ProfilesTableName => "ProfilesTableName",
            Self::TriggerFunctionArn => "TriggerFunctionArn",
            Self::UserPoolId => "UserPoolId",
            Self::ReconcileQueueUrl => "ReconcileQueueUrl",
            Self::ReconcilerLogGroupName => "ReconcilerLogGroupName",
            Self::WelcomeQueueUrl => "WelcomeQueueUrl",
            Self::WelcomeDeadLetterQueueUrl => "WelcomeDeadLetterQueueUrl",
            Self::WelcomerFunctionName => "WelcomerFunctionName",
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Self::QueueUrl => "--queue-url",
            Self::DeadLetterQueueUrl => "--dlq-url",
            Self::UsersTableName => "--users-table",
            Self::ProfilesTableName => "--profiles-table",
            Self::TriggerFunctionArn => "--function-arn",
            // No flag names the served pool itself: with --function-arn, `attach-trigger` reads
            // it from that function's own USER_POOL_ID instead.
            Self::UserPoolId => "--function-arn",
            Self::ReconcileQueueUrl => "--reconcile-queue-url",
            Self::ReconcilerLogGroupName => "--log-group",
            // Every stack of this version has both queues, the welcome on or off: only an older
            // stack lacks them, and no flag stands in for a redeploy.
            Self::WelcomeQueueUrl | Self::WelcomeDeadLetterQueueUrl => {
                "--stack-name of a stack of this version (redeploy an older one)"
            }
            Self::WelcomerFunctionName => "--function-name",
        }
    }
}

/// Why a name could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("stack `{stack}` does not exist in this account and region: pass --stack-name, or give {flag}")]
    NotFound { stack: String, flag: &'static str },
    #[error(
        "stack `{stack}` has no output `{output}` (is it a cognito-user-sync stack?): give {flag} instead"
    )]
    MissingOutput {
        stack: String,
        output: &'static str,
        flag: &'static str,
    },
    #[error("cannot read stack `{stack}` (or give {flag}): {detail}")]
    Describe {
        stack: String,
        flag: &'static str,
        detail: String,
    },
}

/// Names given on the command line.
#[derive(Debug, Default)]
pub struct Explicit {
    pub queue_url: Option<String>,
    pub dlq_url: Option<String>,
    pub users_table: Option<String>,
    pub profiles_table: Option<String>,
}

pub struct Names {
    cloudformation: Client,
    stack_name: String,
    explicit: Explicit,
    outputs: OnceCell<HashMap<String, String>>,
}

impl Names {
    pub fn new(cloudformation: Client, stack_name: String, explicit: Explicit) -> Self {
        Self {
            cloudformation,
            stack_name,
            explicit,
            outputs: OnceCell::new(),
        }
    }

    pub async fn queue_url(&self) -> Result<String, StackError> {
        self.resolve(self.explicit.queue_url.as_deref(), StackOutput::QueueUrl)
            .await
    }

    pub async fn dlq_url(&self) -> Result<String, StackError> {
        self.resolve(self.explicit.dlq_url.as_deref(), StackOutput::DeadLetterQueueUrl)
            .await
    }

    pub async fn users_table(&self) -> Result<String, StackError> {
        self.resolve(self.explicit.users_table.as_deref(), StackOutput::UsersTableName)
            .await
    }

    pub async fn profiles_table(&self) -> Result<String, StackError> {
        self.resolve(
            self.explicit.profiles_table.as_deref(),
            StackOutput::ProfilesTableName,
        )
        .await
    }

    /// The reconcile queue's URL: `explicit` (`reconcile --reconcile-queue-url`) or the stack's.
    pub async fn reconcile_queue_url(&self, explicit: Option<&str>) -> Result<String, StackError> {
        self.resolve(explicit, StackOutput::ReconcileQueueUrl).await
    }

    /// The reconciler's log group: `explicit` (`reconcile --latest --log-group`) or the stack's.
    pub async fn reconciler_log_group(&self, explicit: Option<&str>) -> Result<String, StackError> {
        self.resolve(explicit, StackOutput::ReconcilerLogGroupName).await
    }

    /// The trigger function's ARN: `explicit` (a subcommand's `--function-arn`) or the stack's.
    pub async fn trigger_function_arn(&self, explicit: Option<&str>) -> Result<String, StackError> {
        self.resolve(explicit, StackOutput::TriggerFunctionArn).await
    }

    /// The welcome queue and its dead-letter queue (the stack's; every stack has both).
    pub async fn welcome_queues(&self) -> Result<(String, String), StackError> {
        Ok((
            self.resolve(None, StackOutput::WelcomeQueueUrl).await?,
            self.resolve(None, StackOutput::WelcomeDeadLetterQueueUrl).await?,
        ))
    }

    /// The welcomer function: `explicit` (`welcome check --function-name`) or the stack's, which
    /// has one only when deployed with the welcome on.
    pub async fn welcomer_function(&self, explicit: Option<&str>) -> Result<String, StackError> {
        self.resolve(explicit, StackOutput::WelcomerFunctionName).await
    }

    /// The stack the names come from (`--stack-name`), for messages.
    pub fn stack_name(&self) -> &str {
        &self.stack_name
    }

    /// The user pool the stack's trigger serves: its UserPoolId output (no flag replaces it).
    pub async fn served_user_pool_id(&self) -> Result<String, StackError> {
        self.resolve(None, StackOutput::UserPoolId).await
    }

    async fn resolve(&self, explicit: Option<&str>, output: StackOutput) -> Result<String, StackError> {
        if let Some(value) = explicit {
            return Ok(value.to_owned());
        }
        let outputs = self.outputs.get_or_try_init(|| self.describe(output)).await?;
        outputs
            .get(output.key())
            .cloned()
            .ok_or_else(|| StackError::MissingOutput {
                stack: self.stack_name.clone(),
                output: output.key(),
                flag: output.flag(),
            })
    }

    async fn describe(&self, wanted: StackOutput) -> Result<HashMap<String, String>, StackError> {
        let described = self
            .cloudformation
            .describe_stacks()
            .stack_name(&self.stack_name)
            .send()
            .await
            .map_err(|err| {
                let detail = aws::detail(&err);
                // CloudFormation has no error code of its own for a missing stack: it answers
                // ValidationError "Stack with id NAME does not exist".
                if detail.starts_with("ValidationError") && detail.contains("does not exist") {
                    StackError::NotFound {
                        stack: self.stack_name.clone(),
                        flag: wanted.flag(),
                    }
                } else {
                    StackError::Describe {
                        stack: self.stack_name.clone(),
                        flag: wanted.flag(),
                        detail,
                    }
                }
            })?;
        let stack = described.stacks().first().ok_or_else(|| StackError::NotFound {
            stack: self.stack_name.clone(),
            flag: wanted.flag(),
        })?;
        Ok(stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect())
    }
}
