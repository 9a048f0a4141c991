//! The listener: binds the loopback address, accepts connections and serves each one, h2c or
//! HTTP/1.1 by how the client opens it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cli::Cli;
use crate::shared::Shared;
use crate::{h2c, http1};

#[cfg(test)]
mod tests;

/// Listens on `--listen` (its port written to `--port-file`) and serves every connection until
/// SIGTERM or Ctrl-C.
pub async fn serve(cli: Cli, shared: Arc<Shared>) -> Result<(), String> {
    let socket = match cli.listen {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
    socket
        .bind(cli.listen)
        .map_err(|e| format!("cannot bind {}: {e}", cli.listen))?;
    let listener = socket.listen(cli.backlog).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(path) = &cli.port_file {
        std::fs::write(path, format!("{}\n", addr.port()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!("listening on {addr}");
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    eprintln!("llm-judge-mock: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(shared.clone(), stream));
    }
}

/// True when the client opens with the HTTP/2 preface (h2c with prior knowledge).
async fn opens_with_h2_preface(stream: &tokio::net::TcpStream) -> std::io::Result<bool> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
    let mut first = [0u8; 3];
    loop {
        let n = stream.peek(&mut first).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if n == first.len() || !PREFACE.starts_with(&first[..n]) {
            return Ok(PREFACE.starts_with(&first[..n]));
        }
        // "P" or "PR" so far: wait for the rest.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Serves one connection: h2c on [`h2c::serve`] when the client opens with the HTTP/2
/// preface, otherwise HTTP/1.1 on [`http1::serve`].
async fn serve_connection(shared: Arc<Shared>, stream: tokio::net::TcpStream) {
    let _open = OpenConn::new(shared.clone());
    match opens_with_h2_preface(&stream).await {
        Ok(false) => http1::serve(shared, stream).await,
        Ok(true) => h2c::serve(shared, stream).await,
        Err(_) => {}
    }
}

/// Counts a connection, and keeps it counted as open for as long as it lives.
struct OpenConn(Arc<Shared>);

impl OpenConn {
    fn new(shared: Arc<Shared>) -> OpenConn {
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        shared
            .stats
            .open_connections
            .fetch_add(1, Ordering::Relaxed);
        OpenConn(shared)
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0
            .stats
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}
