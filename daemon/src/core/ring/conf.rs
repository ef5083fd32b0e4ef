//! The ring's view of spread.conf: daemons in configuration order, and the sets of daemons
//! (memberships) the protocol talks about.
//!
//! Configuration order — segment by segment, daemon by daemon as written — decides who
//! leads a ring, where the token goes next and which representative is "smallest", so every
//! daemon of a ring must read the same file the same way.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// A daemon's id on the wire: its IPv4 address as a host-order integer.
pub type ProcId = u32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcConf {
    pub id: ProcId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentConf {
    /// The segment's broadcast (or multicast) address.
    pub bcast: Ipv4Addr,
    /// Data port; tokens go to port + 1.
    pub port: u16,
    pub procs: Vec<ProcConf>,
}

/// Where a daemon sits in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub segment: usize,
    pub index: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConf {
    pub segments: Vec<SegmentConf>,
    /// Each daemon's place and configuration index, for lookups that stay cheap in rings of
    /// a thousand daemons.
    index: HashMap<ProcId, (Position, usize)>,
}

impl RingConf {
    pub fn new(segments: Vec<SegmentConf>) -> RingConf {
        let mut index = HashMap::new();
        let mut n = 0;
        for (segment, s) in segments.iter().enumerate() {
            for (i, p) in s.procs.iter().enumerate() {
                index
                    .entry(p.id)
                    .or_insert((Position { segment, index: i }, n));
                n += 1;
            }
        }
        RingConf { segments, index }
    }

    pub fn position(&self, id: ProcId) -> Option<Position> {
        self.index.get(&id).map(|(pos, _)| *pos)
    }

    pub fn proc(&self, pos: Position) -> &ProcConf {
        &self.segments[pos.segment].procs[pos.index]
    }

    pub fn by_name(&self, name: &[u8]) -> Option<ProcId> {
        self.all().find(|p| p.name.as_bytes() == name).map(|p| p.id)
    }

    pub fn name_of(&self, id: ProcId) -> Option<&str> {
        self.position(id).map(|pos| self.proc(pos).name.as_str())
    }

    /// Every daemon in configuration order.
    pub fn all(&self) -> impl Iterator<Item = &ProcConf> {
        self.segments.iter().flat_map(|s| s.procs.iter())
    }

    pub fn num_procs(&self) -> usize {
        self.segments.iter().map(|s| s.procs.len()).sum()
    }

    /// A daemon's index in configuration order (the index monitor arrays and reassembly
    /// queues use).
    pub fn index_of(&self, id: ProcId) -> Option<usize> {
        self.index.get(&id).map(|(_, i)| *i)
    }

    /// Whether data to "everyone" must be broadcast in `segment`: more than one daemon is
    /// configured there (whether or not they are alive, as in 3.17).
    pub fn bcast_needed(&self, segment: usize) -> bool {
        self.segments[segment].procs.len() > 1
    }

    /// 3.17's "wide network": the first daemons of the segments differ in their top 16 bits.
    pub fn is_wide(&self) -> bool {
        let Some(first) = self.segments.first().and_then(|s| s.procs.first()) else {
            return false;
        };
        self.segments
            .iter()
            .filter_map(|s| s.procs.first())
            .any(|p| p.id & 0xffff_0000 != first.id & 0xffff_0000)
    }
}

/// A set of daemons, kept in configuration order (3.17's `configuration`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    /// Members by position, sorted: configuration order.
    members: Vec<(Position, ProcId)>,
    ids: BTreeSet<ProcId>,
}

impl Membership {
    pub fn from_ids(conf: &RingConf, ids: impl IntoIterator<Item = ProcId>) -> Membership {
        let mut members: Vec<(Position, ProcId)> = ids
            .into_iter()
            .filter_map(|id| conf.position(id).map(|p| (p, id)))
            .collect();
        members.sort();
        members.dedup();
        let ids = members.iter().map(|(_, id)| *id).collect();
        Membership { members, ids }
    }

    pub fn contains(&self, id: ProcId) -> bool {
        self.ids.contains(&id)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = ProcId> + '_ {
        self.members.iter().map(|(_, id)| *id)
    }

    /// The first member in configuration order: the ring's leader.
    pub fn leader(&self) -> Option<ProcId> {
        self.members.first().map(|(_, id)| *id)
    }

    /// The last member in configuration order.
    pub fn last(&self) -> Option<ProcId> {
        self.members.last().map(|(_, id)| *id)
    }

    pub fn in_segment(&self, segment: usize) -> impl Iterator<Item = ProcId> + '_ {
        self.members
            .iter()
            .filter(move |(p, _)| p.segment == segment)
            .map(|(_, id)| *id)
    }

    /// The first live member of a segment: where other segments send to it.
    pub fn segment_leader(&self, segment: usize) -> Option<ProcId> {
        self.in_segment(segment).next()
    }

    pub fn segment_last(&self, segment: usize) -> Option<ProcId> {
        self.in_segment(segment).last()
    }

    /// Where the token goes after `me`: the next member of my segment, else the first
    /// member of the next segment that has members, wrapping around.
    pub fn token_successor(&self, me: ProcId) -> Option<ProcId> {
        let i = self.members.iter().position(|(_, id)| *id == me)?;
        Some(self.members[(i + 1) % self.members.len()].1)
    }

    /// Who passes the token to `me`.
    pub fn token_predecessor(&self, me: ProcId) -> Option<ProcId> {
        let i = self.members.iter().position(|(_, id)| *id == me)?;
        Some(self.members[(i + self.members.len() - 1) % self.members.len()].1)
    }

    /// Segments other than `mine` that have members, with their first member.
    pub fn other_segment_leaders(&self, mine: usize) -> Vec<(usize, ProcId)> {
        let mut out: Vec<(usize, ProcId)> = Vec::new();
        for (pos, id) in &self.members {
            if pos.segment != mine && out.last().map(|(s, _)| *s) != Some(pos.segment) {
                out.push((pos.segment, *id));
            }
        }
        out
    }
}
