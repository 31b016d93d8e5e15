//! Who may read `/metrics`: the bearer token is authenticated with a TokenReview and the user
//! authorized with a SubjectAccessReview for `get` on the non-resource URL `/metrics`, as
//! controller-runtime's secure metrics and kube-rbac-proxy do. Decisions are cached briefly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

/// How long an allowed token is reused.
const CACHE_ALLOWED: Duration = Duration::from_secs(60);
/// How long a refused one is (a new RoleBinding shows soon).
const CACHE_REFUSED: Duration = Duration::from_secs(5);
/// Most tokens remembered; the cache is emptied when full.
const CACHE_SIZE: usize = 1024;
/// Most reviews in flight: a flood of new tokens queues here, while a token already
/// judged is answered from the cache at once.
const CONCURRENT_REVIEWS: usize = 4;

/// The answer to one request for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token, or the API server does not accept it: 401.
    Unauthenticated,
    /// Authenticated, but not allowed to get `/metrics`: 403.
    Forbidden,
    Allowed,
}

/// Reviews tokens against the API server.
pub struct Reviews {
    client: kube::Client,
    cache: Mutex<HashMap<[u8; 32], (Access, Instant)>>,
    reviewing: tokio::sync::Semaphore,
}

impl Reviews {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: Mutex::default(),
            reviewing: tokio::sync::Semaphore::new(CONCURRENT_REVIEWS),
        }
    }

    /// The verdict for the `Authorization` header's value, if any.
    pub async fn judge(&self, authorization: Option<&str>, path: &str) -> Access {
        let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
            return Access::Unauthenticated;
        };
        let key: [u8; 32] = Sha256::digest(format!("{path}\n{token}")).into();
        if let Some(verdict) = self.cached(&key) {
            return verdict;
        }
        let Ok(_turn) = self.reviewing.acquire().await else {
            return Access::Unauthenticated;
        };
        // Judged while this request waited for its turn.
        if let Some(verdict) = self.cached(&key) {
            return verdict;
        }
        let verdict = match self.review(token.trim(), path).await {
            Ok(verdict) => verdict,
            Err(error) => {
                // Not cached: the next scrape asks again.
                tracing::warn!(%error, "reviewing a /metrics token failed");
                return Access::Unauthenticated;
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_SIZE {
                cache.clear();
            }
            cache.insert(key, (verdict, Instant::now()));
        }
        verdict
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Access> {
        let cache = self.cache.lock().ok()?;
        let (verdict, at) = cache.get(key)?;
        let keep = match verdict {
            Access::Allowed => CACHE_ALLOWED,
            _ => CACHE_REFUSED,
        };
        (at.elapsed() < keep).then_some(*verdict)
    }

    async fn review(&self, token: &str, path: &str) -> Result<Access, kube::Error> {
        let tokens: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let status = tokens
            .create(&PostParams::default(), &review)
            .await?
            .status
            .unwrap_or_default();
        let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
            return Ok(Access::Unauthenticated);
        };
        let access: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_string()),
                    verb: Some("get".into()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = access
            .create(&PostParams::default(), &review)
            .await?
            .status
            .is_some_and(|s| s.allowed);
        Ok(if allowed {
            Access::Allowed
        } else {
            Access::Forbidden
        })
    }
}
