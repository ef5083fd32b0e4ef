//! What `spmonitor` may ask of a daemon (3.17's `status.c`, `flow_control.c` and the
//! partition part of `network.c`): a status report always; a simulated partition and new
//! flow-control windows only when the configuration says `DangerousMonitor = yes`.
//!
//! A request is a bare packet header on the data port whose `memb_id.proc_id` is the monitor
//! magic and whose `proc_id` is a configured daemon's address (the host the monitor runs
//! as); the report goes to that address at the port in `seq`.

use super::msgs::Packet;
use super::{Destination, Ring, RingEvent, State, Transmit};
use spread_wire::ring::monitor::{status_reply_header, PerDaemonTable, Status, MONITOR_MAGIC};
use spread_wire::ring::packet::{encode_datagram_in, packet_type};
use spread_wire::Endian;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// A monitor-set partition lapses after this long (3.17's `Partition_timeout`).
pub const PARTITION_LASTS: Duration = Duration::from_secs(60);

/// The simulated partition a monitor set: a component number per configuration index.
#[derive(Debug, Default)]
pub struct Partition {
    components: Vec<i16>,
    until: Option<Instant>,
}

impl Partition {
    fn component(&self, index: usize) -> i16 {
        self.components.get(index).copied().unwrap_or(0)
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.until
    }
}

/// Membership state numbers of the status record (3.17's `membership.h`).
fn state_number(state: State) -> i32 {
    match state {
        State::Op => 1,
        State::Seg => 2,
        State::Represented => 3,
        State::Gather => 4,
        State::Form => 5,
        State::Evs => 6,
    }
}

impl Ring {
    /// Whether the first packet of a data datagram is a monitor's; such packets are handled
    /// here, whoever the transmitter field names.
    pub(super) fn handle_monitor(&mut self, packet: &Packet, endian: Endian) -> bool {
        let kind = packet.kind & (packet_type::STATUS | packet_type::PARTITION | packet_type::FC);
        if kind == 0 {
            return false;
        }
        let from_a_configured_host =
            packet.memb_id.proc_id == MONITOR_MAGIC && self.conf.position(packet.proc_id).is_some();
        if !from_a_configured_host {
            tracing::debug!("ignoring an illegal monitor request");
            return true;
        }
        if kind & packet_type::STATUS != 0 {
            let to = SocketAddrV4::new(packet.proc_id.into(), packet.seq as u16);
            self.events.push_back(RingEvent::StatusRequest { to });
        } else if !self.dangerous_monitor {
            tracing::warn!(
                monitor = %std::net::Ipv4Addr::from(packet.proc_id),
                "refusing a monitor's partition or flow-control command: DangerousMonitor is off"
            );
        } else if let Ok(table) = PerDaemonTable::decode(&packet.body, endian) {
            if kind & packet_type::PARTITION != 0 {
                self.set_partition(&table);
            } else {
                self.set_windows(&table);
            }
        }
        true
    }

    fn set_partition(&mut self, table: &PerDaemonTable) {
        let n = self.conf.num_procs();
        self.partition.components = table.entries[..n.min(table.entries.len())].to_vec();
        self.partition.until = Some(self.clock.now + PARTITION_LASTS);
        let mine = self.my_component();
        if mine < 0 {
            tracing::warn!("a monitor told this daemon to exit");
            self.events.push_back(RingEvent::ExitRequested);
        } else {
            tracing::info!(component = mine, "a monitor set a partition");
        }
    }

    fn set_windows(&mut self, table: &PerDaemonTable) {
        let global = table.entries.get(self.conf.num_procs()).copied();
        let mine = self
            .conf
            .index_of(self.me)
            .and_then(|i| table.entries.get(i).copied());
        if let Some(w) = global.filter(|&w| w != PerDaemonTable::UNCHANGED) {
            self.out.flow.window = w.into();
        }
        if let Some(w) = mine.filter(|&w| w != PerDaemonTable::UNCHANGED) {
            self.out.flow.personal_window = w.into();
        }
        tracing::info!(
            window = self.out.flow.window,
            personal = self.out.flow.personal_window,
            "a monitor set the flow-control windows"
        );
    }

    /// Whether a daemon's packets count under the monitor's partition (they always do
    /// when none is set).
    pub(super) fn in_my_component(&self, transmitter: u32) -> bool {
        if self.partition.components.is_empty() {
            return true;
        }
        let Some(index) = self.conf.index_of(transmitter) else {
            return false;
        };
        self.partition.component(index) == self.my_component()
    }

    fn my_component(&self) -> i16 {
        self.conf
            .index_of(self.me)
            .map_or(0, |i| self.partition.component(i))
    }

    /// Lifts a lapsed partition.
    pub(super) fn expire_partition(&mut self, now: Instant) {
        if self.partition.until.is_some_and(|t| now >= t) {
            self.partition = Partition::default();
            tracing::info!("the monitor's partition lapsed");
        }
    }

    /// The ring's part of a status report; the caller adds sessions, groups and messages.
    pub fn status(&self) -> Status {
        use spread_wire::consts::version;
        Status {
            sec: self
                .clock
                .now
                .saturating_duration_since(self.clock.started)
                .as_secs() as i32,
            state: state_number(self.memb.state),
            gstate: 1,
            packet_sent: self.stats.packets_sent as i32,
            packet_recv: self.stats.packets_received as i32,
            packet_delivered: self.stats.packets_delivered as i32,
            retrans: self.stats.retransmissions as i32,
            u_retrans: self.stats.unicast_retrans as i32,
            s_retrans: self.stats.segment_retrans as i32,
            b_retrans: self.stats.broadcast_retrans as i32,
            token_hurry: self.stats.token_hurries as i32,
            aru: self.op.aru,
            my_aru: self.op.my_aru,
            highest_seq: self.op.highest_seq,
            token_rounds: self.stats.token_rounds as i32,
            my_id: self.me,
            leader_id: self.memb.membership.leader().unwrap_or(self.me),
            membership_changes: self.stats.membership_changes as i16,
            num_procs: self.conf.num_procs() as i16,
            num_segments: self.conf.segments.len() as i16,
            window: self.out.flow.window as i16,
            personal_window: self.out.flow.personal_window as i16,
            major_version: version::MAJOR.into(),
            minor_version: version::MINOR.into(),
            patch_version: version::PATCH.into(),
            ..Status::default()
        }
    }

    /// Sends a status report to a monitor.
    pub fn send_status(&mut self, to: SocketAddrV4, status: &Status) {
        let mut header = status_reply_header(self.me);
        header.data_len = spread_wire::ring::monitor::STATUS_LEN as i16;
        let body = status.encode(self.endian);
        if let Ok(payload) = encode_datagram_in(self.endian, &[(header, &body[..])], self.limits) {
            self.net.transmits.push_back(Transmit {
                to: Destination::Monitor(to),
                payload,
            });
        }
    }
}
