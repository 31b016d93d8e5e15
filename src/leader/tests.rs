//! The election rules against a mocked API server (tower-test), with paused time.

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use super::*;

fn settings(lease: u64, renew: u64, retry: u64) -> LeaseSettings {
    LeaseSettings {
        namespace: "ns".into(),
        name: "lease".into(),
        identity: "me".into(),
        lease_duration: Duration::from_secs(lease),
        renew_deadline: Duration::from_secs(renew),
        retry_period: Duration::from_secs(retry),
    }
}

fn lease(holder: &str, resource_version: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lease", "namespace": "ns", "resourceVersion": resource_version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "leaseTransitions": 3}
    })
}

type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// Answers the next request, which must use `method`, and returns the request's JSON body.
async fn answer(api: &mut ApiHandle, method: &str, status: u16, body: Value) -> Value {
    let (request, respond) = api.next_request().await.expect("a request");
    assert_eq!(request.method().as_str(), method, "{}", request.uri());
    let sent = request.into_body().collect().await.unwrap().to_bytes();
    respond.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    serde_json::from_slice(&sent).unwrap_or(Value::Null)
}

fn elector() -> (LeaderElector, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "ns");
    (LeaderElector::new(client, settings(15, 10, 2)), handle)
}

#[test]
fn timings_must_leave_the_leader_time_to_stop() {
    assert!(settings(15, 10, 2).validate().is_ok());
    assert!(settings(10, 10, 2).validate().is_err());
    assert!(settings(15, 10, 10).validate().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_only_after_the_record_stops_changing_for_the_lease_duration() {
    let (mut elector, mut api) = elector();
    let server = tokio::spawn(async move {
        answer(&mut api, "GET", 200, lease("other", "1")).await;
        answer(&mut api, "GET", 200, lease("other", "2")).await; // renewed
        answer(&mut api, "GET", 200, lease("other", "2")).await;
        answer(&mut api, "GET", 200, lease("other", "2")).await;
        answer(&mut api, "PUT", 200, lease("me", "3")).await
    });
    assert!(!elector.try_acquire_or_renew().await.unwrap());
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(
        !elector.try_acquire_or_renew().await.unwrap(),
        "renewed: not expired"
    );
    tokio::time::advance(Duration::from_secs(14)).await;
    assert!(
        !elector.try_acquire_or_renew().await.unwrap(),
        "14 s since the renewal"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(
        elector.try_acquire_or_renew().await.unwrap(),
        "15 s: expired"
    );
    let written = server.await.unwrap();
    assert_eq!(
        written["metadata"]["resourceVersion"], "2",
        "write at the read version"
    );
    assert_eq!(written["spec"]["holderIdentity"], "me");
    assert_eq!(written["spec"]["leaseTransitions"], 4);
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_at_once() {
    let (mut elector, mut api) = elector();
    let server = tokio::spawn(async move {
        answer(&mut api, "GET", 200, lease("", "7")).await;
        answer(&mut api, "PUT", 200, lease("me", "8")).await
    });
    assert!(elector.try_acquire_or_renew().await.unwrap());
    assert_eq!(server.await.unwrap()["spec"]["holderIdentity"], "me");
}

#[tokio::test(start_paused = true)]
async fn losing_the_race_for_a_write_is_not_winning() {
    let (mut elector, mut api) = elector();
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "Conflict", "code": 409, "message": "the object has been modified"});
    let server = tokio::spawn(async move {
        answer(
            &mut api,
            "GET",
            404,
            json!({"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
        )
        .await;
        answer(&mut api, "POST", 409, conflict.clone()).await;
        answer(&mut api, "GET", 200, lease("", "1")).await;
        answer(&mut api, "PUT", 409, conflict).await;
    });
    assert!(
        !elector.try_acquire_or_renew().await.unwrap(),
        "create lost"
    );
    assert!(
        !elector.try_acquire_or_renew().await.unwrap(),
        "takeover lost"
    );
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn release_clears_only_our_own_hold() {
    let (mut elector, mut api) = elector();
    let server = tokio::spawn(async move {
        answer(&mut api, "GET", 200, lease("other", "1")).await;
        answer(&mut api, "GET", 200, lease("me", "2")).await;
        answer(&mut api, "PUT", 200, lease("", "3")).await
    });
    elector.release().await.unwrap(); // someone else's: no write
    elector.release().await.unwrap();
    let written = server.await.unwrap();
    assert!(written["spec"]["holderIdentity"].is_null());
    assert_eq!(written["spec"]["leaseDurationSeconds"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_standby_tries_again_when_the_record_expires_not_at_the_next_tick() {
    let (mut elector, mut api) = elector();
    let server = tokio::spawn(async move {
        answer(&mut api, "GET", 200, lease("other", "1")).await;
    });
    let retry = Duration::from_secs(2);
    assert_eq!(elector.next_attempt_in(), retry, "nothing observed yet");
    assert!(!elector.try_acquire_or_renew().await.unwrap());
    server.await.unwrap();
    assert_eq!(elector.next_attempt_in(), retry);
    tokio::time::advance(Duration::from_millis(14_500)).await;
    assert_eq!(elector.next_attempt_in(), Duration::from_millis(500));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(elector.next_attempt_in(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_an_attempt_lets_the_attempt_finish_so_a_won_lease_is_known() {
    let (mut elector, mut api) = elector();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (request, respond) = api.next_request().await.expect("a GET");
        assert_eq!(request.method().as_str(), "GET");
        // The stop arrives while the attempt is in flight.
        let _ = stop.send(());
        respond.send_response(
            Response::builder()
                .status(404)
                .body(Body::from(
                    serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1",
                        "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}))
                    .unwrap(),
                ))
                .unwrap(),
        );
        answer(&mut api, "POST", 201, lease("me", "1")).await;
    });
    let won = elector
        .acquire_until(async {
            let _ = stopped.await;
        })
        .await;
    assert!(won, "the attempt was cancelled after its write");
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stop_between_attempts_ends_the_wait() {
    let (mut elector, mut api) = elector();
    let server = tokio::spawn(async move {
        answer(&mut api, "GET", 200, lease("other", "1")).await;
    });
    let won = elector.acquire_until(std::future::ready(())).await;
    assert!(!won);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the first attempt was not made")
        .unwrap();
}
