//! Drifts as refresh signals on the sync queue: the consumer reads each user from Cognito and
//! applies what it finds, as for any signal.

use drift::Drift;
use shared::envelope::encode_refresh;
use shared::signal::Refresh;
use sync_queue::{Outgoing, send_batches};

use crate::run::{Delivered, DriftSink};

pub struct SignalSender {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    user_pool_id: String,
}

impl SignalSender {
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: &str, user_pool_id: &str) -> Self {
        Self {
            sqs,
            queue_url: queue_url.to_owned(),
            user_pool_id: user_pool_id.to_owned(),
        }
    }
}

/// The refresh signal for `drift`, or why there cannot be one.
pub fn signal_for(user_pool_id: &str, drift: &Drift) -> Result<Outgoing, shared::UserError> {
    let refresh = Refresh::requested(user_pool_id, &drift.sub, drift.username.as_deref())?;
    Ok(Outgoing {
        label: drift.sub.clone(),
        body: encode_refresh(&refresh),
    })
}

impl DriftSink for SignalSender {
    async fn found(&mut self, drifts: &[Drift]) -> Delivered {
        let mut outgoing = Vec::with_capacity(drifts.len());
        let mut refused = 0;
        for drift in drifts {
            match signal_for(&self.user_pool_id, drift) {
                Ok(message) => outgoing.push(message),
                Err(err) => {
                    refused += 1;
                    tracing::warn!(event = "reconcile_signal_refused", sub = %drift.sub, error = %err);
                }
            }
        }
        let sent = send_batches(&self.sqs, &self.queue_url, &outgoing).await;
        for (sub, why) in &sent.refused {
            tracing::warn!(event = "reconcile_signal_refused", sub = %sub, error = %why);
        }
        Delivered {
            sent: sent.accepted as u64,
            refused: refused + sent.refused.len() as u64,
        }
    }
}
