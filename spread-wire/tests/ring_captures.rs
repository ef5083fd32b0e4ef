//! Every daemon UDP payload of the reference captures decodes with the ring codecs and
//! re-encodes to the identical bytes; where a `*.decoded.txt` exists (one line per packet,
//! written by a C-aware decoder), every header field we read matches that line.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use pcap_file::pcap::PcapReader;
use pcap_file::DataLink;
use spread_wire::consts::service;
use spread_wire::ring::groups_msg::GroupsMessage;
use spread_wire::ring::packet::encode_datagram;
use spread_wire::ring::{
    decode_data_datagram, packet_type, PacketBody, PacketHeader, Token, TokenHeader,
};
use spread_wire::{MessageHeader, HEADER_LEN};

/// Data port of every capture's configuration; tokens go to the next port.
const DATA_PORT: u16 = 4803;
const TOKEN_PORT: u16 = DATA_PORT + 1;

/// Each capture, and whether a `*.decoded.txt` beside it says what every datagram holds.
const CAPTURES: [(&str, bool); 5] = [
    ("three-segments/udp-formation-steady.pcap", true),
    ("three-segments/udp-failure.pcap", true),
    ("one-broadcast-segment/udp-formation-steady.pcap", true),
    ("one-broadcast-segment/udp-failure.pcap", true),
    ("client-corpus/f_ring/f_ring.udp-daemons.pcap", false),
];

/// A file of the captures kept in the repository (testdata/spread-3.17.3/README.md says what
/// they are); a missing one fails the test rather than letting it pass having checked nothing.
fn testdata(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/spread-3.17.3")
        .join(relative);
    assert!(path.exists(), "missing test data: {}", path.display());
    path
}

struct Udp {
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: Vec<u8>,
}

/// The IPv4 packet inside one captured frame, for the link types tcpdump uses on `lo`.
fn ipv4_of_frame(link: DataLink, frame: &[u8]) -> Option<&[u8]> {
    let (ethertype, rest) = match link {
        DataLink::ETHERNET => {
            let mut at = 12;
            let mut ethertype = u16::from_be_bytes([frame[at], frame[at + 1]]);
            while ethertype == 0x8100 {
                at += 4;
                ethertype = u16::from_be_bytes([frame[at], frame[at + 1]]);
            }
            (ethertype, &frame[at + 2..])
        }
        DataLink::LINUX_SLL => (u16::from_be_bytes([frame[14], frame[15]]), &frame[16..]),
        DataLink::LINUX_SLL2 => (u16::from_be_bytes([frame[0], frame[1]]), &frame[20..]),
        DataLink::RAW | DataLink::IPV4 => (0x0800, frame),
        DataLink::NULL | DataLink::LOOP => {
            // A 4-byte address family in the capturing host's order (2 = AF_INET).
            let family = [frame[0], frame[1], frame[2], frame[3]];
            let inet = u32::from_le_bytes(family) == 2 || u32::from_be_bytes(family) == 2;
            (if inet { 0x0800 } else { 0 }, &frame[4..])
        }
        other => panic!("link type {other:?} not handled"),
    };
    (ethertype == 0x0800).then_some(rest)
}

/// The UDP datagram inside an IPv4 packet (not fragmented: loopback MTU is large).
fn udp_of_ipv4(ip: &[u8]) -> Option<Udp> {
    assert_eq!(ip[0] >> 4, 4, "not IPv4");
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragment = u16::from_be_bytes([ip[6], ip[7]]);
    assert_eq!(fragment & 0x3fff, 0, "fragmented IPv4 datagram");
    if ip[9] != 17 {
        return None;
    }
    let udp = &ip[header_len..total_len];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
    Some(Udp {
        src: (addr(12), u16::from_be_bytes([udp[0], udp[1]])),
        dst: (addr(16), u16::from_be_bytes([udp[2], udp[3]])),
        payload: udp[8..udp_len].to_vec(),
    })
}

fn read_udp(path: &Path) -> Vec<Udp> {
    let mut reader = PcapReader::new(File::open(path).unwrap()).unwrap();
    let link = reader.header().datalink;
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        assert_eq!(
            packet.data.len() as u32,
            packet.orig_len,
            "truncated capture frame"
        );
        if let Some(udp) = ipv4_of_frame(link, &packet.data).and_then(udp_of_ipv4) {
            out.push(udp);
        }
    }
    out
}

/// One line of a `*.decoded.txt`, as `key=value` pairs plus the positional columns.
///
/// ```text
///   0.000 127.0.0.1:35632 -> 127.0.0.2:4803 len=52   PACKET type=0x80000280 JOIN  tx=... proc=...
///         memb=(0,0) seq=0 fifo=0 idx=0 data_len=20
///   0.000 127.0.0.1:39043 -> 127.0.0.2:4804 len=28   TOKEN type=0x80140080 ARQ=4|RETRANS=1 tx=...
///         seq=9 proc=... aru=9 aru_last=... fc=0 rtr_len=0
/// ```
/// Daemon ids print as dotted quads, or `0` when zero.
struct DecodedLine {
    src: String,
    dst: String,
    kind: String,
    name: String,
    fields: BTreeMap<String, String>,
}

fn parse_decoded(line: &str) -> DecodedLine {
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[2], "->", "unexpected line: {line}");
    let mut fields = BTreeMap::new();
    for col in &cols[4..] {
        if let Some((key, value)) = col.split_once('=') {
            fields.insert(key.to_string(), value.to_string());
        }
    }
    DecodedLine {
        src: cols[1].to_string(),
        dst: cols[3].to_string(),
        kind: cols[5].to_string(),
        name: cols[7].to_string(),
        fields,
    }
}

fn id_text(id: u32) -> String {
    if id == 0 {
        "0".to_string()
    } else {
        Ipv4Addr::from(id).to_string()
    }
}

fn packet_name(header: &PacketHeader) -> String {
    use packet_type as t;
    let names = [
        (t::UNRELIABLE, "UNRELIABLE"),
        (t::RELIABLE, "RELIABLE"),
        (t::FIFO, "FIFO"),
        (t::AGREED, "AGREED"),
        (t::SAFE, "SAFE"),
        (t::ROUTED, "ROUTED"),
        (t::HURRY, "HURRY"),
        (t::ALIVE, "ALIVE"),
        (t::JOIN, "JOIN"),
        (t::REFER, "REFER"),
        (t::STATUS, "STATUS"),
        (t::PARTITION, "PARTITION"),
        (t::FC, "FC"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| header.has(*bit))
        .map(|(_, name)| *name)
        .collect();
    set.join("|")
}

fn token_name(header: &TokenHeader) -> String {
    if header.is_form1() {
        return "FORM1".into();
    }
    if header.is_form2() {
        return "FORM2".into();
    }
    let mut parts = Vec::new();
    if header.arq() != 0 {
        parts.push(format!("ARQ={}", header.arq()));
    }
    if header.retrans() != 0 {
        parts.push(format!("RETRANS={}", header.retrans()));
    }
    if parts.is_empty() {
        "plain".into()
    } else {
        parts.join("|")
    }
}

fn check_packet_line(line: &DecodedLine, header: &PacketHeader, what: &str) {
    let f = &line.fields;
    assert_eq!(line.kind, "PACKET", "{what}");
    assert_eq!(
        f["type"],
        format!("{:#010x}", header.type_word),
        "{what}: type"
    );
    assert_eq!(line.name, packet_name(header), "{what}: type name");
    assert_eq!(f["tx"], id_text(header.transmitter_id), "{what}: tx");
    assert_eq!(f["proc"], id_text(header.proc_id), "{what}: proc");
    let memb = format!(
        "({},{})",
        id_text(header.memb_id.proc_id),
        header.memb_id.time
    );
    assert_eq!(f["memb"], memb, "{what}: memb");
    assert_eq!(f["seq"], header.seq.to_string(), "{what}: seq");
    assert_eq!(f["fifo"], header.fifo_seq.to_string(), "{what}: fifo");
    assert_eq!(f["idx"], header.packet_index.to_string(), "{what}: idx");
    assert_eq!(
        f["data_len"],
        header.data_len.to_string(),
        "{what}: data_len"
    );
}

fn check_token_line(line: &DecodedLine, header: &TokenHeader, what: &str) {
    let f = &line.fields;
    assert_eq!(line.kind, "TOKEN", "{what}");
    assert_eq!(
        f["type"],
        format!("{:#010x}", header.type_word),
        "{what}: type"
    );
    assert_eq!(line.name, token_name(header), "{what}: type name");
    assert_eq!(f["tx"], id_text(header.transmitter_id), "{what}: tx");
    assert_eq!(f["seq"], header.seq.to_string(), "{what}: seq");
    assert_eq!(f["proc"], id_text(header.proc_id), "{what}: proc");
    assert_eq!(f["aru"], header.aru.to_string(), "{what}: aru");
    assert_eq!(
        f["aru_last"],
        id_text(header.aru_last_id),
        "{what}: aru_last"
    );
    assert_eq!(f["fc"], header.flow_control.to_string(), "{what}: fc");
    assert_eq!(f["rtr_len"], header.rtr_len.to_string(), "{what}: rtr_len");
}

/// If a data packet holds a whole GROUPS message, decode its body and re-encode it.
fn check_groups_message(body: &[u8], counts: &mut BTreeMap<String, usize>, what: &str) {
    let Some(head) = body.get(..HEADER_LEN) else {
        return;
    };
    let (header, writer) = MessageHeader::decode(head.try_into().unwrap());
    if header.msg_type & service::GROUPS == 0 {
        return;
    }
    let names_len = usize::try_from(header.num_groups).unwrap() * 32;
    let data = &body[HEADER_LEN + names_len..];
    assert_eq!(
        usize::try_from(header.data_len).unwrap(),
        data.len(),
        "{what}: GROUPS data_len"
    );
    let groups =
        GroupsMessage::decode(data, writer).unwrap_or_else(|e| panic!("{what}: GROUPS body: {e}"));
    assert_eq!(
        groups.encode(writer).unwrap(),
        data,
        "{what}: GROUPS body re-encodes"
    );
    let kind = if groups.groups.is_empty() {
        "GROUPS message (no groups)"
    } else {
        "GROUPS message (with groups)"
    };
    *counts.entry(kind.into()).or_default() += 1;
}

fn count(counts: &mut BTreeMap<String, usize>, kind: impl Into<String>) {
    *counts.entry(kind.into()).or_default() += 1;
}

/// Decodes and re-encodes one capture; returns its packet counts per kind.
fn check_capture(path: &Path, cross_checked: bool) -> BTreeMap<String, usize> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let datagrams = read_udp(path);
    let decoded_path = path.with_extension("decoded.txt");
    assert_eq!(
        decoded_path.exists(),
        cross_checked,
        "{}: a decoded.txt is expected exactly for the captures marked so",
        decoded_path.display()
    );
    let decoded: Option<Vec<DecodedLine>> = cross_checked.then(|| {
        std::fs::read_to_string(&decoded_path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(parse_decoded)
            .collect()
    });
    if let Some(lines) = &decoded {
        assert_eq!(
            lines.len(),
            datagrams.len(),
            "{name}: one decoded line per UDP datagram"
        );
    } else {
        println!(
            "{name}: no {} to cross-check against",
            decoded_path.display()
        );
    }

    let mut counts = BTreeMap::new();
    for (i, udp) in datagrams.iter().enumerate() {
        let what = format!("{name} datagram #{}", i + 1);
        let raw = &udp.payload[..];
        let line = decoded.as_ref().map(|lines| &lines[i]);
        if let Some(line) = line {
            assert_eq!(
                line.src,
                format!("{}:{}", udp.src.0, udp.src.1),
                "{what}: source"
            );
            assert_eq!(
                line.dst,
                format!("{}:{}", udp.dst.0, udp.dst.1),
                "{what}: destination"
            );
            assert_eq!(line.fields["len"], raw.len().to_string(), "{what}: len");
        }
        match udp.dst.1 {
            DATA_PORT => {
                let (endian, packets) =
                    decode_data_datagram(raw).unwrap_or_else(|e| panic!("{what}: {e}"));
                if packets.len() > 1 {
                    count(&mut counts, "packed datagram");
                }
                if let Some(line) = line {
                    check_packet_line(line, &packets[0].0, &what);
                }
                let mut bodies = Vec::new();
                for (header, body) in &packets {
                    if let PacketBody::Data(fragment) = body {
                        let service = packet_name(&PacketHeader {
                            type_word: header.type_bits() & packet_type::REGULAR,
                            ..*header
                        });
                        count(&mut counts, format!("data ({service})"));
                        if header.packet_index == -1 {
                            check_groups_message(fragment, &mut counts, &what);
                        }
                    }
                    count(&mut counts, body.kind());
                    bodies.push(body.encode(endian).unwrap());
                }
                let again: Vec<_> = packets
                    .iter()
                    .zip(&bodies)
                    .map(|((h, _), b)| (*h, &b[..]))
                    .collect();
                let encoded = encode_datagram(endian, &again).unwrap();
                assert_eq!(encoded, raw, "{what}: re-encodes to the same bytes");
            }
            TOKEN_PORT => {
                let (token, endian) = Token::decode(raw).unwrap_or_else(|e| panic!("{what}: {e}"));
                if let Some(line) = line {
                    check_token_line(line, token.header(), &what);
                }
                count(&mut counts, token.kind());
                if let Token::Regular { requests, .. } = &token {
                    if !requests.is_empty() {
                        count(&mut counts, "token with retransmission requests");
                    }
                }
                assert_eq!(
                    token.encode(endian).unwrap(),
                    raw,
                    "{what}: re-encodes to the same bytes"
                );
            }
            port => panic!("{what}: UDP to port {port}, neither data nor token port"),
        }
    }
    counts
}

#[test]
fn every_captured_datagram_decodes_and_re_encodes_identically() {
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    for (capture, cross_checked) in CAPTURES {
        let counts = check_capture(&testdata(capture), cross_checked);
        println!("{capture}:");
        for (kind, n) in &counts {
            println!("    {n:5}  {kind}");
            *totals.entry(kind.clone()).or_default() += n;
        }
    }
    println!("all captures:");
    for (kind, n) in &totals {
        println!("    {n:5}  {kind}");
    }
    // Every kind these runs are known to contain was seen and round-tripped.
    for kind in [
        "data",
        "token",
        "FORM1",
        "FORM2",
        "ALIVE",
        "JOIN",
        "REFER",
        "HURRY",
        "data (AGREED)",
        "data (SAFE)",
        "data (FIFO)",
        "GROUPS message (no groups)",
    ] {
        assert!(
            totals.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in the captures"
        );
    }
}
