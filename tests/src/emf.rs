//! A checker for CloudWatch Embedded Metric Format, after the specification:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
//!
//! Used on the lines the real binaries print, so a malformed metric fails a test here instead of
//! being dropped silently by CloudWatch.

use serde_json::Value;

const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Whether a log line is meant as EMF (has the `_aws` member).
pub fn is_emf(line: &str) -> bool {
    serde_json::from_str::<Value>(line)
        .map(|v| v.get("_aws").is_some())
        .unwrap_or(false)
}

/// Checks one EMF document; the error says which rule it breaks.
pub fn validate(line: &str) -> Result<Value, String> {
    let root: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let object = root.as_object().ok_or("root is not an object")?;
    let aws = object
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no _aws object")?;
    aws.get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or("_aws.Timestamp is not a non-negative integer (epoch milliseconds)")?;
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("_aws.CloudWatchMetrics is not a non-empty array")?;
    for directive in directives {
        let namespace = directive["Namespace"]
            .as_str()
            .ok_or("Namespace is not a string")?;
        if namespace.is_empty() || namespace.len() > 255 {
            return Err("Namespace must be 1 to 255 characters".into());
        }
        let dimension_sets = directive["Dimensions"]
            .as_array()
            .ok_or("Dimensions is not an array")?;
        for set in dimension_sets {
            let set = set.as_array().ok_or("a DimensionSet is not an array")?;
            if set.len() > 30 {
                return Err("a DimensionSet has more than 30 dimensions".into());
            }
            for dimension in set {
                let name = dimension.as_str().ok_or("a dimension name is not a string")?;
                if !object.get(name).is_some_and(Value::is_string) {
                    return Err(format!("dimension {name} has no string member at the root"));
                }
            }
        }
        let metrics = directive["Metrics"].as_array().ok_or("Metrics is not an array")?;
        if metrics.len() > 100 {
            return Err("more than 100 metrics in a directive".into());
        }
        for metric in metrics {
            let name = metric["Name"].as_str().ok_or("a metric Name is not a string")?;
            if name.is_empty() || name.len() > 255 {
                return Err(format!("metric name {name:?} must be 1 to 255 characters"));
            }
            if let Some(unit) = metric.get("Unit")
                && !unit.as_str().is_some_and(|u| UNITS.contains(&u))
            {
                return Err(format!("metric {name} has an invalid Unit {unit}"));
            }
            if let Some(resolution) = metric.get("StorageResolution")
                && !matches!(resolution.as_u64(), Some(1 | 60))
            {
                return Err(format!("metric {name} has an invalid StorageResolution"));
            }
            match object.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values)) if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                _ => {
                    return Err(format!(
                        "metric {name} has no number (or array of <= 100 numbers) at the root"
                    ));
                }
            }
        }
    }
    Ok(root)
}

/// The sum of metric `name` over EMF documents (arrays are summed too).
pub fn total(documents: &[Value], name: &str) -> f64 {
    documents
        .iter()
        .filter_map(|d| d.get(name))
        .map(|v| match v {
            Value::Array(values) => values.iter().filter_map(Value::as_f64).sum(),
            other => other.as_f64().unwrap_or(0.0),
        })
        .sum()
}

/// How many samples of metric `name` there are over EMF documents.
pub fn samples(documents: &[Value], name: &str) -> usize {
    documents
        .iter()
        .filter_map(|d| d.get(name))
        .map(|v| v.as_array().map_or(1, Vec::len))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"_aws":{"Timestamp":1574109732004,"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[["Service"]],"Metrics":[{"Name":"Lag","Unit":"Milliseconds"}]}]},"Service":"s","Lag":[1,2]}"#;

    #[test]
    fn accepts_the_specifications_shape() {
        assert!(validate(VALID).is_ok());
    }

    #[test]
    fn refuses_what_the_specification_refuses() {
        let broken = [
            VALID.replace("1574109732004", "\"now\""),
            VALID.replace(r#""Service":"s","#, ""),
            VALID.replace(r#""Lag":[1,2]"#, r#""Lag":"fast""#),
            VALID.replace("Milliseconds", "Millis"),
            VALID.replace(r#""Namespace":"ns","#, ""),
        ];
        for line in broken {
            assert!(validate(&line).is_err(), "{line}");
        }
    }
}
