//! Relaying a TCP session both ways with half-close: splice(2) through a
//! pipe when both ends are plain sockets (the bytes never enter user space),
//! else a copy through a buffer. Buffers and pipes are taken from a
//! per-thread pool while data moves and given back when a side would block,
//! so an idle session holds neither. One idle deadline per session, looked
//! at lazily, replaces a timer per read.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use nix::fcntl::{OFlag, SpliceFFlags, splice};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes a copy moves per read (a TLS record's worth).
const BUFFER: usize = 16 * 1024;
/// Bytes a splice moves per call at most (the default pipe size).
const PIPE: usize = 64 * 1024;
/// Buffers or pipes each thread keeps for the next session.
const POOLED: usize = 64;

/// How a session ended: HAProxy's termination state (tcplog `%ts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Both sides closed: `--`.
    Normal,
    /// The client reset or failed: `CD`.
    ClientAborted,
    /// The server reset or failed: `SD`.
    ServerAborted,
    /// Nothing moved for the client timeout: `cD`.
    ClientTimeout,
    /// Nothing moved for the server timeout: `sD`.
    ServerTimeout,
}

impl End {
    /// The two-letter termination state.
    pub fn code(self) -> &'static [u8; 2] {
        match self {
            End::Normal => b"--",
            End::ClientAborted => b"CD",
            End::ServerAborted => b"SD",
            End::ClientTimeout => b"cD",
            End::ServerTimeout => b"sD",
        }
    }
}

/// What a relay did: bytes client→server, server→client, and how it ended.
#[derive(Debug)]
pub struct Traffic {
    pub up: u64,
    pub down: u64,
    pub end: End,
}

/// Inactivity limits of each side (HAProxy's `timeout client` and `timeout
/// server`): the session ends when nothing moved either way for the limit
/// of a side still being read (the shorter when both are).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub client: Duration,
    pub server: Duration,
}

/// Which side of a direction failed.
enum Fault {
    Read,
    Write,
}

/// When anything last moved, in ms since the session began.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Relays between two plain sockets with splice(2). `read_client` and
/// `read_server` are told the bytes read from each side as they move.
pub async fn splice_sockets(
    client: &TcpStream,
    server: &TcpStream,
    timeouts: Timeouts,
    read_client: impl Fn(u64),
    read_server: impl Fn(u64),
) -> Traffic {
    let activity = Activity::new();
    let (mut up, mut down) = (0, 0);
    let end = drive(
        splice_one_way(client, server, &activity, &read_client, &mut up),
        splice_one_way(server, client, &activity, &read_server, &mut down),
        timeouts,
        &activity,
    )
    .await;
    Traffic { up, down, end }
}

/// Relays between any two streams through a pooled buffer per direction.
pub async fn copy_streams<C, S>(client: C, server: S, timeouts: Timeouts) -> Traffic
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    let (mut up, mut down) = (0, 0);
    let end = drive(
        copy_one_way(&mut cr, &mut sw, &activity, &mut up),
        copy_one_way(&mut sr, &mut cw, &activity, &mut down),
        timeouts,
        &activity,
    )
    .await;
    Traffic { up, down, end }
}

/// Runs both directions until both ended, one failed, or the session was
/// idle too long.
async fn drive(
    up: impl Future<Output = Result<(), Fault>>,
    down: impl Future<Output = Result<(), Fault>>,
    timeouts: Timeouts,
    activity: &Activity,
) -> End {
    let (mut up, mut down) = (pin!(up), pin!(down));
    let (mut up_done, mut down_done) = (false, false);
    // The limit of the side(s) still being read, and how its expiry is logged.
    let limit = |up_done: bool, down_done: bool| match (up_done, down_done) {
        (false, true) => (timeouts.client, End::ClientTimeout),
        (true, false) => (timeouts.server, End::ServerTimeout),
        _ if timeouts.client <= timeouts.server => (timeouts.client, End::ClientTimeout),
        _ => (timeouts.server, End::ServerTimeout),
    };
    let mut idle = pin!(tokio::time::sleep(limit(false, false).0));
    loop {
        tokio::select! {
            biased;
            r = &mut up, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(Fault::Read) => return End::ClientAborted,
                Err(Fault::Write) => return End::ServerAborted,
            },
            r = &mut down, if !down_done => match r {
                Ok(()) => down_done = true,
                Err(Fault::Read) => return End::ServerAborted,
                Err(Fault::Write) => return End::ClientAborted,
            },
            () = &mut idle => {
                let (limit, end) = limit(up_done, down_done);
                let quiet = activity.quiet();
                if quiet >= limit {
                    return end;
                }
                idle.as_mut().reset(Instant::now() + (limit - quiet));
            }
        }
        if up_done && down_done {
            return End::Normal;
        }
    }
}

/// Splices `from` → `to` until `from` ends (then half-closes `to`).
async fn splice_one_way(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    counted: &impl Fn(u64),
    total: &mut u64,
) -> Result<(), Fault> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    loop {
        from.readable().await.map_err(|_| Fault::Read)?;
        let pipe = Pipe::take().map_err(|_| Fault::Read)?;
        let filled = from.try_io(Interest::READABLE, || {
            splice(from, None, &pipe.write, None, PIPE, flags).map_err(io::Error::from)
        });
        let mut in_pipe = match filled {
            Ok(0) => {
                pipe.give_back();
                let _ = socket2::SockRef::from(to).shutdown(Shutdown::Write);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pipe.give_back();
                continue;
            }
            Err(_) => return Err(Fault::Read),
        };
        counted(in_pipe as u64);
        activity.touch();
        while in_pipe > 0 {
            to.writable().await.map_err(|_| Fault::Write)?;
            let sent = to.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, to, None, in_pipe, flags).map_err(io::Error::from)
            });
            match sent {
                Ok(n) => {
                    in_pipe -= n;
                    *total += n as u64;
                    activity.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(Fault::Write),
            }
        }
        pipe.give_back();
    }
}

/// Copies `from` → `to` until `from` ends (then half-closes `to`).
async fn copy_one_way<R, W>(
    from: &mut R,
    to: &mut W,
    activity: &Activity,
    total: &mut u64,
) -> Result<(), Fault>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let mut buffer = Buffer::default();
        let n = poll_fn(|cx| buffer.poll_fill(Pin::new(&mut *from), cx))
            .await
            .map_err(|_| Fault::Read)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        activity.touch();
        to.write_all(buffer.filled(n))
            .await
            .map_err(|_| Fault::Write)?;
        *total += n as u64;
        activity.touch();
    }
}

thread_local! {
    static BUFFERS: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
    static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer held only while a read has data: taken from this thread's
/// pool for each read, given back when the read would block or when dropped.
#[derive(Default)]
struct Buffer(Option<Box<[u8]>>);

impl Buffer {
    fn poll_fill<R: AsyncRead>(
        &mut self,
        from: Pin<&mut R>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let bytes = self.0.get_or_insert_with(|| {
            BUFFERS
                .with(|pool| pool.borrow_mut().pop())
                .unwrap_or_else(|| vec![0; BUFFER].into_boxed_slice())
        });
        let mut read = ReadBuf::new(bytes);
        let polled = from.poll_read(cx, &mut read);
        let n = read.filled().len();
        if polled.is_pending() {
            self.give_back();
        }
        ready!(polled)?;
        Poll::Ready(Ok(n))
    }

    fn filled(&self, n: usize) -> &[u8] {
        self.0.as_deref().map_or(&[], |b| &b[..n])
    }

    fn give_back(&mut self) {
        if let Some(bytes) = self.0.take() {
            BUFFERS.with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.len() < POOLED {
                    pool.push(bytes);
                }
            });
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// A pipe for splice(2), non-blocking; pooled only when empty.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn take() -> io::Result<Pipe> {
        if let Some(pipe) = PIPES.with(|pool| pool.borrow_mut().pop()) {
            return Ok(pipe);
        }
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        Ok(Pipe { read, write })
    }

    /// Back to the pool; call only when the pipe is empty.
    fn give_back(self) {
        PIPES.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOLED {
                pool.push(self);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    fn timeouts(ms: u64) -> Timeouts {
        Timeouts {
            client: Duration::from_millis(ms),
            server: Duration::from_millis(ms * 10),
        }
    }

    /// client ⇄ [relay: near, far] ⇄ server, both relays on real sockets.
    async fn relayed(
        splice: bool,
        client_ms: u64,
    ) -> (TcpStream, TcpStream, tokio::task::JoinHandle<Traffic>) {
        let (client, near) = pair().await;
        let (far, server) = pair().await;
        let relay = tokio::spawn(async move {
            match splice {
                true => splice_sockets(&near, &far, timeouts(client_ms), |_| {}, |_| {}).await,
                false => copy_streams(near, far, timeouts(client_ms)).await,
            }
        });
        (client, server, relay)
    }

    #[tokio::test]
    async fn both_ways_with_half_close_and_byte_counts() {
        for splice in [true, false] {
            let (mut client, mut server, relay) = relayed(splice, 5_000).await;
            let payload: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
            client.write_all(&payload).await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, payload, "splice {splice}");
            server
                .write_all(b"answer after the client's half-close")
                .await
                .unwrap();
            drop(server);
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"answer after the client's half-close");
            let traffic = relay.await.unwrap();
            assert_eq!((traffic.up, traffic.down), (300_000, 36));
            assert_eq!(traffic.end, End::Normal, "splice {splice}");
        }
    }

    #[tokio::test]
    async fn idle_session_times_out_on_the_shorter_side() {
        for splice in [true, false] {
            let (_client, _server, relay) = relayed(splice, 100).await;
            let traffic = tokio::time::timeout(Duration::from_secs(5), relay).await;
            assert_eq!(traffic.unwrap().unwrap().end, End::ClientTimeout);
        }
    }

    #[tokio::test]
    async fn a_reset_client_is_a_client_abort() {
        for splice in [true, false] {
            let (client, _server, relay) = relayed(splice, 5_000).await;
            // SO_LINGER 0: close sends a reset.
            socket2::SockRef::from(&client)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(client);
            let traffic = tokio::time::timeout(Duration::from_secs(5), relay).await;
            assert_eq!(
                traffic.unwrap().unwrap().end,
                End::ClientAborted,
                "splice {splice}"
            );
        }
    }

    #[tokio::test]
    async fn a_reset_server_is_a_server_abort() {
        for splice in [true, false] {
            let (_client, server, relay) = relayed(splice, 5_000).await;
            socket2::SockRef::from(&server)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(server);
            let traffic = tokio::time::timeout(Duration::from_secs(5), relay).await;
            assert_eq!(
                traffic.unwrap().unwrap().end,
                End::ServerAborted,
                "splice {splice}"
            );
        }
    }

    #[test]
    fn codes() {
        let all = [
            End::Normal,
            End::ClientAborted,
            End::ServerAborted,
            End::ClientTimeout,
            End::ServerTimeout,
        ];
        let codes: Vec<&[u8; 2]> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [b"--", b"CD", b"SD", b"cD", b"sD"]);
    }
}
