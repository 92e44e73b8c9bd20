//! Tracing set-up: one JSON object per line on stdout, which CloudWatch Logs (with the
//! functions' `LogFormat: JSON`) indexes field by field for Logs Insights.
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda from the function's
//! `ApplicationLogLevel`), else `RUST_LOG`, else `info`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. Call once, at cold start.
pub fn init() {
    let directive = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_ascii_lowercase();
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
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
