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
    // `scheme://` that `url` cannot parse (a port out of range, say) is still meant as a URL:
    // treat it as one, so that it is checked and shown redacted, never read as a path.
    if let Some((head, _)) = s.split_once("://") {
        let mut chars = head.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && head.len() > 1;
        if valid {
            return Some(head.to_ascii_lowercase());
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
        Ok(_) => url.to_owned(),
        Err(_) => strip_userinfo(url),
    }
}

/// For a string `url` cannot parse: everything between `://` and the last `@` of the
/// authority (up to the next `/`) is removed, so an unparseable URL never shows its
/// credentials either.
fn strip_userinfo(raw: &str) -> String {
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.to_owned();
    };
    let end = raw[start..].find('/').map_or(raw.len(), |i| start + i);
    match raw[start..end].rfind('@') {
        Some(at) => format!("{}{}", &raw[..start], &raw[start + at + 1..]),
        None => raw.to_owned(),
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

/// The user name and password a URL carried, for the transport's credentials callback only.
/// `Debug` shows neither (an http(s) user name is often a token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: Secret,
    password: Secret,
}

impl Credentials {
    /// The user name. Call it only to hand it to the transport.
    pub fn user(&self) -> &str {
        self.user.expose()
    }

    /// The password (empty when the URL had a user name only).
    pub fn password(&self) -> &Secret {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// A git URL split into what may be given to libgit2 and stored (the URL without secrets) and
/// the credentials it carried, which only a transport's credentials callback gets. The raw URL
/// is not kept. `Display` and `Debug` show the URL as [`redact`] does: no user name, no
/// password.
///
/// - `http`/`https`: any user information (`user:password@`, or `token@` alone) is taken out;
///   libgit2 gets the URL without it and the user name and password through its callback.
/// - other schemes (`ssh://git@host/…`): a user name stays in the URL (ssh needs it and libgit2
///   reads it from there); only a password is taken out.
/// - anything that is not a `scheme://` URL (an scp-like `git@host:path`) is kept as it is: it
///   cannot carry a password.
///
/// ```
/// use plg_loader::manifest::git_url::GitUrl;
///
/// let u = GitUrl::new("https://alice:S3CRET@example.com/x.git");
/// assert_eq!(u.clean(), "https://example.com/x.git");
/// assert_eq!(u.credentials().unwrap().user(), "alice");
/// assert!(!format!("{u} {u:?}").contains("S3CRET"));
/// assert_eq!(GitUrl::new("ssh://git@example.com/x.git").clean(), "ssh://git@example.com/x.git");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct GitUrl {
    clean: String,
    credentials: Option<Credentials>,
}

impl GitUrl {
    /// Splits `url`.
    pub fn new(url: &str) -> Self {
        let kept = || GitUrl {
            clean: match url::Url::parse(url) {
                Ok(_) => url.to_owned(),
                Err(_) => strip_userinfo(url),
            },
            credentials: None,
        };
        let Ok(mut u) = url::Url::parse(url) else {
            return kept();
        };
        let http = matches!(u.scheme(), "http" | "https");
        let has_user = !u.username().is_empty();
        if u.password().is_none() && !(http && has_user) {
            return kept();
        }
        let credentials = Credentials {
            user: Secret(percent_decode(u.username())),
            password: Secret(percent_decode(u.password().unwrap_or_default())),
        };
        if u.set_password(None).is_err() || (http && u.set_username("").is_err()) {
            // A URL that cannot hold user information has none to take out.
            return kept();
        }
        GitUrl {
            clean: u.to_string(),
            credentials: Some(credentials),
        }
    }

    /// The URL to give libgit2 (and the only form it may store): no password, and for
    /// http(s) no user name either.
    pub fn clean(&self) -> &str {
        &self.clean
    }

    /// The user name and password the URL carried, if it carried any that were taken out.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The URL for messages, file contents and cache keys: [`redact`]ed (no user
    /// information at all). The same string as `to_string()`.
    pub fn redacted(&self) -> String {
        redact(&self.clean)
    }

    /// The URL's scheme, as [`scheme`] finds it.
    pub fn scheme(&self) -> Option<String> {
        scheme(&self.clean)
    }

    /// `true` if `other` (a URL a transport is about to authenticate to) has this URL's
    /// scheme, host and port: credentials are never sent anywhere else (after a redirect to
    /// another host, say).
    pub fn same_origin(&self, other: &str) -> bool {
        let origin = |s: &str| {
            let u = url::Url::parse(s).ok()?;
            let host = u.host_str()?.to_ascii_lowercase();
            Some((
                u.scheme().to_ascii_lowercase(),
                host,
                u.port_or_known_default(),
            ))
        };
        match (origin(&self.clean), origin(other)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for GitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
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
        let c = u.credentials().unwrap();
        assert_eq!((c.user(), c.password().expose()), ("alice", "S3@CRET"));
        for shown in [
            u.to_string(),
            u.redacted(),
            format!("{u:?}"),
            format!("{:?}", u.credentials()),
            format!("{}", c.password()),
            format!("{:?}", c.password()),
        ] {
            assert!(!shown.contains("S3") && !shown.contains("alice"), "{shown}");
        }
        assert_eq!(u.to_string(), "https://h.invalid/x.git");
        assert_eq!(u.scheme().as_deref(), Some("https"));
    }

    #[test]
    fn an_http_user_name_alone_is_taken_out_too() {
        // A token is often passed as the user name: it must not reach .git/config either.
        let u = GitUrl::new("http://ghp_T0KEN@h.invalid:8080/x.git");
        assert_eq!(u.clean(), "http://h.invalid:8080/x.git");
        let c = u.credentials().unwrap();
        assert_eq!((c.user(), c.password().expose()), ("ghp_T0KEN", ""));
        assert!(!format!("{u} {u:?} {c:?}").contains("T0KEN"));
        let plain = GitUrl::new("https://h.invalid/x.git");
        assert_eq!(plain.clean(), "https://h.invalid/x.git");
        assert!(plain.credentials().is_none());
    }

    #[test]
    fn ssh_user_names_stay_in_the_url() {
        let ssh = GitUrl::new("ssh://git@h.invalid/x.git");
        assert_eq!(ssh.clean(), "ssh://git@h.invalid/x.git");
        assert!(ssh.credentials().is_none());
        assert_eq!(ssh.to_string(), redact("ssh://git@h.invalid/x.git"));
        let scp = GitUrl::new("git@h.invalid:x.git");
        assert_eq!(scp.clean(), "git@h.invalid:x.git");
        assert!(scp.credentials().is_none());
        assert_eq!(scp.scheme().as_deref(), Some("ssh"));
        // A password is taken out; the user name stays for ssh.
        let pw = GitUrl::new("ssh://git:S3CRET@h.invalid/x.git");
        assert_eq!(pw.clean(), "ssh://git@h.invalid/x.git");
        let c = pw.credentials().unwrap();
        assert_eq!((c.user(), c.password().expose()), ("git", "S3CRET"));
        assert!(!format!("{pw} {pw:?}").contains("S3CRET"));
    }

    #[test]
    fn display_is_what_redact_gives_for_the_raw_url() {
        // Cache keys and provenance were computed with `redact(raw)`: they must not change.
        for raw in [
            "https://alice:pw@h.invalid/x.git",
            "https://tok@h.invalid/x.git",
            "https://h.invalid/x.git",
            "ssh://git@h.invalid/x.git",
            "ssh://git:pw@h.invalid/x.git",
            "git@h.invalid:x.git",
            "file:///srv/x.git",
        ] {
            assert_eq!(GitUrl::new(raw).to_string(), redact(raw), "{raw}");
        }
    }

    #[test]
    fn a_url_that_does_not_parse_still_never_shows_its_credentials() {
        let raw = "https://ghp_T0KEN:pw@github.com:99999/o/r.git";
        assert!(url::Url::parse(raw).is_err());
        assert_eq!(redact(raw), "https://github.com:99999/o/r.git");
        let u = GitUrl::new(raw);
        assert!(!format!("{u} {u:?} {}", u.clean()).contains("T0KEN"));
        // It is still a URL (checked, and shown redacted), never a local path.
        assert_eq!(scheme(raw).as_deref(), Some("https"));
        assert_eq!(
            redact("https://h.invalid:99999/x"),
            "https://h.invalid:99999/x"
        );
    }

    #[test]
    fn credentials_go_only_to_the_same_origin() {
        let u = GitUrl::new("https://alice:pw@h.invalid/x.git");
        assert!(u.same_origin("https://h.invalid/x.git/info/refs?service=git-upload-pack"));
        assert!(u.same_origin("https://H.INVALID:443/other"));
        assert!(!u.same_origin("https://evil.invalid/x.git"));
        assert!(!u.same_origin("http://h.invalid/x.git"));
        assert!(!u.same_origin("https://h.invalid:8443/x.git"));
        assert!(!u.same_origin("not a url"));
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact("https://u:p@h/x.git"), "https://h/x.git");
        assert_eq!(redact("https://h/x.git"), "https://h/x.git");
    }
}
