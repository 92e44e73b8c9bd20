//! The two tables, written with conditional writes (but for the profile tombstone, which
//! replaces whatever the profile held).
//!
//! A confirmation's puts are create-only (`attribute_not_exists(<key>)`): a redelivery, a redrive
//! or a duplicate confirmation finds the item there and changes nothing, so an item the
//! application has edited since is never overwritten. A deleted user's profile is marked or
//! replaced by a profile tombstone, never deleted, so the create-only put of a late
//! confirmation always finds an item there. A refresh replaces the users item
//! only if it still holds the revision read ([`Expected`]). A condition that fails is an
//! answer, not an error. Retries beyond the SDK's are the caller's (the consumer's `retry`).

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use shared::lifecycle::{
    DELETED_AT, Expected, PROFILE_DELETED_AT, REVISION, StoredItem, StoredProfile, StoredUser, WELCOME_CLAIM,
    WELCOME_CLAIMED_AT, WELCOME_FAILED, WELCOME_LEASE_UNTIL, WELCOME_MESSAGE_ID, WELCOME_PROBLEM,
    WELCOME_PROBLEM_AT, WELCOME_REOPENED_AT, WELCOME_SENT_AT, profile_tombstone_item,
};
use shared::mapping::{Item, ItemValue, PROFILES_KEY, USERS_KEY};

/// The users item's address and its flag, the username and every attribute, as the mapping
/// writes them.
const EMAIL: &str = "email";
const EMAIL_VERIFIED: &str = "email_verified";
const USERNAME: &str = "username";
const ATTRIBUTES: &str = "attributes";

pub struct Store {
    client: aws_sdk_dynamodb::Client,
    users_table: String,
    profiles_table: String,
}

/// Which table a call went to, for logs and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Users,
    Profiles,
}

impl Table {
    pub fn key(self) -> &'static str {
        match self {
            Self::Users => USERS_KEY,
            Self::Profiles => PROFILES_KEY,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Profiles => "profiles",
        }
    }
}

/// What a create-only write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// The item was there already: this confirmation was synced before. Nothing changed.
    AlreadyExists,
    /// The users item is a tombstone: the user was deleted or forgotten. Nothing was written.
    UserDeleted,
}

/// What a write conditional on the item read did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conditional {
    Written,
    /// The item changed since it was read: read again and decide again.
    Conflict,
}

/// A call that failed. The text is the SDK's error chain: operation, code and message from
/// DynamoDB, never the item.
#[derive(Debug, thiserror::Error)]
#[error("{operation} on the {} table failed ({}): {message}", table.as_str(), if *retryable { "retryable" } else { "not retryable" })]
pub struct WriteError {
    pub operation: &'static str,
    pub table: Table,
    pub retryable: bool,
    pub message: String,
}

impl Store {
    pub fn new(client: aws_sdk_dynamodb::Client, users_table: &str, profiles_table: &str) -> Self {
        Self {
            client,
            users_table: users_table.to_owned(),
            profiles_table: profiles_table.to_owned(),
        }
    }

    /// A store of the users table alone, for a function that writes nothing else (the
    /// welcomer): it is given no profiles table, and a call on one would be refused.
    pub fn users_only(client: aws_sdk_dynamodb::Client, users_table: &str) -> Self {
        Self::new(client, users_table, "")
    }

    fn table_name(&self, table: Table) -> &str {
        match table {
            Table::Users => &self.users_table,
            Table::Profiles => &self.profiles_table,
        }
    }

    /// Puts `item` into `table` unless an item with its key exists. For the users table, an
    /// item found there that is a tombstone is told apart ([`PutOutcome::UserDeleted`]), from
    /// the item the refused put returns (no extra read).
    pub async fn put_if_absent(&self, table: Table, item: &Item) -> Result<PutOutcome, WriteError> {
        let result = self
            .client
            .put_item()
            .table_name(self.table_name(table))
            .set_item(Some(to_attribute_values(item)))
            // The key name goes through a placeholder: no part of the expression comes from input.
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", table.key())
            // Only the users table's: a refused profile put need not carry the profile back.
            .set_return_values_on_condition_check_failure(
                (table == Table::Users).then_some(ReturnValuesOnConditionCheckFailure::AllOld),
            )
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(PutOutcome::Written),
            Err(err) => err,
        };
        if let SdkError::ServiceError(service) = &err
            && let PutItemError::ConditionalCheckFailedException(refused) = service.err()
        {
            let tombstone =
                table == Table::Users && refused.item().is_some_and(|old| old.contains_key(DELETED_AT));
            return Ok(if tombstone {
                PutOutcome::UserDeleted
            } else {
                PutOutcome::AlreadyExists
            });
        }
        Err(classify("PutItem", table, &err))
    }

    /// The users item of `sub`, read consistently (it decides what a refresh writes).
    pub async fn read_user(&self, sub: &str) -> Result<StoredUser, WriteError> {
        let item = self.read(Table::Users, sub).await?;
        Ok(StoredUser::from_item(item))
    }

    /// Whether the profile exists and carries the deletion marker.
    pub async fn read_profile(&self, profile_id: &str) -> Result<StoredProfile, WriteError> {
        let item = self.read(Table::Profiles, profile_id).await?;
        Ok(StoredProfile::from_item(item.as_ref()))
    }

    async fn read(&self, table: Table, key: &str) -> Result<Option<StoredItem>, WriteError> {
        let result = self
            .client
            .get_item()
            .table_name(self.table_name(table))
            .key(table.key(), AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| classify("GetItem", table, &err))?;
        Ok(result.item.map(|item| from_attribute_values(&item)))
    }

    /// Replaces the users item with `item` if it still is what was read.
    pub async fn put_user(&self, item: &Item, expected: Expected) -> Result<Conditional, WriteError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.users_table)
            .set_item(Some(to_attribute_values(item)))
            .expression_attribute_names("#key", USERS_KEY);
        let request = match expected {
            Expected::Absent => request.condition_expression("attribute_not_exists(#key)"),
            Expected::Revision(None) => request
                .condition_expression("attribute_exists(#key) AND attribute_not_exists(#revision)")
                .expression_attribute_names("#revision", REVISION),
            Expected::Revision(Some(revision)) => request
                .condition_expression("attribute_exists(#key) AND #revision = :revision")
                .expression_attribute_names("#revision", REVISION)
                .expression_attribute_values(":revision", AttributeValue::N(revision.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(Conditional::Written),
            Err(err) if is_condition_failure(&err) => Ok(Conditional::Conflict),
            Err(err) => Err(classify("PutItem", Table::Users, &err)),
        }
    }

    /// Sets the deletion marker unless it is set. Where there is no profile this creates a
    /// profile tombstone (its key and the marker), which a late confirmation's create-only put
    /// then finds.
    pub async fn mark_profile_deleted(&self, profile_id: &str, at: &str) -> Result<(), WriteError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.profiles_table)
            .key(PROFILES_KEY, AttributeValue::S(profile_id.to_owned()))
            .update_expression("SET #marker = :at")
            .condition_expression("attribute_not_exists(#marker)")
            .expression_attribute_names("#marker", PROFILE_DELETED_AT)
            .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(classify("UpdateItem", Table::Profiles, &err)),
        }
    }

    /// Replaces the profile, whatever it holds, with a profile tombstone.
    pub async fn erase_profile(&self, profile_id: &str, at: &str) -> Result<(), WriteError> {
        self.client
            .put_item()
            .table_name(&self.profiles_table)
            .set_item(Some(to_attribute_values(&profile_tombstone_item(profile_id, at))))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| classify("PutItem", Table::Profiles, &err))
    }
}

/// What a claim of the welcome send found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WelcomeClaim {
    /// This delivery may send, to this address: the users item's verified `email` as it is
    /// now (a change since the sign-up reached the item, not the message's), with what the
    /// mail is rendered from, also as the item has it now. No one has sent, and no live claim
    /// holds it.
    Claimed {
        email: String,
        username: String,
        attributes: std::collections::BTreeMap<String, String>,
    },
    /// A welcome was sent already (a redelivery, a second confirmation).
    AlreadySent,
    /// Another delivery claimed it and its lease has not run out: it may be sending now.
    Held { lease_until_ms: i64 },
    /// The users item is a tombstone, or gone: no welcome.
    UserDeleted,
    /// The users item has no `email`, or it is not verified (any more): no welcome.
    EmailNotVerified,
}

/// What became of a claimed send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WelcomeResult<'a> {
    Sent {
        at: &'a str,
        message_id: &'a str,
    },
    /// SES refused for good (its error code): the claim is left to expire, and `ops welcome
    /// unsent` lists the user.
    Refused {
        code: &'a str,
    },
}

impl Store {
    /// Claims the welcome of `sub` for this delivery (`claim`, a fresh id), until
    /// `lease_until_ms`: only if the user is live with a verified email, none was sent, and no
    /// claim holds it.
    pub async fn claim_welcome(
        &self,
        sub: &str,
        claim: &str,
        claimed_at: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<WelcomeClaim, WriteError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key(USERS_KEY, AttributeValue::S(sub.to_owned()))
            .update_expression(
                "SET #claim = :claim, #claimed_at = :claimed_at, #lease = :lease, #revision = if_not_exists(#revision, :zero) + :one",
            )
            .condition_expression(
                "attribute_exists(#key) AND attribute_not_exists(#deleted) AND attribute_not_exists(#sent) \
                 AND attribute_exists(#email) AND #verified = :true \
                 AND (attribute_not_exists(#lease) OR #lease < :now)",
            )
            .expression_attribute_names("#email", EMAIL)
            .expression_attribute_names("#verified", EMAIL_VERIFIED)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .expression_attribute_names("#key", USERS_KEY)
            .expression_attribute_names("#deleted", DELETED_AT)
            .expression_attribute_names("#sent", WELCOME_SENT_AT)
            .expression_attribute_names("#claim", WELCOME_CLAIM)
            .expression_attribute_names("#claimed_at", WELCOME_CLAIMED_AT)
            .expression_attribute_names("#lease", WELCOME_LEASE_UNTIL)
            .expression_attribute_names("#revision", REVISION)
            .expression_attribute_values(":claim", AttributeValue::S(claim.to_owned()))
            .expression_attribute_values(":claimed_at", AttributeValue::S(claimed_at.to_owned()))
            .expression_attribute_values(":lease", AttributeValue::N(lease_until_ms.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".to_owned()))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(claimed) => {
                let item = claimed.attributes();
                let text = |name: &str| {
                    item.and_then(|item| item.get(name))
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                let attributes = match item.and_then(|item| item.get(ATTRIBUTES)) {
                    Some(AttributeValue::M(map)) => map
                        .iter()
                        .filter_map(|(name, value)| Some((name.clone(), value.as_s().ok()?.clone())))
                        .collect(),
                    _ => Default::default(),
                };
                return Ok(WelcomeClaim::Claimed {
                    email: text(EMAIL),
                    username: text(USERNAME),
                    attributes,
                });
            }
            Err(err) => err,
        };
        if let SdkError::ServiceError(service) = &err
            && let UpdateItemError::ConditionalCheckFailedException(refused) = service.err()
        {
            let old = refused.item();
            let has = |name: &str| old.is_some_and(|item| item.contains_key(name));
            let verified = old.and_then(|item| item.get(EMAIL_VERIFIED)) == Some(&AttributeValue::Bool(true))
                && old.is_some_and(|item| item.contains_key(EMAIL));
            return Ok(if old.is_none() || has(DELETED_AT) {
                WelcomeClaim::UserDeleted
            } else if has(WELCOME_SENT_AT) {
                WelcomeClaim::AlreadySent
            } else if !verified {
                WelcomeClaim::EmailNotVerified
            } else {
                WelcomeClaim::Held {
                    lease_until_ms: old
                        .and_then(|item| item.get(WELCOME_LEASE_UNTIL))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                }
            });
        }
        Err(classify("UpdateItem", Table::Users, &err))
    }

    /// Records what became of the send `claim` made, if the claim is still this delivery's:
    /// `false` if another took it over (its lease ran out first).
    pub async fn record_welcome(
        &self,
        sub: &str,
        claim: &str,
        result: WelcomeResult<'_>,
    ) -> Result<bool, WriteError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key(USERS_KEY, AttributeValue::S(sub.to_owned()))
            .condition_expression("#claim = :claim")
            .expression_attribute_names("#claim", WELCOME_CLAIM)
            .expression_attribute_names("#revision", REVISION)
            .expression_attribute_values(":claim", AttributeValue::S(claim.to_owned()))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()));
        let request = match result {
            WelcomeResult::Sent { at, message_id } => request
                .update_expression(
                    "SET #sent = :at, #message = :message, #revision = #revision + :one \
                     REMOVE #failed, #problem, #problem_at",
                )
                .expression_attribute_names("#sent", WELCOME_SENT_AT)
                .expression_attribute_names("#message", WELCOME_MESSAGE_ID)
                .expression_attribute_names("#failed", WELCOME_FAILED)
                .expression_attribute_names("#problem", WELCOME_PROBLEM)
                .expression_attribute_names("#problem_at", WELCOME_PROBLEM_AT)
                .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
                .expression_attribute_values(":message", AttributeValue::S(message_id.to_owned())),
            WelcomeResult::Refused { code } => request
                .update_expression("SET #failed = :code, #revision = #revision + :one")
                .expression_attribute_names("#failed", WELCOME_FAILED)
                .expression_attribute_values(":code", AttributeValue::S(code.to_owned())),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(classify("UpdateItem", Table::Users, &err)),
        }
    }
}

impl Store {
    /// Gives up `claim` on the welcome of `sub` when its send certainly did not happen (SES
    /// refused it for the rate, say), so that the next try need not wait out the lease: `false`
    /// if the claim is no longer this delivery's.
    pub async fn release_welcome(&self, sub: &str, claim: &str) -> Result<bool, WriteError> {
        let released = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key(USERS_KEY, AttributeValue::S(sub.to_owned()))
            .update_expression("REMOVE #claim, #claimed_at, #lease SET #revision = #revision + :one")
            .condition_expression("#claim = :claim AND attribute_not_exists(#sent)")
            .expression_attribute_names("#claim", WELCOME_CLAIM)
            .expression_attribute_names("#claimed_at", WELCOME_CLAIMED_AT)
            .expression_attribute_names("#lease", WELCOME_LEASE_UNTIL)
            .expression_attribute_names("#sent", WELCOME_SENT_AT)
            .expression_attribute_names("#revision", REVISION)
            .expression_attribute_values(":claim", AttributeValue::S(claim.to_owned()))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .send()
            .await;
        match released {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(classify("UpdateItem", Table::Users, &err)),
        }
    }

    /// Reopens the welcome of `sub` that SES accepted and then reported as `problem` (a
    /// rendering failure, a rejection or a soft bounce, once the cause is fixed), at `now_ms`: its
    /// send, record and claim are removed so that a new request claims and sends it, and a late
    /// report of the old mail (received before `now_ms`) is no longer recorded. `false` if the
    /// item no longer records that problem (or is a tombstone).
    pub async fn reopen_welcome(&self, sub: &str, problem: &str, now_ms: i64) -> Result<bool, WriteError> {
        let reopened = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key(USERS_KEY, AttributeValue::S(sub.to_owned()))
            .update_expression(
                "REMOVE #sent, #message, #problem, #problem_at, #claim, #claimed_at, #lease \
                 SET #reopened = :now, #revision = #revision + :one",
            )
            .condition_expression("#problem = :problem AND attribute_not_exists(#deleted)")
            .expression_attribute_names("#sent", WELCOME_SENT_AT)
            .expression_attribute_names("#message", WELCOME_MESSAGE_ID)
            .expression_attribute_names("#problem", WELCOME_PROBLEM)
            .expression_attribute_names("#problem_at", WELCOME_PROBLEM_AT)
            .expression_attribute_names("#claim", WELCOME_CLAIM)
            .expression_attribute_names("#claimed_at", WELCOME_CLAIMED_AT)
            .expression_attribute_names("#lease", WELCOME_LEASE_UNTIL)
            .expression_attribute_names("#reopened", WELCOME_REOPENED_AT)
            .expression_attribute_names("#deleted", DELETED_AT)
            .expression_attribute_names("#revision", REVISION)
            .expression_attribute_values(":problem", AttributeValue::S(problem.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .send()
            .await;
        match reopened {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(classify("UpdateItem", Table::Users, &err)),
        }
    }

    /// Records what SES reported of the welcome of `sub` after accepting it (`problem`, one of
    /// `welcome::message::Problem`'s labels, received by EventBridge at `at_ms`) of the mail SES
    /// numbered `ses_message_id`: on a live users item only, for the welcome it records (or one
    /// whose record was lost), never a report older than a reopening, and only if no later
    /// report is recorded (SES's events may arrive out of order; one of the same millisecond
    /// replaces it). `false` when nothing was written for that.
    pub async fn record_welcome_problem(
        &self,
        sub: &str,
        ses_message_id: &str,
        problem: &str,
        at_ms: i64,
    ) -> Result<bool, WriteError> {
        let recorded = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key(USERS_KEY, AttributeValue::S(sub.to_owned()))
            .update_expression(
                "SET #problem = :problem, #problem_at = :at, #revision = if_not_exists(#revision, :zero) + :one",
            )
            .condition_expression(
                "attribute_exists(#key) AND attribute_not_exists(#deleted) \
                 AND (attribute_not_exists(#message) OR #message = :message) \
                 AND (attribute_not_exists(#reopened) OR #reopened < :at) \
                 AND (attribute_not_exists(#problem_at) OR #problem_at <= :at)",
            )
            .expression_attribute_names("#message", WELCOME_MESSAGE_ID)
            .expression_attribute_values(":message", AttributeValue::S(ses_message_id.to_owned()))
            .expression_attribute_names("#key", USERS_KEY)
            .expression_attribute_names("#deleted", DELETED_AT)
            .expression_attribute_names("#problem", WELCOME_PROBLEM)
            .expression_attribute_names("#problem_at", WELCOME_PROBLEM_AT)
            .expression_attribute_names("#reopened", WELCOME_REOPENED_AT)
            .expression_attribute_names("#revision", REVISION)
            .expression_attribute_values(":problem", AttributeValue::S(problem.to_owned()))
            .expression_attribute_values(":at", AttributeValue::N(at_ms.to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".to_owned()))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .send()
            .await;
        match recorded {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(classify("UpdateItem", Table::Users, &err)),
        }
    }
}

fn is_condition_failure<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(err, SdkError::ServiceError(service) if service.err().code() == Some("ConditionalCheckFailedException"))
}

/// Throttling, DynamoDB's internal errors, a transaction conflict (another caller's
/// transaction on the item) and transport problems are
/// worth another try; anything else (validation, a missing table, access denied) is not.
fn classify<E>(operation: &'static str, table: Table, err: &SdkError<E, HttpResponse>) -> WriteError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let retryable = match err {
        SdkError::ServiceError(service) => {
            matches!(
                service.err().code(),
                Some(
                    "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "TransactionConflictException"
                        | "ThrottlingException"
                        | "ServiceUnavailable"
                )
            ) || service.raw().status().is_server_error()
        }
        // Transport problems and timeouts: the request may not have reached DynamoDB at all.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        _ => false,
    };
    WriteError {
        operation,
        table,
        retryable,
        message: DisplayErrorContext(err).to_string(),
    }
}

/// Converts an item read back to the mapping's representation. A type this service never
/// writes (a list, a set, binary) reads as NULL: it differs from anything the mirror writes, so
/// the next refresh replaces it.
pub fn from_attribute_values(item: &HashMap<String, AttributeValue>) -> StoredItem {
    item.iter()
        .map(|(name, value)| (name.clone(), from_attribute_value(value)))
        .collect()
}

fn from_attribute_value(value: &AttributeValue) -> ItemValue {
    match value {
        AttributeValue::S(text) => ItemValue::S(text.clone()),
        AttributeValue::N(number) => number.parse().map_or(ItemValue::Null, ItemValue::N),
        AttributeValue::Bool(flag) => ItemValue::Bool(*flag),
        AttributeValue::M(map) => {
            let strings: Option<std::collections::BTreeMap<String, String>> = map
                .iter()
                .map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                .collect();
            strings.map_or(ItemValue::Null, ItemValue::M)
        }
        _ => ItemValue::Null,
    }
}

/// Converts the mapping's item to the SDK's representation.
pub fn to_attribute_values(item: &Item) -> HashMap<String, AttributeValue> {
    item.iter()
        .map(|(name, value)| ((*name).to_owned(), to_attribute_value(value)))
        .collect()
}

fn to_attribute_value(value: &ItemValue) -> AttributeValue {
    match value {
        ItemValue::S(text) => AttributeValue::S(text.clone()),
        ItemValue::N(number) => AttributeValue::N(number.to_string()),
        ItemValue::Bool(flag) => AttributeValue::Bool(*flag),
        ItemValue::Null => AttributeValue::Null(true),
        ItemValue::M(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::mapping::USERS_KEY;
    use std::collections::BTreeMap;

    #[test]
    fn every_item_value_maps_to_its_dynamodb_type() {
        let mut item = Item::new();
        item.insert(USERS_KEY, ItemValue::S("u1".into()));
        item.insert("email_verified", ItemValue::Bool(true));
        item.insert("id_type", ItemValue::Null);
        item.insert(
            "attributes",
            ItemValue::M(BTreeMap::from([("custom:plan".to_owned(), "pro".to_owned())])),
        );
        let av = to_attribute_values(&item);
        assert_eq!(av[USERS_KEY], AttributeValue::S("u1".into()));
        assert_eq!(av["email_verified"], AttributeValue::Bool(true));
        assert_eq!(av["id_type"], AttributeValue::Null(true));
        assert_eq!(
            av["attributes"],
            AttributeValue::M(HashMap::from([(
                "custom:plan".to_owned(),
                AttributeValue::S("pro".into())
            )]))
        );
        assert_eq!(av.len(), 4);
    }

    #[test]
    fn an_item_read_back_is_the_item_written() {
        let mut item = Item::new();
        item.insert(USERS_KEY, ItemValue::S("u1".into()));
        item.insert(REVISION, ItemValue::N(42));
        item.insert("enabled", ItemValue::Bool(false));
        item.insert(
            "attributes",
            ItemValue::M(BTreeMap::from([("custom:plan".to_owned(), "pro".to_owned())])),
        );
        let read = from_attribute_values(&to_attribute_values(&item));
        let expected: StoredItem = item.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        assert_eq!(read, expected);
        let list = HashMap::from([("tags".to_owned(), AttributeValue::L(vec![]))]);
        assert_eq!(from_attribute_values(&list)["tags"], ItemValue::Null);
    }
}
