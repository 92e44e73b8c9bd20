//! What `attach-trigger` tells the operator: a line per change for a person, one JSON object
//! for a script (`--json`), from the same facts.

use serde_json::{Value, json};
use shared::timestamp::format_rfc3339;
use time::OffsetDateTime;

use super::Attachment;
use super::permission::{COGNITO_PRINCIPAL, Grant, Permission};
use super::pool_update::{Change, POST_CONFIRMATION, apply_hint, changes_json};

/// What one run decided and did.
pub struct AttachReport<'a> {
    pub pool_id: &'a str,
    pub function_arn: &'a str,
    pub dry_run: bool,
    pub attachment: &'a Attachment,
    pub changes: &'a [Change],
    pub permission: &'a Permission,
    pub grant: &'a Grant,
    /// The pool's `LastModifiedDate` when it was read.
    pub read: Option<OffsetDateTime>,
}

impl AttachReport<'_> {
    /// The report for a person and the one for a script.
    pub fn render(&self) -> (String, Value) {
        let Self {
            pool_id,
            function_arn,
            dry_run,
            attachment,
            changes,
            permission,
            grant,
            read,
        } = *self;
        let (permission_word, sid) = match (permission, dry_run) {
            (Permission::Present { statement_id }, _) => ("present", statement_id),
            (Permission::Add { statement_id }, true) => ("would_add", statement_id),
            (Permission::Add { statement_id }, false) => ("added", statement_id),
        };
        let replaced = match attachment {
            Attachment::Replace { previous } => Some(previous.as_str()),
            Attachment::Already | Attachment::New => None,
        };
        let mut human = format!(
            "attach-trigger {pool_id}{dry}",
            dry = if dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            },
        );
        if *attachment == Attachment::Already {
            human.push_str(&format!(
                "\n  {POST_CONFIRMATION} is already {function_arn}: pool not updated"
            ));
        }
        for change in changes {
            human.push_str(&format!("\n  {}: {} -> {}", change.field, change.old, change.new));
        }
        if let Some(previous) = replaced {
            let verb = if dry_run { "would replace" } else { "replaced" };
            human.push_str(&format!(
                "\n  {verb} the Post Confirmation trigger {previous} (--replace)"
            ));
        }
        human.push_str(&format!(
            "\n  permission for {COGNITO_PRINCIPAL} (SourceArn {}, SourceAccount {}): {} (statement {sid})",
            grant.pool_arn,
            grant.account,
            permission_word.replace('_', " ")
        ));
        if dry_run {
            human.push_str(&apply_hint(read));
        }
        let json = json!({
                "command": "attach-trigger",
                "user_pool_id": pool_id,
                "function_arn": function_arn,
                "dry_run": dry_run,
                "changes": changes_json(changes),
                "replaced": replaced,
                "permission": permission_word,
                "statement_id": sid,
                "pool_last_modified": read.map(format_rfc3339),
        });
        (human, json)
    }
}
