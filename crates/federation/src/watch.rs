//! Wakes the daemon's stages when another process (routerctl) writes the state database,
//! without polling: inotify on the database directory, filtered by SQLite's `data_version`
//! in each consumer so a stage is not woken by its own writes.

use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

struct InotifyFd(Inotify);

impl std::os::fd::AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// A counter that moves every time the database file or its WAL is written.
pub fn watch_database(db: &Path) -> std::io::Result<watch::Receiver<u64>> {
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(
        dir,
        AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
    )?;
    // SAFETY: the Inotify owns its descriptor and is moved into the AsyncFd, which drops it.
    let fd = unsafe { AsyncFd::register(InotifyFd(inotify))? };
    let (tx, rx) = watch::channel(0u64);
    let mut wal = name.clone();
    wal.push("-wal");
    tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return;
            };
            match guard.get_inner().0.read_events() {
                Ok(events) => {
                    if events.iter().any(|e| {
                        e.name.as_deref() == Some(name.as_os_str())
                            || e.name.as_deref() == Some(wal.as_os_str())
                    }) {
                        n += 1;
                        if tx.send(n).is_err() {
                            return;
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(_) => return,
            }
        }
    });
    Ok(rx)
}
