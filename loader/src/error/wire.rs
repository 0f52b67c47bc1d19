//! How `plg-worker` tells its host that the plugin failed a load check, so that the host
//! returns the same [`LoadError`] variant an in-process load would: instead of its handshake
//! line, the worker prints [`LOAD_ERROR_PREFIX`] and the error as one JSON object on stdout,
//! then exits. Only `plg-worker`, which links this crate, writes it; the host reads it only
//! from `plg-worker` (an exec plugin's stdout is the go-plugin handshake and nothing else).
//!
//! The worker ran plugin code (`on_load`), so the line is untrusted: it is size-capped by
//! the reader, every string in it is escaped where it is shown like any plugin text, and a
//! line that does not parse is reported as the worker's exit with its stderr, as before.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::load::LoadError;
use crate::untrusted::escape;

/// What starts plg-worker's load-error line (followed by one JSON object).
pub const LOAD_ERROR_PREFIX: &str = "plg-load-error ";

/// The line `plg-worker --check MANIFEST` prints when the library passed every load check.
pub const CHECK_OK: &str = "plg-check-ok";

/// The longest layout-difference text a load-error line carries; the rest is cut (the
/// summary says what differs).
const MAX_DETAILS: usize = 2048;

/// The load checks that can fail only in the process that opens the library. The checks a
/// host makes before it starts a worker (manifest, location, note) never get here.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Wire {
    NotFound {
        path: PathBuf,
        manifest: PathBuf,
    },
    OutsideDir {
        path: PathBuf,
        dir: PathBuf,
    },
    NotSharedObject {
        path: PathBuf,
        reason: String,
    },
    Open {
        path: PathBuf,
        message: String,
    },
    NotAPlugin {
        path: PathBuf,
        reason: String,
    },
    AbiVersion {
        path: PathBuf,
        expected: u32,
        found: u32,
    },
    AbiLayout {
        path: PathBuf,
        api_version: String,
        summary: String,
        details: String,
    },
    Mismatch {
        path: PathBuf,
        field: String,
        manifest: String,
        library: String,
    },
    OnLoad {
        plugin: String,
        message: String,
    },
}

/// The load-error line for `error` (without its newline), or `None` for an error that has
/// no wire form (the worker then exits with the message on stderr only).
#[doc(hidden)]
pub fn load_error_line(error: &LoadError) -> Option<String> {
    let wire = Wire::from_error(error)?;
    Some(format!(
        "{LOAD_ERROR_PREFIX}{}",
        serde_json::to_string(&wire).ok()?
    ))
}

/// The [`LoadError`] a load-error line carries; `None` if `line` is not one, or does not
/// parse.
#[cfg_attr(not(feature = "isolation"), allow(dead_code))]
///
/// The worker ran plugin code, which could write this line itself: so the plugin named is
/// always `plugin` (the one the host started), and a path outside `manifest`'s directory is
/// replaced by `manifest` (a plugin cannot blame another plugin's files).
pub(crate) fn parse_load_error_line(
    line: &str,
    plugin: &str,
    manifest: &std::path::Path,
) -> Option<LoadError> {
    let json = line.trim_end().strip_prefix(LOAD_ERROR_PREFIX)?;
    let wire: Wire = serde_json::from_str(json).ok()?;
    let t = |s: String| escape(&s).into_owned();
    let dir = manifest.parent().unwrap_or(manifest);
    let p = |p: PathBuf| {
        let inside = p.is_absolute()
            && !p.components().any(|c| c == std::path::Component::ParentDir)
            && (p.starts_with(dir) || dir.canonicalize().is_ok_and(|d| p.starts_with(d)));
        if inside {
            PathBuf::from(escape(&p.to_string_lossy()).into_owned())
        } else {
            manifest.to_owned()
        }
    };
    Some(match wire {
        Wire::NotFound { path, manifest } => LoadError::NotFound {
            path: p(path),
            manifest: p(manifest),
        },
        Wire::OutsideDir { path, dir } => LoadError::OutsideDir {
            path: p(path),
            dir: p(dir),
        },
        Wire::NotSharedObject { path, reason } => LoadError::NotSharedObject {
            path: p(path),
            reason: t(reason),
        },
        Wire::Open { path, message } => LoadError::Open {
            path: p(path),
            message: t(message),
        },
        Wire::NotAPlugin { path, reason } => LoadError::NotAPlugin {
            path: p(path),
            reason: t(reason),
        },
        Wire::AbiVersion {
            path,
            expected,
            found,
        } => LoadError::AbiVersion {
            path: p(path),
            expected,
            found,
        },
        Wire::AbiLayout {
            path,
            api_version,
            summary,
            details,
        } => LoadError::AbiLayout {
            path: p(path),
            api_version: t(api_version),
            summary: t(summary),
            details: t(cut(&details, MAX_DETAILS)),
        },
        Wire::Mismatch {
            path,
            field,
            manifest,
            library,
        } => LoadError::Mismatch {
            path: p(path),
            field: match field.as_str() {
                "name" => "name",
                _ => "version",
            },
            manifest: t(manifest),
            library: t(library),
        },
        Wire::OnLoad { message, .. } => LoadError::OnLoad {
            plugin: plugin.to_owned(),
            message: t(message),
        },
    })
}

impl Wire {
    fn from_error(error: &LoadError) -> Option<Wire> {
        let p = |p: &PathBuf| p.clone();
        Some(match error {
            LoadError::NotFound { path, manifest } => Wire::NotFound {
                path: p(path),
                manifest: p(manifest),
            },
            LoadError::OutsideDir { path, dir } => Wire::OutsideDir {
                path: p(path),
                dir: p(dir),
            },
            LoadError::NotSharedObject { path, reason } => Wire::NotSharedObject {
                path: p(path),
                reason: reason.clone(),
            },
            LoadError::Open { path, message } => Wire::Open {
                path: p(path),
                message: message.clone(),
            },
            LoadError::NotAPlugin { path, reason } => Wire::NotAPlugin {
                path: p(path),
                reason: reason.clone(),
            },
            LoadError::AbiVersion {
                path,
                expected,
                found,
            } => Wire::AbiVersion {
                path: p(path),
                expected: *expected,
                found: *found,
            },
            LoadError::AbiLayout {
                path,
                api_version,
                summary,
                details,
            } => Wire::AbiLayout {
                path: p(path),
                api_version: api_version.clone(),
                summary: summary.clone(),
                details: cut(details, MAX_DETAILS),
            },
            LoadError::Mismatch {
                path,
                field,
                manifest,
                library,
            } => Wire::Mismatch {
                path: p(path),
                field: (*field).to_owned(),
                manifest: manifest.clone(),
                library: library.clone(),
            },
            LoadError::OnLoad { plugin, message } => Wire::OnLoad {
                plugin: plugin.clone(),
                message: message.clone(),
            },
            _ => return None,
        })
    }
}

/// `text`, cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_with_a_wire_form_comes_back_as_itself() {
        let errors = [
            LoadError::Open {
                path: "/p/libx.so".into(),
                message: "libmissing.so: cannot open shared object file".into(),
            },
            LoadError::OnLoad {
                plugin: "x@1.0.0".into(),
                message: "no config".into(),
            },
            LoadError::Mismatch {
                path: "/p/libx.so".into(),
                field: "name",
                manifest: "x".into(),
                library: "y".into(),
            },
            LoadError::AbiLayout {
                path: "/p/libx.so".into(),
                api_version: "0.1.0".into(),
                summary: "Context: fields differ".into(),
                details: "d".repeat(10_000),
            },
        ];
        for e in errors {
            let line = load_error_line(&e).unwrap();
            assert!(line.len() < 4096, "{} bytes", line.len());
            assert!(!line.contains('\n'));
            let back =
                parse_load_error_line(&line, "x@1.0.0", std::path::Path::new("/p/plugin.json"))
                    .unwrap();
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&e),
                "{line}"
            );
            if !matches!(e, LoadError::AbiLayout { .. }) {
                assert_eq!(back.to_string(), e.to_string());
            }
        }
    }

    #[test]
    fn text_in_the_line_is_escaped() {
        let line = format!(
            "{LOAD_ERROR_PREFIX}{}",
            r#"{"kind":"OnLoad","plugin":"x@1.0.0","message":"\u001b[2Jgone"}"#
        );
        let e = parse_load_error_line(&line, "x@1.0.0", std::path::Path::new("/p/plugin.json"))
            .unwrap();
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }

    #[test]
    fn the_plugin_and_paths_outside_its_directory_are_the_hosts_not_the_lines() {
        let manifest = std::path::Path::new("/plugins/evil/1.0.0/plugin.json");
        let line = format!(
            "{LOAD_ERROR_PREFIX}{}",
            r#"{"kind":"OnLoad","plugin":"auth@2.0.0","message":"m"}"#
        );
        match parse_load_error_line(&line, "evil@1.0.0", manifest).unwrap() {
            LoadError::OnLoad { plugin, .. } => assert_eq!(plugin, "evil@1.0.0"),
            other => panic!("{other:?}"),
        }
        for (claimed, kept) in [
            ("/plugins/auth/2.0.0/libauth.so", false),
            ("/plugins/evil/1.0.0/../../auth/2.0.0/libauth.so", false),
            ("libevil.so", false),
            ("/plugins/evil/1.0.0/libevil.so", true),
        ] {
            let line = format!(
                "{LOAD_ERROR_PREFIX}{}",
                serde_json::json!({"kind":"Open","path":claimed,"message":"m"})
            );
            match parse_load_error_line(&line, "evil@1.0.0", manifest).unwrap() {
                LoadError::Open { path, .. } if kept => assert_eq!(path.to_str(), Some(claimed)),
                LoadError::Open { path, .. } => assert_eq!(path, manifest),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn anything_else_is_not_a_load_error_line() {
        let m = std::path::Path::new("/p/plugin.json");
        assert!(parse_load_error_line("1|1|unix|/tmp/s|grpc", "x", m).is_none());
        assert!(parse_load_error_line("plg-load-error {\"kind\":\"Nope\"}", "x", m).is_none());
        assert!(parse_load_error_line("plg-load-error {not json", "x", m).is_none());
        let io = LoadError::Io(crate::error::IoError::new(
            std::path::Path::new("/x"),
            std::io::Error::other("e"),
        ));
        assert!(load_error_line(&io).is_none());
    }
}
