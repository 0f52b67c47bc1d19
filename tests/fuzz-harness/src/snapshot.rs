//! A tree, as `lstat` and the bytes see it: to tell that nothing outside the plugins
//! directory changed and that a refused install left it byte-for-byte as it was.

use std::{collections::BTreeMap, path::Path};

/// One file system object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file: mode bits and contents.
    File(u32, Vec<u8>),
    /// A directory: mode bits.
    Dir(u32),
    /// A symbolic link: its target.
    Link(std::path::PathBuf),
    /// Anything else (a pipe, a device, a socket).
    Other,
}

/// Every object under a root, by path relative to it (the root itself is `""`).
pub type Tree = BTreeMap<String, Node>;

/// Snapshots `root` without following links.
pub fn snapshot(root: &Path) -> Tree {
    let mut tree = Tree::new();
    walk(root, root, &mut tree);
    tree
}

fn walk(root: &Path, path: &Path, tree: &mut Tree) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    let mode = meta.permissions().mode() & 0o7777;
    let t = meta.file_type();
    let node = if t.is_symlink() {
        Node::Link(std::fs::read_link(path).unwrap_or_default())
    } else if t.is_file() {
        Node::File(mode, std::fs::read(path).unwrap_or_default())
    } else if t.is_dir() {
        Node::Dir(mode)
    } else {
        Node::Other
    };
    let is_dir = matches!(node, Node::Dir(_));
    tree.insert(rel, node);
    if is_dir {
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                walk(root, &e.path(), tree);
            }
        }
    }
}
