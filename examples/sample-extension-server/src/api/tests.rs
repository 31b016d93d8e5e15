use serde_json::{Value, json};

use super::*;
use crate::objects::sample_objects;
use crate::served::{DEFAULT_GROUP, DEFAULT_RESOURCES, DEFAULT_VERSIONS};

fn defaults() -> Served {
    Served::parse(DEFAULT_GROUP, DEFAULT_VERSIONS, DEFAULT_RESOURCES).unwrap()
}

/// Two versions (v2beta1 preferred) and two resources, one with a derived kind.
fn custom() -> Served {
    Served::parse("demo.example.com", "v2beta1,v1", "widgets,gadgets:Gizmo").unwrap()
}

fn body(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap()
}

/// Routes and answers `path` as an authorized request would be.
fn get(served: &Served, path: &str) -> Reply {
    respond(served, &route(served, path), &sample_objects(served))
}

#[test]
fn routes_paths() {
    let served = defaults();
    let route = |path| route(&served, path);
    assert_eq!(route("/healthz"), Route::Health);
    assert_eq!(route("/apis"), Route::GroupList);
    assert_eq!(
        route("/apis/my.custom.api"),
        Route::Group {
            group: "my.custom.api".into()
        }
    );
    assert_eq!(
        route("/apis/my.custom.api/v1/"),
        Route::ResourceList {
            group: "my.custom.api".into(),
            version: "v1".into()
        }
    );
    assert_eq!(
        route("/apis/my.custom.api/v1/myresources"),
        Route::List {
            group: "my.custom.api".into(),
            version: "v1".into(),
            resource: "myresources".into(),
            namespace: None
        }
    );
    assert_eq!(
        route("/apis/my.custom.api/v1/namespaces/default/myresources/alpha"),
        Route::Get {
            group: "my.custom.api".into(),
            version: "v1".into(),
            resource: "myresources".into(),
            namespace: "default".into(),
            name: "alpha".into()
        }
    );
    assert_eq!(route("/apis/other.api/v1"), Route::NotFound);
    assert_eq!(route("/apis/my.custom.api/v2"), Route::NotFound);
    assert_eq!(route("/apis/my.custom.api/v1/widgets"), Route::NotFound);
    assert_eq!(route("/"), Route::NotFound);
    assert_eq!(route("/openapi/v2"), Route::NotFound);
}

/// With no flags, the answers are byte for byte those of the server before the flags.
#[test]
fn defaults_answer_as_before() {
    let golden = [
        (
            "/apis",
            200,
            "application/json",
            r#"{"apiVersion":"v1","kind":"APIGroupList","groups":[{"apiVersion":"v1","kind":"APIGroup","name":"my.custom.api","preferredVersion":{"groupVersion":"my.custom.api/v1","version":"v1"},"versions":[{"groupVersion":"my.custom.api/v1","version":"v1"}]}]}"#,
        ),
        (
            "/apis/my.custom.api",
            200,
            "application/json",
            r#"{"apiVersion":"v1","kind":"APIGroup","name":"my.custom.api","preferredVersion":{"groupVersion":"my.custom.api/v1","version":"v1"},"versions":[{"groupVersion":"my.custom.api/v1","version":"v1"}]}"#,
        ),
        (
            "/apis/my.custom.api/v1",
            200,
            "application/json",
            r#"{"apiVersion":"v1","kind":"APIResourceList","groupVersion":"my.custom.api/v1","resources":[{"kind":"MyResource","name":"myresources","namespaced":true,"singularName":"myresource","verbs":["get","list"]}]}"#,
        ),
        (
            "/apis/my.custom.api/v1/myresources",
            200,
            "application/json",
            r#"{"apiVersion":"my.custom.api/v1","kind":"MyResourceList","metadata":{"resourceVersion":"1"},"items":[{"apiVersion":"my.custom.api/v1","kind":"MyResource","metadata":{"creationTimestamp":"T","name":"alpha","namespace":"default","resourceVersion":"1","uid":"00000000-0000-4000-8000-000000000001"},"spec":{"message":"Hello from alpha"}},{"apiVersion":"my.custom.api/v1","kind":"MyResource","metadata":{"creationTimestamp":"T","name":"beta","namespace":"default","resourceVersion":"1","uid":"00000000-0000-4000-8000-000000000002"},"spec":{"message":"Hello from beta"}},{"apiVersion":"my.custom.api/v1","kind":"MyResource","metadata":{"creationTimestamp":"T","name":"gamma","namespace":"default","resourceVersion":"1","uid":"00000000-0000-4000-8000-000000000003"},"spec":{"message":"Hello from gamma"}}]}"#,
        ),
        (
            "/apis/my.custom.api/v1/namespaces/default/myresources",
            200,
            "application/json",
            r#"{"apiVersion":"my.custom.api/v1","kind":"MyResourceList","metadata":{"resourceVersion":"1"},"items":[{"apiVersion":"my.custom.api/v1","kind":"MyResource","metadata":{"creationTimestamp":"T","name":"alpha","namespace":"default","resourceVersion":"1","uid":"00000000-0000-4000-8000-000000000001"},"spec":{"message":"Hello from alpha"}},{"apiVersion":"my.custom.api/v1","kind":"MyResource","metadata":{"creationTimestamp":"T","name":"beta","namespace":"default","resourceVersion":"1","uid":"00000000-0000-4000-8000-000000000002"},"spec":{"message":"Hello from beta"}},{"apiVersion":"my.custom.api/v1","kind":"MyResource","metadata":{"creationTimestamp":"T","name":"gamma","namespace":"default","resourceVersion":"1","uid":"00000000-0000-4000-8000-000000000003"},"spec":{"message":"Hello from gamma"}}]}"#,
        ),
        (
            "/apis/my.custom.api/v1/namespaces/other/myresources",
            200,
            "application/json",
            r#"{"apiVersion":"my.custom.api/v1","kind":"MyResourceList","metadata":{"resourceVersion":"1"},"items":[]}"#,
        ),
        (
            "/apis/my.custom.api/v1/namespaces/default/myresources/beta",
            200,
            "application/json",
            r#"{"apiVersion":"my.custom.api/v1","kind":"MyResource","metadata":{"creationTimestamp":"T","name":"beta","namespace":"default","resourceVersion":"1","uid":"00000000-0000-4000-8000-000000000002"},"spec":{"message":"Hello from beta"}}"#,
        ),
        (
            "/apis/my.custom.api/v1/namespaces/default/myresources/zeta",
            404,
            "application/json",
            r#"{"apiVersion":"v1","kind":"Status","code":404,"details":{"group":"my.custom.api","kind":"myresources","name":"zeta"},"message":"myresources.my.custom.api \"zeta\" not found","metadata":{},"reason":"NotFound","status":"Failure"}"#,
        ),
        (
            "/apis/my.custom.api/v2",
            404,
            "application/json",
            r#"{"apiVersion":"v1","kind":"Status","code":404,"message":"the server could not find the requested resource","metadata":{},"reason":"NotFound","status":"Failure"}"#,
        ),
        ("/healthz", 200, "text/plain; charset=utf-8", r#"ok"#),
    ];
    let served = defaults();
    for (path, code, content_type, expected) in golden {
        let reply = get(&served, path);
        assert_eq!(reply.code.as_u16(), code, "{path}");
        assert_eq!(reply.content_type, content_type, "{path}");
        let body = String::from_utf8(reply.body).unwrap();
        let mut body = body.as_str();
        let mut normalized = String::new();
        // Blank out the creation timestamps, which are the start time.
        while let Some(at) = body.find(r#""creationTimestamp":""#) {
            let value = at + r#""creationTimestamp":""#.len();
            let end = value + body[value..].find('"').unwrap();
            normalized.push_str(&body[..value]);
            normalized.push('T');
            body = &body[end..];
        }
        normalized.push_str(body);
        assert_eq!(normalized, expected, "{path}");
    }
}

#[test]
fn discovery_documents() {
    let served = defaults();
    let groups = body(&get(&served, "/apis"));
    assert_eq!(groups["kind"], "APIGroupList");
    assert_eq!(groups["apiVersion"], "v1");
    assert_eq!(groups["groups"][0]["name"], "my.custom.api");
    assert_eq!(
        groups["groups"][0]["versions"],
        json!([{"groupVersion": "my.custom.api/v1", "version": "v1"}])
    );
    assert_eq!(groups["groups"][0]["preferredVersion"]["version"], "v1");

    let group = body(&get(&served, "/apis/my.custom.api"));
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(group["name"], "my.custom.api");

    let resources = body(&get(&served, "/apis/my.custom.api/v1"));
    assert_eq!(resources["kind"], "APIResourceList");
    assert_eq!(resources["groupVersion"], "my.custom.api/v1");
    assert_eq!(
        resources["resources"][0],
        json!({
            "name": "myresources", "singularName": "myresource", "namespaced": true,
            "kind": "MyResource", "verbs": ["get", "list"]
        })
    );
}

#[test]
fn lists_and_gets() {
    let served = defaults();
    let all = body(&get(&served, "/apis/my.custom.api/v1/myresources"));
    assert_eq!(all["kind"], "MyResourceList");
    assert_eq!(all["apiVersion"], "my.custom.api/v1");
    assert_eq!(all["metadata"]["resourceVersion"], "1");
    assert_eq!(all["items"].as_array().unwrap().len(), 3);

    let other = body(&get(
        &served,
        "/apis/my.custom.api/v1/namespaces/other/myresources",
    ));
    assert_eq!(other["items"], json!([]));

    let object = |ns: &str, name: &str| {
        get(
            &served,
            &format!("/apis/my.custom.api/v1/namespaces/{ns}/myresources/{name}"),
        )
    };
    let beta = object("default", "beta");
    assert_eq!(beta.code, StatusCode::OK);
    let beta = body(&beta);
    assert_eq!(beta["kind"], "MyResource");
    assert_eq!(beta["metadata"]["name"], "beta");
    assert_eq!(beta["metadata"]["resourceVersion"], "1");
    assert!(beta["metadata"]["creationTimestamp"].is_string());
    assert_eq!(beta["spec"]["message"], "Hello from beta");

    for (ns, name) in [("default", "zeta"), ("other", "alpha")] {
        let missing = object(ns, name);
        assert_eq!(missing.code, StatusCode::NOT_FOUND);
        let missing = body(&missing);
        assert_eq!(missing["kind"], "Status");
        assert_eq!(missing["reason"], "NotFound");
        assert_eq!(missing["code"], 404);
    }
}

#[test]
fn custom_group_with_two_versions() {
    let served = custom();
    let both = json!([
        {"groupVersion": "demo.example.com/v2beta1", "version": "v2beta1"},
        {"groupVersion": "demo.example.com/v1", "version": "v1"},
    ]);
    let groups = body(&get(&served, "/apis"));
    assert_eq!(groups["groups"].as_array().unwrap().len(), 1);
    assert_eq!(groups["groups"][0]["name"], "demo.example.com");
    assert_eq!(groups["groups"][0]["versions"], both);
    let group = body(&get(&served, "/apis/demo.example.com"));
    assert_eq!(group["versions"], both);
    assert_eq!(group["preferredVersion"], both[0]);

    for version in ["v2beta1", "v1"] {
        let resources = body(&get(&served, &format!("/apis/demo.example.com/{version}")));
        assert_eq!(resources["kind"], "APIResourceList");
        assert_eq!(
            resources["groupVersion"],
            format!("demo.example.com/{version}")
        );
        let names: Vec<&Value> = resources["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["name"])
            .collect();
        assert_eq!(names, [&json!("widgets"), &json!("gadgets")]);
    }

    // Objects carry the version asked for.
    for version in ["v2beta1", "v1"] {
        let prefix = format!("/apis/demo.example.com/{version}");
        let list = body(&get(&served, &format!("{prefix}/widgets")));
        assert_eq!(list["apiVersion"], format!("demo.example.com/{version}"));
        assert_eq!(list["kind"], "WidgetList");
        for item in list["items"].as_array().unwrap() {
            assert_eq!(item["apiVersion"], format!("demo.example.com/{version}"));
            assert_eq!(item["kind"], "Widget");
        }
        let alpha = body(&get(
            &served,
            &format!("{prefix}/namespaces/default/widgets/alpha"),
        ));
        assert_eq!(alpha["apiVersion"], format!("demo.example.com/{version}"));
        assert_eq!(alpha["spec"]["message"], "Hello from alpha");
    }

    // Unknown versions, groups and resources are 404 Status, as is the old default.
    for path in [
        "/apis/demo.example.com/v3",
        "/apis/demo.example.com/v3/widgets",
        "/apis/my.custom.api",
        "/apis/my.custom.api/v1",
        "/apis/demo.example.com/v1/myresources",
    ] {
        let reply = get(&served, path);
        assert_eq!(reply.code, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body(&reply)["kind"], "Status", "{path}");
    }
}

#[test]
fn two_resources() {
    let served = custom();
    let resources = body(&get(&served, "/apis/demo.example.com/v1"));
    assert_eq!(
        resources["resources"],
        json!([
            {"name": "widgets", "singularName": "widget", "namespaced": true,
             "kind": "Widget", "verbs": ["get", "list"]},
            {"name": "gadgets", "singularName": "gizmo", "namespaced": true,
             "kind": "Gizmo", "verbs": ["get", "list"]},
        ])
    );

    let gadgets = body(&get(
        &served,
        "/apis/demo.example.com/v1/namespaces/default/gadgets",
    ));
    assert_eq!(gadgets["kind"], "GizmoList");
    let items = gadgets["items"].as_array().unwrap();
    let names: Vec<&Value> = items.iter().map(|o| &o["metadata"]["name"]).collect();
    assert_eq!(names, [&json!("alpha"), &json!("beta"), &json!("gamma")]);
    assert!(items.iter().all(|o| o["kind"] == "Gizmo"));

    // Each resource has its own objects (distinct uids).
    let uid = |resource: &str| {
        let path = format!("/apis/demo.example.com/v1/namespaces/default/{resource}/beta");
        body(&get(&served, &path))["metadata"]["uid"].clone()
    };
    assert_ne!(uid("widgets"), uid("gadgets"));

    let missing = body(&get(
        &served,
        "/apis/demo.example.com/v1/namespaces/default/gadgets/zeta",
    ));
    assert_eq!(
        missing["message"],
        "gadgets.demo.example.com \"zeta\" not found"
    );
    assert_eq!(
        missing["details"],
        json!({"group": "demo.example.com", "kind": "gadgets", "name": "zeta"})
    );
}

#[test]
fn status_body_shape() {
    let reply = status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    assert_eq!(reply.code, StatusCode::UNAUTHORIZED);
    let value = body(&reply);
    assert_eq!(value["kind"], "Status");
    assert_eq!(value["apiVersion"], "v1");
    assert_eq!(value["status"], "Failure");
    assert_eq!(value["reason"], "Unauthorized");
    assert_eq!(value["code"], 401);
}

#[test]
fn several_groups_are_each_served_and_listed() {
    let served = Served::parse("a.custom.api,b.custom.api", "v1,v2", "widgets").unwrap();
    let list = get(&served, "/apis");
    let body = String::from_utf8(list.body).unwrap();
    assert!(body.contains(r#""name":"a.custom.api""#), "{body}");
    assert!(body.contains(r#""name":"b.custom.api""#), "{body}");
    for group in ["a.custom.api", "b.custom.api"] {
        let resources = get(&served, &format!("/apis/{group}/v2"));
        assert_eq!(resources.code, 200);
        let body = String::from_utf8(resources.body).unwrap();
        assert!(
            body.contains(&format!(r#""groupVersion":"{group}/v2""#)),
            "{body}"
        );
        let object = get(
            &served,
            &format!("/apis/{group}/v1/namespaces/default/widgets/alpha"),
        );
        let body = String::from_utf8(object.body).unwrap();
        assert!(
            body.contains(&format!(r#""apiVersion":"{group}/v1""#)),
            "{body}"
        );
    }
    assert_eq!(get(&served, "/apis/c.custom.api/v1").code, 404);
}
