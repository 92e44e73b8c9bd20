//! `ops`: the operator's command line for cognito-user-sync.
//!
//! One file per subcommand (`dlq_peek.rs`, `dlq_redrive.rs`, `backfill.rs`, `reconcile.rs`,
//! `attach_trigger.rs`, `detach_trigger.rs`, `forget.rs`, `refresh.rs`, `welcome.rs`), each with its arguments
//! and a `run` that returns an [`Outcome`]; the decisions they make are plain functions,
//! unit-tested beside them. This file only parses the
//! command line, builds what every subcommand shares (one SDK configuration, the clients, the
//! stack's names) and turns the outcome into an exit code.
//!
//! Exit codes: 0 done; 1 an error, or work left undone (the report says what); 2 a bad command
//! line (clap's message); 3 `reconcile` found confirmed users missing from either table; 4
//! `welcome check` found what stops every welcome.
//!
//! Reports go to stdout (one JSON object per line with `--json`); progress bars, resume tokens
//! and warnings go to stderr, so that stdout stays machine-readable.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::Value;

mod attach_trigger;
mod aws;
mod backfill;
mod detach_trigger;
mod dlq_peek;
mod dlq_redrive;
mod forget;
mod progress;
mod queue;
mod reconcile;
mod refresh;
mod stack;
mod user_pool;
mod welcome;

/// Operate a cognito-user-sync deployment: its dead-letter queue, users who confirmed before the
/// trigger was attached, and the trigger's attachment to a user pool.
///
/// AWS credentials, region and endpoint come from the SDK's standard sources (AWS_PROFILE,
/// AWS_REGION, AWS_ENDPOINT_URL, ...).
#[derive(Debug, Parser)]
#[command(name = "ops", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
struct GlobalArgs {
    /// The CloudFormation stack whose outputs name the queues, tables and trigger.
    #[arg(long, global = true, value_name = "NAME", default_value = "cognito-user-sync")]
    stack_name: String,
    /// The sync queue's URL (instead of the stack's QueueUrl output).
    #[arg(long, global = true, value_name = "URL")]
    queue_url: Option<String>,
    /// The dead-letter queue's URL (instead of the stack's DeadLetterQueueUrl output).
    #[arg(long, global = true, value_name = "URL")]
    dlq_url: Option<String>,
    /// The users table's name (instead of the stack's UsersTableName output).
    #[arg(long, global = true, value_name = "NAME")]
    users_table: Option<String>,
    /// The profiles table's name (instead of the stack's ProfilesTableName output).
    #[arg(long, global = true, value_name = "NAME")]
    profiles_table: Option<String>,
    /// Print reports as one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Look at or redrive the dead-letter queue.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Enqueue the pool's confirmed users: those who confirmed before the trigger was attached.
    Backfill(backfill::Args),
    /// Compare the pool with both tables, every kind of drift; --repair sends refresh signals.
    Reconcile(reconcile::Args),
    /// Set the pool's Post Confirmation trigger, carrying every other setting over unchanged.
    AttachTrigger(attach_trigger::Args),
    /// Remove this deployment's Post Confirmation trigger from the pool (before or after
    /// deleting the stack), carrying every other setting over unchanged.
    DetachTrigger(detach_trigger::Args),
    /// Erase one user (a data-subject request): their users item becomes a tombstone and their
    /// profile's data is erased, so that nothing re-creates them. Cognito is not changed.
    Forget(forget::Args),
    /// Ask the consumer to bring these users' items up to the pool's state now (a change no
    /// signal brought): one refresh signal per sub on the sync queue.
    Refresh(refresh::Args),
    /// The welcome email: `check` that one can be sent; list the users whose welcome did not
    /// reach them (`unsent`), and `unsent --resend` greets those another mail can help.
    Welcome(welcome::Args),
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List the DLQ's messages and why each failed, without consuming them.
    Peek(dlq_peek::Args),
    /// Move the DLQ's messages back to the sync queue.
    Redrive(dlq_redrive::Args),
}

/// How a subcommand ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked was done (or, with `--dry-run`, shown).
    Done,
    /// Some of the work could not be done; the report says what and how to resume.
    Incomplete,
    /// `reconcile` without `--repair` found confirmed users missing from the table.
    OutOfSync,
    /// `welcome check` found what stops every welcome.
    NotReady,
}

impl Outcome {
    fn exit_code(self) -> ExitCode {
        match self {
            Self::Done => ExitCode::SUCCESS,
            Self::Incomplete => ExitCode::from(1),
            Self::OutOfSync => ExitCode::from(3),
            Self::NotReady => ExitCode::from(4),
        }
    }
}

/// What every subcommand is handed: the clients (built once), the stack's names, the printer.
pub struct Ctx {
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub ses: aws_sdk_sesv2::Client,
    pub iam: aws_sdk_iam::Client,
    pub names: stack::Names,
    pub printer: Printer,
}

/// Prints reports to stdout, human-readable or as JSON lines.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    json: bool,
}

impl Printer {
    pub fn json(self) -> bool {
        self.json
    }

    /// Prints one report: the human text, or the JSON object on one line.
    pub fn report(self, human: &str, json: &Value) {
        if self.json {
            println!("{json}");
        } else {
            println!("{human}");
        }
    }
}

impl Cli {
    /// Checks across flags that clap's per-flag parsers cannot make.
    fn validate(&self) -> Result<(), String> {
        match &self.command {
            Command::Backfill(args) => args.validate(),
            Command::Reconcile(args) => args.validate(),
            _ => Ok(()),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // A bad flag exits here with clap's message and code 2, and so does a combination of flags
    // that cannot work.
    let cli = Cli::parse();
    if let Err(why) = cli.validate() {
        use clap::CommandFactory;
        Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, why)
            .exit();
    }
    match run(cli).await {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome> {
    let sdk = aws::load_config().await?;
    let global = cli.global;
    let ctx = Ctx {
        sqs: aws_sdk_sqs::Client::new(&sdk),
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        cognito: aws_sdk_cognitoidentityprovider::Client::new(&sdk),
        lambda: aws_sdk_lambda::Client::new(&sdk),
        logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
        ses: aws_sdk_sesv2::Client::new(&sdk),
        iam: aws_sdk_iam::Client::new(&sdk),
        names: stack::Names::new(
            aws_sdk_cloudformation::Client::new(&sdk),
            global.stack_name,
            stack::Explicit {
                queue_url: global.queue_url,
                dlq_url: global.dlq_url,
                users_table: global.users_table,
                profiles_table: global.profiles_table,
            },
        ),
        printer: Printer { json: global.json },
    };
    match cli.command {
        Command::Dlq {
            command: DlqCommand::Peek(args),
        } => dlq_peek::run(&ctx, &args).await,
        Command::Dlq {
            command: DlqCommand::Redrive(args),
        } => dlq_redrive::run(&ctx, &args).await,
        Command::Backfill(args) => backfill::run(&ctx, &args).await,
        Command::Reconcile(args) => reconcile::run(&ctx, &args).await,
        Command::AttachTrigger(args) => attach_trigger::run(&ctx, &args).await,
        Command::DetachTrigger(args) => detach_trigger::run(&ctx, &args).await,
        Command::Forget(args) => forget::run(&ctx, &args).await,
        Command::Refresh(args) => refresh::run(&ctx, &args).await,
        Command::Welcome(args) => welcome::run(&ctx, &args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "ops",
            "dlq",
            "peek",
            "--stack-name",
            "other",
            "--dlq-url",
            "http://q",
        ])
        .unwrap();
        assert_eq!(cli.global.stack_name, "other");
        assert_eq!(cli.global.dlq_url.as_deref(), Some("http://q"));
    }

    #[test]
    fn a_bad_flag_is_a_usage_error() {
        let err = Cli::try_parse_from(["ops", "dlq", "peek", "--bogus"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--bogus"), "{err}");
    }
}
