//! The two tables, written with conditional puts.
//!
//! `attribute_not_exists(<key>)` makes every put create-only: a redelivery, a redrive or a
//! duplicate confirmation finds the item there and changes nothing, so an item the application
//! has edited since is never overwritten. The conditional-check failure is the expected answer
//! to a duplicate, not an error. How each put is retried is `retry`'s.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::mapping::{Item, ItemValue};

use crate::config::ConsumerConfig;
use crate::retry;

pub struct Store {
    client: aws_sdk_dynamodb::Client,
    users_table: String,
    profiles_table: String,
}

/// Which table a put went to, for logs and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Users,
    Profiles,
}

impl Table {
    pub fn key(self) -> &'static str {
        match self {
            Self::Users => shared::mapping::USERS_KEY,
            Self::Profiles => shared::mapping::PROFILES_KEY,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Profiles => "profiles",
        }
    }
}

/// What a conditional put did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// The item was there already: this confirmation was synced before. Nothing changed.
    AlreadyExists,
}

/// A put that failed. The text is the SDK's error chain: operation, code and message from
/// DynamoDB, never the item.
#[derive(Debug, thiserror::Error)]
#[error("PutItem on the {} table failed ({}): {message}", table.as_str(), if *retryable { "retryable" } else { "not retryable" })]
pub struct WriteError {
    pub table: Table,
    pub retryable: bool,
    pub message: String,
}

impl Store {
    pub async fn connect(config: &ConsumerConfig) -> Self {
        let sdk = sdk_config::load(retry::sdk_retry(config.sdk_max_attempts), retry::sdk_timeouts()).await;
        Self {
            client: aws_sdk_dynamodb::Client::new(&sdk),
            users_table: config.users_table.clone(),
            profiles_table: config.profiles_table.clone(),
        }
    }

    /// Puts `item` into `table` unless an item with its key exists.
    pub async fn put_if_absent(&self, table: Table, item: &Item) -> Result<PutOutcome, WriteError> {
        let table_name = match table {
            Table::Users => &self.users_table,
            Table::Profiles => &self.profiles_table,
        };
        let result = self
            .client
            .put_item()
            .table_name(table_name)
            .set_item(Some(to_attribute_values(item)))
            // The key name goes through a placeholder: no part of the expression comes from input.
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", table.key())
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(err) => classify(table, err),
        }
    }
}

fn classify(table: Table, err: SdkError<PutItemError>) -> Result<PutOutcome, WriteError> {
    let retryable = match &err {
        SdkError::ServiceError(service) => match service.err() {
            PutItemError::ConditionalCheckFailedException(_) => return Ok(PutOutcome::AlreadyExists),
            PutItemError::ProvisionedThroughputExceededException(_)
            | PutItemError::RequestLimitExceeded(_)
            | PutItemError::InternalServerError(_)
            | PutItemError::TransactionConflictException(_) => true,
            other => {
                let code = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(other);
                matches!(code, Some("ThrottlingException" | "ServiceUnavailable"))
                    || service.raw().status().is_server_error()
            }
        },
        // Transport problems and timeouts: the request may not have reached DynamoDB at all.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        _ => false,
    };
    Err(WriteError {
        table,
        retryable,
        message: DisplayErrorContext(&err).to_string(),
    })
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
}
