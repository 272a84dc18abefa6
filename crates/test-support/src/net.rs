//! Loopback ports.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, read, released). Another process may take it before
/// the caller binds it, so servers started on it are retried on failure.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to `timeout` for `addr` to accept a TCP connection; true once it does.
pub fn wait_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A test server's process and where it listens. [`crate::Serve`] and [`crate::Distribution`] dereference to it,
/// so `srv.base`, `srv.url(..)`, `srv.host()` and `srv.port()` read the same on both.
#[derive(Debug)]
pub struct Listening {
    /// `http(s)://127.0.0.1:PORT`
    pub base: String,
    /// The address.
    pub addr: SocketAddr,
    /// The server process (`None` once killed).
    pub(crate) child: Option<std::process::Child>,
}

impl Listening {
    /// Absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The process id (0 once killed).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(std::process::Child::id)
            .unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL and reap (no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Both server handles read as their [`Listening`] (`srv.base`, `srv.url(..)`, ...).
macro_rules! deref_to_listening {
    ($($server:ty),*) => {$(
        impl std::ops::Deref for $server {
            type Target = Listening;

            fn deref(&self) -> &Listening {
                &self.listening
            }
        }

        impl std::ops::DerefMut for $server {
            fn deref_mut(&mut self) -> &mut Listening {
                &mut self.listening
            }
        }
    )*};
}

deref_to_listening!(crate::Serve, crate::Distribution);
