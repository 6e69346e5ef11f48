//! nginx in front of several signaling nodes, as docs/deploy.md sets it up (WebSocket
//! upgrade, no sticky sessions): what a client reconnecting "through the load balancer"
//! meets in a test. Missing nginx: a loud skip, or a failure under `CI=true`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::{free_port, unique};
use crate::require::missing;

/// An nginx process (one process, no daemon) on a loopback port, killed on drop.
pub struct LoadBalancer {
    addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

/// Where nginx is: on `PATH`, or in /usr/sbin (not on a user's `PATH` on Debian).
fn nginx() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("nginx"))
            .find(|f| f.is_file())
    });
    on_path.or_else(|| {
        let sbin = Path::new("/usr/sbin/nginx");
        sbin.is_file().then(|| sbin.to_path_buf())
    })
}

impl LoadBalancer {
    /// nginx in front of `nodes`. Each new connection goes to the first node that takes it,
    /// in order (the others are `backup` servers), so that a test knows where its clients
    /// land; a node that refuses connections (one that drains) is passed over, as nginx
    /// does for any failed upstream. `None` without nginx (a panic under `CI=true`).
    pub fn start(nodes: &[SocketAddr]) -> Option<Self> {
        let Some(nginx) = nginx() else {
            missing("nginx is not installed (Debian package nginx; .ci/run installs it)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("lb-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("temp dir for nginx");
        let port = free_port();
        let servers: String = nodes
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let backup = if i == 0 { "" } else { " backup" };
                format!("    server {addr} max_fails=1 fail_timeout=30s{backup};\n")
            })
            .collect();
        let d = dir.display();
        let conf = format!(
            "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream signaling {{
{servers}  }}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://signaling;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_connect_timeout 2s;
      proxy_read_timeout 1h;
      proxy_next_upstream error timeout;
    }}
  }}
}}
"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let lb = Self { addr, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {addr} within 10 s: {}",
                std::fs::read_to_string(lb.dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(lb)
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
