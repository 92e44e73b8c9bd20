//! Tracing set-up: one JSON object per line on stdout, which CloudWatch Logs (with the
//! functions' `LogFormat: JSON`) indexes field by field for Logs Insights.
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda from the function's
//! `ApplicationLogLevel`), else `RUST_LOG`, else `info`. It applies to this project's own crates
//! only: third-party crates are capped at `INFO` whatever the level, because at `DEBUG` and
//! `TRACE` the Lambda runtime logs every raw event and the AWS SDK every request and response,
//! personal data included. "No PII in logs" must hold at every level an operator can choose.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

/// The crates whose log statements are this project's, and follow its PII rules.
const OWN_CRATES: [&str; 4] = ["shared", "trigger", "consumer", "ops"];

/// Installs the JSON subscriber. Call once, at cold start.
pub fn init() {
    let requested = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_default();
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(filter_directives(&requested));
    // Spans carry the Lambda request id (the runtime opens one per invocation), so every line
    // can be tied to its invocation; the span list would only repeat it.
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
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
/// crate the same level but never more verbose than `INFO`.
pub fn filter_directives(requested: &str) -> String {
    let own = requested_level(requested);
    let others = own.min(LevelFilter::INFO);
    let mut directives = vec![others.to_string().to_ascii_lowercase()];
    if own > others {
        let own = own.to_string().to_ascii_lowercase();
        directives.extend(OWN_CRATES.iter().map(|krate| format!("{krate}={own}")));
    }
    directives.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn third_party_crates_never_log_below_info_whatever_the_level() {
        assert_eq!(
            filter_directives("TRACE"),
            "info,shared=trace,trigger=trace,consumer=trace,ops=trace"
        );
        assert_eq!(
            filter_directives("debug"),
            "info,shared=debug,trigger=debug,consumer=debug,ops=debug"
        );
        for level in [
            "INFO",
            "",
            "nonsense",
            "aws_smithy_runtime=trace",
            "trace,hyper=trace",
        ] {
            assert_eq!(filter_directives(level), "info", "{level}");
        }
        assert_eq!(filter_directives("WARN"), "warn");
        assert_eq!(filter_directives("FATAL"), "error");
    }

    #[test]
    fn the_directives_parse_as_an_env_filter() {
        for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "junk"] {
            EnvFilter::try_new(filter_directives(level)).unwrap_or_else(|e| panic!("{level}: {e}"));
        }
    }
}
