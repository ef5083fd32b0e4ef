//! The 32-byte group name field and private group names (`#name#daemon`).

use crate::consts::limits::{MAX_GROUP_NAME, MAX_PRIVATE_NAME, MAX_PROC_NAME};

/// A group name field exactly as it travels: 32 bytes, NUL-terminated when shorter.
///
/// The bytes after the NUL are kept as they came, because the C daemon forwards them
/// untouched and byte-exact replays must too; comparisons use only the part before the NUL.
#[derive(Clone, Copy)]
pub struct GroupName(pub [u8; MAX_GROUP_NAME]);

impl GroupName {
    pub const EMPTY: GroupName = GroupName([0; MAX_GROUP_NAME]);

    /// A name from text, cut to 31 bytes (the C library truncates destination names so).
    pub fn new(name: &str) -> GroupName {
        Self::from_bytes(name.as_bytes())
    }

    pub fn from_bytes(name: &[u8]) -> GroupName {
        let mut field = [0u8; MAX_GROUP_NAME];
        let n = name.len().min(MAX_GROUP_NAME - 1);
        field[..n].copy_from_slice(&name[..n]);
        GroupName(field)
    }

    /// The field from 32 raw bytes, with the last byte forced to NUL as the C daemon does.
    pub fn from_field(raw: &[u8]) -> GroupName {
        let mut field = [0u8; MAX_GROUP_NAME];
        field.copy_from_slice(&raw[..MAX_GROUP_NAME]);
        field[MAX_GROUP_NAME - 1] = 0;
        GroupName(field)
    }

    /// The name: the bytes before the first NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_GROUP_NAME);
        &self.0[..end]
    }

    /// The name as text, with bytes that are not UTF-8 replaced.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }

    /// The same name with every byte after the NUL cleared: what a fresh buffer holds.
    pub fn canonical(&self) -> GroupName {
        GroupName::from_bytes(self.as_bytes())
    }

    pub fn is_private(&self) -> bool {
        self.0[0] == b'#'
    }
}

impl PartialEq for GroupName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for GroupName {}
impl PartialOrd for GroupName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
/// Ordered like C's `strcmp`, which sorts every member list of 3.17.
impl Ord for GroupName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}
impl std::hash::Hash for GroupName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}
impl std::fmt::Debug for GroupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}
impl std::fmt::Display for GroupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

/// A character allowed in private and daemon names: `'$'..='~'`.
pub fn is_name_byte(b: u8) -> bool {
    (b'$'..=b'~').contains(&b)
}

/// Rules the 3.17 library applies before it sends a join or leave: 1 to 31 bytes, each in
/// `'$'..='~'`. The C daemon checks nothing; ours applies the same rule to what it accepts.
pub fn is_legal_group_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() < MAX_GROUP_NAME && name.iter().all(|&b| is_name_byte(b))
}

/// A private group `#name#daemon` split into its two names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivateGroup<'a> {
    pub private_name: &'a [u8],
    pub daemon_name: &'a [u8],
}

/// Splits `#name#daemon` the way the daemon's `G_private_to_names` does: 1..=10 name bytes,
/// 1..=19 daemon bytes, every byte in `'$'..='~'`.
pub fn parse_private_group(group: &GroupName) -> Option<PrivateGroup<'_>> {
    let text = group.as_bytes();
    let rest = text.strip_prefix(b"#")?;
    let split = rest.iter().position(|&b| b == b'#')?;
    let (private_name, daemon_name) = (&rest[..split], &rest[split + 1..]);
    let fits = (1..=MAX_PRIVATE_NAME).contains(&private_name.len())
        && (1..MAX_PROC_NAME).contains(&daemon_name.len());
    let legal = private_name
        .iter()
        .chain(daemon_name)
        .all(|&b| is_name_byte(b));
    (fits && legal).then_some(PrivateGroup {
        private_name,
        daemon_name,
    })
}

/// Builds `#name#daemon`.
pub fn private_group_name(private_name: &[u8], daemon_name: &[u8]) -> GroupName {
    let mut text = Vec::with_capacity(2 + private_name.len() + daemon_name.len());
    text.push(b'#');
    text.extend_from_slice(private_name);
    text.push(b'#');
    text.extend_from_slice(daemon_name);
    GroupName::from_bytes(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_groups_split_and_join() {
        let g = private_group_name(b"alice", b"n1");
        assert_eq!(g.as_bytes(), b"#alice#n1");
        let p = parse_private_group(&g).unwrap();
        assert_eq!(p.private_name, b"alice");
        assert_eq!(p.daemon_name, b"n1");
    }

    #[test]
    fn illegal_private_groups_are_refused() {
        for bad in [
            "alice#n1",
            "#alice",
            "##n1",
            "#alice#",
            "#abcdefghijk#n1",
            "#a b#n1",
        ] {
            assert!(parse_private_group(&GroupName::new(bad)).is_none(), "{bad}");
        }
    }

    #[test]
    fn names_compare_up_to_the_nul() {
        let mut a = GroupName::new("g1");
        a.0[10] = 0x55;
        assert_eq!(a, GroupName::new("g1"));
        assert!(GroupName::new("#a#n1") < GroupName::new("#b#n1"));
    }

    #[test]
    fn group_name_rules_match_the_library() {
        assert!(is_legal_group_name(b"g1"));
        assert!(is_legal_group_name(&[b'x'; 31]));
        assert!(!is_legal_group_name(&[b'x'; 32]));
        assert!(!is_legal_group_name(b""));
        assert!(!is_legal_group_name(b"bad group"));
        assert!(!is_legal_group_name(b"#"));
    }
}
