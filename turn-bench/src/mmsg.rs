//! Batched UDP: `sendmmsg(2)` and `recvmmsg(2)`, up to [`BATCH`] datagrams a system call.
//!
//! Written against libc by hand because neither std nor socket2 offers them. Every datagram
//! stays a datagram of its own (no UDP GSO): the relays see what real clients would send;
//! [`send_run`] (`--client-gso`) sends a burst as one GSO run instead.

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

/// Makes every send on `socket` leave as a GSO run of `size`-byte datagrams
/// (`UDP_SEGMENT`): a send of several frames put one after the other is cut into them.
pub fn set_gso_segment(socket: &UdpSocket, size: usize) -> io::Result<()> {
    let size = libc::c_int::try_from(size).map_err(|_| io::ErrorKind::InvalidInput)?;
    set_udp_option(socket, libc::UDP_SEGMENT, size)
}

/// Sets UDP-level socket option `option` to `value`.
fn set_udp_option(socket: &UdpSocket, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid socket and a pointer to an int of the size given.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            option,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `count` copies (at most [`BATCH`]) of a `datagram` as one GSO run on `socket`,
/// connected and set up with [`set_gso_segment`]; `copies` holds [`BATCH`] copies one
/// after the other. Returns how many were sent.
pub fn send_run(
    socket: &UdpSocket,
    copies: &[u8],
    datagram: usize,
    count: usize,
) -> io::Result<usize> {
    let count = count.min(BATCH);
    let sent = socket.send(&copies[..(count * datagram).min(copies.len())])?;
    Ok(sent / datagram.max(1))
}

/// Buffers for one `recvmmsg` call: up to [`BATCH`] datagrams of up to 2 KiB, or with
/// [`RecvBatch::gro`] up to 64 KiB each (GSO runs the kernel hands over whole).
pub struct RecvBatch {
    buffers: Vec<Vec<u8>>,
    lengths: [usize; BATCH],
    /// Per datagram: the `UDP_GRO` control message's segment size, 0 without one.
    segment_sizes: [usize; BATCH],
    controls: Vec<[u8; CONTROL]>,
}

/// Control-message room per datagram: one `cmsghdr` and an `int`, aligned, with spare.
const CONTROL: usize = 64;
/// The largest datagram (a GSO run handed over whole).
const MAX_GRO: usize = 65_536;

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch::with_size(MAX_DATAGRAM)
    }

    /// For a socket with `UDP_GRO` on ([`enable_gro`]).
    pub fn gro() -> RecvBatch {
        RecvBatch::with_size(MAX_GRO)
    }

    fn with_size(size: usize) -> RecvBatch {
        RecvBatch {
            buffers: vec![vec![0u8; size]; BATCH],
            lengths: [0; BATCH],
            segment_sizes: [0; BATCH],
            controls: vec![[0u8; CONTROL]; BATCH],
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
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: an all-zero mmsghdr is valid (null pointers, zero lengths, no flags).
        let mut messages: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for ((m, iov), control) in messages
            .iter_mut()
            .zip(iovs.iter_mut())
            .zip(self.controls.iter_mut())
        {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            m.msg_hdr.msg_controllen = CONTROL as _;
        }
        // SAFETY: BATCH headers, each pointing at its own iovec (and that at its own buffer
        // of the iovec's length) and its own control buffer of CONTROL bytes, all alive for
        // the call. MSG_WAITFORONE: block (up to the socket's SO_RCVTIMEO) for the first
        // datagram only; the null timeout is allowed.
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
        for (i, m) in messages[..received].iter().enumerate() {
            self.lengths[i] = m.msg_len as usize;
            self.segment_sizes[i] = gro_segment_size(&m.msg_hdr);
        }
        Ok(received)
    }

    /// Datagram `i` of the last [`RecvBatch::recv`] (a whole GSO run with `UDP_GRO`).
    pub fn datagram(&self, i: usize) -> &[u8] {
        &self.buffers[i][..self.lengths[i].min(self.buffers[i].len())]
    }

    /// How many datagrams the sender sent as datagram `i`: more than 1 for a GSO run the
    /// kernel handed over whole.
    pub fn segments(&self, i: usize) -> usize {
        match self.segment_sizes[i] {
            0 => 1,
            size => self.lengths[i].div_ceil(size).max(1),
        }
    }
}

/// The segment size of a `UDP_GRO` control message in `header`'s control data, 0 if none.
fn gro_segment_size(header: &libc::msghdr) -> usize {
    // SAFETY: `header` is one recvmmsg filled in: its control pointer and length describe
    // control messages the kernel wrote into our buffer; the CMSG_* macros stay inside it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                let value = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                return value.max(0) as usize;
            }
            cmsg = libc::CMSG_NXTHDR(header, cmsg);
        }
    }
    0
}

/// Turns `UDP_GRO` on: the kernel hands a GSO run over whole, as one datagram with its
/// segment size in a control message, instead of cutting it into its datagrams first.
pub fn enable_gro(socket: &UdpSocket) -> io::Result<()> {
    set_udp_option(socket, libc::UDP_GRO, 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A socket whose sends leave as GSO runs of `size`-byte datagrams.
    fn gso_sender(size: usize) -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        set_gso_segment(&socket, size).unwrap();
        socket
    }

    fn sink(gro: bool) -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        if gro {
            enable_gro(&socket).unwrap();
        }
        socket
    }

    #[test]
    fn a_run_sent_by_send_run_arrives_as_its_datagrams() {
        let sender = gso_sender(10);
        let receiver = sink(false);
        sender.connect(receiver.local_addr().unwrap()).unwrap();
        let copies = [5u8; 10 * BATCH];
        assert_eq!(send_run(&sender, &copies, 10, 3).unwrap(), 3);
        let mut batch = RecvBatch::new();
        let mut lengths = Vec::new();
        while lengths.len() < 3 {
            let n = batch.recv(&receiver).unwrap();
            lengths.extend((0..n).map(|i| batch.datagram(i).len()));
        }
        assert_eq!(lengths, [10, 10, 10]);
    }

    #[test]
    fn a_gso_run_counts_as_its_datagrams_with_gro_and_without() {
        let sender = gso_sender(100);
        // Three datagrams of 100 bytes and a last one of 50, in one send.
        let run = [7u8; 350];

        let whole = sink(true);
        sender.send_to(&run, whole.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::gro();
        assert_eq!(batch.recv(&whole).unwrap(), 1);
        assert_eq!(batch.datagram(0).len(), 350);
        assert_eq!(batch.segments(0), 4);

        let cut = sink(false);
        sender.send_to(&run, cut.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new();
        let mut lengths = Vec::new();
        while lengths.len() < 4 {
            let n = batch.recv(&cut).unwrap();
            for i in 0..n {
                assert_eq!(batch.segments(i), 1);
                lengths.push(batch.datagram(i).len());
            }
        }
        assert_eq!(lengths, [100, 100, 100, 50]);
    }
}
