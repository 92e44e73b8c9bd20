//! `ops welcome`: the welcome email's two jobs for an operator. `check` says, before the first
//! sign-up, whether a welcome can be sent at all; `unsent` lists the users whose welcome is not
//! known to have reached them, and `--resend` greets those it can.

use anyhow::Result;

use crate::{Ctx, Outcome};

pub mod check;
pub mod unsent;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: WelcomeCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum WelcomeCommand {
    /// List the users whose welcome is not known to have reached them: refused by SES, sent
    /// but not delivered (a bounce, a complaint, a template that did not render), given up
    /// after a day of SES's limits, or unknown (a claim that expired without a record).
    Unsent(unsent::Args),
    /// Check that a welcome can be sent: the account's sending and quota, the sandbox, the
    /// sender identity, the configuration set, the template (rendered for a user with no
    /// optional attribute) and what the welcomer's role may do. Exit code 4 when a welcome
    /// could not be sent.
    Check(check::Args),
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    match &args.command {
        WelcomeCommand::Unsent(args) => unsent::run(ctx, args).await,
        WelcomeCommand::Check(args) => check::run(ctx, args).await,
    }
}
