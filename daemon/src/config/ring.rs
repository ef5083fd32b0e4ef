//! From `spread.conf` to the ring's settings: the one mapping both the daemon (`run`) and
//! the simulator start a ring with, so a simulated ring runs with what a real one would.

use super::Config;
use crate::core::ring::{
    FlowControl, ProcConf, ProcId, RingConf, RingOptions, SegmentConf, Timeouts,
};
use spread_wire::Endian;

/// What a ring starts with besides the configuration: facts of this run of the daemon.
#[derive(Clone, Copy, Debug)]
pub struct RingStart {
    /// The ring includes C Spread 3.17 daemons (the daemon's `--with-c-daemons`): take
    /// 3.17's timeouts and windows where spread.conf sets none.
    pub with_c_daemons: bool,
    /// The byte order this daemon writes in.
    pub endian: Endian,
    /// Wall-clock seconds now: ring ids carry wall-clock time.
    pub wall_clock_secs: i64,
    /// The last ring time this daemon used before it restarted.
    pub last_time_used: Option<i32>,
}

/// The ring daemon `me` (its address as a ring id) runs under `config`.
pub fn ring_options(config: &Config, me: ProcId, start: RingStart) -> RingOptions {
    RingOptions {
        conf: ring_conf(config),
        me,
        timeouts: timeouts(config, start.with_c_daemons),
        flow: flow_control(config, start.with_c_daemons),
        endian: start.endian,
        wall_clock_secs: start.wall_clock_secs,
        last_time_used: start.last_time_used,
        dangerous_monitor: config.dangerous_monitor,
    }
}

/// The ring's view of the configuration: every daemon in configuration order.
pub fn ring_conf(config: &Config) -> RingConf {
    RingConf::new(
        config
            .segments
            .iter()
            .map(|s| SegmentConf {
                bcast: s.address,
                port: s.port,
                procs: s
                    .daemons
                    .iter()
                    .map(|d| ProcConf {
                        id: u32::from(d.address),
                        name: d.name.clone(),
                    })
                    .collect(),
            })
            .collect(),
    )
}

/// Our defaults (a crashed daemon is out of the membership in well under a second), or
/// 3.17's when C daemons share the ring, overridden by whatever spread.conf sets.
pub fn timeouts(config: &Config, with_c_daemons: bool) -> Timeouts {
    let mut t = if !with_c_daemons {
        Timeouts::fast()
    } else if is_wide_network(config) {
        Timeouts::spread_3_17_wide()
    } else {
        Timeouts::spread_3_17_lan(config.segments.len())
    };
    let c = &config.timeouts;
    let pairs = [
        (&mut t.token, c.token),
        (&mut t.hurry, c.hurry),
        (&mut t.alive, c.alive),
        (&mut t.join, c.join),
        (&mut t.rep, c.rep),
        (&mut t.seg, c.seg),
        (&mut t.gather, c.gather),
        (&mut t.form, c.form),
        (&mut t.lookup, c.lookup),
    ];
    for (slot, value) in pairs {
        if let Some(v) = value {
            *slot = v;
        }
    }
    t
}

/// 3.17's rule: wide when the first daemon of some segment differs from segment 0's first
/// daemon in the top 16 bits of its address.
fn is_wide_network(config: &Config) -> bool {
    let firsts: Vec<u32> = config
        .segments
        .iter()
        .filter_map(|s| s.daemons.first())
        .map(|d| u32::from(d.address) & 0xffff_0000)
        .collect();
    firsts.iter().any(|&a| Some(&a) != firsts.first())
}

/// Our window defaults (several times 3.17's), or 3.17's (60 and 15) when C daemons share
/// the ring — with ours, every daemon would take its larger share of each token rotation
/// while the C ones keep to theirs — or what spread.conf sets.
pub fn flow_control(config: &Config, with_c_daemons: bool) -> FlowControl {
    let mut flow = if with_c_daemons {
        FlowControl {
            window: 60,
            personal_window: 15,
        }
    } else {
        FlowControl::default()
    };
    if let Some(w) = config.window {
        flow.window = w as i32;
    }
    if let Some(p) = config.personal_window {
        flow.personal_window = p as i32;
    }
    flow
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::time::Duration;

    fn conf(text: &str) -> Config {
        config::parse_str(text, "spread.conf").expect("valid")
    }

    #[test]
    fn with_c_daemons_takes_3_17_lan_timings_and_windows() {
        let c = conf(
            "Spread_Segment 10.1.0.255:4803 { a 10.1.0.1 }\nSpread_Segment 10.1.1.255:4803 { b 10.1.1.1 }\n",
        );
        let t = timeouts(&c, true);
        assert_eq!(t.token, Duration::from_millis(5000));
        assert_eq!(t.lookup, Duration::from_millis(60_000));
        let f = flow_control(&c, true);
        assert_eq!((f.window, f.personal_window), (60, 15));
        assert_eq!(timeouts(&c, false).token, Timeouts::fast().token);
    }

    #[test]
    fn segments_in_different_16s_are_a_wide_network() {
        let c = conf(
            "Spread_Segment 10.1.0.255:4803 { a 10.1.0.1 }\nSpread_Segment 10.2.0.255:4803 { b 10.2.0.1 }\n",
        );
        assert_eq!(timeouts(&c, true).token, Duration::from_millis(20_000));
    }

    #[test]
    fn spread_conf_overrides_either_default() {
        let c = conf(
            "Spread_Segment 127.0.0.255:4803 { a 127.0.0.1 }\nTokenTimeout = 900\nWindow = 100\n",
        );
        assert_eq!(timeouts(&c, true).token, Duration::from_millis(900));
        assert_eq!(flow_control(&c, true).window, 100);
        assert_eq!(flow_control(&c, false).window, 100);
    }

    #[test]
    fn ring_options_carry_the_file_and_the_run() {
        let c = conf(
            "Spread_Segment 10.1.0.255:4803 { a 10.1.0.1 b 10.1.0.2 }\nDangerousMonitor = true\nPersonalWindow = 7\n",
        );
        let me = u32::from(std::net::Ipv4Addr::new(10, 1, 0, 2));
        let start = RingStart {
            with_c_daemons: false,
            endian: Endian::Big,
            wall_clock_secs: 1234,
            last_time_used: Some(99),
        };
        let o = ring_options(&c, me, start);
        assert_eq!(o.me, me);
        assert_eq!(o.conf.position(me).map(|p| p.segment), Some(0));
        assert_eq!(o.conf.name_of(me), Some("b"));
        assert_eq!(o.timeouts.token, Timeouts::fast().token);
        assert_eq!(o.flow.personal_window, 7);
        assert_eq!(o.endian, Endian::Big);
        assert_eq!((o.wall_clock_secs, o.last_time_used), (1234, Some(99)));
        assert!(o.dangerous_monitor);
    }
}
