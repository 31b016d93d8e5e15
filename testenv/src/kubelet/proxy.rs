//! kube-proxy for the pods the kubelet stand-in runs: a Service's ClusterIP and port accept
//! connections and pass each to the next ready pod behind it, round robin. Listeners use
//! SO_REUSEPORT, so two stand-ins serving one Service do not collide.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One Service port and the pod addresses behind it.
pub struct Forward {
    pub endpoints: watch::Sender<Vec<SocketAddr>>,
    task: JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Forward {
    /// Listens on `address` and forwards to the current `endpoints`.
    pub fn start(address: SocketAddr, endpoints: Vec<SocketAddr>, label: String) -> Forward {
        let (endpoints, current) = watch::channel(endpoints);
        let task = tokio::spawn(async move {
            if let Err(error) = serve(address, current).await {
                eprintln!("kube-proxy {label} on {address}: {error:#}");
            }
        });
        Forward { endpoints, task }
    }
}

async fn serve(address: SocketAddr, endpoints: watch::Receiver<Vec<SocketAddr>>) -> Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    let listener = socket.listen(1024)?;
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let (inbound, _) = listener.accept().await?;
        let targets = endpoints.borrow().clone();
        let next = next.clone();
        tokio::spawn(async move {
            // The next pod that accepts; a connection to none is closed.
            for _ in 0..targets.len() {
                let target = targets[next.fetch_add(1, Ordering::Relaxed) % targets.len()];
                if let Ok(outbound) = TcpStream::connect(target).await {
                    let (mut inbound, mut outbound) = (inbound, outbound);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    return;
                }
            }
        });
    }
}
