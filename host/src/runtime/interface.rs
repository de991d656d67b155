//! The plugin interface versions this host serves, and which one a component
//! was built against. The versions are written here once; a test holds them
//! to the packages in `wit/`.

use anyhow::{bail, Result};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The newest plugin interface version (`preheat:plugin@…`): what new plugins,
/// the SDK and `plugin new` build against.
pub const INTERFACE_VERSION: &str = "0.2.0";

/// The frozen version still served beside [`INTERFACE_VERSION`].
pub const LEGACY_INTERFACE_VERSION: &str = "0.1.0";

/// Which interface a component speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// `preheat:plugin@0.1.x`: string errors, one value list per key, no shard.
    V0_1,
    /// `preheat:plugin@0.2.x`: typed host errors, packed batches, the shard.
    V0_2,
}

impl Interface {
    /// Every version served, newest first.
    pub const ALL: [Interface; 2] = [Interface::V0_2, Interface::V0_1];

    /// The version this host implements for it (`0.2.0`).
    pub fn version(self) -> &'static str {
        match self {
            Interface::V0_1 => LEGACY_INTERFACE_VERSION,
            Interface::V0_2 => INTERFACE_VERSION,
        }
    }

    /// The interface whose versions are compatible with `version` (same major,
    /// and same minor while major is 0: `0.2.5` is 0.2).
    pub fn of_version(version: &str) -> Option<Interface> {
        Interface::ALL.into_iter().find(|i| compatible(version, i.version()))
    }
}

/// The version in an interface name such as `preheat:plugin/warmer@0.1.0`.
pub(crate) fn version_of(name: &str) -> Option<&str> {
    name.split_once('@').map(|(_, v)| v)
}

/// Whether two interface versions are compatible (same major, and same minor while major is 0).
fn compatible(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<String> { v.split('.').map(str::to_string).collect() };
    let (a, b) = (parts(a), parts(b));
    match (a.first().map(String::as_str), b.first().map(String::as_str)) {
        (Some("0"), Some("0")) => a.get(1) == b.get(1),
        (x, y) => x == y,
    }
}

/// The interface a component exports `preheat:plugin/warmer` for; refuses a
/// component that exports none, or a version this host does not serve.
pub(crate) fn interface_of(component: &Component, engine: &Engine) -> Result<Interface> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let warmer = exports.iter().find(|n| n.starts_with("preheat:plugin/warmer"));
    let Some(warmer) = warmer else {
        bail!(
            "does not export the preheat:plugin/warmer interface (it exports {exports:?}); is it a preheat plugin built with preheat-guest?"
        );
    };
    let found = version_of(warmer).unwrap_or("unversioned");
    match Interface::of_version(found) {
        Some(interface) => Ok(interface),
        None => bail!(
            "was built against plugin interface preheat:plugin@{found}, but this host implements preheat:plugin@{INTERFACE_VERSION} (and {LEGACY_INTERFACE_VERSION}); rebuild the plugin against preheat-guest for interface {INTERFACE_VERSION} (or use a preheat release that supports {found})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_semver_for_zero_majors() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(compatible("1.2.0", "1.0.0"));
        assert!(!compatible("2.0.0", "1.0.0"));
        assert_eq!(version_of("preheat:plugin/warmer@0.2.0"), Some("0.2.0"));
        assert_eq!(Interface::of_version("0.2.7"), Some(Interface::V0_2));
        assert_eq!(Interface::of_version("0.1.0"), Some(Interface::V0_1));
        assert_eq!(Interface::of_version("0.3.0"), None);
    }

    /// Every `wit/<minor>/preheat.wit` declares one of the served versions,
    /// in the folder named after it, and every served version has its folder.
    #[test]
    fn the_served_versions_are_the_packages_in_wit() {
        let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut found = Vec::new();
        for dir in std::fs::read_dir(&wit).unwrap() {
            let dir = dir.unwrap().path();
            let text = std::fs::read_to_string(dir.join("preheat.wit")).unwrap();
            let package = text
                .lines()
                .find_map(|l| l.strip_prefix("package preheat:plugin@"))
                .unwrap_or_else(|| panic!("{} declares no preheat:plugin package", dir.display()));
            let version = package.trim_end_matches(';').to_string();
            let folder = dir.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                version.starts_with(&format!("{folder}.")),
                "wit/{folder} holds version {version}"
            );
            found.push(version);
        }
        found.sort();
        let mut served: Vec<String> = Interface::ALL.iter().map(|i| i.version().to_string()).collect();
        served.sort();
        assert_eq!(found, served);
    }
}
