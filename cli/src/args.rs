//! Argument types, each parsed once by clap: `NAME[@REQ]`, `NAME[@VERSION]` and
//! `--set KEY=VALUE`. A value that does not parse is a usage error (exit code 2) that names
//! the value and shows the expected form.

use std::{fmt, str::FromStr};

use plg_loader::{
    manifest::validate_name,
    semver::{Version, VersionReq},
    Value,
};

/// `NAME` or `NAME@REQ`, with REQ a semver requirement: `hello`, `hello@^1.2`, `hello@=1.2.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    pub name: String,
    /// The requirement as written; `None`: any version.
    pub requirement: Option<String>,
}

impl FromStr for PluginSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, requirement) = match s.split_once('@') {
            Some((n, r)) => (n, Some(r)),
            None => (s, None),
        };
        if let Some(r) = requirement {
            VersionReq::parse(r).map_err(|e| {
                format!("`{r}` is not a version requirement ({e}); write e.g. {name}@^1.2 or {name}@=1.2.0")
            })?;
        }
        Ok(PluginSpec {
            name: name.to_owned(),
            requirement: requirement.map(str::to_owned),
        })
    }
}

/// `NAME` or `NAME@VERSION`, with VERSION an exact semver version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVersion {
    pub name: String,
    pub version: Option<Version>,
}

impl FromStr for PluginVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, version) = match s.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        validate_name(name).map_err(|p| format!("`{name}` is not a plugin name: {p}"))?;
        let version = version
            .map(|v| {
                Version::parse(v)
                    .map_err(|e| format!("`{v}` is not a version ({e}); write {name}@1.2.3"))
            })
            .transpose()?;
        Ok(PluginVersion {
            name: name.to_owned(),
            version,
        })
    }
}

impl fmt::Display for PluginVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A plugin name for `plg new`: lowercase letters, digits, `_` and `-`.
pub fn plugin_name(s: &str) -> Result<String, String> {
    validate_name(s).map_err(|p| format!("`{s}` is not a valid plugin name: {p}"))?;
    Ok(s.to_owned())
}

/// `--set KEY=VALUE`: VALUE is read as JSON when it parses (`n=5`, `ok=true`, `l=[1,2]`),
/// otherwise as a string (`name=Ada`).
pub fn parse_set(s: &str) -> Result<(String, Value), String> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(format!("{s:?}: expected KEY=VALUE"));
    };
    if k.is_empty() {
        return Err(format!("{s:?}: the key is empty"));
    }
    let value = serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::from(v));
    Ok((k.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values_are_json_when_they_parse_and_strings_otherwise() {
        assert_eq!(parse_set("n=5").unwrap(), ("n".into(), Value::Int(5)));
        assert_eq!(
            parse_set("s=Ada").unwrap(),
            ("s".into(), Value::from("Ada"))
        );
        assert_eq!(
            parse_set("s=\"5\"").unwrap(),
            ("s".into(), Value::from("5"))
        );
        assert_eq!(parse_set("e=").unwrap(), ("e".into(), Value::from("")));
        assert!(parse_set("novalue").is_err());
        assert!(parse_set("=x").is_err());
    }

    #[test]
    fn plugin_specs_take_a_requirement() {
        let p: PluginSpec = "hello@^1.2".parse().unwrap();
        assert_eq!(
            (p.name.as_str(), p.requirement.as_deref()),
            ("hello", Some("^1.2"))
        );
        let p: PluginSpec = "hello".parse().unwrap();
        assert_eq!(p.requirement, None);
        let e = "hello@one".parse::<PluginSpec>().unwrap_err();
        assert!(e.contains("`one` is not a version requirement"), "{e}");
    }

    #[test]
    fn plugin_versions_take_an_exact_version() {
        let p: PluginVersion = "hello@1.2.0".parse().unwrap();
        assert_eq!(p.version, Some(Version::new(1, 2, 0)));
        assert_eq!(p.to_string(), "hello@1.2.0");
        assert!("hello@^1"
            .parse::<PluginVersion>()
            .unwrap_err()
            .contains("hello@1.2.3"));
        assert!("../x".parse::<PluginVersion>().is_err());
    }
}
