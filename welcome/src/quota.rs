//! SES's sending limits as the account has them (`GetAccount`), and the welcomer's share.
//!
//! The sending rate and the daily quota belong to the account and region, shared with every
//! other mail the team sends; SES answers a send beyond either with a throttle and drops the
//! message. So the welcomer paces itself at a share of the rate, divided among the execution
//! environments the welcome queue may run at once, and waits out a reached daily quota instead
//! of spending sends that would be refused.

/// What `GetAccount` says of the account's sending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendQuota {
    /// Mails a second, at most.
    pub max_send_rate: f64,
    /// Mails in a rolling 24 hours, at most; negative: unlimited.
    pub max_24_hour_send: f64,
    pub sent_last_24_hours: f64,
    /// False while SES has paused the account's sending.
    pub sending_enabled: bool,
    /// False in the SES sandbox: only verified recipients, at a low rate and quota.
    pub production_access: bool,
}

impl SendQuota {
    /// Whether the rolling day's quota is used up: a send now would be refused.
    pub fn daily_quota_reached(&self) -> bool {
        self.max_24_hour_send >= 0.0 && self.sent_last_24_hours >= self.max_24_hour_send
    }

    /// Sends a second one execution environment may make: `share_percent` of the account's
    /// rate, divided among `environments`. Never below one a minute, so that a tiny quota still
    /// moves (SES's own throttle then paces it).
    pub fn environment_rate(&self, share_percent: u8, environments: u32) -> f64 {
        let share = self.max_send_rate * f64::from(share_percent) / 100.0;
        (share / f64::from(environments.max(1))).max(1.0 / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(max_24_hour_send: f64, sent_last_24_hours: f64) -> SendQuota {
        SendQuota {
            max_send_rate: 14.0,
            max_24_hour_send,
            sent_last_24_hours,
            sending_enabled: true,
            production_access: true,
        }
    }

    #[test]
    fn the_daily_quota_is_reached_only_when_used_up_and_never_when_unlimited() {
        assert!(!quota(50_000.0, 49_999.0).daily_quota_reached());
        assert!(quota(50_000.0, 50_000.0).daily_quota_reached());
        assert!(!quota(-1.0, 1e9).daily_quota_reached());
    }

    #[test]
    fn each_environment_sends_at_its_share_of_the_accounts_rate() {
        // Half of 14 a second, between two environments.
        assert_eq!(quota(-1.0, 0.0).environment_rate(50, 2), 3.5);
        // The sandbox's 1 a second, a quarter each; never below one a minute.
        let sandbox = SendQuota {
            max_send_rate: 1.0,
            ..quota(200.0, 0.0)
        };
        assert_eq!(sandbox.environment_rate(50, 2), 0.25);
        let paused = SendQuota {
            max_send_rate: 0.0,
            ..quota(200.0, 0.0)
        };
        assert_eq!(paused.environment_rate(50, 2), 1.0 / 60.0);
    }
}
