//! `preheat plugin new`: scaffolds a plugin project, in Rust, Python or
//! JavaScript, that builds and passes `preheat plugin test` as generated.
//!
//! The templates live in `host/templates/plugin-new/` and are embedded in the
//! binary, together with the WIT interface this binary implements (Python and
//! JavaScript projects get their own copy in `wit/`), so a scaffold always
//! matches the host that made it.
//!
//! A Rust project depends on the guest SDK, `preheat-guest`. When a preheat
//! checkout is found (around the new project, around the current directory,
//! or where this binary was built) the dependency is a path to its
//! `guest-sdk/`, relative when the project sits inside the checkout; otherwise
//! it is the registry dependency `preheat-guest = "0.1"`. The project carries
//! its own `[workspace]` table, so it builds wherever it is created.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `preheat plugin new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase ASCII letters, digits and `-`, starting with
    /// a letter (e.g. `user-profiles`). Names the project directory, the
    /// package, the `.wasm` file (with `_` for `-`) and the key prefix.
    name: String,
    /// The language of the plugin.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// The directory to create the project in: the project goes to PATH/NAME.
    #[arg(long, value_name = "PATH", default_value = ".")]
    dir: PathBuf,
}

/// The languages `plugin new` scaffolds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Lang {
    /// A cargo project depending on preheat-guest, built for wasm32-wasip2.
    Rust,
    /// A Python module built with componentize-py.
    Python,
    /// A JavaScript module built with componentize-js.
    Js,
}

/// componentize-py version a Python scaffold installs (the same as scripts/build-guests.sh).
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// componentize-js version a JavaScript scaffold installs (the same as plugins/js-critical-keys).
const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
/// jco version a JavaScript scaffold installs (the same as plugins/js-critical-keys).
const JCO_VERSION: &str = "1.35.0";
/// preview2-shim version a JavaScript scaffold installs: componentize-js imports it
/// at build time without declaring it (the same as plugins/js-critical-keys).
const PREVIEW2_SHIM_VERSION: &str = "0.25.0";

/// The plugin interface this binary implements.
const WIT: &str = include_str!("../../../wit/0.2/preheat.wit");

mod template {
    pub const README: &str = include_str!("../../templates/plugin-new/common/README.md");
    pub const CONFIG: &str = include_str!("../../templates/plugin-new/common/preheat.toml");
    pub const RUST_CARGO_TOML: &str = include_str!("../../templates/plugin-new/rust/Cargo.toml.tmpl");
    pub const RUST_LIB: &str = include_str!("../../templates/plugin-new/rust/src/lib.rs");
    pub const RUST_GITIGNORE: &str = include_str!("../../templates/plugin-new/rust/gitignore");
    pub const PYTHON_APP: &str = include_str!("../../templates/plugin-new/python/app.py");
    pub const PYTHON_BUILD: &str = include_str!("../../templates/plugin-new/python/build.sh");
    pub const PYTHON_GITIGNORE: &str = include_str!("../../templates/plugin-new/python/gitignore");
    pub const JS_PLUGIN: &str = include_str!("../../templates/plugin-new/js/plugin.js");
    pub const JS_PACKAGE: &str = include_str!("../../templates/plugin-new/js/package.json");
    pub const JS_BUILD: &str = include_str!("../../templates/plugin-new/js/build.sh");
    pub const JS_GITIGNORE: &str = include_str!("../../templates/plugin-new/js/gitignore");
}

/// One file of a scaffold.
struct File {
    path: &'static str,
    text: String,
    executable: bool,
}

/// Where the Rust scaffold's `preheat-guest` comes from.
#[derive(Debug, PartialEq)]
enum GuestSdk {
    /// A path dependency on a checkout's guest-sdk/ (relative or absolute, as written).
    Path(PathBuf),
    /// The registry dependency.
    Registry,
}

/// Creates the project and prints what to do next.
pub fn run(args: NewArgs) -> Result<ExitCode> {
    check_name(&args.name)?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let parent = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let project = parent.join(&args.name);
    if std::fs::read_dir(&project).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(
            "{} already exists and is not empty: choose another NAME or --dir",
            project.display()
        );
    }
    let sdk = match args.lang {
        Lang::Rust => Some(find_guest_sdk(&project)),
        Lang::Python | Lang::Js => None,
    };
    let files = scaffold(&args.name, args.lang, sdk.as_ref().unwrap_or(&GuestSdk::Registry));
    write_files(&project, &files)?;

    let snake = snake(&args.name);
    let (language, build, wasm) = describe(args.lang, &snake);
    println!(
        "Created a {language} preheat plugin `{}` in {}",
        args.name,
        project.display()
    );
    match &sdk {
        Some(GuestSdk::Path(path)) => println!("  preheat-guest: path dependency on {}", path.display()),
        Some(GuestSdk::Registry) => println!(
            "  preheat-guest: registry dependency \"0.1\" (no preheat checkout found; to build against one, \
             set `preheat-guest = {{ path = \"<checkout>/guest-sdk\" }}` in Cargo.toml)"
        ),
        None => {}
    }
    println!("\nNext:\n  cd {}", project.display());
    if args.lang == Lang::Rust {
        println!("  rustup target add wasm32-wasip2   # once");
    }
    println!("  {build}\n  preheat plugin test {wasm}\n  preheat watch --config preheat.toml");
    Ok(ExitCode::SUCCESS)
}

/// Refuses names that cannot be a package, a directory and a key prefix at once.
fn check_name(name: &str) -> Result<()> {
    let fix = "use lowercase ASCII letters, digits and `-`, starting with a letter, e.g. `user-profiles`";
    let mut chars = name.chars();
    match chars.next() {
        None => bail!("the plugin name is empty: {fix}"),
        Some(c) if !c.is_ascii_lowercase() => {
            bail!("invalid plugin name {name:?}: it must start with a lowercase letter; {fix}")
        }
        Some(_) => {}
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        bail!("invalid plugin name {name:?}: {bad:?} is not allowed; {fix}");
    }
    if name.ends_with('-') {
        bail!("invalid plugin name {name:?}: it must not end with `-`; {fix}");
    }
    if name.len() > 64 {
        bail!("invalid plugin name {name:?}: longer than 64 characters");
    }
    if ["test", "core", "std", "alloc", "proc-macro"].contains(&name) {
        bail!("invalid plugin name {name:?}: it clashes with a Rust built-in crate; choose another name");
    }
    Ok(())
}

/// `user-profiles` → `user_profiles`: the crate, module and `.wasm` file name.
fn snake(name: &str) -> String {
    name.replace('-', "_")
}

/// (language, build command, path of the built component) for the messages.
fn describe(lang: Lang, snake: &str) -> (&'static str, &'static str, String) {
    match lang {
        Lang::Rust => (
            "Rust",
            "cargo build --release --target wasm32-wasip2",
            format!("target/wasm32-wasip2/release/{snake}.wasm"),
        ),
        Lang::Python => ("Python", "./build.sh", format!("target/{snake}.wasm")),
        Lang::Js => ("JavaScript", "./build.sh", format!("target/{snake}.wasm")),
    }
}

/// The files of a project, with every placeholder filled in.
fn scaffold(name: &str, lang: Lang, sdk: &GuestSdk) -> Vec<File> {
    let snake = snake(name);
    let (language, build, wasm) = describe(lang, &snake);
    let source = match lang {
        Lang::Rust => "`src/lib.rs`",
        Lang::Python => "`app.py`",
        Lang::Js => "`plugin.js`",
    };
    let fill = |text: &str| {
        text.replace("__NAME__", name)
            .replace("__SNAKE__", &snake)
            .replace("__WASM_PATH__", &wasm)
            .replace("__LANGUAGE__", language)
            .replace("__BUILD__", build)
            .replace("__SOURCE__", source)
            .replace("__COMPONENTIZE_PY_VERSION__", COMPONENTIZE_PY_VERSION)
            .replace("__COMPONENTIZE_JS_VERSION__", COMPONENTIZE_JS_VERSION)
            .replace("__JCO_VERSION__", JCO_VERSION)
            .replace("__PREVIEW2_SHIM_VERSION__", PREVIEW2_SHIM_VERSION)
    };
    let file = |path, text: &str| File {
        path,
        text: fill(text),
        executable: false,
    };
    let mut files = vec![
        file("README.md", template::README),
        file("preheat.toml", template::CONFIG),
    ];
    match lang {
        Lang::Rust => {
            let dependency = match sdk {
                GuestSdk::Path(path) => format!(
                    "preheat-guest = {{ path = {} }}",
                    toml::Value::String(path.to_string_lossy().into_owned())
                ),
                GuestSdk::Registry => "preheat-guest = \"0.1\"".to_string(),
            };
            let cargo_toml = template::RUST_CARGO_TOML.replace("__GUEST_SDK_DEPENDENCY__", &dependency);
            files.push(file("Cargo.toml", &cargo_toml));
            files.push(file("src/lib.rs", template::RUST_LIB));
            files.push(file(".gitignore", template::RUST_GITIGNORE));
        }
        Lang::Python => {
            files.push(file("app.py", template::PYTHON_APP));
            files.push(File {
                executable: true,
                ..file("build.sh", template::PYTHON_BUILD)
            });
            files.push(file("wit/preheat.wit", WIT));
            files.push(file(".gitignore", template::PYTHON_GITIGNORE));
        }
        Lang::Js => {
            files.push(file("plugin.js", template::JS_PLUGIN));
            files.push(file("package.json", template::JS_PACKAGE));
            files.push(File {
                executable: true,
                ..file("build.sh", template::JS_BUILD)
            });
            files.push(file("wit/preheat.wit", WIT));
            files.push(file(".gitignore", template::JS_GITIGNORE));
        }
    }
    files
}

fn write_files(project: &Path, files: &[File]) -> Result<()> {
    for f in files {
        let path = project.join(f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, &f.text).with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", path.display()))?;
        }
    }
    Ok(())
}

/// The checkout root holding `guest-sdk/` (the `preheat-guest` crate) at or above `start`.
fn checkout_above(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("guest-sdk/Cargo.toml")).ok()?;
        manifest
            .lines()
            .any(|l| l.replace(' ', "") == "name=\"preheat-guest\"")
            .then(|| dir.to_path_buf())
    })
}

/// Where `preheat-guest` comes from for a project at `project` (absolute):
/// the checkout around the project, around the current directory, or the one
/// this binary was built from; else the registry.
fn find_guest_sdk(project: &Path) -> GuestSdk {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf);
    let cwd = std::env::current_dir().ok();
    let checkout = checkout_above(project)
        .or_else(|| cwd.as_deref().and_then(checkout_above))
        .or_else(|| built_from.as_deref().and_then(checkout_above));
    match checkout.and_then(|c| c.canonicalize().ok()) {
        Some(root) if project.starts_with(&root) => GuestSdk::Path(relative_path(project, &root.join("guest-sdk"))),
        Some(root) => GuestSdk::Path(root.join("guest-sdk")),
        None => GuestSdk::Registry,
    }
}

/// The path from directory `from` to `to`, both absolute and normalised.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for c in &to[common..] {
        path.push(c);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_with_the_fix() {
        for ok in ["demo", "user-profiles", "a1", "x-2-y"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "Demo", "1abc", "-x", "x-", "a_b", "a.b", "a b", "test"] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")) || bad.is_empty(), "{err}");
        }
        assert!(check_name("a_b").unwrap_err().to_string().contains("'_'"));
    }

    /// `__UPPER_CASE__` markers left in a text (Python's `__pycache__` is not one).
    fn placeholders(text: &str) -> Vec<String> {
        text.match_indices("__")
            .filter_map(|(i, _)| {
                let name: String = text[i + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                (name.len() > 2 && name.ends_with("__")).then(|| format!("__{name}"))
            })
            .collect()
    }

    #[test]
    fn every_placeholder_is_filled_in_every_language() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for sdk in [GuestSdk::Registry, GuestSdk::Path("../guest-sdk".into())] {
                for f in scaffold("demo-plugin", lang, &sdk) {
                    assert_eq!(placeholders(&f.text), Vec::<String>::new(), "{lang:?} {}", f.path);
                }
            }
        }
        assert_eq!(placeholders("x __NAME__ y __pycache__ __init__"), ["__NAME__"]);
        let files = scaffold("demo-plugin", Lang::Python, &GuestSdk::Registry);
        let build = files.iter().find(|f| f.path == "build.sh").unwrap();
        assert!(build.executable);
        assert!(build.text.contains("target/demo_plugin.wasm"));
        let wit = files.iter().find(|f| f.path == "wit/preheat.wit").unwrap();
        assert_eq!(wit.text, WIT);
    }

    #[test]
    fn rust_projects_are_their_own_workspace_with_the_sdk_dependency() {
        let files = scaffold("demo-plugin", Lang::Rust, &GuestSdk::Path("../../guest-sdk".into()));
        let cargo = &files.iter().find(|f| f.path == "Cargo.toml").unwrap().text;
        let manifest: toml::Table = cargo.parse().unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("demo-plugin"));
        assert_eq!(
            manifest["dependencies"]["preheat-guest"]["path"].as_str(),
            Some("../../guest-sdk")
        );
        assert!(manifest.contains_key("workspace"));
        let files = scaffold("demo-plugin", Lang::Rust, &GuestSdk::Registry);
        let cargo = &files.iter().find(|f| f.path == "Cargo.toml").unwrap().text;
        let manifest: toml::Table = cargo.parse().unwrap();
        assert_eq!(manifest["dependencies"]["preheat-guest"].as_str(), Some("0.1"));
        let config = &files.iter().find(|f| f.path == "preheat.toml").unwrap().text;
        assert!(config.contains("target/wasm32-wasip2/release/demo_plugin.wasm"));
        assert!(config.contains("key_prefixes = [\"demo-plugin:\"]"));
    }

    #[test]
    fn relative_paths_climb_then_descend() {
        assert_eq!(
            relative_path(Path::new("/r/plugins/demo"), Path::new("/r/guest-sdk")),
            PathBuf::from("../../guest-sdk")
        );
        assert_eq!(
            relative_path(Path::new("/r"), Path::new("/r/guest-sdk")),
            PathBuf::from("guest-sdk")
        );
    }

    #[test]
    fn the_guest_sdk_is_found_around_the_project() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("guest-sdk")).unwrap();
        std::fs::write(
            root.join("guest-sdk/Cargo.toml"),
            "[package]\nname = \"preheat-guest\"\n",
        )
        .unwrap();
        assert_eq!(checkout_above(&root.join("plugins/demo")), Some(root.clone()));
        assert_eq!(
            find_guest_sdk(&root.join("plugins/demo")),
            GuestSdk::Path("../../guest-sdk".into())
        );
        // Outside any checkout: the checkout around the current directory (the
        // tests run in host/), as an absolute path.
        let elsewhere = tempfile::tempdir().unwrap();
        let found = find_guest_sdk(&elsewhere.path().canonicalize().unwrap().join("demo"));
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .canonicalize()
            .unwrap();
        assert_eq!(found, GuestSdk::Path(repo.join("guest-sdk")));
    }

    #[test]
    fn an_existing_project_is_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("demo")).unwrap();
        std::fs::write(tmp.path().join("demo/keep.txt"), "mine").unwrap();
        let err = run(NewArgs {
            name: "demo".into(),
            lang: Lang::Python,
            dir: tmp.path().to_path_buf(),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("not empty"), "{err}");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("demo/keep.txt")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn tool_versions_match_the_example_guests() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let script = std::fs::read_to_string(repo.join("scripts/build-guests.sh")).unwrap();
        assert!(script.contains(&format!("COMPONENTIZE_PY_VERSION={COMPONENTIZE_PY_VERSION}\n")));
        let package = std::fs::read_to_string(repo.join("plugins/js-critical-keys/package.json")).unwrap();
        let package: serde_json::Value = serde_json::from_str(&package).unwrap();
        let dev = &package["devDependencies"];
        assert_eq!(dev["@bytecodealliance/componentize-js"], COMPONENTIZE_JS_VERSION);
        assert_eq!(dev["@bytecodealliance/jco"], JCO_VERSION);
        assert_eq!(dev["@bytecodealliance/preview2-shim"], PREVIEW2_SHIM_VERSION);
    }
}
