//! One step of a run against AWS: a page of the pool compared with both tables, or a page of
//! every segment of the users table's scan, or the end of the deletion check.
//!
//! A page of the walk is one `ListUsers` call (60 users, the most it returns) and two
//! `BatchGetItem` calls (the users items and the profiles' keys of those 60, one call per
//! table: 120 keys are over its 100), so memory holds one page whatever the pool's size. Reads
//! are eventually consistent: a difference they show is only a reason to refresh, and the
//! consumer reads the user and the items again, strongly, before it writes anything.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use drift::compare::{compare, takes_part};
use drift::{Cursor, Drift, DriftKind, Phase, SubDifference};
use shared::ProfileId;
use shared::lifecycle::StoredItem;
use shared::mapping::{PROFILES_KEY, USERS_KEY};
use tokio::time::Instant;

use crate::pacer::AdaptivePacer;

/// `ListUsers` returns at most 60 users a page.
pub const PAGE_SIZE: i32 = 60;
/// Items per page of each scan segment: a page's memory stays small (the projection is four
/// short attributes) while a segment still needs few calls.
pub const SCAN_PAGE_ITEMS: i32 = 250;
/// `BatchGetItem`'s unprocessed keys are asked again this many times, backing off, before the
/// step fails (and the invocation's message comes back to try again).
const UNPROCESSED_ROUNDS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Cognito(pool_reader::ReadError),
    #[error("{operation} on table {table} failed: {detail}")]
    DynamoDb {
        operation: &'static str,
        table: String,
        detail: String,
    },
    #[error("the run's cursor: {0}")]
    Cursor(#[from] drift::cursor::CursorError),
    /// Cognito refused the cursor's pagination token (AWS: `InvalidParameterException`, the
    /// call being otherwise the one that gave the token; moto: `InvalidToken`). Tokens do not
    /// last: a cursor that waited long in a queue, or was redriven from its DLQ days later,
    /// cannot go on from it.
    #[error("ListUsers refused the cursor's pagination token ({code})")]
    TokenRefused { code: String },
    /// Not a failure: the step would not finish before the invocation's deadline, and the
    /// cursor is handed on as it was.
    #[error("out of time for another page")]
    OutOfTime,
}

/// What one step did.
#[derive(Debug)]
pub enum Step {
    /// A page walked or scanned; the drifts it found.
    Page(Vec<Drift>),
    /// The run is over; the users deleted without a signal.
    Finished(Vec<Drift>),
}

/// What a run reads: the pool and the two tables.
pub struct Sources {
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub user_pool_id: String,
    pub users_table: String,
    pub profiles_table: String,
}

pub struct Walker {
    sources: Sources,
    pacer: AdaptivePacer,
}

impl Walker {
    /// `lists_per_second`: the most `ListUsers` calls a second (throttles slow it further).
    pub fn new(sources: Sources, lists_per_second: f64) -> Self {
        Self {
            sources,
            pacer: AdaptivePacer::per_second(lists_per_second),
        }
    }

    pub fn user_pool_id(&self) -> &str {
        &self.sources.user_pool_id
    }

    /// `ListUsers` requests per second now.
    pub fn rate(&self) -> f64 {
        self.pacer.rate()
    }

    /// How long until the walk may ask for its next page.
    pub fn next_page_in(&self) -> std::time::Duration {
        self.pacer.next_slot_in(Instant::now())
    }

    /// Advances `cursor` (and the run's set difference) by one step. `deadline`: no request is
    /// started that the pacer would make wait past it.
    pub async fn step(
        &mut self,
        cursor: &mut Cursor,
        difference: &mut SubDifference,
        deadline: Option<Instant>,
    ) -> Result<Step, RunError> {
        match cursor.phase {
            Phase::Walk => self.walk_page(cursor, difference, deadline).await.map(Step::Page),
            Phase::Sweep if cursor.segments.iter().all(|s| s.done) => {
                Ok(Step::Finished(finish(cursor, difference)))
            }
            Phase::Sweep => self
                .sweep_round(cursor, difference)
                .await
                .map(|()| Step::Page(Vec::new())),
        }
    }

    async fn walk_page(
        &mut self,
        cursor: &mut Cursor,
        difference: &mut SubDifference,
        deadline: Option<Instant>,
    ) -> Result<Vec<Drift>, RunError> {
        let page = self.list_page(cursor, deadline).await?;
        let users = page.users();
        let pool = self.sources.user_pool_id.clone();
        let mut listed = Vec::with_capacity(users.len());
        // Users this service cannot store, but whose sub is a sub: their items are still the
        // pool's, not deleted users' (the deletion check must see them listed).
        let mut unusable_subs = Vec::new();
        for user in users {
            match pool_reader::pool_user(&pool, pool_reader::CognitoUser::from(user)) {
                Ok(user) => listed.push(user),
                Err(err) => {
                    cursor.counts.unusable += 1;
                    let sub = pool_reader::sub_of(user).and_then(|sub| shared::user::normalise_sub(sub).ok());
                    tracing::warn!(event = "reconcile_user_unusable", sub = sub.as_deref().unwrap_or(""), error = %err);
                    unusable_subs.extend(sub);
                }
            }
        }
        let mut subs: Vec<String> = listed.iter().map(|u| u.sub().to_owned()).collect();
        subs.extend(unusable_subs.iter().cloned());
        let profile_ids: Vec<String> = subs
            .iter()
            .map(|sub| ProfileId::derive(&pool, sub).to_string())
            .collect();
        let (items, profiles) = tokio::try_join!(
            self.batch_get(&self.sources.users_table, USERS_KEY, &subs, None),
            self.batch_get(
                &self.sources.profiles_table,
                PROFILES_KEY,
                &profile_ids,
                Some(PROFILES_KEY)
            ),
        )?;
        let started_at = cursor.started_at();
        for sub in &unusable_subs {
            if items.get(sub).is_some_and(|item| takes_part(item, started_at)) {
                difference.add_listed(key_of(sub).unwrap_or_default());
            }
        }
        let mut drifts = Vec::new();
        for (user, profile_id) in listed.iter().zip(&profile_ids) {
            let seen = compare(
                user,
                items.get(user.sub()),
                profiles.contains_key(profile_id),
                started_at,
            );
            if seen.listed_with_item {
                difference.add_listed(key_of(user.sub()).unwrap_or_default());
            }
            if let Some(kind) = seen.drift {
                cursor.counts.add(kind);
                drifts.push(Drift {
                    kind,
                    sub: user.sub().to_owned(),
                    username: Some(user.username().to_owned()),
                });
            }
        }
        cursor.counts.listed += users.len() as u64;
        cursor.counts.pages += 1;
        cursor.next_token = page.pagination_token().map(str::to_owned);
        if cursor.next_token.is_none() {
            cursor.phase = Phase::Sweep;
        }
        Ok(drifts)
    }

    /// The next page of the pool, at the pacer's rate; a throttle or a transient failure
    /// slows the pacer and asks again.
    async fn list_page(
        &mut self,
        cursor: &mut Cursor,
        deadline: Option<Instant>,
    ) -> Result<aws_sdk_cognitoidentityprovider::operation::list_users::ListUsersOutput, RunError> {
        loop {
            let Some(wait) = self.pacer.reserve_before(Instant::now(), deadline) else {
                return Err(RunError::OutOfTime);
            };
            tokio::time::sleep(wait).await;
            let result = self
                .sources
                .cognito
                .list_users()
                .user_pool_id(&self.sources.user_pool_id)
                .limit(PAGE_SIZE)
                .set_pagination_token(cursor.next_token.clone())
                .send()
                .await;
            match result {
                Ok(page) => {
                    self.pacer.succeeded();
                    return Ok(page);
                }
                Err(err) => {
                    let err = pool_reader::call_error("ListUsers", &err);
                    if let Some(code) = refused_token(&err, cursor.next_token.is_some()) {
                        return Err(RunError::TokenRefused { code });
                    }
                    if !err.is_retryable() {
                        return Err(RunError::Cognito(err));
                    }
                    self.pacer.throttled(Instant::now());
                    cursor.counts.throttles += 1;
                    tracing::warn!(event = "reconcile_slowed_down", error = %err, lists_per_second = self.pacer.rate());
                }
            }
        }
    }

    /// The items of `table` whose `key` is one of `values`, by key value.
    async fn batch_get(
        &self,
        table: &str,
        key: &str,
        values: &[String],
        projection: Option<&str>,
    ) -> Result<HashMap<String, StoredItem>, RunError> {
        let mut found = HashMap::with_capacity(values.len());
        if values.is_empty() {
            return Ok(found);
        }
        let keys: Vec<HashMap<String, AttributeValue>> = values
            .iter()
            .map(|value| HashMap::from([(key.to_owned(), AttributeValue::S(value.clone()))]))
            .collect();
        let mut request = KeysAndAttributes::builder().set_keys(Some(keys));
        if let Some(projection) = projection {
            request = request
                .projection_expression("#key")
                .expression_attribute_names("#key", projection);
        }
        let mut pending = Some(
            request
                .build()
                .map_err(|err| dynamodb_error("BatchGetItem", table, err.to_string()))?,
        );
        for round in 0..=UNPROCESSED_ROUNDS {
            let Some(request) = pending.take() else { break };
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(50 << round.min(6))).await;
            }
            let output = self
                .sources
                .dynamodb
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|err| dynamodb_error("BatchGetItem", table, sdk_config::detail(&err)))?;
            for item in output
                .responses()
                .and_then(|r| r.get(table))
                .into_iter()
                .flatten()
            {
                if let Some(AttributeValue::S(value)) = item.get(key) {
                    found.insert(value.clone(), tables::from_attribute_values(item));
                }
            }
            pending = output
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .filter(|u| !u.keys().is_empty())
                .cloned();
        }
        match pending {
            None => Ok(found),
            Some(_) => Err(dynamodb_error(
                "BatchGetItem",
                table,
                format!("keys still unprocessed after {UNPROCESSED_ROUNDS} rounds (throttled)"),
            )),
        }
    }

    /// One page of every segment not done yet, at the same time.
    async fn sweep_round(&self, cursor: &mut Cursor, difference: &mut SubDifference) -> Result<(), RunError> {
        let total = cursor.segments.len() as i32;
        let pages = futures::future::join_all(
            cursor
                .segments
                .iter()
                .enumerate()
                .filter(|(_, segment)| !segment.done)
                .map(|(index, segment)| self.scan_page(index as i32, total, segment.after.clone())),
        )
        .await;
        let started_at = cursor.started_at();
        for page in pages {
            let (index, items, last) = page?;
            cursor.counts.scanned += items.len() as u64;
            cursor.counts.scan_pages += 1;
            for item in &items {
                let of_this_pool = match item.get("user_pool_id") {
                    Some(shared::ItemValue::S(pool)) => *pool == self.sources.user_pool_id,
                    _ => true,
                };
                if !of_this_pool || !takes_part(item, started_at) {
                    continue;
                }
                match item.get(USERS_KEY) {
                    Some(shared::ItemValue::S(sub)) if key_of(sub).is_some() => {
                        difference.add_stored(key_of(sub).unwrap_or_default());
                    }
                    _ => cursor.counts.unusable += 1,
                }
            }
            let segment = &mut cursor.segments[index as usize];
            segment.done = last.is_none();
            segment.after = last;
        }
        Ok(())
    }

    async fn scan_page(
        &self,
        segment: i32,
        total: i32,
        after: Option<String>,
    ) -> Result<(i32, Vec<StoredItem>, Option<String>), RunError> {
        let table = &self.sources.users_table;
        let output = self
            .sources
            .dynamodb
            .scan()
            .table_name(table)
            .segment(segment)
            .total_segments(total)
            .limit(SCAN_PAGE_ITEMS)
            .projection_expression("#key, #pool, #deleted, #created")
            .expression_attribute_names("#key", USERS_KEY)
            .expression_attribute_names("#pool", "user_pool_id")
            .expression_attribute_names("#deleted", shared::lifecycle::DELETED_AT)
            .expression_attribute_names("#created", "created_at")
            .set_exclusive_start_key(
                after.map(|sub| HashMap::from([(USERS_KEY.to_owned(), AttributeValue::S(sub))])),
            )
            .send()
            .await
            .map_err(|err| dynamodb_error("Scan", table, sdk_config::detail(&err)))?;
        let items = output.items().iter().map(tables::from_attribute_values).collect();
        let last = match output.last_evaluated_key().and_then(|key| key.get(USERS_KEY)) {
            Some(AttributeValue::S(sub)) => Some(sub.clone()),
            _ => None,
        };
        Ok((segment, items, last))
    }
}

/// The end of the deletion check: the live items the pool did not list.
fn finish(cursor: &mut Cursor, difference: &SubDifference) -> Vec<Drift> {
    let decoded = difference.decode();
    cursor.counts.deletions_complete = decoded.complete;
    decoded
        .only_stored
        .iter()
        .map(|key| {
            cursor.counts.add(DriftKind::Deleted);
            Drift {
                kind: DriftKind::Deleted,
                sub: uuid::Uuid::from_u128(*key).hyphenated().to_string(),
                username: None,
            }
        })
        .collect()
}

/// A sub as the set difference's key (subs are UUIDs; the item's key is the normalised sub).
fn key_of(sub: &str) -> Option<u128> {
    uuid::Uuid::try_parse(sub).ok().map(|uuid| uuid.as_u128())
}

/// The error code if `err` is Cognito refusing a call's pagination token.
fn refused_token(err: &pool_reader::ReadError, sent_a_token: bool) -> Option<String> {
    match err {
        pool_reader::ReadError::Call { code, .. }
            if sent_a_token && matches!(code.as_str(), "InvalidParameterException" | "InvalidToken") =>
        {
            Some(code.clone())
        }
        _ => None,
    }
}

fn dynamodb_error(operation: &'static str, table: &str, detail: String) -> RunError {
    RunError::DynamoDb {
        operation,
        table: table.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(code: &str, retryable: bool) -> pool_reader::ReadError {
        pool_reader::ReadError::Call {
            operation: "ListUsers",
            retryable,
            code: code.to_owned(),
            status: Some(400),
        }
    }

    #[test]
    fn only_a_refused_token_restarts_the_walk() {
        for code in ["InvalidParameterException", "InvalidToken"] {
            assert_eq!(refused_token(&call(code, false), true).as_deref(), Some(code));
            // The first page sends no token: the same error there is the call's own.
            assert_eq!(refused_token(&call(code, false), false), None);
        }
        for code in [
            "TooManyRequestsException",
            "ResourceNotFoundException",
            "NotAuthorizedException",
        ] {
            assert_eq!(
                refused_token(&call(code, code.starts_with("TooMany")), true),
                None
            );
        }
    }
}
