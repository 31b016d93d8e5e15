//! The operator's HTTP endpoints over real HTTP: `/readyz` is 503 until the caches sync and 200
//! after; `/metrics` shows the reconcile, certificate and APIService series after a reconcile.

use std::sync::Arc;
use std::time::Duration;

use extension_server_operator::context::{Context, Settings};
use extension_server_operator::crd::ExtensionServer;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use testenv::TestNamespace;

use crate::support;
use crate::support::fixture::Server;
use crate::support::operator::http_get as get;

#[tokio::test]
async fn endpoints_answer_and_metrics_show_a_reconcile() {
    let ns = TestNamespace::create("es-endpoints").await.unwrap();
    support::install_crd(&ns.client).await;
    let ctx =
        Arc::new(Context::connect(support::config_for(&ns).await, Settings::default()).unwrap());
    let listener = extension_server_operator::http::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(extension_server_operator::http::serve(
        listener,
        ctx.clone(),
    ));

    assert_eq!(get(port, "/healthz").await.unwrap().0, 200);
    assert_eq!(
        get(port, "/readyz").await.unwrap().0,
        503,
        "ready before the caches synced"
    );

    let operator = tokio::spawn(extension_server_operator::controller::run(
        ctx.clone(),
        Some(ns.name.clone()),
    ));
    let mut ready = ctx.ready.subscribe();
    tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|r| *r))
        .await
        .expect("the caches did not sync")
        .unwrap();
    assert_eq!(get(port, "/readyz").await.unwrap().0, 200);

    let group = format!("{}.custom.api", ns.name);
    let server_object = Server::new("measured")
        .namespace(&ns.name)
        .group(&group)
        .build();
    let servers: Api<ExtensionServer> = ns.api();
    servers
        .create(&PostParams::default(), &server_object)
        .await
        .unwrap();
    let registered = |s: Option<&ExtensionServer>| {
        s.and_then(|s| s.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Registered" && c.status == "True")
                && !s.api_services.is_empty()
        })
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(servers, "measured", registered),
    )
    .await
    .unwrap()
    .unwrap();

    let (status, metrics) = get(port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for series in [
        "extension_server_operator_reconciles_total",
        "extension_server_operator_reconcile_duration_seconds_bucket",
        "extension_server_operator_api_writes_total",
        &format!(
            "extension_server_operator_certificate_expiry_timestamp_seconds{{namespace=\"{}\",name=\"measured\"}}",
            ns.name
        ),
        &format!(
            "extension_server_operator_apiservice_available{{apiservice=\"v1.{group}\",namespace=\"{}\",name=\"measured\"}}",
            ns.name
        ),
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    // Deleted while the operator runs, so its finalizer removes everything cluster-scoped.
    let servers: Api<ExtensionServer> = ns.api();
    let uid = servers.get("measured").await.unwrap().metadata.uid.unwrap();
    servers
        .delete("measured", &Default::default())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            servers,
            "measured",
            kube::runtime::wait::conditions::is_deleted(&uid),
        ),
    )
    .await
    .expect("the ExtensionServer was not deleted")
    .unwrap();
    operator.abort();
    server.abort();
}

/// GET over HTTPS, trusting `ca_pem` for `localhost`, with an optional bearer token.
async fn https_get(port: u16, path: &str, token: Option<&str>, ca_pem: &str) -> (u16, String) {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .unwrap();
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // The server may close without a TLS close_notify; what was read is the answer.
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// The secure endpoint on a free port of 127.0.0.1, and tokens of a ServiceAccount that may
/// get `/metrics` and of one that may not.
struct Secure {
    port: u16,
    ca_pem: String,
    server: tokio::task::JoinHandle<()>,
    reader: String,
    scraper: String,
    nobody: String,
}

async fn secure_endpoint(ns: &TestNamespace) -> Secure {
    use extension_server_operator::tls::certs;
    let ctx =
        Arc::new(Context::connect(support::config_for(ns).await, Settings::default()).unwrap());
    let lifetime = Duration::from_secs(3600);
    let now = k8s_openapi::jiff::Timestamp::now();
    let ca = certs::generate_ca("metrics test ca", now, lifetime).unwrap();
    let serving = certs::issue_serving(&ca, &["localhost".to_string()], now, lifetime).unwrap();
    let config = extension_server_operator::http::secure::server_config(
        serving.cert_pem.as_bytes(),
        serving.key_pem.as_bytes(),
    )
    .unwrap();
    let listener = extension_server_operator::http::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(extension_server_operator::http::serve_secure(
        listener,
        ctx.clone(),
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    ));

    // A scraper bound to a role that may get /metrics, and an account that may not.
    let reader = format!("{}-metrics-reader", ns.name);
    for args in [
        vec!["create", "serviceaccount", "scraper"],
        vec!["create", "serviceaccount", "nobody"],
        vec![
            "create",
            "clusterrole",
            &reader,
            "--verb=get",
            "--non-resource-url=/metrics",
        ],
        vec![
            "create",
            "clusterrolebinding",
            &reader,
            "--clusterrole",
            &reader,
            "--serviceaccount",
        ],
    ] {
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        if args[1] == "clusterrolebinding" {
            let last = args.len() - 1;
            args[last] = format!("--serviceaccount={}:scraper", ns.name);
        }
        args.extend(["-n".to_string(), ns.name.clone()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ns.kubectl(&refs);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = |account: &str| {
        let out = ns.kubectl(&["create", "token", account, "-n", &ns.name]);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    Secure {
        port,
        ca_pem: ca.cert_pem.clone(),
        server,
        reader,
        scraper: token("scraper"),
        nobody: token("nobody"),
    }
}

#[tokio::test]
async fn secure_metrics_answer_only_a_token_allowed_to_get_them() {
    let ns = TestNamespace::create("es-secure-metrics").await.unwrap();
    let Secure {
        port,
        ca_pem,
        server,
        reader,
        scraper,
        nobody,
    } = secure_endpoint(&ns).await;
    let ca_pem = &ca_pem;

    assert_eq!(https_get(port, "/healthz", None, ca_pem).await.0, 200);
    assert_eq!(https_get(port, "/metrics", None, ca_pem).await.0, 401);
    assert_eq!(
        https_get(port, "/metrics", Some("not-a-token"), ca_pem)
            .await
            .0,
        401
    );
    assert_eq!(
        https_get(port, "/metrics", Some(&nobody), ca_pem).await.0,
        403
    );
    // RBAC may take a moment to show the new binding.
    support::eventually(
        Duration::from_secs(30),
        "the scraper reads /metrics",
        || {
            let scraper = scraper.clone();
            async move {
                let (status, body) = https_get(port, "/metrics", Some(&scraper), ca_pem).await;
                status == 200 && body.contains("extension_server_operator_")
            }
        },
    )
    .await;
    ns.kubectl(&["delete", "clusterrolebinding,clusterrole", &reader]);
    server.abort();
}

/// Waits until a scrape with `token` is answered 200.
async fn scraped(port: u16, token: &str, ca_pem: &str) {
    support::eventually(Duration::from_secs(30), "a scrape", || {
        let token = token.to_string();
        async move { https_get(port, "/metrics", Some(&token), ca_pem).await.0 == 200 }
    })
    .await;
}

#[tokio::test]
async fn idle_connections_neither_starve_a_scrape_nor_stay_open() {
    use tokio::io::AsyncReadExt;
    let ns = TestNamespace::create("es-idle-metrics").await.unwrap();
    let secure = secure_endpoint(&ns).await;
    let (port, ca_pem) = (secure.port, secure.ca_pem.as_str());
    scraped(port, &secure.scraper, ca_pem).await;

    // Idle connections, TCP only, never a handshake: first one fewer than the endpoint
    // serves at once, then more than that.
    let limit = extension_server_operator::http::MAX_CONNECTIONS;
    let mut held = Vec::new();
    for idle in [limit - 1, limit + 44] {
        while held.len() < idle {
            held.push(
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap(),
            );
        }
        let started = std::time::Instant::now();
        scraped(port, &secure.scraper, ca_pem).await;
        eprintln!(
            "a scrape answered in {} ms with {idle} idle connections open",
            started.elapsed().as_millis()
        );
    }

    // The endpoint closes every one of them.
    let closed = futures::future::join_all(held.iter_mut().map(|stream| async move {
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(30), stream.read(&mut byte)).await
    }))
    .await;
    let open = closed.iter().filter(|read| read.is_err()).count();
    assert_eq!(open, 0, "{open} idle connections still open after 30 s");
    ns.kubectl(&["delete", "clusterrolebinding,clusterrole", &secure.reader]);
    secure.server.abort();
}
