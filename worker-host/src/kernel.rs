//! A persistent Jupyter client for one sandbox's kernel, over ZMQ IPC sockets.
//!
//! The kernel binds its sockets in a host directory bind-mounted into the container; this
//! client connects from the host side and keeps the channels open for the session's life.
//! Reader tasks drain `iopub` and `shell` into channels so that no message is lost when a
//! caller stops waiting (timeouts), and a heartbeat probe detects a dead kernel.

use crate::output::{Collected, OutputCollector};
use jupyter_protocol::connection_info::{ConnectionInfo, Transport};
use jupyter_protocol::messaging::{
    ExecuteRequest, ExecutionState, InterruptRequest, JupyterMessage, JupyterMessageContent,
    KernelInfoRequest,
};
use jupyter_zmq_client as zmq;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tether_protocol::Output;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

/// Why talking to the kernel failed. All variants mean the kernel cannot be trusted
/// any more; the caller restarts it or recycles the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("kernel sockets did not appear within {0:?}")]
    SocketsMissing(Duration),
    #[error("kernel did not answer kernel_info within {0:?}")]
    NotReady(Duration),
    #[error("kernel channel failed: {0}")]
    Channel(String),
}

/// Socket-file suffixes for the five channels (IPC "ports").
const SHELL: u16 = 1;
const IOPUB: u16 = 2;
const STDIN: u16 = 3;
const CONTROL: u16 = 4;
const HB: u16 = 5;

/// The pair of connection descriptions: what the kernel sees inside the container, and
/// what the host connects to. Same key and suffixes, different path prefix.
#[derive(Debug, Clone)]
pub struct KernelEndpoints {
    /// Written to `kernel.json` for the kernel (container paths).
    pub in_container: ConnectionInfo,
    /// Used by the host client (host paths).
    pub on_host: ConnectionInfo,
    /// Host directory holding the sockets.
    pub host_dir: PathBuf,
}

impl KernelEndpoints {
    /// Fresh endpoints with a new random HMAC key. `host_dir` is mounted at `container_dir`.
    pub fn new(host_dir: &Path, container_dir: &str) -> Self {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let info = |prefix: String| ConnectionInfo {
            ip: prefix,
            transport: Transport::IPC,
            shell_port: SHELL,
            iopub_port: IOPUB,
            stdin_port: STDIN,
            control_port: CONTROL,
            hb_port: HB,
            key: key.clone(),
            signature_scheme: "hmac-sha256".into(),
            kernel_name: Some("python3".into()),
        };
        Self {
            in_container: info(format!("{container_dir}/k")),
            on_host: info(host_dir.join("k").to_string_lossy().into_owned()),
            host_dir: host_dir.to_path_buf(),
        }
    }

    fn socket_paths(&self) -> Vec<PathBuf> {
        [SHELL, IOPUB, STDIN, CONTROL, HB]
            .iter()
            .map(|p| self.host_dir.join(format!("k-{p}")))
            .collect()
    }
}

/// How an execution request ended, before any recovery.
#[derive(Debug)]
pub enum ExecEnd {
    /// The kernel went idle for our request.
    Completed(Collected),
    /// The deadline passed first; the kernel may still be busy.
    DeadlinePassed(Collected),
    /// The kernel's channels closed.
    KernelLost(Collected),
    /// The kernel missed a heartbeat while the request ran: it died, or it is starved of
    /// CPU on an overloaded host. The caller decides (the container's state tells).
    Silent(Collected),
}

/// A connected kernel.
pub struct KernelClient {
    shell: zmq::DealerSendConnection,
    control: zmq::ClientControlConnection,
    iopub_rx: mpsc::UnboundedReceiver<JupyterMessage>,
    shell_rx: mpsc::UnboundedReceiver<JupyterMessage>,
    endpoints: KernelEndpoints,
    readers: Vec<JoinHandle<()>>,
    /// When the kernel last proved alive (ready, or finished a request).
    last_seen: Instant,
}

impl std::fmt::Debug for KernelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelClient")
            .field("dir", &self.endpoints.host_dir)
            .finish_non_exhaustive()
    }
}

impl Drop for KernelClient {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

impl KernelClient {
    /// Wait for the kernel's socket files, connect every channel, and wait until the
    /// kernel answers on shell and iopub (so no early output is missed).
    pub async fn connect(endpoints: &KernelEndpoints, wait: Duration) -> Result<Self, KernelError> {
        let deadline = Instant::now() + wait;
        while !endpoints.socket_paths().iter().all(|p| p.exists()) {
            if Instant::now() >= deadline {
                return Err(KernelError::SocketsMissing(wait));
            }
            sleep(Duration::from_millis(10)).await;
        }
        let info = &endpoints.on_host;
        let session = uuid::Uuid::new_v4().to_string();
        let chan = |e: zmq::RuntimeError| KernelError::Channel(e.to_string());
        let identity = zmq::peer_identity_for_session(&session).map_err(chan)?;
        let shell = zmq::create_client_shell_connection_with_identity(info, &session, identity)
            .await
            .map_err(chan)?;
        let iopub = zmq::create_client_iopub_connection(info, "", &session)
            .await
            .map_err(chan)?;
        let control = zmq::create_client_control_connection(info, &session)
            .await
            .map_err(chan)?;
        let (shell_send, shell_recv) = shell.split();
        let (iopub_tx, iopub_rx) = mpsc::unbounded_channel();
        let (shell_tx, shell_rx) = mpsc::unbounded_channel();
        let readers = vec![
            tokio::spawn(pump(iopub, iopub_tx)),
            tokio::spawn(pump(shell_recv, shell_tx)),
        ];
        let mut client = Self {
            shell: shell_send,
            control,
            iopub_rx,
            shell_rx,
            endpoints: endpoints.clone(),
            readers,
            last_seen: Instant::now(),
        };
        client.wait_ready(deadline).await?;
        Ok(client)
    }

    /// Send `kernel_info_request` until the kernel replies and its iopub status for that
    /// request reaches us (the subscription is live).
    async fn wait_ready(&mut self, deadline: Instant) -> Result<(), KernelError> {
        loop {
            let request = JupyterMessage::new(KernelInfoRequest {}, None);
            let id = request.header.msg_id.clone();
            self.shell
                .send(request)
                .await
                .map_err(|e| KernelError::Channel(e.to_string()))?;
            let attempt_end = (Instant::now() + Duration::from_millis(250)).min(deadline);
            let (mut replied, mut heard) = (false, false);
            while !(replied && heard) {
                tokio::select! {
                    m = self.shell_rx.recv() => match m {
                        Some(m) if parent_is(&m, &id) => replied = true,
                        Some(_) => {}
                        None => return Err(KernelError::Channel("shell closed".into())),
                    },
                    m = self.iopub_rx.recv() => match m {
                        Some(m) if parent_is(&m, &id) => heard = true,
                        Some(_) => {}
                        None => return Err(KernelError::Channel("iopub closed".into())),
                    },
                    _ = tokio::time::sleep_until(attempt_end) => break,
                }
            }
            if replied && heard {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(KernelError::NotReady(Duration::ZERO));
            }
        }
    }

    /// Run `code` and collect what it emits until the kernel is idle for it, the deadline
    /// passes, or the kernel is lost. Every output is also sent to `sink` as it arrives.
    pub async fn execute(
        &mut self,
        code: &str,
        deadline: Instant,
        collector: OutputCollector,
        sink: Option<&mpsc::UnboundedSender<Output>>,
        cancel: &CancellationToken,
    ) -> Result<(String, ExecEnd), KernelError> {
        let request = JupyterMessage::new(
            ExecuteRequest {
                code: code.to_owned(),
                silent: false,
                store_history: true,
                user_expressions: None,
                allow_stdin: false,
                // Requests are sent one at a time, so there is never a queued request to
                // abort; with `true`, ipykernel aborts the *next* request that arrives
                // shortly after an error or interrupt, which would lose it.
                stop_on_error: false,
            },
            None,
        );
        let id = request.header.msg_id.clone();
        self.shell
            .send(request)
            .await
            .map_err(|e| KernelError::Channel(e.to_string()))?;
        let end = self
            .collect(&id, deadline, collector, sink, Some(cancel))
            .await;
        Ok((id, end))
    }

    /// Keep collecting output for an earlier request (after an interrupt).
    pub async fn resume(
        &mut self,
        id: &str,
        deadline: Instant,
        collector: OutputCollector,
        sink: Option<&mpsc::UnboundedSender<Output>>,
        cancel: Option<&CancellationToken>,
    ) -> ExecEnd {
        self.collect(id, deadline, collector, sink, cancel).await
    }

    async fn collect(
        &mut self,
        id: &str,
        deadline: Instant,
        mut out: OutputCollector,
        sink: Option<&mpsc::UnboundedSender<Output>>,
        cancel: Option<&CancellationToken>,
    ) -> ExecEnd {
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);
        let mut heartbeat = tokio::time::interval(Duration::from_millis(1000));
        heartbeat.tick().await;
        loop {
            if out.idle && out.replied {
                self.last_seen = Instant::now();
                return ExecEnd::Completed(out.finish());
            }
            tokio::select! {
                biased;
                m = self.iopub_rx.recv() => match m {
                    Some(m) if parent_is(&m, id) => {
                        if let JupyterMessageContent::Status(s) = &m.content {
                            if s.execution_state == ExecutionState::Idle {
                                out.idle = true;
                            }
                        } else if let Some(output) = out.push(m.content) && let Some(sink) = sink {
                            let _ = sink.send(output);
                        }
                    }
                    Some(_) => {}
                    None => return ExecEnd::KernelLost(out.finish()),
                },
                m = self.shell_rx.recv() => match m {
                    Some(m) if parent_is(&m, id) => {
                        if let JupyterMessageContent::ExecuteReply(r) = &m.content {
                            out.execution_count = Some(r.execution_count.value());
                        }
                        out.replied = true;
                    }
                    Some(_) => {}
                    None => return ExecEnd::KernelLost(out.finish()),
                },
                _ = tokio::time::sleep_until(deadline) => return ExecEnd::DeadlinePassed(out.finish()),
                _ = cancel.cancelled() => return ExecEnd::DeadlinePassed(out.finish()),
                _ = heartbeat.tick() => {
                    if !self.alive(Duration::from_millis(1500)).await {
                        return ExecEnd::Silent(out.finish());
                    }
                }
            }
        }
    }

    /// Ask the kernel to interrupt the running cell (`interrupt_request` on control).
    pub async fn interrupt(&mut self) -> Result<(), KernelError> {
        self.control
            .send(JupyterMessage::new(InterruptRequest {}, None))
            .await
            .map_err(|e| KernelError::Channel(e.to_string()))?;
        // Drain the reply so the control socket stays in step; it is not needed.
        let _ = timeout(Duration::from_millis(500), self.control.read()).await;
        Ok(())
    }

    /// One heartbeat round trip on a fresh socket (a REQ socket that missed a reply
    /// cannot be reused, so each probe gets its own).
    pub async fn alive(&self, within: Duration) -> bool {
        let probe = async {
            let mut hb = zmq::create_client_heartbeat_connection(&self.endpoints.on_host).await?;
            hb.single_heartbeat().await
        };
        matches!(timeout(within, probe).await, Ok(Ok(())))
    }

    /// How long ago the kernel last proved alive.
    pub fn quiet_for(&self) -> Duration {
        self.last_seen.elapsed()
    }

    /// The endpoints this client is connected to.
    pub fn endpoints(&self) -> &KernelEndpoints {
        &self.endpoints
    }

    /// Discard anything still queued from earlier requests.
    pub fn drain_stale(&mut self) {
        while self.iopub_rx.try_recv().is_ok() {}
        while self.shell_rx.try_recv().is_ok() {}
    }
}

fn parent_is(message: &JupyterMessage, id: &str) -> bool {
    message
        .parent_header
        .as_ref()
        .is_some_and(|h| h.msg_id == id)
}

/// Forward every message a socket receives into a channel until either side closes.
async fn pump<S: zeromq::SocketRecv + Send>(
    mut conn: zmq::Connection<S>,
    tx: mpsc::UnboundedSender<JupyterMessage>,
) {
    loop {
        match conn.read().await {
            Ok(m) => {
                if tx.send(m).is_err() {
                    return;
                }
            }
            Err(zmq::RuntimeError::ZmqError(e)) => {
                tracing::debug!(error = %e, "kernel channel closed");
                return;
            }
            Err(zmq::RuntimeError::IoError(e)) => {
                tracing::debug!(error = %e, "kernel channel failed");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "skipping undecodable kernel message"),
        }
    }
}
