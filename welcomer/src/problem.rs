//! What SES reported of a welcome after accepting it, recorded on the user's item: the latest
//! report wins, and nothing is written on a tombstone or for a welcome the item no longer
//! records (a later send replaced it).

use tables::WriteError;
use welcome::message::DeliveryEvent;

use crate::deps::Deps;

/// Records `event`: `true` when the users item took it.
pub async fn record(deps: &Deps, event: &DeliveryEvent) -> Result<bool, WriteError> {
    deps.store
        .record_welcome_problem(
            &event.sub,
            &event.ses_message_id,
            event.problem.as_str(),
            event.at_ms,
        )
        .await
}
