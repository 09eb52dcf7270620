//! The built-in services, so the story needs nothing but the binary:
//! on the internet the library (TCP, door 22), the crosswords (UDP echo,
//! door 1194), the website (door 80) and, on its loopback only, a sink
//! for the tunnel's throughput figure; on the router, depending on the
//! policy, the captive portal and the HTTP CONNECT proxy.
//!
//! Every listener is created inside its namespace and then driven by tokio
//! on the caller's runtime. All tasks live in one [`JoinSet`]: dropping
//! [`Services`] (or [`Services::stop`]) ends every listener and every
//! connection. Each service bounds its connections, its reads and its
//! idle time.

pub mod library;
pub(crate) mod proxy;
pub(crate) mod sshd;
pub mod web;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::lab::Lab;
use crate::plan::addr::{ports, Role};

/// Connections one service handles at once; more wait in the backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long `stop` waits for tasks to end.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The running services of one lab.
#[derive(Debug)]
pub struct Services {
    tasks: JoinSet<()>,
    /// Where the library listens (inside the internet namespace), if
    /// this set has the internet's services.
    pub library: Option<SocketAddr>,
    /// Where the website listens (inside the internet namespace), if
    /// this set has the internet's services.
    pub website: Option<SocketAddr>,
}

/// Where to put the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibraryPlace {
    /// On door 22 of the internet server (the default).
    Door22,
    /// On the internet's loopback, port 2222, because a real sshd has door
    /// 22 (`--real-ssh`).
    BehindSshd,
}

async fn accept_loop<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Connections live in this set, so they end with the loop.
    let mut conns = JoinSet::new();
    loop {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let fut = handle(stream);
                conns.spawn(async move {
                    fut.await;
                    drop(permit);
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn crosswords(socket: UdpSocket) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // Never spin on a persistent error.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut reply = b"crosswords: ".to_vec();
        reply.extend_from_slice(&buf[..n.min(1024)]);
        let _ = socket.send_to(&reply, from).await;
    }
}

/// How long the sink waits for the next bytes before it gives up.
const SINK_IDLE: Duration = Duration::from_secs(5);

/// The sink: count every byte until the writer closes its side, then say
/// `COUNTED n` and close.
pub async fn sink(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        match tokio::time::timeout(SINK_IDLE, stream.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => total += n as u64,
            _ => return,
        }
    }
    let _ = stream
        .write_all(format!("COUNTED {total}\n").as_bytes())
        .await;
    let _ = stream.shutdown().await;
}

fn tokio_listener(l: std::net::TcpListener) -> io::Result<TcpListener> {
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

impl Services {
    /// Open every service the lab's policy needs. Must be called on a
    /// tokio runtime.
    pub async fn start(lab: &Lab, place: LibraryPlace) -> io::Result<Services> {
        let mut s = Services::router(lab).await?;
        s.open_internet(lab, place).await?;
        Ok(s)
    }

    /// Open only the router's services the policy needs (the captive
    /// portal, the proxy): the internet's doors stay free, e.g. for the
    /// probe's reflector. Must be called on a tokio runtime.
    pub async fn router(lab: &Lab) -> io::Result<Services> {
        let plan = lab.plan();
        let mut tasks = JoinSet::new();
        if lab.policy().has_portal() {
            let l = tokio_listener(lab.tcp_listener(Role::Router, plan.portal().into())?)?;
            tasks.spawn(accept_loop(l, |s| web::session(s, web::Page::Portal)));
        }
        if lab.policy().uses_proxy() {
            let l = tokio_listener(lab.tcp_listener(Role::Router, plan.proxy().into())?)?;
            let plan = Arc::new(plan.clone());
            let router = Arc::clone(lab.netns(Role::Router));
            tasks.spawn(accept_loop(l, move |s| {
                proxy::session(s, Arc::clone(&plan), Arc::clone(&router))
            }));
        }
        Ok(Services {
            tasks,
            library: None,
            website: None,
        })
    }

    /// Add the internet's services: the library, the website and the
    /// crosswords.
    pub async fn open_internet(&mut self, lab: &Lab, place: LibraryPlace) -> io::Result<()> {
        let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        let library = match place {
            LibraryPlace::Door22 => any(ports::LIBRARY),
            LibraryPlace::BehindSshd => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, ports::LIBRARY_BEHIND_SSHD))
            }
        };
        let website = any(ports::WEBSITE);
        let l = tokio_listener(lab.tcp_listener(Role::Internet, library)?)?;
        self.tasks.spawn(accept_loop(l, library::session));
        let l = tokio_listener(lab.tcp_listener(Role::Internet, website)?)?;
        self.tasks
            .spawn(accept_loop(l, |s| web::session(s, web::Page::Website)));
        let u = lab.udp_socket(Role::Internet, any(ports::CROSSWORDS))?;
        u.set_nonblocking(true)?;
        self.tasks.spawn(crosswords(UdpSocket::from_std(u)?));
        let sink_at = SocketAddr::from((Ipv4Addr::LOCALHOST, ports::SINK));
        let l = tokio_listener(lab.tcp_listener(Role::Internet, sink_at)?)?;
        self.tasks.spawn(accept_loop(l, sink));
        self.library = Some(library);
        self.website = Some(website);
        Ok(())
    }

    /// End every service and connection, and wait (bounded) until their
    /// sockets are closed.
    pub async fn stop(mut self) {
        self.tasks.abort_all();
        let _ = tokio::time::timeout(STOP_TIMEOUT, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
    }
}
