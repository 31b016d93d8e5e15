//! Discovery documents: the served group, its versions and each version's resources.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, GroupVersionForDiscovery,
};

use crate::served::Served;

/// `/apis`: just the served group.
pub fn group_list(served: &Served) -> APIGroupList {
    APIGroupList {
        groups: vec![api_group(served)],
    }
}

/// `/apis/<group>`: every version, the first one preferred.
pub fn api_group(served: &Served) -> APIGroup {
    let versions: Vec<GroupVersionForDiscovery> = served
        .versions()
        .iter()
        .map(|version| GroupVersionForDiscovery {
            group_version: served.group_version(version),
            version: version.clone(),
        })
        .collect();
    APIGroup {
        name: served.group().to_string(),
        preferred_version: versions.first().cloned(),
        versions,
        server_address_by_client_cidrs: None,
    }
}

/// `/apis/<group>/<version>`: every resource (all are namespaced, get and list only).
pub fn resource_list(served: &Served, version: &str) -> APIResourceList {
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
        group_version: served.group_version(version),
        resources,
    }
}
