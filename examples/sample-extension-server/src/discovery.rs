//! Discovery documents: the served groups, their versions and each version's resources.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, GroupVersionForDiscovery,
};

use crate::served::Served;

/// `/apis`: every served group.
pub fn group_list(served: &Served) -> APIGroupList {
    APIGroupList {
        groups: served
            .groups()
            .iter()
            .map(|group| api_group(served, group))
            .collect(),
    }
}

/// `/apis/<group>`: every version, the first one preferred.
pub fn api_group(served: &Served, group: &str) -> APIGroup {
    let versions: Vec<GroupVersionForDiscovery> = served
        .versions()
        .iter()
        .map(|version| GroupVersionForDiscovery {
            group_version: Served::group_version(group, version),
            version: version.clone(),
        })
        .collect();
    APIGroup {
        name: group.to_string(),
        preferred_version: versions.first().cloned(),
        versions,
        server_address_by_client_cidrs: None,
    }
}

/// `/apis/<group>/<version>`: every resource (all are namespaced, get and list only).
pub fn resource_list(served: &Served, group: &str, version: &str) -> APIResourceList {
    let resources = served
        .resources()
        .iter()
        .map(|resource| APIResource {
            name: resource.plural.clone(),
            singular_name: resource.singular(),
            namespaced: true,
            kind: resource.kind.clone(),
            verbs: vec!["get".to_string(), "list".to_string()],
            ..APIResource::default()
        })
        .collect();
    APIResourceList {
        group_version: Served::group_version(group, version),
        resources,
    }
}
