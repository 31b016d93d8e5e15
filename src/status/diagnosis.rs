//! Turns the aggregator's reason and message into what is wrong and what to do.

use crate::names::{ServerNames, TLS_MOUNT_PATH};

/// A message for an APIService that is not Available.
pub fn diagnose_unavailable(reason: &str, message: &str, names: &ServerNames, port: i32) -> String {
    let lower = message.to_ascii_lowercase();
    let svc = format!("{}/{}", names.namespace, names.name);
    let hint = match reason {
        "MissingEndpoints" | "EndpointsNotFound" => format!(
            "Service {svc} has no ready endpoints: no pod is ready; check the pods and their readiness probe"
        ),
        "ServiceNotFound" => format!(
            "Service {svc} does not exist; the operator recreates it on the next reconcile"
        ),
        "ServiceAccessError" | "ServicePortError" => format!(
            "the aggregator cannot resolve Service {svc} port 443; the operator restores the Service"
        ),
        _ if lower.contains("x509") || lower.contains("certificate") => format!(
            "TLS verification failed: the pods do not serve the certificate from Secret {} (mount it at {TLS_MOUNT_PATH} and serve tls.crt/tls.key from there)",
            names.tls_secret()
        ),
        _ if lower.contains("403") || lower.contains("forbidden") => format!(
            "the server rejected the aggregator (403): check ClusterRoleBinding {} (system:auth-delegator), RoleBinding kube-system/{} (extension-apiserver-authentication-reader), and that the server trusts the requestheader CA from kube-system/extension-apiserver-authentication",
            names.cluster_role_binding(),
            names.auth_reader_binding()
        ),
        _ if lower.contains("401") || lower.contains("unauthorized") => {
            "the server did not accept the aggregator's front-proxy client certificate (401): it must trust requestheader-client-ca-file from kube-system/extension-apiserver-authentication".to_string()
        }
        _ if lower.contains("connection refused")
            || lower.contains("timeout")
            || lower.contains("deadline exceeded")
            || lower.contains("no route")
            || lower.contains("eof") =>
        {
            format!(
                "nothing answers HTTPS behind Service {svc}: check that the server listens on spec.port ({port})"
            )
        }
        _ => "the aggregator cannot reach the server; check the pods' logs".to_string(),
    };
    if message.is_empty() {
        hint
    } else {
        format!("{hint} (aggregator: {message})")
    }
}

/// A message for an external server's APIService that is not Available.
pub fn diagnose_external(message: &str, target: &str) -> String {
    let hint = format!(
        "the aggregator cannot reach the external server at {target}: start it, or check that it listens there and that kube-apiserver can reach it (see BackendReachable)"
    );
    if message.is_empty() {
        hint
    } else {
        format!("{hint} (aggregator: {message})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::names;

    #[test]
    fn each_failure_names_its_cause() {
        let x509 = diagnose_unavailable(
            "FailedDiscoveryCheck",
            "failing or missing response from https://127.64.0.9:443/apis/my.custom.api/v1: tls: failed to verify certificate: x509: certificate signed by unknown authority",
            &names(),
            8443,
        );
        assert!(x509.contains("Secret srv-tls"), "{x509}");
        let refused = diagnose_unavailable(
            "FailedDiscoveryCheck",
            "dial tcp 127.64.0.9:443: connect: connection refused",
            &names(),
            8443,
        );
        assert!(refused.contains("spec.port (8443)"), "{refused}");
        let forbidden = diagnose_unavailable(
            "FailedDiscoveryCheck",
            "bad status from https://x: 403",
            &names(),
            8443,
        );
        assert!(forbidden.contains("auth-delegator"), "{forbidden}");
        let endpoints = diagnose_unavailable("MissingEndpoints", "", &names(), 8443);
        assert!(endpoints.contains("no ready endpoints"), "{endpoints}");
    }
}
