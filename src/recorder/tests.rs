//! The series rules against a mocked API server (tower-test).

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use super::*;

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn recorder() -> (Recorder, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let reporter = Reporter {
        controller: "operator".into(),
        instance: None,
    };
    (Recorder::new(client, reporter), handle)
}

fn warning(note: &str) -> Event {
    Event {
        type_: EventType::Warning,
        reason: "Failed".into(),
        note: Some(note.into()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

fn server(name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some("ExtensionServer".into()),
        namespace: Some("ns".into()),
        name: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        ..ObjectReference::default()
    }
}

fn start() -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_hours(1)
}

const CREATE: (&str, &str, u16) = ("POST", "/events", 201);
const PATCH: (&str, &str, u16) = ("PATCH", "", 200);

/// Answers the next request, which must be `method` on a path ending in `path_end`, with
/// `status`, echoing the sent object back; returns what was sent.
async fn answer(api: &mut ApiHandle, (method, path_end, status): (&str, &str, u16)) -> Value {
    let (request, respond) = api.next_request().await.expect("a request");
    assert_eq!(request.method().as_str(), method, "{}", request.uri());
    assert!(
        request.uri().path().ends_with(path_end),
        "{}",
        request.uri()
    );
    let sent = request.into_body().collect().await.unwrap().to_bytes();
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    let reply = if status == 404 {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
    } else {
        sent.clone()
    };
    respond.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    sent
}

/// Publishes `event` at `at`, answering the requests `expect` lists; returns what was sent.
async fn publish(
    (recorder, api): &mut (Recorder, ApiHandle),
    event: Event,
    regarding: ObjectReference,
    at: Timestamp,
    expect: &[(&str, &str, u16)],
) -> Vec<Value> {
    let publishing = recorder.publish_at(&event, &regarding, at);
    let answering = async {
        let mut sent = Vec::new();
        for request in expect {
            sent.push(answer(api, *request).await);
        }
        sent
    };
    let (published, sent) = tokio::join!(publishing, answering);
    published.expect("published");
    sent
}

#[tokio::test]
async fn a_repeat_within_the_window_counts_in_the_first_events_series() {
    let mut mock = recorder();
    let t0 = start();
    let created = publish(&mut mock, warning("boom"), server("a"), t0, &[CREATE]).await;
    assert_eq!(created[0]["regarding"]["name"], "a");
    assert_eq!(created[0]["type"], "Warning");
    assert_eq!(created[0]["note"], "boom");
    let first = format!(
        "/events/{}",
        created[0]["metadata"]["name"].as_str().unwrap()
    );
    let later = t0 + SignedDuration::from_mins(5);
    let repeat = ("PATCH", first.as_str(), 200);
    let patched = publish(&mut mock, warning("boom"), server("a"), later, &[repeat]).await;
    assert_eq!(
        patched[0],
        json!({"series": {"count": 2, "lastObservedTime": patched[0]["series"]["lastObservedTime"]}})
    );
    let third = later + SignedDuration::from_mins(5);
    let patched = publish(&mut mock, warning("boom"), server("a"), third, &[repeat]).await;
    assert_eq!(
        patched[0]["series"]["count"], 3,
        "the window runs from the last repeat"
    );
}

#[tokio::test]
async fn another_note_object_or_an_expired_window_is_a_new_event() {
    let mut mock = recorder();
    let t0 = start();
    publish(&mut mock, warning("boom"), server("a"), t0, &[CREATE]).await;
    publish(&mut mock, warning("bang"), server("a"), t0, &[CREATE]).await;
    publish(&mut mock, warning("boom"), server("b"), t0, &[CREATE]).await;
    assert_eq!(mock.0.remembered_count(), 3);
    let expired = t0 + SERIES_WINDOW;
    publish(&mut mock, warning("boom"), server("a"), expired, &[CREATE]).await;
    assert_eq!(
        mock.0.remembered_count(),
        1,
        "the expired ones are forgotten"
    );
}

#[tokio::test]
async fn a_repeat_of_a_deleted_event_creates_it_again() {
    let mut mock = recorder();
    let t0 = start();
    publish(&mut mock, warning("boom"), server("a"), t0, &[CREATE]).await;
    let gone = ("PATCH", "", 404);
    let sent = publish(&mut mock, warning("boom"), server("a"), t0, &[gone, CREATE]).await;
    assert!(sent[1].get("series").is_none());
    let sent = publish(&mut mock, warning("boom"), server("a"), t0, &[PATCH]).await;
    assert_eq!(
        sent[0]["series"]["count"], 2,
        "the new Event starts its own series"
    );
}

#[test]
fn the_map_gives_memory_back_once_its_events_expire() {
    let t0 = start();
    let mut recent: HashMap<u64, Recent> = (0..4000)
        .map(|key| {
            let entry = Recent {
                namespace: "ns".into(),
                name: format!("e{key}").into(),
                count: 1,
                last: t0,
            };
            (key, entry)
        })
        .collect();
    let full = recent.capacity();
    forget_expired(&mut recent, t0 + SignedDuration::from_mins(1));
    assert_eq!(recent.len(), 4000);
    forget_expired(&mut recent, t0 + SERIES_WINDOW);
    assert!(recent.is_empty());
    assert!(
        recent.capacity() < full / 4,
        "{} of {full}",
        recent.capacity()
    );
}
