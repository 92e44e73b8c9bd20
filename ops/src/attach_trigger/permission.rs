//! The Lambda permission that lets Cognito invoke the trigger: principal
//! `cognito-idp.amazonaws.com`, restricted to one pool's ARN and account. `attach-trigger` adds
//! it *before* it updates the pool (the other order leaves a window in which every confirmation
//! fails because Cognito may not invoke the new trigger); a statement that already grants exactly
//! that (ours, or the stack's own) is left as it is.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{Ctx, aws};

/// Who is granted: Cognito's service principal.
pub const COGNITO_PRINCIPAL: &str = "cognito-idp.amazonaws.com";

/// The statement id this tool gives the permission: one per pool, so a rerun finds it.
pub fn statement_id(pool_id: &str) -> String {
    format!("cognito-user-sync-{pool_id}")
}

/// Who may invoke the trigger: Cognito, for this pool of this account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub pool_arn: String,
    pub account: String,
}

impl Grant {
    /// From the pool's ARN (`arn:aws:cognito-idp:<region>:<account>:userpool/<id>`).
    pub fn for_pool(pool_arn: &str) -> Option<Self> {
        let account = pool_arn.split(':').nth(4).filter(|a| !a.is_empty())?;
        Some(Self {
            pool_arn: pool_arn.to_owned(),
            account: account.to_owned(),
        })
    }

    /// Whether a statement of the function's resource policy allows exactly this.
    pub fn is_granted_by(&self, statement: &Value) -> bool {
        let action = &statement["Action"];
        let action_ok = action == "lambda:InvokeFunction"
            || action
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "lambda:InvokeFunction"));
        statement["Effect"] == "Allow"
            && action_ok
            && statement["Principal"]["Service"] == COGNITO_PRINCIPAL
            && statement["Condition"]["ArnLike"]["AWS:SourceArn"] == self.pool_arn.as_str()
            && statement["Condition"]["StringEquals"]["AWS:SourceAccount"] == self.account.as_str()
    }
}

/// What to do about the Lambda permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// A statement (this id or another) already grants it.
    Present { statement_id: String },
    /// No statement grants it; add ours.
    Add { statement_id: String },
}

/// Decides from the function's policy statements; refuses when our statement id is taken by a
/// statement that grants something else (removing it is the operator's call).
pub fn plan_permission(statements: &[Value], grant: &Grant, pool_id: &str) -> Result<Permission, String> {
    let ours = statement_id(pool_id);
    if let Some(existing) = statements.iter().find(|s| grant.is_granted_by(s)) {
        return Ok(Permission::Present {
            statement_id: existing["Sid"].as_str().unwrap_or_default().to_owned(),
        });
    }
    if statements.iter().any(|s| s["Sid"] == ours.as_str()) {
        return Err(format!(
            "the function's policy has a statement `{ours}` that does not grant what this tool \
             would: remove it (lambda remove-permission --statement-id {ours}) and run again"
        ));
    }
    Ok(Permission::Add { statement_id: ours })
}

/// The function's resource-policy statements; none when it has no policy (GetPolicy answers
/// ResourceNotFound then, as it does for a missing function: the caller tells those apart
/// first).
pub async fn policy_statements(ctx: &Ctx, function_arn: &str) -> Result<Vec<Value>> {
    let policy = match ctx.lambda.get_policy().function_name(function_arn).send().await {
        Ok(output) => output.policy().unwrap_or("{}").to_owned(),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Ok(Vec::new());
        }
        Err(err) => bail!("GetPolicy on {function_arn} failed: {}", aws::detail(&err)),
    };
    let policy: Value = serde_json::from_str(&policy).context("the function's policy is not JSON")?;
    Ok(match &policy["Statement"] {
        Value::Array(statements) => statements.clone(),
        Value::Object(_) => vec![policy["Statement"].clone()],
        _ => Vec::new(),
    })
}

/// Adds the statement `statement_id` granting `grant`; fine when someone else just added the
/// same grant.
pub async fn add_permission(ctx: &Ctx, function_arn: &str, statement_id: &str, grant: &Grant) -> Result<()> {
    let added = ctx
        .lambda
        .add_permission()
        .function_name(function_arn)
        .statement_id(statement_id)
        .action("lambda:InvokeFunction")
        .principal(COGNITO_PRINCIPAL)
        .source_arn(&grant.pool_arn)
        .source_account(&grant.account)
        .send()
        .await;
    match added {
        Ok(_) => Ok(()),
        // Added by someone else since we looked: fine if it is what we would have added.
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_conflict_exception()) =>
        {
            let statements = policy_statements(ctx, function_arn).await?;
            if statements.iter().any(|s| grant.is_granted_by(s)) {
                Ok(())
            } else {
                bail!("statement {statement_id} appeared on {function_arn} with other conditions")
            }
        }
        Err(err) => bail!("AddPermission on {function_arn} failed: {}", aws::detail(&err)),
    }
}
