//! A run's whole state between two invocations, as the body of one message on the reconcile
//! queue.
//!
//! An invocation receives a message, walks or scans a bounded number of pages from where it
//! says, sends the next message and returns; SQS then deletes the one it received. An
//! invocation that dies before returning leaves its message to come back after the visibility
//! timeout, and the run resumes from that message's cursor: it repeats at most one
//! invocation's pages, which only sends some refresh signals twice (a refresh is idempotent).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use shared::timestamp::{format_rfc3339, parse_rfc3339};
use thiserror::Error;
use time::OffsetDateTime;

use crate::compare::DriftKind;
use crate::difference::{DifferenceError, SubDifference};

/// SQS's limit on a message body (256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// At most this many segments in the scan of the users table.
pub const MAX_SEGMENTS: u32 = 64;

/// What the reconcile queue carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RunMessage {
    /// Begin a run: the schedule's message, or `ops reconcile --start`.
    Start { requested_by: String },
    /// Go on with a run.
    Continue(Box<Cursor>),
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Listing the pool, a page at a time, and comparing each page with the tables.
    Walk,
    /// Scanning the users table for items whose user the pool no longer has.
    Sweep,
}

/// One segment of the scan of the users table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// The key of the last item read (the scan's `ExclusiveStartKey`); none before the first page.
    pub after: Option<String>,
    pub done: bool,
}

/// What a run has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Users listed (every status).
    pub listed: u64,
    /// `ListUsers` pages.
    pub pages: u64,
    /// Users items read by the scan.
    pub scanned: u64,
    /// Scan pages, all segments together.
    pub scan_pages: u64,
    pub missing: u64,
    pub no_users_item: u64,
    pub no_profile: u64,
    pub stale: u64,
    pub enabled_differs: u64,
    pub deleted: u64,
    /// Federated users whose attributes differ ([`DriftKind::FederatedAttributes`]); absent from
    /// the cursors of a run begun before the kind existed.
    #[serde(default)]
    pub federated_attributes: u64,
    /// `ListUsers` calls refused for the rate (or failing transiently): each slowed the walk.
    pub throttles: u64,
    /// Listed users Cognito returned in a shape this service cannot store (no `sub`, say).
    pub unusable: u64,
    /// Refresh signals the sync queue accepted, and refused.
    pub signals_sent: u64,
    pub signals_refused: u64,
    /// Invocations that took part, and how many of them repeated a message that had come back.
    pub invocations: u64,
    pub resumed: u64,
    /// Whether the deletion check listed every difference (false: more users were deleted
    /// without a signal than one run can list; the next run finds the rest).
    pub deletions_complete: bool,
}

impl Counts {
    pub fn add(&mut self, kind: DriftKind) {
        *self.of_mut(kind) += 1;
    }

    pub fn of(&self, kind: DriftKind) -> u64 {
        match kind {
            DriftKind::Missing => self.missing,
            DriftKind::NoUsersItem => self.no_users_item,
            DriftKind::NoProfile => self.no_profile,
            DriftKind::Stale => self.stale,
            DriftKind::EnabledDiffers => self.enabled_differs,
            DriftKind::Deleted => self.deleted,
            DriftKind::FederatedAttributes => self.federated_attributes,
        }
    }

    fn of_mut(&mut self, kind: DriftKind) -> &mut u64 {
        match kind {
            DriftKind::Missing => &mut self.missing,
            DriftKind::NoUsersItem => &mut self.no_users_item,
            DriftKind::NoProfile => &mut self.no_profile,
            DriftKind::Stale => &mut self.stale,
            DriftKind::EnabledDiffers => &mut self.enabled_differs,
            DriftKind::Deleted => &mut self.deleted,
            DriftKind::FederatedAttributes => &mut self.federated_attributes,
        }
    }

    /// Users found to differ because a change was missed: every kind but a federated user's
    /// attributes ([`DriftKind::means_a_missed_change`]). What the drift alarm counts.
    pub fn drift(&self) -> u64 {
        DriftKind::ALL
            .iter()
            .filter(|kind| kind.means_a_missed_change())
            .map(|kind| self.of(*kind))
            .sum()
    }

    /// Users found to differ, every kind together: each was sent a refresh signal.
    pub fn differing(&self) -> u64 {
        DriftKind::ALL.iter().map(|kind| self.of(*kind)).sum()
    }
}

/// A run in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    pub run_id: String,
    pub user_pool_id: String,
    /// RFC 3339: items created after it are left out of the deletion check.
    pub started_at: String,
    /// Invocations this message has passed through.
    pub step: u64,
    pub phase: Phase,
    /// `ListUsers`'s pagination token for the next page of the walk.
    pub next_token: Option<String>,
    pub segments: Vec<Segment>,
    pub counts: Counts,
    /// The set difference so far ([`SubDifference::to_bytes`], base64).
    pub difference: String,
}

#[derive(Debug, Error)]
pub enum CursorError {
    /// Where and what kind, never serde's message, which can quote a value of the body.
    #[error("the message is not a reconcile run message ({kind} error at line {line}, column {column})")]
    Unreadable {
        kind: &'static str,
        line: usize,
        column: usize,
    },
    #[error("the cursor's {field} is invalid: {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
    #[error("the cursor's set difference is invalid: {0}")]
    Difference(#[from] DifferenceError),
    #[error("the encoded cursor is {bytes} bytes, over SQS's {MAX_MESSAGE_BYTES}")]
    TooLarge { bytes: usize },
}

impl Cursor {
    /// A run of `user_pool_id` begun at `started_at`, its users table scanned in `segments`.
    pub fn start(run_id: &str, user_pool_id: &str, started_at: OffsetDateTime, segments: u32) -> Self {
        Self {
            run_id: run_id.to_owned(),
            user_pool_id: user_pool_id.to_owned(),
            started_at: format_rfc3339(started_at),
            step: 0,
            phase: Phase::Walk,
            next_token: None,
            segments: (0..segments.clamp(1, MAX_SEGMENTS))
                .map(|_| Segment {
                    after: None,
                    done: false,
                })
                .collect(),
            counts: Counts {
                deletions_complete: true,
                ..Counts::default()
            },
            difference: STANDARD.encode(SubDifference::new().to_bytes()),
        }
    }

    /// The same run begun again from the top at `now`: the walk's pagination token is gone
    /// (Cognito refused it: expired, or the cursor waited too long in a queue), and the set
    /// difference only holds if both sides cover the same listing, so everything the walk
    /// found is dropped with it. The run keeps its id and step (its state item's claim goes
    /// on) and the counts of what it spent: invocations, throttles, signals sent.
    pub fn restarted(&self, now: OffsetDateTime) -> Self {
        let mut fresh = Self::start(&self.run_id, &self.user_pool_id, now, self.segments.len() as u32);
        fresh.step = self.step;
        let spent = &self.counts;
        fresh.counts = Counts {
            throttles: spent.throttles,
            signals_sent: spent.signals_sent,
            signals_refused: spent.signals_refused,
            invocations: spent.invocations,
            resumed: spent.resumed,
            ..fresh.counts
        };
        fresh
    }

    pub fn started_at(&self) -> OffsetDateTime {
        // Checked by `decode` and written by `start`.
        parse_rfc3339(&self.started_at).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn difference(&self) -> Result<SubDifference, CursorError> {
        let bytes = STANDARD
            .decode(&self.difference)
            .map_err(|_| CursorError::Invalid {
                field: "difference",
                expected: "base64",
            })?;
        Ok(SubDifference::from_bytes(&bytes)?)
    }

    pub fn set_difference(&mut self, difference: &SubDifference) {
        self.difference = STANDARD.encode(difference.to_bytes());
    }

    fn validate(&self) -> Result<(), CursorError> {
        let invalid = |field, expected| Err(CursorError::Invalid { field, expected });
        if self.run_id.is_empty() || self.run_id.len() > 128 {
            return invalid("run_id", "1 to 128 characters");
        }
        if !shared::user::is_user_pool_id(&self.user_pool_id) {
            return invalid("user_pool_id", "a user pool id");
        }
        if parse_rfc3339(&self.started_at).is_none() {
            return invalid("started_at", "an RFC 3339 time");
        }
        if self.segments.is_empty() || self.segments.len() > MAX_SEGMENTS as usize {
            return invalid("segments", "1 to 64 segments");
        }
        self.difference()?;
        Ok(())
    }
}

/// The message body, refused when SQS would refuse it.
fn unreadable(err: &serde_json::Error) -> CursorError {
    CursorError::Unreadable {
        kind: match err.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "end of input",
        },
        line: err.line(),
        column: err.column(),
    }
}

pub fn encode(message: &RunMessage) -> Result<String, CursorError> {
    let body = serde_json::to_string(message).map_err(|err| unreadable(&err))?;
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(CursorError::TooLarge { bytes: body.len() });
    }
    Ok(body)
}

/// Reads a message body: a start, or a cursor that is whole and consistent.
pub fn decode(body: &str) -> Result<RunMessage, CursorError> {
    let message: RunMessage = serde_json::from_str(body).map_err(|err| unreadable(&err))?;
    if let RunMessage::Continue(cursor) = &message {
        cursor.validate()?;
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor::start(
            "run-1",
            "us-east-1_AbCdEf123",
            OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap(),
            4,
        )
    }

    #[test]
    fn a_restarted_run_walks_again_from_the_top_and_keeps_what_it_spent() {
        let mut cursor = cursor();
        cursor.step = 9;
        cursor.phase = Phase::Sweep;
        cursor.next_token = Some("expired".into());
        cursor.segments[2].done = true;
        cursor.counts.pages = 40;
        cursor.counts.listed = 2_400;
        cursor.counts.add(DriftKind::Missing);
        cursor.counts.deletions_complete = false;
        cursor.counts.invocations = 9;
        cursor.counts.throttles = 3;
        cursor.counts.signals_sent = 1;
        let mut difference = SubDifference::new();
        difference.add_listed(42);
        cursor.set_difference(&difference);
        let now = OffsetDateTime::from_unix_timestamp(1_795_000_600).unwrap();
        let restarted = cursor.restarted(now);
        let mut expected = Cursor::start(&cursor.run_id, &cursor.user_pool_id, now, 4);
        expected.step = 9;
        expected.counts.invocations = 9;
        expected.counts.throttles = 3;
        expected.counts.signals_sent = 1;
        assert_eq!(restarted, expected);
    }

    #[test]
    fn a_cursor_survives_the_queue_unchanged() {
        let mut cursor = cursor();
        cursor.next_token = Some("token/with+odd=characters".into());
        cursor.counts.add(DriftKind::Stale);
        let mut difference = SubDifference::new();
        difference.add_listed(42);
        cursor.set_difference(&difference);
        let body = encode(&RunMessage::Continue(Box::new(cursor.clone()))).unwrap();
        assert_eq!(
            decode(&body).unwrap(),
            RunMessage::Continue(Box::new(cursor.clone()))
        );
        assert_eq!(cursor.difference().unwrap(), difference);
        assert_eq!(cursor.counts.drift(), 1);
    }

    #[test]
    fn a_federated_users_attributes_are_signalled_but_not_counted_as_drift() {
        let mut counts = Counts::default();
        counts.add(DriftKind::FederatedAttributes);
        counts.add(DriftKind::FederatedAttributes);
        counts.add(DriftKind::Stale);
        assert_eq!((counts.drift(), counts.differing()), (1, 3));
    }

    #[test]
    fn a_cursor_of_a_run_begun_before_the_federated_kind_still_decodes() {
        let mut cursor = cursor();
        cursor.counts.add(DriftKind::Missing);
        let body = encode(&RunMessage::Continue(Box::new(cursor.clone()))).unwrap();
        let older = body.replace(r#","federated_attributes":0"#, "");
        assert_ne!(older, body);
        assert_eq!(decode(&older).unwrap(), RunMessage::Continue(Box::new(cursor)));
    }

    #[test]
    fn the_schedules_message_is_a_start() {
        assert_eq!(
            decode(r#"{"start":{"requested_by":"schedule"}}"#).unwrap(),
            RunMessage::Start {
                requested_by: "schedule".into()
            }
        );
    }

    #[test]
    fn a_cursor_with_the_difference_full_stays_within_sqs_limit() {
        let mut cursor = cursor();
        let mut difference = SubDifference::new();
        for key in 0..100_000u128 {
            difference.add_listed(key.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
        }
        cursor.set_difference(&difference);
        cursor.next_token = Some("x".repeat(4_096));
        for segment in &mut cursor.segments {
            segment.after = Some("0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c".into());
        }
        let body = encode(&RunMessage::Continue(Box::new(cursor))).unwrap();
        assert!(body.len() < MAX_MESSAGE_BYTES, "{} bytes", body.len());
    }

    #[test]
    fn a_damaged_message_names_what_is_wrong() {
        let good = encode(&RunMessage::Continue(Box::new(cursor()))).unwrap();
        let cases = [
            ("{}", "not a reconcile run message"),
            (
                r#"{"start":{"requested_by":"x","extra":1}}"#,
                "not a reconcile run message",
            ),
            (&good.replace("us-east-1_AbCdEf123", "no pool"), "user_pool_id"),
            (&good.replace("2026-", "20x6-"), "started_at"),
            (
                &good.replace(r#""difference":"AQ==""#, r#""difference":"!!""#),
                "difference",
            ),
        ];
        for (body, expected) in cases {
            let err = decode(body).unwrap_err().to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
        // A body from the wrong queue: its values are never quoted back.
        let err = decode(r#"{"start":{"requested_by":7,"email":"ana@example.com"}}"#).unwrap_err();
        assert!(!err.to_string().contains("ana@"), "{err}");
        let err = decode(r#"{"start":{"requested_by":["ana@example.com"]}}"#).unwrap_err();
        assert!(!err.to_string().contains("ana@"), "{err}");
    }
}
