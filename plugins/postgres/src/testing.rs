//! A throwaway PostgreSQL server for tests (feature `testing`).
//!
//! [`TempPostgres::start`] makes a new cluster in a fresh directory under the
//! system's temp dir, starts it on a free loopback port with `fsync` on, and
//! [`Drop`] stops it and removes the directory. The server programs come from
//! the machine's packages: `scripts/postgres.sh` at the root of the
//! repository finds them, and installs Debian's `postgresql` package first
//! when they are missing. PostgreSQL refuses to run as root, so under root the
//! cluster is made and run as the `postgres` user (which the package
//! creates), owning the directory.
//!
//! The server is a child of the test process. A test process killed with
//! `SIGKILL` leaves it running, with its directory; nothing else does.
//!
//! ```no_run
//! use warden_journal::Journal;
//! use warden_postgres::{testing::TempPostgres, PostgresJournal};
//!
//! let server = TempPostgres::start()?;
//! let journal = PostgresJournal::open(&server.create_database("demo")?)?;
//! assert_eq!(journal.append(&[b"fact".to_vec()])?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The superuser of every throwaway cluster (trust authentication, loopback only).
pub const USER: &str = "warden";
/// How long a new server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries with a new port, should another process take the chosen one between
/// choosing and binding it.
const START_TRIES: u32 = 3;

/// A running throwaway server; stopped and removed on drop.
#[derive(Debug)]
pub struct TempPostgres {
    dir: PathBuf,
    bindir: PathBuf,
    owner: Option<(u32, u32)>,
    server: Child,
    port: u16,
}

impl TempPostgres {
    /// Makes and starts a new cluster; see the [module docs](self).
    pub fn start() -> io::Result<Self> {
        let bindir = bindir()?;
        let dir = TempDir(fresh_dir()?);
        let made = Self::init_and_start(bindir, &dir.0)?;
        // From here on the server's own drop removes the directory.
        std::mem::forget(dir);
        Ok(made)
    }

    fn init_and_start(bindir: PathBuf, dir: &Path) -> io::Result<Self> {
        let owner = owner()?;
        if let Some((uid, gid)) = owner {
            chown(dir, Some(uid), Some(gid))?;
        }
        // `--no-sync`: a throwaway cluster need not survive a crash of the
        // machine before its first checkpoint; the server's own commits are
        // fsynced as usual.
        let init = as_owner(Command::new(bindir.join("initdb")), owner)
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"])
            .output()?;
        if !init.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed ({}): {}",
                init.status,
                String::from_utf8_lossy(&init.stderr)
            )));
        }
        let mut last_error = None;
        for _ in 0..START_TRIES {
            let port = free_port()?;
            let mut server = Unready(Some(spawn(&bindir, dir, owner, port)?));
            match wait_until_ready(server.child(), port) {
                Ok(()) => return Ok(Self { dir: dir.to_path_buf(), bindir, owner, server: server.ready(), port }),
                Err(e) => {
                    drop(server);
                    last_error = Some(with_log(dir, e));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("postgres did not start")))
    }

    /// Crashes the server and starts it again on the same data and port:
    /// an immediate shutdown (`SIGQUIT`) writes nothing more, so the restart
    /// runs PostgreSQL's crash recovery from its write-ahead log.
    pub fn crash_and_restart(&mut self) -> io::Result<()> {
        self.stop_now();
        let mut server = Unready(Some(spawn(&self.bindir, &self.dir, self.owner, self.port)?));
        wait_until_ready(server.child(), self.port).map_err(|e| with_log(&self.dir, e))?;
        self.server = server.ready();
        Ok(())
    }

    /// Immediate shutdown: the server and its children exit at once.
    fn stop_now(&mut self) {
        if let Ok(Some(_)) = self.server.try_wait() {
            // Already gone and reaped: its pid may name another process now.
            return;
        }
        // SAFETY: `kill` has no memory effects; the pid is our own child,
        // not yet reaped, so it cannot name another process.
        unsafe {
            libc::kill(self.server.id() as libc::pid_t, libc::SIGQUIT);
        }
        let _ = self.server.wait();
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the server (the postmaster).
    pub fn pid(&self) -> u32 {
        self.server.id()
    }

    /// The URL of the database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates the empty database `name` (lower-case letters, digits and
    /// `_`) and returns its URL: one per journal keeps tests apart.
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(io::Error::other(format!("database name `{name}` must be lower-case letters, digits and `_`")));
        }
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).map_err(io::Error::other)?;
        // Quoted: the name may be a keyword (`binary`, `user`); it holds no quote.
        client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).map_err(io::Error::other)?;
        Ok(self.url(name))
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // Nothing in a throwaway cluster is kept: no clean shutdown needed.
        self.stop_now();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory removed when dropped, until the server that lives in it is up.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server started but not yet known to accept connections: killed if
/// dropped, so a failed or panicking start leaves no server behind.
struct Unready(Option<Child>);

impl Unready {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("present until ready")
    }

    fn ready(mut self) -> Child {
        self.0.take().expect("present until ready")
    }
}

impl Drop for Unready {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The directory of the server programs, from `scripts/postgres.sh` (which
/// installs them when missing), found once per process.
fn bindir() -> io::Result<PathBuf> {
    static BINDIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BINDIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("could not run `{}`: {e}", script.display()))?;
        if !output.status.success() {
            return Err(format!("`{}` failed ({}): PostgreSQL is not available", script.display(), output.status));
        }
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(PathBuf::from(dir))
    });
    found.clone().map_err(io::Error::other)
}

/// The `postgres` user's ids when running as root (the server refuses
/// root), `None` otherwise.
fn owner() -> io::Result<Option<(u32, u32)>> {
    // SAFETY: `geteuid` only reads the process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    // SAFETY: the name is a valid C string; the returned entry is read at
    // once, before any other call that could overwrite it.
    let entry = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if entry.is_null() {
        return Err(io::Error::other(
            "running as root needs the `postgres` user to run the server (the postgresql package creates it)",
        ));
    }
    // SAFETY: checked non-null just above.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some((uid, gid)))
}

/// `command` set to run as `owner`, if given.
fn as_owner(mut command: Command, owner: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

/// A new, empty directory under the temp dir, unique in this process and
/// named after it.
fn fresh_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("warden-pg-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// A loopback port free right now.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `error` with the server's log, which is removed with the directory.
fn with_log(dir: &Path, error: io::Error) -> io::Error {
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    io::Error::other(format!("{error}; server log:\n{log}"))
}

/// Starts the server of the cluster in `dir` on `port`, logging to
/// `dir/server.log`.
fn spawn(bindir: &Path, dir: &Path, owner: Option<(u32, u32)>, port: u16) -> io::Result<Child> {
    let log = File::options().create(true).append(true).open(dir.join("server.log"))?;
    as_owner(Command::new(bindir.join("postgres")), owner)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "synchronous_commit=on"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

/// Waits until the server accepts a connection, or fails if it exits or
/// takes longer than [`START_TIMEOUT`].
fn wait_until_ready(server: &mut Child, port: u16) -> io::Result<()> {
    let url = format!("postgresql://{USER}@127.0.0.1:{port}/postgres?connect_timeout=2");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = server.try_wait()? {
            return Err(io::Error::other(format!("postgres exited while starting ({status})")));
        }
        if postgres::Client::connect(&url, postgres::NoTls).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!("postgres did not accept connections within {START_TIMEOUT:?}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
