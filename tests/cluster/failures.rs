//! Failures reach the user and stay contained: a refused apply shows in status with one Warning
//! Event and backs off, even when each refusal reads differently; an annotation retries at once;
//! a panicking pass marks only its own server; an APIService that stays unavailable is
//! unregistered after the operator's cap, so the rest of the cluster keeps working.

use std::time::{Duration, Instant};

use extension_server_operator::context::Settings;
use testenv::TestNamespace;

use crate::support;
use crate::support::chart::kubectl_stdin;
use crate::support::faults::{Faults, PanicOn, Plan};
use crate::support::fixture::Server;
use crate::support::grants::GrantsFile;
use crate::support::policy::Installed;
use crate::support::{Harness, condition};

const DENIED: &str = "Deployments are frozen in this namespace";

const PROBE_DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: probe}\nspec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n";

/// Installs a ValidatingAdmissionPolicy refusing every Deployment write in `ns`, and waits
/// until it takes effect.
async fn deny_deployments(ns: &TestNamespace) -> Installed<'_> {
    let name = format!("{}-deny-deployments", ns.name);
    let yaml = format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
  validations: [{{expression: "false", message: "{DENIED}"}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
"#,
        ns = ns.name
    );
    let out = kubectl_stdin(ns, &["apply", "-f", "-"], yaml.as_bytes());
    assert!(out.status.success(), "{out:?}");
    let installed = Installed { ns, name };
    // A policy takes effect asynchronously: wait until a dry-run create is refused.
    support::eventually(Duration::from_secs(30), "the policy to deny", || {
        let out = kubectl_stdin(
            ns,
            &["create", "--dry-run=server", "-n", &ns.name, "-f", "-"],
            PROBE_DEPLOYMENT.as_bytes(),
        );
        let denied = String::from_utf8_lossy(&out.stderr).contains(DENIED);
        async move { denied }
    })
    .await;
    installed
}

#[tokio::test]
async fn a_refused_apply_shows_in_status_once_backs_off_and_recovers() {
    // The sample server serves my.custom.api, so the server can become Ready for real.
    let _turn = support::sample_group_turn().await;
    let h = Harness::start("es-refused").await;
    let policy = deny_deployments(&h.ns).await;
    let created = h
        .create(&Server::in_group("frozen", "my.custom.api").sample_port(443))
        .await;

    let failed = h
        .wait_condition("frozen", "Ready", "False", Some("DeploymentApplyFailed"))
        .await;
    let ready = condition(&failed, "Ready");
    assert!(ready.message.contains(DENIED), "{}", ready.message);
    assert_eq!(ready.observed_generation, created.metadata.generation);
    assert_eq!(
        failed.status.as_ref().unwrap().observed_generation,
        created.metadata.generation
    );

    // Over 60 s of the same failure, retries back off and repeat no Event. A fixed 5 s retry
    // would fail 12 times; backoff from 1 s (with at most 20 % jitter) about 6 times.
    let errors_before = h.ctx.metrics.errors();
    let mut passes = h.ctx.metrics.watch_reconciles();
    let mut finished = Vec::new();
    let window = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while passes.changed().await.is_ok() {
            finished.push(window.elapsed());
        }
    })
    .await;
    let failures = h.ctx.metrics.errors() - errors_before;
    assert!(
        (2..=8).contains(&failures),
        "{failures} failures in 60 s (passes ended at {finished:?})"
    );
    let gaps: Vec<Duration> = finished.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.last()
            .is_some_and(|gap| *gap >= Duration::from_secs(8)),
        "retries did not back off: {gaps:?}"
    );
    assert_eq!(
        support::warnings(&h.ns, "DeploymentApplyFailed")
            .await
            .into_values()
            .collect::<Vec<_>>(),
        [1],
        "one Warning Event, not one per retry"
    );

    // The policy gone, the next retry succeeds and the server goes Ready.
    let _pod = testenv::runtime::start(&h.ns.cluster, &h.ns.name, "frozen")
        .await
        .unwrap();
    drop(policy);
    h.wait_condition("frozen", "Ready", "True", None).await;
}

#[tokio::test]
async fn a_failure_that_reads_differently_each_time_still_backs_off() {
    // Every apply of the Deployment is refused with a new message, so every failed pass
    // rewrites the status. That write of the operator's own must not start the next pass
    // early: the retries still wait about 1, 2, 4, 8 s (with at most 20 % jitter).
    let faults = Faults::new(Plan {
        refuse_writes_to: Some("/deployments/shifting".into()),
        ..Plan::default()
    });
    let h = Harness::start_behind("es-shifting", &faults).await;
    let group = format!("shifting.{}.custom.api", h.ns.name);
    h.create(&Server::in_group("shifting", &group).port(443))
        .await;
    let refused = faults
        .tally
        .wait_refused(5, Duration::from_secs(90))
        .await
        .expect("five refused applies of the Deployment within 90 s");
    let gaps: Vec<Duration> = refused.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        refused[4] - refused[0] >= Duration::from_secs(6),
        "five attempts within {:?}; gaps {gaps:?}",
        refused[4] - refused[0]
    );
    let failed = h
        .wait_condition("shifting", "Ready", "False", Some("DeploymentApplyFailed"))
        .await;
    let message = &condition(&failed, "Ready").message;
    assert!(message.contains("injected refusal"), "{message}");

    // The next retry is due in about 16 s; an annotation (the documented way to retry at
    // once) starts a pass now.
    let annotated = Instant::now();
    let out = kubectl_stdin(
        &h.ns,
        &[
            "annotate",
            "extensionserver",
            "shifting",
            "retry=now",
            "-n",
            &h.ns.name,
        ],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let retried = faults
        .tally
        .wait_refused(6, Duration::from_secs(5))
        .await
        .expect("a pass within 5 s of the annotation");
    assert!(retried[5] >= annotated, "{retried:?}");
}

#[tokio::test]
async fn a_panicking_pass_marks_only_its_server_and_the_operator_carries_on() {
    // Every write of boom's Deployment panics in the pass that makes it.
    let faults = Faults::new(Plan {
        panic_on: Some(PanicOn {
            path_suffix: "/deployments/boom".into(),
            message: "a builder bug, on purpose".into(),
        }),
        ..Plan::default()
    });
    let h = Harness::start_behind("es-panic", &faults).await;
    let group = format!("{}.custom.api", h.ns.name);
    h.create(&Server::in_group("boom", &format!("boom.{group}")).port(443))
        .await;
    let boom = h
        .wait_condition("boom", "Ready", "False", Some("InternalError"))
        .await;
    assert!(
        condition(&boom, "Ready")
            .message
            .contains("a builder bug, on purpose")
    );
    let warnings = support::warnings(&h.ns, "InternalError").await;
    assert_eq!(warnings.into_values().collect::<Vec<_>>(), [1]);

    // The operator still serves the others, created after the panic.
    h.create(&Server::in_group("calm", &group).port(443)).await;
    h.wait_condition("calm", "Registered", "True", None).await;
}

#[tokio::test]
async fn an_unavailable_apiservice_is_unregistered_after_the_operators_cap() {
    let grants = GrantsFile::new("cap", "grants: []\n");
    let settings = Settings {
        max_unavailable: Duration::from_secs(5),
        ..grants.settings()
    };
    let h = Harness::start_with("es-cap", settings).await;
    let group = format!("{}.custom.api", h.ns.name);
    let grant = |always: bool| {
        format!(
            "grants: [{{namespaces: [{}], groups: ['{group}'], allowRegistrationAlways: {always}}}]\n",
            h.ns.name
        )
    };
    grants.write(&grant(false));
    // Registered at once with nothing serving it, and no unregisterAfter of its own.
    h.create(
        &Server::in_group("never", &group)
            .port(443)
            .extra("{registration: {policy: Always}}"),
    )
    .await;
    let s = h
        .wait_condition("never", "Registered", "False", Some("NotGranted"))
        .await;
    let message = &condition(&s, "Registered").message;
    assert!(message.contains("allowRegistrationAlways"), "{message}");

    grants.write(&grant(true));
    h.wait_condition("never", "Registered", "True", None).await;
    h.wait_condition("never", "Registered", "False", Some("Unregistered"))
        .await;

    // Discovery works again, so another namespace's deletion completes.
    let other = TestNamespace::create("es-cap-other").await.unwrap();
    other
        .delete_and_wait(Duration::from_secs(60))
        .await
        .unwrap();
}
