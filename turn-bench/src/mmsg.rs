//! Batched UDP: `sendmmsg(2)` and `recvmmsg(2)`, up to [`BATCH`] datagrams a system call.
//!
//! Written against libc by hand because neither std nor socket2 offers them. Every datagram
//! stays a datagram of its own (no UDP GSO): the relays see what real clients would send.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// Datagrams per system call at most.
pub const BATCH: usize = 32;
/// The largest datagram a [`RecvBatch`] takes whole (ChannelData payloads are ≤ 1400 B).
const MAX_DATAGRAM: usize = 2048;

/// Sends `count` copies of `datagram` (at most [`BATCH`]) on `socket`, which must be
/// connected, in one `sendmmsg` call. Returns how many the kernel took.
pub fn send_copies(socket: &UdpSocket, datagram: &[u8], count: usize) -> io::Result<usize> {
    let count = count.min(BATCH);
    let mut iov = libc::iovec {
        iov_base: datagram.as_ptr() as *mut libc::c_void,
        iov_len: datagram.len(),
    };
    // SAFETY: an all-zero mmsghdr is valid (null pointers, zero lengths, no flags).
    let mut messages: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for m in &mut messages[..count] {
        // No msg_name: the socket is connected. The kernel only reads through `iov`.
        m.msg_hdr.msg_iov = &mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `count` headers each point at `iov`, which points at `datagram`;
    // both outlive the call, and the kernel reads no more than `count` headers.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            messages.as_mut_ptr(),
            count as libc::c_uint,
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Buffers for one `recvmmsg` call: up to [`BATCH`] datagrams of up to 2 KiB.
pub struct RecvBatch {
    buffers: Vec<[u8; MAX_DATAGRAM]>,
    lengths: [usize; BATCH],
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch {
            buffers: vec![[0u8; MAX_DATAGRAM]; BATCH],
            lengths: [0; BATCH],
        }
    }

    /// Waits for a datagram (at most the socket's read timeout, then an error), then takes
    /// whatever else is already queued, up to [`BATCH`]. Returns how many it took.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut iovs: Vec<libc::iovec> = self
            .buffers
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr() as *mut libc::c_void,
                iov_len: MAX_DATAGRAM,
            })
            .collect();
        // SAFETY: an all-zero mmsghdr is valid (null pointers, zero lengths, no flags).
        let mut messages: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (m, iov) in messages.iter_mut().zip(iovs.iter_mut()) {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: BATCH headers, each pointing at its own iovec and that at its own buffer
        // of MAX_DATAGRAM bytes, all alive for the call. MSG_WAITFORONE: block (up to the
        // socket's SO_RCVTIMEO) for the first datagram only; the null timeout is allowed.
        let received = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                messages.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        let received = received as usize;
        for (length, m) in self.lengths.iter_mut().zip(&messages[..received]) {
            *length = m.msg_len as usize;
        }
        Ok(received)
    }

    /// Datagram `i` of the last [`RecvBatch::recv`].
    pub fn datagram(&self, i: usize) -> &[u8] {
        &self.buffers[i][..self.lengths[i].min(MAX_DATAGRAM)]
    }
}
