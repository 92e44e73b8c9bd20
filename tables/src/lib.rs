//! The two tables, written only with conditional writes.
//!
//! A confirmation's puts are create-only (`attribute_not_exists(<key>)`): a redelivery, a redrive
//! or a duplicate confirmation finds the item there and changes nothing, so an item the
//! application has edited since is never overwritten. A profile's creation is followed by a
//! read of the users item, and undone (marked or deleted, as a deletion would) when that item
//! has become a tombstone, so that a deletion racing a late confirmation never leaves a profile
//! behind. A refresh replaces the users item
//! only if it still holds the revision read ([`Expected`]). A condition that fails is an
//! answer, not an error. Retries beyond the SDK's are the caller's (the consumer's `retry`).

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use shared::lifecycle::{
    DELETED_AT, Expected, PROFILE_DELETED_AT, ProfileOnDeletion, REVISION, StoredItem, StoredProfile,
    StoredUser,
};
use shared::mapping::{Item, ItemValue, PROFILES_KEY, USERS_KEY};

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

    fn table_name(&self, table: Table) -> &str {
        match table {
            Table::Users => &self.users_table,
            Table::Profiles => &self.profiles_table,
        }
    }

    /// Puts `item` into `table` unless an item with its key exists.
    pub async fn put_if_absent(&self, table: Table, item: &Item) -> Result<PutOutcome, WriteError> {
        let result = self
            .client
            .put_item()
            .table_name(self.table_name(table))
            .set_item(Some(to_attribute_values(item)))
            // The key name goes through a placeholder: no part of the expression comes from input.
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", table.key())
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(err) if is_condition_failure(&err) => Ok(PutOutcome::AlreadyExists),
            Err(err) => Err(classify("PutItem", table, &err)),
        }
    }

    /// Creates the profile `item` of user `sub` unless it exists, then makes sure that its user
    /// was not deleted meanwhile: if the users item is a tombstone by then, a profile created
    /// here is deleted again, one that existed gets the deletion's effect (`on_deletion`; a
    /// forgotten user's is deleted), and the answer is [`PutOutcome::UserDeleted`].
    ///
    /// Why this order needs no transaction: a deletion writes the tombstone first and then marks
    /// or deletes the profile. A profile created before that second step is reached by it; one
    /// created after it finds the tombstone here, since this read follows the creation. And a
    /// crash between the creation and this read leaves the message unanswered, so its
    /// redelivery (which finds the profile there) reads again. (A transaction with a condition
    /// check would do the same in one call; moto rolls a cancelled transaction back by
    /// restoring whole tables, losing concurrent writes, so the local stack could not show it.)
    pub async fn create_profile_unless_deleted(
        &self,
        item: &Item,
        sub: &str,
        on_deletion: ProfileOnDeletion,
    ) -> Result<PutOutcome, WriteError> {
        let created = self.put_if_absent(Table::Profiles, item).await?;
        let stored = self.read_user(sub).await?;
        let StoredUser::Tombstone(tombstone) = &stored else {
            return Ok(created);
        };
        let Some(ItemValue::S(profile_id)) = item.get(PROFILES_KEY) else {
            return Ok(PutOutcome::UserDeleted);
        };
        // A profile this call just created holds nothing of the application's: it goes. So does
        // a forgotten user's. Otherwise the deletion's own effect, which it may not have
        // reached yet.
        if created == PutOutcome::Written || stored.is_forgotten() || on_deletion == ProfileOnDeletion::Delete
        {
            self.delete_profile(profile_id).await?;
        } else {
            let deleted_at = match tombstone.get(DELETED_AT) {
                Some(ItemValue::S(at)) => at.as_str(),
                _ => "",
            };
            self.mark_profile_deleted(profile_id, deleted_at).await?;
        }
        Ok(PutOutcome::UserDeleted)
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

    /// Sets the deletion marker on a profile that exists and has none (else changes nothing).
    pub async fn mark_profile_deleted(&self, profile_id: &str, at: &str) -> Result<(), WriteError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.profiles_table)
            .key(PROFILES_KEY, AttributeValue::S(profile_id.to_owned()))
            .update_expression("SET #marker = :at")
            .condition_expression("attribute_exists(#key) AND attribute_not_exists(#marker)")
            .expression_attribute_names("#key", PROFILES_KEY)
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

    /// Deletes a profile (nothing if there is none).
    pub async fn delete_profile(&self, profile_id: &str) -> Result<(), WriteError> {
        self.client
            .delete_item()
            .table_name(&self.profiles_table)
            .key(PROFILES_KEY, AttributeValue::S(profile_id.to_owned()))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| classify("DeleteItem", Table::Profiles, &err))
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
