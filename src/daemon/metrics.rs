//! `GET /metrics`: the switch's counters in the OpenMetrics text format
//! (what `prometheus-client` writes and Prometheus scrapes),
//! for a Prometheus server (or anything that scrapes it) pointed at the API
//! socket through a proxy, or at `curl --unix-socket`.
//!
//! Owns: the metric names, their labels and help texts. Every scrape builds
//! a fresh registry from the same counters `GET /v1/stats` reads (per port,
//! per drop reason, per pipeline stage, per router drop reason) plus the
//! FDB size of each bridge domain and the number of ports per state; no
//! counter is kept twice. Never: counting (the workers do).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::control::{Control, ControlError};

type Labels = Vec<(String, String)>;

fn counters(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    reg.register(name, help, f.clone());
    f
}

fn gauges(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    reg.register(name, help, f.clone());
    f
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The text exposition of every counter, as of now.
pub fn render(c: &Control) -> Result<String, ControlError> {
    let stats = c.stats()?;
    let domains = c.list_domains()?;
    let ports = c.list_ports()?;
    let mut reg = Registry::with_prefix("rvswitch");
    let rx_p = counters(&mut reg, "port_rx_packets", "Frames received on a port");
    let rx_b = counters(&mut reg, "port_rx_bytes", "Bytes received on a port");
    let tx_p = counters(&mut reg, "port_tx_packets", "Frames sent on a port");
    let tx_b = counters(&mut reg, "port_tx_bytes", "Bytes sent on a port");
    let drops = counters(
        &mut reg,
        "port_drops",
        "Frames dropped, by port and reason (the reason ids of ctl stats)",
    );
    let learned = gauges(&mut reg, "port_learned_macs", "Addresses learned on a port");
    for p in &stats.ports {
        let port = l(&[("port", &p.name)]);
        rx_p.get_or_create(&port).inc_by(p.rx_packets);
        rx_b.get_or_create(&port).inc_by(p.rx_bytes);
        tx_p.get_or_create(&port).inc_by(p.tx_packets);
        tx_b.get_or_create(&port).inc_by(p.tx_bytes);
        learned.get_or_create(&port).set(i64::from(p.learned));
        for (reason, n) in &p.drops {
            drops
                .get_or_create(&l(&[("port", &p.name), ("reason", reason)]))
                .inc_by(*n);
        }
    }
    let stages = counters(
        &mut reg,
        "stage_packets",
        "Packets through each pipeline stage, summed over workers",
    );
    for (stage, n) in &stats.stages {
        stages.get_or_create(&l(&[("stage", stage)])).inc_by(*n);
    }
    let l3 = counters(
        &mut reg,
        "router_drops",
        "Packets the router dropped, by reason",
    );
    for (reason, n) in &stats.l3_drops {
        l3.get_or_create(&l(&[("reason", reason)])).inc_by(*n);
    }
    let fdb = gauges(
        &mut reg,
        "domain_fdb_entries",
        "Entries in a bridge domain's FDB",
    );
    let members = gauges(&mut reg, "domain_ports", "Ports of a bridge domain");
    for d in &domains {
        let dom = l(&[
            ("domain", &d.record.name),
            ("worker", &d.worker.to_string()),
        ]);
        fdb.get_or_create(&dom).set(d.fdb_entries as i64);
        members.get_or_create(&dom).set(d.ports.len() as i64);
    }
    let state = gauges(
        &mut reg,
        "ports",
        "Stored ports by state (up: back end open; failed: not open, with its error)",
    );
    for s in ["up", "failed"] {
        state.get_or_create(&l(&[("state", s)])).set(0);
    }
    for p in &ports {
        state.get_or_create(&l(&[("state", &p.state)])).inc();
    }
    let mut out = String::new();
    encode(&mut out, &reg).map_err(|e| ControlError::Internal(format!("metrics: {e}")))?;
    Ok(out)
}
