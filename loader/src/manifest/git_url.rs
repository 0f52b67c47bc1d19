//! Git URLs: the one place that tells a git URL from a local path, finds its scheme and
//! strips credentials from it for printing and storing.

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
    fn credentials_are_redacted() {
        assert_eq!(redact("https://u:p@h/x.git"), "https://h/x.git");
        assert_eq!(redact("https://h/x.git"), "https://h/x.git");
    }
}
