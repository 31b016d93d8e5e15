//! ValidatingAdmissionPolicies a test installs, removed however the test ends.

use testenv::TestNamespace;

/// A policy and its binding, both named `name`; deleted on drop.
pub struct Installed<'a> {
    pub ns: &'a TestNamespace,
    pub name: String,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let _ = self
                .ns
                .kubectl(&["delete", kind, &self.name, "--ignore-not-found"]);
        }
    }
}
