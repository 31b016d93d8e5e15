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

use crate::api::{GROUP, RESOURCE, Route, VERSION};
use crate::auth::User;

const CACHE_TTL: Duration = Duration::from_secs(10);

/// What a request does, in the terms of Kubernetes authorization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attributes {
    /// get/list on `myresources.my.custom.api`.
    Resource {
        verb: &'static str,
        namespace: Option<String>,
        name: Option<String>,
    },
    /// `get` on a URL path (discovery, unknown paths).
    NonResource { path: String },
}

impl Attributes {
    pub fn for_route(route: &Route, path: &str) -> Self {
        match route {
            Route::List { namespace } => Attributes::Resource {
                verb: "list",
                namespace: namespace.clone(),
                name: None,
            },
            Route::Get { namespace, name } => Attributes::Resource {
                verb: "get",
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
            namespace,
            name,
        } => {
            let ra = ResourceAttributes {
                group: Some(GROUP.to_string()),
                version: Some(VERSION.to_string()),
                resource: Some(RESOURCE.to_string()),
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
            namespace,
            name,
        } => {
            let object = match name {
                Some(name) => format!("{RESOURCE}.{GROUP} \"{name}\""),
                None => format!("{RESOURCE}.{GROUP}"),
            };
            let scope = match namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".to_string(),
            };
            format!(
                "{object} is forbidden: User \"{}\" cannot {verb} resource \"{RESOURCE}\" in API group \"{GROUP}\" {scope}",
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

    fn alice() -> User {
        User {
            name: "alice".into(),
            groups: vec!["devs".into()],
        }
    }

    #[test]
    fn attributes_follow_the_route() {
        let path = "/apis/my.custom.api/v1/namespaces/default/myresources/alpha";
        let attrs = Attributes::for_route(&route(path), path);
        let sar = review(&alice(), &attrs);
        let ra = sar.spec.resource_attributes.unwrap();
        assert_eq!(ra.verb.as_deref(), Some("get"));
        assert_eq!(ra.group.as_deref(), Some("my.custom.api"));
        assert_eq!(ra.resource.as_deref(), Some("myresources"));
        assert_eq!(ra.namespace.as_deref(), Some("default"));
        assert_eq!(ra.name.as_deref(), Some("alpha"));
        assert_eq!(sar.spec.user.as_deref(), Some("alice"));
        assert_eq!(sar.spec.groups, Some(vec!["devs".to_string()]));

        let attrs = Attributes::for_route(&route("/apis"), "/apis");
        let nra = review(&alice(), &attrs)
            .spec
            .non_resource_attributes
            .unwrap();
        assert_eq!(nra.path.as_deref(), Some("/apis"));
        assert_eq!(nra.verb.as_deref(), Some("get"));
    }

    #[test]
    fn forbidden_messages() {
        let list = Attributes::Resource {
            verb: "list",
            namespace: Some("default".into()),
            name: None,
        };
        assert_eq!(
            forbidden_message(&alice(), &list, ""),
            "myresources.my.custom.api is forbidden: User \"alice\" cannot list resource \"myresources\" in API group \"my.custom.api\" in the namespace \"default\""
        );
        let all = Attributes::Resource {
            verb: "list",
            namespace: None,
            name: None,
        };
        assert!(forbidden_message(&alice(), &all, "").ends_with("at the cluster scope"));
        let path = Attributes::NonResource {
            path: "/apis".into(),
        };
        assert_eq!(
            forbidden_message(&alice(), &path, "no RBAC"),
            "forbidden: User \"alice\" cannot get path \"/apis\": no RBAC"
        );
    }
}
