//! Git URLs: the one place that tells a git URL from a local path, finds its scheme and
//! strips credentials from it for printing and storing. [`GitUrl`] holds a URL's password
//! apart, where nothing can print it; libgit2 gets the clean URL, and the password only
//! through its credentials callback.

use std::fmt;

/// The scheme of the git URL `s`, lowercase: `https`, `ssh`, `file`, … An scp-like
/// `user@host:path` is `ssh`. `None` when `s` is not a git URL (a local path, a bare word, or
/// a Windows drive such as `C:\x`).
///
/// ```
/// use plg_loader::manifest::git_url::scheme;
///
/// assert_eq!(scheme("https://example.com/x.git").as_deref(), Some("https"));
/// assert_eq!(scheme("git@example.com:x.git").as_deref(), Some("ssh"));
/// assert_eq!(scheme("plugins/hello"), None);
/// ```
pub fn scheme(s: &str) -> Option<String> {
    if let Ok(u) = url::Url::parse(s) {
        // One letter is a Windows drive, not a scheme.
        if u.scheme().len() > 1 {
            return Some(u.scheme().to_ascii_lowercase());
        }
    }
    match s.split_once(':') {
        Some((host, path)) if host.contains('@') && !host.contains('/') && !path.is_empty() => {
            Some("ssh".to_owned())
        }
        _ => None,
    }
}

/// `url` without any user name or password, for printing and storing.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A password from a URL. Neither `Debug` nor `Display` shows it; only
/// [`expose`](Self::expose) does, for libgit2's credentials callback.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The password itself. Call it only to hand it to the transport.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A git URL split into what may be shown and stored (the URL without a password) and the
/// credentials, if the URL carried a password (`https://user:password@host/…`). A URL with
/// only a user name (`ssh://git@host/…`) keeps it: a user name is not a secret, and ssh needs
/// it. `Display` and `Debug` show the clean URL.
#[derive(Clone, PartialEq, Eq)]
pub struct GitUrl {
    clean: String,
    credentials: Option<(String, Secret)>,
}

impl GitUrl {
    /// Splits `url`. Anything that is not a `scheme://` URL (an scp-like `user@host:path`)
    /// has no password and is kept as it is.
    pub fn new(url: &str) -> Self {
        match url::Url::parse(url) {
            Ok(mut u) if u.password().is_some() => {
                let user = percent_decode(u.username());
                let password = Secret(percent_decode(u.password().unwrap_or_default()));
                let _ = u.set_username("");
                let _ = u.set_password(None);
                GitUrl {
                    clean: u.to_string(),
                    credentials: Some((user, password)),
                }
            }
            _ => GitUrl {
                clean: url.to_owned(),
                credentials: None,
            },
        }
    }

    /// The URL to give libgit2 and to store: without a password.
    pub fn clean(&self) -> &str {
        &self.clean
    }

    /// The user name and password the URL carried.
    pub fn credentials(&self) -> Option<(&str, &Secret)> {
        self.credentials.as_ref().map(|(u, p)| (u.as_str(), p))
    }
}

impl fmt::Display for GitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.clean))
    }
}

impl fmt::Debug for GitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GitUrl({self})")
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        for (url, want) in [
            ("https://h/x.git", Some("https")),
            ("SSH://h/x.git", Some("ssh")),
            ("file:///srv/x.git", Some("file")),
            ("git@github.com:o/r.git", Some("ssh")),
            ("C:\\x", None),
            ("plugins/hello", None),
            ("./a@b:c/x", None),
            ("", None),
        ] {
            assert_eq!(scheme(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn a_password_is_held_apart_and_never_shown() {
        let u = GitUrl::new("https://alice:S3%40CRET@h.invalid/x.git");
        assert_eq!(u.clean(), "https://h.invalid/x.git");
        let (user, pass) = u.credentials().unwrap();
        assert_eq!((user, pass.expose()), ("alice", "S3@CRET"));
        for shown in [
            u.to_string(),
            format!("{u:?}"),
            format!("{pass}"),
            format!("{pass:?}"),
        ] {
            assert!(!shown.contains("S3"), "{shown}");
        }
        let ssh = GitUrl::new("ssh://git@h.invalid/x.git");
        assert_eq!(ssh.clean(), "ssh://git@h.invalid/x.git");
        assert!(ssh.credentials().is_none());
        let scp = GitUrl::new("git@h.invalid:x.git");
        assert_eq!(scp.clean(), "git@h.invalid:x.git");
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact("https://u:p@h/x.git"), "https://h/x.git");
        assert_eq!(redact("https://h/x.git"), "https://h/x.git");
    }
}
