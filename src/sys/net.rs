//! The machine's network addresses, through `getifaddrs(3)`, kept apart so the
//! `unsafe` FFI is all this file holds.

use std::net::IpAddr;

/// The machine's addresses other than loopback.
pub fn addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that freeifaddrs releases; each
    // entry's address, when not null, points at a sockaddr of the family it names.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut entry = list;
        while let Some(ifa) = entry.as_ref() {
            entry = ifa.ifa_next;
            let Some(addr) = ifa.ifa_addr.as_ref() else {
                continue;
            };
            let ip: IpAddr = match i32::from(addr.sa_family) {
                libc::AF_INET => {
                    let v4 = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)).into()
                }
                libc::AF_INET6 => {
                    let v6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr).into()
                }
                _ => continue,
            };
            if !ip.is_loopback() {
                found.push(ip);
            }
        }
        libc::freeifaddrs(list);
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_left_out() {
        assert!(super::addresses().iter().all(|ip| !ip.is_loopback()));
    }
}
