//! Socket addresses between Rust and the UCX C API: an owned C address for the length of a
//! call that reads it ([`RawSockAddr`]), and the reverse for addresses UCX fills in
//! ([`socket_addr_from_storage`]). Endpoints connect to one; listeners bind one and report the
//! peers of their connection requests with the other.

use std::net::SocketAddr;

/// Owned C socket address for the duration of a UCX call.
pub(crate) enum RawSockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl RawSockAddr {
    pub(crate) fn new(addr: SocketAddr) -> RawSockAddr {
        match addr {
            SocketAddr::V4(v4) => {
                // SAFETY: sockaddr_in is plain old data; all-zero is valid.
                let mut raw: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                raw.sin_family = libc::AF_INET as libc::sa_family_t;
                raw.sin_port = v4.port().to_be();
                raw.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
                RawSockAddr::V4(raw)
            }
            SocketAddr::V6(v6) => {
                // SAFETY: sockaddr_in6 is plain old data; all-zero is valid.
                let mut raw: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                raw.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                raw.sin6_port = v6.port().to_be();
                raw.sin6_addr.s6_addr = v6.ip().octets();
                raw.sin6_flowinfo = v6.flowinfo();
                raw.sin6_scope_id = v6.scope_id();
                RawSockAddr::V6(raw)
            }
        }
    }

    pub(crate) fn as_ucs(&self) -> ucx1_sys::ucs_sock_addr_t {
        let (addr, len) = match self {
            RawSockAddr::V4(raw) => (
                raw as *const libc::sockaddr_in as *const ucx1_sys::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>(),
            ),
            RawSockAddr::V6(raw) => (
                raw as *const libc::sockaddr_in6 as *const ucx1_sys::sockaddr,
                std::mem::size_of::<libc::sockaddr_in6>(),
            ),
        };
        ucx1_sys::ucs_sock_addr_t {
            addr,
            addrlen: len as ucx1_sys::socklen_t,
        }
    }
}

/// Reads a socket address that UCX filled in.
pub(crate) fn socket_addr_from_storage(storage: &ucx1_sys::sockaddr_storage) -> Option<SocketAddr> {
    let family = c_int_from(storage.ss_family);
    if family == libc::AF_INET {
        // SAFETY: the family says the storage holds a sockaddr_in; storage is large and aligned enough.
        let raw = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
        let ip = std::net::Ipv4Addr::from(raw.sin_addr.s_addr.to_ne_bytes());
        Some(SocketAddr::from((ip, u16::from_be(raw.sin_port))))
    } else if family == libc::AF_INET6 {
        // SAFETY: as above, for sockaddr_in6.
        let raw = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
        let ip = std::net::Ipv6Addr::from(raw.sin6_addr.s6_addr);
        Some(SocketAddr::V6(std::net::SocketAddrV6::new(
            ip,
            u16::from_be(raw.sin6_port),
            raw.sin6_flowinfo,
            raw.sin6_scope_id,
        )))
    } else {
        None
    }
}

fn c_int_from(family: ucx1_sys::sa_family_t) -> libc::c_int {
    libc::c_int::from(family)
}
