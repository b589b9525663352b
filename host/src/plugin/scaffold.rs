//! `polypay plugin new NAME [--lang rust|js] [--dir PATH] [--sdk PATH]`: a new plugin from
//! a template embedded in the binary.
//!
//! Templates are real files under `plugin-sdk/templates/<language>/`, embedded at build
//! time (`host/build.rs`); adding a language is adding a directory. Every file is copied
//! with its placeholders replaced ([`Placeholders`]), and a trailing `.tmpl` is dropped
//! from its name (so a template may hold `Cargo.toml.tmpl` or `package.json.tmpl`
//! without tools taking the template directory for a package of its own).
//!
//! Decisions: the plugin depends on the SDK of the polypay checkout that built this
//! binary, by absolute path (`--sdk` names another SDK directory); the SDK carries the
//! WIT, so the JS template reaches the contract through `{{wit_path}}`. The target
//! directory must not exist or be empty, so nothing is ever overwritten. Names are
//! lower-case ASCII letters, digits and `-`, starting with a letter (they become the
//! manifest name, the mount name in `[[plugins]]`, a crate or package name, and a path
//! segment of `/polypay/plugins/{name}`).

use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/plugin_templates.rs"));
}

/// The SDK of the checkout this binary was built from.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-sdk");

/// The contract version new plugins are built against.
const WIT_VERSION: &str = "0.2.0";

/// Why a plugin could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a plugin name: use lower-case letters, digits and `-`, starting with a \
         letter, at most 64 characters"
    )]
    BadName(String),
    #[error("there is no `{language}` template (available: {available})")]
    UnknownLanguage { language: String, available: String },
    #[error("{0} already exists and is not empty: choose another --dir")]
    NotEmpty(PathBuf),
    #[error(
        "no polypay plugin SDK at {0} (its Cargo.toml names no `polypay-plugin-sdk`): pass \
         --sdk with the plugin-sdk directory of a polypay checkout"
    )]
    NoSdk(PathBuf),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The values substituted into a template.
#[derive(Debug, Clone)]
pub struct Placeholders {
    /// `{{name}}`: the plugin name as given (`hello-pay`).
    pub name: String,
    /// `{{crate_name}}`: the name as an identifier (`hello_pay`), also the component's
    /// file name.
    pub crate_name: String,
    /// `{{type_name}}`: the name as a type (`HelloPay`).
    pub type_name: String,
    /// `{{sdk_path}}`: the SDK directory, absolute.
    pub sdk_path: String,
    /// `{{wit_path}}`: the WIT directory of the contract version, absolute.
    pub wit_path: String,
    /// `{{wit_version}}`: that version (`0.2.0`).
    pub wit_version: String,
    /// `{{polypay_version}}`: this binary's version.
    pub polypay_version: String,
}

impl Placeholders {
    fn new(name: &str, sdk: &Path) -> Placeholders {
        let crate_name = name.replace('-', "_");
        let type_name = name
            .split('-')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Placeholders {
            name: name.to_owned(),
            crate_name,
            type_name,
            sdk_path: sdk.display().to_string(),
            wit_path: sdk.join("wit").join(WIT_VERSION).display().to_string(),
            wit_version: WIT_VERSION.to_owned(),
            polypay_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// `text` with every placeholder replaced.
    pub fn apply(&self, text: &str) -> String {
        [
            ("{{name}}", &self.name),
            ("{{crate_name}}", &self.crate_name),
            ("{{type_name}}", &self.type_name),
            ("{{sdk_path}}", &self.sdk_path),
            ("{{wit_path}}", &self.wit_path),
            ("{{wit_version}}", &self.wit_version),
            ("{{polypay_version}}", &self.polypay_version),
        ]
        .iter()
        .fold(text.to_owned(), |text, (from, to)| text.replace(from, to))
    }
}

/// The template languages this binary embeds, sorted.
pub fn languages() -> Vec<&'static str> {
    let mut languages: Vec<&str> = embedded::TEMPLATES.iter().map(|(l, _, _)| *l).collect();
    languages.dedup();
    languages
}

/// The files of `language`'s template rendered for `name`: (relative path, contents).
pub fn render(
    name: &str,
    language: &str,
    sdk: &Path,
) -> Result<Vec<(String, Vec<u8>)>, ScaffoldError> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let files: Vec<_> = embedded::TEMPLATES
        .iter()
        .filter(|(l, _, _)| *l == language)
        .collect();
    if files.is_empty() {
        return Err(ScaffoldError::UnknownLanguage {
            language: language.to_owned(),
            available: languages().join(", "),
        });
    }
    let values = Placeholders::new(name, sdk);
    Ok(files
        .into_iter()
        .map(|(_, path, bytes)| {
            let path = values.apply(path.strip_suffix(".tmpl").unwrap_or(path));
            let contents = match std::str::from_utf8(bytes) {
                Ok(text) => values.apply(text).into_bytes(),
                Err(_) => bytes.to_vec(),
            };
            (path, contents)
        })
        .collect())
}

/// The SDK directory to depend on: `sdk`, else the one this binary was built from.
pub fn sdk_dir(sdk: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let dir = sdk.map_or_else(|| PathBuf::from(BUILT_SDK), Path::to_path_buf);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    if !manifest.contains("name = \"polypay-plugin-sdk\"") {
        return Err(ScaffoldError::NoSdk(dir));
    }
    Ok(dir.canonicalize().unwrap_or(dir))
}

/// Writes plugin `name` in `language` into `dir`; returns the files written.
pub fn generate(
    name: &str,
    language: &str,
    dir: &Path,
    sdk: Option<&Path>,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    let sdk = sdk_dir(sdk)?;
    let files = render(name, language, &sdk)?;
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    let mut written = Vec::new();
    for (relative, contents) in files {
        let path = dir.join(&relative);
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, &contents)
        };
        write(&path).map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_crate_and_type_names() {
        let values = Placeholders::new("hello-pay2", Path::new("/sdk"));
        assert_eq!(
            values.apply("{{name}} {{crate_name}} {{type_name}} {{wit_path}}"),
            "hello-pay2 hello_pay2 HelloPay2 /sdk/wit/0.2.0"
        );
    }

    #[test]
    fn bad_names_and_unknown_languages_are_refused() {
        for bad in ["", "Hello", "1up", "a_b", "a-", "a/b", &"x".repeat(65)] {
            assert!(
                matches!(
                    render(bad, "rust", Path::new("/sdk")),
                    Err(ScaffoldError::BadName(_))
                ),
                "{bad:?}"
            );
        }
        let err = render("hello", "cobol", Path::new("/sdk")).unwrap_err();
        assert!(err.to_string().contains("rust"), "{err}");
    }

    #[test]
    fn the_rust_template_is_embedded_with_every_placeholder_replaced() {
        let files = render("hello-pay", "rust", Path::new("/sdk")).unwrap();
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        for expected in [
            "Cargo.toml",
            "README.md",
            "openapi.json",
            "src/lib.rs",
            "tests/harness.rs",
            "tests/host.rs",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        for (path, contents) in &files {
            let text = String::from_utf8_lossy(contents);
            // `{{name}}`-shaped; `{{ ... }}` (escaped braces of `format!`) is not one.
            let kept = text.match_indices("{{").any(|(i, _)| {
                let rest = &text[i + 2..];
                rest.find("}}").is_some_and(|end| {
                    end > 0
                        && rest[..end]
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_')
                })
            });
            assert!(!kept, "{path} keeps a placeholder");
        }
        let cargo = String::from_utf8_lossy(&files.iter().find(|f| f.0 == "Cargo.toml").unwrap().1)
            .into_owned();
        assert!(cargo.contains("name = \"hello-pay\""), "{cargo}");
        assert!(cargo.contains("path = \"/sdk\""), "{cargo}");
    }

    /// The guide's complete small plugin is what `polypay plugin new hello` writes, so the
    /// copy in the README never drifts from the template that CI builds and tests.
    #[test]
    fn the_guides_example_is_the_rust_template_for_hello() {
        let guide = include_str!("../../../plugin-sdk/README.md");
        let section = guide
            .split("## A complete small plugin")
            .nth(1)
            .expect("the guide has its example section");
        let example = section
            .split("```rust\n")
            .nth(1)
            .and_then(|code| code.split("```").next())
            .expect("the example is a rust code block");
        let files = render("hello", "rust", Path::new("/sdk")).unwrap();
        let lib = &files
            .iter()
            .find(|(path, _)| path == "src/lib.rs")
            .unwrap()
            .1;
        assert_eq!(example, String::from_utf8_lossy(lib));
        assert!(example.lines().count() < 150);
    }
}
