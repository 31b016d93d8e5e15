//! Queries a Prometheus that runs in the cluster (examples/prometheus.yaml under the kubelet
//! stand-in), through the API server's service proxy, as `kubectl get --raw` would.

use anyhow::{Context, Result, bail};
use kube::Client;
use serde_json::Value;

/// The result vector of instant query `promql` against Service `prometheus` (port 9090) in
/// `namespace`.
pub async fn query(client: &Client, namespace: &str, promql: &str) -> Result<Vec<Value>> {
    let path = format!(
        "/api/v1/namespaces/{namespace}/services/prometheus:9090/proxy/api/v1/query?query={}",
        percent_encode(promql)
    );
    let request = http::Request::get(&path).body(Vec::new())?;
    let response: Value = client
        .request(request)
        .await
        .with_context(|| format!("querying Prometheus for {promql}"))?;
    if response["status"] != "success" {
        bail!("Prometheus answered {promql} with {response}");
    }
    Ok(response["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The sample value of a result of [`query`].
pub fn value(sample: &Value) -> Option<f64> {
    sample["value"][1].as_str()?.parse().ok()
}

/// `text` for a URL query (every byte outside the unreserved set escaped).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_escaped() {
        assert_eq!(
            percent_encode(r#"up{job="a b"}"#),
            "up%7Bjob%3D%22a%20b%22%7D"
        );
        let sample = serde_json::json!({"metric": {}, "value": [1.5, "8.25"]});
        assert_eq!(value(&sample), Some(8.25));
    }
}
