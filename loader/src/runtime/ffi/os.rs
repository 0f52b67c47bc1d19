//! What the operating system does for the ffi module: opening a library, sniffing a file's
//! header, `membarrier(2)`, and whether a library is still mapped.

use std::{fs::File, path::Path};

#[cfg(unix)]
pub(super) fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: loading a library runs its initializers. That is the point of a plugin system:
    // the user chose to load this file. RTLD_NOW resolves every symbol now, so a missing
    // dependency fails here rather than at the first call.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Into::into)
}

#[cfg(not(unix))]
pub(super) fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    // SAFETY: as above, loading runs the library's initializers, which the user asked for.
    unsafe { libloading::Library::new(path) }
}

/// Says why `file` is not a shared object, judging by its first bytes; `None` if it looks
/// like one (ELF, Mach-O or PE).
pub(super) fn not_a_shared_object(file: &File) -> Option<String> {
    let mut head = [0u8; 4];
    let n = match read_head(file, &mut head) {
        Ok(n) => n,
        Err(e) => return Some(format!("cannot read it: {e}")),
    };
    let head = &head[..n];
    const MAGICS: &[&[u8]] = &[
        b"\x7fELF",
        &[0xfe, 0xed, 0xfa, 0xce],
        &[0xfe, 0xed, 0xfa, 0xcf],
        &[0xce, 0xfa, 0xed, 0xfe],
        &[0xcf, 0xfa, 0xed, 0xfe],
        &[0xca, 0xfe, 0xba, 0xbe],
        b"MZ",
    ];
    if MAGICS.iter().any(|m| head.starts_with(m)) {
        None
    } else if n == 0 {
        Some("the file is empty".into())
    } else if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        Some("it is a text file".into())
    } else {
        Some(format!(
            "it starts with bytes {head:02x?}, not an ELF, Mach-O or PE header"
        ))
    }
}

#[cfg(unix)]
fn read_head(file: &File, head: &mut [u8]) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, head, 0)
}

#[cfg(not(unix))]
fn read_head(mut file: &File, head: &mut [u8]) -> std::io::Result<usize> {
    std::io::Seek::rewind(&mut file)?;
    std::io::Read::read(&mut file, head)
}

/// Registers this process for `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, the heavy
/// fence of [`threads`]. `false` where the kernel does not offer it.
#[cfg(target_os = "linux")]
pub(crate) fn membarrier_register() -> bool {
    const QUERY: libc::c_int = 0;
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
    // SAFETY: membarrier(2) with QUERY and REGISTER_PRIVATE_EXPEDITED reads and writes no
    // memory of ours; it returns a bit mask, or -1 with errno set.
    let supported = unsafe { libc::syscall(libc::SYS_membarrier, QUERY, 0 as libc::c_int) };
    if supported < 0 || supported & PRIVATE_EXPEDITED == 0 {
        return false;
    }
    // SAFETY: as above.
    let registered = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            REGISTER_PRIVATE_EXPEDITED,
            0 as libc::c_int,
        )
    };
    registered == 0
}

/// Not available here: the fences of [`threads`] are full fences on both sides.
#[cfg(not(target_os = "linux"))]
pub(crate) fn membarrier_register() -> bool {
    false
}

/// Makes every running thread of this process execute a full memory barrier. Call only
/// after [`membarrier_register`] returned `true`. `false` if the kernel refused.
#[cfg(target_os = "linux")]
pub(crate) fn membarrier_expedited() -> bool {
    const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    // SAFETY: membarrier(2) with PRIVATE_EXPEDITED, after this process registered for it,
    // only interrupts this process's threads with a barrier; it touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0 as libc::c_int) == 0 }
}

/// Not available here.
#[cfg(not(target_os = "linux"))]
pub(crate) fn membarrier_expedited() -> bool {
    false
}

/// Where `addr` lies among the loaded objects: the span from the lowest to the highest
/// address of the object whose segments contain it, and the one segment (`PT_LOAD`) that does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Placement {
    /// The whole object. For an object `dlopen` mapped, the dynamic loader reserves this span
    /// and fills the gaps between segments with inaccessible mappings, so nothing else is
    /// mapped inside it. (The kernel maps the main executable and may leave gaps.)
    pub(super) object: (usize, usize),
    /// The segment holding `addr`: one mapping, with nothing else inside it.
    pub(super) segment: (usize, usize),
}

/// Finds [`Placement`] of `addr`; `None` if no loaded object's segment holds it.
#[cfg(target_os = "linux")]
pub(super) fn placement_of(addr: usize) -> Option<Placement> {
    struct Search {
        addr: usize,
        found: Option<Placement>,
    }

    extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid `dl_phdr_info` for the duration of this
        // callback, and `data` is the `Search` that `placement_of` passed, alive and not
        // otherwise borrowed until `dl_iterate_phdr` returns.
        let (info, search) = unsafe { (&*info, &mut *data.cast::<Search>()) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of a loaded object.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        let mut segment = None;
        for h in headers.iter().filter(|h| h.p_type == libc::PT_LOAD) {
            let start = (info.dlpi_addr as usize).wrapping_add(h.p_vaddr as usize);
            let end = start.saturating_add(h.p_memsz as usize);
            lo = lo.min(start);
            hi = hi.max(end);
            if start <= search.addr && search.addr < end {
                segment = Some((start, end));
            }
        }
        match segment {
            Some(segment) => {
                search.found = Some(Placement {
                    object: (lo, hi),
                    segment,
                });
                1
            }
            None => 0,
        }
    }

    let mut search = Search { addr, found: None };
    // SAFETY: `visit` neither unwinds (no operation in it panics) nor keeps any pointer it
    // is given; `search` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search).cast()) };
    search.found
}

/// Not looked for here.
#[cfg(not(target_os = "linux"))]
pub(super) fn placement_of(_addr: usize) -> Option<Placement> {
    None
}

/// `true` if nothing at all is mapped in `[lo, hi)` now, found by asking the kernel to map
/// an inaccessible placeholder there that may not replace anything (`MAP_FIXED_NOREPLACE`),
/// and removing it at once. Two system calls, against reading and searching all of
/// `/proc/self/maps`. `false` when anything is there, or on a kernel older than 4.17, which
/// takes the flag as a hint and maps elsewhere: then the caller reads the maps.
#[cfg(target_os = "linux")]
pub(crate) fn span_is_free((lo, hi): (usize, usize)) -> bool {
    // SAFETY: sysconf reads a constant.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let lo = lo & !(page - 1);
    let len = hi.saturating_add(page - 1) & !(page - 1);
    let Some(len) = len.checked_sub(lo).filter(|&l| l > 0) else {
        return false;
    };
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping (it fails with EEXIST
    // instead), so this touches no memory of ours; the placeholder is PROT_NONE and
    // anonymous, and is unmapped below before anyone can know its address.
    let placed = unsafe {
        libc::mmap(
            lo as *mut libc::c_void,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if placed == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: `placed` is the placeholder just mapped, `len` bytes long; nothing else uses it.
    unsafe { libc::munmap(placed, len) };
    placed as usize == lo
}

/// Not checked here: the caller asks the loader.
#[cfg(not(target_os = "linux"))]
pub(crate) fn span_is_free(_: (usize, usize)) -> bool {
    false
}

/// Whether a library at `path` is still mapped into this process.
#[cfg(target_os = "linux")]
pub(crate) fn is_mapped(path: &Path) -> Option<bool> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let needle = path.to_str()?;
    Some(maps.lines().any(|line| {
        line.split_once('/')
            .map(|(_, rest)| {
                let p = format!("/{rest}");
                p == needle || p.strip_suffix(" (deleted)") == Some(needle)
            })
            .unwrap_or(false)
    }))
}

/// Whether a library at `path` is still loaded, asked with `dlopen(RTLD_NOLOAD)`.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn is_mapped(path: &Path) -> Option<bool> {
    use libloading::os::unix::{Library, RTLD_LAZY};
    // SAFETY: RTLD_NOLOAD never loads anything, so no initializer runs; it only returns a
    // handle (with one more reference) if the library is already loaded, which we drop at once.
    match unsafe { Library::open(Some(path), RTLD_LAZY | libc::RTLD_NOLOAD) } {
        Ok(lib) => {
            let _ = lib.close();
            Some(true)
        }
        Err(_) => Some(false),
    }
}

/// Not checked on this platform.
#[cfg(not(unix))]
pub(crate) fn is_mapped(_path: &Path) -> Option<bool> {
    None
}

/// Limits a worker process runs under (`setrlimit`, set before it runs plugin code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChildLimits {
    /// `RLIMIT_AS`, bytes.
    pub(crate) address_space: Option<u64>,
    /// `RLIMIT_CPU`, seconds.
    pub(crate) cpu_seconds: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub(crate) open_files: Option<u64>,
}

/// Sets this process's `limits`; on failure, which limit and why. Raw system calls only:
/// safe between fork and exec.
#[cfg(target_os = "linux")]
pub(crate) fn set_limits(limits: ChildLimits) -> Result<(), (&'static str, std::io::Error)> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    for (name, resource, value) in [
        ("RLIMIT_AS", Resource::As, limits.address_space),
        ("RLIMIT_CPU", Resource::Cpu, limits.cpu_seconds),
        ("RLIMIT_NOFILE", Resource::Nofile, limits.open_files),
    ] {
        if let Some(v) = value {
            setrlimit(
                resource,
                Rlimit {
                    current: Some(v),
                    maximum: Some(v),
                },
            )
            .map_err(|e| (name, e.into()))?;
        }
    }
    Ok(())
}

/// Asks the kernel to kill this process when its parent exits; `Ok(Some(ppid))` if the
/// parent is not `parent` (it died before the request, or something else started us).
#[cfg(target_os = "linux")]
fn die_with(parent: rustix::process::Pid) -> std::io::Result<Option<u32>> {
    use rustix::process::Signal;
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    // The parent may have died before the line above: then no signal will come.
    let actual = rustix::process::getppid();
    if actual != Some(parent) {
        return Ok(Some(actual.map_or(0, |p| p.as_raw_nonzero().get() as u32)));
    }
    Ok(None)
}

/// Makes the child `cmd` will start die with this process (`PR_SET_PDEATHSIG`, `SIGKILL`),
/// and sets its resource limits. Call `spawn` from a thread that lives as long as the
/// process: the kernel sends the signal when the spawning *thread* exits. For a program the
/// host does not control (an exec plugin): `plg-worker` does the same to itself instead
/// ([`adopt_worker`]), so that it can be started without a fork.
/// With `cgroup_procs`, the child first joins that cgroup (writes `0` to its `cgroup.procs`).
#[cfg(all(feature = "isolation", target_os = "linux"))]
pub(crate) fn die_with_parent(
    cmd: &mut std::process::Command,
    limits: ChildLimits,
    cgroup_procs: Option<std::ffi::CString>,
) {
    use std::os::unix::process::CommandExt;
    let parent = rustix::process::getpid();
    let hook = move || -> std::io::Result<()> {
        if die_with(parent)?.is_some() {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        if let Some(procs) = &cgroup_procs {
            use rustix::fs::{Mode, OFlags};
            let fd = rustix::fs::open(
                procs.as_c_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
                Mode::RUSR | Mode::WUSR,
            )?;
            rustix::io::write(&fd, b"0")?;
        }
        // Descriptors the host opened without close-on-exec (a C library's, say) must not
        // reach the plugin: mark everything above stderr close-on-exec. Best effort: a kernel
        // older than 5.11 refuses the flag, and nothing is marked.
        // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC closes nothing now; it only sets a
        // flag on descriptors, is a single system call (async-signal-safe) and touches no
        // memory. The descriptors std needs until exec (its error pipe) are close-on-exec
        // already.
        let _ = unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
        set_limits(limits).map_err(|(_, e)| e)
    };
    // SAFETY: the hook runs in the child between fork and exec, where only async-signal-safe
    // work is allowed. It makes raw system calls through rustix and libc (prctl, getppid,
    // open, write, close, close_range, setrlimit) on a path built before the fork, allocates
    // nothing (errors are raw OS error numbers) and takes no lock.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Part of what [`die_with_parent`] does in the child, done by `plg-worker` to itself first
/// thing in `main`: asks to die with `parent`. `Ok(Some(ppid))` if its parent is another
/// process.
#[cfg(target_os = "linux")]
pub(crate) fn adopt_parent(parent: u32) -> std::io::Result<Option<u32>> {
    let pid = i32::try_from(parent)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    die_with(pid)
}

/// Closes every descriptor above stderr, for `plg-worker` at the start of `main`:
/// `close_range`, or where the kernel (before 5.9) or a seccomp profile refuses it, each
/// entry of `/proc/self/fd`.
#[cfg(target_os = "linux")]
pub(crate) fn close_inherited() -> std::io::Result<()> {
    // SAFETY: close_range(2) closes descriptors 3 and up. This runs at the start of `main`,
    // before anything in this process opened a descriptor it still uses (std opens none
    // before `main`), so nothing owned is closed under its owner. It touches no memory.
    if unsafe { libc::close_range(3, u32::MAX, 0) } == 0 {
        return Ok(());
    }
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in open {
        // SAFETY: as above, nothing in this process owns these descriptors (the one the
        // listing used is closed already: closing it again fails harmlessly with EBADF).
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Other platforms: nothing to adopt.
#[cfg(not(target_os = "linux"))]
pub(crate) fn adopt_parent(_parent: u32) -> std::io::Result<Option<u32>> {
    Ok(None)
}

/// Other platforms: nothing to close.
#[cfg(not(target_os = "linux"))]
pub(crate) fn close_inherited() -> std::io::Result<()> {
    Ok(())
}

/// Other platforms: limits are not set.
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_limits(_limits: ChildLimits) -> Result<(), (&'static str, std::io::Error)> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_empty_files_are_not_shared_objects() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("a.so");
        std::fs::write(&text, "hello").unwrap();
        assert_eq!(
            not_a_shared_object(&File::open(&text).unwrap()).as_deref(),
            Some("it is a text file")
        );
        let empty = dir.path().join("b.so");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(
            not_a_shared_object(&File::open(&empty).unwrap()).as_deref(),
            Some("the file is empty")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn libc_is_mapped_and_a_random_path_is_not() {
        assert_eq!(is_mapped(Path::new("/nonexistent/libx.so")), Some(false));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_span_is_free_only_when_nothing_at_all_is_mapped_there() {
        let here = a_span_is_free_only_when_nothing_at_all_is_mapped_there as fn() as usize;
        let own = placement_of(here)
            .expect("this test's own executable")
            .object;
        assert!(!span_is_free(own));
        let len = 16 * 4096;
        // Another test thread may map something into the freed range before the check: that
        // makes the answer (rightly) `false`, so three fresh tries must see it free once.
        let freed_and_free = (0..3).any(|_| {
            // SAFETY: a fresh anonymous mapping, unmapped below; nothing else uses it.
            let at = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(at, libc::MAP_FAILED);
            let span = (at as usize, at as usize + len);
            assert!(!span_is_free(span));
            assert!(
                !span_is_free((span.0 + len - 4096, span.1 + 4096)),
                "partly mapped"
            );
            // SAFETY: the mapping made above.
            unsafe { libc::munmap(at, len) };
            span_is_free(span)
        });
        assert!(freed_and_free);
    }
}
