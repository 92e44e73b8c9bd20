//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on stdout per invocation,
//! which CloudWatch Logs turns into metrics without an API call on the hot path.
//!
//! Each function declares its metrics once, as an enum made by
//! [`metric_names!`](crate::metric_names): the name CloudWatch sees is the variant's, so a
//! misspelt metric is a compile error rather than a new metric, and the template's tests read
//! the same list. Every counter is emitted on every
//! invocation (zero included), so dashboards and alarms see a continuous series. Written by
//! hand rather than with a metrics crate: the format is one small JSON object, and an exporter
//! with background flushing does not fit Lambda's freeze-between-invocations model.
//!
//! Specification: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::collections::BTreeMap;
use std::io::Write;
use std::marker::PhantomData;

use serde_json::{Map, Value, json};

use crate::config::{ConfigError, Source, optional};

/// CloudWatch's limits on a namespace: 1 to 255 of these characters, and not `AWS/` at the start
/// (reserved for AWS's own metrics). CloudWatch Logs silently drops EMF lines that break them,
/// so every custom metric, and every alarm on one, would go quiet: refused at start-up instead.
pub fn is_valid_namespace(namespace: &str) -> bool {
    (1..=255).contains(&namespace.len())
        && !namespace.starts_with("AWS/")
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_/#:".contains(&b))
}

/// At most 100 values per metric per EMF line (the specification's limit).
const MAX_VALUES_PER_LINE: usize = 100;

/// A CloudWatch unit (the subset this product uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// Where metrics go: namespace and the `Service` dimension's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub namespace: String,
    pub service: String,
}

impl MetricsConfig {
    /// `METRICS_NAMESPACE` (default `CognitoUserSync`) and `METRICS_SERVICE` (default
    /// `cognito-user-sync`).
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let namespace = optional(env, "METRICS_NAMESPACE").unwrap_or_else(|| "CognitoUserSync".to_owned());
        if !is_valid_namespace(&namespace) {
            return Err(ConfigError::Invalid {
                name: "METRICS_NAMESPACE",
                expected: "1 to 255 letters, digits or . - _ / # :, not starting with AWS/ (reserved by CloudWatch)",
            });
        }
        let service = optional(env, "METRICS_SERVICE").unwrap_or_else(|| "cognito-user-sync".to_owned());
        // A dimension value is 1 to 1024 characters (blank is already "unset").
        if service.chars().count() > 1024 {
            return Err(ConfigError::Invalid {
                name: "METRICS_SERVICE",
                expected: "at most 1024 characters (a CloudWatch dimension value)",
            });
        }
        Ok(Self { namespace, service })
    }
}

/// One function's metrics: an enum whose variants are its metrics (see
/// [`metric_names!`](crate::metric_names)).
/// A metric in [`Unit::Count`] is a counter, one value per invocation; any other unit is a
/// sample, as many values as were recorded.
pub trait Metric: Copy + 'static {
    /// Every metric of the function.
    const ALL: &'static [Self];
    /// The name CloudWatch sees.
    fn name(self) -> &'static str;
    fn unit(self) -> Unit;
    fn is_counter(self) -> bool {
        self.unit() == Unit::Count
    }
}

/// Declares a function's metrics as an enum implementing [`Metric`]: each variant's name is
/// the metric's name, and `= Unit` its CloudWatch unit.
///
/// ```
/// shared::metric_names! {
///     pub enum ExampleMetric {
///         Enqueued = Count,
///         Lag = Milliseconds,
///     }
/// }
/// use shared::metrics::Metric;
/// assert_eq!(ExampleMetric::Lag.name(), "Lag");
/// assert_eq!(ExampleMetric::ALL.len(), 2);
/// ```
#[macro_export]
macro_rules! metric_names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $enum:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $unit:ident),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $enum {
            $($(#[$variant_meta])* $variant),+
        }

        impl $crate::metrics::Metric for $enum {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant)),+
                }
            }
            fn unit(self) -> $crate::metrics::Unit {
                match self {
                    $(Self::$variant => $crate::metrics::Unit::$unit),+
                }
            }
        }
    };
}

/// The metrics of one invocation of the function whose metrics are `M`.
#[derive(Clone, Debug)]
pub struct Metrics<M: Metric> {
    config: MetricsConfig,
    values: BTreeMap<&'static str, (Unit, Vec<f64>)>,
    metric: PhantomData<M>,
}

impl<M: Metric> Metrics<M> {
    /// Starts an invocation's metrics: every counter of `M` is emitted, as 0 unless counted.
    pub fn new(config: &MetricsConfig) -> Self {
        let values = M::ALL
            .iter()
            .filter(|metric| metric.is_counter())
            .map(|metric| (metric.name(), (Unit::Count, vec![0.0])))
            .collect();
        Self {
            config: config.clone(),
            values,
            metric: PhantomData,
        }
    }

    /// Adds `n` to the counter `metric`.
    pub fn count(&mut self, metric: M, n: u64) {
        debug_assert!(metric.is_counter(), "{} is not a counter", metric.name());
        let (_, values) = self
            .values
            .entry(metric.name())
            .or_insert((Unit::Count, vec![0.0]));
        values[0] += n as f64;
    }

    /// Records one sample of `metric` (e.g. a latency, in its unit); all samples are emitted.
    pub fn sample(&mut self, metric: M, value: f64) {
        debug_assert!(!metric.is_counter(), "{} is a counter", metric.name());
        self.values
            .entry(metric.name())
            .or_insert((metric.unit(), Vec::new()))
            .1
            .push(value);
    }

    /// The EMF lines for these metrics at `timestamp_ms` (milliseconds since the epoch). More
    /// than one only when a metric has more than 100 samples.
    pub fn to_emf_lines(&self, timestamp_ms: u64) -> Vec<String> {
        let chunks = self
            .values
            .values()
            .map(|(_, v)| v.len().div_ceil(MAX_VALUES_PER_LINE))
            .max()
            .unwrap_or(0);
        (0..chunks.max(1))
            .filter_map(|chunk| self.emf_line(timestamp_ms, chunk))
            .collect()
    }

    fn emf_line(&self, timestamp_ms: u64, chunk: usize) -> Option<String> {
        let mut root = Map::new();
        let mut definitions = Vec::new();
        for (name, (unit, values)) in &self.values {
            let part: Vec<f64> = values
                .iter()
                .skip(chunk * MAX_VALUES_PER_LINE)
                .take(MAX_VALUES_PER_LINE)
                .copied()
                .collect();
            let value = match part.as_slice() {
                [] => continue,
                [one] => json!(one),
                many => json!(many),
            };
            definitions.push(json!({"Name": name, "Unit": unit.as_str()}));
            root.insert((*name).to_owned(), value);
        }
        if definitions.is_empty() {
            return None;
        }
        root.insert("Service".to_owned(), Value::String(self.config.service.clone()));
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.config.namespace,
                    "Dimensions": [["Service"]],
                    "Metrics": definitions,
                }],
            }),
        );
        Some(Value::Object(root).to_string())
    }

    /// Writes the EMF lines to stdout (where Lambda sends them to CloudWatch Logs).
    pub fn emit(&self) {
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        self.emit_at(now_ms as u64);
    }

    /// Writes the EMF lines stamped `timestamp_ms` (CloudWatch accepts up to two weeks back).
    pub fn emit_at(&self, timestamp_ms: u64) {
        let mut stdout = std::io::stdout().lock();
        for line in self.to_emf_lines(timestamp_ms) {
            // A metrics line that cannot be written is not worth failing an invocation over.
            let _ = writeln!(stdout, "{line}");
        }
        let _ = stdout.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MetricsConfig {
        MetricsConfig {
            namespace: "CognitoUserSync".into(),
            service: "stack-a".into(),
        }
    }

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    crate::metric_names! {
        enum TriggerLike {
            Enqueued = Count,
            EnqueueFailed = Count,
        }
    }

    crate::metric_names! {
        enum ConsumerLike {
            UsersWritten = Count,
            SyncLag = Milliseconds,
        }
    }

    crate::metric_names! {
        enum OnlySamples {
            Lag = Milliseconds,
        }
    }

    #[test]
    fn counters_are_emitted_even_when_zero() {
        let mut metrics = Metrics::<TriggerLike>::new(&config());
        metrics.count(TriggerLike::Enqueued, 1);
        let lines = metrics.to_emf_lines(1_700_000_000_000);
        assert_eq!(lines.len(), 1);
        let emf = parse(&lines[0]);
        assert_eq!(emf["Enqueued"], json!(1.0));
        assert_eq!(emf["EnqueueFailed"], json!(0.0));
        assert_eq!(emf["Service"], "stack-a");
        let directive = &emf["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(emf["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(directive["Namespace"], "CognitoUserSync");
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "EnqueueFailed", "Unit": "Count"}, {"Name": "Enqueued", "Unit": "Count"}])
        );
    }

    #[test]
    fn samples_are_emitted_as_arrays_of_at_most_100_values() {
        let mut metrics = Metrics::<ConsumerLike>::new(&config());
        for i in 0..150 {
            metrics.sample(ConsumerLike::SyncLag, i as f64);
        }
        let lines: Vec<Value> = metrics.to_emf_lines(1).iter().map(|l| parse(l)).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["SyncLag"].as_array().unwrap().len(), 100);
        assert_eq!(lines[1]["SyncLag"].as_array().unwrap().len(), 50);
        assert_eq!(lines[0]["UsersWritten"], json!(0.0));
        assert!(
            lines[1].get("UsersWritten").is_none(),
            "counters are emitted once"
        );
        let units: Vec<&Value> = lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["Unit"])
            .collect();
        assert_eq!(units, [&json!("Milliseconds"), &json!("Count")]);
    }

    #[test]
    fn nothing_to_emit_gives_no_line() {
        assert!(Metrics::<OnlySamples>::new(&config()).to_emf_lines(1).is_empty());
    }

    #[test]
    fn a_namespace_cloudwatch_would_refuse_stops_start_up_naming_the_variable() {
        for bad in ["AWS/Lambda", "with space", "ü", &"x".repeat(256)] {
            let env = |name: &str| (name == "METRICS_NAMESPACE").then(|| bad.to_owned());
            let err = MetricsConfig::from_env(&env).unwrap_err();
            assert!(err.to_string().contains("METRICS_NAMESPACE"), "{bad}: {err}");
        }
        for good in ["CognitoUserSync", "team/sync:prod#1", "aws/lower-case-is-allowed"] {
            assert!(is_valid_namespace(good), "{good}");
        }
    }

    #[test]
    fn config_defaults_and_overrides() {
        let none = |_: &str| None;
        assert_eq!(
            MetricsConfig::from_env(&none).unwrap().namespace,
            "CognitoUserSync"
        );
        let set = |name: &str| (name == "METRICS_SERVICE").then(|| "prod-sync".to_owned());
        assert_eq!(MetricsConfig::from_env(&set).unwrap().service, "prod-sync");
    }
}
