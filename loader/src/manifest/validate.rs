//! Validation of a parsed `plugin.json`: every rule, each error naming its field.

use std::{
    fmt,
    path::{Component, Path, PathBuf},
};

use semver::Version;

use super::{git_url, Isolation, Manifest, RawManifest, SchemaSource, Source, MAX_NAME_LEN};
use crate::error::ManifestError;

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

struct Invalid<'a>(&'a Path);

impl Invalid<'_> {
    fn err(&self, field: impl fmt::Display, problem: impl fmt::Display) -> ManifestError {
        ManifestError::Invalid {
            path: self.0.to_owned(),
            field: field.to_string(),
            problem: problem.to_string(),
        }
    }
}

impl RawManifest {
    pub(super) fn validate(self, path: &Path) -> Result<Manifest, ManifestError> {
        let bad = Invalid(path);
        validate_name(&self.name).map_err(|p| bad.err("name", p))?;
        let version = Version::parse(&self.version).map_err(|e| {
            bad.err(
                "version",
                format!(
                    "`{}` is not a semver version ({e}); write e.g. 1.0.0",
                    self.version
                ),
            )
        })?;
        for (i, m) in self.maintainers.iter().enumerate() {
            validate_maintainer(m).map_err(|p| bad.err(format!("maintainers[{i}]"), p))?;
        }
        if let Some(home) = &self.home {
            validate_http_url(home).map_err(|p| bad.err("home", p))?;
        }
        let source = match self.source.mode.as_str() {
            "local_so" => {
                if self.source.rev.is_some() || self.source.subdir.is_some() {
                    return Err(bad.err(
                        "source",
                        "`rev` and `subdir` only apply to mode `remote_git`",
                    ));
                }
                let rel =
                    validate_relative(&self.source.path).map_err(|p| bad.err("source.path", p))?;
                Source::LocalSo {
                    path: with_platform_extension(rel),
                }
            }
            "remote_git" => {
                validate_git_url(&self.source.path).map_err(|p| bad.err("source.path", p))?;
                if let Some(rev) = &self.source.rev {
                    if rev.trim().is_empty() || rev.starts_with('-') {
                        return Err(bad.err("source.rev", "must be a branch, tag or commit"));
                    }
                }
                let subdir = match &self.source.subdir {
                    Some(s) => Some(validate_relative(s).map_err(|p| bad.err("source.subdir", p))?),
                    None => None,
                };
                Source::RemoteGit {
                    url: self.source.path.clone(),
                    rev: self.source.rev.clone(),
                    subdir,
                }
            }
            "exec" => {
                if self.source.rev.is_some() || self.source.subdir.is_some() {
                    return Err(bad.err(
                        "source",
                        "`rev` and `subdir` only apply to mode `remote_git`",
                    ));
                }
                let path =
                    validate_relative(&self.source.path).map_err(|p| bad.err("source.path", p))?;
                for (i, arg) in self.source.args.iter().enumerate() {
                    if arg.contains('\0') {
                        return Err(bad.err(format!("source.args[{i}]"), "contains a NUL byte"));
                    }
                }
                for (key, value) in &self.source.env {
                    let field = format!("source.env.{key}");
                    if key.is_empty()
                        || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        || key.as_bytes()[0].is_ascii_digit()
                    {
                        return Err(bad.err(
                            field,
                            "a variable name is letters, digits and `_`, not starting with a digit",
                        ));
                    }
                    if value.contains('\0') {
                        return Err(bad.err(field, "contains a NUL byte"));
                    }
                }
                Source::Exec {
                    path,
                    args: self.source.args.clone(),
                    env: self.source.env.clone(),
                }
            }
            other => {
                return Err(bad.err(
                    "source.mode",
                    format!("unknown mode `{other}`: use `local_so`, `remote_git` or `exec`"),
                ))
            }
        };
        if !matches!(source, Source::Exec { .. })
            && (!self.source.args.is_empty() || !self.source.env.is_empty())
        {
            return Err(bad.err("source", "`args` and `env` only apply to mode `exec`"));
        }
        if let Some(http) = &self.http_services {
            if http.driver.trim().is_empty() {
                return Err(bad.err("http_services.driver", "must not be empty"));
            }
            for (i, r) in http.routes.iter().enumerate() {
                if !r.route.starts_with('/') {
                    return Err(bad.err(
                        format!("http_services.routes[{i}].route"),
                        format!("`{}` must start with `/`", r.route),
                    ));
                }
                if !METHODS.contains(&r.method.as_str()) {
                    return Err(bad.err(
                        format!("http_services.routes[{i}].method"),
                        format!("`{}` is not one of {}", r.method, METHODS.join(", ")),
                    ));
                }
                if r.label.trim().is_empty() {
                    return Err(bad.err(
                        format!("http_services.routes[{i}].label"),
                        "must not be empty",
                    ));
                }
            }
        }
        let mut dependencies = std::collections::BTreeMap::new();
        for (dep, req) in &self.dependencies {
            let field = format!("dependencies.{dep}");
            validate_name(dep).map_err(|p| bad.err(field.clone(), p))?;
            if *dep == self.name {
                return Err(bad.err(field, "a plugin cannot depend on itself"));
            }
            let req = semver::VersionReq::parse(req).map_err(|e| {
                bad.err(
                    field.clone(),
                    format!("`{req}` is not a semver requirement ({e}); write e.g. \"^1.2\""),
                )
            })?;
            dependencies.insert(dep.clone(), req);
        }
        let schema = |field: &str, value: Option<serde_json::Value>| match value {
            None => Ok(None),
            Some(serde_json::Value::String(file)) => validate_relative(&file)
                .map(|p| Some(SchemaSource::File(p)))
                .map_err(|p| bad.err(field, p)),
            Some(v @ (serde_json::Value::Object(_) | serde_json::Value::Bool(_))) => {
                #[cfg(feature = "schemas")]
                if let Err(e) = jsonschema::validator_for(&v) {
                    return Err(bad.err(field, format!("is not a valid JSON Schema: {e}")));
                }
                Ok(Some(SchemaSource::Inline(v)))
            }
            Some(_) => Err(bad.err(
                field,
                "must be a JSON Schema (an object) or the path of a file holding one",
            )),
        };
        let input_schema = schema("input_schema", self.input_schema)?;
        let output_schema = schema("output_schema", self.output_schema)?;
        let isolation = match self.isolation.as_deref() {
            None => None,
            Some("in_process") => Some(Isolation::InProcess),
            Some("process") => Some(Isolation::Process),
            Some(other) => {
                return Err(bad.err(
                    "isolation",
                    format!("unknown isolation `{other}`: use `in_process` or `process`"),
                ))
            }
        };
        Ok(Manifest {
            name: self.name,
            version,
            description: self.description,
            maintainers: self.maintainers,
            home: self.home,
            source,
            http_services: self.http_services,
            dependencies,
            input_schema,
            output_schema,
            isolation,
        })
    }
}

/// Checks a plugin name: `[a-z0-9_-]`, 1 to 64 characters.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "is {} characters long; the limit is {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
    {
        return Err(format!(
            "`{name}` contains {c:?}; use only lowercase letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}

fn validate_maintainer(m: &str) -> Result<(), String> {
    let addr = match (m.find('<'), m.ends_with('>')) {
        (Some(i), true) => &m[i + 1..m.len() - 1],
        _ => m,
    };
    let ok = match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !addr.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{m}` is not an e-mail address; write `dev@example.com` or `Name <dev@example.com>`"
        ))
    }
}

fn validate_http_url(s: &str) -> Result<(), String> {
    let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!("`{s}` uses scheme `{other}`; use http or https")),
    }
}

fn validate_git_url(s: &str) -> Result<(), String> {
    match git_url::scheme(s) {
        Some(_) => Ok(()),
        None => Err(format!(
            "`{s}` is not a git URL; use https://…, ssh://…, file://… or user@host:path"
        )),
    }
}

/// Checks that `s` is a relative path that stays inside its base directory.
fn validate_relative(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    let p = Path::new(s);
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "`{s}` contains `..` and would escape the plugin's directory; keep the library inside it"
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "`{s}` is absolute; write a path relative to the manifest's directory"
                ))
            }
        }
    }
    Ok(p.to_owned())
}

/// Appends the platform's library extension (`so`, `dylib`, `dll`) when `path` has none.
pub fn with_platform_extension(path: PathBuf) -> PathBuf {
    if path.extension().is_some() {
        path
    } else {
        path.with_extension(std::env::consts::DLL_EXTENSION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Source;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::from_json(text, "p/plugin.json")
    }

    fn field_of(r: Result<Manifest, ManifestError>) -> String {
        match r {
            Err(ManifestError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    const OK: &str = r#"{"name":"a","version":"1.0.0","source":{"mode":"local_so","path":"liba"}}"#;

    #[test]
    fn minimal_manifest_parses_and_fills_the_extension() {
        let m = parse(OK).unwrap();
        let Source::LocalSo { path } = m.source else {
            panic!()
        };
        assert_eq!(path.extension().unwrap(), std::env::consts::DLL_EXTENSION);
    }

    #[test]
    fn round_trips_through_to_json() {
        let full = r#"{"name":"a-b_1","version":"1.0.0-rc.1+x","description":"d",
            "maintainers":["x@y.z","Ann <a@b.c>"],"home":"https://h.invalid/",
            "source":{"mode":"remote_git","path":"https://g.invalid/r.git","rev":"v1","subdir":"crates/p"},
            "http_services":{"driver":"axum","routes":[{"route":"/x","method":"GET","label":"x"}]}}"#;
        let m = parse(full).unwrap();
        assert_eq!(parse(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                r#"{"name":"A","version":"1.0.0","source":{"mode":"local_so","path":"x"}}"#,
                "name",
            ),
            (
                r#"{"name":"a","version":"1.0","source":{"mode":"local_so","path":"x"}}"#,
                "version",
            ),
            (
                r#"{"name":"a","version":"1.0.0","maintainers":["ok@x.y","nope"],"source":{"mode":"local_so","path":"x"}}"#,
                "maintainers[1]",
            ),
            (
                r#"{"name":"a","version":"1.0.0","home":"ftp://x","source":{"mode":"local_so","path":"x"}}"#,
                "home",
            ),
            (
                r#"{"name":"a","version":"1.0.0","source":{"mode":"zip","path":"x"}}"#,
                "source.mode",
            ),
            (
                r#"{"name":"a","version":"1.0.0","source":{"mode":"local_so","path":"../x"}}"#,
                "source.path",
            ),
            (
                r#"{"name":"a","version":"1.0.0","source":{"mode":"local_so","path":"/etc/x.so"}}"#,
                "source.path",
            ),
            (
                r#"{"name":"a","version":"1.0.0","source":{"mode":"remote_git","path":"not a url"}}"#,
                "source.path",
            ),
            (
                r#"{"name":"a","version":"1.0.0","source":{"mode":"remote_git","path":"https://x/y","subdir":"../z"}}"#,
                "source.subdir",
            ),
            (
                r#"{"name":"a","version":"1.0.0","source":{"mode":"local_so","path":"x"},"http_services":{"driver":"d","routes":[{"route":"x","method":"GET","label":"l"}]}}"#,
                "http_services.routes[0].route",
            ),
            (
                r#"{"name":"a","version":"1.0.0","source":{"mode":"local_so","path":"x"},"http_services":{"driver":"d","routes":[{"route":"/x","method":"FETCH","label":"l"}]}}"#,
                "http_services.routes[0].method",
            ),
            (
                r#"{"name":"a","version":"1.0.0","maintainers":"x@y.z","source":{"mode":"local_so","path":"x"}}"#,
                "maintainers",
            ),
            (
                r#"{"version":"1.0.0","source":{"mode":"local_so","path":"x"}}"#,
                "(top level)",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(field_of(parse(text)), field, "{text}");
        }
    }

    #[test]
    fn a_65_character_name_is_refused() {
        let text = OK.replace("\"a\"", &format!("\"{}\"", "a".repeat(65)));
        assert_eq!(field_of(parse(&text)), "name");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let text = OK.replace("\"name\"", "\"nmae\":1,\"name\"");
        match parse(&text) {
            Err(ManifestError::Invalid { problem, .. }) => assert!(problem.contains("nmae")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn broken_json_is_a_syntax_error_with_a_position() {
        match parse("{\"name\": \"a\",\n  oops}") {
            Err(ManifestError::Syntax { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }
}
