//! Authorization by delegation: we ask kube-apiserver whether the user may do
//! this, with a SubjectAccessReview (needs the `system:auth-delegator`
//! ClusterRole). Decisions are cached briefly to keep the load light.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use crate::api::Route;
use crate::auth::User;

const CACHE_TTL: Duration = Duration::from_secs(10);

/// What a request does, in the terms of Kubernetes authorization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attributes {
    /// get/list on a served resource, in the group and version requested.
    Resource {
        verb: &'static str,
        group: String,
        version: String,
        resource: String,
        namespace: Option<String>,
        name: Option<String>,
    },
    /// `get` on a URL path (discovery, unknown paths).
    NonResource { path: String },
}

impl Attributes {
    pub fn for_route(route: &Route, path: &str) -> Self {
        match route {
            Route::List {
                group,
                version,
                resource,
                namespace,
            } => Attributes::Resource {
                verb: "list",
                group: group.clone(),
                version: version.clone(),
                resource: resource.clone(),
                namespace: namespace.clone(),
                name: None,
            },
            Route::Get {
                group,
                version,
                resource,
                namespace,
                name,
            } => Attributes::Resource {
                verb: "get",
                group: group.clone(),
                version: version.clone(),
                resource: resource.clone(),
                namespace: Some(namespace.clone()),
                name: Some(name.clone()),
            },
            _ => Attributes::NonResource {
                path: path.to_string(),
            },
        }
    }
}

/// The SubjectAccessReview that asks "may `user` do `attrs`?".
pub fn review(user: &User, attrs: &Attributes) -> SubjectAccessReview {
    let (resource_attributes, non_resource_attributes) = match attrs {
        Attributes::Resource {
            verb,
            group,
            version,
            resource,
            namespace,
            name,
        } => {
            let ra = ResourceAttributes {
                group: Some(group.clone()),
                version: Some(version.clone()),
                resource: Some(resource.clone()),
                verb: Some(verb.to_string()),
                namespace: namespace.clone(),
                name: name.clone(),
                ..ResourceAttributes::default()
            };
            (Some(ra), None)
        }
        Attributes::NonResource { path } => {
            let nra = NonResourceAttributes {
                path: Some(path.clone()),
                verb: Some("get".to_string()),
            };
            (None, Some(nra))
        }
    };
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            groups: Some(user.groups.clone()),
            resource_attributes,
            non_resource_attributes,
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// The message kube-apiserver would give for a denied request.
pub fn forbidden_message(user: &User, attrs: &Attributes, reason: &str) -> String {
    let mut message = match attrs {
        Attributes::Resource {
            verb,
            group,
            resource,
            namespace,
            name,
            ..
        } => {
            let object = match name {
                Some(name) => format!("{resource}.{group} \"{name}\""),
                None => format!("{resource}.{group}"),
            };
            let scope = match namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".to_string(),
            };
            format!(
                "{object} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}",
                user.name
            )
        }
        Attributes::NonResource { path } => {
            format!(
                "forbidden: User \"{}\" cannot get path \"{path}\"",
                user.name
            )
        }
    };
    if !reason.is_empty() {
        message.push_str(": ");
        message.push_str(reason);
    }
    message
}

/// An allow/deny answer, with the authorizer's reason (may be empty).
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

type CacheKey = (String, Vec<String>, Attributes);

pub struct Authorizer {
    client: kube::Client,
    cache: Mutex<HashMap<CacheKey, (Decision, Instant)>>,
}

impl Authorizer {
    pub fn new(client: kube::Client) -> Self {
        Authorizer {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn authorize(&self, user: &User, attrs: &Attributes) -> Result<Decision> {
        let key = (user.name.clone(), user.groups.clone(), attrs.clone());
        if let Some(decision) = self.cached(&key) {
            return Ok(decision);
        }
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review(user, attrs))
            .await?;
        let status = answer.status.unwrap_or_default();
        let decision = Decision {
            allowed: status.allowed,
            reason: status.reason.unwrap_or_default(),
        };
        self.remember(key, decision.clone());
        Ok(decision)
    }

    fn cached(&self, key: &CacheKey) -> Option<Decision> {
        let cache = self.cache.lock().ok()?;
        let (decision, at) = cache.get(key)?;
        (at.elapsed() < CACHE_TTL).then(|| decision.clone())
    }

    fn remember(&self, key: CacheKey, decision: Decision) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            cache.insert(key, (decision, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::route;
    use crate::served::{DEFAULT_GROUP, DEFAULT_RESOURCES, DEFAULT_VERSIONS, Served};

    fn alice() -> User {
        User {
            name: "alice".into(),
            groups: vec!["devs".into()],
        }
    }

    fn attributes(served: &Served, path: &str) -> Attributes {
        Attributes::for_route(&route(served, path), path)
    }

    fn resource(verb: &'static str, namespace: Option<&str>) -> Attributes {
        Attributes::Resource {
            verb,
            group: "my.custom.api".into(),
            version: "v1".into(),
            resource: "myresources".into(),
            namespace: namespace.map(String::from),
            name: None,
        }
    }

    #[test]
    fn attributes_follow_the_route() {
        let served = Served::parse(DEFAULT_GROUP, DEFAULT_VERSIONS, DEFAULT_RESOURCES).unwrap();
        let path = "/apis/my.custom.api/v1/namespaces/default/myresources/alpha";
        let sar = review(&alice(), &attributes(&served, path));
        let ra = sar.spec.resource_attributes.unwrap();
        assert_eq!(ra.verb.as_deref(), Some("get"));
        assert_eq!(ra.group.as_deref(), Some("my.custom.api"));
        assert_eq!(ra.version.as_deref(), Some("v1"));
        assert_eq!(ra.resource.as_deref(), Some("myresources"));
        assert_eq!(ra.namespace.as_deref(), Some("default"));
        assert_eq!(ra.name.as_deref(), Some("alpha"));
        assert_eq!(sar.spec.user.as_deref(), Some("alice"));
        assert_eq!(sar.spec.groups, Some(vec!["devs".to_string()]));

        let nra = review(&alice(), &attributes(&served, "/apis"))
            .spec
            .non_resource_attributes
            .unwrap();
        assert_eq!(nra.path.as_deref(), Some("/apis"));
        assert_eq!(nra.verb.as_deref(), Some("get"));
    }

    #[test]
    fn reviews_the_requested_group_version_and_resource() {
        let served =
            Served::parse("demo.example.com", "v2beta1,v1", "widgets,gadgets:Gizmo").unwrap();
        for (path, version, resource) in [
            ("/apis/demo.example.com/v1/gadgets", "v1", "gadgets"),
            (
                "/apis/demo.example.com/v2beta1/namespaces/ns/widgets",
                "v2beta1",
                "widgets",
            ),
        ] {
            let ra = review(&alice(), &attributes(&served, path))
                .spec
                .resource_attributes
                .unwrap();
            assert_eq!(ra.verb.as_deref(), Some("list"), "{path}");
            assert_eq!(ra.group.as_deref(), Some("demo.example.com"), "{path}");
            assert_eq!(ra.version.as_deref(), Some(version), "{path}");
            assert_eq!(ra.resource.as_deref(), Some(resource), "{path}");
        }
        // An unknown version is a path, not a resource.
        let path = "/apis/demo.example.com/v3/widgets";
        let sar = review(&alice(), &attributes(&served, path));
        assert!(sar.spec.resource_attributes.is_none());
        assert_eq!(
            sar.spec.non_resource_attributes.unwrap().path.as_deref(),
            Some(path)
        );

        let path = "/apis/demo.example.com/v1/namespaces/ns/gadgets/beta";
        assert_eq!(
            forbidden_message(&alice(), &attributes(&served, path), ""),
            "gadgets.demo.example.com \"beta\" is forbidden: User \"alice\" cannot get resource \"gadgets\" in API group \"demo.example.com\" in the namespace \"ns\""
        );
    }

    #[test]
    fn forbidden_messages() {
        assert_eq!(
            forbidden_message(&alice(), &resource("list", Some("default")), ""),
            "myresources.my.custom.api is forbidden: User \"alice\" cannot list resource \"myresources\" in API group \"my.custom.api\" in the namespace \"default\""
        );
        assert!(
            forbidden_message(&alice(), &resource("list", None), "")
                .ends_with("at the cluster scope")
        );
        let path = Attributes::NonResource {
            path: "/apis".into(),
        };
        assert_eq!(
            forbidden_message(&alice(), &path, "no RBAC"),
            "forbidden: User \"alice\" cannot get path \"/apis\": no RBAC"
        );
    }
}
