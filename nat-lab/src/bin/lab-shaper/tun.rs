//! A TUN device the shaper reads IP packets from and writes them back to: Linux's
//! `/dev/net/tun` with `TUNSETIFF` (no crate for it in the workspace's lock, and the ioctl
//! is one call), non-blocking and driven by tokio's `AsyncFd`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use tokio::io::unix::AsyncFd;

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags (a union in C, 24
/// bytes on 64-bit Linux after the name).
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// An attached TUN device (IFF_TUN, IFF_NO_PI: plain IP packets, no header).
pub struct Tun {
    fd: AsyncFd<File>,
}

impl Tun {
    /// Attaches to the device `name` in this network namespace: the persistent one
    /// `scripts/nat-lab shape` made, or a new one that goes away with this process.
    pub fn attach(name: &str) -> io::Result<Tun> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a device name of 1 to 15 bytes, not {name:?}"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            _rest: [0; 22],
        };
        for (slot, byte) in req.name.iter_mut().zip(name.bytes()) {
            *slot = byte as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is (laid out
        // as C does, and as large); the fd is open for the call's duration.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `file` owns the fd, and `Tun` neither closes nor replaces it while
        // the AsyncFd holds it.
        let fd = unsafe { AsyncFd::register(file)? };
        Ok(Tun { fd })
    }

    /// Waits until a packet can be read, then reads every packet there is into `each`.
    pub async fn read_all(&self, mut each: impl FnMut(Vec<u8>)) -> io::Result<()> {
        let mut guard = self.fd.readable().await?;
        let mut buf = vec![0u8; 65_536];
        loop {
            match guard.try_io(|f| {
                let mut file: &File = f.get_ref();
                file.read(&mut buf)
            }) {
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(n)) => each(buf[..n].to_vec()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                // Drained: the readiness is cleared, the next call waits again.
                Err(_would_block) => return Ok(()),
            }
        }
    }

    /// Writes one packet back: the kernel takes it as received on the device.
    pub fn write(&self, packet: &[u8]) -> io::Result<()> {
        let mut file: &File = self.fd.get_ref();
        file.write(packet).map(drop)
    }
}
