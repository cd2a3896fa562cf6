//! String formats of the API (MAC addresses, IP addresses, prefixes, VLAN
//! lists, object names) as OpenAPI schemas with regular expressions.
//!
//! The values are parsed by types of other crates (`rvs_switch::MacAddr`,
//! `VlanSet`, `std::net::IpAddr`), which cannot derive `utoipa::ToSchema`
//! here, and utoipa's `pattern` attribute takes only a literal; so each
//! format is a marker type with a hand-written schema, named in fields with
//! `#[schema(value_type = ...)]`. The patterns are built from parts so the
//! long IPv6 one is written once, and the tests check each against the
//! parser it stands for: a value the pattern accepts must parse, and the
//! printed form of a parsed value must match.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

const HEX2: &str = "[0-9A-Fa-f]{1,2}";
/// A decimal 0..=255 without leading zeros.
const OCTET: &str = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
/// A VLAN id 1..=4094 without leading zeros.
const VID: &str = "(409[0-4]|40[0-8][0-9]|[1-3][0-9]{3}|[1-9][0-9]{0,2})";

/// A dotted-quad IPv4 address (unanchored).
pub fn ipv4_re() -> String {
    format!("{OCTET}(\\.{OCTET}){{3}}")
}

/// An IPv6 address in any of RFC 4291's text forms (RFC 3986's grammar,
/// IPv4 tail included; unanchored).
pub fn ipv6_re() -> String {
    let h = "[0-9A-Fa-f]{1,4}";
    let ls32 = format!("({h}:{h}|{})", ipv4_re());
    // `[ *(n-1)( h16 ":" ) h16 ]`: up to n groups before the "::".
    let pre = |n: usize| format!("(({h}:){{0,{}}}{h})?", n - 1);
    [
        format!("({h}:){{6}}{ls32}"),
        format!("::({h}:){{5}}{ls32}"),
        format!("{}::({h}:){{4}}{ls32}", pre(1)),
        format!("{}::({h}:){{3}}{ls32}", pre(2)),
        format!("{}::({h}:){{2}}{ls32}", pre(3)),
        format!("{}::{h}:{ls32}", pre(4)),
        format!("{}::{ls32}", pre(5)),
        format!("{}::{h}", pre(6)),
        format!("{}::", pre(7)),
    ]
    .map(|a| format!("({a})"))
    .join("|")
}

/// IPv4 or IPv6 address, anchored.
pub fn ip_pattern() -> String {
    format!("^({}|{})$", ipv4_re(), ipv6_re())
}

/// `ADDRESS/LENGTH`: 0..=32 after an IPv4 address, 0..=128 after IPv6.
pub fn cidr_pattern() -> String {
    format!(
        "^(({})/(3[0-2]|[12]?[0-9])|({})/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$",
        ipv4_re(),
        ipv6_re()
    )
}

/// Six octets of one or two hex digits, separated by `:` or `-`.
pub fn mac_pattern() -> String {
    format!("^{HEX2}([:-]{HEX2}){{5}}$")
}

/// A station's MAC (`MacAddr::is_valid_source`): the group bit is clear
/// (the first octet is even) and not every octet is zero. Without
/// look-ahead (JSON Schema's regex dialect has it, the `regex` crate that
/// tests this does not), "not all zero" is spelled out: either the first
/// octet is not zero, or the first non-zero octet is the k-th.
pub fn station_mac_pattern() -> String {
    let zero = "0{1,2}";
    let nonzero = "(0?[1-9A-Fa-f]|[1-9A-Fa-f][0-9A-Fa-f])";
    let even_nonzero = "(0?[2468ACEace]|[1-9A-Fa-f][02468ACEace])";
    let mut alts = vec![format!("{even_nonzero}([:-]{HEX2}){{5}}")];
    for k in 1..=5 {
        alts.push(format!(
            "{zero}([:-]{zero}){{{}}}[:-]{nonzero}([:-]{HEX2}){{{}}}",
            k - 1,
            5 - k
        ));
    }
    format!("^({})$", alts.join("|"))
}

/// `all` (any case), or a comma list of VLAN ids and `a-b` ranges.
pub fn vlan_list_pattern() -> String {
    let item = format!("{VID}(-{VID})?");
    format!("^([Aa][Ll][Ll]|({item}(,{item})*)?)$")
}

/// Port and bridge domain names (`rvs_switch::switch::check_name`).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

fn string(pattern: String, description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .examples([serde_json::Value::from(example)])
        .into()
}

macro_rules! format_schema {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $description:literal, $example:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string($pattern, $description, $example)
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

format_schema!(
    /// Any MAC address.
    MacAddress,
    mac_pattern(),
    "MAC address: six octets of one or two hex digits, separated by ':' or '-'",
    "02:00:00:00:00:01"
);
format_schema!(
    /// A unicast MAC address (a station's source address).
    StationMac,
    station_mac_pattern(),
    "A station's (unicast) MAC address: the group bit of the first octet is clear, \
     and it is not 00:00:00:00:00:00",
    "02:00:00:00:00:01"
);
format_schema!(
    /// An IPv4 or IPv6 address.
    IpAddress,
    ip_pattern(),
    "IPv4 or IPv6 address",
    "192.0.2.1"
);
format_schema!(
    /// `ADDRESS/LENGTH`.
    Cidr,
    cidr_pattern(),
    "ADDRESS/LENGTH: an IPv4 address and 0..32, or an IPv6 address and 0..128",
    "10.0.1.1/24"
);
format_schema!(
    /// A VLAN list (`rvs_switch::VlanSet`).
    VlanList,
    vlan_list_pattern(),
    "VLAN ids 1..4094: a comma list of ids and a-b ranges (a <= b), or \"all\"",
    "10,20-30"
);

/// `rvs_switch::VlanProtocol` as the API spells it.
pub struct VlanProtocolSchema;

impl PartialSchema for VlanProtocolSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["802.1q", "802.1ad"]))
            .default(Some("802.1q".into()))
            .description(Some(
                "The tag the domain switches on: 802.1q (customer VLANs, TPID 0x8100) or \
                 802.1ad (service VLANs, TPID 0x88a8, QinQ)",
            ))
            .into()
    }
}

impl ToSchema for VlanProtocolSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("VlanProtocol")
    }
}

/// `rvs_switch::stp::StpConfig`: RSTP bridge settings (802.1D-2004
/// 17.13); `{}` for the defaults.
#[derive(ToSchema)]
#[schema(as = StpConfig)]
#[serde(default, deny_unknown_fields)]
#[allow(dead_code)] // A schema only: the daemon parses `StpConfig` itself.
pub struct StpConfigSchema {
    /// Bridge priority: a multiple of 4096.
    #[schema(default = 32768, minimum = 0, maximum = 61440, multiple_of = 4096)]
    priority: u16,
    /// Hello time, 1 to 10 s.
    #[schema(default = 2000, minimum = 1000, maximum = 10000)]
    hello_ms: u64,
    /// Max age, 6 to 40 s; at most 2 × (forward delay − 1 s) and at least
    /// 2 × (hello time + 1 s).
    #[schema(default = 20000, minimum = 6000, maximum = 40000)]
    max_age_ms: u64,
    /// Forward delay, 4 to 30 s.
    #[schema(default = 15000, minimum = 4000, maximum = 30000)]
    forward_delay_ms: u64,
    /// Most BPDUs a port sends per second.
    #[schema(default = 6, minimum = 1, maximum = 10)]
    tx_hold_count: u32,
    /// 2: RSTP, 0: STP-compatible (only Configuration and TCN BPDUs).
    #[schema(default = 2, minimum = 0, maximum = 2)]
    force_version: u8,
}

/// `rvs_switch::stp::StpPortConfig`: a port's spanning tree settings,
/// used when its domain runs RSTP.
#[derive(ToSchema)]
#[schema(as = StpPortConfig)]
#[serde(default, deny_unknown_fields)]
#[allow(dead_code)] // A schema only.
pub struct StpPortConfigSchema {
    /// Port priority: a multiple of 16.
    #[schema(default = 128, minimum = 0, maximum = 240, multiple_of = 16)]
    priority: u8,
    /// Path cost; 0 means the default, 20000.
    #[schema(default = 0, minimum = 0, maximum = 200_000_000)]
    path_cost: u32,
    /// An edge port (a host, not a bridge, is behind it): forwards at
    /// once, until a BPDU arrives.
    #[schema(default = false)]
    admin_edge: bool,
    /// Becomes an edge port when it hears no BPDU after proposing.
    #[schema(default = true)]
    auto_edge: bool,
    /// A point-to-point link: the proposal/agreement handshake is allowed.
    #[schema(default = true)]
    point_to_point: bool,
}

/// `rvs_switch::PortSecurity`: only this station may send from the port.
/// Frames from other source MACs are dropped, and when `ips` is not empty
/// so are IPv4, ARP and IPv6 packets from other addresses (IPv6
/// link-local and `::` are allowed).
#[derive(ToSchema)]
#[schema(as = PortSecurity)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // A schema only.
pub struct PortSecuritySchema {
    #[schema(value_type = StationMac)]
    mac: String,
    #[serde(default)]
    #[schema(value_type = Vec<IpAddress>)]
    ips: Vec<String>,
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use regex::Regex;
    use rvs_switch::{MacAddr, VlanSet};

    use super::*;

    fn re(p: &str) -> Regex {
        Regex::new(p).unwrap()
    }

    /// A small deterministic generator (xorshift), so the samples differ
    /// per case but a failure reproduces.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn ip_patterns_match_what_the_parser_prints_and_only_what_it_parses() {
        let ip = re(&ip_pattern());
        let cidr = re(&cidr_pattern());
        let mut r = rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..5000u32 {
            let v6 = if i.is_multiple_of(3) {
                // Runs of zero groups, so every `::` position is printed.
                let mut g = [0u16; 8];
                for x in g.iter_mut() {
                    if r().is_multiple_of(3) {
                        *x = r() as u16;
                    }
                }
                Ipv6Addr::from(g)
            } else {
                Ipv6Addr::from(((r() as u128) << 64) | r() as u128)
            };
            for a in [IpAddr::V6(v6), IpAddr::V4(Ipv4Addr::from(r() as u32))] {
                let s = a.to_string();
                assert!(ip.is_match(&s), "{s}");
                let max = if a.is_ipv4() { 32 } else { 128 };
                let len = r() % (max + 1);
                assert!(cidr.is_match(&format!("{s}/{len}")), "{s}/{len}");
                assert!(
                    !cidr.is_match(&format!("{s}/{}", max + 1)),
                    "{s}/{}",
                    max + 1
                );
            }
        }
        for good in [
            "::",
            "::1",
            "1::",
            "fe80::1:2",
            "::ffff:192.0.2.1",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:1.2.3.4",
            "0.0.0.0",
        ] {
            assert!(ip.is_match(good), "{good}");
            assert!(good.parse::<IpAddr>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            "256.1.1.1",
            "01.1.1.1",
            "1.1.1",
            ":1",
            "1:",
            "12345::",
            "::g",
            "10.0.0.1 ",
        ] {
            assert!(!ip.is_match(bad), "{bad}");
            assert!(bad.parse::<IpAddr>().is_err(), "{bad}");
        }
        assert!(cidr.is_match("10.0.1.1/24") && cidr.is_match("fd00::1/64"));
        for bad in ["10.0.1.1", "10.0.1.1/33", "fd00::1/129", "10.0.1.1/024"] {
            assert!(!cidr.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn mac_patterns_agree_with_the_parser() {
        let any = re(&mac_pattern());
        let station = re(&station_mac_pattern());
        let mut r = rng(7);
        for _ in 0..2000 {
            let b = r().to_be_bytes();
            let m = MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]]);
            let s = m.to_string();
            assert!(any.is_match(&s), "{s}");
            assert_eq!(station.is_match(&s), m.is_valid_source(), "{s}");
            let dashed = s.replace(':', "-");
            assert!(any.is_match(&dashed), "{dashed}");
            assert_eq!(dashed.parse::<MacAddr>().unwrap(), m);
        }
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:zz",
            "002:0:0:0:0:0",
            "02:00:00:00:00:00:00",
        ] {
            assert!(!any.is_match(bad), "{bad}");
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        for (mac, ok) in [
            ("2:0:0:0:0:1", true),
            ("00:00:00:00:00:01", true),
            ("00-00-10-00-00-00", true),
            ("1:0:0:0:0:1", false),
            ("0:0:0:0:0:0", false),
            ("00:00:00:00:00:00", false),
            ("ff:ff:ff:ff:ff:ff", false),
        ] {
            assert_eq!(station.is_match(mac), ok, "{mac}");
            assert_eq!(
                mac.parse::<MacAddr>().unwrap().is_valid_source(),
                ok,
                "{mac}"
            );
        }
    }

    #[test]
    fn vlan_list_pattern_agrees_with_the_parser() {
        let p = re(&vlan_list_pattern());
        for good in ["all", "ALL", "", "1", "4094", "10,20-30", "1-4094"] {
            assert!(p.is_match(good), "{good}");
            assert!(good.parse::<VlanSet>().is_ok(), "{good}");
        }
        for bad in ["0", "4095", "1-4095", "10,", "a", "1--2", "01"] {
            assert!(!p.is_match(bad), "{bad}");
        }
        let mut r = rng(11);
        for _ in 0..500 {
            let mut s = VlanSet::new();
            for _ in 0..(r() % 20) {
                s.insert((r() % 4094) as u16 + 1);
            }
            let text = s.to_string();
            assert!(p.is_match(&text), "{text}");
        }
    }

    #[test]
    fn name_pattern_agrees_with_the_switch() {
        let p = re(NAME_PATTERN);
        let long = "a".repeat(65);
        for n in ["bd0", "a.b-c_d", "x", &long, "", "a b", "ä", "a/b"] {
            assert_eq!(
                p.is_match(n),
                rvs_switch::switch::check_name(n).is_ok(),
                "{n:?}"
            );
        }
    }

    /// The schema-only mirrors list exactly the fields the real types
    /// serialize, so the document cannot drift from them unnoticed.
    #[test]
    fn mirrors_have_the_real_fields() {
        use rvs_switch::PortSecurity;
        use rvs_switch::stp::{StpConfig, StpPortConfig};
        fn props<T: ToSchema>() -> Vec<String> {
            let v = serde_json::to_value(T::schema()).unwrap();
            let mut k: Vec<String> = v["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        }
        fn keys(v: serde_json::Value) -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        }
        assert_eq!(
            props::<StpConfigSchema>(),
            keys(serde_json::to_value(StpConfig::default()).unwrap())
        );
        assert_eq!(
            props::<StpPortConfigSchema>(),
            keys(serde_json::to_value(StpPortConfig::default()).unwrap())
        );
        let sec = PortSecurity {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            ips: vec![],
        };
        assert_eq!(
            props::<PortSecuritySchema>(),
            keys(serde_json::to_value(sec).unwrap())
        );
        // The defaults the document states are the real ones.
        let d = serde_json::to_value(StpConfig::default()).unwrap();
        let s = serde_json::to_value(StpConfigSchema::schema()).unwrap();
        for (k, v) in d.as_object().unwrap() {
            assert_eq!(&s["properties"][k]["default"], v, "{k}");
        }
        let d = serde_json::to_value(StpPortConfig::default()).unwrap();
        let s = serde_json::to_value(StpPortConfigSchema::schema()).unwrap();
        for (k, v) in d.as_object().unwrap() {
            assert_eq!(&s["properties"][k]["default"], v, "{k}");
        }
    }
}
