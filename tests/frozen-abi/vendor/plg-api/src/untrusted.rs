//! Text from a plugin, a manifest, a bundle or a repository is untrusted: it may carry
//! terminal escape sequences (clear the screen, set the title, forge a line) or bidirectional
//! overrides that make it read differently than it is. [`escape`] is the one function that
//! makes such text safe to show; plg runs everything that reaches a terminal through it:
//! plugin log lines are escaped before they reach `tracing`, and a plugin's panic message is
//! escaped by the panic hook [`export_plugin!`](crate::export_plugin) installs in the plugin.
//! (It lives here, in the crate both sides share, so that the plugin side can use it too;
//! `plg_loader::untrusted` re-exports it.)

use std::{borrow::Cow, fmt::Write};

/// `s` with every control character (C0, DEL, C1: ESC, BEL, CR, LF, …), every bidi override,
/// isolate or mark, and the Unicode line and paragraph separators written as `\u{…}`, so it shows as itself on a terminal. Printable text,
/// including non-ASCII letters, is unchanged; text that needs nothing is not copied.
///
/// ```
/// use plg_api::untrusted::escape;
///
/// assert_eq!(escape("hello"), "hello");
/// assert_eq!(escape("a\u{1b}[2Jb\u{7}"), "a\\u{1b}[2Jb\\u{7}");
/// assert_eq!(escape("line\nforged"), "line\\u{a}forged");
/// ```
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `true` for a character [`escape`] rewrites: controls (C0, DEL, C1), bidi embeddings,
/// overrides, isolates and marks, and the line and paragraph separators.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidi embeddings, overrides, isolates and marks; line and paragraph separators.
            '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{061c}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_and_bidi_overrides_are_escaped() {
        let osc = "\u{1b}]0;pwned\u{7}";
        assert_eq!(escape(osc), "\\u{1b}]0;pwned\\u{7}");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m"); // C1 CSI
        assert_eq!(escape("abc\u{202e}cba"), "abc\\u{202e}cba");
        assert_eq!(escape("a\u{200f}b\u{2028}c"), "a\\u{200f}b\\u{2028}c");
        assert_eq!(escape("größe ✓"), "größe ✓");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }
}
