//! The XDP program that steers one interface queue's frames into its AF_XDP
//! socket: an XSKMAP plus five hand-assembled BPF instructions, loaded and
//! attached with raw `bpf(2)` calls (no ELF object, no libbpf, no
//! bpf-linker).
//!
//! Owns: the map, program and link file descriptors of one interface.
//! Closing the link (drop) detaches the program. Never: touches packets or
//! rings; never replaces a program somebody else attached (the link create
//! fails with EBUSY instead).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{AfXdpError, XdpMode, XdpModePreference};

// bpf(2) commands.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// Attach type of XDP links (`enum bpf_attach_type`).
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `XDP_PASS`: frames with no socket in the map go on to the kernel stack.
const XDP_PASS: i32 = 2;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high nibble.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);`
fn redirect_program(map_fd: RawFd) -> [Insn; 6] {
    [
        // r2 = *(u32 *)(r1 + rx_queue_index)       BPF_LDX|BPF_MEM|BPF_W
        insn(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        // r1 = map (ld_imm64, pseudo map fd)        BPF_LD|BPF_DW|BPF_IMM
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        // r3 = XDP_PASS (action when the queue has no socket)  BPF_ALU64|BPF_MOV|BPF_K
        insn(0xb7, 3, 0, 0, XDP_PASS),
        // call bpf_redirect_map                     BPF_JMP|BPF_CALL
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // exit (r0 = the helper's verdict)          BPF_JMP|BPF_EXIT
        insn(0x95, 0, 0, 0, 0),
    ]
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapUpdateAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `bpf(cmd, attr, sizeof attr)`, returning the new fd (or 0) or the errno.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, properly sized #[repr(C)] prefix of
    // `union bpf_attr` for `cmd`; the kernel reads at most size_of::<T>()
    // bytes and zero-fills the rest. Pointers inside it (insns, license, log
    // buffer, key, value) point to memory the caller keeps alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful bpf() create call, so it
    // is an open descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// The XSKMAP, the program and its attachment to one interface.
#[derive(Debug)]
pub(crate) struct XdpRedirect {
    // Drop order: the link first (detach), then the program and map.
    _link: OwnedFd,
    _prog: OwnedFd,
    _map: OwnedFd,
    mode: XdpMode,
}

impl XdpRedirect {
    /// Create the map with `xsk_fd` at index `queue`, load the program and
    /// attach it to `ifindex` (driver mode first unless told otherwise).
    pub(crate) fn attach(
        ifname: &str,
        ifindex: u32,
        queue: u32,
        xsk_fd: RawFd,
        pref: XdpModePreference,
    ) -> Result<XdpRedirect, AfXdpError> {
        let err = |what: &'static str, source: io::Error| AfXdpError::Program {
            ifname: ifname.to_string(),
            what,
            source,
            log: String::new(),
        };
        let mut name = [0u8; 16];
        name[..8].copy_from_slice(b"rvs_xsks");
        let mut mc = MapCreateAttr {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: queue + 1,
            map_name: name,
            ..Default::default()
        };
        let map = owned(bpf(BPF_MAP_CREATE, &mut mc).map_err(|e| err("create the XSKMAP", e))?);

        let key: u32 = queue;
        let value: u32 = xsk_fd as u32;
        let mut mu = MapUpdateAttr {
            map_fd: map.as_raw_fd() as u32,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            ..Default::default()
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut mu).map_err(|e| err("put the socket in the XSKMAP", e))?;

        let prog = load(map.as_raw_fd()).map_err(|(source, log)| AfXdpError::Program {
            ifname: ifname.to_string(),
            what: "load the redirect program",
            source,
            log,
        })?;

        let modes: &[XdpMode] = match pref {
            XdpModePreference::Auto => &[XdpMode::Native, XdpMode::Generic],
            XdpModePreference::Native => &[XdpMode::Native],
            XdpModePreference::Generic => &[XdpMode::Generic],
        };
        let mut last = None;
        for &mode in modes {
            let mut lc = LinkCreateAttr {
                prog_fd: prog.as_raw_fd() as u32,
                target_ifindex: ifindex,
                attach_type: BPF_XDP,
                flags: match mode {
                    XdpMode::Native => XDP_FLAGS_DRV_MODE,
                    XdpMode::Generic => XDP_FLAGS_SKB_MODE,
                },
            };
            match bpf(BPF_LINK_CREATE, &mut lc) {
                Ok(fd) => {
                    return Ok(XdpRedirect {
                        _link: owned(fd),
                        _prog: prog,
                        _map: map,
                        mode,
                    });
                }
                // Busy means another program owns the interface: trying the
                // other mode would not help and must not replace it.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    return Err(err("attach (another XDP program is already attached)", e));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(err(
            match pref {
                XdpModePreference::Native => "attach in driver (native) mode",
                XdpModePreference::Generic => "attach in generic (SKB) mode",
                XdpModePreference::Auto => "attach in driver or generic mode",
            },
            last.expect("at least one mode tried"),
        ))
    }

    pub(crate) fn mode(&self) -> XdpMode {
        self.mode
    }
}

/// Load the program; on failure return the errno and the verifier's log.
fn load(map_fd: RawFd) -> Result<OwnedFd, (io::Error, String)> {
    let insns = redirect_program(map_fd);
    let license = c"Dual MIT/GPL";
    let mut name = [0u8; 16];
    name[..8].copy_from_slice(b"rvs_xsk0");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_XDP,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(first) => {
            // Load again with the verifier log on, for the error message.
            let mut log = vec![0u8; 16 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            match bpf(BPF_PROG_LOAD, &mut attr) {
                Ok(fd) => Ok(owned(fd)),
                Err(_) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
                    Err((first, text))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encodes_the_expected_instructions() {
        let p = redirect_program(7);
        assert_eq!(p[0], insn(0x61, 2, 1, 16, 0));
        assert_eq!(p[0].regs, 0x12, "dst r2, src r1");
        assert_eq!(p[1].regs, 0x11, "dst r1, src BPF_PSEUDO_MAP_FD");
        assert_eq!(p[1].imm, 7);
        assert_eq!(p[2], insn(0, 0, 0, 0, 0), "upper half of ld_imm64");
        assert_eq!(p[3].imm, XDP_PASS);
        assert_eq!(p[4].imm, 51);
        assert_eq!(p[5].code, 0x95);
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }
}
