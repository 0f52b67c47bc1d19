//! The library images this process has open, so that one image is never opened twice.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

/// The images this process has open through [`Library`]. glibc returns the same image for
/// the same path string or the same file (device and inode), and an image has one set of
/// statics (the plugin's state and stop flag), so plg opens each image at most once.
pub(super) static OPEN_IMAGES: Mutex<Vec<ImageKey>> = Mutex::new(Vec::new());

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ImageKey {
    path: PathBuf,
    file: Option<(u64, u64)>,
}

impl ImageKey {
    /// The key of `file`, opened from `path`.
    pub(super) fn of(path: &Path, file: &std::fs::File) -> Self {
        #[cfg(unix)]
        let file = {
            use std::os::unix::fs::MetadataExt;
            file.metadata().ok().map(|m| (m.dev(), m.ino()))
        };
        #[cfg(not(unix))]
        let file = {
            let _ = file;
            None
        };
        ImageKey {
            path: path.to_owned(),
            file,
        }
    }

    pub(super) fn same_image(&self, other: &ImageKey) -> bool {
        self.path == other.path || (self.file.is_some() && self.file == other.file)
    }
}

pub(super) fn release_image(key: &ImageKey) {
    let mut open = OPEN_IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = open.iter().position(|k| k == key) {
        open.swap_remove(i);
    }
}
