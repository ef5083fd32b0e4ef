//! Every platform `cargo xtask build` knows: the Linux targets it cross-builds and runs
//! under qemu, the whole table `--target all` walks with each one's tier and route, the
//! toolchains those routes need, and the hand-written notes of docs/platforms.md.

/// A Linux target that `cargo xtask build --target T` cross-builds and runs under qemu.
pub(crate) struct Target {
    pub(crate) rust: &'static str,
    /// The GNU triple: clang's --target, the sysroot under /usr and binutils' prefix.
    pub(crate) gnu: &'static str,
    /// Debian's architecture suffix of the cross packages.
    pub(crate) deb: &'static str,
    pub(crate) qemu: &'static str,
    /// lld 14 links aarch64 but neither ELFv1 (big-endian ppc64, Rust's ABI there) nor
    /// s390x; those link with the target's GNU ld.
    pub(crate) ld: &'static str,
    pub(crate) big_endian: bool,
}

pub(crate) const TARGETS: [Target; 3] = [
    Target {
        rust: "aarch64-unknown-linux-gnu",
        gnu: "aarch64-linux-gnu",
        deb: "arm64",
        qemu: "qemu-aarch64-static",
        ld: "lld",
        big_endian: false,
    },
    Target {
        rust: "powerpc64-unknown-linux-gnu",
        gnu: "powerpc64-linux-gnu",
        deb: "ppc64",
        qemu: "qemu-ppc64-static",
        ld: "bfd",
        big_endian: true,
    },
    Target {
        rust: "s390x-unknown-linux-gnu",
        gnu: "s390x-linux-gnu",
        deb: "s390x",
        qemu: "qemu-s390x-static",
        ld: "bfd",
        big_endian: true,
    },
];

/// The nightly that builds AIX's std with the project's dependencies.
pub(crate) const AIX_NIGHTLY: &str = "nightly-2025-06-10";
/// What the build-std path of OpenBSD uses.
pub(crate) const NIGHTLY: &str = "nightly";

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Via {
    /// The pinned toolchain on the host.
    Native,
    /// cross.rs: clang, the Debian cross sysroot, qemu user emulation.
    Qemu,
    /// cargo-zigbuild with a prebuilt std from rustup.
    Zig,
    /// cargo-zigbuild with std built from source by a nightly.
    ZigBuildStd,
    /// A nightly's -Zbuild-std, no linker to be had.
    BuildStd,
}

pub(crate) struct Platform {
    pub(crate) rust: &'static str,
    pub(crate) tier: u8,
    pub(crate) via: Via,
}

pub(crate) const PLATFORMS: [Platform; 10] = [
    Platform {
        rust: "x86_64-unknown-linux-gnu",
        tier: 1,
        via: Via::Native,
    },
    Platform {
        rust: "aarch64-unknown-linux-gnu",
        tier: 1,
        via: Via::Qemu,
    },
    Platform {
        rust: "powerpc64-unknown-linux-gnu",
        tier: 1,
        via: Via::Qemu,
    },
    Platform {
        rust: "s390x-unknown-linux-gnu",
        tier: 1,
        via: Via::Qemu,
    },
    Platform {
        rust: "x86_64-unknown-freebsd",
        tier: 2,
        via: Via::Zig,
    },
    Platform {
        rust: "x86_64-unknown-netbsd",
        tier: 2,
        via: Via::Zig,
    },
    Platform {
        rust: "x86_64-apple-darwin",
        tier: 2,
        via: Via::Zig,
    },
    Platform {
        rust: "aarch64-apple-darwin",
        tier: 2,
        via: Via::Zig,
    },
    Platform {
        rust: "x86_64-unknown-openbsd",
        tier: 2,
        via: Via::ZigBuildStd,
    },
    Platform {
        rust: "powerpc64-ibm-aix",
        tier: 3,
        via: Via::BuildStd,
    },
];

/// The notes column of docs/platforms.md: the only words in it not produced by a run.
pub(crate) const NOTES: &[(&str, &str)] = &[
    (
        "x86_64-unknown-linux-gnu",
        "The development platform; CI runs the whole suite here.",
    ),
    (
        "aarch64-unknown-linux-gnu",
        "Little-endian like x86_64, so no mixed-endian ring; the in-process suites only.",
    ),
    (
        "powerpc64-unknown-linux-gnu",
        "Big-endian (ELFv1); also a ring of this daemon under qemu between two x86_64 ones, and (where C Spread is installed) between two C 3.17 daemons.",
    ),
    (
        "s390x-unknown-linux-gnu",
        "Big-endian; also a ring of this daemon under qemu between two x86_64 ones, and (where C Spread is installed) between two C 3.17 daemons.",
    ),
    (
        "x86_64-unknown-freebsd",
        "Linked against zig's FreeBSD libc stubs; never run.",
    ),
    (
        "x86_64-unknown-netbsd",
        "Linked against zig's NetBSD libc stubs; never run.",
    ),
    (
        "x86_64-apple-darwin",
        "Linked against zig's libSystem stubs, no Apple SDK; never run.",
    ),
    (
        "aarch64-apple-darwin",
        "Linked against zig's libSystem stubs, no Apple SDK; never run.",
    ),
    (
        "x86_64-unknown-openbsd",
        "No prebuilt std (Rust tier 3): std built from source by nightly; linked against zig's OpenBSD libc stubs. No per-socket keepalive times: SO_KEEPALIVE with the system's net.inet.tcp.keep* values (spread-rs's liveness probe covers it: docs/failure-detection.md).",
    ),
    (
        "powerpc64-ibm-aix",
        "No AIX sysroot or linker here: object code only. Keepalive idle time per socket; interval and count are the system's (socket2 0.5 sets no others on AIX).",
    ),
];

pub(crate) fn goal(tier: u8) -> &'static str {
    match tier {
        1 => "run",
        2 => "link",
        _ => "build",
    }
}

pub(crate) fn note(target: &str) -> &'static str {
    NOTES
        .iter()
        .find(|(t, _)| *t == target)
        .map_or("", |(_, n)| n)
}
