//! `echo-server`: echoes every byte back, optionally after a banner.
//!
//! A single-threaded tokio runtime by default: one core is plenty for
//! latency probes and thousands of idle held connections, and it leaves the
//! other core to the proxy under test.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Arguments of `echo-server`.
#[derive(Debug, clap::Args)]
pub(crate) struct EchoArgs {
    /// Address to listen on.
    #[arg(value_parser = crate::parse_addr)]
    addr: SocketAddr,
    /// Bytes sent to each client on accept, before echoing (escapes as in
    /// `connlat --payload`). Makes a server-speaks-first backend.
    #[arg(long)]
    banner: Option<String>,
    /// Worker threads (1 = a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Runs the echo server until killed.
pub(crate) fn run(args: EchoArgs) -> Result<()> {
    let banner = match &args.banner {
        Some(b) => crate::payload::unescape(b).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    crate::sys::raise_nofile();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(serve(args.addr, banner))
}

async fn serve(addr: SocketAddr, banner: Vec<u8>) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let banner: &'static [u8] = Box::leak(banner.into_boxed_slice());
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                tokio::spawn(echo(sock, banner));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("echo-server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn echo(mut sock: TcpStream, banner: &'static [u8]) {
    let _ = sock.set_nodelay(true);
    if !banner.is_empty() && sock.write_all(banner).await.is_err() {
        return;
    }
    // Small buffer: thousands of held connections each own one.
    let mut buf = [0u8; 2048];
    loop {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if sock.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sock.shutdown().await;
}
