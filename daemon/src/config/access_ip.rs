//! 3.17's IP access list, `spread.access_ip`: who the IP auth method admits.
//!
//! One entry a line: `unix` (sessions on the local socket), `local` (TCP from 127.0.0.0/8),
//! or an IPv4 network `a.b.c.d/prefix` (a bare address is a /32). `#` starts a comment line.
//! 3.17 stops reading at a blank line and exits on a malformed one; we skip blank lines and
//! refuse to start on a malformed one, naming the file and line.

use crate::core::IpRule;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The file's name, as 3.17 looks for it.
pub const FILE_NAME: &str = "spread.access_ip";

/// A line of the access list that is not an entry.
/// Line 0 is the file as a whole.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", if *.line > 0 { format!(":{}", .line) } else { String::new() })]
pub struct AccessListError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Where the list is looked for, first found wins: the working directory (as 3.17), the
/// directory of the spread.conf in use (ours), then `/etc` (as 3.17).
pub fn search_path(config_file: Option<&Path>) -> Vec<PathBuf> {
    let mut places = vec![PathBuf::from(FILE_NAME)];
    if let Some(dir) = config_file.and_then(Path::parent) {
        if !dir.as_os_str().is_empty() {
            places.push(dir.join(FILE_NAME));
        }
    }
    places.push(Path::new("/etc").join(FILE_NAME));
    places
}

/// Parses the list; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<IpRule>, AccessListError> {
    let mut rules = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |message: String| AccessListError {
            file: file.to_string(),
            line: index + 1,
            message,
        };
        let rule = match line {
            "unix" => IpRule::LocalSocket,
            "local" => IpRule::Network {
                addr: Ipv4Addr::new(127, 0, 0, 0),
                prefix: 8,
            },
            _ => network(line).map_err(error)?,
        };
        rules.push(rule);
    }
    Ok(rules)
}

fn network(entry: &str) -> Result<IpRule, String> {
    let not_an_entry = || {
        format!(
            "'{entry}' is not an entry: write unix, local, an IPv4 address or a network such as 192.168.1.0/24"
        )
    };
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => (addr.trim(), Some(prefix.trim())),
        None => (entry, None),
    };
    let addr: Ipv4Addr = addr.parse().map_err(|_| not_an_entry())?;
    let prefix = match prefix {
        None => 32,
        Some(p) => match p.parse::<u8>() {
            Ok(p) if p <= 32 => p,
            _ => return Err(format!("'{entry}': the prefix length must be 0 to 32")),
        },
    };
    Ok(IpRule::Network { addr, prefix })
}

/// Finds and reads the list: `Ok(None)` when no file exists in `places`.
pub fn load(places: &[PathBuf]) -> Result<Option<(PathBuf, Vec<IpRule>)>, AccessListError> {
    for place in places {
        match std::fs::read_to_string(place) {
            Ok(text) => {
                let rules = parse(&text, &place.display().to_string())?;
                return Ok(Some((place.clone(), rules)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(AccessListError {
                    file: place.display().to_string(),
                    line: 0,
                    message: format!("cannot read it: {e}"),
                })
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_entries_parse() {
        let text = "# comment\nunix\nlocal \n\n192.168.1.0/24\n10.1.2.3\n";
        assert_eq!(
            parse(text, "f").unwrap(),
            [
                IpRule::LocalSocket,
                IpRule::Network {
                    addr: Ipv4Addr::new(127, 0, 0, 0),
                    prefix: 8
                },
                IpRule::Network {
                    addr: Ipv4Addr::new(192, 168, 1, 0),
                    prefix: 24
                },
                IpRule::Network {
                    addr: Ipv4Addr::new(10, 1, 2, 3),
                    prefix: 32
                },
            ]
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let err = parse("unix\n10.0.0/8\n", "acl").unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("acl", 2));
        assert!(
            err.to_string()
                .starts_with("acl:2: '10.0.0/8' is not an entry"),
            "{err}"
        );
        let err = parse("10.0.0.0/33\n", "acl").unwrap_err();
        assert!(err.message.contains("prefix length"), "{err}");
        assert!(parse("localhost\n", "acl").is_err());
    }

    #[test]
    fn the_working_directory_comes_first_and_etc_last() {
        let places = search_path(Some(Path::new("/opt/spread/spread.conf")));
        assert_eq!(
            places,
            [
                PathBuf::from("spread.access_ip"),
                PathBuf::from("/opt/spread/spread.access_ip"),
                PathBuf::from("/etc/spread.access_ip")
            ]
        );
    }
}
