//! The wire views never panic on any bytes: every checked constructor either
//! fails cleanly or yields accessors that stay in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_switch::wire::{EthernetFrame, VlanTag};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = EthernetFrame::new_checked(data) {
        let _ = (f.dst(), f.src(), f.ethertype(), f.payload().len());
        if let Ok(t) = VlanTag::new_checked(f.payload()) {
            let tci = t.tci();
            let _ = (tci.vid(), tci.pcp(), tci.dei(), t.inner_ethertype());
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = s.parse::<rvs_switch::MacAddr>();
        let _ = s.parse::<rvs_switch::VlanSet>();
    }
});
