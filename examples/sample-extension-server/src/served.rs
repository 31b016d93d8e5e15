//! What the server serves: its API groups (one, or several as metrics adapters serve), their
//! versions and resources, parsed and checked from `--group`, `--versions` and `--resources`.

use std::fmt;

use anyhow::{Result, bail};

pub const DEFAULT_GROUP: &str = "my.custom.api";
pub const DEFAULT_VERSIONS: &str = "v1";
pub const DEFAULT_RESOURCES: &str = "myresources:MyResource";

/// The API groups, their versions (the first is the preferred one) and resources: every group
/// serves the same versions and resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    groups: Vec<String>,
    versions: Vec<String>,
    resources: Vec<Resource>,
}

/// A namespaced, read-only resource: its plural (the URL segment) and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub plural: String,
    pub kind: String,
}

impl Served {
    /// Parses the flags: comma-separated groups, comma-separated versions and comma-separated
    /// `plural[:Kind]` resources.
    pub fn parse(groups: &str, versions: &str, resources: &str) -> Result<Self> {
        let groups: Vec<String> = groups.split(',').map(|g| g.trim().to_string()).collect();
        for group in &groups {
            if !is_dns_subdomain(group) {
                bail!(
                    "--group {group:?} is not a DNS subdomain (lower-case letters, digits, '-' and '.', like my.custom.api)"
                );
            }
        }
        no_duplicates("--group", groups.iter())?;
        let versions = entries("--versions", versions)?;
        for version in &versions {
            if !is_kube_version(version) {
                bail!("--versions: {version:?} is not a Kubernetes version (like v1, v2beta1)");
            }
        }
        let resources = entries("--resources", resources)?
            .iter()
            .map(|entry| Resource::parse(entry))
            .collect::<Result<Vec<_>>>()?;
        no_duplicates("--versions", versions.iter())?;
        no_duplicates("--resources", resources.iter().map(|r| &r.plural))?;
        no_duplicates("--resources (kinds)", resources.iter().map(|r| &r.kind))?;
        Ok(Served {
            groups,
            versions,
            resources,
        })
    }

    /// The groups in the order given.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    pub fn serves_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The versions in the order given; the first is the preferred one.
    pub fn versions(&self) -> &[String] {
        &self.versions
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    pub fn has_version(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    pub fn resource(&self, plural: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.plural == plural)
    }

    /// `group/version`, as in `apiVersion` and `groupVersion`.
    pub fn group_version(group: &str, version: &str) -> String {
        format!("{group}/{version}")
    }
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resources: Vec<String> = self
            .resources
            .iter()
            .map(|r| format!("{} ({})", r.plural, r.kind))
            .collect();
        write!(
            f,
            "group {}, versions {}, resources {}",
            self.groups.join(", "),
            self.versions.join(", "),
            resources.join(", ")
        )
    }
}

impl Resource {
    /// Parses `plural[:Kind]`; without a kind, it is derived from the plural.
    fn parse(entry: &str) -> Result<Self> {
        let (plural, kind) = match entry.split_once(':') {
            Some((plural, kind)) => (plural, Some(kind)),
            None => (entry, None),
        };
        if !is_dns_label(plural) || !plural.starts_with(|c: char| c.is_ascii_lowercase()) {
            bail!(
                "--resources: {plural:?} is not a resource name (a lower-case letter, then lower-case letters, digits and '-', like widgets)"
            );
        }
        let kind = match kind {
            Some(kind) if is_kind(kind) => kind.to_string(),
            Some(kind) => bail!(
                "--resources: {kind:?} is not a kind (a letter A-Z, then letters and digits, like Widget)"
            ),
            None => match derive_kind(plural) {
                Some(kind) => kind,
                None => bail!(
                    "--resources: cannot derive a kind from {plural:?}; give one, as in {plural}:MyKind"
                ),
            },
        };
        Ok(Resource {
            plural: plural.to_string(),
            kind,
        })
    }

    /// The lower-cased kind.
    pub fn singular(&self) -> String {
        self.kind.to_lowercase()
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// Naively: strip one trailing "s" and upper-case the first letter (`widgets` → `Widget`).
fn derive_kind(plural: &str) -> Option<String> {
    let singular = plural.strip_suffix('s').unwrap_or(plural);
    let mut chars = singular.chars();
    let first = chars.next()?.to_ascii_uppercase();
    let kind = format!("{first}{}", chars.as_str());
    is_kind(&kind).then_some(kind)
}

/// The trimmed, comma-separated entries of a flag; none may be empty.
fn entries(flag: &str, value: &str) -> Result<Vec<String>> {
    let entries: Vec<String> = value.split(',').map(|e| e.trim().to_string()).collect();
    if entries.iter().any(String::is_empty) {
        bail!("{flag} {value:?} has an empty entry");
    }
    Ok(entries)
}

fn no_duplicates<'a>(flag: &str, mut items: impl Iterator<Item = &'a String>) -> Result<()> {
    let mut seen: Vec<&String> = Vec::new();
    items.try_for_each(|item| {
        if seen.contains(&item) {
            bail!("{flag}: {item} is listed twice");
        }
        seen.push(item);
        Ok(())
    })
}

/// Lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63.
fn is_dns_label(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&s.len())
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// Dot-separated DNS labels, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// `v1`, `v2beta1`, `v1alpha3`: numbers without leading zeros.
fn is_kube_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v').and_then(strip_number) else {
        return false;
    };
    rest.is_empty()
        || ["alpha", "beta"]
            .iter()
            .any(|stage| rest.strip_prefix(stage).and_then(strip_number) == Some(""))
}

/// Strips a leading positive number without leading zeros.
fn strip_number(s: &str) -> Option<&str> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at(end);
    (!digits.is_empty() && !digits.starts_with('0')).then_some(rest)
}

/// A letter A-Z, then ASCII letters and digits, at most 63.
fn is_kind(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(group: &str, versions: &str, resources: &str) -> String {
        Served::parse(group, versions, resources)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults() {
        let served = Served::parse(DEFAULT_GROUP, DEFAULT_VERSIONS, DEFAULT_RESOURCES).unwrap();
        assert_eq!(served.groups(), ["my.custom.api"]);
        assert_eq!(served.versions(), ["v1"]);
        let resource = served.resource("myresources").unwrap();
        assert_eq!(resource.kind, "MyResource");
        assert_eq!(resource.singular(), "myresource");
        assert_eq!(resource.list_kind(), "MyResourceList");
        assert_eq!(
            served.to_string(),
            "group my.custom.api, versions v1, resources myresources (MyResource)"
        );
    }

    #[test]
    fn several_versions_and_resources() {
        let served =
            Served::parse("demo.example.com", "v2beta1, v1", "widgets,gadgets:Gizmo").unwrap();
        assert_eq!(served.versions(), ["v2beta1", "v1"]);
        assert!(served.has_version("v1") && !served.has_version("v3"));
        assert_eq!(
            served.resources(),
            [
                Resource {
                    plural: "widgets".into(),
                    kind: "Widget".into()
                },
                Resource {
                    plural: "gadgets".into(),
                    kind: "Gizmo".into()
                },
            ]
        );
        assert_eq!(
            Served::group_version("demo.example.com", "v1"),
            "demo.example.com/v1"
        );
    }

    #[test]
    fn several_groups_share_the_versions_and_resources() {
        let served = Served::parse("a.custom.api, b.custom.api", "v1", "widgets").unwrap();
        assert_eq!(served.groups(), ["a.custom.api", "b.custom.api"]);
        assert!(served.serves_group("b.custom.api") && !served.serves_group("c.custom.api"));
        let twice = Served::parse("a.custom.api,a.custom.api", "v1", "widgets").unwrap_err();
        assert!(twice.to_string().contains("--group"), "{twice}");
    }

    #[test]
    fn derives_kinds() {
        assert_eq!(derive_kind("widgets").as_deref(), Some("Widget"));
        assert_eq!(derive_kind("myresources").as_deref(), Some("Myresource"));
        assert_eq!(derive_kind("sheep").as_deref(), Some("Sheep"));
        assert_eq!(derive_kind("classes").as_deref(), Some("Classe"));
        assert_eq!(derive_kind("s"), None);
        assert_eq!(derive_kind("my-things"), None);
        let served = Served::parse("g.io", "v1", "widgets").unwrap();
        assert_eq!(served.resources()[0].kind, "Widget");
        assert_eq!(served.resources()[0].singular(), "widget");
    }

    #[test]
    fn versions_look_like_kubernetes_versions() {
        for good in ["v1", "v2", "v10", "v1alpha1", "v2beta1", "v1beta12"] {
            assert!(is_kube_version(good), "{good}");
        }
        for bad in [
            "", "v", "1", "V1", "v0", "v01", "v1beta", "v1beta0", "v1gamma1", "v1.2", "v1-beta1",
        ] {
            assert!(!is_kube_version(bad), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(error("", "v1", "widgets").starts_with("--group \"\" is not a DNS subdomain"));
        assert!(error("My.Api", "v1", "widgets").contains("--group \"My.Api\""));
        assert!(error("a..b", "v1", "widgets").contains("--group"));
        assert!(error("-a.b", "v1", "widgets").contains("--group"));
        assert_eq!(
            error("g.io", "", "widgets"),
            "--versions \"\" has an empty entry"
        );
        assert_eq!(
            error("g.io", "v1,,v2", "widgets"),
            "--versions \"v1,,v2\" has an empty entry"
        );
        assert_eq!(
            error("g.io", "v1,version2", "widgets"),
            "--versions: \"version2\" is not a Kubernetes version (like v1, v2beta1)"
        );
        assert_eq!(
            error("g.io", "v1,v1", "widgets"),
            "--versions: v1 is listed twice"
        );
        assert_eq!(
            error("g.io", "v1", ""),
            "--resources \"\" has an empty entry"
        );
        assert!(
            error("g.io", "v1", "Widgets")
                .starts_with("--resources: \"Widgets\" is not a resource name")
        );
        assert!(error("g.io", "v1", "9lives:Cat").contains("\"9lives\" is not a resource name"));
        assert!(
            error("g.io", "v1", "widgets:widget")
                .starts_with("--resources: \"widget\" is not a kind")
        );
        assert!(error("g.io", "v1", "widgets:").contains("\"\" is not a kind"));
        assert_eq!(
            error("g.io", "v1", "my-things"),
            "--resources: cannot derive a kind from \"my-things\"; give one, as in my-things:MyKind"
        );
        assert_eq!(
            error("g.io", "v1", "widgets,widgets:Gadget"),
            "--resources: widgets is listed twice"
        );
        assert_eq!(
            error("g.io", "v1", "widgets,gadgets:Widget"),
            "--resources (kinds): Widget is listed twice"
        );
    }
}
