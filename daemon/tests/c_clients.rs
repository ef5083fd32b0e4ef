//! C 3.17 client programs against our daemon: spuser, spflooder and a small program of
//! ours linked with libspread. Each prints SKIPPED when no C Spread is installed.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn spuser_joins_sends_and_receives() {
    let Some(c) = CSpread::find_or_skip("spuser_joins_sends_and_receives") else {
        return;
    };
    let d = start_rust_daemon("");
    let mut child = Command::new(&c.spuser)
        .args(["-u", "cu", "-s", &d.address()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let script = ["j g1\n", "s g1\n", "hello from spuser\n", "l g1\n", "q\n"];
    for line in script {
        stdin.write_all(line.as_bytes()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "Received REGULAR membership for group g1 with 1 members, where I am member 0"
        ),
        "{text}"
    );
    assert!(text.contains("Due to the JOIN of #cu#n1"), "{text}");
    assert!(
        text.contains("received SAFE message from #cu#n1, of type 1, (endian 0) to 1 groups"),
        "{text}"
    );
    assert!(text.contains("hello from spuser"), "{text}");
    assert!(
        text.contains("received membership message that left group g1"),
        "{text}"
    );
}

#[test]
fn spflooder_completes_in_every_mode() {
    let Some(c) = CSpread::find_or_skip("spflooder_completes_in_every_mode") else {
        return;
    };
    let d = start_rust_daemon("");
    let flooder = &c.spflooder;
    let out = Command::new(flooder)
        .args(["-u", "f1", "-m", "5000", "-b", "1000", "-s", &d.address()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("completed multicast of 5000 messages, 1000 bytes each"),
        "{text}"
    );
    let reader = Command::new(flooder)
        .args([
            "-u",
            "r",
            "-ro",
            "-m",
            "5000",
            "-b",
            "100",
            "-s",
            &d.address(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let writer = Command::new(flooder)
        .args([
            "-u",
            "w",
            "-wo",
            "-m",
            "5000",
            "-b",
            "100",
            "-s",
            &d.address(),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&writer.stdout).contains("completed multicast of 5000"));
    let read = reader.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&read.stdout).contains("completed multicast of 5000"),
        "{}",
        String::from_utf8_lossy(&read.stdout)
    );
}

#[test]
fn a_libspread_program_passes_every_check() {
    let Some(c) = CSpread::find_or_skip("a_libspread_program_passes_every_check") else {
        return;
    };
    let dir = TempDir::new("cprog");
    let exe = dir.0.join("libspread_smoke");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/libspread_smoke.c");
    let cc = Command::new("cc")
        .arg(&src)
        .arg(format!("-I{}", c.include_dir.display()))
        .arg(format!("-L{}", c.lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", c.lib_dir.display()))
        .args(["-lspread", "-o"])
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let d = start_rust_daemon("");
    let out = Command::new(&exe).arg(d.address()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let expect = [
        "connected #ca#n1 #cb#n1",
        "join-a cg members=1 reg=1 join=1",
        "join-b-seen-by-a members=2 first=#ca#n1 second=#cb#n1 index=0",
        "join-b-seen-by-b members=2 index=1",
        "b-got type=0x1 mess_type=1 from=#ca#n1 len=7",
        "b-got type=0x2 mess_type=2",
        "b-got type=0x20 mess_type=6",
        "b-got type=0x60 mess_type=7 from=#ca#n1 len=5",
        "a-got type=0x20 mess_type=6",
        "multigroup groups=2 cg other",
        "largest send=143920",
        "largest recv=143920",
        "too-long send=-17",
        "self-leave 1",
        "leave-seen members=1 leave=1",
        "disconnect-seen members=1 disconnect=1",
        "done",
    ];
    for line in expect {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}
