//! Tracing set-up: one JSON object per line on stdout, which CloudWatch Logs (with the
//! functions' `LogFormat: JSON`) indexes field by field for Logs Insights.
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda from the function's
//! `ApplicationLogLevel`), else `RUST_LOG`, else `info`. It applies to this project's own crates
//! only: third-party crates are capped at `INFO` whatever the level, because at `DEBUG` and
//! `TRACE` the Lambda runtime logs every raw event and the AWS SDK every request and response,
//! personal data included. "No PII in logs" must hold at every level an operator can choose.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The crates whose log statements are this project's, and follow its PII rules: every crate
/// of the workspace but the test harness (a test keeps the list complete).
const OWN_CRATES: [&str; 15] = [
    "shared",
    "drift",
    "welcome",
    "post_confirmation",
    "sdk_config",
    "sqs_batch",
    "pool_reader",
    "tables",
    "sync_queue",
    "reconciler",
    "trigger",
    "consumer",
    "welcomer",
    "ops",
    "e2e",
];

/// Installs the JSON subscriber. Call once, at cold start.
pub fn init() {
    let requested = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_default();
    // Spans carry the Lambda request id (the runtime opens one per invocation), so every line
    // can be tied to its invocation; the span list would only repeat it.
    let lines = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false);
    tracing_subscriber::registry()
        .with(lines)
        .with(filter(&requested))
        .init();
}

/// The level a setting asks for: Lambda's names (`TRACE` ... `FATAL`, any case) or `RUST_LOG`'s.
/// Anything else, a per-crate `RUST_LOG` directive included, reads as `INFO`: a directive
/// could lift a third-party crate above the cap.
pub fn requested_level(text: &str) -> LevelFilter {
    match text.trim().to_ascii_lowercase().as_str() {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "warn" | "warning" => LevelFilter::WARN,
        "error" | "fatal" => LevelFilter::ERROR,
        "off" => LevelFilter::OFF,
        _ => LevelFilter::INFO,
    }
}

/// The filter for a requested level: that level for this project's crates, and for every other
/// crate the same level but never more verbose than `INFO`. A [`Targets`] filter, not an
/// `EnvFilter`: it needs no directive parsing and no regex engine in the binaries (their size
/// is measured by scripts/package).
pub fn filter(requested: &str) -> Targets {
    let own = requested_level(requested);
    let others = own.min(LevelFilter::INFO);
    Targets::new()
        .with_default(others)
        .with_targets(OWN_CRATES.map(|krate| (krate, own)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crate_of_the_workspace_is_one_of_its_own() {
        // The workspace's members, as Cargo.toml lists them (directories; the test harness's
        // package is `e2e`).
        let manifest = include_str!("../../Cargo.toml");
        let members = manifest
            .lines()
            .find_map(|line| line.strip_prefix("members = ["))
            .expect("a members list on one line");
        let mut members: Vec<String> = members
            .trim_end_matches(']')
            .split(',')
            .map(|m| m.trim().trim_matches('"').replace('-', "_"))
            .map(|m| if m == "tests" { "e2e".to_owned() } else { m })
            .collect();
        members.sort();
        let mut own: Vec<String> = OWN_CRATES.iter().map(|c| (*c).to_owned()).collect();
        own.sort();
        assert_eq!(
            own, members,
            "a crate missing here has its DEBUG lines capped at INFO"
        );
    }

    use tracing::Level;

    /// Whether `filter` lets through an event of `level` from the module `target`.
    fn lets_through(filter: &Targets, target: &str, level: Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn third_party_crates_never_log_below_info_whatever_the_level() {
        for requested in ["TRACE", "trace", "DEBUG", "debug"] {
            let filter = filter(requested);
            let level = if requested.eq_ignore_ascii_case("trace") {
                Level::TRACE
            } else {
                Level::DEBUG
            };
            for own in [
                "shared::mapping",
                "trigger::handler",
                "consumer::record",
                "ops::reconcile",
            ] {
                assert!(lets_through(&filter, own, level), "{requested}: {own}");
            }
            for third in [
                "lambda_runtime::layers",
                "aws_smithy_runtime::client",
                "hyper::proto",
            ] {
                assert!(
                    !lets_through(&filter, third, Level::DEBUG),
                    "{requested}: {third}"
                );
                assert!(lets_through(&filter, third, Level::INFO), "{requested}: {third}");
            }
        }
        for requested in [
            "INFO",
            "",
            "nonsense",
            "aws_smithy_runtime=trace",
            "trace,hyper=trace",
        ] {
            let filter = filter(requested);
            assert!(
                !lets_through(&filter, "trigger::handler", Level::DEBUG),
                "{requested}"
            );
            assert!(
                !lets_through(&filter, "aws_smithy_runtime", Level::DEBUG),
                "{requested}"
            );
            assert!(
                lets_through(&filter, "trigger::handler", Level::INFO),
                "{requested}"
            );
        }
        let warn = filter("WARN");
        assert!(!lets_through(&warn, "trigger::handler", Level::INFO));
        assert!(lets_through(&warn, "hyper", Level::WARN));
        let fatal = filter("FATAL");
        assert!(!lets_through(&fatal, "consumer", Level::WARN));
        assert!(lets_through(&fatal, "consumer", Level::ERROR));
        assert!(!lets_through(&filter("off"), "trigger", Level::ERROR));
    }
}
